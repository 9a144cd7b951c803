//! Virtual keys, teams, rate limits, budgets, the request log and feedback, through the HTTP API
//! against a fake upstream, with the real Redis and PostgreSQL where the behaviour needs them.

mod common;

use std::time::Instant;

use common::proxy::Proxy;
use common::{FakeUpstream, MASTER_KEY, TestGateway, chat_body, config_for, json};
use futures_util::future::join_all;
use serde_json::{Value, json};

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

async fn admin(gateway: &TestGateway, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = gateway.client.request(method, gateway.url(path)).bearer_auth(MASTER_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create_key(gateway: &TestGateway, spec: Value) -> (String, String) {
    let (status, body) = admin(gateway, reqwest::Method::POST, "/admin/keys", Some(spec)).await;
    assert_eq!(status, 201, "{body}");
    (body["id"].as_str().unwrap().to_owned(), body["key"].as_str().unwrap().to_owned())
}

async fn chat_as(gateway: &TestGateway, key: &str, body: &Value) -> reqwest::Response {
    gateway.client.post(gateway.url("/v1/chat/completions")).bearer_auth(key).json(body).send().await.unwrap()
}

fn unique(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn admin_api_creates_lists_limits_and_revokes_keys() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    use reqwest::Method;

    let (status, team) =
        admin(&gateway, Method::POST, "/admin/teams", Some(json!({"name": "search", "rpm_limit": 100}))).await;
    assert_eq!(status, 201, "{team}");
    let team_id = team["id"].as_str().unwrap();
    let (status, dup) = admin(&gateway, Method::POST, "/admin/teams", Some(json!({"name": "search"}))).await;
    assert_eq!((status, dup["error"]["code"].as_str()), (409, Some("conflict")));

    let (status, created) = admin(
        &gateway,
        Method::POST,
        "/admin/keys",
        Some(json!({"name": "ci", "team_id": team_id, "models": ["mini"], "budget_usd": 5, "budget_period": "daily"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    assert!(key.starts_with("sk-cp-") && key.len() > 40);
    assert_eq!(created["key_hint"], format!("sk-cp-...{}", &key[key.len() - 4..]));

    // Listed without the key itself.
    let (_, list) = admin(&gateway, Method::GET, "/admin/keys", None).await;
    let listed = list["data"].as_array().unwrap().iter().find(|k| k["id"] == id).unwrap();
    assert!(listed.get("key").is_none() && !list.to_string().contains(key));
    assert_eq!((listed["team_id"].as_str(), listed["budget_usd"].as_f64()), (Some(team_id), Some(5.0)));

    // The key works for its model and not for another.
    let ok = chat_as(&gateway, key, &chat_body("mini", "hello")).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-ratelimit-limit-requests"], "100", "the team's limit is the tightest");
    let denied = chat_as(&gateway, key, &chat_body("gpt-4o-mini", "hello")).await;
    assert_eq!(denied.status(), 403);
    assert_eq!(json(denied).await["error"]["code"], "model_not_allowed");

    // PATCH: null clears a field, an absent field is kept.
    let (status, patched) =
        admin(&gateway, Method::PATCH, &format!("/admin/keys/{id}"), Some(json!({"models": null, "rpm_limit": 7})))
            .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["models"].clone(), patched["rpm_limit"].as_i64(), patched["budget_usd"].as_f64()),
        (Value::Null, Some(7), Some(5.0))
    );
    let ok = chat_as(&gateway, key, &chat_body("gpt-4o-mini", "hello")).await;
    assert_eq!((ok.status().as_u16(), ok.headers()["x-ratelimit-limit-requests"].to_str().unwrap()), (200, "7"));

    // Bad input names the field; unknown ids are 404.
    let (status, bad) = admin(&gateway, Method::POST, "/admin/keys", Some(json!({"name": "x", "rpm_limit": 0}))).await;
    assert_eq!((status, bad["error"]["param"].as_str()), (400, Some("rpm_limit")));
    let (status, bad) =
        admin(&gateway, Method::POST, "/admin/keys", Some(json!({"name": "x", "models": ["nope"]}))).await;
    assert_eq!((status, bad["error"]["param"].as_str()), (400, Some("models")));
    let (status, _) = admin(&gateway, Method::GET, "/admin/keys/key-missing", None).await;
    assert_eq!(status, 404);

    // Only the master key reaches the admin API.
    let response = gateway.client.get(gateway.url("/admin/keys")).bearer_auth(key).send().await.unwrap();
    assert_eq!(response.status(), 401);

    // Revoked: refused from now on.
    let (status, revoked) = admin(&gateway, Method::DELETE, &format!("/admin/keys/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].as_i64().is_some());
    let refused = chat_as(&gateway, key, &chat_body("mini", "hello")).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(json(refused).await["error"]["code"], "invalid_api_key");
}

/// 1,000 requests at once against a 100-per-minute key: exactly the limit passes (plus what the
/// bucket refills while the burst runs), every other one is a 429 with the OpenAI error and headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_per_minute_hold_exactly_under_1000_concurrent_requests() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let (_, key) = create_key(&gateway, json!({"name": "burst", "rpm_limit": 100})).await;
    let body = chat_body("mini", "hello");
    let started = Instant::now();
    let responses = join_all((0..1000).map(|_| chat_as(&gateway, &key, &body))).await;
    let refill = (started.elapsed().as_secs_f64() * 100.0 / 60.0).ceil() as usize;
    let ok = responses.iter().filter(|r| r.status() == 200).count();
    assert!((100..=100 + refill).contains(&ok), "{ok} passed, limit 100 + {refill} refilled");
    let limited: Vec<_> = responses.into_iter().filter(|r| r.status() == 429).collect();
    assert_eq!(ok + limited.len(), 1000);
    let first = limited.into_iter().next().unwrap();
    assert!(first.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(first.headers()["x-ratelimit-limit-requests"], "100");
    assert_eq!(first.headers()["x-ratelimit-remaining-requests"], "0");
    let error = json(first).await["error"].clone();
    assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("requests"), Some("rate_limit_exceeded")));
    let metrics = gateway.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("cherrypick_rate_limited_total{limit=\"requests\",scope=\"key\"}"), "{metrics}");
}

/// Tokens are reserved from the estimate (prompt + max_tokens) and the unused part is given back
/// once the usage is known: concurrent requests cannot pass the limit, and settled requests free it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_per_minute_are_reserved_then_reconciled() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let (_, key) = create_key(&gateway, json!({"name": "tpm", "tpm_limit": 1000})).await;
    let mut body = chat_body("mini", "hello");
    body["max_tokens"] = json!(198); // + 2 estimated prompt tokens: 200 reserved per request
    let responses = join_all((0..50).map(|_| chat_as(&gateway, &key, &body))).await;
    let ok = responses.iter().filter(|r| r.status() == 200).count();
    // Each used 15 tokens: the 185 unused of each reservation came back as they finished, so more
    // than 5 passed, but never more than the limit allows at the moment each was admitted.
    assert!(ok >= 5, "{ok}");
    let refused = responses.into_iter().find(|r| r.status() == 429).expect("some were limited");
    assert_eq!(json(refused).await["error"]["type"], "tokens");
    // A request larger than the whole limit is refused without a retry-after: waiting cannot help.
    body["max_tokens"] = json!(5000);
    let too_big = chat_as(&gateway, &key, &body).await;
    assert_eq!(too_big.status(), 429);
    assert!(too_big.headers().get("retry-after").is_none());
    assert!(json(too_big).await["error"]["message"].as_str().unwrap().contains("too large"));
}

/// A budget is reserved before the call (estimated cost) and settled after it: concurrent requests
/// cannot overrun it, a spent budget answers 429 `insufficient_quota`, and what the answers did not
/// use comes back. In this process and in Redis alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_cannot_be_overrun_by_concurrent_requests() {
    budget_burst("").await;
    let prefix = unique("cherrypick:test:budget");
    budget_burst(&format!("[limits]\nredis_url = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}:\"\n")).await;
}

async fn budget_burst(extra: &str) {
    let upstream = FakeUpstream::start().await;
    // `slow` answers after 500 ms, so all 20 requests are in flight together; it costs $1 / $2 per
    // million tokens: 2 prompt tokens and max_tokens 99,999 reserve $0.2 each.
    let config = config_for(&upstream, extra).replace(
        "[models.\"slow\"]\nprovider = \"fake\"\n",
        "[models.\"slow\"]\nprovider = \"fake\"\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n",
    );
    let gateway = TestGateway::start_with(&config).await;
    let (id, key) = create_key(&gateway, json!({"name": "budget", "budget_usd": 1.0})).await;
    let mut body = chat_body("slow", "hello");
    body["max_tokens"] = json!(99_999);
    let responses = join_all((0..20).map(|_| chat_as(&gateway, &key, &body))).await;
    let ok = responses.iter().filter(|r| r.status() == 200).count();
    assert_eq!(ok, 5, "a $1 budget at $0.2 reserved each ({extra})");
    let refused = responses.into_iter().find(|r| r.status() == 429).unwrap();
    let error = json(refused).await["error"].clone();
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("insufficient_quota"), Some("insufficient_quota"))
    );

    // Each answer cost 15 tokens' worth; the rest of its reservation came back, so the budget
    // admits again, and the spend read back from the request log is exactly what was used.
    let expected = (ok + 1) as f64 * (10.0 * 1.0 + 5.0 * 2.0) / 1e6;
    let mut again = chat_as(&gateway, &key, &body).await;
    for _ in 0..50 {
        if again.status() == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        again = chat_as(&gateway, &key, &body).await;
    }
    assert_eq!(again.status(), 200, "settled reservations free the budget ({extra})");
    let mut spend = 0.0;
    for _ in 0..50 {
        let (_, info) = admin(&gateway, reqwest::Method::GET, &format!("/admin/keys/{id}"), None).await;
        spend = info["spend_usd"].as_f64().unwrap();
        if (spend - expected).abs() < 1e-12 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("spend {spend} never reached {expected}");
}

/// Two gateway replicas share one Redis: the model's limit holds across both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_hold_across_two_gateways_sharing_redis() {
    let upstream = FakeUpstream::start().await;
    let prefix = unique("cherrypick:test:limits");
    let extra = format!("[limits]\nredis_url = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}:\"\n");
    let config = config_for(&upstream, &extra).replace("aliases = [\"mini\"]", "aliases = [\"mini\"]\nrpm_limit = 60");
    let (a, b) = (TestGateway::start_with(&config).await, TestGateway::start_with(&config).await);
    let body = chat_body("mini", "hello");
    let started = Instant::now();
    let responses = join_all((0..200).map(|i| {
        if i % 2 == 0 {
            a.post("/v1/chat/completions", body.clone())
        } else {
            b.post("/v1/chat/completions", body.clone())
        }
    }))
    .await;
    let refill = started.elapsed().as_secs_f64().ceil() as usize;
    let ok = responses.iter().filter(|r| r.status() == 200).count();
    assert!((60..=60 + refill).contains(&ok), "{ok} passed a limit of 60 shared by two gateways");
    let ready = json(a.get("/ready").await).await;
    assert_eq!(ready["limits"], "redis");
}

/// The request log loses nothing while PostgreSQL is away: rows go to the spool file and are
/// replayed when it is back. Every served request has exactly one row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_log_keeps_every_row_through_a_database_outage() {
    let upstream = FakeUpstream::start().await;
    let postgres = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let extra = format!(
        "[store]\nurl = \"postgres://postgres@{}/test\"\ntimeout_ms = 300\n[request_log]\nflush_ms = 20\nbatch_size = 16\n",
        postgres.addr()
    );
    let gateway = TestGateway::start_with(&config_for(&upstream, &extra)).await;
    let run = unique("log");
    let send = |n: usize| {
        let id = format!("{run}-{n}");
        let gateway = &gateway;
        async move {
            gateway.post_with("/v1/chat/completions", chat_body("mini", "hi"), &[("x-request-id", &id)]).await.status()
        }
    };
    let mut served = 0;
    for n in 0..40 {
        served += usize::from(send(n).await == 200);
    }
    postgres.block();
    for n in 40..100 {
        served += usize::from(send(n).await == 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    postgres.unblock();
    for n in 100..120 {
        served += usize::from(send(n).await == 200);
    }
    assert_eq!(served, 120);
    let pool = sqlx::PgPool::connect(POSTGRES).await.unwrap();
    let rows = common::logged_rows(&pool, &run, 120).await;
    assert_eq!(rows, 120, "one row per served request");
    let metrics = gateway.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("cherrypick_request_log_rows_total{result=\"spooled\"}"), "{metrics}");
    assert!(metrics.contains("cherrypick_request_log_rows_total{result=\"replayed\"}"), "{metrics}");
    let row: (String, String, i32, i64, f64) =
        sqlx::query_as("SELECT model, provider, status, prompt_tokens, cost_usd FROM request_log WHERE id = $1")
            .bind(format!("{run}-0"))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(row, ("gpt-4o-mini".into(), "fake".into(), 200, 10, 2e-5));
}

#[tokio::test]
async fn feedback_is_stored_against_the_logged_request() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let (_, key) = create_key(&gateway, json!({"name": "rater"})).await;
    let answered = chat_as(&gateway, &key, &chat_body("mini", "hello")).await;
    let request_id = answered.headers()["x-request-id"].to_str().unwrap().to_owned();
    let send = |body: Value, key: String| {
        let gateway = &gateway;
        async move { gateway.client.post(gateway.url("/v1/feedback")).bearer_auth(key).json(&body).send().await.unwrap() }
    };
    let stored = send(json!({"request_id": request_id, "score": 0.8, "comment": "good"}), key.clone()).await;
    assert_eq!(stored.status(), 200);
    assert_eq!(json(stored).await["score"], 0.8);
    let bad = send(json!({"request_id": request_id, "score": 1.5}), key.clone()).await;
    assert_eq!((bad.status().as_u16(), json(bad).await["error"]["param"].clone()), (400, json!("score")));
    let unknown = send(json!({"request_id": "req_unknown", "score": 1}), key.clone()).await;
    assert_eq!(unknown.status(), 404);
    // Another key cannot rate this key's request.
    let (_, other) = create_key(&gateway, json!({"name": "other"})).await;
    let foreign = send(json!({"request_id": request_id, "score": 0}), other).await;
    assert_eq!(foreign.status(), 404);
}

/// Feedback becomes training data: `router export` writes the rated requests in the router's
/// format, with the prompt when prompt logging is on, and `router` reads the file back.
#[tokio::test]
async fn router_export_writes_rated_requests_as_training_data() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config_for(&upstream, "[request_log]\nlog_prompts = true\n")).await;
    let mut ids = Vec::new();
    for text in ["What is the capital of France?", "Write a haiku about rust."] {
        let answered = gateway.post("/v1/chat/completions", chat_body("mini", text)).await;
        ids.push(answered.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    gateway.post("/v1/chat/completions", chat_body("mini", "not rated")).await;
    for (id, score) in ids.iter().zip([1.0, 0.25]) {
        let stored = gateway.post("/v1/feedback", json!({"request_id": id, "score": score})).await;
        assert_eq!(stored.status(), 200);
    }
    let out = gateway.data_dir.path().join("export.jsonl");
    let config = gateway.data_dir.path().join("export.toml");
    std::fs::write(&config, format!("[store]\ndata_dir = \"{}\"\n", gateway.data_dir.path().display())).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cherrypick"))
        .args(["router", "export", "--since", "2020-01-01", "--out"])
        .arg(&out)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("wrote 2 rows"));
    let examples = cherrypick::router::data::read_jsonl(&out).unwrap();
    assert_eq!(examples.len(), 2);
    assert_eq!(examples[0].id, ids[0]);
    assert!(examples[0].prompt.contains("capital of France"), "{}", examples[0].prompt);
    assert_eq!(examples[1].quality["gpt-4o-mini"], 0.25);
    assert!((examples[0].cost_usd["gpt-4o-mini"] - 2e-5).abs() < 1e-12);
    // Nothing after tomorrow.
    let tomorrow = out.with_extension("later.jsonl");
    let later = std::process::Command::new(env!("CARGO_BIN_EXE_cherrypick"))
        .args(["router", "export", "--since", "2999-01-01", "--out"])
        .arg(&tomorrow)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&later.stdout).contains("wrote 0 rows"));
}

/// `request_log.retention_days`: rows older than the retention go, with their feedback; newer stay.
#[tokio::test]
async fn the_request_log_keeps_rows_for_its_retention() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let answered = gateway.post("/v1/chat/completions", chat_body("mini", "hi")).await;
    let id = answered.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(gateway.post("/v1/feedback", json!({"request_id": id, "score": 1})).await.status(), 200);
    let config = cherrypick::config::StoreConfig { data_dir: gateway.data_dir.path().to_owned(), ..Default::default() };
    let store = cherrypick::store::Store::open(&config).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert_eq!(store.delete_log_before(now - 86_400_000).await.unwrap(), 0, "a day old: kept");
    assert_eq!(store.delete_log_before(now + 1_000).await.unwrap(), 1);
    let mut out = Vec::new();
    assert_eq!(store.export_feedback(0, &mut out).await.unwrap().rows, 0, "its feedback went with it");
}
