//! What a limit says to the client: OpenAI's 429 bodies (`requests` / `tokens` with
//! `rate_limit_exceeded`, `insufficient_quota` for a spent budget) and the `x-ratelimit-*` headers.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::{Denied, Draw, Kind, Scope, Window};
use crate::error::ApiError;

pub(super) fn add_window(headers: &mut HeaderMap, kind: Kind, window: Option<Window>) {
    let Some(window) = window else { return };
    let name = |part: &str| HeaderName::try_from(format!("x-ratelimit-{part}-{}", kind.label())).ok();
    let reset = (window.limit - window.remaining).max(0) as f64 * 60.0 / window.limit.max(1) as f64;
    for (part, value) in [
        ("limit", window.limit.to_string()),
        ("remaining", window.remaining.to_string()),
        ("reset", format!("{}ms", (reset * 1000.0).ceil() as u64)),
    ] {
        if let (Some(name), Ok(value)) = (name(part), HeaderValue::from_str(&value)) {
            headers.insert(name, value);
        }
    }
}

pub(super) fn rate_limited(denied: &Denied, draw: &Draw) -> ApiError {
    let per = match denied.kind {
        Kind::Requests => "requests per minute (RPM)",
        Kind::Tokens => "tokens per minute (TPM)",
    };
    let message = if denied.never {
        format!(
            "request too large for the {} {per} limit: limit {}, requested {}",
            denied.scope.label(),
            denied.limit,
            denied.requested
        )
    } else {
        format!(
            "rate limit reached for the {} on {per}: limit {}, requested {}; try again in {:.1}s",
            denied.scope.label(),
            denied.limit,
            denied.requested,
            denied.retry_after.as_secs_f64()
        )
    };
    let mut error =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, denied.kind.label(), message).with_code("rate_limit_exceeded");
    let seconds = denied.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    if !denied.never {
        error.retry_after = HeaderValue::from_str(&seconds.to_string()).ok().map(Box::new);
    }
    let mut headers = HeaderMap::new();
    add_window(&mut headers, denied.kind, Some(Window { limit: draw.limit, remaining: 0 }));
    error.headers = Some(Box::new(headers));
    error
}

pub(super) fn budget_exhausted(scope: Scope) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "insufficient_quota",
        format!("you exceeded the {} budget for this period: ask your administrator to raise it", scope.label()),
    )
    .with_code("insufficient_quota")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_names_the_limit_and_when_to_retry() {
        let draw = Draw { scope: Scope::Team, kind: Kind::Tokens, bucket: "t".into(), limit: 600, amount: 30 };
        let denied = Denied::new(0, &draw, 10.0);
        assert_eq!(denied.retry_after, std::time::Duration::from_secs(2));
        let error = rate_limited(&denied, &draw);
        assert_eq!(error.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(error.kind, "tokens");
        assert_eq!(error.retry_after.as_deref().unwrap(), "2");
        let headers = error.headers.unwrap();
        assert_eq!(headers["x-ratelimit-limit-tokens"], "600");
        assert_eq!(headers["x-ratelimit-remaining-tokens"], "0");
        assert!(error.message.contains("team"), "{}", error.message);
    }
}
