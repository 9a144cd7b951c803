//! The request log through a real PostgreSQL outage: the server is stopped in the middle of a load
//! and started again, and the log must hold exactly one row per request served. Alone in its test
//! binary, because it stops the machine's PostgreSQL (cargo runs test binaries one at a time); a
//! guard starts it again whatever happens. Needs `pg_ctlcluster` and the right to use it (root, as
//! `scripts/test` runs).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{FakeUpstream, TestGateway, chat_body, config_for};

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn cluster_version() -> String {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL cluster (/etc/postgresql)")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    versions.sort_by_key(|v| v.parse::<u32>().unwrap_or(0));
    versions.pop().expect("a PostgreSQL version")
}

fn pg_ctl(action: &str) {
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &cluster_version(), "main", action, "-m", "fast"])
        .status()
        .expect("pg_ctlcluster runs");
    assert!(status.success(), "pg_ctlcluster {action}");
}

fn pg_ctl_start() {
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &cluster_version(), "main", "start"])
        .status()
        .expect("pg_ctlcluster runs");
    assert!(status.success() || postgres_up(), "pg_ctlcluster start");
}

fn postgres_up() -> bool {
    Command::new("pg_isready").args(["-q", "-h", "127.0.0.1", "-p", "5432"]).status().is_ok_and(|s| s.success())
}

/// Starts PostgreSQL again when dropped, so a failing test does not leave it down.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        if !postgres_up() {
            pg_ctl_start();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_row_is_lost_when_postgresql_stops_and_starts_during_a_load() {
    assert!(postgres_up(), "PostgreSQL runs before the test");
    let upstream = FakeUpstream::start().await;
    let extra =
        format!("[store]\nurl = \"{POSTGRES}\"\ntimeout_ms = 300\n[request_log]\nflush_ms = 20\nbatch_size = 32\n");
    let gateway = Arc::new(TestGateway::start_with(&config_for(&upstream, &extra)).await);
    let run = format!("outage-{}", uuid::Uuid::new_v4().simple());

    // A steady load from 4 clients until told to stop.
    let (served, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (gateway, served, stop, run) = (gateway.clone(), served.clone(), stop.clone(), run.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("{run}-{client}-{n}");
                let response =
                    gateway.post_with("/v1/chat/completions", chat_body("mini", "hi"), &[("x-request-id", &id)]).await;
                if response.status() == 200 {
                    served.fetch_add(1, Ordering::SeqCst);
                }
                n += 1;
            }
        }));
    }
    let _restart = Restart;
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::spawn_blocking(|| pg_ctl("stop")).await.unwrap();
    let during_outage = served.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(served.load(Ordering::SeqCst) > during_outage, "requests are served while the database is down");
    tokio::task::spawn_blocking(pg_ctl_start).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let served = served.load(Ordering::SeqCst);

    let pool = sqlx::PgPool::connect(POSTGRES).await.unwrap();
    let rows = common::logged_rows(&pool, &run, served as i64).await;
    assert_eq!(rows as usize, served, "one row per served request, none lost, none doubled");
    let metrics = gateway.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("cherrypick_request_log_rows_total{result=\"spooled\"}"), "rows went through the spool");
}
