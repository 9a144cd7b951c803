//! Anthropic's errors: `{"type": "error", "error": {"type": "...", "message": "..."}, "request_id": ...}`,
//! as an HTTP answer or as an `error` event in the middle of a stream.

use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::providers::ProviderError;
use crate::providers::transport::{ErrorDetail, openai_error, upstream_error_as};

#[derive(Deserialize)]
struct ErrorEnvelope<'a> {
    #[serde(borrow)]
    error: ErrorObject<'a>,
}

#[derive(Deserialize)]
struct ErrorObject<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<std::borrow::Cow<'a, str>>,
}

/// The `ErrorDialect` of Anthropic's error bodies. Bodies of another shape (a proxy's 413 page, a
/// load balancer's 502) fall back to the general reader.
pub fn anthropic_error(headers: &HeaderMap, body: &[u8]) -> ErrorDetail {
    match serde_json::from_slice::<ErrorEnvelope<'_>>(body) {
        Ok(ErrorEnvelope { error }) => ErrorDetail {
            message: error.message.map(Into::into),
            kind: error.kind.map(Into::into),
            ..ErrorDetail::default()
        },
        Err(_) => openai_error(headers, body),
    }
}

/// The HTTP status Anthropic documents for each error type: an error event in a stream has none of
/// its own (the stream began with 200).
pub fn status_of(kind: &str) -> StatusCode {
    match kind {
        "invalid_request_error" => StatusCode::BAD_REQUEST,
        "authentication_error" => StatusCode::UNAUTHORIZED,
        "billing_error" => StatusCode::PAYMENT_REQUIRED,
        "permission_error" => StatusCode::FORBIDDEN,
        "not_found_error" => StatusCode::NOT_FOUND,
        "request_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "rate_limit_error" => StatusCode::TOO_MANY_REQUESTS,
        "api_error" => StatusCode::INTERNAL_SERVER_ERROR,
        "timeout_error" => StatusCode::GATEWAY_TIMEOUT,
        // overloaded_error: Anthropic's own 529, which the gateway answers as 503.
        "overloaded_error" => StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// An `error` event of a stream (its `data`) as the upstream error it reports.
pub fn stream_error(provider: &str, data: &[u8], secret: Option<&str>) -> ProviderError {
    let kind = anthropic_error(&HeaderMap::new(), data).kind;
    let status = kind.as_deref().map_or(StatusCode::BAD_GATEWAY, status_of);
    upstream_error_as(provider, status, &HeaderMap::new(), data, secret, anthropic_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(error: ProviderError) -> Box<crate::providers::error::UpstreamError> {
        match error {
            ProviderError::Upstream(e) => e,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn reads_anthropics_error_body() {
        let body = br#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-x"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;
        let detail = anthropic_error(&HeaderMap::new(), body);
        assert_eq!(detail.kind.as_deref(), Some("not_found_error"));
        assert_eq!(detail.message.as_deref(), Some("model: claude-x"));
        let html = anthropic_error(&HeaderMap::new(), b"<html>413 Request Entity Too Large</html>");
        assert_eq!(html.kind, None);
    }

    #[test]
    fn stream_error_events_get_the_documented_status() {
        for (kind, status) in [
            ("overloaded_error", 529),
            ("rate_limit_error", 429),
            ("api_error", 500),
            ("invalid_request_error", 400),
            ("authentication_error", 401),
            ("something_new", 502),
        ] {
            let data = format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"boom"}}}}"#);
            let e = upstream(stream_error("anthropic", data.as_bytes(), None));
            assert_eq!((e.status.as_u16(), e.message.as_str(), e.kind.as_deref()), (status, "boom", Some(kind)));
        }
    }

    #[test]
    fn a_too_long_prompt_is_a_context_length_error_and_keys_are_scrubbed() {
        let body = br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}"#;
        let e =
            upstream(upstream_error_as("a", StatusCode::BAD_REQUEST, &HeaderMap::new(), body, None, anthropic_error));
        assert_eq!((e.status.as_u16(), e.code.as_deref()), (400, Some("context_length_exceeded")));

        let body = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key sk-ant-api03-secretsecretsecret"}}"#;
        let e = upstream(upstream_error_as(
            "a",
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            body,
            Some("sk-ant-api03-secretsecretsecret"),
            anthropic_error,
        ));
        assert!(!e.message.contains("secretsecret"), "{}", e.message);
    }
}
