//! The gateway end to end: an in-process gateway in front of a fake upstream, both on port 0.

mod common;

use std::time::Duration;

use common::{FakeUpstream, MASTER_KEY, PROVIDER_KEY, TestGateway, chat_body, json, sse_data};
use futures_util::StreamExt;
use serde_json::json;

/// Starts a `gated-stream` request and reads its first chunk; the upstream then waits for `release`.
async fn open_gated_stream(
    gateway: &TestGateway,
) -> impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + use<> {
    let mut body = chat_body("gated-stream", "hi");
    body["stream"] = json!(true);
    let response = gateway.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    stream.next().await.unwrap().unwrap();
    stream
}

#[tokio::test]
async fn chat_is_forwarded_with_upstream_model_key_and_unknown_fields() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let mut body = chat_body("gpt-4o-mini", "hello there");
    body["reasoning_effort"] = json!("low");
    body["messages"][0]["x_custom"] = json!({"keep": true});
    let response = gateway.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cherrypick-model"], "gpt-4o-mini");
    assert_eq!(response.headers()["x-cherrypick-provider"], "fake");
    assert!(response.headers()["x-request-id"].to_str().unwrap().starts_with("req_"));
    let answer = json(response).await;
    assert_eq!(answer["choices"][0]["message"]["content"], "echo: hello there");
    assert_eq!(answer["usage"]["total_tokens"], 15);

    let seen = upstream.last_request().await;
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.headers["authorization"], format!("Bearer {PROVIDER_KEY}"));
    assert_eq!(seen.body["model"], "echo", "the upstream id replaces the public name");
    assert_eq!(seen.body["reasoning_effort"], "low", "unknown top-level fields pass through");
    assert_eq!(seen.body["messages"][0]["x_custom"], json!({"keep": true}), "unknown message fields pass through");
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn aliases_and_auto_resolve_and_unknown_models_are_404() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    for name in ["mini", "auto", "auto:cheap"] {
        let response = gateway.post("/v1/chat/completions", chat_body(name, "hi")).await;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.headers()["x-cherrypick-model"], "gpt-4o-mini");
    }
    let calls = upstream.calls();
    let response = gateway.post("/v1/chat/completions", chat_body("gpt-9", "hi")).await;
    assert_eq!(response.status(), 404);
    let error = json(response).await["error"].clone();
    assert_eq!(error["code"], "model_not_found");
    assert_eq!(error["param"], "model");
    assert!(error["message"].as_str().unwrap().contains("`gpt-9`"));
    assert_eq!(upstream.calls(), calls, "no upstream call for an unknown model");
}

#[tokio::test]
async fn the_master_key_is_required_on_v1_only() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let url = gateway.url("/v1/chat/completions");
    let body = chat_body("mini", "hi").to_string();
    let missing = gateway.client.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(json(missing).await["error"]["code"], "missing_api_key");
    let wrong = gateway.client.post(&url).bearer_auth("sk-wrong").body(body.clone()).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let wrong_body = json(wrong).await;
    assert_eq!(wrong_body["error"]["code"], "invalid_api_key");
    assert!(!wrong_body.to_string().contains(MASTER_KEY));
    let models = gateway.client.get(gateway.url("/v1/models")).send().await.unwrap();
    assert_eq!(models.status(), 401);
    assert_eq!(upstream.calls(), 0);
    for open in ["/health", "/ready", "/metrics"] {
        assert_eq!(gateway.client.get(gateway.url(open)).send().await.unwrap().status(), 200, "{open}");
    }
}

#[tokio::test]
async fn bad_input_is_a_clear_openai_error() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let cases = [
        (r#"{"model": "mini", "messages": [}"#.to_owned(), 400, None, "could not parse the JSON body"),
        (r#"{"model": "mini"}"#.to_owned(), 400, Some("messages"), "missing field `messages`"),
        (r#"{"model": "mini", "messages": []}"#.to_owned(), 400, Some("messages"), "at least one message"),
        (
            r#"{"model": "mini", "messages": [{"role": "user", "content": 5}]}"#.to_owned(),
            400,
            Some("messages[0].content"),
            "a string or an array",
        ),
        (
            r#"{"model": "mini", "messages": [{"role": "user", "content": "x"}], "temperature": 3}"#.to_owned(),
            400,
            Some("temperature"),
            "between 0 and 2",
        ),
        (
            format!(r#"{{"model": "mini", "messages": [{{"role": "user", "content": "{}"}}]}}"#, "x".repeat(70_000)),
            413,
            None,
            "larger than",
        ),
    ];
    for (body, status, param, message) in cases {
        let response = gateway.post_raw("/v1/chat/completions", body).await;
        assert_eq!(response.status(), status, "{message}");
        let error = json(response).await["error"].clone();
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["param"].as_str(), param, "{error}");
        assert!(error["message"].as_str().unwrap().contains(message), "{error}");
    }
    let unknown = gateway.get("/v2/nothing").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(json(unknown).await["error"]["code"], "unknown_url");
    assert_eq!(upstream.calls(), 0);
}

#[tokio::test]
async fn streams_are_relayed_with_usage_and_done() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let mut body = chat_body("mini", "one two three");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = gateway.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<serde_json::Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "echo: one two three");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 15);
    assert_eq!(upstream.last_request().await.body["stream_options"]["include_usage"], true);

    let metrics = gateway.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"cherrypick_tokens_total{direction="completion",model="gpt-4o-mini",provider="fake"} 5"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"cherrypick_cost_usd_total{model="gpt-4o-mini",provider="fake"} 0.00002"#), "{metrics}");
}

#[tokio::test]
async fn chunks_reach_the_client_before_the_upstream_finishes() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let mut body = chat_body("gated-stream", "hi");
    body["stream"] = json!(true);
    let response = gateway.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    // The upstream holds every chunk after the first until released: receiving the first one proves
    // the gateway does not buffer.
    let first = String::from_utf8(stream.next().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.contains("part0"), "{first}");
    assert!(!upstream.stream_finished());
    upstream.release(4);
    let mut rest = String::new();
    while let Some(bytes) = stream.next().await {
        rest.push_str(std::str::from_utf8(&bytes.unwrap()).unwrap());
    }
    assert!(rest.contains("part4") && rest.ends_with("data: [DONE]\n\n"), "{rest}");
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let stream = open_gated_stream(&gateway).await;
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !upstream.stream_dropped() {
        assert!(tokio::time::Instant::now() < deadline, "the upstream stream was never cancelled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!upstream.stream_finished());
}

#[tokio::test]
async fn an_idle_stream_gets_keep_alive_comments() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let mut stream = open_gated_stream(&gateway).await;
    // The upstream is held; with `sse_keep_alive_secs = 1` a comment frame arrives meanwhile.
    let frame =
        tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("a keep-alive").unwrap().unwrap();
    assert_eq!(&frame[..], b": keep-alive\n\n");
    upstream.release(4);
}

#[tokio::test]
async fn upstream_failures_before_the_first_byte_are_json_errors() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    for (model, stream, status, code) in [
        ("status-500", true, 500, "server_error"),
        ("status-503", false, 503, "server_error"),
        ("status-400", false, 400, "context_length_exceeded"),
        ("empty-stream", true, 502, "invalid_upstream_response"),
        ("garbage", false, 502, "invalid_upstream_response"),
    ] {
        let mut body = chat_body(model, "hi");
        body["stream"] = json!(stream);
        let response = gateway.post("/v1/chat/completions", body).await;
        assert_eq!(response.status(), status, "{model}");
        assert_eq!(response.headers()["content-type"], "application/json", "{model}");
        let error = json(response).await["error"].clone();
        assert_eq!(error["code"], code, "{model}: {error}");
    }
}

#[tokio::test]
async fn upstream_rate_limits_and_auth_errors_keep_their_class_without_leaking() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let limited = gateway.post("/v1/chat/completions", chat_body("status-429", "hi")).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    assert_eq!(json(limited).await["error"]["code"], "rate_limit_exceeded");

    let refused = gateway.post("/v1/chat/completions", chat_body("status-401", "hi")).await;
    assert_eq!(refused.status(), 401);
    let text = refused.text().await.unwrap();
    assert!(!text.contains(PROVIDER_KEY) && !text.contains("0123456789abcdef"), "{text}");
    assert!(!text.contains(&upstream.url()), "{text}");

    let metrics = gateway.get("/metrics").await.text().await.unwrap();
    assert!(!metrics.contains(PROVIDER_KEY) && !metrics.contains(MASTER_KEY));
    assert!(
        metrics.contains(r#"cherrypick_upstream_errors_total{kind="rate_limited",provider="fake"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_stream_that_breaks_after_the_first_byte_ends_with_an_error_event() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let mut body = chat_body("cut-stream", "hi");
    body["stream"] = json!(true);
    let response = gateway.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.len(), 3, "{events:?}");
    let last: serde_json::Value = serde_json::from_str(&events[2]).unwrap();
    assert_eq!(last["error"]["type"], "server_error", "{last}");
    assert!(!events.contains(&"[DONE]".to_owned()));
}

#[tokio::test]
async fn a_provider_without_its_key_answers_503_naming_the_variable() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let response = gateway.post("/v1/chat/completions", chat_body("needs-key", "hi")).await;
    assert_eq!(response.status(), 503);
    let error = json(response).await["error"].clone();
    assert_eq!(error["code"], "provider_not_configured");
    assert!(error["message"].as_str().unwrap().contains("TEST_UNSET_KEY"), "{error}");
    let ready = json(gateway.get("/ready").await).await;
    assert_eq!(ready["providers"]["keyless"], "missing_credentials");
    assert_eq!(ready["providers"]["fake"], "ready");
}

#[tokio::test]
async fn completions_embeddings_and_models() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let completion =
        json(gateway.post("/v1/completions", json!({"model": "mini", "prompt": "say", "max_tokens": 3})).await).await;
    assert_eq!(completion["choices"][0]["text"], "hello");
    assert_eq!(upstream.last_request().await.path, "/v1/completions");

    let streamed = gateway.post("/v1/completions", json!({"model": "mini", "prompt": "say", "stream": true})).await;
    let events = sse_data(&streamed.text().await.unwrap());
    assert_eq!(events.len(), 2);

    let embeddings = json(gateway.post("/v1/embeddings", json!({"model": "mini", "input": ["a", "b"]})).await).await;
    assert_eq!(embeddings["data"].as_array().unwrap().len(), 2);
    let seen = upstream.last_request().await;
    assert_eq!((seen.path.as_str(), &seen.body["model"]), ("/v1/embeddings", &json!("echo")));

    let models = json(gateway.get("/v1/models").await).await;
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    for expected in ["gpt-4o-mini", "mini", "auto", "needs-key"] {
        assert!(ids.contains(&expected), "{expected} in {ids:?}");
    }
}

#[tokio::test]
async fn shutdown_drains_a_stream_in_flight_then_stops_listening() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let addr = gateway.addr();
    let mut stream = open_gated_stream(&gateway).await;

    let shutdown = tokio::spawn(gateway.server.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!shutdown.is_finished(), "shutdown waits for the stream in flight");
    upstream.release(4);
    let mut rest = String::new();
    while let Some(bytes) = stream.next().await {
        rest.push_str(std::str::from_utf8(&bytes.unwrap()).unwrap());
    }
    assert!(rest.ends_with("data: [DONE]\n\n"), "the drained stream completed: {rest}");
    tokio::time::timeout(Duration::from_secs(10), shutdown).await.expect("shutdown finishes").unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer listening");
}

#[tokio::test]
async fn failures_that_may_pass_are_retried_and_others_are_not() {
    let upstream = FakeUpstream::start().await;
    // `status-500` keeps the default three attempts; `status-503` is configured for one.
    let config = common::config_for(&upstream, "").replace(
        "[models.\"status-503\"]\nprovider = \"fake\"\n",
        "[models.\"status-503\"]\nprovider = \"fake\"\nretry = { attempts = 1 }\n",
    ) + "[retry]\nbase_backoff_ms = 1\nmax_backoff_ms = 5\n";
    let gateway = TestGateway::start_with(&config).await;
    for (model, stream, calls) in [
        ("status-500", false, 3),
        ("status-500", true, 3),
        ("status-503", false, 1),
        ("status-400", false, 1),
        ("status-401", false, 1),
        ("status-429", false, 1), // retry-after: 7, beyond max_retry_after_secs (5): the client decides
    ] {
        let before = upstream.calls();
        let mut body = chat_body(model, "hi");
        body["stream"] = json!(stream);
        let response = gateway.post("/v1/chat/completions", body).await;
        assert!(response.status().is_client_error() || response.status().is_server_error(), "{model}");
        assert_eq!(upstream.calls() - before, calls, "{model} (stream: {stream})");
    }
    let metrics = gateway.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"cherrypick_upstream_retries_total{kind="upstream_5xx",provider="fake"} 4"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_stream_that_stalls_past_its_total_time_ends_with_a_timeout_error() {
    let upstream = FakeUpstream::start().await;
    // `gated-stream` sends one chunk, then waits for a release that never comes.
    let config = common::config_for(&upstream, "").replace(
        "[models.\"gated-stream\"]\nprovider = \"fake\"\n",
        "[models.\"gated-stream\"]\nprovider = \"fake\"\ntimeouts = { total_secs = 0.5 }\n",
    );
    let gateway = TestGateway::start_with(&config).await;
    let mut body = chat_body("gated-stream", "hi");
    body["stream"] = json!(true);
    let response = gateway.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200, "the first chunk came in time");
    let text = tokio::time::timeout(Duration::from_secs(10), response.text()).await.expect("the stream ends").unwrap();
    let events = sse_data(&text);
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_timeout", "{text}");
}

#[tokio::test]
async fn a_failing_model_falls_back_in_order_and_the_answer_says_which_model_answered() {
    let upstream = FakeUpstream::start().await;
    let config = common::config_for(&upstream, "")
        .replace(
            "[models.\"status-503\"]\nprovider = \"fake\"\n",
            "[models.\"status-503\"]\nprovider = \"fake\"\nfallbacks = [\"status-500\", \"mini\"]\n",
        )
        .replace(
            "[models.\"status-400\"]\nprovider = \"fake\"\n",
            "[models.\"status-400\"]\nprovider = \"fake\"\nfallbacks = [\"mini\"]\n",
        )
        + "[retry]\nattempts = 1\n";
    let gateway = TestGateway::start_with(&config).await;
    for stream in [false, true] {
        let before = upstream.calls();
        let mut body = chat_body("status-503", "hi");
        body["stream"] = json!(stream);
        let response = gateway.post("/v1/chat/completions", body).await;
        assert_eq!(response.status(), 200, "stream: {stream}");
        assert_eq!(response.headers()["x-cherrypick-model"], "gpt-4o-mini");
        assert_eq!(upstream.calls() - before, 3, "status-503, then status-500, then mini");
    }
    let refused = gateway.post("/v1/chat/completions", chat_body("status-400", "hi")).await;
    assert_eq!(refused.status(), 400, "a client error does not fall back");
}

#[tokio::test]
async fn a_failing_provider_trips_its_breaker_and_is_not_called_while_it_is_open() {
    let upstream = FakeUpstream::start().await;
    let config = common::config_for(&upstream, "")
        + "[retry]\nattempts = 1\n[breaker]\nwindow = 4\nmin_calls = 2\nfailure_ratio = 0.5\nopen_secs = 60\n";
    let gateway = TestGateway::start_with(&config).await;
    for _ in 0..2 {
        assert_eq!(gateway.post("/v1/chat/completions", chat_body("status-500", "hi")).await.status(), 500);
    }
    let calls = upstream.calls();
    let paused = gateway.post("/v1/chat/completions", chat_body("mini", "hi")).await;
    assert_eq!(paused.status(), 503, "every model of the provider is paused");
    assert_eq!(json(paused).await["error"]["code"], "circuit_open");
    assert_eq!(upstream.calls(), calls, "the provider was not called");
    assert_eq!(json(gateway.get("/ready").await).await["providers"]["fake"], "circuit_open");
    let metrics = gateway.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"cherrypick_circuit_state{provider="fake"} 2"#), "{metrics}");
}

/// One failing deployment opens its own breaker while the provider's other models keep answering:
/// the provider's breaker sees too few failures among all its calls to open.
#[tokio::test]
async fn a_failing_deployment_trips_its_own_breaker_not_its_providers() {
    let upstream = FakeUpstream::start().await;
    let config = common::config_for(&upstream, "")
        + "[retry]\nattempts = 1\n[breaker]\nwindow = 10\nmin_calls = 4\nfailure_ratio = 0.5\nopen_secs = 60\n";
    let gateway = TestGateway::start_with(&config).await;
    for _ in 0..6 {
        assert_eq!(gateway.post("/v1/chat/completions", chat_body("mini", "hi")).await.status(), 200);
    }
    for _ in 0..4 {
        assert_eq!(gateway.post("/v1/chat/completions", chat_body("status-500", "hi")).await.status(), 500);
    }
    let calls = upstream.calls();
    let paused = gateway.post("/v1/chat/completions", chat_body("status-500", "hi")).await;
    assert_eq!(paused.status(), 503);
    assert_eq!(json(paused).await["error"]["code"], "circuit_open");
    assert_eq!(upstream.calls(), calls, "the open deployment was not called");
    assert_eq!(gateway.post("/v1/chat/completions", chat_body("mini", "hi")).await.status(), 200);
    let metrics = gateway.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"cherrypick_model_circuit_state{model="status-500"} 2"#), "{metrics}");
    let ready = json(gateway.get("/ready").await).await;
    assert_eq!(
        (ready["models"]["status-500"].as_str(), ready["providers"]["fake"].as_str()),
        (Some("circuit_open"), Some("ready"))
    );
    assert!(metrics.contains(r#"cherrypick_circuit_state{provider="fake"} 0"#), "{metrics}");
}

/// The legacy completions endpoint falls back like chat does.
#[tokio::test]
async fn legacy_completions_fall_back_too() {
    let upstream = FakeUpstream::start().await;
    let config = common::config_for(&upstream, "[retry]\nattempts = 1\n").replace(
        "[models.\"status-503\"]\nprovider = \"fake\"\n",
        "[models.\"status-503\"]\nprovider = \"fake\"\nfallbacks = [\"mini\"]\n",
    );
    let gateway = TestGateway::start_with(&config).await;
    let response = gateway
        .post("/v1/completions", serde_json::json!({"model": "status-503", "prompt": "hi", "max_tokens": 5}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cherrypick-model"], "gpt-4o-mini");
}
