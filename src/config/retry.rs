//! `[retry]` and `[timeouts]` (and per model, `[models.NAME.retry]`, `[models.NAME.timeouts]`): how
//! long an upstream call may take and how a failed one is tried again. Only failures that may pass
//! (connection errors, timeouts, 429, 5xx) are retried, and only before the answer's first byte went
//! to the client.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default)]
pub struct RetryConfig {
    /// Calls in all, the first included (1: no retry).
    pub attempts: u32,
    /// The first backoff's ceiling; each further one doubles it (full jitter: a random wait up to it).
    pub base_backoff_ms: u64,
    /// The most any backoff can be.
    pub max_backoff_ms: u64,
    /// An upstream's `retry-after` is honoured up to this; a longer one is not waited for, the
    /// error (with its `retry-after`) goes to the client.
    pub max_retry_after_secs: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self { attempts: 3, base_backoff_ms: 100, max_backoff_ms: 2_000, max_retry_after_secs: 5 }
    }
}

/// `[timeouts]` (and `[models.NAME.timeouts]`): how long an upstream call may take. The connect
/// timeout is the HTTP client's: `server.connect_timeout_secs`, or `providers.NAME.connect_timeout_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default)]
pub struct TimeoutConfig {
    /// Until the answer, or a stream's first chunk, arrived (each attempt on its own).
    pub first_byte_secs: f64,
    /// Until a stream's last chunk arrived, counted from the request.
    pub total_secs: f64,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self { first_byte_secs: 30.0, total_secs: 600.0 }
    }
}

/// `[breaker]`: a circuit breaker per provider. It opens when, of the last `window` calls (at
/// least `min_calls` of them), the share that failed in a way that may pass (connection, timeout,
/// 429, 5xx) reaches `failure_ratio`; calls are then refused at once for `open_secs`, after which
/// `half_open_probes` calls go through and close it again if they all succeed.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default)]
pub struct BreakerConfig {
    pub enabled: bool,
    pub window: u32,
    pub min_calls: u32,
    pub failure_ratio: f64,
    pub open_secs: f64,
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { enabled: true, window: 20, min_calls: 10, failure_ratio: 0.5, open_secs: 10.0, half_open_probes: 3 }
    }
}
