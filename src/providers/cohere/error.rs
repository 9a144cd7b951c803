//! Cohere's errors: `{"message": "..."}` bodies (sometimes with an `id`), statuses OpenAI clients do
//! not know (422, 498, 499), and the errors a stream reports in its `message-end` event.

use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::providers::ProviderError;
use crate::providers::transport::{ErrorDetail, openai_error, read_error_as, upstream_error_as};

/// Cohere's error body.
pub fn cohere_error(headers: &HeaderMap, body: &[u8]) -> ErrorDetail {
    #[derive(Deserialize)]
    struct Body {
        message: String,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body { message }) => ErrorDetail { message: Some(message), ..ErrorDetail::default() },
        // A proxy's page or another shape: read it the general way.
        Err(_) => openai_error(headers, body),
    }
}

/// A failed answer as a `ProviderError`, in OpenAI's statuses and codes.
pub async fn read_error(provider: &str, response: reqwest::Response, secret: Option<&str>) -> ProviderError {
    in_openai_terms(read_error_as(provider, response, secret, cohere_error).await)
}

/// The statuses and codes OpenAI clients act on:
/// - 401 and 498 (Cohere's "invalid token") are 401 `invalid_api_key`;
/// - 402 (billing) is `insufficient_quota`, as OpenAI reports an exhausted quota;
/// - 404 naming a model is `model_not_found`;
/// - 422 (a request Cohere cannot process) is a 400;
/// - 429 is `rate_limit_exceeded`;
/// - 499 (Cohere cancelled the request) is a 502: the gateway did not cancel it.
///
/// Context-length errors were already given their 400 and code centrally and stay as they are.
fn in_openai_terms(error: ProviderError) -> ProviderError {
    let ProviderError::Upstream(mut e) = error else { return error };
    if e.code.as_deref() == Some("context_length_exceeded") {
        return ProviderError::Upstream(e);
    }
    match e.status.as_u16() {
        401 | 498 => {
            e.status = StatusCode::UNAUTHORIZED;
            e.code = Some("invalid_api_key".into());
        }
        402 => {
            e.kind = Some("insufficient_quota".into());
            e.code = Some("insufficient_quota".into());
        }
        404 if e.message.to_ascii_lowercase().contains("model") => e.code = Some("model_not_found".into()),
        422 => e.status = StatusCode::BAD_REQUEST,
        429 => e.code = Some("rate_limit_exceeded".into()),
        499 => e.status = StatusCode::BAD_GATEWAY,
        _ => {}
    }
    ProviderError::Upstream(e)
}

/// The error a stream ends with when `message-end` says `ERROR` or `TIMEOUT` (with the message in
/// `delta.error`), or when the upstream sends an `error` event: a 500, or a 504 for a timeout.
pub fn stream_error(provider: &str, timeout: bool, message: Option<&str>, secret: Option<&str>) -> ProviderError {
    let status = if timeout { StatusCode::GATEWAY_TIMEOUT } else { StatusCode::INTERNAL_SERVER_ERROR };
    let default = if timeout { "the generation timed out" } else { "the generation failed" };
    let body = serde_json::json!({ "message": message.filter(|m| !m.is_empty()).unwrap_or(default) });
    upstream_error_as(provider, status, &HeaderMap::new(), body.to_string().as_bytes(), secret, cohere_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(status: u16, body: &str) -> (StatusCode, String, Option<String>, Option<String>) {
        let error = upstream_error_as(
            "cohere",
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
            Some("test-key"),
            cohere_error,
        );
        match in_openai_terms(error) {
            ProviderError::Upstream(e) => (e.status, e.message, e.kind, e.code),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn statuses_and_codes_in_openai_terms() {
        let (status, message, _, code) = upstream(401, r#"{"id":"a1","message":"invalid api token test-key"}"#);
        assert_eq!((status.as_u16(), code.as_deref()), (401, Some("invalid_api_key")));
        assert!(!message.contains("test-key"), "{message}");
        assert_eq!(upstream(498, r#"{"message":"invalid token"}"#).0.as_u16(), 401);
        let (_, _, kind, code) = upstream(402, r#"{"message":"Please add a payment method"}"#);
        assert_eq!((kind.as_deref(), code.as_deref()), (Some("insufficient_quota"), Some("insufficient_quota")));
        let (status, _, _, code) = upstream(404, r#"{"message":"model 'x' not found"}"#);
        assert_eq!((status.as_u16(), code.as_deref()), (404, Some("model_not_found")));
        assert_eq!(upstream(422, r#"{"message":"invalid request"}"#).0.as_u16(), 400);
        assert_eq!(upstream(429, r#"{"message":"slow down"}"#).3.as_deref(), Some("rate_limit_exceeded"));
        assert_eq!(upstream(499, r#"{"message":"request cancelled"}"#).0.as_u16(), 502);
        let (status, message, _, code) = upstream(500, r#"{"message":"internal server error"}"#);
        assert_eq!((status.as_u16(), message.as_str(), code), (500, "internal server error", None));
        assert_eq!(upstream(503, "<html>bad gateway</html>").1, "<html>bad gateway</html>");
    }

    #[test]
    fn too_many_tokens_is_context_length_exceeded() {
        for status in [400, 422] {
            let (status, _, _, code) = upstream(
                status,
                r#"{"id":"b2","message":"too many tokens: size limit exceeded by 1502 tokens. Try using shorter or fewer inputs, or setting prompt_truncation='AUTO'."}"#,
            );
            assert_eq!((status.as_u16(), code.as_deref()), (400, Some("context_length_exceeded")));
        }
    }

    #[test]
    fn stream_errors() {
        let ProviderError::Upstream(e) = stream_error("cohere", false, Some("model overloaded"), None) else {
            panic!()
        };
        assert_eq!((e.status.as_u16(), e.message.as_str()), (500, "model overloaded"));
        let ProviderError::Upstream(e) = stream_error("cohere", true, None, None) else { panic!() };
        assert_eq!((e.status.as_u16(), e.message.as_str()), (504, "the generation timed out"));
    }
}
