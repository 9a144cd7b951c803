//! The `/v1` handlers: extract, call the gateway, render.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::Caller;
use super::json::OpenAiJson;
use super::observe::RequestId;
use super::sse::sse_response;
use crate::error::ApiError;
use crate::gateway::{Answer, Replay, RequestContext, Ticket};
use crate::memory::Controls;
use crate::memory::key::tenant_of;
use crate::openai::{ChatCompletionRequest, CompletionRequest, EmbeddingsRequest};
use crate::providers::ChunkStream;
use crate::router::Hints;

pub const MODEL_HEADER: &str = "x-cherrypick-model";
pub const PROVIDER_HEADER: &str = "x-cherrypick-provider";
pub const ROUTE_HEADER: &str = "x-cherrypick-route";
pub const COST_WEIGHT_HEADER: &str = "x-cherrypick-cost-weight";
pub const CANDIDATES_HEADER: &str = "x-cherrypick-candidates";
pub const CACHE_HEADER: &str = "x-cherrypick-cache";
pub const CACHE_TTL_HEADER: &str = "x-cherrypick-cache-ttl";

pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<OpenAiJson<ChatCompletionRequest>, ApiError>,
) -> Response {
    let mut ctx = match context(&state, &headers, &caller, &id, "/v1/chat/completions") {
        Ok(ctx) => ctx,
        Err(error) => return error.into_response(),
    };
    let answer = match body {
        Ok(OpenAiJson(request)) => state.gateway.chat(request, &mut ctx).await,
        Err(error) => Err(error),
    };
    respond(&state, ctx, answer)
}

pub async fn completions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<OpenAiJson<CompletionRequest>, ApiError>,
) -> Response {
    let mut ctx = match context(&state, &headers, &caller, &id, "/v1/completions") {
        Ok(ctx) => ctx,
        Err(error) => return error.into_response(),
    };
    let answer = match body {
        Ok(OpenAiJson(request)) => state.gateway.completion(request, &mut ctx).await,
        Err(error) => Err(error),
    };
    respond(&state, ctx, answer)
}

pub async fn embeddings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<OpenAiJson<EmbeddingsRequest>, ApiError>,
) -> Response {
    let mut ctx = match context(&state, &headers, &caller, &id, "/v1/embeddings") {
        Ok(ctx) => ctx,
        Err(error) => return error.into_response(),
    };
    let answer = match body {
        Ok(OpenAiJson(request)) => state.gateway.embeddings(request, &mut ctx).await,
        Err(error) => Err(error),
    };
    respond(&state, ctx, answer)
}

/// Renders the answer or error, with the `x-ratelimit-*` headers it was admitted under, and ends
/// the request's ticket (a stream's ticket ends with the stream instead).
fn respond(state: &AppState, mut ctx: RequestContext, answer: Result<Answer, ApiError>) -> Response {
    let ticket = ctx.ticket.take();
    let mut response = match answer {
        Ok(answer) => {
            if let Some(ticket) = ticket {
                ticket.finish(200, None);
            }
            render(state, answer)
        }
        Err(error) => {
            if let Some(ticket) = ticket {
                ticket.finish(error.status.as_u16(), Some(error.class()));
            }
            error.into_response()
        }
    };
    if let Some(headers) = ctx.rate_headers.take() {
        response.headers_mut().extend(headers);
    }
    response
}

fn header_text<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| ApiError::bad_request(format!("{name} is not valid text")).with_param(name)))
        .transpose()
}

/// Everything the request's headers say beyond its body: routing hints, the caller's tenant (a
/// digest of its key) and the cache controls; and the ticket that logs it.
fn context(
    state: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    id: &RequestId,
    endpoint: &str,
) -> Result<RequestContext, ApiError> {
    // The tenant digest is only read by the cache: no hashing per request without one.
    let tenant = match state.gateway.memory() {
        Some(_) => {
            let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
            tenant_of(bearer.map(<[u8]>::trim_ascii))
        }
        None => String::new(),
    };
    let mut ctx = RequestContext::new(hints(headers)?, tenant, cache_controls(headers)?);
    ctx.account = caller.account().cloned();
    ctx.ticket = Some(Ticket::new(id.as_str().to_owned(), endpoint, ctx.account.as_ref(), state.request_log.clone()));
    Ok(ctx)
}

/// `Cache-Control: no-cache` (answer fresh, still store), `no-store` (neither look up nor store);
/// `x-cherrypick-cache-ttl: SECONDS` (how long this answer is kept).
fn cache_controls(headers: &HeaderMap) -> Result<Controls, ApiError> {
    let mut controls = Controls::default();
    for value in headers.get_all(header::CACHE_CONTROL) {
        let value = value.to_str().unwrap_or_default();
        for directive in value.split(',').map(|d| d.trim().to_ascii_lowercase()) {
            match directive.as_str() {
                "no-cache" => controls.skip_lookup = true,
                "no-store" => {
                    controls.skip_lookup = true;
                    controls.no_store = true;
                }
                _ => {}
            }
        }
    }
    if let Some(raw) = header_text(headers, CACHE_TTL_HEADER)? {
        match raw.trim().parse::<u64>() {
            Ok(seconds) if seconds > 0 => controls.ttl = Some(std::time::Duration::from_secs(seconds)),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{CACHE_TTL_HEADER} must be a whole number of seconds above 0, not `{raw}`"
                ))
                .with_param(CACHE_TTL_HEADER));
            }
        }
    }
    Ok(controls)
}

/// The router's per-request headers: a cost weight (a non-negative number) and a comma-separated
/// list of candidate models.
fn hints(headers: &HeaderMap) -> Result<Hints, ApiError> {
    let text = |name: &'static str| header_text(headers, name);
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

pub async fn models(State(state): State<AppState>) -> Response {
    json_response(state.gateway.routes().model_list())
}

/// The model, provider and route headers of an answer a provider gave.
fn route_headers(route: &crate::gateway::Routed) -> [Option<HeaderValue>; 3] {
    let value = |text: &str| HeaderValue::from_str(text).ok();
    [value(&route.model), value(route.provider.name()), route.summary.as_deref().and_then(value)]
}

fn render(state: &AppState, answer: Answer) -> Response {
    let value = |text: &str| HeaderValue::from_str(text).ok();
    let (mut response, [model, provider, summary], cache) = match answer {
        Answer::Json { route, body, cache } => (json_response(body), route_headers(&route), cache),
        Answer::Stream { route, first, rest, cache } => {
            let headers = route_headers(&route);
            (sse_response(first, rest, state.keep_alive), headers, cache)
        }
        Answer::Cached { source, model, provider, reply } => {
            let response = match reply {
                Replay::Json(body) => json_response(body),
                Replay::Stream(chunks) => {
                    let mut chunks = chunks.into_iter();
                    let first = chunks.next().unwrap_or_default();
                    let rest: ChunkStream = Box::pin(futures_util::stream::iter(chunks.map(Ok)));
                    sse_response(first, rest, state.keep_alive)
                }
            };
            (response, [value(&model), value(&provider), None], Some(source.header()))
        }
    };
    let headers = response.headers_mut();
    for (name, value) in [(MODEL_HEADER, model), (PROVIDER_HEADER, provider), (ROUTE_HEADER, summary)] {
        if let Some(value) = value {
            headers.insert(name, value);
        }
    }
    if let Some(cache) = cache {
        headers.insert(CACHE_HEADER, HeaderValue::from_static(cache));
    }
    response
}

pub fn json_response(body: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
