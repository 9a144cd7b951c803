//! The semantic cache end to end: the real encoder (shared with the router), the embedded vector
//! index on disk, a reworded question answered from the cache, and everything that must keep two
//! questions apart.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{FakeUpstream, TestGateway, config_for, json};
use serde_json::{Value, json};

fn config(upstream: &FakeUpstream, data_dir: &Path) -> String {
    config_for(
        upstream,
        &format!(
            r#"
            [router]
            enabled = true
            encoder = "{encoder}"
            selector = "models/router"
            candidates = ["gpt-4o-mini"]
            timeout_ms = 60000
            [router.heads]
            "gpt-4o-mini" = "gpt-3.5-turbo-1106"
            [cache]
            enabled = true
            data_dir = "{data_dir}"
            "#,
            encoder = common::encoder_dir().display(),
            data_dir = data_dir.display(),
        ),
    )
}

fn ask(model: &str, system: &str, question: &str) -> Value {
    json!({"model": model, "temperature": 0, "messages": [
        {"role": "system", "content": system}, {"role": "user", "content": question}]})
}

async fn cache_of(gateway: &TestGateway, body: Value) -> (String, Value) {
    let response = gateway.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    let cache =
        response.headers().get("x-cherrypick-cache").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (cache, json(response).await)
}

/// The vector tier is written in the background and its log replayed at start.
async fn vector_tier_up(gateway: &TestGateway) {
    for _ in 0..400 {
        let ready = json(gateway.get("/ready").await).await;
        let vector = ready["cache"].as_array().unwrap().iter().find(|t| t["tier"] == "vector").cloned();
        if vector.is_some_and(|v| v["state"] == "up") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the vector tier did not come up");
}

#[tokio::test]
async fn a_reworded_question_is_answered_from_the_cache_and_different_ones_are_not() {
    let upstream = FakeUpstream::start().await;
    let dir = std::env::temp_dir().join(format!("cherrypick-semantic-{}", uuid::Uuid::new_v4().simple()));
    let config = config(&upstream, &dir);
    let system = "Answer briefly.";
    {
        let gateway = TestGateway::start_with(&config).await;
        gateway.wait_router_ready().await;
        vector_tier_up(&gateway).await;

        let (first, answer) = cache_of(&gateway, ask("mini", system, "What is the capital of France?")).await;
        assert_eq!(first, "miss");
        gateway.settle_writes("vector", 1).await;

        let (reworded, cached) = cache_of(&gateway, ask("mini", system, "What's the capital of France?")).await;
        assert_eq!(reworded, "hit-semantic");
        assert_eq!(cached, answer, "the stored answer of the earlier question");

        for (system, question, why) in [
            (system, "What is the capital of Germany?", "a different question"),
            ("Answer at length.", "What's the capital of France?", "a different system prompt"),
            (system, "What was the capital of France in 1790?", "a number only one of them has"),
        ] {
            assert_eq!(cache_of(&gateway, ask("mini", system, question)).await.0, "miss", "{why}");
        }
        // The routing policy is its own answer space: `auto` does not reuse the model's entries...
        let before = gateway.cache_writes("vector").await;
        assert_eq!(cache_of(&gateway, ask("auto", system, "What is the capital of France?")).await.0, "miss");
        gateway.settle_writes("vector", before + 1).await;
        // ... but shares them between its own requests, with the embedding routing computed.
        assert_eq!(cache_of(&gateway, ask("auto", system, "What's the capital of France?")).await.0, "hit-semantic");
        assert_eq!(upstream.calls(), 5);
        gateway.server.shutdown().await;
    }

    // A restart replays the index from disk; the answer comes from the SQLite tier.
    let gateway = TestGateway::start_with(&config).await;
    gateway.wait_router_ready().await;
    vector_tier_up(&gateway).await;
    let (again, _) = cache_of(&gateway, ask("mini", system, "What's the capital of France?")).await;
    assert_eq!(again, "hit-semantic", "after a restart");
    let metrics = gateway.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"cherrypick_cache_requests_total{result="hit-semantic"}"#), "{metrics}");
}
