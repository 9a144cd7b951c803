//! Google's Gemini models, on the Gemini API (`kind = "gemini"`, an API key) and on Vertex AI
//! (`kind = "vertex_ai"`, a service account): the same `generateContent` translation, different
//! URLs and authentication.

mod auth;
mod embeddings;
mod error;
mod request;
mod response;
mod schema;
mod stream;

use super::credentials::insert_configured_headers;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, header};
use serde::Serialize;

use self::auth::{ServiceAccount, TokenSource};
use self::embeddings::{BatchEmbedContents, Embed, Predict};
use self::request::Flavor;
use self::response::GenerateContentResponse;
use self::stream::GeminiStream;
use super::native::{Codec, translated};
use super::transport::{post_json, sse_events, transport_error};
use super::{JsonReply, Provider, ProviderError, Reply};
use crate::config::{ProviderConfig, ProviderKind};
use crate::openai::{ChatCompletionRequest, EmbeddingsRequest};

const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com";
const GEMINI_API_VERSION: &str = "v1beta";
const VERTEX_API_VERSION: &str = "v1";
const VERTEX_LOCATION: &str = "us-central1";
const CREDENTIALS_ENV: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// Vertex embedding calls in flight at once for models that take one text per call.
const VERTEX_EMBED_CONCURRENCY: usize = 8;

pub struct Gemini {
    name: String,
    flavor: Flavor,
    /// Everything before the model's resource name, e.g. `https://…/v1beta/` or
    /// `https://…/v1/projects/P/locations/L/`. Parsed once.
    prefix: reqwest::Url,
    auth: Auth,
    /// The API key (Gemini) and configured extra headers, built once.
    headers: HeaderMap,
    /// Kept to scrub it from upstream error messages.
    api_key: Option<String>,
    client: reqwest::Client,
}

enum Auth {
    /// `x-goog-api-key`, already in `headers`.
    ApiKey,
    ServiceAccount(Arc<TokenSource>),
    /// What is missing: requests fail fast saying so.
    Missing(ProviderError),
}

impl Gemini {
    pub fn new(name: &str, config: &ProviderConfig, client: reqwest::Client) -> Self {
        let mut headers = HeaderMap::new();
        insert_configured_headers(&mut headers, config);
        let api_key = config.api_key.as_ref().and_then(|k| k.expose()).map(str::to_owned);
        let (flavor, prefix, auth) = match config.kind {
            ProviderKind::VertexAi => {
                let (prefix, auth) = vertex(name, config, client.clone());
                (Flavor::Vertex, prefix, auth)
            }
            _ => {
                let base = config.base_url.as_deref().unwrap_or(GEMINI_BASE_URL).trim_end_matches('/');
                let version = config.api_version.as_deref().unwrap_or(GEMINI_API_VERSION);
                let auth = match &api_key {
                    Some(key) => match HeaderValue::try_from(key.as_str()) {
                        Ok(mut value) => {
                            value.set_sensitive(true);
                            headers.insert("x-goog-api-key", value);
                            Auth::ApiKey
                        }
                        Err(_) => missing(name, "an `api_key` that is a valid header value"),
                    },
                    None => {
                        missing(name, config.api_key.as_ref().and_then(|k| k.env_name()).unwrap_or("GEMINI_API_KEY"))
                    }
                };
                (Flavor::Gemini, parse_url(&format!("{base}/{version}/")), auth)
            }
        };
        Self { name: name.to_owned(), flavor, prefix, auth, headers, api_key, client }
    }

    /// `{prefix}{resource}:{method}`, with `?alt=sse` for a stream. A model id with a `/` is a
    /// resource name of its own (`tunedModels/…`, `endpoints/…`).
    fn url(&self, model: &str, method: &str, stream: bool) -> reqwest::Url {
        let mut url = self.prefix.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            match (self.flavor, model.rsplit_once('/')) {
                (_, Some((parent, last))) => {
                    segments.extend(parent.split('/'));
                    segments.push(&format!("{last}:{method}"));
                }
                (Flavor::Gemini, None) => {
                    segments.push("models").push(&format!("{model}:{method}"));
                }
                (Flavor::Vertex, None) => {
                    segments.extend(["publishers", "google", "models"]).push(&format!("{model}:{method}"));
                }
            }
        }
        if stream {
            url.set_query(Some("alt=sse"));
        }
        url
    }

    async fn headers(&self) -> Result<HeaderMap, ProviderError> {
        let mut headers = self.headers.clone();
        match &self.auth {
            Auth::ApiKey => {}
            Auth::ServiceAccount(tokens) => {
                headers.insert(header::AUTHORIZATION, tokens.authorization().await?);
            }
            Auth::Missing(error) => return Err(error.clone()),
        }
        Ok(headers)
    }

    async fn post(&self, url: reqwest::Url, body: &impl Serialize) -> Result<reqwest::Response, ProviderError> {
        let body = serde_json::to_vec(body).map_err(|e| ProviderError::invalid_request("input", e.to_string()))?;
        self.post_bytes(url, body).await
    }

    async fn post_bytes(&self, url: reqwest::Url, body: Vec<u8>) -> Result<reqwest::Response, ProviderError> {
        let response = self.send(url, body).await?;
        if !response.status().is_success() {
            return Err(error::read_error(&self.name, response, self.api_key.as_deref()).await);
        }
        Ok(response)
    }

    async fn send(&self, url: reqwest::Url, body: Vec<u8>) -> Result<reqwest::Response, ProviderError> {
        let headers = self.headers().await?;
        post_json(&self.name, &self.client, url, headers, body).await
    }

    async fn ok_body(&self, response: reqwest::Response) -> Result<bytes::Bytes, ProviderError> {
        response.bytes().await.map_err(|e| transport_error(&self.name, &e))
    }
}

/// Vertex AI's URL prefix and service-account authentication.
fn vertex(name: &str, config: &ProviderConfig, client: reqwest::Client) -> (reqwest::Url, Auth) {
    let location = config.location.as_deref().unwrap_or(VERTEX_LOCATION);
    let version = config.api_version.as_deref().unwrap_or(VERTEX_API_VERSION);
    let host = match (&config.base_url, location) {
        (Some(base), _) => base.trim_end_matches('/').to_owned(),
        (None, "global") => "https://aiplatform.googleapis.com".to_owned(),
        (None, region) => format!("https://{region}-aiplatform.googleapis.com"),
    };
    let path =
        config.credentials_file.clone().or_else(|| std::env::var(CREDENTIALS_ENV).ok().filter(|p| !p.is_empty()));
    let account = match path.as_deref().map(ServiceAccount::load) {
        None => Err(missing(name, &format!("`credentials_file` or {CREDENTIALS_ENV} (a service-account key)"))),
        Some(Ok(account)) => Ok(account),
        Some(Err(why)) => {
            tracing::warn!(provider = name, "the service-account key cannot be used: {why}");
            Err(missing(name, &format!("`credentials_file` to a usable service-account key: {why}")))
        }
    };
    let project = config.project.clone().or_else(|| account.as_ref().ok().and_then(|a| a.project_id.clone()));
    let auth = match (account, &project) {
        (Err(auth), _) => auth,
        (Ok(_), None) => missing(name, "`project` (the service-account key names none)"),
        (Ok(account), Some(_)) => Auth::ServiceAccount(Arc::new(TokenSource::new(name, account, client))),
    };
    let project = project.unwrap_or_default();
    (parse_url(&format!("{host}/{version}/projects/{project}/locations/{location}/")), auth)
}

fn missing(provider: &str, what: &str) -> Auth {
    Auth::Missing(ProviderError::MissingCredentials { provider: provider.to_owned(), env: what.to_owned() })
}

/// The config loader checked that the base URL parses; the placeholder only serves adapters built
/// by hand in tests.
fn parse_url(url: &str) -> reqwest::Url {
    reqwest::Url::parse(url).unwrap_or_else(|_| reqwest::Url::parse("http://invalid./").expect("a valid URL"))
}

#[async_trait]
impl Provider for Gemini {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_configured(&self) -> bool {
        !matches!(self.auth, Auth::Missing(_))
    }

    async fn chat(&self, request: &ChatCompletionRequest) -> Result<Reply, ProviderError> {
        let (body, ()) = self.encode(request)?;
        let stream = request.is_stream();
        let method = if stream { "streamGenerateContent" } else { "generateContent" };
        let response = self.send(self.url(&request.model, method, stream), body).await?;
        self.decode(request, (), response).await
    }

    async fn embeddings(&self, request: &EmbeddingsRequest) -> Result<JsonReply, ProviderError> {
        let embed = Embed::read(&self.name, request)?;
        let model = request.model.as_str();
        let reply = match self.flavor {
            Flavor::Gemini => {
                let resource = if model.contains('/') { model.to_owned() } else { format!("models/{model}") };
                let body = BatchEmbedContents::new(&embed, &resource);
                let response = self.post(self.url(model, "batchEmbedContents", false), &body).await?;
                embeddings::from_gemini(&self.ok_body(response).await?, model, &embed)
            }
            Flavor::Vertex if embeddings::one_text_per_call(model) => {
                // One call per text, a few at a time, answers kept in the texts' order.
                let url = self.url(model, "predict", false);
                let calls = (0..embed.texts.len()).map(|i| {
                    let (url, body) = (url.clone(), Predict::of(&embed, &embed.texts[i..=i]));
                    async move { self.ok_body(self.post(url, &body).await?).await }
                });
                let bodies: Vec<bytes::Bytes> =
                    futures_util::stream::iter(calls).buffered(VERTEX_EMBED_CONCURRENCY).try_collect().await?;
                embeddings::from_vertex_calls(&bodies, model, &embed)
            }
            Flavor::Vertex => {
                let response = self.post(self.url(model, "predict", false), &Predict::new(&embed)).await?;
                embeddings::from_vertex(&self.ok_body(response).await?, model, &embed)
            }
        };
        reply.map_err(|detail| ProviderError::invalid_response(&self.name, detail))
    }
}

#[async_trait]
impl Codec for Gemini {
    type Context = ();

    fn encode(&self, request: &ChatCompletionRequest) -> Result<(Vec<u8>, ()), ProviderError> {
        Ok((request::body(&self.name, request, self.flavor)?, ()))
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
        let n = request.n.unwrap_or(1);
        if request.is_stream() {
            let translator = GeminiStream::new(&self.name, self.api_key.as_deref(), &request.model, n);
            return Ok(Reply::Stream(translated(sse_events(self.name.clone(), response), translator)));
        }
        let body = self.ok_body(response).await?;
        let invalid = |detail: String| ProviderError::invalid_response(&self.name, detail);
        let parsed: GenerateContentResponse<'_> = serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
        let (body, usage) = response::completion(&parsed, &request.model, n).map_err(invalid)?;
        Ok(Reply::Json(JsonReply { body, usage }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn gemini(config: ProviderConfig) -> Gemini {
        Gemini::new("g", &config, reqwest::Client::new())
    }

    #[test]
    fn gemini_urls_and_key_header() {
        let adapter = gemini(ProviderConfig {
            api_key: Some(Secret::literal("AIza-k")),
            ..ProviderConfig::new(ProviderKind::Gemini)
        });
        assert!(adapter.is_configured());
        assert_eq!(
            adapter.url("gemini-2.5-flash", "generateContent", false).as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            adapter.url("gemini-2.5-flash", "streamGenerateContent", true).as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            adapter.url("tunedModels/my-model", "generateContent", false).as_str(),
            "https://generativelanguage.googleapis.com/v1beta/tunedModels/my-model:generateContent"
        );
        let key = adapter.headers.get("x-goog-api-key").unwrap();
        assert!(key.is_sensitive() && key == "AIza-k");
        assert!(!adapter.headers.contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn a_missing_key_fails_fast_naming_the_variable() {
        let config = ProviderConfig {
            api_key: Some(Secret::parse("env::GEMINI_API_KEY", |_| None)),
            ..ProviderConfig::new(ProviderKind::Gemini)
        };
        let adapter = gemini(config);
        assert!(!adapter.is_configured());
        let Auth::Missing(error) = &adapter.auth else { panic!() };
        assert_eq!(error.to_string(), "provider `g` has no API key: set `GEMINI_API_KEY`");
    }

    #[test]
    fn vertex_urls_by_location_and_project() {
        let dir = std::env::temp_dir().join(format!("cherrypick-gemini-unit-{}.json", std::process::id()));
        let key = include_str!("../../../tests/fixtures/vertex_ai/service_account.json");
        std::fs::write(&dir, key.replace("{base_url}", "http://127.0.0.1:9")).unwrap();
        let config = |location: Option<&str>, project: Option<&str>| ProviderConfig {
            credentials_file: Some(dir.display().to_string()),
            location: location.map(str::to_owned),
            project: project.map(str::to_owned),
            ..ProviderConfig::new(ProviderKind::VertexAi)
        };
        let regional = gemini(config(None, None));
        assert!(regional.is_configured());
        assert_eq!(
            regional.url("gemini-2.5-flash", "streamGenerateContent", true).as_str(),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        let global = gemini(config(Some("global"), Some("other")));
        assert_eq!(
            global.url("text-embedding-005", "predict", false).as_str(),
            "https://aiplatform.googleapis.com/v1/projects/other/locations/global/publishers/google/models/text-embedding-005:predict"
        );
        assert_eq!(
            global.url("endpoints/123", "generateContent", false).as_str(),
            "https://aiplatform.googleapis.com/v1/projects/other/locations/global/endpoints/123:generateContent"
        );
        std::fs::remove_file(&dir).unwrap();

        let unreadable = gemini(ProviderConfig {
            credentials_file: Some("/nonexistent/key.json".into()),
            ..ProviderConfig::new(ProviderKind::VertexAi)
        });
        assert!(!unreadable.is_configured());
    }
}
