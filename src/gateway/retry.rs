//! Calling a provider with retries: a failure that may pass (connection error, timeout, 429, 5xx)
//! is tried again after a backoff with full jitter, or after the upstream's `retry-after` when it
//! is short enough. A stream counts as answered once its first chunk arrived; nothing has reached
//! the client before that, so a stream that fails before it is retried like any call.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use rand::Rng;

use super::breaker::Breakers;
use crate::config::RetryConfig;
use crate::providers::{ChunkStream, JsonReply, ProviderError, Reply};

/// A call that answered: a whole body, or a stream with its first chunk.
pub enum Answered {
    Json(JsonReply),
    Stream { first: Bytes, rest: ChunkStream },
}

/// Calls `call` until it answers, it fails for good, or `config.attempts` are spent; an attempt
/// that has not answered (or sent its first chunk) within `first_byte` is a timeout. `on_retry` is
/// told of each retry (for metrics) with the error that caused it.
pub async fn with_retries<F, Fut>(
    provider: &str,
    breakers: &Breakers,
    config: &RetryConfig,
    first_byte: Duration,
    mut call: F,
    mut on_retry: impl FnMut(&ProviderError),
) -> Result<Answered, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Reply, ProviderError>>,
{
    let mut attempt = 1;
    loop {
        let Some(tickets) = breakers.admit() else {
            return Err(ProviderError::CircuitOpen { provider: provider.to_owned() });
        };
        let attempt_answered = tokio::time::timeout(first_byte, async { first_chunk(provider, call().await).await });
        let error = match attempt_answered.await {
            Ok(Ok(answered)) => {
                breakers.record(tickets, false);
                return Ok(answered);
            }
            Ok(Err(error)) => error,
            Err(_) => ProviderError::Timeout { provider: provider.to_owned() },
        };
        breakers.record(tickets, error.is_retryable());
        let delay = (attempt < config.attempts && error.is_retryable()).then(|| delay(config, attempt, &error));
        let Some(Some(delay)) = delay else { return Err(error) };
        on_retry(&error);
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

async fn first_chunk(provider: &str, reply: Result<Reply, ProviderError>) -> Result<Answered, ProviderError> {
    match reply? {
        Reply::Json(json) => Ok(Answered::Json(json)),
        Reply::Stream(mut rest) => match rest.next().await {
            Some(Ok(first)) => Ok(Answered::Stream { first, rest }),
            Some(Err(error)) => Err(error),
            None => Err(ProviderError::invalid_response(provider, "the stream ended before its first chunk")),
        },
    }
}

/// How long to wait before attempt `attempt + 1`: the upstream's `retry-after` (in seconds) when it
/// gave one, `None` (do not retry) when that is longer than allowed; otherwise full jitter over an
/// exponential ceiling.
fn delay(config: &RetryConfig, attempt: u32, error: &ProviderError) -> Option<Duration> {
    if let Some(seconds) = retry_after_secs(error) {
        return (seconds <= config.max_retry_after_secs as f64).then(|| Duration::from_secs_f64(seconds));
    }
    let ceiling = config.base_backoff_ms.saturating_mul(1 << (attempt - 1).min(20)).min(config.max_backoff_ms);
    Some(Duration::from_millis(rand::rng().random_range(0..=ceiling)))
}

fn retry_after_secs(error: &ProviderError) -> Option<f64> {
    let ProviderError::Upstream(upstream) = error else { return None };
    let seconds: f64 = upstream.retry_after.as_ref()?.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then_some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BreakerConfig;
    use crate::gateway::breaker::Breaker;
    use crate::providers::transport::upstream_error;
    use http::{HeaderValue, StatusCode};
    use std::sync::atomic::{AtomicU32, Ordering};

    fn failure(status: u16, retry_after: Option<&str>) -> ProviderError {
        let status = StatusCode::from_u16(status).unwrap();
        upstream_error("p", status, retry_after.map(|v| HeaderValue::from_str(v).unwrap()), b"{}", None)
    }

    /// A breaker that lets everything through: these tests are about retries.
    fn open_breaker() -> Breakers {
        let config = BreakerConfig { enabled: false, ..BreakerConfig::default() };
        let breaker = || Breaker::new(config, prometheus::IntGauge::new("g", "g").unwrap());
        Breakers { provider: std::sync::Arc::new(breaker()), deployment: breaker() }
    }

    fn ok() -> Reply {
        Reply::Json(JsonReply { body: Bytes::from_static(b"{}"), usage: None })
    }

    /// Fails with `errors` in turn, then answers; returns the outcome, the calls made and the retries told.
    async fn run(config: RetryConfig, errors: Vec<ProviderError>) -> (Result<Answered, ProviderError>, u32, u32) {
        let calls = AtomicU32::new(0);
        let mut retries = 0;
        let result = with_retries(
            "p",
            &open_breaker(),
            &config,
            Duration::from_secs(30),
            || {
                let n = calls.fetch_add(1, Ordering::SeqCst) as usize;
                let outcome = errors.get(n).cloned().map_or_else(|| Ok(ok()), Err);
                async move { outcome }
            },
            |_| retries += 1,
        )
        .await;
        (result, calls.load(Ordering::SeqCst), retries)
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_failures_are_tried_again_until_the_attempts_are_spent() {
        let config = RetryConfig::default();
        let (result, calls, retries) = run(config, vec![failure(503, None), failure(500, None)]).await;
        assert!(result.is_ok());
        assert_eq!((calls, retries), (3, 2));
        let (result, calls, _) = run(config, vec![failure(503, None); 5]).await;
        assert!(matches!(result, Err(ProviderError::Upstream(e)) if e.status == 503));
        assert_eq!(calls, 3, "three attempts in all");
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_and_long_retry_afters_are_not_retried() {
        let config = RetryConfig::default();
        for error in [failure(400, None), failure(401, None), failure(429, Some("60"))] {
            let (result, calls, _) = run(config, vec![error]).await;
            assert!(result.is_err());
            assert_eq!(calls, 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_retry_after_is_waited_for() {
        let started = tokio::time::Instant::now();
        let (result, calls, _) = run(RetryConfig::default(), vec![failure(429, Some("2"))]).await;
        assert!(result.is_ok());
        assert_eq!(calls, 2);
        assert!(started.elapsed() >= Duration::from_secs(2), "waited {:?}", started.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_does_not_answer_in_time_is_a_timeout_and_is_retried() {
        let calls = AtomicU32::new(0);
        let result = with_retries(
            "p",
            &open_breaker(),
            &RetryConfig::default(),
            Duration::from_secs(1),
            || {
                let hang = calls.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    Ok(ok())
                }
            },
            |error| assert!(matches!(error, ProviderError::Timeout { .. })),
        )
        .await;
        assert!(result.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let config = RetryConfig { attempts: 10, base_backoff_ms: 100, max_backoff_ms: 1_000, max_retry_after_secs: 5 };
        let error = failure(503, None);
        for attempt in 1..10 {
            let ceiling = (100u64 << (attempt - 1)).min(1_000);
            for _ in 0..50 {
                let wait = delay(&config, attempt, &error).unwrap();
                assert!(wait <= Duration::from_millis(ceiling), "attempt {attempt}: {wait:?}");
            }
        }
    }
}
