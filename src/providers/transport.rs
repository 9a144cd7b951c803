//! HTTP plumbing shared by every adapter: send a JSON body, turn a failed answer into a
//! `ProviderError` (scrubbed of secrets), and turn an SSE body into a stream of events.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use super::ProviderError;
use super::error::UpstreamError;
use super::redact::redact;
use super::sse::{SseDecoder, SseEvent};

/// The most of an error body we read; error bodies are small, a misbehaving upstream's may not be.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub async fn post_json(
    provider: &str,
    client: &reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<reqwest::Response, ProviderError> {
    client
        .post(url)
        .headers(headers)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| transport_error(provider, &e))
}

/// A reqwest failure as a `ProviderError`, without the URL (it may name an internal host).
pub fn transport_error(provider: &str, error: &reqwest::Error) -> ProviderError {
    // A connect timeout is a connection failure (the upstream never answered the handshake).
    if error.is_timeout() && !error.is_connect() {
        return ProviderError::Timeout { provider: provider.to_owned() };
    }
    let detail = if error.is_connect() && error.is_timeout() {
        "connecting timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else if error.is_body() || error.is_decode() {
        "the connection broke while reading the answer".to_owned()
    } else {
        "request failed".to_owned()
    };
    ProviderError::Connect { provider: provider.to_owned(), detail }
}

/// The body of a successful JSON answer, or the upstream's error.
pub async fn read_ok_body(
    provider: &str,
    response: reqwest::Response,
    secret: Option<&str>,
) -> Result<Bytes, ProviderError> {
    if !response.status().is_success() {
        return Err(read_error(provider, response, secret).await);
    }
    response.bytes().await.map_err(|e| transport_error(provider, &e))
}

/// Reads an error answer into `ProviderError::Upstream`, keeping status, `retry-after` and the
/// OpenAI-style fields when the body has them.
pub async fn read_error(provider: &str, response: reqwest::Response, secret: Option<&str>) -> ProviderError {
    read_error_as(provider, response, secret, openai_error).await
}

/// `read_error` for an upstream whose error body `dialect` reads.
pub async fn read_error_as(
    provider: &str,
    response: reqwest::Response,
    secret: Option<&str>,
    dialect: ErrorDialect,
) -> ProviderError {
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk[..chunk.len().min(MAX_ERROR_BODY - body.len())]);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    upstream_error_as(provider, status, &headers, &body, secret, dialect)
}

/// What an upstream's error body says, in its own words.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ErrorDetail {
    pub message: Option<String>,
    pub kind: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
    /// Set when the provider's status does not say what happened (Gemini answers a bad key with 400).
    pub status: Option<StatusCode>,
}

/// Reads one provider's error body (and headers, where the error type travels in one).
pub type ErrorDialect = fn(&HeaderMap, &[u8]) -> ErrorDetail;

/// OpenAI's `{"error": {...}}` and the shapes most other APIs use: `{"error": "..."}`,
/// `{"message": "..."}`, `{"detail": "..."}`, Anthropic's `{"type": "error", "error": {...}}`.
pub fn openai_error(_: &HeaderMap, body: &[u8]) -> ErrorDetail {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let detail = parsed.as_ref().map(|v| v.get("error").unwrap_or(v));
    let field = |name: &str| detail.and_then(|d| d.get(name)).and_then(value_text);
    ErrorDetail {
        message: field("message").or_else(|| detail.and_then(value_text)).or_else(|| field("detail")),
        kind: field("type"),
        code: field("code"),
        param: field("param"),
        status: None,
    }
}

pub fn upstream_error(
    provider: &str,
    status: StatusCode,
    retry_after: Option<http::HeaderValue>,
    body: &[u8],
    secret: Option<&str>,
) -> ProviderError {
    let mut headers = HeaderMap::new();
    if let Some(value) = retry_after {
        headers.insert(header::RETRY_AFTER, value);
    }
    upstream_error_as(provider, status, &headers, body, secret, openai_error)
}

/// The one place an upstream error becomes a `ProviderError`: the message is scrubbed of secrets,
/// context-length errors get OpenAI's code, and `retry-after` is kept.
pub fn upstream_error_as(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    secret: Option<&str>,
    dialect: ErrorDialect,
) -> ProviderError {
    let detail = dialect(headers, body);
    let status = detail.status.unwrap_or(status);
    let message = detail.message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        if text.trim().is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text.into_owned() }
    });
    let (status, kind, code) = if is_context_length(status, &message, detail.code.as_deref()) {
        (StatusCode::BAD_REQUEST, Some("invalid_request_error".to_owned()), Some("context_length_exceeded".to_owned()))
    } else {
        (status, detail.kind, detail.code)
    };
    ProviderError::Upstream(Box::new(UpstreamError {
        provider: provider.to_owned(),
        status,
        message: redact(message.trim(), secret),
        kind,
        code,
        param: detail.param,
        retry_after: headers.get(header::RETRY_AFTER).cloned(),
    }))
}

/// Whether an error says the prompt does not fit the model's context, in any provider's words.
fn is_context_length(status: StatusCode, message: &str, code: Option<&str>) -> bool {
    if code == Some("context_length_exceeded") {
        return true;
    }
    if !matches!(status.as_u16(), 400 | 413 | 422) {
        return false;
    }
    const PHRASES: &[&str] = &[
        "context length",
        "context window",
        "context_length",
        "prompt is too long",
        "input is too long",
        "too many input tokens",
        "too many tokens",
        "exceeds the maximum number of tokens",
        "input token count",
        "maximum number of tokens",
        "reduce the length of the messages",
        // xAI: "This model's maximum prompt length is 131072 but the request contains 140000 tokens."
        "maximum prompt length",
        // Text Generation Inference (Hugging Face, Together): "Input validation error: `inputs`
        // tokens + `max_new_tokens` must be <= 8192. Given: ..."
        "`inputs` tokens + `max_new_tokens`",
    ];
    let message = message.to_ascii_lowercase();
    PHRASES.iter().any(|phrase| message.contains(phrase))
}

fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Decodes an SSE body into events. A broken connection ends the stream with an error item.
pub fn sse_events(
    provider: String,
    response: reqwest::Response,
) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send {
    let body = response.bytes_stream();
    futures_util::stream::unfold(
        (body, SseDecoder::default(), provider, false),
        |(mut body, mut decoder, provider, ended)| async move {
            if ended {
                return None;
            }
            loop {
                if let Some(event) = decoder.next_event() {
                    return Some((Ok(event), (body, decoder, provider, false)));
                }
                match body.next().await {
                    Some(Ok(bytes)) => decoder.push(&bytes),
                    Some(Err(e)) => {
                        let error = transport_error(&provider, &e);
                        return Some((Err(error), (body, decoder, provider, true)));
                    }
                    None => {
                        let last = decoder.finish()?;
                        return Some((Ok(last), (body, decoder, provider, true)));
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_openai_and_other_error_shapes() {
        let openai = br#"{"error":{"message":"This model's maximum context length is 4097 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        let ProviderError::Upstream(e) = upstream_error("p", StatusCode::BAD_REQUEST, None, openai, None) else {
            panic!()
        };
        assert_eq!(e.message, "This model's maximum context length is 4097 tokens.");
        assert_eq!(
            (e.kind.as_deref(), e.code.as_deref(), e.param.as_deref()),
            (Some("invalid_request_error"), Some("context_length_exceeded"), Some("messages"))
        );

        let anthropic = br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}"#;
        let ProviderError::Upstream(e) = upstream_error("p", StatusCode::BAD_REQUEST, None, anthropic, None) else {
            panic!()
        };
        assert_eq!(e.code.as_deref(), Some("context_length_exceeded"));

        for (body, expected) in [
            (&br#"{"error":"model not loaded"}"#[..], "model not loaded"),
            (br#"{"detail":"Not Found"}"#, "Not Found"),
            (b"upstream exploded", "upstream exploded"),
            (b"", "Service Unavailable"),
        ] {
            let ProviderError::Upstream(e) = upstream_error("p", StatusCode::SERVICE_UNAVAILABLE, None, body, None)
            else {
                panic!()
            };
            assert_eq!(e.message, expected);
        }
    }

    #[test]
    fn the_key_never_survives() {
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-test-1234567890abcdefghij","code":"invalid_api_key"}}"#;
        let error =
            upstream_error("openai", StatusCode::UNAUTHORIZED, None, body, Some("sk-test-1234567890abcdefghij"));
        assert!(!format!("{error:?}").contains("1234567890"), "{error:?}");
    }
}
