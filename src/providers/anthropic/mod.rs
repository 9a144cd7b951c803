//! Anthropic's Messages API (`POST {base_url}/v1/messages`): OpenAI chat requests translated to
//! Messages requests (`request.rs`), answers back to `chat.completion` bodies (`response.rs`) and
//! streams to chunks (`stream.rs`), errors read in Anthropic's shape (`error.rs`).
//!
//! Authentication is the `x-api-key` header with `anthropic-version` (default [`API_VERSION`], the
//! provider's `api_version` overrides it); no `Authorization` header is sent. `base_url` is the API
//! root (default `https://api.anthropic.com`; a trailing `/v1` is taken as the same root). Anthropic has no embeddings API, so
//! `embeddings` keeps the trait's 400.

mod error;
mod request;
mod response;
mod stream;

use super::credentials::{check_key, insert_configured_headers, missing_key_env};
use async_trait::async_trait;
use http::{HeaderMap, HeaderValue};

use super::native::{Codec, translated};
use super::transport::{post_json, read_error_as, sse_events, transport_error};
use super::{JsonReply, Provider, ProviderError, Reply};
use crate::config::ProviderConfig;
use crate::openai::ChatCompletionRequest;

pub const BASE_URL: &str = "https://api.anthropic.com";

/// The `anthropic-version` sent unless the provider's `api_version` says otherwise.
pub const API_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    name: String,
    /// `{base_url}/v1/messages`, parsed once (`None` if `base_url` does not parse: the config loader
    /// rejects that, only adapters built by hand can have it).
    messages_url: Option<reqwest::Url>,
    /// `x-api-key`, `anthropic-version` and the configured extra headers (e.g. `anthropic-beta`).
    headers: HeaderMap,
    /// Kept to scrub it from upstream error messages.
    api_key: Option<String>,
    /// Set when the key is missing: requests fail fast naming the variable.
    missing_key_env: Option<String>,
    client: reqwest::Client,
}

impl Anthropic {
    pub fn new(name: &str, config: &ProviderConfig, client: reqwest::Client) -> Self {
        let base = config.base_url.as_deref().unwrap_or(BASE_URL).trim_end_matches('/');
        // A base written the OpenAI way, with its `/v1`, means the same root.
        let base = base.strip_suffix("/v1").unwrap_or(base);
        let api_key = config.api_key.as_ref().and_then(|k| k.expose()).filter(|k| !k.is_empty()).map(str::to_owned);
        let mut headers = HeaderMap::new();
        if let Some(key) = &api_key
            && let Ok(mut value) = HeaderValue::try_from(key.as_str())
        {
            value.set_sensitive(true);
            headers.insert("x-api-key", value);
        }
        let version = config.api_version.as_deref().unwrap_or(API_VERSION);
        if let Ok(value) = HeaderValue::try_from(version) {
            headers.insert("anthropic-version", value);
        }
        insert_configured_headers(&mut headers, config);
        let missing_key_env = (!headers.contains_key("x-api-key")).then(|| missing_key_env(config));
        let messages_url = reqwest::Url::parse(&format!("{base}/v1/messages")).ok();
        Self { name: name.to_owned(), messages_url, headers, api_key, missing_key_env, client }
    }

    fn check_credentials(&self) -> Result<(), ProviderError> {
        check_key(&self.name, self.missing_key_env.as_ref())
    }
}

#[async_trait]
impl Provider for Anthropic {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_configured(&self) -> bool {
        self.missing_key_env.is_none()
    }

    async fn chat(&self, request: &ChatCompletionRequest) -> Result<Reply, ProviderError> {
        let (body, json_mode) = self.encode(request)?;
        self.check_credentials()?;
        let Some(url) = self.messages_url.clone() else {
            return Err(ProviderError::Connect {
                provider: self.name.clone(),
                detail: "`base_url` is not a URL".into(),
            });
        };
        let response = post_json(&self.name, &self.client, url, self.headers.clone(), body).await?;
        self.decode(request, json_mode, response).await
    }
}

#[async_trait]
impl Codec for Anthropic {
    type Context = Option<request::JsonMode>;

    fn encode(&self, request: &ChatCompletionRequest) -> Result<(Vec<u8>, Self::Context), ProviderError> {
        let (body, json_mode) = request::messages_request(&self.name, request)?;
        let body = serde_json::to_vec(&body).map_err(|e| ProviderError::invalid_request("messages", e.to_string()))?;
        Ok((body, json_mode))
    }

    async fn decode(
        &self,
        request: &ChatCompletionRequest,
        json_mode: Self::Context,
        response: reqwest::Response,
    ) -> Result<Reply, ProviderError> {
        if !response.status().is_success() {
            return Err(read_error_as(&self.name, response, self.api_key.as_deref(), error::anthropic_error).await);
        }
        if request.is_stream() {
            let events = sse_events(self.name.clone(), response);
            let translator = stream::StreamTranslator::new(self.name.clone(), self.api_key.clone(), json_mode);
            return Ok(Reply::Stream(translated(events, translator)));
        }
        let body = response.bytes().await.map_err(|e| transport_error(&self.name, &e))?;
        let (body, usage) = response::completion(&self.name, &body, json_mode.as_ref())?;
        Ok(Reply::Json(JsonReply { body, usage }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProviderKind, Secret};

    #[test]
    fn posts_to_the_messages_url_with_its_key_and_version_headers() {
        let config = ProviderConfig {
            api_key: Some(Secret::literal("sk-ant-test")),
            headers: [("anthropic-beta".to_owned(), "prompt-caching-2024-07-31".to_owned())].into(),
            ..ProviderConfig::new(ProviderKind::Anthropic)
        };
        let anthropic = Anthropic::new("anthropic", &config, reqwest::Client::new());
        assert!(anthropic.is_configured());
        assert_eq!(anthropic.messages_url.as_ref().unwrap().as_str(), "https://api.anthropic.com/v1/messages");
        assert_eq!(anthropic.headers.get("x-api-key").unwrap(), "sk-ant-test");
        assert!(anthropic.headers.get("x-api-key").unwrap().is_sensitive());
        assert_eq!(anthropic.headers.get("anthropic-version").unwrap(), API_VERSION);
        assert_eq!(anthropic.headers.get("anthropic-beta").unwrap(), "prompt-caching-2024-07-31");
        assert!(anthropic.headers.get(http::header::AUTHORIZATION).is_none());

        let config = ProviderConfig {
            base_url: Some("http://127.0.0.1:9/v1/".into()),
            api_key: Some(Secret::literal("k")),
            api_version: Some("2024-01-01".into()),
            ..ProviderConfig::new(ProviderKind::Anthropic)
        };
        let anthropic = Anthropic::new("a", &config, reqwest::Client::new());
        assert_eq!(anthropic.messages_url.as_ref().unwrap().as_str(), "http://127.0.0.1:9/v1/messages");
        assert_eq!(anthropic.headers.get("anthropic-version").unwrap(), "2024-01-01");
    }

    #[tokio::test]
    async fn a_missing_key_fails_fast_naming_the_variable() {
        let config = ProviderConfig {
            api_key: Some(Secret::parse("env::ANTHROPIC_API_KEY", |_| None)),
            ..ProviderConfig::new(ProviderKind::Anthropic)
        };
        let anthropic = Anthropic::new("anthropic", &config, reqwest::Client::new());
        assert!(!anthropic.is_configured());
        let request: ChatCompletionRequest = serde_json::from_value(
            serde_json::json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap();
        let Err(err) = anthropic.chat(&request).await else { panic!("answered without a key") };
        assert_eq!(err.to_string(), "provider `anthropic` has no API key: set `ANTHROPIC_API_KEY`");
    }

    #[tokio::test]
    async fn no_embeddings_api() {
        let anthropic =
            Anthropic::new("anthropic", &ProviderConfig::new(ProviderKind::Anthropic), reqwest::Client::new());
        let request: crate::openai::EmbeddingsRequest =
            serde_json::from_value(serde_json::json!({"model": "claude", "input": "hi"})).unwrap();
        assert!(matches!(anthropic.embeddings(&request).await, Err(ProviderError::Unsupported { .. })));
    }
}
