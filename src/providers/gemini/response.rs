//! `GenerateContentResponse` (whole, or one stream event of it) read with borrowed fields, and the
//! whole answer in OpenAI's `chat.completion` shape.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::openai::Usage;
use crate::openai::chat::{FunctionCall, ToolCall};
use crate::openai::usage::PromptTokensDetails;
use crate::providers::native::{self, Completion, FinishReason, Message};

pub use crate::providers::native::Str;
use crate::providers::native::{Few, Skip};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse<'a> {
    #[serde(default, borrow)]
    pub candidates: Few<Candidate<'a>>,
    #[serde(default, borrow)]
    pub prompt_feedback: Option<PromptFeedback<'a>>,
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(default, borrow)]
    pub model_version: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub response_id: Option<Str<'a>>,
    /// An error sent as a stream event.
    #[serde(default, borrow)]
    pub error: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate<'a> {
    #[serde(default, borrow)]
    pub content: Option<CandidateContent<'a>>,
    #[serde(default, borrow)]
    pub finish_reason: Option<Str<'a>>,
    /// Left out for the first candidate (protobuf's default).
    #[serde(default)]
    pub index: u32,
    // Not read; declared so that skipping them allocates nothing (see `Skip`).
    #[serde(default)]
    #[allow(dead_code, reason = "declared to be skipped without allocating")]
    safety_ratings: Skip,
    #[serde(default)]
    #[allow(dead_code, reason = "declared to be skipped without allocating")]
    citation_metadata: Skip,
    #[serde(default)]
    #[allow(dead_code, reason = "declared to be skipped without allocating")]
    grounding_metadata: Skip,
    #[serde(default)]
    #[allow(dead_code, reason = "declared to be skipped without allocating")]
    logprobs_result: Skip,
    #[serde(default)]
    #[allow(dead_code, reason = "declared to be skipped without allocating")]
    url_context_metadata: Skip,
}

#[derive(Debug, Deserialize)]
pub struct CandidateContent<'a> {
    #[serde(default, borrow)]
    pub parts: Few<Part<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part<'a> {
    /// The JSON string literal as sent, copied into chunks as it is.
    #[serde(default, borrow)]
    pub text: Option<&'a RawValue>,
    /// A thought summary rather than the answer.
    #[serde(default)]
    pub thought: bool,
    #[serde(default, borrow)]
    pub function_call: Option<FunctionCallPart<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct FunctionCallPart<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(default, borrow)]
    pub args: Option<&'a RawValue>,
    /// Set by some models; otherwise an id is made up.
    #[serde(default, borrow)]
    pub id: Option<Str<'a>>,
}

impl FunctionCallPart<'_> {
    pub fn id(&self) -> String {
        self.id.as_ref().map(Str::as_str).map_or_else(native::tool_call_id, str::to_owned)
    }

    /// The arguments as compact JSON text (`{}` when there are none).
    pub fn arguments(&self) -> String {
        self.args.map_or_else(|| "{}".to_owned(), |args| compact_json(args.get()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback<'a> {
    #[serde(default, borrow)]
    pub block_reason: Option<Str<'a>>,
}

impl GenerateContentResponse<'_> {
    /// Whether the prompt itself was blocked, so that no candidate came.
    pub fn is_blocked(&self) -> bool {
        self.candidates.is_empty() && self.prompt_feedback.as_ref().is_some_and(|f| f.block_reason.is_some())
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    #[serde(default)]
    pub thoughts_token_count: u64,
    #[serde(default)]
    pub tool_use_prompt_token_count: u64,
    #[serde(default)]
    pub cached_content_token_count: Option<u64>,
    #[serde(default)]
    pub total_token_count: Option<u64>,
    // Per-modality breakdowns: not read; declared so that skipping them allocates nothing.
    #[serde(default)]
    #[allow(dead_code, reason = "declared to be skipped without allocating")]
    prompt_tokens_details: Skip,
    #[serde(default)]
    #[allow(dead_code, reason = "declared to be skipped without allocating")]
    candidates_tokens_details: Skip,
    #[serde(default)]
    #[allow(dead_code, reason = "declared to be skipped without allocating")]
    cache_tokens_details: Skip,
    #[serde(default)]
    #[allow(dead_code, reason = "declared to be skipped without allocating")]
    tool_use_prompt_tokens_details: Skip,
}

impl UsageMetadata {
    /// OpenAI's usage: thinking counts as completion (it is billed as output), the tool-use prompt
    /// as prompt; cached tokens are part of the prompt count, as OpenAI counts them.
    pub fn usage(&self) -> Usage {
        let prompt_tokens = self.prompt_token_count + self.tool_use_prompt_token_count;
        let completion_tokens = self.candidates_token_count + self.thoughts_token_count;
        let completion_tokens_details = (self.thoughts_token_count > 0)
            .then(|| serde_json::Map::from_iter([("reasoning_tokens".to_owned(), self.thoughts_token_count.into())]));
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: self.total_token_count.unwrap_or(prompt_tokens + completion_tokens),
            prompt_tokens_details: self
                .cached_content_token_count
                .map(|cached| PromptTokensDetails { cached_tokens: Some(cached), ..PromptTokensDetails::default() }),
            completion_tokens_details,
        }
    }
}

/// A candidate's `finishReason` in OpenAI's words; `STOP` after function calls is `tool_calls`.
pub fn finish_reason(reason: &str, called_tools: bool) -> FinishReason {
    match reason {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        _ if called_tools => FinishReason::ToolCalls,
        // STOP, and the reasons OpenAI has no word for (OTHER, MALFORMED_FUNCTION_CALL, …).
        _ => FinishReason::Stop,
    }
}

/// The answer's id: Google's response id where it sent one.
pub fn completion_id(response_id: Option<&str>) -> String {
    response_id.map_or_else(native::completion_id, |id| format!("chatcmpl-{id}"))
}

/// A whole answer in OpenAI's shape, with its usage. `n` is how many choices were asked for (a
/// blocked prompt answers each with an empty, filtered choice).
pub fn completion(
    response: &GenerateContentResponse<'_>,
    model: &str,
    n: u32,
) -> Result<(Bytes, Option<Usage>), String> {
    let mut choices: Vec<(u32, Message, Option<FinishReason>)> = Vec::with_capacity(response.candidates.len());
    for candidate in &response.candidates {
        let mut text: Option<String> = None;
        let mut tool_calls = Vec::new();
        for part in candidate.content.iter().flat_map(|c| &c.parts) {
            if part.thought {
                continue;
            }
            if let Some(raw) = part.text {
                let piece: Cow<'_, str> =
                    serde_json::from_str(raw.get()).map_err(|e| format!("a text part is not a string: {e}"))?;
                text.get_or_insert_default().push_str(&piece);
            }
            if let Some(call) = &part.function_call {
                tool_calls.push(ToolCall {
                    id: call.id(),
                    kind: "function".to_owned(),
                    function: FunctionCall { name: call.name.clone().into_owned(), arguments: call.arguments() },
                });
            }
        }
        let finish =
            candidate.finish_reason.as_ref().map(Str::as_str).map(|r| finish_reason(r, !tool_calls.is_empty()));
        // No text and no call (a filtered candidate): empty content, as OpenAI answers a filter.
        let content = if text.is_none() && tool_calls.is_empty() { Some(String::new()) } else { text };
        choices.push((candidate.index, Message { content, tool_calls, ..Message::default() }, finish));
    }
    if response.is_blocked() {
        choices.extend((0..n.max(1)).map(|i| {
            (i, Message { content: Some(String::new()), ..Message::default() }, Some(FinishReason::ContentFilter))
        }));
    }
    if choices.is_empty() {
        return Err("the answer has no candidates".to_owned());
    }
    choices.sort_by_key(|(index, _, _)| *index);
    let usage = response.usage_metadata.map(|m| m.usage());
    let id = completion_id(response.response_id.as_ref().map(Str::as_str));
    let model = response.model_version.as_ref().map(Str::as_str).unwrap_or(model);
    let body = Completion::new(
        &id,
        model,
        native::unix_now(),
        choices.into_iter().map(|(_, message, finish)| (message, finish)),
        usage.clone(),
    )
    .to_bytes();
    Ok((body, usage))
}

/// JSON text without the whitespace between tokens (Google pretty-prints its answers; OpenAI's
/// tool-call arguments are compact).
pub fn compact_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !c.is_ascii_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn translate(body: Value, n: u32) -> (Value, Option<Usage>) {
        let text = serde_json::to_string_pretty(&body).unwrap();
        let response: GenerateContentResponse<'_> = serde_json::from_str(&text).unwrap();
        let (bytes, usage) = completion(&response, "gemini-x", n).unwrap();
        (serde_json::from_slice(&bytes).unwrap(), usage)
    }

    #[test]
    fn text_tool_calls_and_usage() {
        let (answer, usage) = translate(
            json!({
                "candidates": [{
                    "content": {"role": "model", "parts": [
                        {"text": "thinking…", "thought": true},
                        {"text": "Let me check "},
                        {"text": "the \"weather\"."},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "days": [1, 2]}}}
                    ]},
                    "finishReason": "STOP", "avgLogprobs": -0.1
                }],
                "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 20, "thoughtsTokenCount": 5,
                    "cachedContentTokenCount": 64, "totalTokenCount": 125},
                "modelVersion": "gemini-2.5-flash", "responseId": "abc"
            }),
            1,
        );
        assert_eq!(answer["id"], "chatcmpl-abc");
        assert_eq!(answer["model"], "gemini-2.5-flash");
        let choice = &answer["choices"][0];
        assert_eq!(choice["message"]["content"], "Let me check the \"weather\".");
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"],
            json!({"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"days\":[1,2]}"})
        );
        assert!(choice["message"]["tool_calls"][0]["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(
            answer["usage"],
            json!({"prompt_tokens": 100, "completion_tokens": 25, "total_tokens": 125,
                "prompt_tokens_details": {"cached_tokens": 64}, "completion_tokens_details": {"reasoning_tokens": 5}})
        );
        assert_eq!(usage.unwrap().completion_tokens, 25);
    }

    #[test]
    fn several_candidates_and_finish_reasons() {
        let (answer, _) = translate(
            json!({"candidates": [
                {"content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS", "index": 1},
                {"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"},
                {"finishReason": "SAFETY", "index": 2}
            ]}),
            3,
        );
        let choices = answer["choices"].as_array().unwrap();
        let summary: Vec<(Value, Value, Value)> = choices
            .iter()
            .map(|c| (c["index"].clone(), c["message"]["content"].clone(), c["finish_reason"].clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (json!(0), json!("a"), json!("stop")),
                (json!(1), json!("b"), json!("length")),
                (json!(2), json!(""), json!("content_filter"))
            ]
        );
    }

    #[test]
    fn a_blocked_prompt_is_a_filtered_answer() {
        let (answer, _) = translate(
            json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}, "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}),
            1,
        );
        assert_eq!(answer["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(answer["choices"][0]["message"]["content"], "");
        assert_eq!(answer["usage"]["prompt_tokens"], 7);
    }

    #[test]
    fn names_and_reasons_are_borrowed_from_the_event() {
        let text = r#"{"candidates":[{"finishReason":"STOP"}],"modelVersion":"gemini-2.5-flash","responseId":"r"}"#;
        let response: GenerateContentResponse<'_> = serde_json::from_str(text).unwrap();
        assert!(matches!(response.model_version.unwrap().0, Cow::Borrowed("gemini-2.5-flash")));
        assert!(matches!(
            response.candidates.iter().next().unwrap().finish_reason.as_ref().unwrap().0,
            Cow::Borrowed("STOP")
        ));
        let escaped: GenerateContentResponse<'_> = serde_json::from_str(r#"{"responseId":"a\u0062"}"#).unwrap();
        assert_eq!(escaped.response_id.unwrap().as_str(), "ab");
    }

    #[test]
    fn compacting_keeps_strings_intact() {
        assert_eq!(
            compact_json("{\n  \"a b\": \"x \\\" y\",\n  \"c\": [1, 2]\n}"),
            "{\"a b\":\"x \\\" y\",\"c\":[1,2]}"
        );
    }
}
