//! Configuration: one TOML file plus `CHERRYPICK__SECTION__KEY` environment overrides, validated at
//! start with every problem reported at once. Parsed data only; runtime objects are built elsewhere.

mod accounts;
mod cache;
mod load;
mod model;
mod provider;
mod retry;
mod router;
mod secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Deserialize;

pub use accounts::{LimitsConfig, RequestLogConfig, StoreConfig};
pub use cache::{CacheConfig, CacheMode, L1Config, L2Config, L3Config, SemanticConfig, VectorBackend};
pub use load::{ConfigError, Loaded, load_file, load_str};
pub use model::{ModelConfig, RoutingConfig, is_auto};
pub use provider::{ProviderConfig, ProviderKind};
pub use retry::{BreakerConfig, RetryConfig, TimeoutConfig};
pub use router::{DEFAULT_ENCODER, PolicyConfig, RouterConfig};
pub use secret::Secret;

/// The embedded default configuration: `config/cherrypick.toml`.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/cherrypick.toml");

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub models: BTreeMap<String, ModelConfig>,
    pub routing: RoutingConfig,
    pub router: RouterConfig,
    pub cache: CacheConfig,
    pub retry: RetryConfig,
    pub timeouts: TimeoutConfig,
    pub breaker: BreakerConfig,
    pub store: StoreConfig,
    pub limits: LimitsConfig,
    pub request_log: RequestLogConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest request body accepted; larger bodies answer 413.
    pub max_body_bytes: usize,
    /// How long SIGTERM waits for in-flight requests and background work before exiting.
    pub shutdown_grace_secs: u64,
    /// Interval of SSE keep-alive comments while a stream is idle.
    pub sse_keep_alive_secs: u64,
    pub connect_timeout_secs: u64,
    /// Connections the kernel queues before the gateway accepts them (capped by
    /// `net.core.somaxconn`); bursts of new connections beyond it are dropped and retried late.
    pub backlog: u32,
    /// Tokio worker threads; defaults to the number of cores.
    pub worker_threads: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 20 * 1024 * 1024,
            shutdown_grace_secs: 30,
            sse_keep_alive_secs: 15,
            connect_timeout_secs: 10,
            backlog: 4096,
            worker_threads: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// `Authorization: Bearer <master_key>` is required on `/v1/*` when set. Without it the
    /// gateway is open, which is only sensible on a loopback address.
    pub master_key: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `cherrypick=debug`; `RUST_LOG` overrides it.
    pub level: String,
    /// OpenTelemetry collector base URL (OTLP/HTTP, e.g. `http://otel-collector:4318`): request
    /// spans are exported there. Needs a build with `--features otlp`.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Pretty, level: "info".into(), otlp_endpoint: None, service_name: "cherrypick".into() }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Also serve `/metrics` on this address (it is always on the main listener).
    pub listen: Option<SocketAddr>,
}
