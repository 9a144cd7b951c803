//! The official OpenAI SDKs (Python and Node) against the gateway: each language's test file runs
//! against an in-process gateway in front of the fake upstream. `scripts/test` installs the SDKs;
//! set CHERRYPICK_SKIP_SDK_TESTS=1 to skip these on a machine without them.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{FakeUpstream, MASTER_KEY, TestGateway};

fn skip() -> bool {
    std::env::var_os("CHERRYPICK_SKIP_SDK_TESTS").is_some_and(|v| v == "1")
}

async fn run_against_gateway(program: &str, args: &[&str], dir: &str) {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new(program)
        .args(args)
        .current_dir(root.join(dir))
        .env("CHERRYPICK_BASE_URL", gateway.url("/v1"))
        .env("CHERRYPICK_API_KEY", MASTER_KEY)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run `{program}` ({e}): run scripts/test, which installs the SDKs"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "`{program} {}` failed:\n{stdout}\n{stderr}", args.join(" "));
    println!("{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk() {
    if skip() {
        return;
    }
    run_against_gateway(
        "python3",
        &["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_openai_sdk.py"],
        "tests/sdk/python",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_node_sdk() {
    if skip() {
        return;
    }
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/node/node_modules/openai");
    assert!(modules.exists(), "the `openai` npm package is missing: run scripts/test (npm ci in tests/sdk/node)");
    run_against_gateway("node", &["--test", "openai_sdk.test.mjs"], "tests/sdk/node").await;
}
