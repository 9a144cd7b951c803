//! One interface for the key-value tiers (L1, L2, L3), and the guard every tier sits behind: a
//! time limit on each call, and a short rest after a failure so a dead server costs one timeout
//! per rest period instead of one per request. The tier comes back on the first call after the
//! rest that succeeds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::{Key, MemoryError};
use crate::telemetry::CacheMetrics;

#[async_trait]
pub trait Tier: Send + Sync {
    /// `l1`, `l2` or `l3`: a metric label and the `x-cherrypick-cache` suffix of a hit.
    fn name(&self) -> &'static str;
    /// The encoded entry (uncompressed), if the tier has one that has not expired.
    async fn get(&self, key: &Key) -> Result<Option<Bytes>, MemoryError>;
    async fn put(&self, key: &Key, entry: &Bytes, ttl: Duration) -> Result<(), MemoryError>;
    /// Bytes and entries this process holds in the tier (L1 only; remote tiers report none).
    fn usage(&self) -> Option<(u64, u64)> {
        None
    }
}

/// How long a failed tier is skipped before it is tried again.
const REST: Duration = Duration::from_secs(1);

pub struct Guarded {
    pub tier: Box<dyn Tier>,
    timeout: Duration,
    epoch: Instant,
    /// Milliseconds after `epoch` until which the tier is skipped (0: healthy).
    resting_until_ms: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
    metrics: CacheMetrics,
}

/// What `/ready` shows for a tier.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TierState {
    pub tier: &'static str,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Guarded {
    pub fn new(tier: Box<dyn Tier>, timeout: Duration, metrics: CacheMetrics) -> Self {
        Self {
            tier,
            timeout,
            epoch: Instant::now(),
            resting_until_ms: AtomicU64::new(0),
            last_error: std::sync::Mutex::new(None),
            metrics,
        }
    }

    pub fn name(&self) -> &'static str {
        self.tier.name()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn resting(&self) -> bool {
        self.now_ms() < self.resting_until_ms.load(Ordering::Relaxed)
    }

    fn failed(&self, error: &MemoryError) {
        self.resting_until_ms.store(self.now_ms() + REST.as_millis() as u64, Ordering::Relaxed);
        tracing::warn!(tier = self.name(), %error, "cache tier failed; skipping it for a second");
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
    }

    fn recovered(&self) {
        if self.resting_until_ms.swap(0, Ordering::Relaxed) != 0 {
            tracing::info!(tier = self.name(), "cache tier is back");
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    async fn call<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, MemoryError>>,
    ) -> Result<T, MemoryError> {
        if self.resting() {
            return Err(MemoryError::Resting);
        }
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(MemoryError::Timeout(self.timeout)),
        };
        self.metrics.seconds.with_label_values(&[self.name(), op]).observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => self.recovered(),
            Err(error) => self.failed(error),
        }
        result
    }

    /// A lookup; failures are counted and read as a miss.
    pub async fn get(&self, key: &Key) -> Option<Bytes> {
        let result = self.call("get", self.tier.get(key)).await;
        let label = match &result {
            Ok(Some(_)) => "hit",
            Ok(None) => "miss",
            Err(MemoryError::Resting) => "skipped",
            Err(_) => "error",
        };
        self.metrics.lookups.with_label_values(&[self.name(), label]).inc();
        result.ok().flatten()
    }

    pub async fn put(&self, key: &Key, entry: &Bytes, ttl: Duration) {
        let result = self.call("put", self.tier.put(key, entry, ttl)).await;
        let label = match &result {
            Ok(()) => "ok",
            Err(MemoryError::Resting) => "skipped",
            Err(_) => "error",
        };
        self.metrics.writes.with_label_values(&[self.name(), label]).inc();
        if let Some((bytes, entries)) = self.tier.usage() {
            self.metrics.bytes.with_label_values(&[self.name()]).set(bytes as i64);
            self.metrics.entries.with_label_values(&[self.name()]).set(entries as i64);
        }
    }

    pub fn state(&self) -> TierState {
        let last_error = self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let state = if self.resting() {
            "down"
        } else if last_error.is_some() {
            "retrying"
        } else {
            "up"
        };
        TierState { tier: self.name(), state, last_error }
    }
}
