//! The `/v1` handlers: extract, call the gateway, render.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::json::OpenAiJson;
use super::sse::sse_response;
use crate::error::ApiError;
use crate::gateway::Answer;
use crate::openai::{ChatCompletionRequest, CompletionRequest, EmbeddingsRequest};
use crate::router::Hints;

pub const MODEL_HEADER: &str = "x-cherrypick-model";
pub const PROVIDER_HEADER: &str = "x-cherrypick-provider";
pub const ROUTE_HEADER: &str = "x-cherrypick-route";
pub const COST_WEIGHT_HEADER: &str = "x-cherrypick-cost-weight";
pub const CANDIDATES_HEADER: &str = "x-cherrypick-candidates";

pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    OpenAiJson(request): OpenAiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let answer = state.gateway.chat(request, &hints(&headers)?).await?;
    Ok(render(&state, answer))
}

pub async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    OpenAiJson(request): OpenAiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let answer = state.gateway.completion(request, &hints(&headers)?).await?;
    Ok(render(&state, answer))
}

/// The router's per-request headers: a cost weight (a non-negative number) and a comma-separated
/// list of candidate models.
fn hints(headers: &HeaderMap) -> Result<Hints, ApiError> {
    let text = |name: &'static str| -> Result<Option<&str>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str().map_err(|_| ApiError::bad_request(format!("{name} is not valid text")).with_param(name))
            })
            .transpose()
    };
    let cost_weight = match text(COST_WEIGHT_HEADER)? {
        None => None,
        Some(raw) => match raw.trim().parse::<f64>() {
            Ok(w) if w.is_finite() && w >= 0.0 => Some(w),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{COST_WEIGHT_HEADER} must be a non-negative number, not `{raw}`"
                ))
                .with_param(COST_WEIGHT_HEADER));
            }
        },
    };
    let candidates = text(CANDIDATES_HEADER)?
        .map(|raw| raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>());
    if candidates.as_ref().is_some_and(Vec::is_empty) {
        return Err(ApiError::bad_request(format!("{CANDIDATES_HEADER} names no model")).with_param(CANDIDATES_HEADER));
    }
    Ok(Hints { cost_weight, candidates })
}

pub async fn embeddings(
    State(state): State<AppState>,
    OpenAiJson(request): OpenAiJson<EmbeddingsRequest>,
) -> Result<Response, ApiError> {
    let answer = state.gateway.embeddings(request).await?;
    Ok(render(&state, answer))
}

pub async fn models(State(state): State<AppState>) -> Response {
    json_response(state.gateway.routes().model_list())
}

fn render(state: &AppState, answer: Answer) -> Response {
    let (model, provider, summary) = {
        let routed = answer.routed();
        (
            HeaderValue::from_str(&routed.model).ok(),
            HeaderValue::from_str(routed.provider.name()).ok(),
            routed.summary.as_deref().and_then(|s| HeaderValue::from_str(s).ok()),
        )
    };
    let mut response = match answer {
        Answer::Json { body, .. } => json_response(body),
        Answer::Stream { first, rest, .. } => sse_response(first, rest, state.keep_alive),
    };
    let headers = response.headers_mut();
    if let Some(model) = model {
        headers.insert(MODEL_HEADER, model);
    }
    if let Some(provider) = provider {
        headers.insert(PROVIDER_HEADER, provider);
    }
    if let Some(summary) = summary {
        headers.insert(ROUTE_HEADER, summary);
    }
    response
}

pub fn json_response(body: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
