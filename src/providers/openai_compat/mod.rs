//! One adapter for every provider that speaks OpenAI's API: requests go out as they came in, with the
//! preset's quirks applied (`request.rs`); answers come back as they are, apart from reading their
//! usage, the provider's error dialect (`errors.rs`) and the few stream departures from OpenAI's
//! contract that clients notice (`stream.rs`).

mod errors;
mod members;
mod presets;
mod request;
mod stream;

use super::credentials::{check_key, insert_configured_headers, missing_key_env};
use std::borrow::Cow;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use serde::Serialize;

pub use presets::{Auth, Preset, Quirks, preset};
use stream::{RelayConfig, relay_chunks};

use super::native::Codec;
use super::transport::{ErrorDialect, post_json, read_error_as, transport_error};
use super::{JsonReply, Provider, ProviderError, Reply};
use crate::config::ProviderConfig;
use crate::openai::{ChatCompletionRequest, CompletionRequest, EmbeddingsRequest, Usage};

pub struct OpenAiCompatible {
    name: String,
    endpoints: Endpoints,
    /// Authentication and configured extra headers, built once.
    headers: HeaderMap,
    /// Kept to scrub it from upstream error messages.
    api_key: Option<String>,
    /// Set when a required key is missing: requests fail fast naming the variable.
    missing_key_env: Option<String>,
    quirks: Quirks,
    /// Reads the provider's error bodies.
    errors: ErrorDialect,
    client: reqwest::Client,
}

/// Where requests go: fixed URLs, or Azure's URL per deployment (the upstream model id).
enum Endpoints {
    /// Parsed once: reqwest would otherwise parse (and IDNA-map) the URL on every request.
    Fixed { chat: reqwest::Url, completions: reqwest::Url, embeddings: reqwest::Url },
    /// `{base}/openai/deployments/{deployment}/{path}?api-version={version}`.
    Azure { base: reqwest::Url, api_version: String },
}

#[derive(Clone, Copy)]
enum Api {
    Chat,
    Completions,
    Embeddings,
}

impl Endpoints {
    fn url(&self, api: Api, model: &str) -> reqwest::Url {
        match self {
            Self::Fixed { chat, completions, embeddings } => match api {
                Api::Chat => chat.clone(),
                Api::Completions => completions.clone(),
                Api::Embeddings => embeddings.clone(),
            },
            Self::Azure { base, api_version } => {
                let mut url = base.clone();
                if let Ok(mut segments) = url.path_segments_mut() {
                    segments.pop_if_empty().extend(["openai", "deployments", model]);
                    match api {
                        Api::Chat => segments.extend(["chat", "completions"]),
                        Api::Completions => segments.push("completions"),
                        Api::Embeddings => segments.push("embeddings"),
                    };
                }
                url.query_pairs_mut().append_pair("api-version", api_version);
                url
            }
        }
    }
}

/// Azure OpenAI's current GA data-plane version.
pub const AZURE_API_VERSION: &str = "2024-10-21";

impl OpenAiCompatible {
    pub fn new(name: &str, config: &ProviderConfig, client: reqwest::Client) -> Self {
        let preset = preset(config.kind);
        let base = config.base_url.as_deref().unwrap_or(preset.base_url).trim_end_matches('/');
        let api_key = config.api_key.as_ref().and_then(|k| k.expose()).map(str::to_owned);
        let mut headers = HeaderMap::new();
        let bearer = match preset.auth {
            Auth::AzureKey => config.azure_ad_token.as_ref().and_then(|t| t.expose()),
            Auth::Bearer | Auth::OptionalBearer => api_key.as_deref(),
        };
        if let Some(token) = bearer
            && let Ok(mut value) = HeaderValue::try_from(format!("Bearer {token}"))
        {
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        } else if preset.auth == Auth::AzureKey
            && let Some(key) = &api_key
            && let Ok(mut value) = HeaderValue::try_from(key.as_str())
        {
            value.set_sensitive(true);
            headers.insert("api-key", value);
        }
        insert_configured_headers(&mut headers, config);
        let missing_key_env = match preset.auth {
            Auth::Bearer | Auth::AzureKey
                if !headers.contains_key(header::AUTHORIZATION) && !headers.contains_key("api-key") =>
            {
                Some(missing_key_env(config))
            }
            _ => None,
        };
        // The config loader checked that the base URL parses; the placeholder only serves tests
        // that build an adapter by hand.
        let url = |path: &str| {
            reqwest::Url::parse(&format!("{base}{path}"))
                .unwrap_or_else(|_| reqwest::Url::parse("http://invalid./").expect("valid"))
        };
        let endpoints = match preset.auth {
            Auth::AzureKey => Endpoints::Azure {
                base: url(""),
                api_version: config.api_version.clone().unwrap_or_else(|| AZURE_API_VERSION.to_owned()),
            },
            _ => Endpoints::Fixed {
                chat: url("/chat/completions"),
                completions: url("/completions"),
                embeddings: url("/embeddings"),
            },
        };
        Self {
            name: name.to_owned(),
            endpoints,
            headers,
            api_key,
            missing_key_env,
            quirks: preset.quirks,
            errors: preset.errors,
            client,
        }
    }

    fn check_credentials(&self) -> Result<(), ProviderError> {
        check_key(&self.name, self.missing_key_env.as_ref())
    }

    async fn post(&self, api: Api, model: &str, body: &impl Serialize) -> Result<reqwest::Response, ProviderError> {
        self.check_credentials()?;
        let body = serde_json::to_vec(body).map_err(|e| ProviderError::invalid_response(&self.name, e.to_string()))?;
        post_json(&self.name, &self.client, self.endpoints.url(api, model), self.headers.clone(), body).await
    }

    /// The body of a successful answer, or the provider's error read with its dialect.
    async fn ok_response(&self, response: reqwest::Response) -> Result<reqwest::Response, ProviderError> {
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(read_error_as(&self.name, response, self.api_key.as_deref(), self.errors).await)
        }
    }

    async fn json_reply(&self, response: reqwest::Response) -> Result<JsonReply, ProviderError> {
        let response = self.ok_response(response).await?;
        let mut body = response.bytes().await.map_err(|e| transport_error(&self.name, &e))?;
        if let Some(field) = self.quirks.cached_tokens_field
            && let Some(patched) = with_cached_tokens_in_body(&body, field)
        {
            body = patched;
        }
        let usage = Usage::from_response(&body)
            .map_err(|e| ProviderError::invalid_response(&self.name, format!("not JSON: {e}")))?;
        Ok(JsonReply { body, usage })
    }

    async fn reply(&self, response: reqwest::Response, stream: bool) -> Result<Reply, ProviderError> {
        if !stream {
            return self.json_reply(response).await.map(Reply::Json);
        }
        let response = self.ok_response(response).await?;
        let config = RelayConfig {
            provider: self.name.clone(),
            api_key: self.api_key.clone(),
            errors: self.errors,
            cached_tokens_field: self.quirks.cached_tokens_field,
        };
        Ok(Reply::Stream(relay_chunks(config, response)))
    }

    /// Applies the preset's quirks: a borrowed request when nothing needs to change.
    fn adapt<'a>(&self, request: &'a ChatCompletionRequest) -> Result<Cow<'a, ChatCompletionRequest>, ProviderError> {
        request::adapt(&self.name, &self.quirks, request)
    }
}

/// A whole answer whose usage counts cache hits in the provider's own field (DeepSeek), with
/// OpenAI's `prompt_tokens_details.cached_tokens` added; `None` when nothing changes.
fn with_cached_tokens_in_body(body: &[u8], field: &str) -> Option<Bytes> {
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let usage = value.get_mut("usage")?;
    let patched = stream::with_cached_tokens(&usage.to_string(), field)?;
    *usage = serde_json::from_str(&patched).ok()?;
    serde_json::to_vec(&value).ok().map(Bytes::from)
}

#[async_trait]
impl Provider for OpenAiCompatible {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_configured(&self) -> bool {
        self.missing_key_env.is_none()
    }

    async fn chat(&self, request: &ChatCompletionRequest) -> Result<Reply, ProviderError> {
        let (body, ()) = self.encode(request)?;
        self.check_credentials()?;
        let url = self.endpoints.url(Api::Chat, &request.model);
        let response = post_json(&self.name, &self.client, url, self.headers.clone(), body).await?;
        self.decode(request, (), response).await
    }

    async fn completion(&self, request: &CompletionRequest) -> Result<Reply, ProviderError> {
        let response = self.post(Api::Completions, &request.model, request).await?;
        self.reply(response, request.is_stream()).await
    }

    async fn embeddings(&self, request: &EmbeddingsRequest) -> Result<JsonReply, ProviderError> {
        let request = request::adapt_embeddings(&self.quirks, request);
        let response = self.post(Api::Embeddings, &request.model, &*request).await?;
        self.json_reply(response).await
    }
}

#[async_trait]
impl Codec for OpenAiCompatible {
    type Context = ();

    fn encode(&self, request: &ChatCompletionRequest) -> Result<(Vec<u8>, ()), ProviderError> {
        let request = self.adapt(request)?;
        let body = serde_json::to_vec(&*request).map_err(|e| ProviderError::invalid_request("body", e.to_string()))?;
        Ok((body, ()))
    }

    async fn decode(
        &self,
        request: &ChatCompletionRequest,
        (): (),
        response: reqwest::Response,
    ) -> Result<Reply, ProviderError> {
        self.reply(response, request.is_stream()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProviderKind, Secret};
    use serde_json::json;

    fn adapter(kind: ProviderKind) -> OpenAiCompatible {
        let config = ProviderConfig { api_key: Some(Secret::literal("k")), ..ProviderConfig::new(kind) };
        OpenAiCompatible::new("p", &config, reqwest::Client::new())
    }

    fn request(extra: serde_json::Value) -> ChatCompletionRequest {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn openai_gets_the_request_untouched() {
        let request = request(json!({"max_completion_tokens": 5, "seed": 1, "user": "u", "n": 3}));
        assert!(matches!(adapter(ProviderKind::Openai).adapt(&request).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn mistral_renames_seed_and_max_tokens_and_drops_attribution() {
        let request = request(json!({"max_completion_tokens": 5, "seed": 1, "user": "u"}));
        let adapted = adapter(ProviderKind::Mistral).adapt(&request).unwrap();
        let body = serde_json::to_value(&*adapted).unwrap();
        assert_eq!(body["max_tokens"], 5);
        assert_eq!(body["random_seed"], 1);
        assert!(
            body.get("seed").is_none() && body.get("user").is_none() && body.get("max_completion_tokens").is_none()
        );
    }

    #[test]
    fn unsupported_parameters_are_a_clear_error_naming_them() {
        let err = adapter(ProviderKind::Groq).adapt(&request(json!({"n": 2}))).unwrap_err();
        assert!(matches!(&err, ProviderError::Unsupported { param, .. } if param == "n"), "{err}");
        let err = adapter(ProviderKind::Cerebras).adapt(&request(json!({"frequency_penalty": 0.1}))).unwrap_err();
        assert!(matches!(&err, ProviderError::Unsupported { param, .. } if param == "frequency_penalty"), "{err}");
    }

    #[test]
    fn azure_posts_to_the_deployment_with_its_api_version_and_key() {
        let config = ProviderConfig {
            base_url: Some("https://contoso.openai.azure.com/".into()),
            api_key: Some(Secret::literal("azure-key")),
            ..ProviderConfig::new(ProviderKind::Azure)
        };
        let azure = OpenAiCompatible::new("azure", &config, reqwest::Client::new());
        assert_eq!(
            azure.endpoints.url(Api::Chat, "gpt 4o/x").as_str(),
            "https://contoso.openai.azure.com/openai/deployments/gpt%204o%2Fx/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(azure.headers.get("api-key").unwrap(), "azure-key");
        assert!(azure.headers.get(header::AUTHORIZATION).is_none());

        let config = ProviderConfig {
            base_url: Some("https://contoso.openai.azure.com".into()),
            azure_ad_token: Some(Secret::literal("entra")),
            api_version: Some("2025-01-01-preview".into()),
            ..ProviderConfig::new(ProviderKind::Azure)
        };
        let azure = OpenAiCompatible::new("azure", &config, reqwest::Client::new());
        assert!(azure.is_configured());
        assert_eq!(azure.headers.get(header::AUTHORIZATION).unwrap(), "Bearer entra");
        assert!(
            azure
                .endpoints
                .url(Api::Embeddings, "emb")
                .as_str()
                .ends_with("/openai/deployments/emb/embeddings?api-version=2025-01-01-preview")
        );
        let unconfigured =
            OpenAiCompatible::new("azure", &ProviderConfig::new(ProviderKind::Azure), reqwest::Client::new());
        assert!(!unconfigured.is_configured());
    }

    #[test]
    fn every_preset_has_an_absolute_base_url() {
        for kind in ProviderKind::PRESETS {
            assert!(reqwest::Url::parse(preset(kind).base_url).is_ok(), "{kind:?}");
        }
    }

    #[test]
    fn a_missing_required_key_fails_fast_naming_the_variable() {
        let config = ProviderConfig {
            api_key: Some(Secret::parse("env::GROQ_API_KEY", |_| None)),
            ..ProviderConfig::new(ProviderKind::Groq)
        };
        let adapter = OpenAiCompatible::new("groq", &config, reqwest::Client::new());
        assert!(!adapter.is_configured());
        let err = adapter.check_credentials().unwrap_err();
        assert_eq!(err.to_string(), "provider `groq` has no API key: set `GROQ_API_KEY`");
    }
}
