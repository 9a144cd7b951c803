//! Cohere's native API: chat through `POST /v2/chat` (JSON, or SSE with `stream: true`) and
//! embeddings through `POST /v2/embed`, translated from and to OpenAI's shapes.
//!
//! - `request`: the OpenAI request as Cohere's chat body, or a 400 naming what Cohere cannot take;
//! - `response`: Cohere's answer as a `chat.completion`; `stream`: its events as chunks;
//! - `embed`: embeddings both ways; `error`: Cohere's error bodies and statuses.
//!
//! Where the two APIs differ, this adapter decides:
//! - the text an assistant wrote next to its tool calls is Cohere's `tool_plan` going out; coming
//!   back, the tool plan (and reasoning models' `thinking`) is not OpenAI content and is not shown;
//! - `finish_reason` `ERROR` and `TIMEOUT` are errors (500, 504), not answers;
//! - a named `tool_choice`, `n > 1`, `logit_bias`, `logprobs` (Cohere's per-token-id shape cannot
//!   become OpenAI's), `parallel_tool_calls: false` and mixed `strict` tools are 400s naming them;
//! - `user` and `metadata` (attribution only) are not sent; Cohere's own `k`, `safety_mode` and
//!   `thinking` (chat) and `input_type`, `truncate`, `max_tokens` (embed) pass through as extra
//!   fields; any other extra field is a 400 naming it.

mod embed;
mod error;
mod request;
mod response;
mod stream;

use super::credentials::{check_key, insert_configured_headers, missing_key_env};
use async_trait::async_trait;
use http::{HeaderMap, HeaderValue, header};
use serde::Serialize;

use super::native::{Codec, translated, unix_now};
use super::transport::{post_json, sse_events, transport_error};
use super::{JsonReply, Provider, ProviderError, Reply};
use crate::config::ProviderConfig;
use crate::openai::{ChatCompletionRequest, EmbeddingsRequest};

/// Cohere's production API.
pub const BASE_URL: &str = "https://api.cohere.com";

pub struct Cohere {
    name: String,
    /// Parsed once: reqwest would otherwise parse the URL on every request. `None` only for an
    /// adapter built by hand with a bad base URL (the config loader refuses those).
    chat_url: Option<reqwest::Url>,
    embed_url: Option<reqwest::Url>,
    /// `Authorization` and configured extra headers, built once.
    headers: HeaderMap,
    /// Kept to scrub it from upstream error messages.
    api_key: Option<String>,
    /// Set when the key is missing: requests fail fast naming the variable.
    missing_key_env: Option<String>,
    client: reqwest::Client,
}

impl Cohere {
    pub fn new(name: &str, config: &ProviderConfig, client: reqwest::Client) -> Self {
        let base = config.base_url.as_deref().unwrap_or(BASE_URL).trim_end_matches('/');
        let api_key = config.api_key.as_ref().and_then(|k| k.expose()).map(str::to_owned);
        let mut headers = HeaderMap::new();
        insert_configured_headers(&mut headers, config);
        if let Some(key) = &api_key
            && let Ok(mut value) = HeaderValue::try_from(format!("Bearer {key}"))
        {
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        let missing_key_env = (!headers.contains_key(header::AUTHORIZATION)).then(|| missing_key_env(config));
        let url = |path: &str| reqwest::Url::parse(&format!("{base}{path}")).ok();
        Self {
            name: name.to_owned(),
            chat_url: url("/v2/chat"),
            embed_url: url("/v2/embed"),
            headers,
            api_key,
            missing_key_env,
            client,
        }
    }

    fn check_credentials(&self) -> Result<(), ProviderError> {
        check_key(&self.name, self.missing_key_env.as_ref())
    }

    /// Posts `body`; an answer other than 2xx is the upstream's error.
    async fn post(
        &self,
        url: Option<&reqwest::Url>,
        body: &impl Serialize,
    ) -> Result<reqwest::Response, ProviderError> {
        let body = serde_json::to_vec(body).map_err(|e| ProviderError::invalid_request("body", e.to_string()))?;
        let response = self.send(url, body).await?;
        if !response.status().is_success() {
            return Err(error::read_error(&self.name, response, self.api_key.as_deref()).await);
        }
        Ok(response)
    }

    async fn send(&self, url: Option<&reqwest::Url>, body: Vec<u8>) -> Result<reqwest::Response, ProviderError> {
        self.check_credentials()?;
        let url = url.ok_or_else(|| ProviderError::Connect {
            provider: self.name.clone(),
            detail: "the base URL is not a valid URL".to_owned(),
        })?;
        post_json(&self.name, &self.client, url.clone(), self.headers.clone(), body).await
    }

    async fn body(&self, response: reqwest::Response) -> Result<bytes::Bytes, ProviderError> {
        response.bytes().await.map_err(|e| transport_error(&self.name, &e))
    }
}

#[async_trait]
impl Provider for Cohere {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_configured(&self) -> bool {
        self.missing_key_env.is_none()
    }

    async fn chat(&self, request: &ChatCompletionRequest) -> Result<Reply, ProviderError> {
        let (body, ()) = self.encode(request)?;
        let response = self.send(self.chat_url.as_ref(), body).await?;
        self.decode(request, (), response).await
    }

    async fn embeddings(&self, request: &EmbeddingsRequest) -> Result<JsonReply, ProviderError> {
        let (body, encoding) = embed::embed_body(&self.name, request)?;
        let response = self.post(self.embed_url.as_ref(), &body).await?;
        let body = self.body(response).await?;
        embed::embeddings_list(&self.name, &request.model, &body, encoding)
    }
}

#[async_trait]
impl Codec for Cohere {
    type Context = ();

    fn encode(&self, request: &ChatCompletionRequest) -> Result<(Vec<u8>, ()), ProviderError> {
        let body = request::chat_body(&self.name, request)?;
        let body = serde_json::to_vec(&body).map_err(|e| ProviderError::invalid_request("body", e.to_string()))?;
        Ok((body, ()))
    }

    async fn decode(
        &self,
        request: &ChatCompletionRequest,
        (): (),
        response: reqwest::Response,
    ) -> Result<Reply, ProviderError> {
        if !response.status().is_success() {
            return Err(error::read_error(&self.name, response, self.api_key.as_deref()).await);
        }
        if request.is_stream() {
            let translator =
                stream::CohereStream::new(self.name.clone(), self.api_key.clone(), request.model.clone(), unix_now());
            return Ok(Reply::Stream(translated(sse_events(self.name.clone(), response), translator)));
        }
        let body = self.body(response).await?;
        response::completion(&self.name, &request.model, &body, self.api_key.as_deref()).map(Reply::Json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProviderKind, Secret};

    #[test]
    fn urls_and_headers_built_once() {
        let config = ProviderConfig {
            api_key: Some(Secret::literal("co-key")),
            headers: [("X-Client-Name".to_owned(), "cherrypick".to_owned())].into(),
            ..ProviderConfig::new(ProviderKind::Cohere)
        };
        let cohere = Cohere::new("cohere", &config, reqwest::Client::new());
        assert_eq!(cohere.chat_url.as_ref().unwrap().as_str(), "https://api.cohere.com/v2/chat");
        assert_eq!(cohere.embed_url.as_ref().unwrap().as_str(), "https://api.cohere.com/v2/embed");
        assert_eq!(cohere.headers.get(header::AUTHORIZATION).unwrap(), "Bearer co-key");
        assert!(cohere.headers.get(header::AUTHORIZATION).unwrap().is_sensitive());
        assert_eq!(cohere.headers.get("x-client-name").unwrap(), "cherrypick");
        assert!(cohere.is_configured());

        let config = ProviderConfig { base_url: Some("http://localhost:8080/".into()), ..config };
        let cohere = Cohere::new("cohere", &config, reqwest::Client::new());
        assert_eq!(cohere.chat_url.as_ref().unwrap().as_str(), "http://localhost:8080/v2/chat");
    }

    #[test]
    fn a_missing_key_fails_fast_naming_the_variable() {
        let config = ProviderConfig {
            api_key: Some(Secret::parse("env::CO_API_KEY", |_| None)),
            ..ProviderConfig::new(ProviderKind::Cohere)
        };
        let cohere = Cohere::new("cohere", &config, reqwest::Client::new());
        assert!(!cohere.is_configured());
        assert_eq!(
            cohere.check_credentials().unwrap_err().to_string(),
            "provider `cohere` has no API key: set `CO_API_KEY`"
        );
    }
}
