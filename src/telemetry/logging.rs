//! The log subscriber: pretty or JSON lines on stderr, filtered by `RUST_LOG` or the config's level,
//! and with the `otlp` feature, request spans exported to an OpenTelemetry collector. Every request
//! runs in a `request` span carrying its id, so its log lines name it. Prompt text and secrets are
//! never logged.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

pub fn init_logging(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match config.format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Pretty => fmt.boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(fmt).with(otlp::layer(config));
    // A second init (tests starting several gateways) keeps the first subscriber.
    let _ = registry.try_init();
    if config.otlp_endpoint.is_some() && !cfg!(feature = "otlp") {
        tracing::warn!("`log.otlp_endpoint` is set, but this build has no `otlp` feature: no spans are exported");
    }
}

/// Flushes spans still waiting for export (call once, at exit).
pub fn shutdown_telemetry() {
    otlp::shutdown();
}

#[cfg(feature = "otlp")]
mod otlp {
    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{SpanExporter, WithExportConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::Layer;
    use tracing_subscriber::registry::LookupSpan;

    use crate::config::LogConfig;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    pub fn layer<S>(config: &LogConfig) -> Option<Box<dyn Layer<S> + Send + Sync>>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let endpoint = config.otlp_endpoint.as_deref()?;
        let exporter = match SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .build()
        {
            Ok(exporter) => exporter,
            Err(error) => {
                eprintln!("log.otlp_endpoint: cannot build the OTLP exporter: {error}");
                return None;
            }
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(config.service_name.clone()).build())
            .build();
        let tracer = provider.tracer("cherrypick");
        let _ = PROVIDER.set(provider);
        Some(tracing_opentelemetry::layer().with_tracer(tracer).boxed())
    }

    pub fn shutdown() {
        if let Some(provider) = PROVIDER.get()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("OTLP export: {error}");
        }
    }
}

#[cfg(not(feature = "otlp"))]
mod otlp {
    use crate::config::LogConfig;

    pub fn layer(_: &LogConfig) -> Option<tracing_subscriber::layer::Identity> {
        None
    }

    pub fn shutdown() {}
}
