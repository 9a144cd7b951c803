//! `[retry]` (and `[models.NAME.retry]`): how a failed upstream call is tried again. Only failures
//! that may pass (connection errors, timeouts, 429, 5xx) are retried, and only before the answer's
//! first byte went to the client.

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
