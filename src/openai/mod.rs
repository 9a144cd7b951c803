//! The OpenAI wire types: our canonical language. Requests keep every field the API accepts and
//! carry fields we do not model in `extra`, so OpenAI-compatible upstreams get them untouched.

pub mod chat;
pub mod content;
pub mod embeddings;
pub mod error;
pub mod legacy;
pub mod models;
pub mod usage;

pub use chat::{ChatCompletionRequest, ChatMessage};
pub use embeddings::EmbeddingsRequest;
pub use error::ErrorBody;
pub use legacy::CompletionRequest;
pub use usage::Usage;

/// Fields the gateway does not model, kept in order so they reach the upstream as sent.
pub type Extra = serde_json::Map<String, serde_json::Value>;
