//! The tiered memory through the gateway: exact hits per tier, streams stored whole and replayed
//! either way, the per-request controls, and degradation when Redis or PostgreSQL goes away.
//! L2 and L3 run against the real Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, `test`).

mod common;

use std::time::Duration;

use common::proxy::Proxy;
use common::{FakeUpstream, TestGateway, chat_body, config_for, json, sse_data};
use serde_json::{Value, json};

const CACHE: &str = "x-cherrypick-cache";

fn temp_dir(name: &str) -> std::path::PathBuf {
    let unique = format!("cherrypick-{name}-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
    std::env::temp_dir().join(unique)
}

/// `[cache]` with L1 and a SQLite L3 under a fresh folder, plus `extra` keys inside `[cache]`.
fn cache_config(upstream: &FakeUpstream, data_dir: &std::path::Path, extra: &str) -> String {
    config_for(
        upstream,
        &format!(
            "[cache]\nenabled = true\ndata_dir = \"{}\"\n{extra}\n[cache.semantic]\nenabled = false\n",
            data_dir.display()
        ),
    )
}

fn deterministic(model: &str, text: &str) -> Value {
    let mut body = chat_body(model, text);
    body["temperature"] = json!(0);
    body
}

fn cache_header(response: &reqwest::Response) -> String {
    response.headers().get(CACHE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

async fn post(gateway: &TestGateway, body: Value, headers: &[(&str, &str)]) -> (String, Value) {
    let response = gateway.post_with("/v1/chat/completions", body, headers).await;
    assert_eq!(response.status(), 200);
    let header = cache_header(&response);
    (header, json(response).await)
}

#[tokio::test]
async fn a_repeated_deterministic_request_is_answered_from_l1_without_an_upstream_call() {
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("l1");
    let gateway = TestGateway::start_with(&cache_config(&upstream, &dir, "")).await;

    let (first, body) = post(&gateway, deterministic("gpt-4o-mini", "hello there"), &[]).await;
    assert_eq!(first, "miss");
    let (second, again) = post(&gateway, deterministic("mini", "hello there"), &[]).await;
    assert_eq!(second, "hit-l1", "an alias shares its model's entries");
    assert_eq!(again, body, "the stored answer, byte for byte");
    assert_eq!(again["usage"]["total_tokens"], 15, "usage reports the original tokens");
    assert_eq!(upstream.calls(), 1);

    let (other, _) = post(&gateway, deterministic("mini", "something else"), &[]).await;
    assert_eq!(other, "miss");
    let (sampled, _) = post(&gateway, chat_body("mini", "hello there"), &[]).await;
    assert_eq!(sampled, "bypass", "temperature 1 is not cached by default");
    assert_eq!(upstream.calls(), 3);

    let metrics = gateway.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"cherrypick_cache_requests_total{result="hit-l1"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"cherrypick_cache_lookups_total{result="hit",tier="l1"} 1"#));
    let ready = json(gateway.get("/ready").await).await;
    let tiers: Vec<&str> = ready["cache"].as_array().unwrap().iter().map(|t| t["tier"].as_str().unwrap()).collect();
    assert_eq!(tiers, ["l1", "l3"]);
}

#[tokio::test]
async fn tenants_never_share_answers() {
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("tenants");
    // No master key: any bearer key is accepted, and each key is its own tenant.
    let gateway = TestGateway::start_with_env(&cache_config(&upstream, &dir, ""), &[]).await;
    let ask = |key: &'static str| {
        let request = gateway.client.post(gateway.url("/v1/chat/completions")).bearer_auth(key);
        request.json(&deterministic("mini", "a shared question")).send()
    };
    assert_eq!(cache_header(&ask("sk-alice").await.unwrap()), "miss");
    assert_eq!(cache_header(&ask("sk-alice").await.unwrap()), "hit-l1");
    assert_eq!(cache_header(&ask("sk-bob").await.unwrap()), "miss");
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test]
async fn a_stream_is_stored_whole_and_replayed_as_chunks_or_as_one_body() {
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("stream");
    let gateway = TestGateway::start_with(&cache_config(&upstream, &dir, "")).await;
    let mut streamed = deterministic("mini", "tell me a story");
    streamed["stream"] = json!(true);

    let first = gateway.post("/v1/chat/completions", streamed.clone()).await;
    assert_eq!(cache_header(&first), "miss");
    let original = sse_data(&first.text().await.unwrap());
    assert!(original.iter().all(|c| !c.contains("\"usage\":{")), "the client did not ask for usage");
    let upstream_asked = upstream.last_request().await.body;
    assert_eq!(upstream_asked["stream_options"]["include_usage"], true, "the gateway asks, to store it");
    gateway.settle_writes("l3", 1).await;

    let replay = gateway.post("/v1/chat/completions", streamed.clone()).await;
    assert_eq!(cache_header(&replay), "hit-l1");
    assert_eq!(replay.headers()["content-type"], "text/event-stream");
    assert_eq!(sse_data(&replay.text().await.unwrap()), original, "the same chunks, in order");

    let mut with_usage = streamed.clone();
    with_usage["stream_options"] = json!({"include_usage": true});
    let replay = sse_data(&gateway.post("/v1/chat/completions", with_usage).await.text().await.unwrap());
    let usage: Value = serde_json::from_str(&replay[replay.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 15, "usage stored with the stream");

    let (header, body) = post(&gateway, deterministic("mini", "tell me a story"), &[]).await;
    assert_eq!(header, "hit-l1");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "echo: tell me a story");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn a_json_answer_replays_to_a_streaming_client() {
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("json-to-stream");
    let gateway = TestGateway::start_with(&cache_config(&upstream, &dir, "")).await;
    post(&gateway, deterministic("mini", "json first"), &[]).await;
    let mut streamed = deterministic("mini", "json first");
    streamed["stream"] = json!(true);
    let replay = gateway.post("/v1/chat/completions", streamed).await;
    assert_eq!(cache_header(&replay), "hit-l1");
    let chunks = sse_data(&replay.text().await.unwrap());
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(&chunks[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["content"], "echo: json first");
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn a_cut_stream_is_never_stored() {
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("cut");
    let gateway = TestGateway::start_with(&cache_config(&upstream, &dir, "")).await;
    let mut cut = deterministic("cut-stream", "anything");
    cut["stream"] = json!(true);
    for _ in 0..2 {
        let response = gateway.post("/v1/chat/completions", cut.clone()).await;
        assert_eq!(cache_header(&response), "miss");
        let _ = response.text().await;
        // Nothing is written: give a (wrong) background write time to land before asking again.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test]
async fn cache_control_and_ttl_headers_steer_one_request() {
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("controls");
    let gateway = TestGateway::start_with(&cache_config(&upstream, &dir, "")).await;
    let body = || deterministic("mini", "controlled");

    let (header, _) = post(&gateway, body(), &[("cache-control", "no-store")]).await;
    assert_eq!(header, "bypass");
    let (header, _) = post(&gateway, body(), &[]).await;
    assert_eq!(header, "miss", "no-store stored nothing");
    let (header, _) = post(&gateway, body(), &[("cache-control", "no-cache")]).await;
    assert_eq!(header, "bypass", "no-cache skips the lookup");
    assert_eq!(upstream.calls(), 3);

    let before = gateway.cache_writes("l3").await;
    let (header, _) = post(&gateway, deterministic("mini", "short-lived"), &[("x-cherrypick-cache-ttl", "1")]).await;
    assert_eq!(header, "miss");
    gateway.settle_writes("l3", before + 1).await;
    assert_eq!(post(&gateway, deterministic("mini", "short-lived"), &[]).await.0, "hit-l1");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(post(&gateway, deterministic("mini", "short-lived"), &[]).await.0, "miss", "expired in every tier");

    let bad = gateway.post_with("/v1/chat/completions", body(), &[("x-cherrypick-cache-ttl", "soon")]).await;
    assert_eq!(bad.status(), 400);
    let error = json(bad).await;
    assert_eq!(error["error"]["param"], "x-cherrypick-cache-ttl");
    assert_eq!(error["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn models_configured_off_are_never_cached_and_mode_all_caches_sampled_requests() {
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("per-model");
    let extra = "mode = \"all\"\n[cache.models.\"status-500\"]\nenabled = false\n[cache.models.\"gpt-4o-mini\"]\nttl_secs = 600\n";
    let gateway = TestGateway::start_with(&cache_config(&upstream, &dir, extra)).await;
    assert_eq!(post(&gateway, chat_body("mini", "sampled"), &[]).await.0, "miss");
    assert_eq!(post(&gateway, chat_body("mini", "sampled"), &[]).await.0, "hit-l1");
    let off = gateway.post("/v1/chat/completions", deterministic("status-500", "x")).await;
    assert_eq!(off.status(), 500, "errors are answered, never cached");
    assert_eq!(cache_header(&off), "");
}

#[tokio::test]
async fn embeddings_are_cached_exactly() {
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("embeddings");
    let extra = "[models.\"embed\"]\nprovider = \"fake\"\nupstream = \"text-embedding-3-small\"\n";
    let config = cache_config(&upstream, &dir, "").replace("[cache]", &format!("{extra}[cache]"));
    let gateway = TestGateway::start_with(&config).await;
    let body = json!({"model": "embed", "input": ["a", "b"]});
    let first = gateway.post("/v1/embeddings", body.clone()).await;
    assert_eq!(cache_header(&first), "miss");
    let first = json(first).await;
    let second = gateway.post("/v1/embeddings", body).await;
    assert_eq!(cache_header(&second), "hit-l1");
    assert_eq!(json(second).await, first);
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn l3_sqlite_survives_a_restart_and_promotes_hits_to_l1() {
    let upstream = FakeUpstream::start().await;
    let dir = temp_dir("l3-sqlite");
    let config = cache_config(&upstream, &dir, "");
    {
        let gateway = TestGateway::start_with(&config).await;
        post(&gateway, deterministic("mini", "remember me"), &[]).await;
        gateway.settle_writes("l3", 1).await;
        gateway.server.shutdown().await;
    }
    let gateway = TestGateway::start_with(&config).await;
    assert_eq!(post(&gateway, deterministic("mini", "remember me"), &[]).await.0, "hit-l3");
    assert_eq!(post(&gateway, deterministic("mini", "remember me"), &[]).await.0, "hit-l1", "promoted");
    assert_eq!(upstream.calls(), 1);
    assert!(dir.join("cache.sqlite").is_file());
}

fn unique_prefix() -> String {
    format!("cherrypick-test:{}:", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn l2_redis_is_shared_between_gateways() {
    let upstream = FakeUpstream::start().await;
    let prefix = unique_prefix();
    let l2 = format!(
        "[cache.l2]\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}\"\n[cache.l3]\nenabled = false\n"
    );
    let a = TestGateway::start_with(&cache_config(&upstream, &temp_dir("l2-a"), &l2)).await;
    let b = TestGateway::start_with(&cache_config(&upstream, &temp_dir("l2-b"), &l2)).await;
    assert_eq!(post(&a, deterministic("mini", "shared by replicas"), &[]).await.0, "miss");
    a.settle_writes("l2", 1).await;
    assert_eq!(post(&b, deterministic("mini", "shared by replicas"), &[]).await.0, "hit-l2");
    assert_eq!(post(&b, deterministic("mini", "shared by replicas"), &[]).await.0, "hit-l1");
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn l3_postgres_keeps_answers_across_gateways() {
    let upstream = FakeUpstream::start().await;
    let text = format!("postgres question {}", uuid::Uuid::new_v4());
    let l3 = "[cache.l3]\nurl = \"postgres://postgres@127.0.0.1:5432/test\"\n";
    let a = TestGateway::start_with(&cache_config(&upstream, &temp_dir("pg-a"), l3)).await;
    assert_eq!(post(&a, deterministic("mini", &text), &[]).await.0, "miss");
    a.settle_writes("l3", 1).await;
    let b = TestGateway::start_with(&cache_config(&upstream, &temp_dir("pg-b"), l3)).await;
    assert_eq!(post(&b, deterministic("mini", &text), &[]).await.0, "hit-l3");
    assert_eq!(upstream.calls(), 1);
}

async fn tier_state(gateway: &TestGateway, tier: &str) -> String {
    let ready = json(gateway.get("/ready").await).await;
    let tiers = ready["cache"].as_array().unwrap().clone();
    let found = tiers.iter().find(|t| t["tier"] == tier).unwrap_or_else(|| panic!("no {tier} in {ready}"));
    found["state"].as_str().unwrap().to_owned()
}

/// Redis and PostgreSQL go away mid-test (every connection cut, new ones refused): requests are
/// still answered, from the remaining tiers or the provider; the errors are counted; and each tier
/// comes back by itself once its server does.
#[tokio::test]
async fn requests_survive_redis_and_postgres_going_away_and_the_tiers_come_back() {
    let upstream = FakeUpstream::start().await;
    let redis = Proxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let postgres = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let tiers = format!(
        "[cache.l1]\nenabled = false\n[cache.l2]\nurl = \"redis://{}\"\nkey_prefix = \"{}\"\ntimeout_ms = 100\n[cache.l3]\nurl = \"postgres://postgres@{}/test\"\ntimeout_ms = 300\n",
        redis.addr(),
        unique_prefix(),
        postgres.addr()
    );
    let gateway = TestGateway::start_with(&cache_config(&upstream, &temp_dir("faults"), &tiers)).await;
    let run = uuid::Uuid::new_v4();
    let ask = |n: usize| deterministic("mini", &format!("fault test {run} {n}"));

    assert_eq!(post(&gateway, ask(1), &[]).await.0, "miss");
    gateway.settle_writes("l2", 1).await;
    assert_eq!(post(&gateway, ask(1), &[]).await.0, "hit-l2");

    redis.block();
    assert_eq!(post(&gateway, ask(1), &[]).await.0, "hit-l3", "L3 answers while Redis is gone");
    assert_eq!(tier_state(&gateway, "l2").await, "down");
    postgres.block();
    assert_eq!(post(&gateway, ask(1), &[]).await.0, "miss", "the provider answers with both gone");
    assert_eq!(post(&gateway, ask(2), &[]).await.0, "miss");
    assert_eq!(tier_state(&gateway, "l3").await, "down");
    let metrics = gateway.get("/metrics").await.text().await.unwrap();
    for tier in ["l2", "l3"] {
        let errors = format!("cherrypick_cache_lookups_total{{result=\"error\",tier=\"{tier}\"}}");
        assert!(metrics.contains(&errors), "{tier} errors are counted:\n{metrics}");
    }

    redis.unblock();
    postgres.unblock();
    // Each tier is retried after its rest; fred and the pool reconnect on their own.
    let mut state = (String::new(), String::new());
    for _ in 0..100 {
        post(&gateway, ask(3), &[]).await;
        state = (tier_state(&gateway, "l2").await, tier_state(&gateway, "l3").await);
        if state == ("up".into(), "up".into()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, ("up".into(), "up".into()), "both tiers came back");
    let before = gateway.cache_writes("l2").await;
    let header = post(&gateway, ask(4), &[]).await.0;
    assert_eq!(header, "miss");
    gateway.settle_writes("l2", before + 1).await;
    assert_eq!(post(&gateway, ask(4), &[]).await.0, "hit-l2", "stored in and served from L2 again");
}
