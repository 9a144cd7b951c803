//! Bedrock's errors: HTTP answers carry `{"message": "..."}` with the error type in the
//! `x-amzn-ErrorType` header; a stream reports failures as exception messages named by
//! `:exception-type`. Both become `ProviderError::Upstream` through the central mapping.

use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;

use crate::providers::ProviderError;
use crate::providers::transport::{ErrorDetail, upstream_error_as};

/// Keeps credentials out of the messages that reach clients and logs.
#[derive(Debug, Clone, Default)]
pub struct Scrub {
    pub secret_access_key: Option<String>,
    pub access_key_id: Option<String>,
}

impl Scrub {
    /// `error` with the access key id removed too (the central scrubber knows one secret, and an
    /// access key id need not look like a credential to it).
    pub fn apply(&self, mut error: ProviderError) -> ProviderError {
        if let (ProviderError::Upstream(upstream), Some(key)) = (&mut error, &self.access_key_id)
            && !key.is_empty()
            && upstream.message.contains(key.as_str())
        {
            upstream.message = upstream.message.replace(key.as_str(), "***");
        }
        error
    }
}

/// The error type of an answer: `x-amzn-ErrorType: ValidationException:http://internal.amazon.com/...`,
/// or the body's `__type` (`com.amazon.coral.service#UnrecognizedClientException`).
fn error_type(headers: &HeaderMap, body_type: Option<&str>) -> Option<String> {
    let header = headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok());
    let raw = header
        .map(|h| h.split(':').next().unwrap_or(h))
        .or_else(|| body_type.map(|t| t.rsplit('#').next().unwrap_or(t)))?;
    let name = raw.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

#[derive(Deserialize)]
struct ErrorBody {
    // AWS services write `message` or `Message` depending on the protocol generation.
    #[serde(default, alias = "Message")]
    message: Option<String>,
    #[serde(default, rename = "__type")]
    kind: Option<String>,
}

/// The `ErrorDialect` of Bedrock's HTTP errors. The AWS error type becomes the OpenAI `code`;
/// credential failures are 401 whatever status carried them.
pub fn bedrock_error(headers: &HeaderMap, body: &[u8]) -> ErrorDetail {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (message, body_type) = match parsed {
        Some(ErrorBody { message, kind }) => (message, kind),
        None => (None, None),
    };
    let code = error_type(headers, body_type.as_deref());
    let status = code.as_deref().and_then(|c| is_credential_error(c).then_some(StatusCode::UNAUTHORIZED));
    ErrorDetail { message, kind: None, code, param: None, status }
}

fn is_credential_error(code: &str) -> bool {
    matches!(
        code,
        "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException"
            | "SignatureDoesNotMatch"
            | "MissingAuthenticationTokenException"
            | "ExpiredTokenException"
            | "InvalidClientTokenId"
            | "AccessDeniedException"
    )
}

/// An exception message of a ConverseStream answer (`:exception-type` `throttlingException`, payload
/// `{"message": "..."}`) as the error the same failure gets over plain HTTP.
pub fn stream_exception(provider: &str, exception_type: &str, payload: &[u8], scrub: &Scrub) -> ProviderError {
    let status = match exception_type {
        "throttlingException" | "serviceQuotaExceededException" => StatusCode::TOO_MANY_REQUESTS,
        "validationException" => StatusCode::BAD_REQUEST,
        "serviceUnavailableException" => StatusCode::SERVICE_UNAVAILABLE,
        "accessDeniedException" => StatusCode::FORBIDDEN,
        "modelTimeoutException" => StatusCode::GATEWAY_TIMEOUT,
        // internalServerException, modelStreamErrorException (documented 424: the model failed
        // mid-stream, worth a retry) and anything new.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::try_from(capitalized(exception_type)) {
        headers.insert("x-amzn-errortype", value);
    }
    scrub.apply(upstream_error_as(
        provider,
        status,
        &headers,
        payload,
        scrub.secret_access_key.as_deref(),
        bedrock_error,
    ))
}

/// A stream's `:message-type` `error` message: its code and message travel in headers.
pub fn stream_error(provider: &str, code: Option<&str>, message: Option<&str>, scrub: &Scrub) -> ProviderError {
    let body = serde_json::json!({ "message": message.unwrap_or("the stream failed") }).to_string();
    let mut headers = HeaderMap::new();
    if let Some(value) = code.and_then(|c| HeaderValue::try_from(c).ok()) {
        headers.insert("x-amzn-errortype", value);
    }
    scrub.apply(upstream_error_as(
        provider,
        StatusCode::INTERNAL_SERVER_ERROR,
        &headers,
        body.as_bytes(),
        scrub.secret_access_key.as_deref(),
        bedrock_error,
    ))
}

/// `throttlingException` -> `ThrottlingException`, the name the HTTP error header uses.
fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::transport::upstream_error_as;

    fn upstream(status: u16, error_type: Option<&str>, body: &str) -> crate::providers::error::UpstreamError {
        let mut headers = HeaderMap::new();
        if let Some(t) = error_type {
            headers.insert("x-amzn-errortype", HeaderValue::from_str(t).unwrap());
        }
        headers.insert("retry-after", HeaderValue::from_static("3"));
        let scrub =
            Scrub { secret_access_key: Some("SECRET/KEY+xyz".into()), access_key_id: Some("AKIDEXAMPLE".into()) };
        let error = scrub.apply(upstream_error_as(
            "b",
            StatusCode::from_u16(status).unwrap(),
            &headers,
            body.as_bytes(),
            scrub.secret_access_key.as_deref(),
            bedrock_error,
        ));
        match error {
            ProviderError::Upstream(e) => *e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_error_type_header_names_the_code() {
        let e = upstream(
            400,
            Some("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            r#"{"message":"Malformed input request: #: extraneous key [foo] is not permitted"}"#,
        );
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.code.as_deref(), Some("ValidationException"));
        assert_eq!(e.message, "Malformed input request: #: extraneous key [foo] is not permitted");
    }

    #[test]
    fn throttling_keeps_retry_after_and_context_errors_get_openais_code() {
        let e = upstream(
            429,
            Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            r#"{"message":"Too many requests, please wait before trying again."}"#,
        );
        assert_eq!((e.status, e.retry_after.as_ref().unwrap().to_str().unwrap()), (StatusCode::TOO_MANY_REQUESTS, "3"));
        for message in ["Input is too long for requested model.", "too many input tokens"] {
            let e = upstream(400, Some("ValidationException"), &format!(r#"{{"message":"{message}"}}"#));
            assert_eq!(e.code.as_deref(), Some("context_length_exceeded"), "{message}");
        }
    }

    #[test]
    fn credential_errors_are_401_and_never_leak_the_keys() {
        let e = upstream(
            403,
            Some("UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/"),
            r#"{"message":"The security token included in the request is invalid. Key AKIDEXAMPLE, SECRET/KEY+xyz"}"#,
        );
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert!(!e.message.contains("AKIDEXAMPLE") && !e.message.contains("SECRET/KEY"), "{}", e.message);
        // The older protocol: `Message` and `__type` in the body, no header.
        let e = upstream(
            403,
            None,
            r#"{"__type":"com.amazon.coral.service#AccessDeniedException","Message":"User is not authorized"}"#,
        );
        assert_eq!(
            (e.status, e.code.as_deref(), e.message.as_str()),
            (StatusCode::UNAUTHORIZED, Some("AccessDeniedException"), "User is not authorized")
        );
    }

    #[test]
    fn stream_exceptions_get_the_status_of_their_http_twin() {
        let scrub = Scrub::default();
        for (kind, status) in [
            ("throttlingException", 429),
            ("validationException", 400),
            ("modelStreamErrorException", 500),
            ("internalServerException", 500),
            ("serviceUnavailableException", 503),
        ] {
            let ProviderError::Upstream(e) = stream_exception("b", kind, br#"{"message":"boom"}"#, &scrub) else {
                panic!()
            };
            assert_eq!((e.status.as_u16(), e.message.as_str()), (status, "boom"), "{kind}");
            assert_eq!(e.code.as_deref(), Some(capitalized(kind).as_str()));
        }
        let ProviderError::Upstream(e) = stream_error("b", Some("InternalFailure"), Some("bad"), &scrub) else {
            panic!()
        };
        assert_eq!((e.status.as_u16(), e.message.as_str()), (500, "bad"));
    }
}
