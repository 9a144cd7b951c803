//! One conformance suite for all twenty providers. Each provider's folder under `tests/fixtures/`
//! holds its scenarios (see `common/conformance.rs`): the gateway must send the provider exactly the
//! request its API documents and turn the provider's documented answer into OpenAI's. The same
//! scenarios drive the official OpenAI Python SDK for Anthropic, Gemini and Bedrock.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::conformance::{ConformanceUpstream, ProviderFixtures, REQUIRED, Scenario, assemble, contains};
use common::{MASTER_KEY, TestGateway, sse_data};
use serde_json::Value;

/// A gateway in front of a conformance upstream for `provider`, with its scenarios.
struct Bench {
    fixtures: ProviderFixtures,
    upstream: ConformanceUpstream,
    gateway: TestGateway,
    _credentials: tempfile_path::TempFile,
}

mod tempfile_path {
    /// A file removed when dropped.
    pub struct TempFile(pub std::path::PathBuf);
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl Bench {
    async fn start(provider: &str) -> Self {
        let fixtures = ProviderFixtures::load(provider);
        let token_key = std::fs::read_to_string(fixtures.dir.join("service_account.public.pem")).ok().map(|pem| {
            let account: Value =
                serde_json::from_str(&fixtures.service_account("").expect("service_account.json")).expect("JSON");
            (pem, account["client_email"].as_str().expect("client_email").to_owned())
        });
        let upstream = ConformanceUpstream::start(&fixtures, token_key).await;
        let credentials = tempfile_path::TempFile(
            std::env::temp_dir().join(format!("cherrypick-{provider}-{}.json", std::process::id())),
        );
        if let Some(account) = fixtures.service_account(&upstream.url()) {
            std::fs::write(&credentials.0, account).expect("write credentials");
        }
        let config = format!(
            // The suite is about translation: one attempt per call, and no breaker to trip on the
            // error scenarios (resilience has its own tests).
            "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nmaster_key = \"env::TEST_MASTER_KEY\"\n[log]\nlevel = \"error\"\n[retry]\nattempts = 1\n[breaker]\nenabled = false\n{}",
            fixtures.provider_config(&upstream.url(), &credentials.0)
        );
        let gateway = TestGateway::start_with(&config).await;
        Self { fixtures, upstream, gateway, _credentials: credentials }
    }

    /// Runs one scenario through the gateway with reqwest; the problems found, if any.
    async fn run(&self, scenario: &Scenario) -> Vec<String> {
        let path = match scenario.endpoint.as_str() {
            "embeddings" => "/v1/embeddings",
            _ => "/v1/chat/completions",
        };
        let response = self.gateway.post(path, scenario.request.clone()).await;
        let mut problems = Vec::new();
        let expect = &scenario.expect;
        if response.status().as_u16() != expect.status {
            problems.push(format!("status {}, expected {}", response.status(), expect.status));
        }
        for (name, value) in &expect.headers {
            let got = response.headers().get(name.as_str()).and_then(|v| v.to_str().ok());
            if got != Some(value.as_str()) {
                problems.push(format!("header `{name}`: {got:?}, expected `{value}`"));
            }
        }
        let is_sse = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().is_ok_and(|v| v.starts_with("text/event-stream")));
        let text = response.text().await.unwrap_or_default();
        if let Some(expected) = &expect.stream {
            if !is_sse {
                problems.push(format!("expected a stream, got {text}"));
                return problems;
            }
            let data = sse_data(&text);
            if data.last().map(String::as_str) != Some("[DONE]") {
                problems.push("the stream does not end with [DONE]".into());
            }
            let chunks: Result<Vec<Value>, _> =
                data.iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d)).collect();
            match chunks.map_err(|e| e.to_string()).and_then(|c| assemble(&c)) {
                Ok(assembled) => contains(&assembled, expected, "stream", &mut problems),
                Err(e) => problems.push(format!("stream: {e}\n{text}")),
            }
            return problems;
        }
        let body: Value = match serde_json::from_str(&text) {
            Ok(body) => body,
            Err(e) => {
                problems.push(format!("answer is not JSON ({e}): {text}"));
                return problems;
            }
        };
        if let Some(expected) = &expect.json {
            contains(&body, expected, "", &mut problems);
        }
        if let Some(expected) = &expect.error {
            contains(&body["error"], expected, "error", &mut problems);
            let message = body["error"]["message"].as_str().unwrap_or_default();
            if message.contains("test-key") || message.contains("AKIDEXAMPLE") {
                problems.push(format!("the error leaks a credential: {message}"));
            }
        }
        if !problems.is_empty() {
            problems.push(format!("answer: {text}"));
        }
        problems
    }
}

async fn conformance(provider: &str) {
    let bench = Bench::start(provider).await;
    let mut failures = Vec::new();
    for scenario in &bench.fixtures.scenarios {
        let problems = bench.run(scenario).await;
        if !problems.is_empty() {
            failures.push(format!("{provider}/{}: {}", scenario.name, problems.join("\n  ")));
        }
    }
    failures.extend(bench.upstream.mismatches());
    let missing: Vec<&&str> =
        REQUIRED.iter().filter(|name| !bench.fixtures.scenarios.iter().any(|s| s.name == **name)).collect();
    assert!(missing.is_empty(), "{provider} lacks the scenarios {missing:?}");
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}

macro_rules! conformance {
    ($($provider:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $provider() {
                conformance(stringify!($provider)).await;
            }
        )*

        /// Every folder under tests/fixtures with a provider.toml is in the suite, and there are twenty.
        #[test]
        fn the_suite_covers_every_provider_folder() {
            let listed = [$(stringify!($provider)),*];
            let mut folders: Vec<String> = std::fs::read_dir(common::conformance::fixtures_root())
                .expect("fixtures")
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("provider.toml").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            folders.sort();
            let mut listed_sorted: Vec<&str> = listed.to_vec();
            listed_sorted.sort();
            assert_eq!(folders, listed_sorted);
            assert_eq!(listed.len(), 20);
        }
    };
}

conformance!(
    openai,
    azure,
    anthropic,
    gemini,
    vertex_ai,
    bedrock,
    cohere,
    mistral,
    groq,
    together,
    fireworks,
    deepseek,
    xai,
    perplexity,
    openrouter,
    cerebras,
    deepinfra,
    ollama,
    vllm,
    huggingface,
);

/// The official OpenAI Python SDK runs the same scenarios against the gateway.
async fn python_sdk(provider: &str) {
    if std::env::var_os("CHERRYPICK_SKIP_SDK_TESTS").is_some_and(|v| v == "1") {
        return;
    }
    let bench = Bench::start(provider).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new("python3")
        .arg("conformance.py")
        .arg(&bench.fixtures.dir)
        .current_dir(root.join("tests/sdk/python"))
        .env("CHERRYPICK_BASE_URL", bench.gateway.url("/v1"))
        .env("CHERRYPICK_API_KEY", MASTER_KEY)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("python3 runs: scripts/test installs the SDK");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mismatches = bench.upstream.mismatches();
    assert!(output.status.success() && mismatches.is_empty(), "{stdout}\n{stderr}\n{}", mismatches.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_anthropic() {
    python_sdk("anthropic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_gemini() {
    python_sdk("gemini").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_bedrock() {
    python_sdk("bedrock").await;
}
