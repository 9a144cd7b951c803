//! The `/v1` handlers: extract, call the gateway, render.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::json::OpenAiJson;
use super::sse::sse_response;
use crate::error::ApiError;
use crate::gateway::Answer;
use crate::openai::{ChatCompletionRequest, CompletionRequest, EmbeddingsRequest};

pub const MODEL_HEADER: &str = "x-cherrypick-model";
pub const PROVIDER_HEADER: &str = "x-cherrypick-provider";

pub async fn chat_completions(
    State(state): State<AppState>,
    OpenAiJson(request): OpenAiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let answer = state.gateway.chat(request).await?;
    Ok(render(&state, answer))
}

pub async fn completions(
    State(state): State<AppState>,
    OpenAiJson(request): OpenAiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let answer = state.gateway.completion(request).await?;
    Ok(render(&state, answer))
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
    let (model, provider) = {
        let route = answer.route();
        (HeaderValue::from_str(&route.model).ok(), HeaderValue::from_str(route.provider.name()).ok())
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
    response
}

pub fn json_response(body: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
