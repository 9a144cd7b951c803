//! `ApiError`: the one error a request can end with, rendered as the OpenAI error body with the
//! right status. Every part's error maps into it once, here.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::openai::error::{ErrorBody, ErrorDetail};
use crate::providers::ProviderError;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: Cow<'static, str>,
    /// OpenAI's `error.type`.
    pub kind: &'static str,
    pub param: Option<Cow<'static, str>>,
    pub code: Option<Cow<'static, str>>,
    pub retry_after: Option<Box<HeaderValue>>,
    /// More headers for the response (`x-ratelimit-*`).
    pub headers: Option<Box<HeaderMap>>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, message: message.into(), kind, param: None, code: None, retry_after: None, headers: None }
    }

    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn invalid_field(param: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self::bad_request(message).with_param(param).with_code("invalid_value")
    }

    pub fn invalid_api_key() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_request_error", "incorrect API key provided")
            .with_code("invalid_api_key")
    }

    pub fn missing_api_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "you didn't provide an API key: send it as `Authorization: Bearer <key>`",
        )
        .with_code("missing_api_key")
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("the model `{model}` does not exist or you do not have access to it"),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "the request body is larger than the gateway accepts (`server.max_body_bytes`)",
        )
        .with_code("request_too_large")
    }

    pub fn not_found_route(path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", format!("unknown URL `{path}`"))
            .with_code("unknown_url")
    }

    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
    }

    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// A short name for metrics and logs.
    pub fn class(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "bad_request",
            401 | 403 => "auth",
            404 => "not_found",
            413 => "too_large",
            429 => "rate_limited",
            500..=599 => "server",
            _ => "other",
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: self.message.to_string(),
                kind: Some(self.kind.to_owned()),
                param: self.param.as_ref().map(|p| p.to_string()),
                code: self.code.as_ref().map(|c| c.to_string().into()),
            },
        }
    }

    pub fn to_json(&self) -> Bytes {
        serde_json::to_vec(&self.body()).map(Bytes::from).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, [(header::CONTENT_TYPE, "application/json")], self.to_json()).into_response();
        if let Some(retry_after) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, *retry_after);
        }
        if let Some(headers) = self.headers {
            response.headers_mut().extend(*headers);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => {
                tracing::warn!(%error, "store unavailable");
                Self::unavailable("the gateway's store is unavailable; try again shortly")
                    .with_code("store_unavailable")
            }
            StoreError::NotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "invalid_request_error", error.to_string()).with_code("not_found")
            }
            StoreError::Conflict(_) => {
                Self::new(StatusCode::CONFLICT, "invalid_request_error", error.to_string()).with_code("conflict")
            }
            StoreError::Invalid { field, message } => Self::invalid_field(field, message),
        }
    }
}

impl From<ProviderError> for ApiError {
    fn from(error: ProviderError) -> Self {
        error.into_api_error()
    }
}
