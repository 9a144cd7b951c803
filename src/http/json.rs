//! `OpenAiJson<T>`: the JSON body extractor whose every rejection is an OpenAI error body: 413 over the
//! size limit, 400 for malformed JSON, 400 naming the field for a missing or mistyped one.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct OpenAiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OpenAiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large()
            } else {
                ApiError::bad_request(format!("could not read the request body: {rejection}"))
            }
        })?;
        parse(&body).map(OpenAiJson)
    }
}

/// Parses a body, naming the offending field on a data error.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty: send a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if !inner.is_data() {
            return ApiError::bad_request(format!("we could not parse the JSON body of your request: {inner}"))
                .with_code("invalid_json");
        }
        let message = inner.to_string();
        // serde reports a missing field at its parent; the param is the field itself.
        let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
        let param = match (path.as_str(), missing) {
            (".", Some(field)) => field.to_owned(),
            (_, Some(field)) => format!("{path}.{field}"),
            _ => path,
        };
        ApiError::invalid_field(param.clone(), format!("invalid `{param}`: {message}"))
    })?;
    deserializer.end().map_err(|e| {
        ApiError::bad_request(format!("we could not parse the JSON body of your request: {e}"))
            .with_code("invalid_json")
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::ChatCompletionRequest;

    fn error(body: &str) -> ApiError {
        parse::<ChatCompletionRequest>(body.as_bytes()).expect_err("rejected")
    }

    #[test]
    fn malformed_json_is_a_400_saying_so() {
        let e = error(r#"{"model": "m", "messages": ["#);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("could not parse the JSON body"), "{}", e.message);
        assert!(error(r#"{"model": "m", "messages": []} trailing"#).message.contains("could not parse"));
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        let e = error(r#"{"model": "m"}"#);
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert!(e.message.contains("missing field `messages`"), "{}", e.message);
        let e = error(r#"{"model": "m", "messages": [{"role": "user"}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[0].content"), "{}", e.message);
        let e = error(r#"{"model": "m", "messages": [], "temperature": "hot"}"#);
        assert_eq!(e.param.as_deref(), Some("temperature"), "{}", e.message);
    }
}
