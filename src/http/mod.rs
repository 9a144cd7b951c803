//! HTTP: routes, middleware, JSON and SSE rendering. Handlers only extract, call the gateway, render.

mod admin;
mod auth;
mod feedback;
mod handlers;
pub mod json;
mod observe;
mod ops;
mod sse;
mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};

pub use state::{AppState, Shared};

/// The whole application. Layers, outermost first:
/// - `observe`: request id, metrics and the in-flight gauge, for every request including rejected ones;
/// - `auth` (on `/v1`: the master key or a virtual key; on `/admin`: the master key only), before
///   any body is read;
/// - `DefaultBodyLimit`: caps how much of a body the JSON extractor will buffer (413 beyond).
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/chat/completions", post(handlers::chat_completions))
        .route("/completions", post(handlers::completions))
        .route("/embeddings", post(handlers::embeddings))
        .route("/models", get(handlers::models))
        .route("/feedback", post(feedback::feedback))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_key));
    let admin = Router::new()
        .route("/keys", post(admin::create_key).get(admin::list_keys))
        .route("/keys/{id}", get(admin::get_key).patch(admin::update_key).delete(admin::revoke_key))
        .route("/teams", post(admin::create_team).get(admin::list_teams))
        .route("/teams/{id}", get(admin::get_team).patch(admin::update_team))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_master));
    Router::new()
        .nest("/v1", api)
        .nest("/admin", admin)
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), observe::observe))
        .with_state(state)
}

/// `/metrics` alone, for `metrics.listen`.
pub fn metrics_app(state: AppState) -> Router {
    Router::new().route("/metrics", get(ops::metrics)).with_state(state)
}
