//! `streamGenerateContent?alt=sse` events to OpenAI chunks. Each `data:` is a whole
//! `GenerateContentResponse` holding the next piece of each candidate: text parts become content
//! deltas, function calls arrive whole and become one tool-call chunk each, a candidate's
//! `finishReason` ends its choice, and the last `usageMetadata` is the usage. The stream has no end
//! event: one that closes before any choice finished was cut short.

use std::collections::VecDeque;

use bytes::Bytes;

use super::error::stream_error;
use super::response::{GenerateContentResponse, Str, UsageMetadata, completion_id, finish_reason};
use crate::providers::ProviderError;
use crate::providers::native::{ChunkWriter, FinishReason, Text, Translate, unix_now};
use crate::providers::sse::SseEvent;

pub struct GeminiStream {
    provider: String,
    /// Scrubbed from in-stream error messages.
    secret: Option<String>,
    model: String,
    /// Choices asked for: a blocked prompt ends each of them.
    n: u32,
    /// Made from the first event, which carries the response id.
    writer: Option<ChunkWriter>,
    /// Per choice (candidate index).
    choices: Vec<ChoiceState>,
    usage: Option<UsageMetadata>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ChoiceState {
    started: bool,
    /// Tool calls so far: the next one's OpenAI index.
    tools: u32,
    finished: bool,
}

impl GeminiStream {
    pub fn new(provider: &str, secret: Option<&str>, model: &str, n: u32) -> Self {
        Self {
            provider: provider.to_owned(),
            secret: secret.map(str::to_owned),
            model: model.to_owned(),
            n: n.max(1),
            writer: None,
            choices: Vec::new(),
            usage: None,
        }
    }

    fn choice(&mut self, index: u32) -> &mut ChoiceState {
        let index = index as usize;
        if self.choices.len() <= index {
            self.choices.resize(index + 1, ChoiceState::default());
        }
        &mut self.choices[index]
    }
}

impl Translate for GeminiStream {
    type Event = SseEvent;

    fn event(&mut self, event: SseEvent, out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
        let response: GenerateContentResponse<'_> = serde_json::from_slice(&event.data).map_err(|e| {
            ProviderError::invalid_response(
                &self.provider,
                format!("a stream event is not a GenerateContentResponse: {e}"),
            )
        })?;
        if let Some(error) = response.error {
            return Err(stream_error(&self.provider, error, self.secret.as_deref()));
        }
        let writer = self.writer.get_or_insert_with(|| {
            let id = completion_id(response.response_id.as_ref().map(Str::as_str));
            let model = response.model_version.as_ref().map_or(self.model.as_str(), Str::as_str);
            ChunkWriter::new(&id, model, unix_now())
        });
        // Cheap to clone (shared bytes); frees `self` for the per-choice state.
        let writer = writer.clone();
        if let Some(usage) = response.usage_metadata {
            self.usage = Some(usage);
        }
        if response.is_blocked() {
            for index in 0..self.n {
                let state = self.choice(index);
                if state.finished {
                    continue;
                }
                if !state.started {
                    out.push_back(writer.role(index));
                }
                *state = ChoiceState { started: true, finished: true, ..*state };
                out.push_back(writer.finish(index, FinishReason::ContentFilter));
            }
            return Ok(());
        }
        for candidate in &response.candidates {
            let index = candidate.index;
            let state = self.choice(index);
            if !state.started {
                state.started = true;
                out.push_back(writer.role(index));
            }
            for part in candidate.content.iter().flat_map(|c| &c.parts) {
                if part.thought {
                    continue;
                }
                if let Some(text) = part.text.and_then(Text::json).filter(|t| !t.is_empty()) {
                    out.push_back(writer.content(index, text));
                }
                if let Some(call) = &part.function_call {
                    let arguments = call.arguments();
                    out.push_back(writer.tool_call(
                        index,
                        state.tools,
                        &call.id(),
                        &call.name,
                        Text::Plain(&arguments),
                    ));
                    state.tools += 1;
                }
            }
            if let Some(reason) = &candidate.finish_reason
                && !state.finished
            {
                state.finished = true;
                out.push_back(writer.finish(index, finish_reason(reason.as_str(), state.tools > 0)));
            }
        }
        Ok(())
    }

    fn end(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
        let started = self.choices.iter().filter(|c| c.started).count();
        let finished = self.choices.iter().filter(|c| c.started && c.finished).count();
        if started == 0 || finished < started {
            return Err(ProviderError::invalid_response(&self.provider, "the stream ended before a finish reason"));
        }
        if let (Some(writer), Some(usage)) = (&self.writer, &self.usage) {
            out.push_back(writer.usage(&usage.usage()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn run(events: &[Value], n: u32) -> (Vec<Value>, Result<(), ProviderError>) {
        let mut translator = GeminiStream::new("gemini", Some("AIzaSECRET"), "gemini-x", n);
        let mut out = VecDeque::new();
        for event in events {
            let event = SseEvent { event: None, data: Bytes::from(event.to_string()) };
            if let Err(e) = translator.event(event, &mut out) {
                return (parse(out), Err(e));
            }
        }
        let end = translator.end(&mut out);
        (parse(out), end)
    }

    fn parse(out: VecDeque<Bytes>) -> Vec<Value> {
        out.iter().map(|c| serde_json::from_slice(c).unwrap()).collect()
    }

    fn deltas(chunks: &[Value]) -> Vec<Value> {
        chunks
            .iter()
            .map(|c| match c["choices"].as_array().unwrap().first() {
                Some(choice) => json!([choice["index"], choice["delta"], choice["finish_reason"]]),
                None => json!({"usage": c["usage"]}),
            })
            .collect()
    }

    #[test]
    fn text_then_finish_then_usage() {
        let (chunks, end) = run(
            &[
                json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "1, 2,"}]}}], "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "modelVersion": "gemini-2.5-flash", "responseId": "r1"}),
                json!({"candidates": [{"content": {"role": "model", "parts": [{"text": " 3."}]}}], "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}),
                json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3, "totalTokenCount": 12}}),
            ],
            1,
        );
        end.unwrap();
        assert!(chunks.iter().all(|c| c["id"] == "chatcmpl-r1" && c["model"] == "gemini-2.5-flash"));
        assert_eq!(
            deltas(&chunks),
            [
                json!([0, {"role": "assistant", "content": ""}, null]),
                json!([0, {"content": "1, 2,"}, null]),
                json!([0, {"content": " 3."}, null]),
                json!([0, {}, "stop"]),
                json!({"usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}),
            ]
        );
    }

    #[test]
    fn function_calls_arrive_whole() {
        let (chunks, end) = run(
            &[json!({"candidates": [{"content": {"parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                {"functionCall": {"name": "get_time", "args": {}}}
            ]}, "finishReason": "STOP"}]})],
            1,
        );
        end.unwrap();
        let calls: Vec<Value> =
            chunks[1..3].iter().map(|c| c["choices"][0]["delta"]["tool_calls"][0].clone()).collect();
        assert_eq!(calls[0]["index"], 0);
        assert_eq!(calls[0]["function"], json!({"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}));
        assert_eq!(calls[1]["index"], 1);
        assert!(calls[1]["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks.len(), 4, "no usage was reported");
    }

    #[test]
    fn several_candidates_thoughts_and_a_filter() {
        let (chunks, end) = run(
            &[
                json!({"candidates": [{"content": {"parts": [{"text": "hmm", "thought": true}, {"text": "a"}]}}, {"content": {"parts": [{"text": "b"}]}, "index": 1}]}),
                json!({"candidates": [{"finishReason": "MAX_TOKENS"}, {"finishReason": "RECITATION", "index": 1}]}),
            ],
            2,
        );
        end.unwrap();
        assert_eq!(
            deltas(&chunks),
            [
                json!([0, {"role": "assistant", "content": ""}, null]),
                json!([0, {"content": "a"}, null]),
                json!([1, {"role": "assistant", "content": ""}, null]),
                json!([1, {"content": "b"}, null]),
                json!([0, {}, "length"]),
                json!([1, {}, "content_filter"]),
            ]
        );
    }

    #[test]
    fn a_blocked_prompt_ends_every_choice_filtered() {
        let (chunks, end) = run(
            &[
                json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4}}),
            ],
            1,
        );
        end.unwrap();
        assert_eq!(
            deltas(&chunks),
            [
                json!([0, {"role": "assistant", "content": ""}, null]),
                json!([0, {}, "content_filter"]),
                json!({"usage": {"prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4}}),
            ]
        );
    }

    #[test]
    fn a_stream_without_a_finish_reason_is_an_error() {
        let (chunks, end) = run(&[json!({"candidates": [{"content": {"parts": [{"text": "par"}]}}]})], 1);
        assert_eq!(chunks.len(), 2);
        assert!(matches!(end, Err(ProviderError::InvalidResponse { .. })));
        let (_, end) = run(&[], 1);
        assert!(matches!(end, Err(ProviderError::InvalidResponse { .. })));
    }

    #[test]
    fn an_error_event_is_an_upstream_error() {
        let (chunks, end) = run(
            &[
                json!({"candidates": [{"content": {"parts": [{"text": "a"}]}}]}),
                json!({"error": {"code": 429, "message": "Resource has been exhausted (key AIzaSECRET).", "status": "RESOURCE_EXHAUSTED"}}),
            ],
            1,
        );
        assert_eq!(chunks.len(), 2);
        let Err(ProviderError::Upstream(e)) = end else { panic!("{end:?}") };
        assert_eq!(e.status, http::StatusCode::TOO_MANY_REQUESTS);
        assert!(!e.message.contains("AIzaSECRET"));
    }

    /// Google's framing (`data: …` lines ended by CRLF pairs) through the shared SSE decoder.
    #[tokio::test]
    async fn through_the_sse_decoder() {
        use futures_util::StreamExt;
        let body = concat!(
            "data: {\"candidates\": [{\"content\": {\"role\": \"model\",\"parts\": [{\"text\": \"Hel\"}]}}],\"usageMetadata\": {\"trafficType\": \"ON_DEMAND\"}}\r\n\r\n",
            "data: {\"candidates\": [{\"content\": {\"role\": \"model\",\"parts\": [{\"text\": \"lo\\n\"}]},\"finishReason\": \"STOP\"}],",
            "\"usageMetadata\": {\"promptTokenCount\": 1,\"candidatesTokenCount\": 2,\"totalTokenCount\": 3}}\r\n\r\n",
        );
        let response = reqwest::Response::from(http::Response::new(body));
        let events = crate::providers::transport::sse_events("vertex".into(), response);
        let chunks: Vec<Value> =
            crate::providers::native::translated(events, GeminiStream::new("vertex", None, "m", 1))
                .map(|chunk| serde_json::from_slice(&chunk.unwrap()).unwrap())
                .collect()
                .await;
        assert_eq!(
            deltas(&chunks),
            [
                json!([0, {"role": "assistant", "content": ""}, null]),
                json!([0, {"content": "Hel"}, null]),
                json!([0, {"content": "lo\n"}, null]),
                json!([0, {}, "stop"]),
                json!({"usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}),
            ]
        );
    }
}
