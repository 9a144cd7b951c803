//! A fake OpenAI-compatible upstream. It records every request (path, headers, JSON body), counts
//! calls, and answers by the `model` it is asked for:
//! - `echo`: a completion whose content echoes the last user message; with `tools`, a tool call;
//!   with `response_format`, a JSON object; streamed word by word when `stream` is true (with a usage
//!   chunk when `stream_options.include_usage`), tool-call arguments streamed in pieces.
//! - `status-NNN`: an OpenAI error body with status NNN (`retry-after: 7` on 429).
//! - `gated-stream`: one chunk, then waits for `release()` before each further chunk (5 in all).
//! - `cut-stream`: two chunks, then the connection breaks.
//! - `empty-stream`: `[DONE]` and nothing else.
//! - `garbage`: 200 with a body that is not JSON.
//! - `slow`: `echo` after 500 ms. `hang`: never answers.
//! - `flaky-429`: every other call is a 429 with `retry-after: 1`, the others are `echo`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};

pub const BEHAVIOURS: &[&str] = &[
    "status-400",
    "status-401",
    "status-429",
    "status-500",
    "status-503",
    "gated-stream",
    "cut-stream",
    "empty-stream",
    "garbage",
    "slow",
    "status-502",
    "hang",
    "flaky-429",
];

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

struct Shared {
    calls: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
    gate: Semaphore,
    stream_dropped: AtomicBool,
    stream_finished: AtomicBool,
    flaky: AtomicUsize,
}

#[derive(Clone)]
pub struct FakeUpstream {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
}

impl FakeUpstream {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            calls: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            gate: Semaphore::new(0),
            stream_dropped: AtomicBool::new(false),
            stream_finished: AtomicBool::new(false),
            flaky: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(answer))
            .route("/v1/completions", post(answer))
            .route("/v1/embeddings", post(answer))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    pub async fn last_request(&self) -> Recorded {
        self.shared.requests.lock().await.last().cloned().expect("the upstream was called")
    }

    /// Lets a `gated-stream` send its next chunk.
    pub fn release(&self, chunks: usize) {
        self.shared.gate.add_permits(chunks);
    }

    /// Whether a `gated-stream` was dropped before it finished (the gateway hung up).
    pub fn stream_dropped(&self) -> bool {
        self.shared.stream_dropped.load(Ordering::SeqCst)
    }

    pub fn stream_finished(&self) -> bool {
        self.shared.stream_finished.load(Ordering::SeqCst)
    }
}

async fn answer(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    shared.calls.fetch_add(1, Ordering::SeqCst);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.requests.lock().await.push(Recorded { path: uri.path().to_owned(), headers, body: body.clone() });
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let stream = body["stream"].as_bool() == Some(true);
    if let Some(status) = model.strip_prefix("status-") {
        return error(status.parse().unwrap_or(500));
    }
    if model == "hang" {
        // Never answers in any time a test waits for.
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
    if model == "flaky-429" && shared.flaky.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
        let mut response = error(429);
        response.headers_mut().insert("retry-after", "1".parse().expect("header"));
        return response;
    }
    if model == "slow" {
        // Long enough for every request of a concurrent burst to be in flight together.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    match (model.as_str(), uri.path()) {
        ("garbage", _) => (StatusCode::OK, [("content-type", "application/json")], "{not json").into_response(),
        ("gated-stream", _) => gated_stream(shared),
        ("cut-stream", _) => cut_stream(),
        ("empty-stream", _) => sse(vec!["[DONE]".to_owned()]),
        (_, "/v1/embeddings") => embeddings(&body),
        (_, "/v1/completions") if stream => sse(vec![
            json!({"id": "cmpl-1", "object": "text_completion", "model": model, "choices": [{"index": 0, "text": "hello", "finish_reason": null}]}).to_string(),
            "[DONE]".to_owned(),
        ]),
        (_, "/v1/completions") => axum::Json(json!({
            "id": "cmpl-1", "object": "text_completion", "created": 1, "model": model,
            "choices": [{"index": 0, "text": "hello", "finish_reason": "stop", "logprobs": null}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
        }))
        .into_response(),
        _ if stream => sse(echo_chunks(&body)),
        _ => axum::Json(echo_completion(&body)).into_response(),
    }
}

fn error(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (message, kind, code) = match status.as_u16() {
        400 => {
            ("This model's maximum context length is 8192 tokens.", "invalid_request_error", "context_length_exceeded")
        }
        401 => (
            "Incorrect API key provided: sk-upstream-secret-0123456789abcdef.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        429 => ("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
        _ => ("The server had an error while processing your request.", "server_error", "server_error"),
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert("retry-after", "7".parse().expect("header"));
    }
    response
}

fn last_user_text(body: &Value) -> String {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.iter().rev().find(|m| m["role"] == "user").cloned().unwrap_or(Value::Null);
    match &last["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

fn reply_text(body: &Value) -> String {
    let text = last_user_text(body);
    if body["response_format"]["type"].as_str().is_some_and(|t| t.starts_with("json")) {
        json!({"echo": text}).to_string()
    } else {
        format!("echo: {text}")
    }
}

fn tool_name(body: &Value) -> Option<String> {
    body["tools"][0]["function"]["name"].as_str().map(str::to_owned)
}

const USAGE: fn() -> Value = || json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});

fn echo_completion(body: &Value) -> Value {
    let message = match tool_name(body) {
        Some(name) => json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": name, "arguments": "{\"city\":\"Paris\"}"}}
        ]}),
        None => json!({"role": "assistant", "content": reply_text(body)}),
    };
    let finish = if tool_name(body).is_some() { "tool_calls" } else { "stop" };
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
        "usage": USAGE(), "system_fingerprint": "fp_fake"
    })
}

fn chunk(body: &Value, delta: Value, finish: Value) -> String {
    let include_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
    let mut chunk = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    });
    if include_usage {
        chunk["usage"] = Value::Null;
    }
    chunk.to_string()
}

fn echo_chunks(body: &Value) -> Vec<String> {
    let mut events = vec![chunk(body, json!({"role": "assistant", "content": ""}), Value::Null)];
    let finish = match tool_name(body) {
        Some(name) => {
            events.push(chunk(body, json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}]}), Value::Null));
            for piece in ["{\"city\"", ":\"Par", "is\"}"] {
                events.push(chunk(
                    body,
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                    Value::Null,
                ));
            }
            "tool_calls"
        }
        None => {
            let text = reply_text(body);
            let words: Vec<&str> = text.split_inclusive(' ').collect();
            for word in words {
                events.push(chunk(body, json!({"content": word}), Value::Null));
            }
            "stop"
        }
    };
    events.push(chunk(body, json!({}), json!(finish)));
    if body["stream_options"]["include_usage"].as_bool() == Some(true) {
        events.push(json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": body["model"], "choices": [], "usage": USAGE()}).to_string());
    }
    events.push("[DONE]".to_owned());
    events
}

fn embeddings(body: &Value) -> Response {
    let count = match &body["input"] {
        Value::Array(items) if items.first().is_some_and(|i| !i.is_number()) => items.len(),
        _ => 1,
    };
    let data: Vec<Value> =
        (0..count).map(|i| json!({"object": "embedding", "index": i, "embedding": [0.1, 0.2, i as f64]})).collect();
    axum::Json(json!({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 4, "total_tokens": 4}}))
        .into_response()
}

fn sse(events: Vec<String>) -> Response {
    let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    (StatusCode::OK, [("content-type", "text/event-stream")], body).into_response()
}

/// Sets `stream_dropped` if the stream is dropped before it finished.
struct DropGuard(Arc<Shared>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.0.stream_finished.load(Ordering::SeqCst) {
            self.0.stream_dropped.store(true, Ordering::SeqCst);
        }
    }
}

fn gated_stream(shared: Arc<Shared>) -> Response {
    let body = json!({"model": "gated-stream"});
    let stream = futures_util::stream::unfold((0usize, DropGuard(shared)), move |(i, guard)| {
        let body = body.clone();
        async move {
            let frame = match i {
                0 => chunk(&body, json!({"role": "assistant", "content": "part0 "}), Value::Null),
                1..=4 => {
                    guard.0.gate.acquire().await.expect("gate open").forget();
                    chunk(
                        &body,
                        json!({"content": format!("part{i} ")}),
                        if i == 4 { json!("stop") } else { Value::Null },
                    )
                }
                5 => {
                    guard.0.stream_finished.store(true, Ordering::SeqCst);
                    "[DONE]".to_owned()
                }
                _ => return None,
            };
            Some((Ok::<_, Infallible>(Bytes::from(format!("data: {frame}\n\n"))), (i + 1, guard)))
        }
    });
    (StatusCode::OK, [("content-type", "text/event-stream")], Body::from_stream(stream)).into_response()
}

fn cut_stream() -> Response {
    let body = json!({"model": "cut-stream"});
    let frames = futures_util::stream::iter([
        Ok(Bytes::from(format!(
            "data: {}\n\n",
            chunk(&body, json!({"role": "assistant", "content": "one "}), Value::Null)
        ))),
        Ok(Bytes::from(format!("data: {}\n\n", chunk(&body, json!({"content": "two "}), Value::Null)))),
    ]);
    // The pause lets the two chunks leave before the connection is torn down.
    let cut = futures_util::stream::once(async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        Err(std::io::Error::other("connection reset"))
    });
    let stream = futures_util::StreamExt::chain(frames, cut);
    (StatusCode::OK, [("content-type", "text/event-stream")], Body::from_stream(stream)).into_response()
}
