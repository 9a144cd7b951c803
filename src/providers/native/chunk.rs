//! OpenAI `chat.completion.chunk` objects written straight into their output buffer: one allocation
//! per chunk, sized exactly up front (a `Vec` whose length is its capacity becomes `Bytes` without a
//! second allocation), with upstream text copied as the JSON string it already is.

use bytes::Bytes;
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
}

/// One part of a chunk being written.
#[derive(Clone, Copy)]
enum Part<'a> {
    Bytes(&'a [u8]),
    Text(Text<'a>),
    Str(&'a str),
    Number(u64),
}

impl Part<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Bytes(bytes) => bytes.len(),
            Self::Text(Text::Json(raw)) => raw.get().len(),
            Self::Text(Text::Plain(text)) | Self::Str(text) => escaped_len(text),
            Self::Number(n) => digits(*n),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::Bytes(bytes) => out.extend_from_slice(bytes),
            Self::Text(Text::Json(raw)) => out.extend_from_slice(raw.get().as_bytes()),
            // Writing a string into memory cannot fail.
            Self::Text(Text::Plain(text)) | Self::Str(text) => drop(serde_json::to_writer(&mut *out, text)),
            Self::Number(n) => {
                let mut buffer = [0u8; 20];
                let mut i = buffer.len();
                let mut n = *n;
                loop {
                    i -= 1;
                    buffer[i] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                out.extend_from_slice(&buffer[i..]);
            }
        }
    }
}

/// The length of `text` as a JSON string literal written by serde_json: quotes, two-character
/// escapes for `"`, `\\` and the common controls, `\u00XX` for the other controls.
fn escaped_len(text: &str) -> usize {
    2 + text
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..0x20 => 6,
            _ => 1,
        })
        .sum::<usize>()
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The parts joined into one buffer of exactly their length.
fn assemble(parts: &[Part<'_>]) -> Bytes {
    let len = parts.iter().map(Part::len).sum();
    let mut out = Vec::with_capacity(len);
    for part in parts {
        part.write(&mut out);
    }
    debug_assert_eq!(out.len(), len, "a chunk's size was computed wrong");
    Bytes::from(out)
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
        let head = assemble(&[
            Part::Bytes(b"{\"id\":"),
            Part::Str(id),
            Part::Bytes(b",\"object\":\"chat.completion.chunk\",\"created\":"),
            Part::Number(created),
            Part::Bytes(b",\"model\":"),
            Part::Str(model),
            Part::Bytes(b",\"choices\":["),
        ]);
        Self { head }
    }

    /// The first chunk of a choice: `delta: {"role": "assistant", "content": ""}`.
    pub fn role(&self, choice: u32) -> Bytes {
        assemble(&[
            Part::Bytes(&self.head),
            Part::Bytes(b"{\"index\":"),
            Part::Number(choice.into()),
            Part::Bytes(b",\"delta\":{\"role\":\"assistant\",\"content\":\"\"}"),
            Part::Bytes(CHOICE_TAIL),
        ])
    }

    /// A piece of the answer's text.
    pub fn content(&self, choice: u32, text: Text<'_>) -> Bytes {
        self.text_delta(choice, b",\"delta\":{\"content\":", text)
    }

    /// A piece of a refusal (the model declined, in words).
    pub fn refusal(&self, choice: u32, text: Text<'_>) -> Bytes {
        self.text_delta(choice, b",\"delta\":{\"refusal\":", text)
    }

    fn text_delta(&self, choice: u32, field: &[u8], text: Text<'_>) -> Bytes {
        assemble(&[
            Part::Bytes(&self.head),
            Part::Bytes(b"{\"index\":"),
            Part::Number(choice.into()),
            Part::Bytes(field),
            Part::Text(text),
            Part::Bytes(b"}"),
            Part::Bytes(CHOICE_TAIL),
        ])
    }

    /// The start of a tool call: its id and name, and the first piece of its arguments (often empty).
    pub fn tool_call(&self, choice: u32, tool: u32, id: &str, name: &str, arguments: Text<'_>) -> Bytes {
        assemble(&[
            Part::Bytes(&self.head),
            Part::Bytes(b"{\"index\":"),
            Part::Number(choice.into()),
            Part::Bytes(b",\"delta\":{\"tool_calls\":[{\"index\":"),
            Part::Number(tool.into()),
            Part::Bytes(b",\"id\":"),
            Part::Str(id),
            Part::Bytes(b",\"type\":\"function\",\"function\":{\"name\":"),
            Part::Str(name),
            Part::Bytes(b",\"arguments\":"),
            Part::Text(arguments),
            Part::Bytes(b"}}]}"),
            Part::Bytes(CHOICE_TAIL),
        ])
    }

    /// A further piece of a tool call's JSON arguments.
    pub fn tool_arguments(&self, choice: u32, tool: u32, arguments: Text<'_>) -> Bytes {
        assemble(&[
            Part::Bytes(&self.head),
            Part::Bytes(b"{\"index\":"),
            Part::Number(choice.into()),
            Part::Bytes(b",\"delta\":{\"tool_calls\":[{\"index\":"),
            Part::Number(tool.into()),
            Part::Bytes(b",\"function\":{\"arguments\":"),
            Part::Text(arguments),
            Part::Bytes(b"}}]}"),
            Part::Bytes(CHOICE_TAIL),
        ])
    }

    /// The last chunk of a choice: an empty delta and why it ended.
    pub fn finish(&self, choice: u32, reason: FinishReason) -> Bytes {
        assemble(&[
            Part::Bytes(&self.head),
            Part::Bytes(b"{\"index\":"),
            Part::Number(choice.into()),
            Part::Bytes(b",\"delta\":{},\"logprobs\":null,\"finish_reason\":\""),
            Part::Bytes(reason.as_str().as_bytes()),
            Part::Bytes(b"\"}]}"),
        ])
    }

    /// The usage chunk that ends a stream: no choices, only `usage`.
    pub fn usage(&self, usage: &Usage) -> Bytes {
        // Once per stream: serialised then copied, rather than sized by hand.
        let usage = serde_json::to_vec(usage).unwrap_or_default();
        assemble(&[Part::Bytes(&self.head), Part::Bytes(b"],\"usage\":"), Part::Bytes(&usage), Part::Bytes(b"}")])
    }
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
    fn sizes_are_exact_for_every_kind_of_character() {
        for text in
            ["", "plain", "quote \" and \\ backslash", "controls \n\r\t\u{8}\u{c}\u{1}\u{1f}", "unicode é 😀 </tag>"]
        {
            let mut written = Vec::new();
            Part::Str(text).write(&mut written);
            assert_eq!(Part::Str(text).len(), written.len(), "{text:?}");
        }
        for n in [0, 9, 10, 99, 100, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(Part::Number(n).len(), n.to_string().len());
        }
    }

    #[test]
    fn only_string_literals_pass_as_json_text() {
        let number = RawValue::from_string("42".to_owned()).unwrap();
        assert!(Text::json(&number).is_none());
        let empty = RawValue::from_string("\"\"".to_owned()).unwrap();
        assert!(Text::json(&empty).unwrap().is_empty());
    }
}
