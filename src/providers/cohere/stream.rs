//! Cohere's chat stream (SSE events whose JSON carries a `type`) as OpenAI chunks.
//!
//! - `message-start`: the answer's id; the role chunk.
//! - `content-delta`: a piece of text (`delta.message.content.text`), copied as the JSON string it
//!   is. Reasoning models' `thinking` pieces have no place in OpenAI's chunks and are skipped.
//! - `tool-call-start`: a tool call's id, name and first piece of arguments; `tool-call-delta`: more
//!   argument pieces, passed on one by one.
//! - `tool-plan-delta` (the model's plan before calling tools), `content-start`/`-end`,
//!   `tool-call-end`, `citation-start`/`-end` and `debug`: nothing OpenAI shows.
//! - `message-end`: the finish reason and usage; `ERROR` and `TIMEOUT` end the stream with an
//!   error, as does an `error` event.
//!
//! A stream that closes before `message-end` was cut short: an error, not a short answer.

use std::borrow::Cow;
use std::collections::VecDeque;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::stream_error;
use super::response::{CohereUsage, Ending, ending};
use crate::providers::ProviderError;
use crate::providers::native::{ChunkWriter, Str, Text, Translate, completion_id, tool_call_id};
use crate::providers::sse::SseEvent;

pub struct CohereStream {
    provider: String,
    secret: Option<String>,
    model: String,
    created: u64,
    /// Made at `message-start`, which names the answer.
    writer: Option<ChunkWriter>,
    /// Cohere's index of each tool call started so far; its position is the OpenAI index.
    tool_calls: Vec<u32>,
    ended: bool,
}

impl CohereStream {
    pub fn new(provider: String, secret: Option<String>, model: String, created: u64) -> Self {
        Self { provider, secret, model, created, writer: None, tool_calls: Vec::new(), ended: false }
    }

    /// The chunk writer, with the role chunk sent first if it was not yet.
    fn writer(&mut self, id: Option<&str>, out: &mut VecDeque<Bytes>) -> &ChunkWriter {
        let (model, created) = (&self.model, self.created);
        self.writer.get_or_insert_with(|| {
            let writer = match id {
                Some(id) => ChunkWriter::new(id, model, created),
                None => ChunkWriter::new(&completion_id(), model, created),
            };
            out.push_back(writer.role(0));
            writer
        })
    }

    fn invalid(&self, detail: impl Into<String>) -> ProviderError {
        ProviderError::invalid_response(&self.provider, detail)
    }
}

/// The fields every event may have; `delta` is read per event type.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(default)]
    index: Option<u32>,
    #[serde(borrow, default)]
    delta: Option<&'a RawValue>,
    /// An `error` event's message.
    #[serde(borrow, default)]
    message: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct ContentDelta<'a> {
    #[serde(borrow)]
    message: ContentMessage<'a>,
}

#[derive(Deserialize)]
struct ContentMessage<'a> {
    #[serde(borrow)]
    content: ContentPiece<'a>,
}

#[derive(Deserialize)]
struct ContentPiece<'a> {
    /// Absent on text pieces; `thinking` on a reasoning model's thoughts.
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ToolCallDelta<'a> {
    #[serde(borrow)]
    message: ToolCallMessage<'a>,
}

#[derive(Deserialize)]
struct ToolCallMessage<'a> {
    #[serde(borrow)]
    tool_calls: ToolCallPiece<'a>,
}

#[derive(Deserialize)]
struct ToolCallPiece<'a> {
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    function: FunctionPiece<'a>,
}

#[derive(Deserialize)]
struct FunctionPiece<'a> {
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct MessageEnd<'a> {
    #[serde(borrow, default)]
    finish_reason: Option<Str<'a>>,
    #[serde(default)]
    usage: Option<CohereUsage>,
    #[serde(borrow, default)]
    error: Option<Str<'a>>,
}

/// A `content-delta` or `tool-call-delta` event, read whole.
#[derive(Deserialize)]
struct DeltaEvent<T> {
    #[serde(default)]
    index: Option<u32>,
    delta: T,
}

impl CohereStream {
    fn content(&mut self, content: ContentPiece<'_>, out: &mut VecDeque<Bytes>) {
        if content.kind.as_deref().is_some_and(|kind| kind != "text") {
            return;
        }
        if let Some(text) = content.text.and_then(Text::json).filter(|text| !text.is_empty()) {
            let chunk = self.writer(None, out).content(0, text);
            out.push_back(chunk);
        }
    }

    fn tool_arguments(
        &mut self,
        index: Option<u32>,
        piece: ToolCallDelta<'_>,
        out: &mut VecDeque<Bytes>,
    ) -> Result<(), ProviderError> {
        // The call with the event's index; without one, the latest call.
        let tool = match index {
            Some(index) => self.tool_calls.iter().rposition(|i| *i == index),
            None => self.tool_calls.len().checked_sub(1),
        }
        .ok_or_else(|| self.invalid("tool-call-delta before its tool-call-start"))?;
        if let Some(arguments) = piece.message.tool_calls.function.arguments.and_then(Text::json)
            && !arguments.is_empty()
        {
            let chunk = self.writer(None, out).tool_arguments(0, tool as u32, arguments);
            out.push_back(chunk);
        }
        Ok(())
    }
}

impl Translate for CohereStream {
    type Event = SseEvent;

    fn event(&mut self, sse: SseEvent, out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
        if self.ended {
            return Ok(());
        }
        // The two events a stream is made of, read in one pass by their SSE name: the general path
        // below captures `delta` raw first, which costs serde_json a scratch allocation per event.
        match sse.event.as_deref() {
            Some(b"content-delta") => {
                let event: DeltaEvent<ContentDelta> =
                    serde_json::from_slice(&sse.data).map_err(|e| self.invalid(format!("content-delta: {e}")))?;
                self.content(event.delta.message.content, out);
                return Ok(());
            }
            Some(b"tool-call-delta") => {
                let event: DeltaEvent<ToolCallDelta> =
                    serde_json::from_slice(&sse.data).map_err(|e| self.invalid(format!("tool-call-delta: {e}")))?;
                return self.tool_arguments(event.index, event.delta, out);
            }
            _ => {}
        }
        let event: Event = serde_json::from_slice(&sse.data)
            .map_err(|e| self.invalid(format!("a stream event that is not Cohere's: {e}")))?;
        let delta = |what: &str| {
            event.delta.map(RawValue::get).ok_or_else(|| self.invalid(format!("`{what}` without a delta")))
        };
        match &*event.kind {
            "message-start" => {
                self.writer(event.id.as_deref(), out);
            }
            "content-delta" => {
                let piece: ContentDelta = serde_json::from_str(delta("content-delta")?)
                    .map_err(|e| self.invalid(format!("content-delta: {e}")))?;
                self.content(piece.message.content, out);
            }
            "tool-call-start" => {
                let piece: ToolCallDelta = serde_json::from_str(delta("tool-call-start")?)
                    .map_err(|e| self.invalid(format!("tool-call-start: {e}")))?;
                let call = piece.message.tool_calls;
                let name = call.function.name.ok_or_else(|| self.invalid("a tool call without a name"))?;
                let id = call.id.unwrap_or_else(|| Str(tool_call_id().into()));
                let arguments = call.function.arguments.and_then(Text::json).unwrap_or(Text::Plain(""));
                let tool = self.tool_calls.len() as u32;
                self.tool_calls.push(event.index.unwrap_or(tool));
                let chunk = self.writer(None, out).tool_call(0, tool, &id, &name, arguments);
                out.push_back(chunk);
            }
            "tool-call-delta" => {
                let piece: ToolCallDelta = serde_json::from_str(delta("tool-call-delta")?)
                    .map_err(|e| self.invalid(format!("tool-call-delta: {e}")))?;
                self.tool_arguments(event.index, piece, out)?;
            }
            "message-end" => {
                let end: MessageEnd = match event.delta {
                    Some(delta) => {
                        serde_json::from_str(delta.get()).map_err(|e| self.invalid(format!("message-end: {e}")))?
                    }
                    None => MessageEnd { finish_reason: None, usage: None, error: None },
                };
                self.ended = true;
                let reason = match ending(end.finish_reason.as_deref()) {
                    Ending::Finished(reason) => reason,
                    Ending::Failed { timeout } => {
                        return Err(stream_error(
                            &self.provider,
                            timeout,
                            end.error.as_deref(),
                            self.secret.as_deref(),
                        ));
                    }
                };
                let writer = self.writer(None, out);
                let finish = writer.finish(0, reason);
                let usage = end.usage.as_ref().and_then(CohereUsage::to_openai).map(|usage| writer.usage(&usage));
                out.push_back(finish);
                out.extend(usage);
            }
            "error" => {
                self.ended = true;
                return Err(stream_error(&self.provider, false, event.message.as_deref(), self.secret.as_deref()));
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
        if self.ended { Ok(()) } else { Err(self.invalid("the stream ended before `message-end`")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use serde_json::{Value, json};

    /// Runs `events` (JSON data, each sent with its SSE event name) through the translator.
    async fn run(events: &[Value]) -> Vec<Result<Value, ProviderError>> {
        let events: Vec<Result<SseEvent, ProviderError>> = events
            .iter()
            .map(|data| {
                Ok(SseEvent {
                    event: data["type"].as_str().map(|t| Bytes::from(t.to_owned())),
                    data: Bytes::from(data.to_string()),
                })
            })
            .collect();
        let translator = CohereStream::new("cohere".into(), Some("test-key".into()), "command-a".into(), 7);
        crate::providers::native::translated(futures_util::stream::iter(events), translator)
            .map(|item| item.map(|chunk| serde_json::from_slice(&chunk).unwrap()))
            .collect()
            .await
    }

    fn deltas(chunks: &[Result<Value, ProviderError>]) -> Vec<Value> {
        chunks
            .iter()
            .map(|c| {
                let c = c.as_ref().unwrap();
                if c["choices"].as_array().unwrap().is_empty() {
                    json!({"usage": c["usage"]})
                } else if !c["choices"][0]["finish_reason"].is_null() {
                    json!({"finish": c["choices"][0]["finish_reason"]})
                } else {
                    c["choices"][0]["delta"].clone()
                }
            })
            .collect()
    }

    fn start() -> Value {
        json!({"id": "29f14a5a-11de-4cae-9800-25e4747408ea", "type": "message-start", "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}})
    }

    fn end(reason: &str) -> Value {
        json!({"type": "message-end", "delta": {"finish_reason": reason, "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 2}, "tokens": {"input_tokens": 69, "output_tokens": 2}, "cached_tokens": 64}}})
    }

    #[tokio::test]
    async fn text_then_finish_then_usage() {
        let chunks = run(&[
            start(),
            json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
            json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hello \"w\u{e9}\""}}}}),
            json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"type": "thinking", "thinking": "hidden"}}}}),
            json!({"type": "citation-start", "index": 0, "delta": {"message": {"citations": {"start": 0, "end": 5, "text": "Hello", "sources": []}}}}),
            json!({"type": "citation-end", "index": 0}),
            json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "!"}}}}),
            json!({"type": "content-end", "index": 0}),
            json!({"type": "debug", "prompt": "..."}),
            end("COMPLETE"),
        ])
        .await;
        assert_eq!(chunks[0].as_ref().unwrap()["id"], "29f14a5a-11de-4cae-9800-25e4747408ea");
        assert_eq!(chunks[0].as_ref().unwrap()["model"], "command-a");
        assert_eq!(
            deltas(&chunks),
            [
                json!({"role": "assistant", "content": ""}),
                json!({"content": "Hello \"w\u{e9}\""}),
                json!({"content": "!"}),
                json!({"finish": "stop"}),
                json!({"usage": {"prompt_tokens": 69, "completion_tokens": 2, "total_tokens": 71, "prompt_tokens_details": {"cached_tokens": 64}}}),
            ]
        );
    }

    #[tokio::test]
    async fn tool_calls_stream_their_arguments_piece_by_piece() {
        let call = |index: u32, id: &str, name: &str| json!({"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": {"id": id, "type": "function", "function": {"name": name, "arguments": ""}}}}});
        let args = |index: u32, piece: &str| json!({"type": "tool-call-delta", "index": index, "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}}});
        let chunks = run(&[
            start(),
            json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will check."}}}),
            call(0, "get_weather_nsz5zm3w56q3", "get_weather"),
            args(0, "{\n    \""),
            args(0, "location\": \"Oslo\"}"),
            json!({"type": "tool-call-end", "index": 0}),
            call(1, "get_time_abc", "get_time"),
            args(1, "{}"),
            json!({"type": "tool-call-end", "index": 1}),
            end("TOOL_CALL"),
        ])
        .await;
        assert_eq!(
            deltas(&chunks)[..7],
            [
                json!({"role": "assistant", "content": ""}),
                json!({"tool_calls": [{"index": 0, "id": "get_weather_nsz5zm3w56q3", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\n    \""}}]}),
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "location\": \"Oslo\"}"}}]}),
                json!({"tool_calls": [{"index": 1, "id": "get_time_abc", "type": "function", "function": {"name": "get_time", "arguments": ""}}]}),
                json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
                json!({"finish": "tool_calls"}),
            ]
        );
    }

    #[tokio::test]
    async fn a_cut_stream_is_an_error_after_what_came() {
        let chunks = run(&[
            start(),
            json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hel"}}}}),
        ])
        .await;
        assert_eq!(chunks.len(), 3);
        assert!(
            matches!(&chunks[2], Err(ProviderError::InvalidResponse { detail, .. }) if detail.contains("message-end"))
        );
    }

    #[tokio::test]
    async fn error_endings_and_error_events() {
        let failed =
            json!({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "internal failure test-key"}});
        let chunks = run(&[start(), failed]).await;
        let Err(ProviderError::Upstream(e)) = &chunks[1] else { panic!("{chunks:?}") };
        assert_eq!(e.status, 500);
        assert!(e.message.contains("internal failure") && !e.message.contains("test-key"), "{}", e.message);

        let chunks = run(&[start(), json!({"type": "message-end", "delta": {"finish_reason": "TIMEOUT"}})]).await;
        assert!(matches!(&chunks[1], Err(ProviderError::Upstream(e)) if e.status == 504));

        let chunks = run(&[start(), json!({"type": "error", "message": "overloaded"})]).await;
        assert!(matches!(&chunks[1], Err(ProviderError::Upstream(e)) if e.message == "overloaded"));

        let chunks = run(&[start(), json!({"type": "tool-call-delta", "index": 3, "delta": {"message": {"tool_calls": {"function": {"arguments": "{"}}}}})]).await;
        assert!(matches!(&chunks[1], Err(ProviderError::InvalidResponse { .. })));
    }

    #[tokio::test]
    async fn finish_without_start_still_opens_with_the_role_and_max_tokens_is_length() {
        let chunks = run(&[end("MAX_TOKENS")]).await;
        let d = deltas(&chunks);
        assert_eq!(d[0], json!({"role": "assistant", "content": ""}));
        assert_eq!(d[1], json!({"finish": "length"}));
        assert!(chunks[0].as_ref().unwrap()["id"].as_str().unwrap().starts_with("chatcmpl-"));
    }
}
