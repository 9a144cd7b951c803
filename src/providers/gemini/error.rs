//! Google's error body (`{"error": {"code", "message", "status", "details"}}`, the same on the Gemini
//! API and Vertex AI) in OpenAI's terms, and reading a failed answer with it.

use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;

use crate::providers::ProviderError;
use crate::providers::transport::{ErrorDetail, upstream_error_as};

/// The most of an error body we read.
const MAX_ERROR_BODY: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(untagged)]
enum Envelope {
    Object {
        error: Status,
    },
    /// `streamGenerateContent` without `alt=sse` answers errors inside a JSON array.
    Array([Inner; 1]),
}

#[derive(Deserialize)]
struct Inner {
    error: Status,
}

/// `google.rpc.Status`.
#[derive(Deserialize, Default)]
pub(super) struct Status {
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    details: Vec<Detail>,
}

#[derive(Deserialize)]
struct Detail {
    /// `ErrorInfo.reason`, e.g. `API_KEY_INVALID`.
    #[serde(default)]
    reason: Option<String>,
    /// `RetryInfo.retryDelay`, a protobuf duration such as `"43s"` or `"0.5s"`.
    #[serde(default, rename = "retryDelay")]
    retry_delay: Option<String>,
}

fn parse(body: &[u8]) -> Option<Status> {
    match serde_json::from_slice::<Envelope>(body).ok()? {
        Envelope::Object { error } => Some(error),
        Envelope::Array([Inner { error }]) => Some(error),
    }
}

impl Status {
    fn reason(&self) -> Option<&str> {
        self.details.iter().find_map(|d| d.reason.as_deref())
    }

    /// Whether Google refused the API key itself (it says so with a 400).
    fn is_bad_key(&self) -> bool {
        matches!(self.reason(), Some("API_KEY_INVALID" | "API_KEY_EXPIRED"))
            || self
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with("API key not valid") || m.starts_with("API key expired"))
    }

    /// Seconds from `RetryInfo.retryDelay`, rounded up.
    fn retry_delay_secs(&self) -> Option<u64> {
        let delay = self.details.iter().find_map(|d| d.retry_delay.as_deref())?;
        let seconds: f64 = delay.strip_suffix('s')?.parse().ok()?;
        (seconds.is_finite() && seconds >= 0.0).then(|| seconds.ceil() as u64)
    }

    pub(super) fn detail(&self) -> ErrorDetail {
        let bad_key = self.is_bad_key();
        let kind = match self.status.as_deref() {
            _ if bad_key => "authentication_error",
            Some("UNAUTHENTICATED") => "authentication_error",
            Some("PERMISSION_DENIED") => "permission_error",
            Some("NOT_FOUND") => "not_found_error",
            Some("RESOURCE_EXHAUSTED") => "rate_limit_error",
            Some("INTERNAL" | "UNAVAILABLE" | "DEADLINE_EXCEEDED" | "UNKNOWN") => "server_error",
            _ => "invalid_request_error",
        };
        let code = match self.status.as_deref() {
            _ if bad_key => Some("invalid_api_key".to_owned()),
            Some("RESOURCE_EXHAUSTED") => Some("rate_limit_exceeded".to_owned()),
            // Google's own status (`INVALID_ARGUMENT`, `NOT_FOUND`, …) says more than nothing.
            other => other.map(str::to_owned),
        };
        ErrorDetail {
            message: self.message.clone(),
            kind: Some(kind.to_owned()),
            code,
            param: None,
            status: if bad_key { Some(StatusCode::UNAUTHORIZED) } else { None },
        }
    }

    /// The HTTP status of an error that arrived inside a 200 stream.
    pub(super) fn http_status(&self) -> StatusCode {
        self.code.and_then(|c| StatusCode::from_u16(c).ok()).unwrap_or(StatusCode::BAD_GATEWAY)
    }
}

/// `ErrorDialect` for Google's error body.
pub fn google_error(_: &HeaderMap, body: &[u8]) -> ErrorDetail {
    parse(body).map(|status| status.detail()).unwrap_or_default()
}

/// A failed answer as a `ProviderError`. Google seldom sends `retry-after`; its `RetryInfo` detail
/// takes its place when present.
pub(super) async fn read_error(provider: &str, response: reqwest::Response, secret: Option<&str>) -> ProviderError {
    let status = response.status();
    let mut headers = response.headers().clone();
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk[..chunk.len().min(MAX_ERROR_BODY - body.len())]);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    error_from_body(provider, status, &mut headers, &body, secret)
}

pub(super) fn error_from_body(
    provider: &str,
    status: StatusCode,
    headers: &mut HeaderMap,
    body: &[u8],
    secret: Option<&str>,
) -> ProviderError {
    if !headers.contains_key(header::RETRY_AFTER)
        && let Some(seconds) = parse(body).and_then(|s| s.retry_delay_secs())
    {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    upstream_error_as(provider, status, headers, body, secret, google_error)
}

/// An `{"error": …}` object that arrived as a stream event.
pub(super) fn stream_error(provider: &str, error: &serde_json::value::RawValue, secret: Option<&str>) -> ProviderError {
    let status =
        serde_json::from_str::<Status>(error.get()).map(|s| s.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = format!("{{\"error\":{}}}", error.get());
    error_from_body(provider, status, &mut HeaderMap::new(), body.as_bytes(), secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::error::UpstreamError;

    fn upstream(status: u16, body: &str) -> UpstreamError {
        let error = error_from_body(
            "gemini",
            StatusCode::from_u16(status).unwrap(),
            &mut HeaderMap::new(),
            body.as_bytes(),
            Some("AIzaSECRET"),
        );
        match error {
            ProviderError::Upstream(e) => *e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_key_is_a_401_without_the_key() {
        let e = upstream(
            400,
            r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key. (AIzaSECRET)","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#,
        );
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!((e.kind.as_deref(), e.code.as_deref()), (Some("authentication_error"), Some("invalid_api_key")));
        assert!(!e.message.contains("AIzaSECRET"), "{}", e.message);
    }

    #[test]
    fn quota_errors_keep_their_retry_delay() {
        let e = upstream(
            429,
            r#"{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"42.5s"}]}}"#,
        );
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after.unwrap(), "43");
        assert_eq!(e.code.as_deref(), Some("rate_limit_exceeded"));
    }

    #[test]
    fn too_long_a_prompt_is_context_length_exceeded() {
        let e = upstream(
            400,
            r#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#,
        );
        assert_eq!((e.status, e.code.as_deref()), (StatusCode::BAD_REQUEST, Some("context_length_exceeded")));
    }

    #[test]
    fn array_wrapped_and_unparsable_bodies() {
        let e =
            upstream(503, r#"[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]"#);
        assert_eq!((e.message.as_str(), e.kind.as_deref()), ("The model is overloaded.", Some("server_error")));
        let e = upstream(502, "<html>bad gateway</html>");
        assert_eq!(e.message, "<html>bad gateway</html>");
    }

    #[test]
    fn a_stream_error_takes_its_status_from_its_code() {
        let raw = serde_json::value::RawValue::from_string(
            r#"{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}"#.to_owned(),
        )
        .unwrap();
        let ProviderError::Upstream(e) = stream_error("gemini", &raw, None) else { panic!() };
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
