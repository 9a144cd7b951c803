//! The gateway's Prometheus metrics. Labels are bounded: endpoint (matched route), method, status,
//! configured model and provider names, direction, error kind; never a key, user or raw path.

use prometheus::{
    CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use super::names;

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub in_flight: IntGauge,
    pub llm_latency: HistogramVec,
    pub time_to_first_token: HistogramVec,
    pub tokens: IntCounterVec,
    pub cost_usd: CounterVec,
    pub upstream_errors: IntCounterVec,
    /// Upstream calls tried again, by provider and the kind of failure that caused it.
    pub upstream_retries: IntCounterVec,
    /// Each provider's circuit breaker: 0 closed, 1 half-open, 2 open.
    pub circuit_state: IntGaugeVec,
    /// Each model deployment's circuit breaker, same values.
    pub model_circuit_state: IntGaugeVec,
    pub router: RouterMetrics,
    pub cache: CacheMetrics,
    pub limits: LimitMetrics,
    /// Refused keys, by reason (missing, invalid, revoked, model).
    pub auth_failures: IntCounterVec,
    /// SQL pool connections, by pool (cache, store) and state (idle, active); set at scrape time.
    pub db_connections: IntGaugeVec,
    pub request_log: RequestLogMetrics,
    #[cfg(feature = "nvml")]
    gpu: super::gpu::GpuMemory,
}

/// Rate limits and budgets: refusals by scope, and failures of the shared (Redis) counters.
#[derive(Clone)]
pub struct LimitMetrics {
    /// `scope`: key, team, model, provider; `limit`: requests, tokens.
    pub rate_limited: IntCounterVec,
    pub budget_rejected: IntCounterVec,
    pub backend_errors: IntCounter,
}

impl LimitMetrics {
    pub fn new() -> Self {
        Self {
            rate_limited: IntCounterVec::new(
                Opts::new(names::RATE_LIMITED_TOTAL, "Requests refused by a rate limit, by scope and limit"),
                &["scope", "limit"],
            )
            .expect("valid metric"),
            budget_rejected: IntCounterVec::new(
                Opts::new(names::BUDGET_REJECTED_TOTAL, "Requests refused because a budget was spent, by scope"),
                &["scope"],
            )
            .expect("valid metric"),
            backend_errors: IntCounter::new(
                names::LIMITS_BACKEND_ERRORS_TOTAL,
                "Checks that fell back to in-process counters because Redis failed",
            )
            .expect("valid metric"),
        }
    }

    fn collectors(&self) -> [Box<dyn prometheus::core::Collector>; 3] {
        [
            Box::new(self.rate_limited.clone()),
            Box::new(self.budget_rejected.clone()),
            Box::new(self.backend_errors.clone()),
        ]
    }
}

impl Default for LimitMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The request log's writer: rows by outcome (written, spooled, replayed, failed) and its queue.
#[derive(Clone)]
pub struct RequestLogMetrics {
    pub rows: IntCounterVec,
    pub queue_depth: IntGauge,
    /// One batch insert (or one replayed batch), to tune `request_log.batch_size`.
    pub write_seconds: Histogram,
}

impl RequestLogMetrics {
    pub fn new() -> Self {
        Self {
            rows: IntCounterVec::new(
                Opts::new(names::REQUEST_LOG_ROWS_TOTAL, "Request log rows, by what became of them"),
                &["result"],
            )
            .expect("valid metric"),
            queue_depth: IntGauge::new(names::REQUEST_LOG_QUEUE_DEPTH, "Request log rows waiting to be written")
                .expect("valid metric"),
            write_seconds: Histogram::with_opts(
                HistogramOpts::new(names::REQUEST_LOG_WRITE_SECONDS, "Time to write one batch of request log rows")
                    .buckets(CACHE_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
        }
    }
}

impl Default for RequestLogMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The router's series: decisions per chosen model, decision latency, batch size, queue depth, and
/// step-asides by reason.
#[derive(Clone)]
pub struct RouterMetrics {
    pub decisions: IntCounterVec,
    pub decision_seconds: Histogram,
    pub batch_size: Histogram,
    pub queue_depth: IntGauge,
    pub step_asides: IntCounterVec,
}

impl RouterMetrics {
    fn new() -> Self {
        Self {
            decisions: IntCounterVec::new(
                Opts::new(names::ROUTER_DECISIONS_TOTAL, "Requests the router routed, by chosen model"),
                &["model"],
            )
            .expect("valid metric"),
            decision_seconds: Histogram::with_opts(
                HistogramOpts::new(names::ROUTER_DECISION_SECONDS, "Time from queueing a prompt to the decision")
                    .buckets(DECISION_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            batch_size: Histogram::with_opts(
                HistogramOpts::new(names::ROUTER_BATCH_SIZE, "Prompts encoded per batch")
                    .buckets(BATCH_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            queue_depth: IntGauge::new(names::ROUTER_QUEUE_DEPTH, "Prompts waiting for the router worker")
                .expect("valid metric"),
            step_asides: IntCounterVec::new(
                Opts::new(
                    names::ROUTER_STEP_ASIDES_TOTAL,
                    "Requests sent to routing.default because the router could not decide",
                ),
                &["reason"],
            )
            .expect("valid metric"),
        }
    }

    fn collectors(&self) -> [Box<dyn prometheus::core::Collector>; 5] {
        [
            Box::new(self.decisions.clone()),
            Box::new(self.decision_seconds.clone()),
            Box::new(self.batch_size.clone()),
            Box::new(self.queue_depth.clone()),
            Box::new(self.step_asides.clone()),
        ]
    }
}

/// Handles for one model's series, resolved once at start so the hot path skips the label lookup.
/// The tiered memory: per tier (`l1`, `l2`, `l3`, `vector`) lookups, writes, latency and size.
#[derive(Clone)]
pub struct CacheMetrics {
    /// `result`: hit, miss, error.
    pub lookups: IntCounterVec,
    /// `result`: ok, error, dropped (too many writes in flight).
    pub writes: IntCounterVec,
    /// `op`: get, put, search.
    pub seconds: HistogramVec,
    /// What each request's cache lookup ended in: `hit-l1` ... `hit-semantic`, `miss`, `bypass`.
    pub requests: IntCounterVec,
    pub bytes: IntGaugeVec,
    pub entries: IntGaugeVec,
}

impl CacheMetrics {
    fn new() -> Self {
        Self {
            lookups: IntCounterVec::new(
                Opts::new(names::CACHE_LOOKUPS_TOTAL, "Cache tier lookups, by tier and result (hit, miss, error)"),
                &["tier", "result"],
            )
            .expect("valid metric"),
            writes: IntCounterVec::new(
                Opts::new(names::CACHE_WRITES_TOTAL, "Cache tier writes, by tier and result (ok, error, dropped)"),
                &["tier", "result"],
            )
            .expect("valid metric"),
            seconds: HistogramVec::new(
                HistogramOpts::new(names::CACHE_OPERATION_SECONDS, "Cache tier operation latency")
                    .buckets(CACHE_BUCKETS.to_vec()),
                &["tier", "op"],
            )
            .expect("valid metric"),
            requests: IntCounterVec::new(
                Opts::new(names::CACHE_REQUESTS_TOTAL, "Cacheable requests, by where the answer came from"),
                &["result"],
            )
            .expect("valid metric"),
            bytes: IntGaugeVec::new(
                Opts::new(names::MEMORY_USAGE_BYTES, "Bytes held by each memory tier of this process"),
                &["tier"],
            )
            .expect("valid metric"),
            entries: IntGaugeVec::new(Opts::new(names::MEMORY_ENTRIES, "Entries held by each memory tier"), &["tier"])
                .expect("valid metric"),
        }
    }

    fn collectors(&self) -> [Box<dyn prometheus::core::Collector>; 6] {
        [
            Box::new(self.lookups.clone()),
            Box::new(self.writes.clone()),
            Box::new(self.seconds.clone()),
            Box::new(self.requests.clone()),
            Box::new(self.bytes.clone()),
            Box::new(self.entries.clone()),
        ]
    }
}

#[derive(Clone)]
pub struct ModelMetrics {
    pub latency: Histogram,
    pub time_to_first_token: Histogram,
    pub prompt_tokens: IntCounter,
    pub completion_tokens: IntCounter,
    pub cost_usd: prometheus::Counter,
}

const REQUEST_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
const LLM_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0];
const DECISION_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
const CACHE_BUCKETS: &[f64] = &[0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];
const TTFT_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let router = RouterMetrics::new();
        let cache = CacheMetrics::new();
        let limits = LimitMetrics::new();
        let request_log = RequestLogMetrics::new();
        let auth_failures = IntCounterVec::new(
            Opts::new(names::AUTH_FAILURES_TOTAL, "Requests refused at authentication, by reason"),
            &["reason"],
        )
        .expect("valid metric");
        let db_connections = IntGaugeVec::new(
            Opts::new(names::DB_CONNECTIONS, "SQL pool connections, by pool and state"),
            &["pool", "state"],
        )
        .expect("valid metric");
        let requests = IntCounterVec::new(
            Opts::new(names::REQUESTS_TOTAL, "HTTP requests answered, by endpoint and status"),
            &["method", "endpoint", "status"],
        )
        .expect("valid metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(names::REQUEST_DURATION_SECONDS, "Time to the response head, by endpoint")
                .buckets(REQUEST_BUCKETS.to_vec()),
            &["method", "endpoint"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::new(names::REQUESTS_IN_FLIGHT, "Requests being answered, streams included")
            .expect("valid metric");
        let llm_latency = HistogramVec::new(
            HistogramOpts::new(names::LLM_LATENCY_SECONDS, "Upstream call duration to the last byte")
                .buckets(LLM_BUCKETS.to_vec()),
            &["model", "provider"],
        )
        .expect("valid metric");
        let time_to_first_token = HistogramVec::new(
            HistogramOpts::new(names::TIME_TO_FIRST_TOKEN_SECONDS, "Upstream time to the first streamed chunk")
                .buckets(TTFT_BUCKETS.to_vec()),
            &["model", "provider"],
        )
        .expect("valid metric");
        let tokens = IntCounterVec::new(
            Opts::new(names::TOKENS_TOTAL, "Tokens, by direction (prompt, completion)"),
            &["model", "provider", "direction"],
        )
        .expect("valid metric");
        let cost_usd = CounterVec::new(
            Opts::new(names::COST_USD_TOTAL, "Spend in USD from usage and the price table"),
            &["model", "provider"],
        )
        .expect("valid metric");
        let upstream_errors = IntCounterVec::new(
            Opts::new(names::UPSTREAM_ERRORS_TOTAL, "Failed upstream calls, by kind"),
            &["provider", "kind"],
        )
        .expect("valid metric");
        let upstream_retries = IntCounterVec::new(
            Opts::new(names::UPSTREAM_RETRIES_TOTAL, "Upstream calls tried again, by the kind of failure"),
            &["provider", "kind"],
        )
        .expect("valid metric");
        let circuit_state = IntGaugeVec::new(
            Opts::new(names::CIRCUIT_STATE, "Circuit breaker state per provider: 0 closed, 1 half-open, 2 open"),
            &["provider"],
        )
        .expect("valid metric");
        let model_circuit_state = IntGaugeVec::new(
            Opts::new(
                names::MODEL_CIRCUIT_STATE,
                "Circuit breaker state per model deployment: 0 closed, 1 half-open, 2 open",
            ),
            &["model"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(in_flight.clone()),
            Box::new(llm_latency.clone()),
            Box::new(time_to_first_token.clone()),
            Box::new(tokens.clone()),
            Box::new(cost_usd.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(upstream_retries.clone()),
            Box::new(circuit_state.clone()),
            Box::new(model_circuit_state.clone()),
            Box::new(auth_failures.clone()),
            Box::new(db_connections.clone()),
            Box::new(request_log.rows.clone()),
            Box::new(request_log.queue_depth.clone()),
            Box::new(request_log.write_seconds.clone()),
        ]
        .into_iter()
        .chain(router.collectors())
        .chain(cache.collectors())
        .chain(limits.collectors())
        {
            registry.register(collector).expect("metric names are unique");
        }
        #[cfg(feature = "nvml")]
        let gpu = {
            let gauge = IntGaugeVec::new(
                Opts::new(names::GPU_MEMORY_BYTES, "GPU 0 memory: used, total, and this process's (process)"),
                &["state"],
            )
            .expect("valid metric");
            registry.register(Box::new(gauge.clone())).expect("metric names are unique");
            super::gpu::GpuMemory::new(gauge)
        };
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::new(
                std::process::id() as i32,
                names::NAMESPACE,
            )))
            .expect("process collector registers once");
        Self {
            registry,
            requests,
            request_duration,
            in_flight,
            llm_latency,
            time_to_first_token,
            tokens,
            cost_usd,
            upstream_errors,
            upstream_retries,
            circuit_state,
            model_circuit_state,
            router,
            cache,
            limits,
            auth_failures,
            db_connections,
            request_log,
            #[cfg(feature = "nvml")]
            gpu,
        }
    }

    /// Reads values that are sampled rather than counted (GPU memory); blocking, call off the
    /// request workers.
    pub fn refresh_sampled(&self) {
        #[cfg(feature = "nvml")]
        self.gpu.refresh();
    }

    pub fn for_model(&self, model: &str, provider: &str) -> ModelMetrics {
        ModelMetrics {
            latency: self.llm_latency.with_label_values(&[model, provider]),
            time_to_first_token: self.time_to_first_token.with_label_values(&[model, provider]),
            prompt_tokens: self.tokens.with_label_values(&[model, provider, "prompt"]),
            completion_tokens: self.tokens.with_label_values(&[model, provider, "completion"]),
            cost_usd: self.cost_usd.with_label_values(&[model, provider]),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding our own registry into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
