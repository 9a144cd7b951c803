//! A whole Cohere chat answer as an OpenAI `chat.completion`, and what the answer and the stream
//! share: finish reasons and usage.

use std::borrow::Cow;

use serde::Deserialize;

use super::error::stream_error;
use crate::openai::Usage;
use crate::openai::chat::{FunctionCall, ToolCall};
use crate::openai::usage::PromptTokensDetails;
use crate::providers::native::{Completion, FinishReason, Message, completion_id, unix_now};
use crate::providers::{JsonReply, ProviderError};

/// How a generation ended: a finish reason, or an error to report instead of the answer.
pub enum Ending {
    Finished(FinishReason),
    /// `ERROR` (`timeout: false`) or `TIMEOUT`.
    Failed {
        timeout: bool,
    },
}

/// Cohere's `finish_reason`. `COMPLETE` and `STOP_SEQUENCE` are both OpenAI's `stop`; `ERROR` and
/// `TIMEOUT` mean the answer is not one, so they become errors (a 500 and a 504). A reason this
/// adapter does not know yet reads as `stop`: the generation did end.
pub fn ending(finish_reason: Option<&str>) -> Ending {
    match finish_reason {
        Some("MAX_TOKENS") => Ending::Finished(FinishReason::Length),
        Some("TOOL_CALL") => Ending::Finished(FinishReason::ToolCalls),
        Some("ERROR") => Ending::Failed { timeout: false },
        Some("TIMEOUT") => Ending::Failed { timeout: true },
        _ => Ending::Finished(FinishReason::Stop),
    }
}

/// Cohere's `usage`: `tokens` counts everything the model read and wrote; `billed_units` (what is
/// charged) stands in when `tokens` is missing.
#[derive(Debug, Default, Deserialize)]
pub struct CohereUsage {
    #[serde(default)]
    tokens: Option<Counts>,
    #[serde(default)]
    billed_units: Option<Counts>,
    #[serde(default)]
    cached_tokens: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct Counts {
    // Cohere documents these as numbers, not integers.
    #[serde(default)]
    input_tokens: Option<f64>,
    #[serde(default)]
    output_tokens: Option<f64>,
}

impl CohereUsage {
    pub fn to_openai(&self) -> Option<Usage> {
        let counts = self.tokens.as_ref().or(self.billed_units.as_ref())?;
        let whole = |n: Option<f64>| n.map_or(0, |n| n.max(0.0) as u64);
        let (prompt, completion) = (whole(counts.input_tokens), whole(counts.output_tokens));
        Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: self
                .cached_tokens
                .map(|n| PromptTokensDetails { cached_tokens: Some(whole(Some(n))), ..Default::default() }),
            completion_tokens_details: None,
        })
    }
}

#[derive(Deserialize)]
struct ChatResponse<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    message: AssistantMessage,
    #[serde(default)]
    usage: Option<CohereUsage>,
}

#[derive(Default, Deserialize)]
struct AssistantMessage {
    #[serde(default)]
    content: Vec<ContentItem>,
    #[serde(default)]
    tool_calls: Vec<CohereToolCall>,
}

/// A part of the answer. Reasoning models' `thinking` parts are not part of OpenAI's message.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentItem {
    Text {
        text: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct CohereToolCall {
    #[serde(default)]
    id: Option<String>,
    function: CohereFunction,
}

#[derive(Deserialize)]
struct CohereFunction {
    name: String,
    /// JSON text, as OpenAI has it.
    #[serde(default)]
    arguments: Option<String>,
}

/// The `chat.completion` for Cohere's answer `body` to a request for `model`.
pub fn completion(provider: &str, model: &str, body: &[u8], secret: Option<&str>) -> Result<JsonReply, ProviderError> {
    let response: ChatResponse = serde_json::from_slice(body)
        .map_err(|e| ProviderError::invalid_response(provider, format!("not a Cohere chat answer: {e}")))?;
    let finish_reason = match ending(response.finish_reason.as_deref()) {
        Ending::Finished(reason) => reason,
        Ending::Failed { timeout } => return Err(stream_error(provider, timeout, None, secret)),
    };
    let texts: Vec<&str> = response
        .message
        .content
        .iter()
        .filter_map(|item| match item {
            ContentItem::Text { text } => Some(text.as_str()),
            ContentItem::Other => None,
        })
        .collect();
    let tool_calls = response
        .message
        .tool_calls
        .into_iter()
        .map(|call| ToolCall {
            id: call.id.unwrap_or_else(crate::providers::native::tool_call_id),
            kind: "function".into(),
            function: FunctionCall {
                name: call.function.name,
                arguments: call.function.arguments.filter(|a| !a.is_empty()).unwrap_or_else(|| "{}".into()),
            },
        })
        .collect();
    let message = Message { content: (!texts.is_empty()).then(|| texts.concat()), tool_calls, ..Message::default() };
    let usage = response.usage.as_ref().and_then(CohereUsage::to_openai);
    let id = response.id.map_or_else(completion_id, Cow::into_owned);
    let body = Completion::new(&id, model, unix_now(), [(message, Some(finish_reason))], usage.clone()).to_bytes();
    Ok(JsonReply { body, usage })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn complete(body: Value) -> Result<Value, ProviderError> {
        let reply = completion("cohere", "command-a-03-2025", body.to_string().as_bytes(), None)?;
        Ok(serde_json::from_slice(&reply.body).unwrap())
    }

    #[test]
    fn text_answer_with_usage_and_cached_tokens() {
        let answer = complete(json!({
            "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
            "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm"},
                {"type": "text", "text": "Hello"},
                {"type": "text", "text": " there"}
            ]},
            "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 2}, "tokens": {"input_tokens": 71, "output_tokens": 2}, "cached_tokens": 64}
        }))
        .unwrap();
        assert_eq!(answer["id"], "c14c80c3-18eb-4519-9460-6c92edd8cfb4");
        assert_eq!(answer["model"], "command-a-03-2025");
        assert_eq!(answer["choices"][0]["message"]["content"], "Hello there");
        assert_eq!(answer["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            answer["usage"],
            json!({"prompt_tokens": 71, "completion_tokens": 2, "total_tokens": 73, "prompt_tokens_details": {"cached_tokens": 64}})
        );
    }

    #[test]
    fn tool_calls_and_finish_reasons() {
        let answer = complete(json!({
            "id": "x", "finish_reason": "TOOL_CALL",
            "message": {"role": "assistant", "tool_plan": "I will check the weather.", "tool_calls": [
                {"id": "get_weather_1byjy32y4hvq", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Toronto\"}"}}
            ]},
            "usage": {"billed_units": {"input_tokens": 37, "output_tokens": 28}}
        }))
        .unwrap();
        let choice = &answer["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([{"id": "get_weather_1byjy32y4hvq", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Toronto\"}"}}])
        );
        assert_eq!(answer["usage"]["prompt_tokens"], 37, "billed units stand in for missing tokens");
        for (cohere, openai) in [("MAX_TOKENS", "length"), ("STOP_SEQUENCE", "stop"), ("SOMETHING_NEW", "stop")] {
            let answer = complete(json!({"id": "x", "finish_reason": cohere, "message": {"content": []}})).unwrap();
            assert_eq!(answer["choices"][0]["finish_reason"], openai);
            assert!(answer.get("usage").is_none());
        }
    }

    #[test]
    fn error_and_timeout_endings_are_errors() {
        let err = complete(json!({"id": "x", "finish_reason": "ERROR", "message": {"content": []}})).unwrap_err();
        assert!(matches!(&err, ProviderError::Upstream(e) if e.status == 500), "{err:?}");
        let err = complete(json!({"id": "x", "finish_reason": "TIMEOUT", "message": {"content": []}})).unwrap_err();
        assert!(matches!(&err, ProviderError::Upstream(e) if e.status == 504), "{err:?}");
        assert!(matches!(complete(json!([1])), Err(ProviderError::InvalidResponse { .. })));
    }
}
