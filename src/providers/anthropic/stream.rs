//! Anthropic's stream events as OpenAI chunks.
//!
//! `message_start` (id, model, input usage) -> the role chunk, sent with the first piece of the answer
//! so that an `error` event before any (Anthropic sends `overloaded_error` that way) fails the request
//! as a whole, which the gateway can still retry or fall back from; `content_block_start` of a `tool_use`
//! block -> a tool call's id and name; `content_block_delta`: `text_delta` -> content, and
//! `input_json_delta` -> that call's argument piece (in JSON mode: content); `message_delta` -> the
//! stop reason and output usage; `message_stop` -> the finish chunk, then the usage chunk. `ping`,
//! `content_block_stop`, thinking / signature / citation deltas and blocks of other types are
//! skipped; an `error` event ends the stream with that error; a stream closed before
//! `message_stop` is an error.

use std::borrow::Cow;
use std::collections::VecDeque;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::stream_error;
use super::request::JsonMode;
use super::response::{AnthropicUsage, finish_reason};
use crate::providers::ProviderError;
use crate::providers::native::{ChunkWriter, FinishReason, Str, Text, Translate, unix_now};
use crate::providers::sse::SseEvent;

/// How far past the blocks seen so far a new block's index may be.
const MAX_INDEX_GAP: usize = 64;

/// One event's `data`, read in place: every event type's fields in one flat struct, so serde skips
/// what an event does not have without building anything.
#[derive(Debug, Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: Option<usize>,
    #[serde(default, borrow)]
    message: Option<MessageStart<'a>>,
    #[serde(default, borrow)]
    content_block: Option<BlockStart<'a>>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Debug, Deserialize)]
struct MessageStart<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Debug, Deserialize)]
struct BlockStart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
    #[serde(default, borrow)]
    id: Option<Str<'a>>,
    #[serde(default, borrow)]
    name: Option<Str<'a>>,
}

/// A `content_block_delta`'s delta (`type` set) or a `message_delta`'s (`stop_reason`).
#[derive(Debug, Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Str<'a>>,
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
    #[serde(default, borrow)]
    partial_json: Option<&'a RawValue>,
    #[serde(default, borrow)]
    stop_reason: Option<Str<'a>>,
}

/// What a content block of the answer is, by its Anthropic index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    /// A tool call, by its OpenAI tool index.
    Tool(u32),
    /// The forced JSON-mode tool: its input is the answer's text.
    JsonAnswer,
    /// Thinking, server tool results, text around a JSON-mode answer: not part of the OpenAI answer.
    Skipped,
}

pub struct StreamTranslator {
    provider: String,
    /// Scrubbed from in-stream error messages.
    secret: Option<String>,
    json_mode: Option<JsonMode>,
    created: u64,
    /// Set by `message_start`: chunks need the message's id and model.
    writer: Option<ChunkWriter>,
    /// Whether the role chunk went out.
    opened: bool,
    /// Content blocks by index; reused for the whole stream.
    blocks: Vec<Block>,
    tool_calls: u32,
    stop_reason: Option<FinishReason>,
    usage: AnthropicUsage,
    finished: bool,
}

impl StreamTranslator {
    pub fn new(provider: String, secret: Option<String>, json_mode: Option<JsonMode>) -> Self {
        Self {
            provider,
            secret,
            json_mode,
            created: unix_now(),
            writer: None,
            opened: false,
            blocks: Vec::new(),
            tool_calls: 0,
            stop_reason: None,
            usage: AnthropicUsage::default(),
            finished: false,
        }
    }

    fn invalid(&self, detail: &str) -> ProviderError {
        ProviderError::invalid_response(&self.provider, detail)
    }

    /// The chunk writer, once the role chunk that must come first is out.
    fn writer(&mut self, out: &mut VecDeque<Bytes>) -> Result<&ChunkWriter, ProviderError> {
        let Some(writer) = &self.writer else {
            return Err(ProviderError::invalid_response(&self.provider, "content before message_start"));
        };
        if !self.opened {
            self.opened = true;
            out.push_back(writer.role(0));
        }
        Ok(writer)
    }

    fn block_start(
        &mut self,
        index: usize,
        block: BlockStart<'_>,
        out: &mut VecDeque<Bytes>,
    ) -> Result<(), ProviderError> {
        let json_mode = self.json_mode.is_some();
        let kind = match block.kind.as_ref() {
            "text" if json_mode => Block::Skipped,
            "text" => {
                if let Some(text) = block.text.and_then(Text::json).filter(|t| !t.is_empty()) {
                    let chunk = self.writer(out)?.content(0, text);
                    out.push_back(chunk);
                }
                Block::Text
            }
            "tool_use" => {
                let (Some(id), Some(name)) = (block.id, block.name) else {
                    return Err(self.invalid("a tool_use block without id or name"));
                };
                if self.json_mode.as_ref().is_some_and(|mode| *mode.tool == *name) {
                    Block::JsonAnswer
                } else {
                    let tool = self.tool_calls;
                    self.tool_calls += 1;
                    let chunk = self.writer(out)?.tool_call(0, tool, &id, &name, Text::Plain(""));
                    out.push_back(chunk);
                    Block::Tool(tool)
                }
            }
            _ => Block::Skipped,
        };
        if self.blocks.len() <= index {
            // Blocks are numbered 0, 1, 2, ... in order: a far-off index is a broken stream, not a
            // reason to allocate.
            if index > self.blocks.len() + MAX_INDEX_GAP {
                return Err(self.invalid("a content block index out of order"));
            }
            self.blocks.resize(index + 1, Block::Skipped);
        }
        self.blocks[index] = kind;
        Ok(())
    }

    fn block_delta(&mut self, index: usize, delta: Delta<'_>, out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
        let block = self.blocks.get(index).copied().unwrap_or(Block::Skipped);
        let piece = match (block, delta.kind.as_deref()) {
            (Block::Text, Some("text_delta")) => delta.text,
            (Block::Tool(_) | Block::JsonAnswer, Some("input_json_delta")) => delta.partial_json,
            // thinking_delta, signature_delta, citations_delta, and deltas of skipped blocks.
            _ => return Ok(()),
        };
        let Some(piece) = piece.and_then(Text::json) else {
            return Err(self.invalid("a delta without its text"));
        };
        if piece.is_empty() {
            return Ok(());
        }
        let writer = self.writer(out)?;
        let chunk = match block {
            Block::Tool(tool) => writer.tool_arguments(0, tool, piece),
            _ => writer.content(0, piece),
        };
        out.push_back(chunk);
        Ok(())
    }
}

impl Translate for StreamTranslator {
    type Event = SseEvent;

    fn event(&mut self, event: SseEvent, out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
        if self.finished {
            return Ok(());
        }
        let data: Event<'_> = serde_json::from_slice(&event.data)
            .map_err(|e| self.invalid(&format!("a stream event that is not an Anthropic event: {e}")))?;
        match data.kind.as_ref() {
            "message_start" => {
                let message = data.message.ok_or_else(|| self.invalid("message_start without its message"))?;
                if let Some(usage) = &message.usage {
                    self.usage.update(usage);
                }
                self.writer = Some(ChunkWriter::new(&message.id, &message.model, self.created));
            }
            "content_block_start" => {
                let (Some(index), Some(block)) = (data.index, data.content_block) else {
                    return Err(self.invalid("content_block_start without its index or block"));
                };
                self.block_start(index, block, out)?;
            }
            "content_block_delta" => {
                let (Some(index), Some(delta)) = (data.index, data.delta) else {
                    return Err(self.invalid("content_block_delta without its index or delta"));
                };
                self.block_delta(index, delta, out)?;
            }
            "message_delta" => {
                if let Some(reason) = data.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(finish_reason(Some(&reason), self.json_mode.is_some()));
                }
                if let Some(usage) = &data.usage {
                    self.usage.update(usage);
                }
            }
            "message_stop" => {
                let reason = self.stop_reason.unwrap_or(FinishReason::Stop);
                let usage = self.usage.to_openai();
                let writer = self.writer(out)?;
                let (finish, usage) = (writer.finish(0, reason), writer.usage(&usage));
                out.extend([finish, usage]);
                self.finished = true;
            }
            "error" => return Err(stream_error(&self.provider, &event.data, self.secret.as_deref())),
            // ping, content_block_stop, and event types added later.
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
        if self.finished { Ok(()) } else { Err(self.invalid("the stream ended before message_stop")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use serde_json::{Value, json};

    use crate::providers::native::translated;

    fn event(data: Value) -> SseEvent {
        let kind = data["type"].as_str().unwrap().to_owned();
        SseEvent { event: Some(Bytes::from(kind)), data: Bytes::from(data.to_string()) }
    }

    async fn run(events: Vec<Value>, json_mode: Option<JsonMode>) -> (Vec<Value>, Option<ProviderError>) {
        let events = futures_util::stream::iter(events.into_iter().map(|e| Ok(event(e))));
        let translator = StreamTranslator::new("anthropic".into(), Some("sk-ant-secret".into()), json_mode);
        let mut chunks = Vec::new();
        let mut stream = translated(events, translator);
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => chunks.push(serde_json::from_slice(&chunk).unwrap()),
                Err(e) => return (chunks, Some(e)),
            }
        }
        (chunks, None)
    }

    fn start() -> Value {
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100, "output_tokens": 1}}})
    }

    fn stop(reason: &str) -> [Value; 2] {
        [
            json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": null}, "usage": {"output_tokens": 15}}),
            json!({"type": "message_stop"}),
        ]
    }

    fn deltas(chunks: &[Value]) -> Vec<Value> {
        chunks
            .iter()
            .map(|c| c["choices"].get(0).map_or_else(|| json!({"usage": c["usage"]}), |c| c["delta"].clone()))
            .collect()
    }

    #[tokio::test]
    async fn text_stream_with_every_event_kind() {
        let mut events = vec![
            start(),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQB"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "ping"}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hello \"wor"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "citations_delta", "citation": {"type": "char_location"}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "ld\"\n"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "some_future_event"}),
        ];
        events.extend(stop("end_turn"));
        let (chunks, error) = run(events, None).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(chunks[0]["id"], "msg_1");
        assert_eq!(chunks[0]["model"], "claude-sonnet-4-5");
        assert_eq!(chunks[0]["object"], "chat.completion.chunk");
        assert_eq!(
            deltas(&chunks),
            [
                json!({"role": "assistant", "content": ""}),
                json!({"content": "Hello \"wor"}),
                json!({"content": "ld\"\n"}),
                json!({}),
                json!({"usage": {"prompt_tokens": 125, "completion_tokens": 15, "total_tokens": 140, "prompt_tokens_details": {"cached_tokens": 100, "cache_creation_tokens": 0}}}),
            ]
        );
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[4]["choices"], json!([]));
    }

    #[tokio::test]
    async fn tool_calls_count_from_zero_and_pass_argument_pieces_through() {
        let mut events = vec![
            start(),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Oslo\"}"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "now", "input": {}}}),
            json!({"type": "content_block_stop", "index": 2}),
        ];
        events.extend(stop("tool_use"));
        let (chunks, error) = run(events, None).await;
        assert!(error.is_none(), "{error:?}");
        let calls: Vec<Value> = deltas(&chunks).into_iter().filter_map(|d| d.get("tool_calls").cloned()).collect();
        assert_eq!(
            calls,
            [
                json!([{"index": 0, "id": "toolu_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]),
                json!([{"index": 0, "function": {"arguments": "{\"city\": "}}]),
                json!([{"index": 0, "function": {"arguments": "\"Oslo\"}"}}]),
                json!([{"index": 1, "id": "toolu_b", "type": "function", "function": {"name": "now", "arguments": ""}}]),
            ]
        );
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Checking.");
        assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "tool_calls");
    }

    #[tokio::test]
    async fn json_mode_streams_the_tool_input_as_content() {
        let mut events = vec![
            start(),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_j", "name": "json_response", "input": {}}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"capital\""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ": \"Paris\"}"}}),
            json!({"type": "content_block_stop", "index": 0}),
        ];
        events.extend(stop("tool_use"));
        let (chunks, error) = run(events, Some(JsonMode { tool: "json_response".into() })).await;
        assert!(error.is_none(), "{error:?}");
        let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(content, "{\"capital\": \"Paris\"}");
        assert!(chunks.iter().all(|c| c["choices"][0]["delta"].get("tool_calls").is_none()));
        assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "stop");
    }

    #[tokio::test]
    async fn an_error_event_is_an_upstream_error_with_its_status() {
        let events = vec![
            start(),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ];
        let (chunks, error) = run(events, None).await;
        assert_eq!(chunks.len(), 2);
        let Some(ProviderError::Upstream(e)) = error else { panic!("{error:?}") };
        assert_eq!((e.status.as_u16(), e.message.as_str()), (529, "Overloaded"));

        // Before any of the answer: not even the role chunk went out, so the request fails whole.
        let events = vec![
            start(),
            json!({"type": "ping"}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Too many"}}),
        ];
        let (chunks, error) = run(events, None).await;
        assert!(chunks.is_empty(), "{chunks:?}");
        assert!(matches!(error, Some(ProviderError::Upstream(e)) if e.status.as_u16() == 429));
    }

    #[tokio::test]
    async fn a_stream_cut_before_message_stop_is_an_error() {
        let events = vec![
            start(),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
        ];
        let (chunks, error) = run(events, None).await;
        assert_eq!(chunks.len(), 2);
        assert!(matches!(error, Some(ProviderError::InvalidResponse { .. })), "{error:?}");
        let (_, error) = run(
            vec![json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}})],
            None,
        )
        .await;
        assert!(matches!(error, Some(ProviderError::InvalidResponse { .. })), "{error:?}");
        let far = json!({"type": "content_block_start", "index": 1_000_000_000u64, "content_block": {"type": "text", "text": ""}});
        let (_, error) = run(vec![start(), far], None).await;
        assert!(matches!(error, Some(ProviderError::InvalidResponse { .. })), "{error:?}");
    }

    #[tokio::test]
    async fn max_tokens_and_refusal_finish_reasons() {
        for (reason, expected) in [("max_tokens", "length"), ("refusal", "content_filter"), ("pause_turn", "stop")] {
            let mut events = vec![start()];
            events.extend(stop(reason));
            let (chunks, _) = run(events, None).await;
            assert_eq!(chunks[1]["choices"][0]["finish_reason"], expected);
        }
    }
}
