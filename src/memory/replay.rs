//! Answers stored one way, replayed the other: a stored stream becomes one `chat.completion` body
//! for a client that did not stream, and a stored body becomes chunks for a client that does.

use bytes::Bytes;
use serde_json::{Map, Value, json};

/// Merges a completed stream's chunks into the `chat.completion` body the same request would have
/// got without `stream`: content and refusals concatenated, tool calls joined by index, the last
/// finish reason and usage kept. `None` if a chunk is not JSON.
pub fn assemble(chunks: &[Bytes]) -> Option<Bytes> {
    let mut head: Option<Map<String, Value>> = None;
    let mut choices: Vec<Choice> = Vec::new();
    let mut usage = Value::Null;
    for chunk in chunks {
        let Value::Object(mut chunk) = serde_json::from_slice::<Value>(chunk).ok()? else { return None };
        if let Some(u) = chunk.remove("usage").filter(|u| !u.is_null()) {
            usage = u;
        }
        let deltas = match chunk.remove("choices") {
            Some(Value::Array(deltas)) => deltas,
            _ => Vec::new(),
        };
        head.get_or_insert(chunk);
        for delta in deltas {
            let index = delta.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if choices.len() <= index {
                choices.resize_with(index + 1, Choice::default);
            }
            choices[index].absorb(delta);
        }
    }
    let mut body = head.unwrap_or_default();
    body.insert("object".into(), "chat.completion".into());
    let choices: Vec<Value> = choices.into_iter().enumerate().map(|(i, c)| c.finish(i)).collect();
    body.insert("choices".into(), Value::Array(choices));
    if !usage.is_null() {
        body.insert("usage".into(), usage);
    }
    serde_json::to_vec(&body).ok().map(Bytes::from)
}

#[derive(Default)]
struct Choice {
    role: Option<Value>,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Vec<Map<String, Value>>,
    finish_reason: Value,
    logprobs: Option<Vec<Value>>,
}

impl Choice {
    fn absorb(&mut self, mut choice: Value) {
        if let Some(reason) = choice.get_mut("finish_reason").map(Value::take).filter(|r| !r.is_null()) {
            self.finish_reason = reason;
        }
        if let Some(Value::Array(items)) = choice.pointer_mut("/logprobs/content").map(Value::take) {
            self.logprobs.get_or_insert_with(Vec::new).extend(items);
        }
        let Some(Value::Object(mut delta)) = choice.get_mut("delta").map(Value::take) else { return };
        if let Some(role) = delta.remove("role").filter(|r| !r.is_null()) {
            self.role = Some(role);
        }
        if let Some(Value::String(text)) = delta.remove("content") {
            self.content.get_or_insert_with(String::new).push_str(&text);
        }
        if let Some(Value::String(text)) = delta.remove("refusal") {
            self.refusal.get_or_insert_with(String::new).push_str(&text);
        }
        let Some(Value::Array(calls)) = delta.remove("tool_calls") else { return };
        for call in calls {
            let Value::Object(mut call) = call else { continue };
            let index = call.remove("index").and_then(|i| i.as_u64()).unwrap_or(0) as usize;
            if self.tool_calls.len() <= index {
                self.tool_calls.resize_with(index + 1, Map::new);
            }
            merge_call(&mut self.tool_calls[index], call);
        }
    }

    fn finish(self, index: usize) -> Value {
        let mut message = Map::new();
        message.insert("role".into(), self.role.unwrap_or_else(|| "assistant".into()));
        message.insert("content".into(), self.content.map_or(Value::Null, Value::String));
        if let Some(refusal) = self.refusal {
            message.insert("refusal".into(), refusal.into());
        }
        if !self.tool_calls.is_empty() {
            message.insert("tool_calls".into(), Value::Array(self.tool_calls.into_iter().map(Value::Object).collect()));
        }
        json!({
            "index": index,
            "message": message,
            "logprobs": self.logprobs.map_or(Value::Null, |content| json!({"content": content})),
            "finish_reason": self.finish_reason,
        })
    }
}

/// A streamed tool call arrives as an id, type and name first, then its arguments in pieces.
fn merge_call(into: &mut Map<String, Value>, part: Map<String, Value>) {
    for (field, value) in part {
        match (field.as_str(), value) {
            ("function", Value::Object(function)) => {
                let target = into.entry("function").or_insert_with(|| json!({}));
                let Value::Object(target) = target else { continue };
                for (name, piece) in function {
                    match (name.as_str(), piece, target.get_mut(name.as_str())) {
                        ("arguments", Value::String(piece), Some(Value::String(so_far))) => so_far.push_str(&piece),
                        (_, piece, _) => {
                            target.insert(name, piece);
                        }
                    }
                }
            }
            (_, Value::Null) => {}
            (_, value) => {
                into.insert(field, value);
            }
        }
    }
}

/// The chunks a stream of this `chat.completion` body would have carried: per choice the role and
/// whole content (and tool calls with whole arguments), then its finish reason; then usage, when
/// the client asked for it.
pub fn split(body: &[u8], include_usage: bool) -> Option<Vec<Bytes>> {
    let Value::Object(mut body) = serde_json::from_slice::<Value>(body).ok()? else { return None };
    let Some(Value::Array(choices)) = body.remove("choices") else { return None };
    let usage = body.remove("usage");
    body.insert("object".into(), "chat.completion.chunk".into());
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut chunk = body.clone();
        chunk.insert("choices".into(), choices);
        if let Some(usage) = usage {
            chunk.insert("usage".into(), usage.clone());
        }
        serde_json::to_vec(&chunk).ok().map(Bytes::from)
    };
    let mut chunks = Vec::with_capacity(choices.len() * 2 + 1);
    for (i, mut choice) in choices.into_iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or_else(|| i.into());
        let mut delta = match choice.get_mut("message").map(Value::take) {
            Some(Value::Object(message)) => message,
            _ => Map::new(),
        };
        if let Some(Value::Array(calls)) = delta.get_mut("tool_calls") {
            for (n, call) in calls.iter_mut().enumerate() {
                if let Value::Object(call) = call {
                    call.insert("index".into(), n.into());
                }
            }
        }
        let logprobs = choice.get_mut("logprobs").map(Value::take).unwrap_or(Value::Null);
        chunks
            .push(chunk(json!([{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": null}]), None)?);
        let finish = choice.get_mut("finish_reason").map(Value::take).unwrap_or(Value::Null);
        chunks.push(chunk(json!([{"index": index, "delta": {}, "finish_reason": finish}]), None)?);
    }
    if include_usage && let Some(usage) = usage.filter(|u| !u.is_null()) {
        chunks.push(chunk(json!([]), Some(&usage))?);
    }
    Some(chunks)
}

/// Whether a chunk is the usage-only chunk that `stream_options.include_usage` adds.
pub fn is_usage_only(chunk: &[u8]) -> bool {
    if memchr::memmem::find(chunk, b"\"usage\"").is_none() {
        return false;
    }
    serde_json::from_slice::<Value>(chunk).is_ok_and(|v| {
        v.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty)
            && v.get("usage").is_some_and(|u| !u.is_null())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: Value) -> Bytes {
        Bytes::from(serde_json::to_vec(&v).unwrap())
    }

    fn stream() -> Vec<Bytes> {
        let head = |choices: Value| json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices});
        vec![
            b(head(json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]))),
            b(head(json!([{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]))),
            b(head(json!([{"index": 0, "delta": {"content": "lo"}, "finish_reason": null}]))),
            b(head(
                json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": ""}}]}, "finish_reason": null}]),
            )),
            b(head(
                json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}, "finish_reason": null}]),
            )),
            b(head(
                json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}, "finish_reason": null}]),
            )),
            b(head(json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]))),
            b(
                json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}),
            ),
        ]
    }

    #[test]
    fn a_stream_assembles_into_the_body_it_stands_for() {
        let body: Value = serde_json::from_slice(&assemble(&stream()).unwrap()).unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["id"], "c1");
        let message = &body["choices"][0]["message"];
        assert_eq!(message["role"], "assistant");
        assert_eq!(message["content"], "Hello");
        assert_eq!(message["tool_calls"][0]["id"], "call_1");
        assert_eq!(message["tool_calls"][0]["function"]["name"], "get");
        assert_eq!(message["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(body["usage"]["total_tokens"], 8);
    }

    #[test]
    fn a_body_splits_into_chunks_that_assemble_back() {
        let body = assemble(&stream()).unwrap();
        let chunks = split(&body, true).unwrap();
        assert!(is_usage_only(chunks.last().unwrap()));
        assert!(!is_usage_only(&chunks[0]));
        let again: Value = serde_json::from_slice(&assemble(&chunks).unwrap()).unwrap();
        assert_eq!(again, serde_json::from_slice::<Value>(&body).unwrap());
        let without_usage = split(&body, false).unwrap();
        assert_eq!(without_usage.len(), chunks.len() - 1);
        assert!(split(b"not json", true).is_none());
    }
}
