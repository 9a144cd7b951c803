//! `POST /v1/feedback`: a score in [0, 1] (and a comment) for an earlier request, kept with its
//! request-log row as the router's training signal. A virtual key may rate only its own requests.

use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::json::OpenAiJson;
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    pub request_id: String,
    pub score: f64,
    #[serde(default)]
    pub comment: Option<String>,
}

pub async fn feedback(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    OpenAiJson(feedback): OpenAiJson<Feedback>,
) -> Result<Json<Value>, ApiError> {
    if !(0.0..=1.0).contains(&feedback.score) {
        return Err(ApiError::invalid_field("score", "score must be a number from 0 to 1"));
    }
    if feedback.comment.as_ref().is_some_and(|c| c.len() > 10_000) {
        return Err(ApiError::invalid_field("comment", "comment must be at most 10,000 bytes"));
    }
    let owner = caller.account().map(|a| a.key.id.as_str());
    let mut found =
        state.store.add_feedback(&feedback.request_id, owner, feedback.score, feedback.comment.as_deref()).await?;
    if !found && let Some(log) = &state.request_log {
        // The row may still be queued: write it out and look again.
        log.flush().await;
        found =
            state.store.add_feedback(&feedback.request_id, owner, feedback.score, feedback.comment.as_deref()).await?;
    }
    if !found {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("no logged request has the id `{}`", feedback.request_id),
        )
        .with_param("request_id")
        .with_code("request_not_found"));
    }
    Ok(Json(json!({
        "object": "feedback",
        "request_id": feedback.request_id,
        "score": feedback.score,
        "comment": feedback.comment,
    })))
}
