//! The outermost layer: a request id on every response, the request counters and duration, and the
//! in-flight gauge.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::AppState;

pub const REQUEST_ID: &str = "x-request-id";

/// The request's id, for handlers (the request log) to read.
#[derive(Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = request.extensions().get::<MatchedPath>().map_or("other", |p| endpoint_label(p.as_str()));
    let method = method_label(request.method());
    let id = request.headers().get(REQUEST_ID).filter(|v| v.len() <= 128).cloned().unwrap_or_else(new_request_id);
    request.extensions_mut().insert(RequestId(id.clone()));
    state.metrics.in_flight.inc();
    // Every line logged while answering names the request.
    let span = tracing::info_span!("request", id = id.to_str().unwrap_or_default(), endpoint);
    let mut response = next.run(request).instrument(span).await;
    state.metrics.in_flight.dec();
    let status = response.status();
    state.metrics.requests.with_label_values(&[method, endpoint, status.as_str()]).inc();
    state.metrics.request_duration.with_label_values(&[method, endpoint]).observe(started.elapsed().as_secs_f64());
    if status.is_server_error() {
        tracing::warn!(request_id = ?id, endpoint, status = status.as_u16(), "request failed");
    } else {
        tracing::debug!(request_id = ?id, endpoint, status = status.as_u16(), "request answered");
    }
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// Matched routes are a fixed set; mapping them to static strings keeps the label bounded.
fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" => "/v1/chat/completions",
        "/v1/completions" => "/v1/completions",
        "/v1/embeddings" => "/v1/embeddings",
        "/v1/models" => "/v1/models",
        "/v1/feedback" => "/v1/feedback",
        "/admin/keys" | "/admin/keys/{id}" => "/admin/keys",
        "/admin/teams" | "/admin/teams/{id}" => "/admin/teams",
        "/health" => "/health",
        "/ready" => "/ready",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        _ => "other",
    }
}

/// `req_<process prefix><counter>`: unique per process and cheap (no random number per request).
fn new_request_id() -> HeaderValue {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_fields().0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::try_from(format!("req_{prefix:08x}{n:012x}")).expect("hex is a valid header value")
}
