//! OpenAI `chat.completion.chunk` objects written straight into their output buffer: one allocation
//! per chunk, sized up front, with upstream text copied as the JSON string it already is.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::value::RawValue;

use super::FinishReason;
use crate::openai::Usage;

/// A piece of text for a chunk: a JSON string literal exactly as the upstream wrote it (copied, not
/// unescaped and escaped again), or plain text to escape.
#[derive(Debug, Clone, Copy)]
pub enum Text<'a> {
    Json(&'a RawValue),
    Plain(&'a str),
}

impl<'a> Text<'a> {
    /// A raw JSON value that is a string literal; anything else (a number, an object) is refused so
    /// that a chunk always carries a string where OpenAI has one.
    pub fn json(raw: &'a RawValue) -> Option<Self> {
        raw.get().starts_with('"').then_some(Self::Json(raw))
    }

    /// Whether the text is empty (`""`).
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Json(raw) => raw.get() == "\"\"",
            Self::Plain(text) => text.is_empty(),
        }
    }

    fn len_hint(&self) -> usize {
        match self {
            Self::Json(raw) => raw.get().len(),
            // Quotes plus a little room for escapes; `BytesMut` grows if a text needs more.
            Self::Plain(text) => text.len() + text.len() / 8 + 2,
        }
    }

    fn write(&self, out: &mut BytesMut) {
        match self {
            Self::Json(raw) => out.put_slice(raw.get().as_bytes()),
            Self::Plain(text) => write_json_str(out, text),
        }
    }
}

fn write_json_str(out: &mut BytesMut, text: &str) {
    // Writing a string into memory cannot fail.
    let _ = serde_json::to_writer(out.writer(), text);
}

/// Writes the chunks of one streamed answer. The part every chunk shares (`id`, `object`, `created`,
/// `model`) is rendered once.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    /// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[`
    head: Bytes,
}

const CHOICE_TAIL: &[u8] = b",\"logprobs\":null,\"finish_reason\":null}]}";

impl ChunkWriter {
    pub fn new(id: &str, model: &str, created: u64) -> Self {
        let mut head = BytesMut::with_capacity(96 + id.len() + model.len());
        head.put_slice(b"{\"id\":");
        write_json_str(&mut head, id);
        head.put_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        head.put_slice(created.to_string().as_bytes());
        head.put_slice(b",\"model\":");
        write_json_str(&mut head, model);
        head.put_slice(b",\"choices\":[");
        Self { head: head.freeze() }
    }

    fn start(&self, choice: u32, body_hint: usize) -> BytesMut {
        let mut out = BytesMut::with_capacity(self.head.len() + body_hint + 96);
        out.put_slice(&self.head);
        out.put_slice(b"{\"index\":");
        put_u32(&mut out, choice);
        out
    }

    /// The first chunk of a choice: `delta: {"role": "assistant", "content": ""}`.
    pub fn role(&self, choice: u32) -> Bytes {
        let mut out = self.start(choice, 0);
        out.put_slice(b",\"delta\":{\"role\":\"assistant\",\"content\":\"\"}");
        out.put_slice(CHOICE_TAIL);
        out.freeze()
    }

    /// A piece of the answer's text.
    pub fn content(&self, choice: u32, text: Text<'_>) -> Bytes {
        self.text_delta(choice, b"content", text)
    }

    /// A piece of a refusal (the model declined, in words).
    pub fn refusal(&self, choice: u32, text: Text<'_>) -> Bytes {
        self.text_delta(choice, b"refusal", text)
    }

    fn text_delta(&self, choice: u32, field: &[u8], text: Text<'_>) -> Bytes {
        let mut out = self.start(choice, text.len_hint());
        out.put_slice(b",\"delta\":{\"");
        out.put_slice(field);
        out.put_slice(b"\":");
        text.write(&mut out);
        out.put_u8(b'}');
        out.put_slice(CHOICE_TAIL);
        out.freeze()
    }

    /// The start of a tool call: its id and name, and the first piece of its arguments (often empty).
    pub fn tool_call(&self, choice: u32, tool: u32, id: &str, name: &str, arguments: Text<'_>) -> Bytes {
        let mut out = self.start(choice, id.len() + name.len() + arguments.len_hint() + 64);
        out.put_slice(b",\"delta\":{\"tool_calls\":[{\"index\":");
        put_u32(&mut out, tool);
        out.put_slice(b",\"id\":");
        write_json_str(&mut out, id);
        out.put_slice(b",\"type\":\"function\",\"function\":{\"name\":");
        write_json_str(&mut out, name);
        out.put_slice(b",\"arguments\":");
        arguments.write(&mut out);
        out.put_slice(b"}}]}");
        out.put_slice(CHOICE_TAIL);
        out.freeze()
    }

    /// A further piece of a tool call's JSON arguments.
    pub fn tool_arguments(&self, choice: u32, tool: u32, arguments: Text<'_>) -> Bytes {
        let mut out = self.start(choice, arguments.len_hint() + 48);
        out.put_slice(b",\"delta\":{\"tool_calls\":[{\"index\":");
        put_u32(&mut out, tool);
        out.put_slice(b",\"function\":{\"arguments\":");
        arguments.write(&mut out);
        out.put_slice(b"}}]}");
        out.put_slice(CHOICE_TAIL);
        out.freeze()
    }

    /// The last chunk of a choice: an empty delta and why it ended.
    pub fn finish(&self, choice: u32, reason: FinishReason) -> Bytes {
        let mut out = self.start(choice, 0);
        out.put_slice(b",\"delta\":{},\"logprobs\":null,\"finish_reason\":\"");
        out.put_slice(reason.as_str().as_bytes());
        out.put_slice(b"\"}]}");
        out.freeze()
    }

    /// The usage chunk that ends a stream: no choices, only `usage`.
    pub fn usage(&self, usage: &Usage) -> Bytes {
        let mut out = BytesMut::with_capacity(self.head.len() + 160);
        out.put_slice(&self.head);
        out.put_slice(b"],\"usage\":");
        let _ = serde_json::to_writer((&mut out).writer(), usage);
        out.put_u8(b'}');
        out.freeze()
    }
}

fn put_u32(out: &mut BytesMut, n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(chunk: &Bytes) -> Value {
        serde_json::from_slice(chunk).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(chunk)))
    }

    #[test]
    fn every_chunk_is_openais_shape() {
        let w = ChunkWriter::new("msg_\"1", "claude", 42);
        let head = json!({"id": "msg_\"1", "object": "chat.completion.chunk", "created": 42, "model": "claude"});
        let with = |choices: Value| {
            let mut v = head.clone();
            v["choices"] = choices;
            v
        };
        let raw = RawValue::from_string(r#""caf\u00e9 \"x\"""#.to_owned()).unwrap();
        let cases = [
            (
                w.role(0),
                with(
                    json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]),
                ),
            ),
            (
                w.content(0, Text::json(&raw).unwrap()),
                with(
                    json!([{"index": 0, "delta": {"content": "café \"x\""}, "logprobs": null, "finish_reason": null}]),
                ),
            ),
            (
                w.content(1, Text::Plain("a\nb")),
                with(json!([{"index": 1, "delta": {"content": "a\nb"}, "logprobs": null, "finish_reason": null}])),
            ),
            (
                w.tool_call(0, 2, "call_1", "get_weather", Text::Plain("")),
                with(
                    json!([{"index": 0, "delta": {"tool_calls": [{"index": 2, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}, "logprobs": null, "finish_reason": null}]),
                ),
            ),
            (
                w.tool_arguments(0, 12, Text::Plain("{\"city\":")),
                with(
                    json!([{"index": 0, "delta": {"tool_calls": [{"index": 12, "function": {"arguments": "{\"city\":"}}]}, "logprobs": null, "finish_reason": null}]),
                ),
            ),
            (
                w.finish(0, FinishReason::ToolCalls),
                with(json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "tool_calls"}])),
            ),
        ];
        for (chunk, expected) in cases {
            assert_eq!(parse(&chunk), expected);
        }
        let usage = Usage { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7, ..Usage::default() };
        let mut expected = with(json!([]));
        expected["usage"] = json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7});
        assert_eq!(parse(&w.usage(&usage)), expected);
    }

    #[test]
    fn only_string_literals_pass_as_json_text() {
        let number = RawValue::from_string("42".to_owned()).unwrap();
        assert!(Text::json(&number).is_none());
        let empty = RawValue::from_string("\"\"".to_owned()).unwrap();
        assert!(Text::json(&empty).unwrap().is_empty());
    }
}
