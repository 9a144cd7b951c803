//! The admin API (master key only): teams and virtual keys. A key's text is returned once, by the
//! call that creates it; the store keeps only its digest.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::json::OpenAiJson;
use crate::config::is_auto;
use crate::error::ApiError;
use crate::store::{KeyInfo, NewKey, NewTeam, Patch, Team};

fn check_models(state: &AppState, models: Option<&Vec<String>>) -> Result<(), ApiError> {
    for model in models.into_iter().flatten() {
        if !is_auto(model) && state.gateway.routes().resolve(model).is_err() {
            return Err(ApiError::invalid_field("models", format!("no model named `{model}` is configured")));
        }
    }
    Ok(())
}

/// A key with what it has spent in its budget period so far.
async fn with_spend(state: &AppState, key: KeyInfo) -> Result<Value, ApiError> {
    let start = key.limits.budget_period.start(crate::db::unix_now());
    let spend = state.store.spend(&key.id, false, start).await?;
    let mut value = serde_json::to_value(&key).map_err(|e| ApiError::internal(e.to_string()))?;
    value["spend_usd"] = json!(spend);
    value["object"] = json!("virtual_key");
    Ok(value)
}

fn team_json(team: &Team) -> Value {
    let mut value = serde_json::to_value(team).unwrap_or_default();
    value["object"] = json!("team");
    value
}

pub async fn create_key(
    State(state): State<AppState>,
    OpenAiJson(new): OpenAiJson<NewKey>,
) -> Result<Response, ApiError> {
    check_models(&state, new.models.as_ref())?;
    let created = state.store.create_key(new).await?;
    let mut value = with_spend(&state, created.info).await?;
    value["key"] = json!(created.key);
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

pub async fn list_keys(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut data = Vec::new();
    for key in state.store.keys().await? {
        data.push(with_spend(&state, key).await?);
    }
    Ok(Json(json!({"object": "list", "data": data})))
}

pub async fn get_key(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let key = state.store.key(&id).await?;
    Ok(Json(with_spend(&state, key).await?))
}

pub async fn update_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OpenAiJson(patch): OpenAiJson<Patch>,
) -> Result<Json<Value>, ApiError> {
    check_models(&state, patch.models.as_ref().and_then(Option::as_ref))?;
    let key = state.store.update_key(&id, patch).await?;
    Ok(Json(with_spend(&state, key).await?))
}

pub async fn revoke_key(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let key = state.store.revoke_key(&id).await?;
    Ok(Json(with_spend(&state, key).await?))
}

pub async fn create_team(
    State(state): State<AppState>,
    OpenAiJson(new): OpenAiJson<NewTeam>,
) -> Result<Response, ApiError> {
    let team = state.store.create_team(new).await?;
    Ok((StatusCode::CREATED, Json(team_json(&team))).into_response())
}

pub async fn list_teams(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let teams = state.store.teams().await?;
    Ok(Json(json!({"object": "list", "data": teams.iter().map(team_json).collect::<Vec<_>>()})))
}

pub async fn get_team(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(team_json(&state.store.team(&id).await?)))
}

pub async fn update_team(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OpenAiJson(patch): OpenAiJson<Patch>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(team_json(&state.store.update_team(&id, patch).await?)))
}
