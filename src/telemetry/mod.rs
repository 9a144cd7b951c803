//! Telemetry: the Prometheus registry and metric names, and the log subscriber.

#[cfg(feature = "nvml")]
mod gpu;
mod logging;
mod metrics;
pub mod names;

pub use logging::{init_logging, shutdown_telemetry};
pub use metrics::{CacheMetrics, LimitMetrics, Metrics, ModelMetrics, RequestLogMetrics, RouterMetrics};
