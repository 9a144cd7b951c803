//! Test support: a fake OpenAI-compatible upstream and an in-process gateway, both on port 0.
#![allow(dead_code, reason = "each test binary uses a different part of the support code")]

pub mod conformance;
pub mod fake_upstream;
pub mod proxy;

use std::net::SocketAddr;

use cherrypick::config::load_str;
use cherrypick::router::selector;
use cherrypick::server::Server;

pub use fake_upstream::FakeUpstream;

pub const MASTER_KEY: &str = "sk-cherrypick-test-master";
pub const PROVIDER_KEY: &str = "sk-upstream-secret-0123456789abcdef";

/// A gateway in front of `upstream`, with these models:
/// `gpt-4o-mini` (alias `mini`, the `auto` default) -> upstream model `echo`; `<behaviour>` ->
/// upstream model of the same name for each fake behaviour (`status-429`, `slow-stream`, ...).
pub fn config_for(upstream: &FakeUpstream, extra: &str) -> String {
    let mut config = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        max_body_bytes = 65536
        shutdown_grace_secs = 10
        sse_keep_alive_secs = 1
        [auth]
        master_key = "env::TEST_MASTER_KEY"
        [log]
        level = "warn"
        [providers.fake]
        kind = "openai_compatible"
        base_url = "{url}/v1"
        api_key = "env::TEST_PROVIDER_KEY"
        [providers.keyless]
        kind = "groq"
        api_key = "env::TEST_UNSET_KEY"
        [models."gpt-4o-mini"]
        provider = "fake"
        upstream = "echo"
        input_per_mtok = 1.0
        output_per_mtok = 2.0
        aliases = ["mini"]
        [models."needs-key"]
        provider = "keyless"
        [routing]
        default = "mini"
        "#,
        url = upstream.url()
    );
    for behaviour in fake_upstream::BEHAVIOURS {
        config.push_str(&format!("[models.\"{behaviour}\"]\nprovider = \"fake\"\n"));
    }
    config.push_str(extra);
    config
}

pub struct TestGateway {
    pub server: Server,
    pub client: reqwest::Client,
    /// The store's SQLite file and the request log's spool, unless the config names a database.
    pub data_dir: tempfile::TempDir,
}

impl TestGateway {
    pub async fn start(upstream: &FakeUpstream) -> Self {
        Self::start_with(&config_for(upstream, "")).await
    }

    pub async fn start_with(config: &str) -> Self {
        Self::start_with_env(config, &[("TEST_MASTER_KEY", MASTER_KEY)]).await
    }

    /// Without `TEST_MASTER_KEY` in `env` the gateway is open: any bearer key is accepted.
    pub async fn start_with_env(config: &str, env: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().expect("temporary folder");
        let mut env: Vec<(String, String)> = env
            .iter()
            .chain(&[("TEST_PROVIDER_KEY", PROVIDER_KEY)])
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.push(("CHERRYPICK__STORE__DATA_DIR".into(), data_dir.path().display().to_string()));
        let loaded = load_str(config, "test config", &env).expect("test config is valid");
        let server = Server::start(&loaded.config).await.expect("gateway starts");
        Self { server, client: reqwest::Client::new(), data_dir }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// POST with the master key.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.post_raw(path, body.to_string()).await
    }

    pub async fn post_raw(&self, path: &str, body: String) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(MASTER_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("gateway answers")
    }

    /// POST with the master key and extra headers.
    pub async fn post_with(&self, path: &str, body: serde_json::Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).bearer_auth(MASTER_KEY).json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("gateway answers")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(MASTER_KEY).send().await.expect("gateway answers")
    }

    /// Successful background cache writes to `tier` so far, from the gateway's metrics.
    pub async fn cache_writes(&self, tier: &str) -> u64 {
        let metrics = self.get("/metrics").await.text().await.expect("metrics");
        let series = format!("cherrypick_cache_writes_total{{result=\"ok\",tier=\"{tier}\"}} ");
        metrics.lines().find_map(|line| line.strip_prefix(&series)).map_or(0, |n| n.trim().parse().expect("a count"))
    }

    /// Cache writes land after the response: waits (up to 10 s, however loaded the machine) until
    /// `tier` has had `at_least` successful writes.
    pub async fn settle_writes(&self, tier: &str, at_least: u64) {
        for _ in 0..200 {
            if self.cache_writes(tier).await >= at_least {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{tier} had fewer than {at_least} writes after 10 s");
    }

    /// `/ready` once the router has finished loading (or failed to).
    pub async fn router_settled(&self) -> serde_json::Value {
        for _ in 0..1200 {
            let ready = json(self.get("/ready").await).await;
            if ready["router"] != "loading" {
                return ready;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("router still loading after 60 s");
    }

    /// Waits until `/ready` says the router is up.
    pub async fn wait_router_ready(&self) {
        let ready = self.router_settled().await;
        assert_eq!(ready["router"], "ready", "router did not load: {ready}");
    }
}

/// A response's body as JSON.
pub async fn json(response: reqwest::Response) -> serde_json::Value {
    let bytes = response.bytes().await.expect("body");
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.lines().find_map(|line| line.strip_prefix("data: ")))
        .map(str::to_owned)
        .collect()
}

pub fn chat_body(model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// The all-MiniLM-L6-v2 folder the encoder tests load: `CHERRYPICK_TEST_ENCODER`, or where
/// `scripts/test` puts it.
pub fn encoder_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("CHERRYPICK_TEST_ENCODER").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/cherrypick/models/all-MiniLM-L6-v2")
    });
    assert!(
        dir.join("model.safetensors").is_file(),
        "the encoder tests need all-MiniLM-L6-v2 in {} (scripts/test fetches it; or set CHERRYPICK_TEST_ENCODER)",
        dir.display()
    );
    dir
}

/// A selector that ignores the prompt: head `strong` predicts 0.9, head `weak` 0.6 (biases only).
pub fn fixed_selector(dir: &std::path::Path) {
    let (dim, hidden) = (384, 4);
    let zeros = |rows: usize, cols: usize| {
        let shape = if cols == 0 { vec![rows] } else { vec![rows, cols] };
        candle_core::Var::from_vec(vec![0f32; rows * cols.max(1)], shape, &candle_core::Device::Cpu).unwrap()
    };
    let logit = |p: f32| (p / (1.0 - p)).ln();
    let out_bias = candle_core::Var::from_vec(vec![logit(0.9), logit(0.6)], 2, &candle_core::Device::Cpu).unwrap();
    let vars = [zeros(hidden, dim), zeros(hidden, 0), zeros(2, hidden), out_bias];
    let model = |name: &str, cost: f64| selector::ModelCard {
        name: name.into(),
        mean_quality: 0.0,
        mean_cost_usd: cost,
        mean_output_tokens: Some(100.0),
        mean_latency_ms: None,
    };
    let card = selector::Card {
        format: selector::CARD_FORMAT,
        encoder: "sentence-transformers/all-MiniLM-L6-v2".into(),
        embedding_dim: dim,
        hidden,
        models: vec![model("strong", 0.01), model("weak", 0.0001)],
        data: vec![],
        training: serde_json::json!({}),
        validation: serde_json::json!({}),
        difficulty: None,
    };
    selector::save(dir, &vars, None, &card).unwrap();
}

/// Request-log rows in PostgreSQL whose id starts with `run-`, polled until there are `expected`
/// (the writer batches and may be replaying its spool) or 15 s have passed.
pub async fn logged_rows(pool: &sqlx::PgPool, run: &str, expected: i64) -> i64 {
    let pattern = format!("{run}-%");
    let mut rows = 0;
    for _ in 0..150 {
        // On a fresh database the table appears only once the gateway's writer has migrated it.
        rows = match sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM request_log WHERE id LIKE $1")
            .bind(&pattern)
            .fetch_one(pool)
            .await
        {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => 0,
            Err(e) => panic!("count the request log: {e}"),
        };
        if rows >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    rows
}
