//! A whole OpenAI `chat.completion` body, built by the translating adapters.

use serde::Serialize;

use crate::openai::Usage;
use crate::openai::chat::ToolCall;

/// Why a choice ended, in OpenAI's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::ContentFilter => "content_filter",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Completion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<Choice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Serialize)]
pub struct Choice {
    pub index: u32,
    pub message: Message,
    pub logprobs: Option<()>,
    pub finish_reason: Option<FinishReason>,
}

/// The assistant's message of one choice.
#[derive(Debug, Default, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: Option<String>,
    pub refusal: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

impl<'a> Completion<'a> {
    /// A completion of one choice per `(message, finish_reason)`.
    pub fn new(
        id: &'a str,
        model: &'a str,
        created: u64,
        choices: impl IntoIterator<Item = (Message, Option<FinishReason>)>,
        usage: Option<Usage>,
    ) -> Self {
        let choices = choices
            .into_iter()
            .enumerate()
            .map(|(index, (mut message, finish_reason))| {
                message.role = "assistant";
                Choice { index: index as u32, message, logprobs: None, finish_reason }
            })
            .collect();
        Self { id, object: "chat.completion", created, model, choices, usage }
    }

    pub fn to_bytes(&self) -> bytes::Bytes {
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_vec(self).map(bytes::Bytes::from).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::chat::FunctionCall;

    #[test]
    fn renders_openais_shape() {
        let message = Message {
            content: None,
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                kind: "function".into(),
                function: FunctionCall { name: "f".into(), arguments: "{}".into() },
            }],
            ..Message::default()
        };
        let usage = Usage { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, ..Usage::default() };
        let body = Completion::new("id", "m", 7, [(message, Some(FinishReason::ToolCalls))], Some(usage)).to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "id": "id", "object": "chat.completion", "created": 7, "model": "m",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": null, "refusal": null,
                    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
                }}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
            })
        );
    }
}
