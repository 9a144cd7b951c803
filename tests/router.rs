//! `model: "auto"` through the learned router, end to end: the real encoder, a selector whose
//! predictions are set by hand (so the expected choice is known), the fake upstream.

mod common;

use std::path::{Path, PathBuf};

use common::{FakeUpstream, TestGateway, chat_body, config_for, fixed_selector, json};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cherrypick-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A decision budget no loaded test machine exceeds, so the expected choices are deterministic (the
/// step-aside test sets its own).
fn router_config(upstream: &FakeUpstream, selector_dir: &Path, encoder: &Path) -> String {
    router_config_with(upstream, selector_dir, encoder, "timeout_ms = 60000")
}

/// `extra` lines go into `[router]`.
fn router_config_with(upstream: &FakeUpstream, selector_dir: &Path, encoder: &Path, extra: &str) -> String {
    config_for(
        upstream,
        &format!(
            r#"
            [models.big]
            provider = "fake"
            upstream = "echo"
            input_per_mtok = 10.0
            output_per_mtok = 30.0
            [models.small]
            provider = "fake"
            upstream = "echo"
            input_per_mtok = 0.1
            output_per_mtok = 0.2
            [router]
            enabled = true
            encoder = "{encoder}"
            selector = "{selector}"
            candidates = ["big", "small"]
            default_policy = "best"
            {extra}
            [router.heads]
            big = "strong"
            small = "weak"
            "#,
            encoder = encoder.display(),
            selector = selector_dir.display(),
        ),
    )
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn auto_routes_by_policy_header_and_candidates() {
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("selector");
    fixed_selector(&dir);
    let gateway = TestGateway::start_with(&router_config(&upstream, &dir, &common::encoder_dir())).await;
    gateway.wait_router_ready().await;

    // `auto` = the default policy `best`: the higher predicted quality wins.
    let response = gateway.post("/v1/chat/completions", chat_body("auto", "Prove Fermat's last theorem.")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-cherrypick-model"), "big");
    let route = header(&response, "x-cherrypick-route").to_owned();
    assert!(route.starts_with("policy=default; cost_weight=0; big=0.900; small=0.600"), "{route}");
    assert_eq!(upstream.last_request().await.body["model"], "echo");

    // `auto:cheap` (cost weight 1): 0.9 - 1 × 1 < 0.6 - 1 × (small's cost / big's).
    let response = gateway.post("/v1/chat/completions", chat_body("auto:cheap", "hi")).await;
    assert_eq!(header(&response, "x-cherrypick-model"), "small");

    // A cost weight in a header moves the dial for one request.
    let cheap = [("x-cherrypick-cost-weight", "0.5")];
    let response = gateway.post_with("/v1/chat/completions", chat_body("auto", "hi"), &cheap).await;
    assert_eq!(header(&response, "x-cherrypick-model"), "small");

    // Restricting the candidates.
    let only_small = [("x-cherrypick-candidates", "small")];
    let response = gateway.post_with("/v1/chat/completions", chat_body("auto:best", "hi"), &only_small).await;
    assert_eq!(header(&response, "x-cherrypick-model"), "small");

    // Streams are routed the same way.
    let mut body = chat_body("auto", "hi");
    body["stream"] = true.into();
    let response = gateway.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-cherrypick-model"), "big");

    // The decisions are in the metrics.
    let metrics = gateway.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("cherrypick_router_decisions_total{model=\"big\"} 2"), "{metrics}");
    assert!(metrics.contains("cherrypick_router_decisions_total{model=\"small\"} 3"), "{metrics}");
    assert!(metrics.contains("cherrypick_router_batch_size_count"), "{metrics}");
}

#[tokio::test]
async fn bad_routing_input_is_a_clear_error() {
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("selector-errors");
    fixed_selector(&dir);
    let gateway = TestGateway::start_with(&router_config(&upstream, &dir, &common::encoder_dir())).await;

    let response = gateway.post("/v1/chat/completions", chat_body("auto:fastest", "hi")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(json(response).await["error"]["code"], "model_not_found");

    let bad_weight = [("x-cherrypick-cost-weight", "-1")];
    let response = gateway.post_with("/v1/chat/completions", chat_body("auto", "hi"), &bad_weight).await;
    assert_eq!(response.status(), 400);
    let body = json(response).await;
    assert_eq!(body["error"]["param"], "x-cherrypick-cost-weight");
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let unknown = [("x-cherrypick-candidates", "big,nope")];
    let response = gateway.post_with("/v1/chat/completions", chat_body("auto", "hi"), &unknown).await;
    assert_eq!(response.status(), 400);
    assert!(json(response).await["error"]["message"].as_str().unwrap().contains("`nope`"));
    assert_eq!(upstream.calls(), 0, "no bad request reached the upstream");
}

#[tokio::test]
async fn a_router_that_cannot_load_steps_aside_to_the_default() {
    let upstream = FakeUpstream::start().await;
    let missing = temp_dir("no-selector").join("absent");
    let gateway = TestGateway::start_with(&router_config(&upstream, &missing, &common::encoder_dir())).await;
    let state = gateway.router_settled().await;
    assert!(state["router"]["failed"].as_str().unwrap().contains("router.json"), "{state}");

    let response = gateway.post("/v1/chat/completions", chat_body("auto", "hi")).await;
    assert_eq!(response.status(), 200, "a request never fails because the router could not decide");
    assert_eq!(header(&response, "x-cherrypick-model"), "gpt-4o-mini");
    assert_eq!(header(&response, "x-cherrypick-route"), "stepped-aside=unavailable");
    let metrics = gateway.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("cherrypick_router_step_asides_total{reason=\"unavailable\"} 1"), "{metrics}");
}

/// Overload and slowness never fail a request: with a one-slot queue, a burst steps aside to the
/// default; with a 1 ms budget, decisions time out and step aside.
#[tokio::test]
async fn overload_and_timeouts_step_aside() {
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("selector-overload");
    fixed_selector(&dir);
    let long = "Explain how a gateway routes prompts between language models. ".repeat(40);
    for (extra, reason) in
        [("queue = 1\nmax_batch = 1\ntimeout_ms = 60000", "overloaded"), ("timeout_ms = 1", "timeout")]
    {
        let config = router_config_with(&upstream, &dir, &common::encoder_dir(), extra);
        let gateway = std::sync::Arc::new(TestGateway::start_with(&config).await);
        gateway.wait_router_ready().await;
        let mut tasks = Vec::new();
        for _ in 0..24 {
            let gateway = gateway.clone();
            let body = chat_body("auto", &long);
            tasks.push(tokio::spawn(async move { gateway.post("/v1/chat/completions", body).await }));
        }
        let mut stepped = 0;
        for task in tasks {
            let response = task.await.unwrap();
            assert_eq!(response.status(), 200, "{reason}: every request is answered");
            if header(&response, "x-cherrypick-route") == format!("stepped-aside={reason}") {
                assert_eq!(header(&response, "x-cherrypick-model"), "gpt-4o-mini");
                stepped += 1;
            }
        }
        assert!(stepped > 0, "{reason}: no request stepped aside");
        let metrics = gateway.get("/metrics").await.text().await.unwrap();
        let line = format!("cherrypick_router_step_asides_total{{reason=\"{reason}\"}} {stepped}");
        assert!(metrics.contains(&line), "{line} not in {metrics}");
    }
}

/// `auto` falls back to the router's next best candidate when the chosen one fails.
#[tokio::test]
async fn auto_falls_back_to_the_next_ranked_candidate() {
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("selector-fallback");
    fixed_selector(&dir);
    let config = router_config(&upstream, &dir, &common::encoder_dir()).replacen(
        "upstream = \"echo\"\n            input_per_mtok = 10.0",
        "upstream = \"status-503\"\n            input_per_mtok = 10.0",
        1,
    ) + "[retry]\nattempts = 1\n";
    let gateway = TestGateway::start_with(&config).await;
    gateway.wait_router_ready().await;
    let response = gateway.post("/v1/chat/completions", chat_body("auto", "Prove Fermat's last theorem.")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-cherrypick-model"), "small", "big failed; small ranked next");
    let route = header(&response, "x-cherrypick-route");
    assert!(route.contains("big=0.900") && route.ends_with("fell_back_from=big"), "{route}");
}
