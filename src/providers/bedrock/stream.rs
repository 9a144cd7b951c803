//! ConverseStream events as OpenAI chunks. Events arrive as event-stream frames named by
//! `:event-type`: `messageStart`, `contentBlockStart` (a tool call's id and name),
//! `contentBlockDelta` (text, or a piece of a tool call's JSON input), `contentBlockStop`,
//! `messageStop` (the stop reason) and `metadata` (usage). Exceptions arrive as messages of
//! `:message-type` `exception`.

use std::borrow::Cow;
use std::collections::VecDeque;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{Scrub, stream_error, stream_exception};
use super::eventstream::Frame;
use super::response::{TokenUsage, finish_reason};
use crate::openai::Usage;
use crate::providers::ProviderError;
use crate::providers::native::{ChunkWriter, FinishReason, Text, Translate};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart<'a> {
    #[serde(default)]
    content_block_index: u64,
    #[serde(borrow)]
    start: Start<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Start<'a> {
    #[serde(borrow, default)]
    tool_use: Option<ToolUseStart<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStart<'a> {
    #[serde(borrow)]
    tool_use_id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta<'a> {
    #[serde(default)]
    content_block_index: u64,
    #[serde(borrow)]
    delta: Delta<'a>,
}

/// A delta: `text`, or `toolUse.input` (a piece of JSON text). Reasoning and citation deltas have no
/// OpenAI counterpart and are skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delta<'a> {
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_use: Option<ToolUseDelta<'a>>,
}

#[derive(Deserialize)]
struct ToolUseDelta<'a> {
    #[serde(borrow)]
    input: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop<'a> {
    #[serde(borrow)]
    stop_reason: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    usage: Option<TokenUsage>,
}

/// The content block being streamed, when it is a tool call.
#[derive(Debug, Clone, Copy)]
enum OpenTool {
    /// The client's tool call number `index`.
    Call { block: u64, index: u32 },
    /// JSON mode's forced tool: its input is the answer's text.
    Answer { block: u64 },
}

pub struct Translator {
    provider: String,
    scrub: Scrub,
    writer: ChunkWriter,
    json_mode: bool,
    role_sent: bool,
    tool_calls: u32,
    open_tool: Option<OpenTool>,
    finish: Option<FinishReason>,
    /// Usage that came before `messageStop` (it normally follows it), held for after the finish chunk.
    usage: Option<Usage>,
}

impl Translator {
    pub fn new(provider: &str, scrub: Scrub, writer: ChunkWriter, json_mode: bool) -> Self {
        Self {
            provider: provider.to_owned(),
            scrub,
            writer,
            json_mode,
            role_sent: false,
            tool_calls: 0,
            open_tool: None,
            finish: None,
            usage: None,
        }
    }

    fn role(&mut self, out: &mut VecDeque<Bytes>) {
        if !self.role_sent {
            self.role_sent = true;
            out.push_back(self.writer.role(0));
        }
    }

    fn parse<'p, T: Deserialize<'p>>(&self, event: &str, payload: &'p [u8]) -> Result<T, ProviderError> {
        serde_json::from_slice(payload)
            .map_err(|e| ProviderError::invalid_response(&self.provider, format!("bad `{event}` event: {e}")))
    }

    /// A delta's text: a JSON string literal, copied into the chunk as written.
    fn text<'r>(&self, raw: &'r RawValue) -> Result<Text<'r>, ProviderError> {
        Text::json(raw).ok_or_else(|| ProviderError::invalid_response(&self.provider, "a delta's text is not a string"))
    }

    fn block_start(&mut self, payload: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
        let start: BlockStart<'_> = self.parse("contentBlockStart", payload)?;
        let Some(tool) = start.start.tool_use else { return Ok(()) };
        self.role(out);
        let block = start.content_block_index;
        if self.json_mode {
            self.open_tool = Some(OpenTool::Answer { block });
            return Ok(());
        }
        let index = self.tool_calls;
        self.tool_calls += 1;
        self.open_tool = Some(OpenTool::Call { block, index });
        out.push_back(self.writer.tool_call(0, index, &tool.tool_use_id, &tool.name, Text::Plain("")));
        Ok(())
    }

    fn block_delta(&mut self, payload: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
        let delta: BlockDelta<'_> = self.parse("contentBlockDelta", payload)?;
        if let Some(raw) = delta.delta.text {
            let piece = self.text(raw)?;
            self.role(out);
            if !piece.is_empty() {
                out.push_back(self.writer.content(0, piece));
            }
        }
        if let Some(tool) = delta.delta.tool_use {
            let piece = self.text(tool.input)?;
            match self.open_tool {
                Some(OpenTool::Call { block, index }) if block == delta.content_block_index => {
                    if !piece.is_empty() {
                        out.push_back(self.writer.tool_arguments(0, index, piece));
                    }
                }
                Some(OpenTool::Answer { block }) if block == delta.content_block_index => {
                    if !piece.is_empty() {
                        out.push_back(self.writer.content(0, piece));
                    }
                }
                _ => {
                    return Err(ProviderError::invalid_response(
                        &self.provider,
                        "tool input arrived for a content block that is not a started tool call",
                    ));
                }
            }
        }
        Ok(())
    }

    fn message_stop(&mut self, payload: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
        let stop: MessageStop<'_> = self.parse("messageStop", payload)?;
        let reason = finish_reason(&stop.stop_reason, self.json_mode);
        self.role(out);
        self.finish = Some(reason);
        self.open_tool = None;
        out.push_back(self.writer.finish(0, reason));
        if let Some(usage) = self.usage.take() {
            out.push_back(self.writer.usage(&usage));
        }
        Ok(())
    }

    fn metadata(&mut self, payload: &[u8], out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
        let metadata: Metadata = self.parse("metadata", payload)?;
        let Some(usage) = metadata.usage.map(TokenUsage::to_openai) else { return Ok(()) };
        if self.finish.is_some() {
            out.push_back(self.writer.usage(&usage));
        } else {
            self.usage = Some(usage);
        }
        Ok(())
    }
}

impl Translate for Translator {
    type Event = Frame;

    fn event(&mut self, frame: Frame, out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
        let payload = frame.payload();
        match frame.header(":message-type") {
            Some("event") => {}
            Some("exception") => {
                let kind = frame.header(":exception-type").unwrap_or("internalServerException");
                return Err(stream_exception(&self.provider, kind, payload, &self.scrub));
            }
            Some("error") => {
                return Err(stream_error(
                    &self.provider,
                    frame.header(":error-code"),
                    frame.header(":error-message"),
                    &self.scrub,
                ));
            }
            other => {
                return Err(ProviderError::invalid_response(
                    &self.provider,
                    format!("an event-stream message of type {other:?}"),
                ));
            }
        }
        match frame.header(":event-type") {
            Some("messageStart") => self.role(out),
            Some("contentBlockStart") => self.block_start(payload, out)?,
            Some("contentBlockDelta") => self.block_delta(payload, out)?,
            Some("contentBlockStop") => self.open_tool = None,
            Some("messageStop") => self.message_stop(payload, out)?,
            Some("metadata") => self.metadata(payload, out)?,
            // Events added to the API later carry nothing this translation knows.
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
        if self.finish.is_none() {
            return Err(ProviderError::invalid_response(&self.provider, "the stream ended before `messageStop`"));
        }
        if let Some(usage) = self.usage.take() {
            out.push_back(self.writer.usage(&usage));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    use serde_json::{Value, json};

    fn event(event_type: &str, payload: Value) -> Frame {
        Frame::of(
            &Message::new(payload.to_string().into_bytes())
                .add_header(Header::new(":event-type", HeaderValue::String(event_type.to_owned().into())))
                .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())))
                .add_header(Header::new(":message-type", HeaderValue::String("event".into()))),
        )
    }

    fn exception(kind: &str, message: &str) -> Frame {
        Frame::of(
            &Message::new(json!({ "message": message }).to_string().into_bytes())
                .add_header(Header::new(":exception-type", HeaderValue::String(kind.to_owned().into())))
                .add_header(Header::new(":message-type", HeaderValue::String("exception".into()))),
        )
    }

    /// The chunks as JSON (without the shared head), and the error that ended the stream, if any.
    fn run(events: Vec<Frame>, json_mode: bool) -> (Vec<Value>, Option<ProviderError>) {
        let mut translator = Translator::new("b", Scrub::default(), ChunkWriter::new("id", "m", 1), json_mode);
        let mut out = VecDeque::new();
        let mut error = None;
        for e in events {
            if let Err(e) = translator.event(e, &mut out) {
                error = Some(e);
                break;
            }
        }
        if error.is_none() {
            error = translator.end(&mut out).err();
        }
        let chunks = out
            .iter()
            .map(|c| {
                let v: Value = serde_json::from_slice(c).unwrap();
                if v["choices"].as_array().unwrap().is_empty() {
                    json!({"usage": v["usage"]})
                } else {
                    v["choices"][0].clone()
                }
            })
            .collect();
        (chunks, error)
    }

    fn delta(chunk: &Value) -> &Value {
        &chunk["delta"]
    }

    #[test]
    fn text_then_finish_then_usage() {
        let (chunks, error) = run(
            vec![
                event("messageStart", json!({"p": "abcd", "role": "assistant"})),
                event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Hello"}, "p": "ab"})),
                event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": ", \"world\""}})),
                event("contentBlockStop", json!({"contentBlockIndex": 0})),
                event("messageStop", json!({"stopReason": "end_turn"})),
                event(
                    "metadata",
                    json!({"usage": {"inputTokens": 8, "outputTokens": 3, "totalTokens": 11}, "metrics": {"latencyMs": 250}}),
                ),
            ],
            false,
        );
        assert!(error.is_none(), "{error:?}");
        assert_eq!(delta(&chunks[0]), &json!({"role": "assistant", "content": ""}));
        assert_eq!(delta(&chunks[1]), &json!({"content": "Hello"}));
        assert_eq!(delta(&chunks[2]), &json!({"content": ", \"world\""}));
        assert_eq!(chunks[3]["finish_reason"], "stop");
        assert_eq!(chunks[4], json!({"usage": {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}}));
        assert_eq!(chunks.len(), 5);
    }

    #[test]
    fn tool_calls_stream_their_arguments_piece_by_piece() {
        let (chunks, error) = run(
            vec![
                event("messageStart", json!({"role": "assistant"})),
                event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Checking."}})),
                event("contentBlockStop", json!({"contentBlockIndex": 0})),
                event(
                    "contentBlockStart",
                    json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_a", "name": "weather"}}}),
                ),
                event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}}),
                ),
                event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
                ),
                event("contentBlockStop", json!({"contentBlockIndex": 1})),
                event(
                    "contentBlockStart",
                    json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_b", "name": "time"}}}),
                ),
                event("contentBlockDelta", json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{}"}}})),
                event("contentBlockStop", json!({"contentBlockIndex": 2})),
                event("messageStop", json!({"stopReason": "tool_use"})),
            ],
            false,
        );
        assert!(error.is_none(), "{error:?}");
        let calls: Vec<&Value> = chunks.iter().map(|c| &c["delta"]["tool_calls"][0]).collect();
        assert_eq!(
            calls[2],
            &json!({"index": 0, "id": "tooluse_a", "type": "function", "function": {"name": "weather", "arguments": ""}})
        );
        assert_eq!(calls[3], &json!({"index": 0, "function": {"arguments": "{\"city\":"}}));
        assert_eq!(calls[4], &json!({"index": 0, "function": {"arguments": "\"Paris\"}"}}));
        assert_eq!(calls[5]["index"], 1);
        assert_eq!(calls[5]["id"], "tooluse_b");
        assert_eq!(calls[6], &json!({"index": 1, "function": {"arguments": "{}"}}));
        assert_eq!(chunks[7]["finish_reason"], "tool_calls");
        assert_eq!(chunks.len(), 8);
    }

    #[test]
    fn json_mode_streams_the_forced_tools_input_as_content() {
        let (chunks, error) = run(
            vec![
                event("messageStart", json!({"role": "assistant"})),
                event(
                    "contentBlockStart",
                    json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t", "name": "json_object"}}}),
                ),
                event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"a\":"}}})),
                event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "1}"}}})),
                event("contentBlockStop", json!({"contentBlockIndex": 0})),
                event("messageStop", json!({"stopReason": "tool_use"})),
            ],
            true,
        );
        assert!(error.is_none(), "{error:?}");
        assert_eq!(delta(&chunks[1]), &json!({"content": "{\"a\":"}));
        assert_eq!(delta(&chunks[2]), &json!({"content": "1}"}));
        assert_eq!(chunks[3]["finish_reason"], "stop");
    }

    #[test]
    fn usage_before_the_stop_still_comes_after_the_finish_chunk() {
        let (chunks, error) = run(
            vec![
                event("metadata", json!({"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}})),
                event("messageStop", json!({"stopReason": "max_tokens"})),
            ],
            false,
        );
        assert!(error.is_none());
        assert_eq!(chunks[1]["finish_reason"], "length");
        assert_eq!(chunks[2]["usage"]["total_tokens"], 2);
    }

    #[test]
    fn a_stream_without_message_stop_is_an_error() {
        let (chunks, error) = run(
            vec![
                event("messageStart", json!({"role": "assistant"})),
                event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Hel"}})),
            ],
            false,
        );
        assert_eq!(chunks.len(), 2);
        assert!(
            matches!(error, Some(ProviderError::InvalidResponse { ref detail, .. }) if detail.contains("messageStop"))
        );
    }

    #[test]
    fn exceptions_end_the_stream_with_their_status() {
        let (chunks, error) = run(
            vec![event("messageStart", json!({"role": "assistant"})), exception("throttlingException", "slow down")],
            false,
        );
        assert_eq!(chunks.len(), 1);
        let Some(ProviderError::Upstream(e)) = error else { panic!("{error:?}") };
        assert_eq!((e.status.as_u16(), e.message.as_str()), (429, "slow down"));
        let (_, error) = run(vec![exception("validationException", "Input is too long for requested model.")], false);
        let Some(ProviderError::Upstream(e)) = error else { panic!() };
        assert_eq!((e.status.as_u16(), e.code.as_deref()), (400, Some("context_length_exceeded")));
    }

    #[test]
    fn tool_input_without_a_started_tool_is_an_error() {
        let (_, error) = run(
            vec![event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{}"}}}))],
            false,
        );
        assert!(matches!(error, Some(ProviderError::InvalidResponse { .. })));
    }
}
