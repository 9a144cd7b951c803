//! With `--features otlp`, request spans reach an OpenTelemetry collector over OTLP/HTTP
//! (`cargo test --features otlp --test otlp`). The collector here is a fake that keeps what it gets.
#![cfg(feature = "otlp")]

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use cherrypick::config::{LogConfig, LogFormat};
use common::{FakeUpstream, TestGateway, chat_body};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_are_exported_over_otlp_http() {
    let received: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let sink = received.clone();
    let collector = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move { sink.lock().unwrap().push(body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let config = LogConfig {
        format: LogFormat::Json,
        level: "info".into(),
        otlp_endpoint: Some(endpoint),
        service_name: "cherrypick-test".into(),
    };
    cherrypick::telemetry::init_logging(&config);
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let answered = gateway.post("/v1/chat/completions", chat_body("mini", "hi")).await;
    let id = answered.headers()["x-request-id"].to_str().unwrap().to_owned();
    // The batch exporter runs on its own thread and blocks while it sends.
    tokio::task::spawn_blocking(cherrypick::telemetry::shutdown_telemetry).await.unwrap();

    let bodies = received.lock().unwrap().clone();
    let all: Vec<u8> = bodies.iter().flat_map(|b| b.iter().copied()).collect();
    let contains = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"cherrypick-test"), "service name exported");
    assert!(contains(b"request"), "the request span exported");
    assert!(contains(id.as_bytes()), "the span carries the request id");
}
