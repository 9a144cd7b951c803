//! The Grafana dashboards, proven against a real Prometheus (Debian's `prometheus` package;
//! `scripts/test` installs it): two gateways (one routing with the learned router, one whose router
//! cannot load and steps aside) take a short mixed load (cache hits and misses, upstream errors and
//! retries, streams, routed requests, rate limits, a spent budget, a bad key) while Prometheus
//! scrapes them every second. Then every panel's query in `docker/grafana/dashboards/` must run
//! without error and return at least one series, and every metric a dashboard names must really be
//! exported. The shipped Prometheus config must pass `promtool check config`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{FakeUpstream, MASTER_KEY, TestGateway, chat_body, config_for, fixed_selector};
use serde_json::{Value, json};

const DASHBOARDS: &str = "docker/grafana/dashboards";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    found.unwrap_or_else(|| {
        panic!("`{name}` is not installed: install Debian's `prometheus` package (scripts/test does)")
    })
}

/// Every (dashboard, panel title, query) of the shipped dashboards, nested rows included.
fn queries() -> Vec<(String, String, String)> {
    fn walk(panels: &[Value], file: &str, out: &mut Vec<(String, String, String)>) {
        for panel in panels {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("every target has an expr");
                out.push((file.to_owned(), panel["title"].as_str().unwrap_or_default().to_owned(), expr.to_owned()));
            }
            walk(panel["panels"].as_array().map_or(&[][..], Vec::as_slice), file, out);
        }
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo(DASHBOARDS)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let dashboard: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            walk(dashboard["panels"].as_array().unwrap(), &file, &mut out);
        }
    }
    assert!(out.len() > 30, "the dashboards hold {} queries", out.len());
    out
}

/// The metric families an expression names (`cherrypick_...`, histogram suffixes removed).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("cherrypick_") {
        let start = i + at;
        let end = start + bytes[start..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
        let name = &expr[start..end];
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        names.insert(family.to_owned());
        i = end;
    }
    names
}

struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_prometheus(targets: &[String]) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("prometheus.yml");
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: cherrypick\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .unwrap();
    let child = Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    // Owned from here: dropping it (a panic included) stops the process.
    let prometheus = Prometheus { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{}/-/ready", prometheus.url)).send().await.is_ok_and(|r| r.status().is_success()) {
            return prometheus;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("prometheus did not become ready");
}

async fn query(client: &reqwest::Client, prometheus: &str, expr: &str) -> Value {
    let response = client.get(format!("{prometheus}/api/v1/query")).query(&[("query", expr)]).send().await.unwrap();
    response.json().await.unwrap()
}

/// The gateway's part: the fake upstream's models, L1 + L3 cache, the router (working or not).
fn gateway_config(upstream: &FakeUpstream, data: &Path, selector: &Path) -> String {
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
            [cache]
            enabled = true
            data_dir = "{data}"
            [router]
            enabled = true
            encoder = "{encoder}"
            selector = "{selector}"
            candidates = ["big", "small"]
            timeout_ms = 60000
            [router.heads]
            big = "strong"
            small = "weak"
            [retry]
            base_backoff_ms = 1
            max_backoff_ms = 2
            "#,
            data = data.display(),
            encoder = common::encoder_dir().display(),
            selector = selector.display(),
        ),
    )
}

async fn mixed_load(gateway: &TestGateway) {
    let post = |body: Value| gateway.post("/v1/chat/completions", body);
    let mut cacheable = chat_body("mini", "What is the capital of France?");
    cacheable["temperature"] = json!(0);
    for _ in 0..3 {
        assert_eq!(post(cacheable.clone()).await.status(), 200);
    }
    let mut stream = chat_body("mini", "Tell me a story.");
    stream["stream"] = json!(true);
    let _ = post(stream).await.text().await;
    for model in ["auto", "auto:best", "big"] {
        assert_eq!(post(chat_body(model, "Prove that there are infinitely many primes.")).await.status(), 200);
    }
    assert_eq!(post(chat_body("status-500", "hi")).await.status(), 500);
    let _ = gateway.post("/v1/embeddings", json!({"model": "mini", "input": "hello"})).await;

    // Limits: a key allowed one request a minute, a key with no budget, a wrong key.
    let admin = |body: Value| async move {
        let response =
            gateway.client.post(gateway.url("/admin/keys")).bearer_auth(MASTER_KEY).json(&body).send().await.unwrap();
        response.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_owned()
    };
    let as_key = |key: String| async move {
        gateway
            .client
            .post(gateway.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat_body("mini", "hi"))
            .send()
            .await
            .unwrap()
            .status()
    };
    let limited = admin(json!({"name": "one-a-minute", "rpm_limit": 1})).await;
    assert_eq!(as_key(limited.clone()).await, 200);
    assert_eq!(as_key(limited).await, 429);
    let broke = admin(json!({"name": "broke", "budget_usd": 0})).await;
    assert_eq!(as_key(broke).await, 429);
    assert_eq!(as_key("sk-cp-not-a-key".into()).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_returns_series_from_a_live_prometheus() {
    let check = Command::new(tool("promtool"))
        .args(["check", "config"])
        .arg(repo("docker/prometheus/prometheus.yml"))
        .output()
        .expect("promtool runs");
    assert!(check.status.success(), "promtool: {}", String::from_utf8_lossy(&check.stderr));

    let upstream = FakeUpstream::start().await;
    let work = tempfile::tempdir().unwrap();
    let selector = work.path().join("selector");
    std::fs::create_dir_all(&selector).unwrap();
    fixed_selector(&selector);
    let routing = TestGateway::start_with(&gateway_config(&upstream, &work.path().join("a"), &selector)).await;
    let stepping_aside =
        TestGateway::start_with(&gateway_config(&upstream, &work.path().join("b"), &work.path().join("absent"))).await;
    routing.wait_router_ready().await;
    stepping_aside.router_settled().await;
    let prometheus = start_prometheus(&[routing.addr().to_string(), stepping_aside.addr().to_string()]).await;

    mixed_load(&routing).await;
    mixed_load(&stepping_aside).await;

    // Wait until both targets have been scraped a few times after the load, so rates have two
    // samples in their window.
    let client = reqwest::Client::new();
    let mut seen = 0;
    for _ in 0..100 {
        let up = query(&client, &prometheus.url, "count_over_time(up[30s])").await;
        seen = up["data"]["result"].as_array().map_or(0, |r| {
            r.iter().filter(|s| s["value"][1].as_str().and_then(|v| v.parse::<u32>().ok()) >= Some(5)).count()
        });
        if seen == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen, 2, "both gateways scraped");
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut failures = Vec::new();
    let mut names = BTreeSet::new();
    let queries = queries();
    for (file, title, expr) in &queries {
        names.extend(metric_names(expr));
        let resolved = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s").replace("$__range", "5m");
        let answer = query(&client, &prometheus.url, &resolved).await;
        if answer["status"] != "success" {
            failures.push(format!("{file} / {title}: `{expr}` failed: {}", answer["error"]));
        } else if answer["data"]["result"].as_array().is_none_or(Vec::is_empty) {
            failures.push(format!("{file} / {title}: `{expr}` returned no series"));
        }
    }
    // The `or on() vector(0)` fallbacks keep panels drawn before an event happens; they must not
    // hide a metric the gateway does not export.
    for name in &names {
        let answer =
            query(&client, &prometheus.url, &format!("count({{__name__=~\"{name}(_bucket|_sum|_count)?\"}})")).await;
        if answer["data"]["result"].as_array().is_none_or(Vec::is_empty) {
            failures.push(format!("the dashboards use `{name}`, which the gateway did not export"));
        }
    }
    assert!(failures.is_empty(), "{} of {} queries:\n{}", failures.len(), queries.len(), failures.join("\n"));
}
