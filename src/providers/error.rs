//! `ProviderError`: what can go wrong talking to an upstream, and how each case reaches the client.

use http::{HeaderValue, StatusCode};

use crate::error::ApiError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("provider `{provider}` has no API key: set `{env}`")]
    MissingCredentials { provider: String, env: String },
    #[error("cannot reach provider `{provider}`: {detail}")]
    Connect { provider: String, detail: String },
    #[error("provider `{provider}` did not answer in time")]
    Timeout { provider: String },
    #[error("provider `{}` answered {}: {}", .0.provider, .0.status, .0.message)]
    Upstream(Box<UpstreamError>),
    #[error("provider `{provider}` sent an invalid response: {detail}")]
    InvalidResponse { provider: String, detail: String },
    #[error("provider `{provider}` does not support `{param}`: {detail}")]
    Unsupported { provider: String, param: String, detail: String },
    /// The provider's circuit breaker is open: it is not called until it has had time to recover.
    #[error("provider `{provider}` is failing; calls to it are paused")]
    CircuitOpen { provider: String },
    /// The request cannot be translated for this provider (e.g. tool-call arguments that are not JSON).
    #[error("`{param}`: {detail}")]
    InvalidRequest { param: String, detail: String },
}

/// An error answer from the upstream, boxed: it is the largest case and the cold path.
#[derive(Debug, Clone)]
pub struct UpstreamError {
    pub provider: String,
    pub status: StatusCode,
    pub message: String,
    pub kind: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
    pub retry_after: Option<HeaderValue>,
}

impl ProviderError {
    pub fn unsupported(provider: &str, param: &str, detail: &str) -> Self {
        Self::Unsupported { provider: provider.to_owned(), param: param.to_owned(), detail: detail.to_owned() }
    }

    pub fn invalid_request(param: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::InvalidRequest { param: param.into(), detail: detail.into() }
    }

    pub fn invalid_response(provider: &str, detail: impl Into<String>) -> Self {
        Self::InvalidResponse { provider: provider.to_owned(), detail: detail.into() }
    }

    /// Transient failures worth another attempt: connection problems, timeouts, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } => true,
            Self::Upstream(e) => e.status == StatusCode::TOO_MANY_REQUESTS || e.status.is_server_error(),
            Self::MissingCredentials { .. }
            | Self::InvalidResponse { .. }
            | Self::Unsupported { .. }
            | Self::InvalidRequest { .. }
            | Self::CircuitOpen { .. } => false,
        }
    }

    /// A bounded label for metrics.
    pub fn kind_label(&self) -> &'static str {
        match self {
            Self::MissingCredentials { .. } => "credentials",
            Self::Connect { .. } => "connect",
            Self::Timeout { .. } => "timeout",
            Self::Upstream(e) if e.status == StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            Self::Upstream(e) if e.status.is_server_error() => "upstream_5xx",
            Self::Upstream(_) => "upstream_4xx",
            Self::InvalidResponse { .. } => "invalid_response",
            Self::Unsupported { .. } => "unsupported",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::CircuitOpen { .. } => "circuit_open",
        }
    }

    pub(crate) fn into_api_error(self) -> ApiError {
        match self {
            Self::MissingCredentials { .. } => {
                ApiError::unavailable(self.to_string()).with_code("provider_not_configured")
            }
            Self::Connect { .. } => ApiError::new(StatusCode::BAD_GATEWAY, "server_error", self.to_string())
                .with_code("upstream_unreachable"),
            Self::Timeout { .. } => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "server_error", self.to_string())
                .with_code("upstream_timeout"),
            Self::InvalidResponse { .. } => ApiError::new(StatusCode::BAD_GATEWAY, "server_error", self.to_string())
                .with_code("invalid_upstream_response"),
            Self::Unsupported { provider, param, detail } => {
                ApiError::bad_request(format!("provider `{provider}` does not support `{param}`: {detail}"))
                    .with_param(param)
                    .with_code("unsupported_parameter")
            }
            Self::CircuitOpen { .. } => ApiError::unavailable(self.to_string()).with_code("circuit_open"),
            Self::InvalidRequest { param, detail } => {
                ApiError::bad_request(format!("`{param}`: {detail}")).with_param(param).with_code("invalid_value")
            }
            Self::Upstream(upstream) => {
                let UpstreamError { provider, status, message, kind, code, param, retry_after } = *upstream;
                let status = match status.as_u16() {
                    // The gateway's own credentials were refused: still an authentication failure.
                    401 | 403 => StatusCode::UNAUTHORIZED,
                    // Anthropic's "overloaded": not a status OpenAI clients know; they retry 503.
                    529 => StatusCode::SERVICE_UNAVAILABLE,
                    400..=599 => status,
                    _ => StatusCode::BAD_GATEWAY,
                };
                let default_kind = match status.as_u16() {
                    401 => "authentication_error",
                    429 => "rate_limit_error",
                    500..=599 => "server_error",
                    _ => "invalid_request_error",
                };
                let mut error =
                    ApiError::new(status, leak_kind(kind.as_deref(), default_kind), format!("{provider}: {message}"));
                error.code = code.map(Into::into);
                error.param = param.map(Into::into);
                error.retry_after = retry_after.map(Box::new);
                error
            }
        }
    }
}

/// OpenAI's `error.type` values are a small known set; an upstream's own type is kept only when it is
/// one of them, so the field stays a bounded vocabulary.
fn leak_kind(kind: Option<&str>, default: &'static str) -> &'static str {
    const KNOWN: &[&str] = &[
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "rate_limit_error",
        "insufficient_quota",
        "server_error",
        "api_error",
        "tokens",
        "requests",
    ];
    kind.and_then(|k| KNOWN.iter().find(|known| **known == k).copied()).unwrap_or(default)
}
