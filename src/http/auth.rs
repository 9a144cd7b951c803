//! The bearer-key check on `/v1`. Constant-time, so the comparison does not leak how much of a guessed
//! key was right.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::error::ApiError;

pub async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(expected) = &state.master_key else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .map(<[u8]>::trim_ascii);
    match presented {
        None => ApiError::missing_api_key().into_response(),
        Some(key) if bool::from(key.ct_eq(expected.as_bytes())) => next.run(request).await,
        Some(_) => ApiError::invalid_api_key().into_response(),
    }
}
