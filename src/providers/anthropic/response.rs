//! An Anthropic `message` answer as an OpenAI `chat.completion`, and the parts the stream shares with
//! it: stop reasons and usage.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::request::JsonMode;
use crate::openai::Usage;
use crate::openai::chat::{FunctionCall, ToolCall};
use crate::openai::usage::PromptTokensDetails;
use crate::providers::ProviderError;
use crate::providers::native::{Completion, FinishReason, Message, unix_now};

/// Token counts as Anthropic reports them. In a stream, `message_start` has the input side and
/// `message_delta` the (cumulative) output side; either may repeat the other's fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Takes every count `later` reports (counts are cumulative, not increments).
    pub fn update(&mut self, later: &AnthropicUsage) {
        let take = |mine: &mut Option<u64>, theirs: Option<u64>| {
            if theirs.is_some() {
                *mine = theirs;
            }
        };
        take(&mut self.input_tokens, later.input_tokens);
        take(&mut self.output_tokens, later.output_tokens);
        take(&mut self.cache_creation_input_tokens, later.cache_creation_input_tokens);
        take(&mut self.cache_read_input_tokens, later.cache_read_input_tokens);
    }

    /// OpenAI's usage. Anthropic's `input_tokens` excludes the tokens written to and read from the
    /// prompt cache, OpenAI's `prompt_tokens` includes them: the prompt is all three, of which
    /// `cached_tokens` were read from the cache (`cache_creation_tokens` were written to it).
    pub fn to_openai(self) -> Usage {
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let prompt_tokens = self.input_tokens.unwrap_or(0) + written + read;
        let completion_tokens = self.output_tokens.unwrap_or(0);
        let reports_cache = self.cache_creation_input_tokens.is_some() || self.cache_read_input_tokens.is_some();
        let prompt_tokens_details = reports_cache.then(|| {
            let mut details = PromptTokensDetails { cached_tokens: Some(read), ..PromptTokensDetails::default() };
            if let Some(written) = self.cache_creation_input_tokens {
                details.extra.insert("cache_creation_tokens".to_owned(), written.into());
            }
            details
        });
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details,
            completion_tokens_details: None,
        }
    }
}

/// Anthropic's `stop_reason` in OpenAI's words. In JSON mode the forced tool call is the answer, so
/// it ended as a plain stop.
pub fn finish_reason(stop_reason: Option<&str>, json_mode: bool) -> FinishReason {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") if !json_mode => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        // end_turn, stop_sequence, pause_turn (a server tool's long turn, paused: what came is the
        // answer so far) and any reason added later.
        _ => FinishReason::Stop,
    }
}

#[derive(Debug, Deserialize)]
struct MessageBody<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    content: Vec<ContentBlock<'a>>,
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

/// One content block; blocks of other types (thinking, server tool results) are skipped.
#[derive(Debug, Deserialize)]
struct ContentBlock<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
}

/// The whole `chat.completion` body and its usage for an Anthropic message.
pub fn completion(
    provider: &str,
    body: &[u8],
    json_mode: Option<&JsonMode>,
) -> Result<(Bytes, Option<Usage>), ProviderError> {
    let message: MessageBody<'_> = serde_json::from_slice(body)
        .map_err(|e| ProviderError::invalid_response(provider, format!("not an Anthropic message: {e}")))?;
    let mut text: Option<String> = None;
    let mut json_answer: Option<&str> = None;
    let mut tool_calls = Vec::new();
    for block in &message.content {
        match block.kind.as_ref() {
            "text" => text.get_or_insert_default().push_str(block.text.as_deref().unwrap_or_default()),
            "tool_use" => {
                let (Some(id), Some(name)) = (&block.id, &block.name) else {
                    return Err(ProviderError::invalid_response(provider, "a tool_use block without id or name"));
                };
                let input = block.input.map_or("{}", RawValue::get);
                if json_mode.is_some_and(|mode| mode.tool == *name) {
                    json_answer = Some(input);
                    continue;
                }
                tool_calls.push(ToolCall {
                    id: id.as_ref().to_owned(),
                    kind: "function".to_owned(),
                    function: FunctionCall { name: name.as_ref().to_owned(), arguments: input.to_owned() },
                });
            }
            _ => {}
        }
    }
    // In JSON mode the tool's input is the answer; any text around it would make it invalid JSON.
    let content = match json_answer {
        Some(json) => Some(json.to_owned()),
        None => text,
    };
    let finish = finish_reason(message.stop_reason.as_deref(), json_answer.is_some());
    let usage = message.usage.map(AnthropicUsage::to_openai);
    let reply = Message { content, tool_calls, ..Message::default() };
    let completion = Completion::new(&message.id, &message.model, unix_now(), [(reply, Some(finish))], usage.clone());
    Ok((completion.to_bytes(), usage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn translate(body: Value, json_mode: Option<&JsonMode>) -> (Value, Option<Usage>) {
        let (bytes, usage) = completion("p", body.to_string().as_bytes(), json_mode).unwrap();
        (serde_json::from_slice(&bytes).unwrap(), usage)
    }

    #[test]
    fn text_answer_with_prompt_caching_usage() {
        let (body, usage) = translate(
            json!({
                "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
                "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there", "citations": null}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 10, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000, "output_tokens": 5, "service_tier": "standard"}
            }),
            None,
        );
        assert_eq!(body["id"], "msg_01");
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "claude-sonnet-4-5-20250929");
        assert_eq!(
            body["choices"],
            json!([{"index": 0, "logprobs": null, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hello there", "refusal": null}}])
        );
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 1110, "completion_tokens": 5, "total_tokens": 1115, "prompt_tokens_details": {"cached_tokens": 1000, "cache_creation_tokens": 100}})
        );
        assert_eq!(usage.unwrap().total_tokens, 1115);
    }

    #[test]
    fn tool_calls_keep_their_ids_and_input_text() {
        let (body, _) = translate(
            json!({
                "id": "msg_02", "type": "message", "role": "assistant", "model": "claude",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}
                ],
                "stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 4}
            }),
            None,
        );
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Let me check.");
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}
            ])
        );
        assert_eq!(body["usage"], json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}));
    }

    #[test]
    fn json_mode_answers_with_the_tool_input_as_text() {
        let mode = JsonMode { tool: "capital".into() };
        let (body, _) = translate(
            json!({
                "id": "msg_03", "type": "message", "role": "assistant", "model": "claude",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "capital", "input": {"capital": "Paris"}}],
                "stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 4}
            }),
            Some(&mode),
        );
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["choices"][0]["message"]["content"], "{\"capital\":\"Paris\"}");
        assert!(body["choices"][0]["message"].get("tool_calls").is_none());
    }

    #[test]
    fn stop_reasons() {
        for (reason, json_mode, expected) in [
            (Some("end_turn"), false, FinishReason::Stop),
            (Some("stop_sequence"), false, FinishReason::Stop),
            (Some("pause_turn"), false, FinishReason::Stop),
            (Some("max_tokens"), true, FinishReason::Length),
            (Some("tool_use"), false, FinishReason::ToolCalls),
            (Some("tool_use"), true, FinishReason::Stop),
            (Some("refusal"), false, FinishReason::ContentFilter),
            (None, false, FinishReason::Stop),
        ] {
            assert_eq!(finish_reason(reason, json_mode), expected, "{reason:?}");
        }
    }

    #[test]
    fn a_body_that_is_not_a_message_is_an_invalid_response() {
        let err = completion("p", b"{\"type\":\"message\"}", None).unwrap_err();
        assert!(matches!(err, ProviderError::InvalidResponse { .. }), "{err}");
    }
}
