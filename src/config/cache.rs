//! `[cache]`: the tiered memory (L1 in-process, L2 Redis, L3 SQL) and the semantic cache over the
//! vector tier. Every tier can be switched off on its own; a tier without a URL is off, except the
//! embedded defaults (L1, an L3 SQLite file and the embedded vector index), which need nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CacheConfig {
    pub enabled: bool,
    /// `deterministic` caches only requests whose answer is reproducible (temperature 0 or a seed);
    /// `all` caches every request.
    pub mode: CacheMode,
    /// Where the embedded tiers keep their files (the SQLite file, the vector index).
    pub data_dir: PathBuf,
    pub l1: L1Config,
    pub l2: L2Config,
    pub l3: L3Config,
    pub semantic: SemanticConfig,
    /// Per public model name: switch caching off or change its TTL.
    pub models: BTreeMap<String, ModelCacheConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    #[default]
    Deterministic,
    All,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct L1Config {
    pub enabled: bool,
    /// Bytes of answers kept in process memory (keys and bookkeeping included).
    pub max_bytes: u64,
    pub ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct L2Config {
    /// `redis://`, `rediss://`, `redis-cluster://` or `redis-sentinel://`; unset: L2 is off.
    pub url: Option<Secret>,
    pub ttl_secs: u64,
    /// A Redis call slower than this counts as an error and the request goes on without it.
    pub timeout_ms: u64,
    /// Keys are `<prefix><hex key>`, so several deployments can share one Redis.
    pub key_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct L3Config {
    pub enabled: bool,
    /// `sqlite://PATH` or `postgres://...`; unset: a SQLite file in `data_dir`.
    pub url: Option<Secret>,
    pub ttl_secs: u64,
    pub timeout_ms: u64,
    pub max_connections: u32,
    /// How often expired rows are deleted.
    pub cleanup_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SemanticConfig {
    /// Needs the router's encoder (`[router] enabled`): the cache reuses its embedding.
    pub enabled: bool,
    pub backend: VectorBackend,
    /// Qdrant (gRPC, e.g. `http://127.0.0.1:6334`) or Weaviate (`http://127.0.0.1:8080`) address.
    pub url: Option<String>,
    pub api_key: Option<Secret>,
    /// Qdrant collection / Weaviate class that holds the entries.
    pub collection: String,
    /// Cosine similarity a candidate needs (then the verifier checks numbers and negations).
    /// 0.97 keeps false hits under 2% of lookups on Quora question pairs (BENCHMARKS.md).
    pub threshold: f32,
    pub timeout_ms: u64,
    /// Dimensions of the encoder's embeddings (384 for all-MiniLM-L6-v2).
    pub dimensions: usize,
    /// Entries above which a partition of the embedded index switches from exact search to HNSW.
    pub exact_search_limit: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorBackend {
    #[default]
    Embedded,
    Qdrant,
    Weaviate,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelCacheConfig {
    /// `false` never caches this model's answers.
    pub enabled: Option<bool>,
    pub ttl_secs: Option<u64>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            mode: CacheMode::Deterministic,
            data_dir: default_data_dir(),
            l1: L1Config::default(),
            l2: L2Config::default(),
            l3: L3Config::default(),
            semantic: SemanticConfig::default(),
            models: BTreeMap::new(),
        }
    }
}

impl Default for L1Config {
    fn default() -> Self {
        Self { enabled: true, max_bytes: 100 * 1024 * 1024, ttl_secs: 60 }
    }
}

impl Default for L2Config {
    fn default() -> Self {
        Self { url: None, ttl_secs: 3600, timeout_ms: 50, key_prefix: "cherrypick:cache:".into() }
    }
}

impl Default for L3Config {
    fn default() -> Self {
        Self { enabled: true, url: None, ttl_secs: 86_400, timeout_ms: 250, max_connections: 8, cleanup_secs: 60 }
    }
}

impl Default for SemanticConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: VectorBackend::Embedded,
            url: None,
            api_key: None,
            collection: "cherrypick_semantic".into(),
            threshold: 0.97,
            timeout_ms: 100,
            dimensions: 384,
            exact_search_limit: 4096,
        }
    }
}

/// `$CHERRYPICK_DATA_DIR`, else `$XDG_DATA_HOME/cherrypick`, else `~/.local/share/cherrypick`.
pub(super) fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHERRYPICK_DATA_DIR") {
        return dir.into();
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("cherrypick");
    }
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from(".cherrypick"), |home| PathBuf::from(home).join(".local/share/cherrypick"))
}

impl CacheConfig {
    /// The TTL in seconds of an answer from `model` in a tier whose default is `tier_default`.
    pub fn ttl_for(&self, model: &str, tier_default: u64) -> u64 {
        self.models.get(model).and_then(|m| m.ttl_secs).unwrap_or(tier_default)
    }

    pub fn model_enabled(&self, model: &str) -> bool {
        self.models.get(model).and_then(|m| m.enabled).unwrap_or(true)
    }

    /// The L3 database URL: the configured one, or the SQLite file under `data_dir`.
    pub fn l3_url(&self) -> String {
        match self.l3.url.as_ref().and_then(Secret::expose) {
            Some(url) => url.to_owned(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("cache.sqlite").display()),
        }
    }
}
