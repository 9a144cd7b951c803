//! Operational endpoints: liveness, readiness, metrics, and the 404 for unknown URLs.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;
use crate::error::ApiError;
use crate::gateway::Phase;
use crate::router::State as RouterState;

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 while serving, 503 once draining. Lists each provider's state so an operator sees at once
/// which ones lack credentials.
pub async fn ready(State(state): State<AppState>) -> Response {
    let draining = state.draining.load(Ordering::Relaxed);
    let providers: Map<String, Value> = state
        .gateway
        .providers()
        .iter()
        .map(|(name, p)| {
            let state = match state.gateway.routes().breaker(name).map(|b| b.phase()) {
                _ if !p.is_configured() => "missing_credentials",
                Some(Phase::Open) => "circuit_open",
                Some(Phase::HalfOpen) => "circuit_half_open",
                Some(Phase::Closed) | None => "ready",
            };
            (name.to_owned(), Value::from(state))
        })
        .collect();
    let status = if draining { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    let mut body = json!({"status": if draining { "draining" } else { "ready" }, "providers": providers});
    body["limits"] = json!(state.gateway.limiter().state());
    // Deployments paused by their own breaker (a provider's other models may still answer).
    let deployments: Map<String, Value> = state
        .gateway
        .routes()
        .open_deployments()
        .into_iter()
        .map(|(model, phase)| (model.to_owned(), Value::from(format!("circuit_{}", phase.as_str()))))
        .collect();
    if !deployments.is_empty() {
        body["models"] = Value::Object(deployments);
    }
    // The router never blocks readiness: until it is up, `auto` goes to routing.default.
    if let Some(router) = state.gateway.router() {
        body["router"] = match router.state() {
            RouterState::Loading => json!("loading"),
            RouterState::Ready => json!("ready"),
            RouterState::Failed(why) => json!({"failed": why}),
        };
    }
    // Cache tiers never block readiness either: a tier that is down is skipped.
    if let Some(memory) = state.gateway.memory() {
        body["cache"] = json!(memory.states());
    }
    (status, Json(body)).into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    // GPU memory (with the `nvml` feature) is read through blocking driver calls.
    if cfg!(feature = "nvml") {
        let metrics = state.metrics.clone();
        let _ = tokio::task::spawn_blocking(move || metrics.refresh_sampled()).await;
    }
    // Pool sizes are read when scraped: nothing to update on the request path.
    let pools = [
        ("store", Some(state.store.database().connections())),
        ("cache", state.gateway.memory().and_then(|m| m.l3_connections())),
    ];
    for (pool, connections) in pools {
        if let Some((idle, active)) = connections {
            state.metrics.db_connections.with_label_values(&[pool, "idle"]).set(i64::from(idle));
            state.metrics.db_connections.with_label_values(&[pool, "active"]).set(i64::from(active));
        }
    }
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], state.metrics.render()).into_response()
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found_route(uri.path())
}
