//! A translating adapter's two conversions, apart from the HTTP between them: a chat request to the
//! provider's body, and the provider's answer (JSON or stream) to OpenAI's. `Provider::chat` is
//! `encode`, send, `decode`; `benches/providers.rs` measures each half on its own.

use async_trait::async_trait;

use crate::openai::ChatCompletionRequest;
use crate::providers::{ProviderError, Reply};

#[async_trait]
pub trait Codec: Send + Sync {
    /// What decoding an answer needs to remember from its request (e.g. Anthropic's JSON mode).
    type Context: Send;

    /// The provider's request body for `request`, and the context its answer is decoded with.
    fn encode(&self, request: &ChatCompletionRequest) -> Result<(Vec<u8>, Self::Context), ProviderError>;

    /// The provider's answer as OpenAI's: a `chat.completion` body, or a stream of chunks when
    /// `stream`. An error status is read as the provider's error.
    async fn decode(
        &self,
        request: &ChatCompletionRequest,
        context: Self::Context,
        response: reqwest::Response,
    ) -> Result<Reply, ProviderError>;
}
