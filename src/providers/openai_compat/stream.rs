//! Relaying an OpenAI-style SSE stream. Chunks pass through untouched, except where a provider
//! departs from OpenAI's stream contract in a way clients (and the gateway's accounting) notice:
//! - usage inside a chunk that also has choices (Mistral, DeepSeek, Together, Cerebras... on the
//!   finish chunk; xAI and Perplexity on every chunk): the usage moves to one usage-only chunk
//!   (`choices: []`) after the last, as OpenAI sends it, so that a client that did not ask for usage
//!   does not get it and one that did finds it where the OpenAI SDKs look;
//! - Groq's `x_groq.usage` (its finish chunk) when no top-level usage follows;
//! - Azure's leading prompt-filter chunk (`"object": ""`, `choices: []`, no usage), which carries
//!   nothing a chat client can use and trips clients that read `choices[0]`;
//! - DeepSeek's cache hits (`prompt_cache_hit_tokens`) into `prompt_tokens_details.cached_tokens`.
//!
//! Only chunks that mention `"usage"` or `"prompt_filter_results"` are parsed, with borrowed
//! structs; the others are a substring scan each.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::members::{members, without};
use crate::providers::ChunkStream;
use crate::providers::transport::{ErrorDialect, sse_events, upstream_error_as};

/// What the relay needs to know about the provider.
pub struct RelayConfig {
    pub provider: String,
    pub api_key: Option<String>,
    pub errors: ErrorDialect,
    pub cached_tokens_field: Option<&'static str>,
}

/// Upstream SSE events to chunk JSON, as they arrive. `[DONE]` (or the end of the body) ends the
/// stream; an `error` object in the stream becomes an error item.
pub fn relay_chunks(config: RelayConfig, response: reqwest::Response) -> ChunkStream {
    let events = Box::pin(sse_events(config.provider.clone(), response));
    let normalizer = UsageNormalizer::new(config.cached_tokens_field);
    let stream = futures_util::stream::unfold(
        (events, normalizer, config, false),
        |(mut events, mut normalizer, config, mut done)| async move {
            loop {
                if done {
                    return None;
                }
                let event = match events.next().await {
                    Some(Ok(event)) => event,
                    Some(Err(error)) => {
                        done = true;
                        return Some((Err(error), (events, normalizer, config, done)));
                    }
                    None => {
                        done = true;
                        let usage = normalizer.finish()?;
                        return Some((Ok(usage), (events, normalizer, config, done)));
                    }
                };
                if &event.data[..] == b"[DONE]" {
                    done = true;
                    let usage = normalizer.finish()?;
                    return Some((Ok(usage), (events, normalizer, config, done)));
                }
                if memchr::memmem::find(&event.data, b"\"error\"").is_some() && is_error_event(&event.data) {
                    done = true;
                    let error = upstream_error_as(
                        &config.provider,
                        StatusCode::BAD_GATEWAY,
                        &HeaderMap::new(),
                        &event.data,
                        config.api_key.as_deref(),
                        config.errors,
                    );
                    return Some((Err(error), (events, normalizer, config, done)));
                }
                if let Some(chunk) = normalizer.chunk(event.data) {
                    return Some((Ok(chunk), (events, normalizer, config, done)));
                }
            }
        },
    );
    Box::pin(stream)
}

/// An in-stream error object (`{"error": {...}}`), as opposed to a chunk that mentions the word.
fn is_error_event(data: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct ErrorOnly {
        error: Option<IgnoredAny>,
    }
    serde_json::from_slice::<ErrorOnly>(data).is_ok_and(|e| e.error.is_some())
}

/// What the owed usage chunk is made from, read once at the end of a stream.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    x_groq: Option<XGroq<'a>>,
}

#[derive(Deserialize)]
struct XGroq<'a> {
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

/// Per-stream state: the usage chunk still owed to the client.
pub struct UsageNormalizer {
    cached_tokens_field: Option<&'static str>,
    /// The last chunk whose usage came inside a chunk with choices (or in `x_groq`): a usage-only
    /// chunk is made from it after the last chunk, unless the provider sends one itself. Kept as the
    /// chunk (a reference count, no copy) so that providers sending usage on every chunk cost
    /// nothing per chunk for it.
    owed: Option<Bytes>,
}

impl UsageNormalizer {
    pub fn new(cached_tokens_field: Option<&'static str>) -> Self {
        Self { cached_tokens_field, owed: None }
    }

    /// The chunk to send for this upstream chunk, or `None` to send nothing.
    pub fn chunk(&mut self, data: Bytes) -> Option<Bytes> {
        let mentions_usage = memchr::memmem::find(&data, b"\"usage\"").is_some();
        if !mentions_usage && memchr::memmem::find(&data, b"\"prompt_filter_results\"").is_none() {
            return Some(data);
        }
        // A chunk that is not the JSON object we expect is the client's business, not ours.
        let Some([usage, choices, x_groq, filter]) =
            members(&data, [b"usage", b"choices", b"x_groq", b"prompt_filter_results"])
        else {
            return Some(data);
        };
        let usage = usage.filter(|m| &data[m.value.clone()] != b"null");
        let no_choices = choices.is_none_or(|m| is_empty_array(&data[m.value]));
        match usage {
            Some(usage) if no_choices => {
                self.owed = None;
                let text = std::str::from_utf8(&data[usage.value.clone()]).ok()?;
                match self.cached_tokens(text) {
                    Some(usage) => Some(rewrite_field(&data, "usage", Some(&usage)).map_or(data, Bytes::from)),
                    None => Some(data),
                }
            }
            Some(usage) => {
                let chunk = without(&data, &usage).map_or_else(|| data.clone(), Bytes::from);
                self.owed = Some(data);
                Some(chunk)
            }
            None => {
                if x_groq.is_some_and(|m| memchr::memmem::find(&data[m.value], b"\"usage\"").is_some()) {
                    self.owed = Some(data.clone());
                }
                if no_choices && filter.is_some() {
                    return None;
                }
                Some(data)
            }
        }
    }

    /// The usage chunk still owed once the upstream stream is over.
    pub fn finish(&mut self) -> Option<Bytes> {
        let source = self.owed.take()?;
        let envelope = serde_json::from_slice::<Envelope>(&source).ok()?;
        let usage = envelope.usage.or_else(|| envelope.x_groq.as_ref().and_then(|x| x.usage))?.get();
        let raw = |value: Option<&RawValue>, default: &'static str| value.map_or(default, |v| v.get()).to_owned();
        let usage = self.cached_tokens(usage).unwrap_or_else(|| usage.to_owned());
        let chunk = format!(
            r#"{{"id":{},"object":"chat.completion.chunk","created":{},"model":{},"choices":[],"usage":{usage}}}"#,
            raw(envelope.id, r#""""#),
            raw(envelope.created, "0"),
            raw(envelope.model, r#""""#),
        );
        Some(Bytes::from(chunk))
    }

    /// `usage` with the provider's cache-hit count as `prompt_tokens_details.cached_tokens`, when
    /// the provider has such a field and did not set OpenAI's.
    fn cached_tokens(&self, usage: &str) -> Option<String> {
        with_cached_tokens(usage, self.cached_tokens_field?)
    }
}

/// See `UsageNormalizer::cached_tokens`; `None` when nothing changes.
pub fn with_cached_tokens(usage: &str, field: &str) -> Option<String> {
    let mut usage: Map<String, Value> = serde_json::from_str(usage).ok()?;
    let hits = usage.get(field)?.as_u64()?;
    let details = usage.entry("prompt_tokens_details").or_insert_with(|| Value::Object(Map::new()));
    if details.is_null() {
        *details = Value::Object(Map::new());
    }
    let details = details.as_object_mut()?;
    if details.get("cached_tokens").is_some_and(|v| !v.is_null()) {
        return None;
    }
    details.insert("cached_tokens".to_owned(), hits.into());
    serde_json::to_string(&usage).ok()
}

fn is_empty_array(raw: &[u8]) -> bool {
    raw.strip_prefix(b"[").and_then(|rest| rest.strip_suffix(b"]")).is_some_and(|inner| inner.trim_ascii().is_empty())
}

/// The top-level fields of a JSON object, borrowed from it, in order.
struct Fields<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor<'a>(PhantomData<&'a ()>);
        impl<'de> Visitor<'de> for FieldsVisitor<'de> {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<&'de str, &'de RawValue>()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor(PhantomData))
    }
}

/// The object with `field` replaced by `value` (raw JSON), or removed when `value` is `None`; the
/// other fields are copied as they are. `None` when the object cannot be read that way (e.g. an
/// escaped key), in which case the caller keeps the original.
fn rewrite_field(object: &[u8], field: &str, value: Option<&str>) -> Option<Vec<u8>> {
    let Fields(fields) = serde_json::from_slice(object).ok()?;
    let mut out = Vec::with_capacity(object.len() + value.map_or(0, str::len));
    out.push(b'{');
    for (key, raw) in fields {
        let raw = if key == field {
            match value {
                Some(value) => value,
                None => continue,
            }
        } else {
            raw.get()
        };
        if out.len() > 1 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(raw.as_bytes());
    }
    out.push(b'}');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn relay(normalizer: &mut UsageNormalizer, chunks: &[Value]) -> Vec<Value> {
        let mut out: Vec<Value> = chunks
            .iter()
            .filter_map(|c| normalizer.chunk(Bytes::from(c.to_string())))
            .map(|b| serde_json::from_slice(&b).unwrap())
            .collect();
        out.extend(normalizer.finish().map(|b| serde_json::from_slice(&b).unwrap()));
        out
    }

    fn chunk(choices: Value, usage: Value) -> Value {
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m", "choices": choices, "usage": usage})
    }

    #[test]
    fn openai_shaped_streams_pass_untouched() {
        let chunks = [
            chunk(json!([{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}]), Value::Null),
            chunk(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]), Value::Null),
            chunk(json!([]), json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})),
        ];
        assert_eq!(relay(&mut UsageNormalizer::new(None), &chunks), chunks);
        let plain = Bytes::from_static(br#"{"id":"c1","choices":[{"index":0,"delta":{"content":"usage"}}]}"#);
        assert_eq!(UsageNormalizer::new(None).chunk(plain.clone()), Some(plain));
    }

    #[test]
    fn usage_on_the_finish_chunk_moves_to_a_usage_chunk_after_it() {
        let usage = json!({"prompt_tokens": 5, "total_tokens": 8, "completion_tokens": 3});
        let out = relay(
            &mut UsageNormalizer::new(None),
            &[
                chunk(json!([{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}]), Value::Null),
                chunk(json!([{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}]), usage.clone()),
            ],
        );
        assert_eq!(out.len(), 3);
        assert_eq!(out[1]["choices"][0]["finish_reason"], "stop");
        assert!(out[1].get("usage").is_none(), "{}", out[1]);
        assert_eq!(out[1]["id"], "c1");
        assert_eq!(
            out[2],
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m", "choices": [], "usage": usage})
        );
    }

    #[test]
    fn usage_on_every_chunk_is_reported_once_with_the_last_count() {
        let out = relay(
            &mut UsageNormalizer::new(None),
            &[
                chunk(
                    json!([{"index": 0, "delta": {"content": "a"}}]),
                    json!({"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}),
                ),
                chunk(
                    json!([{"index": 0, "delta": {"content": "b"}}]),
                    json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
                ),
            ],
        );
        assert_eq!(out.len(), 3);
        assert!(out[..2].iter().all(|c| c.get("usage").is_none()));
        assert_eq!(out[2]["usage"]["total_tokens"], 7);
    }

    #[test]
    fn a_usage_chunk_from_the_provider_settles_what_was_owed() {
        let out = relay(
            &mut UsageNormalizer::new(None),
            &[
                chunk(
                    json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
                    json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
                ),
                chunk(json!([]), json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})),
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1]["choices"], json!([]));
    }

    #[test]
    fn groq_usage_in_x_groq_is_reported_when_no_usage_chunk_follows() {
        let finish = json!({"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "x_groq": {"id": "req_1", "usage": {"queue_time": 0.01, "prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}}});
        let out = relay(&mut UsageNormalizer::new(None), std::slice::from_ref(&finish));
        assert_eq!(out[0], finish);
        assert_eq!(out[1]["usage"]["total_tokens"], 6);
        let with_usage_chunk = relay(
            &mut UsageNormalizer::new(None),
            &[finish, chunk(json!([]), json!({"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}))],
        );
        assert_eq!(with_usage_chunk.len(), 2);
    }

    #[test]
    fn azure_prompt_filter_chunk_is_dropped() {
        let filter = json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]});
        assert_eq!(UsageNormalizer::new(None).chunk(Bytes::from(filter.to_string())), None);
    }

    #[test]
    fn deepseek_cache_hits_become_cached_tokens() {
        let usage = json!({"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "prompt_cache_hit_tokens": 8, "prompt_cache_miss_tokens": 2});
        let out = relay(
            &mut UsageNormalizer::new(Some("prompt_cache_hit_tokens")),
            &[chunk(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]), usage.clone())],
        );
        assert_eq!(out[1]["usage"]["prompt_tokens_details"], json!({"cached_tokens": 8}));
        assert_eq!(out[1]["usage"]["prompt_cache_hit_tokens"], 8);
        let out = relay(&mut UsageNormalizer::new(Some("prompt_cache_hit_tokens")), &[chunk(json!([]), usage)]);
        assert_eq!(out[0]["usage"]["prompt_tokens_details"]["cached_tokens"], 8);
        let set =
            json!({"prompt_tokens": 1, "prompt_cache_hit_tokens": 1, "prompt_tokens_details": {"cached_tokens": 0}});
        assert_eq!(with_cached_tokens(&set.to_string(), "prompt_cache_hit_tokens"), None);
    }

    #[test]
    fn rewriting_keeps_the_other_fields_byte_for_byte() {
        let object = br#"{"a":"x\"y","usage":{"n":1},"b":[1, 2]}"#;
        assert_eq!(rewrite_field(object, "usage", None).unwrap(), br#"{"a":"x\"y","b":[1, 2]}"#);
        assert_eq!(rewrite_field(object, "usage", Some("null")).unwrap(), br#"{"a":"x\"y","usage":null,"b":[1, 2]}"#);
        assert_eq!(rewrite_field(br#"{"usage":1}"#, "usage", None).unwrap(), b"{}");
        assert!(rewrite_field(br#"{"a\"b":1}"#, "usage", None).is_none());
    }
}
