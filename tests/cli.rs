//! The binary: every shipped config loads, and `config check` reports every problem at once.

use std::path::Path;
use std::process::Command;

use cherrypick::config::load_file;

const BIN: &str = env!("CARGO_BIN_EXE_cherrypick");

#[test]
fn every_file_in_config_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let loaded = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!loaded.config.models.is_empty(), "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 2, "cherrypick.toml and production.toml at least");
}

#[test]
fn config_check_passes_a_good_file_and_prints_no_secret() {
    let output = Command::new(BIN)
        .args(["config", "check", "config/production.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("OPENAI_API_KEY", "sk-must-not-be-printed-123456")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("ok (7 providers, 9 models)"), "{stdout}");
    assert!(!stdout.contains("sk-must-not-be-printed"), "{stdout}");
}

#[test]
fn config_check_lists_every_problem_and_exits_1() {
    let dir = std::env::temp_dir().join(format!("cherrypick-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = 5\nbogus = 1\n[providers.x]\nkind = \"openai\"\nmystery = 2\n[models.m]\nprovider = \"y\"\n",
    )
    .unwrap();
    let output = Command::new(BIN).args(["config", "check"]).arg(&file).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "4 problems",
        "`server.listen`",
        "unknown key `server.bogus`",
        "unknown key `providers.x.mystery`",
        "no provider named `y`",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
