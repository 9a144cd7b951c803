//! AWS Bedrock: chat through the Converse and ConverseStream APIs, embeddings through InvokeModel
//! (Titan and Cohere bodies), every request signed with SigV4.
//!
//! `POST {endpoint}/model/{modelId}/converse` (`converse-stream`, `invoke`), the model id (or ARN)
//! percent-encoded as one path segment. The endpoint is `https://bedrock-runtime.{region}.amazonaws.com`
//! unless `base_url` says otherwise; the region is `region`, else `AWS_REGION`, `AWS_DEFAULT_REGION`,
//! else `us-east-1`. Credentials: `aws_access_key_id` / `aws_secret_access_key` / `aws_session_token`,
//! else the standard `AWS_*` environment variables.

mod embeddings;
mod error;
mod eventstream;
mod request;
mod response;
mod sigv4;
mod stream;

use std::time::SystemTime;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderValue, header};

use self::error::{Scrub, bedrock_error};
use self::sigv4::Signer;
use super::transport::{post_json, read_error_as, transport_error};
use super::{JsonReply, Provider, ProviderError, Reply};
use crate::config::{ProviderConfig, Secret};
use crate::openai::{ChatCompletionRequest, EmbeddingsRequest};
use crate::providers::native::{ChunkWriter, Codec, completion_id, translated, unix_now};

const SERVICE: &str = "bedrock";
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

pub struct Bedrock {
    name: String,
    /// The endpoint; request paths are appended to its path. `None` when `base_url` does not parse
    /// (the config loader refuses that; only adapters built by hand can have it).
    base: Option<reqwest::Url>,
    /// The signer, or the variable to set when credentials are missing.
    signer: Result<Signer, String>,
    scrub: Scrub,
    client: reqwest::Client,
}

/// The Bedrock operations cherrypick calls.
#[derive(Clone, Copy)]
enum Operation {
    Converse,
    ConverseStream,
    Invoke,
}

impl Operation {
    fn path(self) -> &'static str {
        match self {
            Self::Converse => "converse",
            Self::ConverseStream => "converse-stream",
            Self::Invoke => "invoke",
        }
    }
}

impl Bedrock {
    pub fn new(name: &str, config: &ProviderConfig, client: reqwest::Client) -> Self {
        let region = config
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let base = config.base_url.clone().unwrap_or_else(|| format!("https://bedrock-runtime.{region}.amazonaws.com"));
        let base = reqwest::Url::parse(base.trim_end_matches('/')).ok();
        let credentials = Credentials::resolve(config);
        let scrub = Scrub {
            secret_access_key: credentials.as_ref().ok().map(|c| c.secret_access_key.clone()),
            access_key_id: credentials.as_ref().ok().map(|c| c.access_key_id.clone()),
        };
        let signer = credentials
            .map(|c| Signer::new(&c.access_key_id, &c.secret_access_key, c.session_token.as_deref(), &region, SERVICE));
        Self { name: name.to_owned(), base, signer, scrub, client }
    }

    /// `{endpoint}/model/{model id, percent-encoded}/{operation}`.
    fn url(&self, model: &str, operation: Operation) -> Result<reqwest::Url, ProviderError> {
        let Some(base) = &self.base else {
            return Err(ProviderError::Connect {
                provider: self.name.clone(),
                detail: "`base_url` is not a URL".into(),
            });
        };
        let mut url = base.clone();
        let path =
            format!("{}/model/{}/{}", base.path().trim_end_matches('/'), encode_segment(model), operation.path());
        url.set_path(&path);
        Ok(url)
    }

    /// A signed POST of a JSON body.
    async fn post(&self, model: &str, operation: Operation, body: Vec<u8>) -> Result<reqwest::Response, ProviderError> {
        let signer = self
            .signer
            .as_ref()
            .map_err(|env| ProviderError::MissingCredentials { provider: self.name.clone(), env: env.clone() })?;
        let url = self.url(model, operation)?;
        let mut headers = signer
            .sign("POST", url.as_str(), &[("content-type", "application/json")], &body, SystemTime::now())
            .map_err(|e| ProviderError::invalid_request("model", format!("the request cannot be signed: {e}")))?;
        let accept = match operation {
            Operation::ConverseStream => EVENT_STREAM,
            Operation::Converse | Operation::Invoke => "application/json",
        };
        headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
        post_json(&self.name, &self.client, url, headers, body).await
    }

    async fn error(&self, response: reqwest::Response) -> ProviderError {
        let error = read_error_as(&self.name, response, self.scrub.secret_access_key.as_deref(), bedrock_error).await;
        self.scrub.apply(error)
    }

    /// The body of a successful answer, with the input token count Bedrock reports in a header.
    async fn read_ok(&self, response: reqwest::Response) -> Result<Answer, ProviderError> {
        if !response.status().is_success() {
            return Err(self.error(response).await);
        }
        let input_tokens = response
            .headers()
            .get("x-amzn-bedrock-input-token-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = response.bytes().await.map_err(|e| transport_error(&self.name, &e))?;
        Ok(Answer { body, input_tokens })
    }
}

#[async_trait]
impl Provider for Bedrock {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_configured(&self) -> bool {
        self.signer.is_ok()
    }

    async fn chat(&self, request: &ChatCompletionRequest) -> Result<Reply, ProviderError> {
        let (body, json_mode) = self.encode(request)?;
        let operation = if request.is_stream() { Operation::ConverseStream } else { Operation::Converse };
        let response = self.post(&request.model, operation, body).await?;
        self.decode(request, json_mode, response).await
    }

    async fn embeddings(&self, request: &EmbeddingsRequest) -> Result<JsonReply, ProviderError> {
        let plan = embeddings::plan(&self.name, request)?;
        let calls = plan.bodies().into_iter().map(|body| async move {
            let response = self.post(&request.model, Operation::Invoke, body).await?;
            self.read_ok(response).await
        });
        // Several calls at once, answers kept in order; the first failure fails the request.
        let answers: Vec<Answer> =
            futures_util::stream::iter(calls).buffered(embeddings::CONCURRENCY).try_collect().await?;
        let (body, usage) = embeddings::list(&self.name, &plan, &request.model, &answers)?;
        Ok(JsonReply { body, usage: Some(usage) })
    }
}

#[async_trait]
impl Codec for Bedrock {
    /// JSON mode: the forced tool's input is the answer.
    type Context = bool;

    fn encode(&self, request: &ChatCompletionRequest) -> Result<(Vec<u8>, Self::Context), ProviderError> {
        let converse = request::converse(&self.name, request)?;
        let body = serde_json::to_vec(&converse.body)
            .map_err(|e| ProviderError::invalid_request("messages", format!("cannot be encoded: {e}")))?;
        Ok((body, converse.json_mode))
    }

    async fn decode(
        &self,
        request: &ChatCompletionRequest,
        json_mode: Self::Context,
        response: reqwest::Response,
    ) -> Result<Reply, ProviderError> {
        if !request.is_stream() {
            let answer = self.read_ok(response).await?;
            let (body, usage) = response::completion(&self.name, &request.model, &answer.body, json_mode)?;
            return Ok(Reply::Json(JsonReply { body, usage }));
        }
        if !response.status().is_success() {
            return Err(self.error(response).await);
        }
        let provider = self.name.clone();
        let body = response.bytes_stream().map_err(move |e| transport_error(&provider, &e));
        let frames = eventstream::frames(self.name.clone(), body);
        let writer = ChunkWriter::new(&completion_id(), &request.model, unix_now());
        let translator = stream::Translator::new(&self.name, self.scrub.clone(), writer, json_mode);
        Ok(Reply::Stream(translated(frames, translator)))
    }
}

/// A successful answer's body, and the input tokens Bedrock reported in
/// `x-amzn-bedrock-input-token-count` (InvokeModel bodies do not always count them).
pub struct Answer {
    pub body: bytes::Bytes,
    pub input_tokens: Option<u64>,
}

/// The credentials of a provider, from its config or, where the config names none, the
/// environment.
struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl Credentials {
    /// The credentials, or the variable (or config key) to set.
    fn resolve(config: &ProviderConfig) -> Result<Self, String> {
        // A session token belongs to its key pair: one from the environment is not paired with keys
        // from the config.
        let from_config = config.aws_access_key_id.is_some();
        let access_key_id = secret(config.aws_access_key_id.as_ref(), "AWS_ACCESS_KEY_ID", "aws_access_key_id")?;
        let secret_access_key =
            secret(config.aws_secret_access_key.as_ref(), "AWS_SECRET_ACCESS_KEY", "aws_secret_access_key")?;
        let session_token = match &config.aws_session_token {
            Some(token) => token.expose().map(str::to_owned),
            None if from_config => None,
            None => env("AWS_SESSION_TOKEN"),
        };
        Ok(Self { access_key_id, secret_access_key, session_token })
    }
}

/// A credential from config (a literal or an `env::` reference) or else the standard variable.
fn secret(configured: Option<&Secret>, standard_env: &str, key: &str) -> Result<String, String> {
    match configured {
        Some(secret) => secret
            .expose()
            .map(str::to_owned)
            .ok_or_else(|| secret.env_name().map_or_else(|| key.to_owned(), str::to_owned)),
        None => env(standard_env).ok_or_else(|| standard_env.to_owned()),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A model id or ARN as one path segment: everything but RFC 3986's unreserved characters is
/// percent-encoded (`:` and `/` included), as the AWS SDKs do.
fn encode_segment(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len() + 8);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0xf)] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderKind;

    fn adapter(base_url: Option<&str>, region: Option<&str>) -> Bedrock {
        let config = ProviderConfig {
            base_url: base_url.map(str::to_owned),
            region: region.map(str::to_owned),
            aws_access_key_id: Some(Secret::literal("AKIDEXAMPLE")),
            aws_secret_access_key: Some(Secret::literal("secret")),
            ..ProviderConfig::new(ProviderKind::Bedrock)
        };
        Bedrock::new("b", &config, reqwest::Client::new())
    }

    #[test]
    fn model_ids_and_arns_are_one_encoded_segment() {
        let b = adapter(None, Some("eu-west-3"));
        assert_eq!(
            b.url("anthropic.claude-3-haiku-20240307-v1:0", Operation::Converse).unwrap().as_str(),
            "https://bedrock-runtime.eu-west-3.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
        );
        let arn =
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0";
        assert_eq!(
            b.url(arn, Operation::ConverseStream).unwrap().path(),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse-stream"
        );
        let local = adapter(Some("http://127.0.0.1:9000/prefix/"), None);
        assert_eq!(local.url("m", Operation::Invoke).unwrap().as_str(), "http://127.0.0.1:9000/prefix/model/m/invoke");
    }

    #[test]
    fn missing_credentials_name_the_variable() {
        let config = ProviderConfig {
            aws_access_key_id: Some(Secret::parse("env::CHERRYPICK_TEST_UNSET_KEY_ID", |_| None)),
            aws_secret_access_key: Some(Secret::literal("s")),
            ..ProviderConfig::new(ProviderKind::Bedrock)
        };
        let b = Bedrock::new("b", &config, reqwest::Client::new());
        assert!(!b.is_configured());
        assert_eq!(b.signer.as_ref().unwrap_err(), "CHERRYPICK_TEST_UNSET_KEY_ID");
        assert!(adapter(None, None).is_configured());
    }

    #[tokio::test]
    async fn requests_fail_fast_without_credentials() {
        let config = ProviderConfig {
            aws_access_key_id: Some(Secret::literal("AKID")),
            aws_secret_access_key: Some(Secret::parse("env::CHERRYPICK_TEST_UNSET_SECRET", |_| None)),
            ..ProviderConfig::new(ProviderKind::Bedrock)
        };
        let b = Bedrock::new("b", &config, reqwest::Client::new());
        let request: ChatCompletionRequest =
            serde_json::from_value(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
                .unwrap();
        let Err(ProviderError::MissingCredentials { env, .. }) = b.chat(&request).await else { panic!() };
        assert_eq!(env, "CHERRYPICK_TEST_UNSET_SECRET");
    }
}
