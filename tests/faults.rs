//! The fault suite: upstreams that fail in every way a real one does, and what the gateway makes of
//! each: how many upstream calls, the fallback taken, and the client's error when nothing answers.
//! (The breaker's state machine under paused time is in `src/gateway/breaker.rs`; its effect on
//! calls is in `tests/gateway.rs`.)

mod common;

use std::time::{Duration, Instant};

use common::{FakeUpstream, TestGateway, chat_body, config_for, json};
use serde_json::json;
use tokio::net::TcpListener;

/// Three attempts with a 1 ms backoff, a 300 ms first-byte timeout, no breaker: each fault's
/// retries are counted alone.
fn faults_config(upstream: &FakeUpstream, extra: &str) -> String {
    config_for(upstream, extra)
        + "[retry]\nattempts = 3\nbase_backoff_ms = 1\nmax_backoff_ms = 1\n[timeouts]\nfirst_byte_secs = 0.3\n[breaker]\nenabled = false\n"
}

#[tokio::test]
async fn each_fault_is_retried_or_not_and_ends_in_a_clear_error() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&faults_config(&upstream, "")).await;
    // (model, stream, upstream calls, client status, error code)
    let cases: &[(&str, bool, usize, u16, &str)] = &[
        ("status-500", false, 3, 500, "upstream_error"),
        ("status-502", false, 3, 502, "upstream_error"),
        ("status-503", true, 3, 503, "upstream_error"),
        ("hang", false, 3, 504, "upstream_timeout"),
        ("hang", true, 3, 504, "upstream_timeout"),
        ("garbage", false, 1, 502, "invalid_upstream_response"),
        ("status-429", false, 1, 429, "rate_limit_exceeded"),
        ("status-400", false, 1, 400, "context_length_exceeded"),
    ];
    for &(model, stream, calls, status, code) in cases {
        let before = upstream.calls();
        let mut body = chat_body(model, "hi");
        body["stream"] = json!(stream);
        let response = gateway.post("/v1/chat/completions", body).await;
        assert_eq!(response.status().as_u16(), status, "{model} stream={stream}");
        assert_eq!(response.headers()["content-type"], "application/json", "{model}: a JSON error, not a stream");
        let error = json(response).await["error"].clone();
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{model}: {error}");
        if code != "upstream_error" {
            assert_eq!(error["code"], code, "{model}: {error}");
        }
        assert_eq!(upstream.calls() - before, calls, "{model} stream={stream}: upstream calls");
    }
}

/// A 429 whose `retry-after` is short enough is waited out, then the call succeeds.
#[tokio::test]
async fn a_short_retry_after_is_honoured() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&faults_config(&upstream, "")).await;
    let started = Instant::now();
    let response = gateway.post("/v1/chat/completions", chat_body("flaky-429", "hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.calls(), 2);
    assert!(started.elapsed() >= Duration::from_secs(1), "waited for retry-after: 1");
}

/// An upstream that resets every connection: retried as a connection failure, then 502.
#[tokio::test]
async fn a_connection_reset_is_retried_then_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // Linger 0: closing sends a RST instead of a FIN.
            let _ = socket.set_zero_linger();
            drop(socket);
        }
    });
    let upstream = FakeUpstream::start().await;
    let extra = format!(
        "[providers.resetting]\nkind = \"openai_compatible\"\nbase_url = \"http://{addr}/v1\"\n[models.reset]\nprovider = \"resetting\"\n"
    );
    let gateway = TestGateway::start_with(&faults_config(&upstream, &extra)).await;
    let response = gateway.post("/v1/chat/completions", chat_body("reset", "hi")).await;
    assert_eq!(response.status(), 502);
    let error = json(response).await["error"].clone();
    assert_eq!(error["type"], "server_error", "{error}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3, "three attempts");
}

/// When the model and all its fallbacks fail, the client gets the last one's error, once.
#[tokio::test]
async fn when_every_fallback_fails_the_last_error_is_returned() {
    let upstream = FakeUpstream::start().await;
    let config = faults_config(&upstream, "").replace(
        "[models.\"status-503\"]\nprovider = \"fake\"\n",
        "[models.\"status-503\"]\nprovider = \"fake\"\nfallbacks = [\"status-502\", \"garbage\"]\nretry = { attempts = 1 }\n",
    );
    let gateway = TestGateway::start_with(&config).await;
    let response = gateway.post("/v1/chat/completions", chat_body("status-503", "hi")).await;
    assert_eq!(response.status(), 502);
    assert_eq!(json(response).await["error"]["code"], "invalid_upstream_response");
    // 1 (status-503, one attempt) + 3 (status-502, the default attempts) + 1 (garbage, not retried)
    assert_eq!(upstream.calls(), 5);
    let metrics = gateway.get("/metrics").await.text().await.unwrap();
    for kind in ["upstream_5xx", "invalid_response"] {
        assert!(
            metrics.contains(&format!("cherrypick_upstream_errors_total{{kind=\"{kind}\",provider=\"fake\"}}")),
            "{kind}: {metrics}"
        );
    }
}

/// A stream cut in the middle: the client has its first chunks and then an error event, and the
/// call is not retried (the first byte had reached the client).
#[tokio::test]
async fn a_stream_cut_in_the_middle_is_not_retried() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&faults_config(&upstream, "")).await;
    let mut body = chat_body("cut-stream", "hi");
    body["stream"] = json!(true);
    let response = gateway.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    let events = common::sse_data(&response.text().await.unwrap());
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "server_error");
    assert_eq!(upstream.calls(), 1);
}

/// A provider's own connect timeout: an upstream whose accept queue is full never completes the
/// handshake, and the call fails as unreachable after that timeout, not the first-byte one.
#[tokio::test]
async fn a_providers_connect_timeout_bounds_the_handshake() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the accept queue (never accepted): further handshakes are not answered.
    let mut held = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await
        {
            held.push(stream);
        }
    }
    let upstream = FakeUpstream::start().await;
    let extra = format!(
        "[providers.silent]\nkind = \"openai_compatible\"\nbase_url = \"http://{addr}/v1\"\nconnect_timeout_secs = 0.2\n[models.silent]\nprovider = \"silent\"\nretry = {{ attempts = 1 }}\ntimeouts = {{ first_byte_secs = 60 }}\n"
    );
    let gateway = TestGateway::start_with(&config_for(&upstream, &extra)).await;
    let response =
        tokio::time::timeout(Duration::from_secs(5), gateway.post("/v1/chat/completions", chat_body("silent", "hi")))
            .await
            .expect("the provider's 0.2 s connect timeout ends the call, long before the 10 s default");
    assert_eq!(response.status(), 502);
    let error = json(response).await["error"].clone();
    assert_eq!(error["code"], "upstream_unreachable", "{error}");
    drop((held, listener));
}
