//! Every metric name the gateway exports, in one place, so dashboards and code cannot drift.

pub const REQUESTS_TOTAL: &str = "cherrypick_requests_total";
pub const REQUEST_DURATION_SECONDS: &str = "cherrypick_request_duration_seconds";
pub const REQUESTS_IN_FLIGHT: &str = "cherrypick_requests_in_flight";
pub const LLM_LATENCY_SECONDS: &str = "cherrypick_llm_latency_seconds";
pub const TIME_TO_FIRST_TOKEN_SECONDS: &str = "cherrypick_time_to_first_token_seconds";
pub const TOKENS_TOTAL: &str = "cherrypick_tokens_total";
pub const COST_USD_TOTAL: &str = "cherrypick_cost_usd_total";
pub const UPSTREAM_ERRORS_TOTAL: &str = "cherrypick_upstream_errors_total";
pub const UPSTREAM_RETRIES_TOTAL: &str = "cherrypick_upstream_retries_total";
pub const CIRCUIT_STATE: &str = "cherrypick_circuit_state";
pub const MODEL_CIRCUIT_STATE: &str = "cherrypick_model_circuit_state";
/// Prefix of the process collector's metrics (`cherrypick_process_cpu_seconds_total`, ...).
pub const NAMESPACE: &str = "cherrypick";
pub const ROUTER_DECISIONS_TOTAL: &str = "cherrypick_router_decisions_total";
pub const ROUTER_DECISION_SECONDS: &str = "cherrypick_router_decision_seconds";
pub const ROUTER_BATCH_SIZE: &str = "cherrypick_router_batch_size";
pub const ROUTER_QUEUE_DEPTH: &str = "cherrypick_router_queue_depth";
pub const ROUTER_STEP_ASIDES_TOTAL: &str = "cherrypick_router_step_asides_total";
pub const CACHE_LOOKUPS_TOTAL: &str = "cherrypick_cache_lookups_total";
pub const CACHE_WRITES_TOTAL: &str = "cherrypick_cache_writes_total";
pub const CACHE_OPERATION_SECONDS: &str = "cherrypick_cache_operation_seconds";
pub const CACHE_REQUESTS_TOTAL: &str = "cherrypick_cache_requests_total";
pub const MEMORY_USAGE_BYTES: &str = "cherrypick_memory_usage_bytes";
pub const MEMORY_ENTRIES: &str = "cherrypick_memory_entries";

pub const RATE_LIMITED_TOTAL: &str = "cherrypick_rate_limited_total";
pub const BUDGET_REJECTED_TOTAL: &str = "cherrypick_budget_rejected_total";
pub const LIMITS_BACKEND_ERRORS_TOTAL: &str = "cherrypick_limits_backend_errors_total";
pub const AUTH_FAILURES_TOTAL: &str = "cherrypick_auth_failures_total";
pub const DB_CONNECTIONS: &str = "cherrypick_db_connections";
pub const REQUEST_LOG_ROWS_TOTAL: &str = "cherrypick_request_log_rows_total";
pub const REQUEST_LOG_QUEUE_DEPTH: &str = "cherrypick_request_log_queue_depth";
pub const REQUEST_LOG_WRITE_SECONDS: &str = "cherrypick_request_log_write_seconds";
pub const GPU_MEMORY_BYTES: &str = "cherrypick_gpu_memory_bytes";
