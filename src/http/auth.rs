//! Who is calling: the master key (constant-time compared, so a guess learns nothing from timing),
//! a virtual key from the store, or nobody on an open gateway (no `auth.master_key`, where virtual
//! keys are not checked either). The caller rides on the request as an extension.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::error::ApiError;
use crate::store::{Account, KEY_PREFIX};

#[derive(Clone)]
pub enum Caller {
    /// No master key is configured.
    Open,
    Master,
    Key(Arc<Account>),
}

impl Caller {
    pub fn account(&self) -> Option<&Arc<Account>> {
        match self {
            Self::Key(account) => Some(account),
            _ => None,
        }
    }
}

fn bearer(request: &Request) -> Option<&[u8]> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .map(<[u8]>::trim_ascii)
}

pub async fn require_key(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let presented = bearer(&request).map(<[u8]>::to_vec);
    let caller = match identify(&state, presented.as_deref()).await {
        Ok(caller) => caller,
        Err((reason, error)) => {
            state.metrics.auth_failures.with_label_values(&[reason]).inc();
            return error.into_response();
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

async fn identify(state: &AppState, presented: Option<&[u8]>) -> Result<Caller, (&'static str, ApiError)> {
    let Some(master) = &state.master_key else { return Ok(Caller::Open) };
    let Some(presented) = presented else { return Err(("missing", ApiError::missing_api_key())) };
    if bool::from(presented.ct_eq(master.as_bytes())) {
        return Ok(Caller::Master);
    }
    if !presented.starts_with(KEY_PREFIX.as_bytes()) {
        return Err(("invalid", ApiError::invalid_api_key()));
    }
    match state.store.authenticate(presented).await {
        Ok(Some(account)) => Ok(Caller::Key(account)),
        Ok(None) => Err(("invalid", ApiError::invalid_api_key())),
        Err(error) => Err(("unavailable", error.into())),
    }
}

/// The admin API: the master key only; without one configured the admin API is off.
pub async fn require_master(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(master) = &state.master_key else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "the admin API needs `auth.master_key` to be set",
        )
        .with_code("admin_disabled")
        .into_response();
    };
    match bearer(&request) {
        None => {
            state.metrics.auth_failures.with_label_values(&["missing"]).inc();
            ApiError::missing_api_key().into_response()
        }
        Some(key) if bool::from(key.ct_eq(master.as_bytes())) => next.run(request).await,
        Some(_) => {
            state.metrics.auth_failures.with_label_values(&["invalid"]).inc();
            ApiError::invalid_api_key().into_response()
        }
    }
}
