//! A Converse answer as an OpenAI `chat.completion`, and what the whole and streamed answers share:
//! token usage and stop reasons.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::openai::Usage;
use crate::openai::chat::{FunctionCall, ToolCall};
use crate::openai::usage::PromptTokensDetails;
use crate::providers::ProviderError;
use crate::providers::native::{Completion, FinishReason, Message, completion_id, unix_now};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseResponse<'a> {
    #[serde(borrow)]
    output: Output<'a>,
    #[serde(borrow)]
    stop_reason: Cow<'a, str>,
    #[serde(default)]
    usage: Option<TokenUsage>,
}

#[derive(Deserialize)]
struct Output<'a> {
    #[serde(borrow, default)]
    message: Option<OutputMessage<'a>>,
}

#[derive(Deserialize)]
struct OutputMessage<'a> {
    #[serde(borrow, default)]
    content: Vec<OutputBlock<'a>>,
}

/// One content block; kinds without an OpenAI counterpart (reasoning, citations) are skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutputBlock<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_use: Option<OutputToolUse<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutputToolUse<'a> {
    #[serde(borrow)]
    tool_use_id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    input: &'a RawValue,
}

/// Converse's `usage`. `inputTokens` counts only the input read neither from nor into the prompt
/// cache; OpenAI's `prompt_tokens` counts all of it.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_write_input_tokens: Option<u64>,
}

impl TokenUsage {
    pub fn to_openai(self) -> Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt = self.input_tokens + cached + self.cache_write_input_tokens.unwrap_or(0);
        let details = (self.cache_read_input_tokens.is_some() || self.cache_write_input_tokens.is_some())
            .then(|| PromptTokensDetails { cached_tokens: Some(cached), extra: Default::default() });
        Usage {
            prompt_tokens: prompt,
            completion_tokens: self.output_tokens,
            total_tokens: prompt + self.output_tokens,
            prompt_tokens_details: details,
            completion_tokens_details: None,
        }
    }
}

/// Converse's `stopReason` in OpenAI's words. In JSON mode the forced tool call is the answer, so
/// it ends as a stop.
pub fn finish_reason(stop_reason: &str, json_mode: bool) -> FinishReason {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" if json_mode => FinishReason::Stop,
        "tool_use" => FinishReason::ToolCalls,
        "guardrail_intervened" | "content_filtered" => FinishReason::ContentFilter,
        // end_turn, stop_sequence, and reasons added later.
        _ => FinishReason::Stop,
    }
}

/// The `chat.completion` body of a Converse answer, and its usage.
pub fn completion(
    provider: &str,
    model: &str,
    body: &[u8],
    json_mode: bool,
) -> Result<(bytes::Bytes, Option<Usage>), ProviderError> {
    let response: ConverseResponse<'_> = serde_json::from_slice(body)
        .map_err(|e| ProviderError::invalid_response(provider, format!("not a Converse answer: {e}")))?;
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in response.output.message.into_iter().flat_map(|m| m.content) {
        if let Some(piece) = block.text {
            text.get_or_insert_default().push_str(&piece);
        }
        if let Some(tool) = block.tool_use {
            if json_mode {
                // The forced tool's input is the JSON answer, as written.
                text.get_or_insert_default().push_str(tool.input.get());
            } else {
                tool_calls.push(ToolCall {
                    id: tool.tool_use_id.into_owned(),
                    kind: "function".to_owned(),
                    function: FunctionCall { name: tool.name.into_owned(), arguments: tool.input.get().to_owned() },
                });
            }
        }
    }
    let usage = response.usage.map(TokenUsage::to_openai);
    let finish = finish_reason(&response.stop_reason, json_mode);
    let message = Message { content: text, tool_calls, ..Message::default() };
    let id = completion_id();
    let body = Completion::new(&id, model, unix_now(), [(message, Some(finish))], usage.clone()).to_bytes();
    Ok((body, usage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn translate(body: Value, json_mode: bool) -> Value {
        let (bytes, _) = completion("b", "model-x", body.to_string().as_bytes(), json_mode).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn text_and_usage_with_cache_reads() {
        let out = translate(
            json!({
                "output": {"message": {"role": "assistant", "content": [{"text": "Hello"}, {"text": " there"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 115, "cacheReadInputTokens": 100, "cacheWriteInputTokens": 0},
                "metrics": {"latencyMs": 300}
            }),
            false,
        );
        assert_eq!(out["object"], "chat.completion");
        assert_eq!(out["model"], "model-x");
        assert_eq!(
            out["choices"][0]["message"],
            json!({"role": "assistant", "content": "Hello there", "refusal": null})
        );
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 110, "completion_tokens": 5, "total_tokens": 115, "prompt_tokens_details": {"cached_tokens": 100}})
        );
    }

    #[test]
    fn tool_calls_keep_their_ids_and_input() {
        let out = translate(
            json!({
                "output": {"message": {"role": "assistant", "content": [
                    {"text": "Let me check."},
                    {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "get_weather", "input": {"city": "Paris"}}}
                ]}},
                "stopReason": "tool_use",
                "usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3}
            }),
            false,
        );
        let choice = &out["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Let me check.");
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([{"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])
        );
        assert_eq!(out["usage"], json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}));
    }

    #[test]
    fn json_mode_answers_with_the_forced_tools_input() {
        let out = translate(
            json!({
                "output": {"message": {"role": "assistant", "content": [
                    {"toolUse": {"toolUseId": "t", "name": "json_object", "input": {"a": 1}}}
                ]}},
                "stopReason": "tool_use"
            }),
            true,
        );
        assert_eq!(out["choices"][0]["message"]["content"], "{\"a\":1}");
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert!(out["choices"][0]["message"].get("tool_calls").is_none());
    }

    #[test]
    fn stop_reasons() {
        for (reason, expected) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("guardrail_intervened", FinishReason::ContentFilter),
            ("content_filtered", FinishReason::ContentFilter),
        ] {
            assert_eq!(finish_reason(reason, false), expected, "{reason}");
        }
    }

    #[test]
    fn a_body_that_is_not_a_converse_answer_is_an_invalid_response() {
        let err = completion("b", "m", b"{\"foo\":1}", false).unwrap_err();
        assert!(matches!(err, ProviderError::InvalidResponse { .. }), "{err:?}");
    }
}
