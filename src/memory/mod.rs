//! The tiered memory: answers kept so a repeated (exact cache) or reworded (semantic cache)
//! question is answered without a provider call.
//!
//! Lookups walk L1 (process memory) → L2 (Redis) → L3 (SQL) and promote a hit to the tiers above
//! it; the semantic cache finds the nearest earlier question in the vector tier, checks it with the
//! verifier, and reads that question's answer from the same tiers. Writes go to L1 at once and to
//! the other tiers in the background. A tier that fails or is slow is skipped; the request goes on.

pub mod entry;
pub mod key;
pub mod l1;
pub mod redis;
pub mod replay;
pub mod sql;
pub mod tier;
pub mod vector;
pub mod verify;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

pub use entry::{Body, Entry};
pub use key::{Key, Scope};
pub use tier::TierState;

use crate::config::{CacheConfig, Secret, VectorBackend};
use crate::telemetry::CacheMetrics;
use tier::Guarded;
use vector::{Point, VectorStore};
use verify::Verifier;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Backend(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("a stored entry is corrupt")]
    Corrupt,
    #[error("still loading")]
    Loading,
    /// The tier failed a moment ago and is being skipped.
    #[error("resting after a failure")]
    Resting,
}

/// Where a cached answer came from: the `x-cherrypick-cache` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    L1,
    L2,
    L3,
    Semantic,
}

impl Source {
    pub fn header(self) -> &'static str {
        match self {
            Source::L1 => "hit-l1",
            Source::L2 => "hit-l2",
            Source::L3 => "hit-l3",
            Source::Semantic => "hit-semantic",
        }
    }

    fn of_tier(name: &str) -> Self {
        match name {
            "l1" => Source::L1,
            "l2" => Source::L2,
            _ => Source::L3,
        }
    }
}

pub struct Hit {
    pub source: Source,
    pub entry: Entry,
}

/// Per-request cache controls (`Cache-Control`, `x-cherrypick-cache-ttl`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Controls {
    /// `no-cache`: do not answer from the cache (the answer is still stored).
    pub skip_lookup: bool,
    /// `no-store`: neither look up nor store.
    pub no_store: bool,
    pub ttl: Option<Duration>,
}

/// Background writes allowed in flight before new ones are dropped (and counted).
const MAX_PENDING_WRITES: usize = 1024;

pub struct Memory {
    l1: Option<Guarded>,
    lower: Vec<Arc<Guarded>>,
    vectors: Option<Arc<dyn VectorStore>>,
    vector_timeout: Duration,
    verifier: Verifier,
    config: CacheConfig,
    pending_writes: Arc<Semaphore>,
    metrics: CacheMetrics,
    /// L3's pool, for `cherrypick_db_connections`.
    l3: Option<Arc<sql::L3>>,
}

impl Memory {
    /// Builds the configured tiers (must be called inside a tokio runtime). Remote tiers connect
    /// in the background: a server that is down at start does not hold the gateway up.
    /// `encoder` names the model whose embeddings the vector tier holds: each encoder gets its own
    /// embedded index, since vectors of two models cannot be compared.
    pub fn new(config: &CacheConfig, encoder: &str, metrics: CacheMetrics) -> Result<Self, MemoryError> {
        let l1 = config.l1.enabled.then(|| {
            let tier = l1::L1::new(config.l1.max_bytes, Duration::from_secs(config.l1.ttl_secs));
            // L1 cannot be slow or fail; the guard is there for the metrics.
            Guarded::new(Box::new(tier), Duration::from_secs(1), metrics.clone())
        });
        let mut lower = Vec::new();
        let mut l3 = None;
        if let Some(url) = config.l2.url.as_ref().and_then(Secret::expose) {
            let timeout = Duration::from_millis(config.l2.timeout_ms);
            let tier = redis::L2::connect(url, &config.l2.key_prefix, timeout)?;
            lower.push(Arc::new(Guarded::new(Box::new(tier), timeout, metrics.clone())));
        }
        if config.l3.enabled {
            let timeout = Duration::from_millis(config.l3.timeout_ms);
            let tier = Arc::new(sql::L3::open(&config.l3_url(), config.l3.max_connections, timeout)?);
            spawn_cleanup(Arc::downgrade(&tier), Duration::from_secs(config.l3.cleanup_secs.max(1)));
            l3 = Some(tier.clone());
            lower.push(Arc::new(Guarded::new(Box::new(tier), timeout, metrics.clone())));
        }
        let vectors: Option<Arc<dyn VectorStore>> = match (config.semantic.enabled, config.semantic.backend) {
            (false, _) => None,
            (true, VectorBackend::Embedded) => {
                let options = vector::embedded::Options {
                    dimensions: config.semantic.dimensions,
                    exact_limit: config.semantic.exact_search_limit,
                    ..Default::default()
                };
                let folder: String = encoder
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
                    .collect();
                Some(vector::embedded::Embedded::open(&config.data_dir.join("semantic").join(folder), options)?)
            }
            (true, backend) => {
                let semantic = &config.semantic;
                let url = semantic
                    .url
                    .as_deref()
                    .ok_or_else(|| MemoryError::Config("cache.semantic.url is required".into()))?;
                let api_key = semantic.api_key.as_ref().and_then(Secret::expose);
                let timeout = Duration::from_millis(semantic.timeout_ms);
                if backend == VectorBackend::Qdrant {
                    let store = vector::qdrant::QdrantStore::connect(
                        url,
                        api_key,
                        &semantic.collection,
                        semantic.dimensions,
                        timeout,
                    )?;
                    Some(Arc::new(store))
                } else {
                    Some(Arc::new(vector::weaviate::WeaviateStore::connect(
                        url,
                        api_key,
                        &semantic.collection,
                        timeout,
                    )?))
                }
            }
        };
        Ok(Self {
            l1,
            lower,
            vectors,
            vector_timeout: Duration::from_millis(config.semantic.timeout_ms),
            verifier: Verifier::new(config.semantic.threshold),
            config: config.clone(),
            pending_writes: Arc::new(Semaphore::new(MAX_PENDING_WRITES)),
            metrics,
            l3,
        })
    }

    /// (idle, in use) connections of L3's pool, when L3 is on.
    pub fn l3_connections(&self) -> Option<(u32, u32)> {
        self.l3.as_ref().map(|l3| l3.connections())
    }

    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    pub fn metrics(&self) -> &CacheMetrics {
        &self.metrics
    }

    pub fn semantic_enabled(&self) -> bool {
        self.vectors.is_some()
    }

    /// The first tier holding `key`; a hit below L1 is copied up to the tiers above it.
    pub async fn get(&self, key: &Key) -> Option<Hit> {
        if let Some(l1) = &self.l1
            && let Some(found) = l1.get(key).await
        {
            return decoded(found, Source::L1);
        }
        for (depth, tier) in self.lower.iter().enumerate() {
            let Some(found) = tier.get(key).await else { continue };
            let hit = decoded(found.clone(), Source::of_tier(tier.name()))?;
            if let Some(l1) = &self.l1 {
                l1.put(key, &found, Duration::from_secs(self.config.l1.ttl_secs)).await;
            }
            for above in &self.lower[..depth] {
                let ttl = self.tier_ttl(above.name(), &hit.entry.model, None);
                self.spawn_write(above.clone(), *key, found.clone(), ttl);
            }
            return Some(hit);
        }
        None
    }

    /// The answer of the nearest earlier question in `partition`, if the verifier accepts it.
    pub async fn semantic(&self, partition: &Key, text: &str, vector: &[f32]) -> Option<Hit> {
        let store = self.vectors.as_ref()?;
        let started = Instant::now();
        let found = tokio::time::timeout(self.vector_timeout, store.nearest(partition, vector)).await;
        self.metrics.seconds.with_label_values(&["vector", "search"]).observe(started.elapsed().as_secs_f64());
        let neighbour = match found {
            Ok(Ok(neighbour)) => neighbour,
            Ok(Err(error)) => {
                self.vector_failed("lookups", &error);
                return None;
            }
            Err(_) => {
                self.vector_failed("lookups", &MemoryError::Timeout(self.vector_timeout));
                return None;
            }
        };
        let accepted = neighbour.filter(|n| self.verifier.accepts(text, &n.text, n.score));
        self.metrics.lookups.with_label_values(&["vector", if accepted.is_some() { "hit" } else { "miss" }]).inc();
        let hit = self.get(&accepted?.answer).await?;
        Some(Hit { source: Source::Semantic, entry: hit.entry })
    }

    fn vector_failed(&self, what: &'static str, error: &MemoryError) {
        let label = if matches!(error, MemoryError::Loading) { "skipped" } else { "error" };
        let counter = if what == "lookups" { &self.metrics.lookups } else { &self.metrics.writes };
        counter.with_label_values(&["vector", label]).inc();
        if label == "error" {
            tracing::warn!(%error, "semantic index call failed");
        }
    }

    /// Stores an answer under its exact key (and its question in the vector tier): L1 now, the
    /// rest in the background. Never waits on a remote tier.
    pub async fn store(
        self: &Arc<Self>,
        key: Key,
        entry: &Entry,
        ttl: Option<Duration>,
        question: Option<(Key, String, Arc<[f32]>)>,
    ) {
        let encoded = entry.encode();
        if let Some(l1) = &self.l1 {
            l1.put(&key, &encoded, self.tier_ttl("l1", &entry.model, ttl)).await;
        }
        for tier in &self.lower {
            let ttl = self.tier_ttl(tier.name(), &entry.model, ttl);
            self.spawn_write(tier.clone(), key, encoded.clone(), ttl);
        }
        if let (Some(store), Some((partition, text, vector))) = (&self.vectors, question) {
            // The question lives as long as its longest-lived answer.
            let longest =
                ["l1", "l2", "l3"].iter().map(|t| self.tier_ttl(t, &entry.model, ttl)).max().unwrap_or_default();
            let point =
                Point { partition, answer: key, vector, text, expires: sql::unix_now() + longest.as_secs() as i64 };
            let Ok(permit) = self.pending_writes.clone().try_acquire_owned() else {
                self.metrics.writes.with_label_values(&["vector", "dropped"]).inc();
                return;
            };
            let (store, memory, timeout) = (store.clone(), self.clone(), self.vector_timeout);
            tokio::spawn(async move {
                let _permit = permit;
                let result = match tokio::time::timeout(timeout, store.insert(point)).await {
                    Ok(result) => result,
                    Err(_) => Err(MemoryError::Timeout(timeout)),
                };
                match result {
                    Ok(()) => memory.metrics.writes.with_label_values(&["vector", "ok"]).inc(),
                    Err(error) => memory.vector_failed("writes", &error),
                }
                if let Some((bytes, points)) = store.usage() {
                    memory.metrics.bytes.with_label_values(&["vector"]).set(bytes as i64);
                    memory.metrics.entries.with_label_values(&["vector"]).set(points as i64);
                }
            });
        }
    }

    fn spawn_write(&self, tier: Arc<Guarded>, key: Key, encoded: bytes::Bytes, ttl: Duration) {
        let Ok(permit) = self.pending_writes.clone().try_acquire_owned() else {
            self.metrics.writes.with_label_values(&[tier.name(), "dropped"]).inc();
            return;
        };
        tokio::spawn(async move {
            let _permit = permit;
            tier.put(&key, &encoded, ttl).await;
        });
    }

    /// The TTL of an answer from `model` in `tier`: the request's, else the model's, else the
    /// tier's; L1 never keeps anything longer than its own TTL.
    fn tier_ttl(&self, tier: &str, model: &str, requested: Option<Duration>) -> Duration {
        let (default, cap) = match tier {
            "l1" => (self.config.l1.ttl_secs, Some(self.config.l1.ttl_secs)),
            "l2" => (self.config.l2.ttl_secs, None),
            _ => (self.config.l3.ttl_secs, None),
        };
        let ttl = requested.unwrap_or_else(|| Duration::from_secs(self.config.ttl_for(model, default)));
        cap.map_or(ttl, |cap| ttl.min(Duration::from_secs(cap)))
    }

    /// Every tier's state, for `/ready`.
    pub fn states(&self) -> Vec<TierState> {
        let mut states: Vec<TierState> =
            self.l1.iter().chain(self.lower.iter().map(|t| &**t)).map(Guarded::state).collect();
        if let Some(store) = &self.vectors {
            let state = store.state();
            let up = state == "up";
            states.push(TierState {
                tier: "vector",
                state: if up {
                    "up"
                } else if state == "loading" {
                    "loading"
                } else {
                    "degraded"
                },
                last_error: (!up && state != "loading").then_some(state),
            });
        }
        states
    }
}

fn decoded(found: bytes::Bytes, source: Source) -> Option<Hit> {
    match Entry::decode(found) {
        Ok(entry) => Some(Hit { source, entry }),
        Err(error) => {
            tracing::warn!(tier = source.header(), %error, "ignoring a corrupt cache entry");
            None
        }
    }
}

/// Deletes L3's expired rows every `every` until the tier is dropped.
fn spawn_cleanup(l3: std::sync::Weak<sql::L3>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(l3) = l3.upgrade() else { return };
            match l3.delete_expired().await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "deleted expired L3 cache rows"),
                Err(error) => tracing::debug!(%error, "L3 cleanup failed; retrying later"),
            }
        }
    });
}
