//! Providers: one `Provider` trait, the registry built from config, and one module per wire API.
//! A provider only translates and transports; choosing, retrying and accounting live in `gateway`.

pub mod anthropic;
pub mod bedrock;
pub mod cohere;
mod credentials;
mod error;
pub mod gemini;
pub mod native;
pub mod openai_compat;
mod redact;
mod registry;
pub mod sse;
pub mod transport;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::openai::{ChatCompletionRequest, CompletionRequest, EmbeddingsRequest, Usage};

pub use error::ProviderError;
pub use registry::Registry;

/// A stream of OpenAI `chat.completion.chunk` (or `text_completion`) JSON objects, one per item, as
/// they arrive. The end of the stream is the end of the answer; `[DONE]` is not an item.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Bytes, ProviderError>> + Send>>;

/// A whole JSON answer in OpenAI's shape, with the usage read from it.
#[derive(Debug, Clone)]
pub struct JsonReply {
    pub body: Bytes,
    pub usage: Option<Usage>,
}

pub enum Reply {
    Json(JsonReply),
    Stream(ChunkStream),
}

/// One upstream API. Requests arrive with `model` already set to the upstream model id.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider's name in config (`[providers.NAME]`).
    fn name(&self) -> &str;

    /// Whether the provider has what it needs to be called (e.g. its API key is set).
    fn is_configured(&self) -> bool {
        true
    }

    async fn chat(&self, request: &ChatCompletionRequest) -> Result<Reply, ProviderError>;

    async fn completion(&self, request: &CompletionRequest) -> Result<Reply, ProviderError> {
        let _ = request;
        Err(ProviderError::unsupported(self.name(), "model", "the legacy completions endpoint is not supported"))
    }

    async fn embeddings(&self, request: &EmbeddingsRequest) -> Result<JsonReply, ProviderError> {
        let _ = request;
        Err(ProviderError::unsupported(self.name(), "model", "embeddings are not supported"))
    }
}
