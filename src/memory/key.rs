//! Cache keys. The exact key hashes everything that shapes an answer, read from a fully
//! destructured request: a field added to the request type does not compile here until someone
//! decides whether it belongs in the key. The semantic partition is the same minus the last user
//! message, which is compared by meaning instead.

use std::io::Write;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::openai::content::MessageContent;
use crate::openai::{ChatCompletionRequest, ChatMessage, EmbeddingsRequest};

/// A SHA-256 digest: collisions cannot be forged, so one tenant cannot be served another's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    pub fn hex(&self) -> String {
        use std::fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// The first eight bytes, as an id for vector stores that key points by integer.
    pub fn short(&self) -> u64 {
        u64::from_be_bytes(self.0[..8].try_into().expect("eight bytes"))
    }
}

/// Who may see an entry and which answer space it belongs to: the tenant (derived from the caller's
/// key), the target (public model name, or the routing policy with its per-request hints).
pub struct Scope<'a> {
    pub tenant: &'a str,
    pub target: &'a str,
}

/// Hashes serialisable parts into a digest, each tagged so that two parts can never run together.
struct Hasher(Sha256);

impl Hasher {
    fn new(domain: &str) -> Self {
        let mut hasher = Self(Sha256::new());
        hasher.text(domain);
        hasher
    }

    fn text(&mut self, text: &str) {
        self.0.update((text.len() as u64).to_le_bytes());
        self.0.update(text.as_bytes());
    }

    fn json(&mut self, value: &impl Serialize) {
        // Serialising straight into the digest: no intermediate buffer. Cannot fail for these types.
        let _ = serde_json::to_writer(&mut *self, value);
        self.0.update([0xff]);
    }

    fn finish(self) -> Key {
        Key(self.0.finalize().into())
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ChatCompletionRequest {
    /// Whether the answer is reproducible: temperature 0 or a fixed seed.
    pub fn is_deterministic(&self) -> bool {
        self.temperature == Some(0.0) || self.seed.is_some()
    }
}

/// What shapes a chat answer besides the conversation, and the conversation.
fn chat_parts(request: &ChatCompletionRequest) -> (impl Serialize + '_, &[ChatMessage]) {
    let ChatCompletionRequest {
        // The target in `scope` replaces it: aliases of one model share entries.
        model: _,
        messages,
        // How the answer is delivered, not what it is: a stored answer replays either way.
        stream: _,
        stream_options: _,
        temperature,
        top_p,
        n,
        stop,
        max_tokens,
        max_completion_tokens,
        presence_penalty,
        frequency_penalty,
        logit_bias,
        logprobs,
        top_logprobs,
        seed,
        // End-user id and metadata are for the provider's records; they do not change the answer.
        user: _,
        metadata: _,
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format,
        // Fields we do not model (reasoning_effort, modalities, ...) may change the answer: all count.
        extra,
    } = request;
    let shaping = (
        (temperature, top_p, n, stop, max_tokens, max_completion_tokens),
        (presence_penalty, frequency_penalty, logit_bias, logprobs, top_logprobs, seed),
        (tools, tool_choice, parallel_tool_calls, response_format, extra),
    );
    (shaping, messages)
}

/// The exact cache key of a chat request.
pub fn chat_key(scope: &Scope<'_>, request: &ChatCompletionRequest) -> Key {
    let (shaping, messages) = chat_parts(request);
    let mut exact = Hasher::new("chat/exact/v1");
    exact.text(scope.tenant);
    exact.text(scope.target);
    exact.json(&shaping);
    exact.json(&messages);
    exact.finish()
}

/// For a conversation that ends with a plain-text user message: the semantic partition that
/// message is compared within (everything but its text), and its text. Computed only once the
/// exact key has missed.
pub fn chat_question(scope: &Scope<'_>, request: &ChatCompletionRequest) -> Option<(Key, String)> {
    let (shaping, messages) = chat_parts(request);
    let (ChatMessage::User(last), before) = messages.split_last()? else { return None };
    let text = plain_text(&last.content)?;
    let mut partition = Hasher::new("chat/semantic/v1");
    partition.text(scope.tenant);
    partition.text(scope.target);
    partition.json(&shaping);
    partition.json(&before);
    partition.json(&(&last.name, &last.extra));
    Some((partition.finish(), text))
}

/// The text of a message with no images, audio or files (those are not compared by meaning).
fn plain_text(content: &MessageContent) -> Option<String> {
    content.is_text_only().then(|| content.text())
}

pub fn embeddings_key(scope: &Scope<'_>, request: &EmbeddingsRequest) -> Key {
    let EmbeddingsRequest { model: _, input, encoding_format, dimensions, user: _, extra } = request;
    let mut key = Hasher::new("embeddings/v1");
    key.text(scope.tenant);
    key.text(scope.target);
    key.json(&(input, encoding_format, dimensions, extra));
    key.finish()
}

/// The tenant of a caller: a digest of the key it presented (never the key itself), or `public`.
pub fn tenant_of(api_key: Option<&[u8]>) -> String {
    match api_key {
        None => "public".to_owned(),
        Some(key) => {
            let digest = Sha256::digest(key);
            Key(digest.into()).hex()[..32].to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> ChatCompletionRequest {
        serde_json::from_value(json).unwrap()
    }

    struct Keys {
        exact: Key,
        semantic: Option<(Key, String)>,
    }

    fn keys(tenant: &str, target: &str, json: serde_json::Value) -> Keys {
        let (scope, request) = (Scope { tenant, target }, request(json));
        Keys { exact: chat_key(&scope, &request), semantic: chat_question(&scope, &request) }
    }

    fn base() -> serde_json::Value {
        serde_json::json!({"model": "m", "temperature": 0, "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "What is Rust?"}
        ]})
    }

    #[test]
    fn delivery_fields_do_not_change_the_key_but_everything_that_shapes_the_answer_does() {
        let reference = keys("t", "m", base()).exact;
        let mut same = base();
        same["stream"] = true.into();
        same["user"] = "alice".into();
        same["model"] = "alias-of-m".into();
        same["metadata"] = serde_json::json!({"trace": "1"});
        assert_eq!(keys("t", "m", same).exact, reference);

        let changes: Vec<(&str, serde_json::Value)> = vec![
            ("temperature", 0.5.into()),
            ("max_tokens", 10.into()),
            ("seed", 1.into()),
            ("stop", "x".into()),
            ("tools", serde_json::json!([{"type": "function", "function": {"name": "f"}}])),
            ("response_format", serde_json::json!({"type": "json_object"})),
            ("reasoning_effort", "high".into()),
        ];
        for (field, value) in changes {
            let mut changed = base();
            changed[field] = value;
            assert_ne!(keys("t", "m", changed).exact, reference, "{field} must be part of the key");
        }
        assert_ne!(keys("other", "m", base()).exact, reference, "tenants never share");
        assert_ne!(keys("t", "auto:cheap", base()).exact, reference, "targets never share");
    }

    #[test]
    fn the_partition_covers_the_conversation_before_the_last_user_message() {
        let (partition, text) = keys("t", "m", base()).semantic.unwrap();
        assert_eq!(text, "What is Rust?");
        let mut reworded = base();
        reworded["messages"][1]["content"] = "Tell me what Rust is".into();
        assert_eq!(keys("t", "m", reworded.clone()).semantic.unwrap().0, partition);
        assert_ne!(keys("t", "m", reworded).exact, keys("t", "m", base()).exact);

        let mut other_system = base();
        other_system["messages"][0]["content"] = "be verbose".into();
        assert_ne!(keys("t", "m", other_system).semantic.unwrap().0, partition);
        assert_ne!(keys("u", "m", base()).semantic.unwrap().0, partition);

        let mut ends_with_assistant = base();
        ends_with_assistant["messages"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"role": "assistant", "content": "hi"}));
        assert!(keys("t", "m", ends_with_assistant).semantic.is_none());
        let mut image = base();
        image["messages"][1]["content"] = serde_json::json!([{"type": "image_url", "image_url": {"url": "data:,"}}]);
        assert!(keys("t", "m", image).semantic.is_none());
    }

    #[test]
    fn tenants_are_digests_of_the_key() {
        let tenant = tenant_of(Some(b"sk-secret"));
        assert_eq!(tenant.len(), 32);
        assert!(!tenant.contains("secret"));
        assert_eq!(tenant, tenant_of(Some(b"sk-secret")));
        assert_ne!(tenant, tenant_of(Some(b"sk-other")));
        assert_eq!(tenant_of(None), "public");
    }
}
