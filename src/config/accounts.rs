//! `[store]`, `[limits]` and `[request_log]`: where keys, spend and the request log live, and how
//! limits are shared between replicas.

use std::path::PathBuf;

use serde::Deserialize;

use super::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://...`; unset: a SQLite file in `data_dir`.
    pub url: Option<Secret>,
    pub data_dir: PathBuf,
    pub max_connections: u32,
    /// How long a call waits for a connection.
    pub timeout_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { url: None, data_dir: super::cache::default_data_dir(), max_connections: 8, timeout_ms: 2_000 }
    }
}

impl StoreConfig {
    pub fn url(&self) -> String {
        match self.url.as_ref().and_then(Secret::expose) {
            Some(url) => url.to_owned(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("store.sqlite").display()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// With a Redis URL every limit and budget is counted in Redis (one atomic script per check), so
    /// it holds across gateway replicas; without one, in this process.
    pub redis_url: Option<Secret>,
    pub key_prefix: String,
    /// Requests per minute of a virtual key that sets none.
    pub key_rpm: Option<i64>,
    /// Completion tokens reserved for a request that sets no `max_tokens`, until its usage is known.
    pub default_completion_tokens: u64,
    /// How long a Redis check may take before the request is refused (fail closed: 503).
    pub timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            key_prefix: "cherrypick:limits:".into(),
            key_rpm: Some(10_000),
            default_completion_tokens: 256,
            timeout_ms: 250,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RequestLogConfig {
    pub enabled: bool,
    /// Rows per insert.
    pub batch_size: usize,
    /// Longest a row waits before its batch is written.
    pub flush_ms: u64,
    /// Rows waiting in memory; when full, rows go straight to the spool file.
    pub queue: usize,
    /// Where rows wait while the database is down; default `store.data_dir/spool`.
    pub spool_dir: Option<PathBuf>,
    /// Keep the prompt text (system prompt and last user message) with each row, for `router
    /// export`. Off by default: prompts often hold personal data.
    pub log_prompts: bool,
    /// Rows (and their feedback) older than this many days are deleted, hourly. Unset: kept.
    /// Budgets read spend from the log, so keep at least one budget period (a `total` budget
    /// counts only what is kept).
    pub retention_days: Option<u32>,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            batch_size: 500,
            flush_ms: 200,
            queue: 65_536,
            spool_dir: None,
            log_prompts: false,
            retention_days: None,
        }
    }
}
