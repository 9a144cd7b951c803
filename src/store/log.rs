//! The request log: one row per request, written to SQL by a background task in multi-row inserts,
//! never on the request's path. Nothing is lost: rows that cannot be written (database down, queue
//! full) are appended to a spool file and replayed once the database answers again; shutdown
//! flushes what is queued.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot};

use super::{Store, StoreError};
use crate::config::{RequestLogConfig, StoreConfig};
use crate::telemetry::RequestLogMetrics;

const COLUMNS: &[&str] = &[
    "id",
    "created_at",
    "key_id",
    "team_id",
    "endpoint",
    "requested_model",
    "model",
    "provider",
    "status",
    "latency_ms",
    "ttft_ms",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "cache",
    "router_scores",
    "error_kind",
    "prompt",
];

/// One request as the log keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    pub id: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub key_id: Option<String>,
    pub team_id: Option<String>,
    pub endpoint: String,
    pub requested_model: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub status: u16,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    /// `x-cherrypick-cache`: hit-l1 ... miss, bypass.
    pub cache: Option<String>,
    /// The router's predicted scores per candidate, as JSON.
    pub router_scores: Option<String>,
    pub error_kind: Option<String>,
    /// The prompt text, only with `request_log.log_prompts`.
    pub prompt: Option<String>,
}

enum Command {
    Row(Box<LogRow>),
    Flush(oneshot::Sender<()>),
}

/// The handle requests log through: one `Arc`, since every request's ticket holds a clone.
#[derive(Clone)]
pub struct RequestLog(Arc<Handle>);

struct Handle {
    tx: mpsc::Sender<Command>,
    /// Wakes the writer before its next tick (a flush).
    wake: Arc<Notify>,
    spool: Arc<Spool>,
    metrics: RequestLogMetrics,
    log_prompts: bool,
}

impl RequestLog {
    /// Starts the writer on a thread of its own, with its own runtime and connection pool: building
    /// and encoding a batch insert takes a fraction of a millisecond of CPU, which on a request
    /// worker shows up in the answers' p99 (measured at 2,000 req/s).
    pub fn start(
        store: &StoreConfig,
        config: &RequestLogConfig,
        metrics: RequestLogMetrics,
    ) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let dir = config.spool_dir.clone().unwrap_or_else(|| store.data_dir.join("spool"));
        let spool = Arc::new(Spool::new(dir));
        let writer = Writer {
            store: Arc::new(Store::open(store)?),
            spool: spool.clone(),
            metrics: metrics.clone(),
            batch: config.batch_size.clamp(1, 1_000),
            every: Duration::from_millis(config.flush_ms.max(1)),
        };
        let retention = config.retention_days.filter(|d| *d > 0);
        let wake = Arc::new(Notify::new());
        let writer_wake = wake.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("request log runtime: {e}")))?;
        std::thread::Builder::new()
            .name("request-log".into())
            .spawn(move || {
                runtime.block_on(async move {
                    if let Some(days) = retention {
                        tokio::spawn(expire(writer.store.clone(), days));
                    }
                    // Ends when every handle is gone (the gateway shut down), after a last write.
                    writer.run(rx, writer_wake).await;
                });
            })
            .map_err(|e| StoreError::Unavailable(format!("request log thread: {e}")))?;
        Ok(Self(Arc::new(Handle { tx, wake, spool, metrics, log_prompts: config.log_prompts })))
    }

    /// Whether rows carry the prompt (`request_log.log_prompts`).
    pub fn log_prompts(&self) -> bool {
        self.0.log_prompts
    }

    /// Queues a row; with the queue full it goes to the spool file instead (off the worker thread).
    pub fn record(&self, row: LogRow) {
        let this = &self.0;
        match this.tx.try_send(Command::Row(Box::new(row))) {
            Ok(()) => this.metrics.queue_depth.inc(),
            Err(
                mpsc::error::TrySendError::Full(Command::Row(row))
                | mpsc::error::TrySendError::Closed(Command::Row(row)),
            ) => {
                let (spool, metrics) = (this.spool.clone(), this.metrics.clone());
                tokio::task::spawn_blocking(move || spool.append(&[*row], &metrics));
            }
            Err(_) => {}
        }
    }

    /// Waits until every row queued before this call is written (or spooled).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.0.tx.send(Command::Flush(done)).await.is_ok() {
            self.0.wake.notify_one();
            let _ = wait.await;
        }
    }
}

struct Writer {
    store: Arc<Store>,
    spool: Arc<Spool>,
    metrics: RequestLogMetrics,
    batch: usize,
    every: Duration,
}

impl Writer {
    /// Drains the queue every `flush_ms`, or at once when a flush asks. The writer never waits on
    /// the queue itself: a receiver parked in `recv` is woken by every row, which cost a thread
    /// wake-up (futex, context switch) per request, about half the request log's CPU.
    async fn run(self, mut rx: mpsc::Receiver<Command>, wake: Arc<Notify>) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut replay_due = true;
        loop {
            tokio::select! {
                _ = tick.tick() => replay_due = true,
                _ = wake.notified() => {}
            }
            let mut flushed = Vec::new();
            let mut closed = false;
            let wrote = loop {
                let mut rows: Vec<LogRow> = Vec::with_capacity(self.batch.min(64));
                while rows.len() < self.batch {
                    match rx.try_recv() {
                        Ok(Command::Row(row)) => {
                            self.metrics.queue_depth.dec();
                            rows.push(*row);
                        }
                        Ok(Command::Flush(done)) => flushed.push(done),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                let more = rows.len() == self.batch;
                let wrote = self.write(rows).await;
                if !more {
                    break wrote;
                }
            };
            if replay_due && wrote {
                replay_due = false;
                self.replay().await;
            }
            for done in flushed {
                let _ = done.send(());
            }
            // Every handle is gone (the gateway shut down) and the last rows are written.
            if closed {
                return;
            }
        }
    }

    /// Writes a batch; on failure it goes to the spool. False when the database failed.
    async fn write(&self, rows: Vec<LogRow>) -> bool {
        if rows.is_empty() {
            return true;
        }
        let started = std::time::Instant::now();
        let written = insert(&self.store, &rows).await;
        self.metrics.write_seconds.observe(started.elapsed().as_secs_f64());
        match written {
            Ok(()) => {
                self.metrics.rows.with_label_values(&["written"]).inc_by(rows.len() as u64);
                true
            }
            Err(error) => {
                tracing::warn!(%error, rows = rows.len(), "request log: database unavailable, spooling rows");
                let (spool, metrics) = (self.spool.clone(), self.metrics.clone());
                let _ = tokio::task::spawn_blocking(move || spool.append(&rows, &metrics)).await;
                false
            }
        }
    }

    /// Replays the spool into the database, a batch at a time; stops at the first failure.
    async fn replay(&self) {
        let spool = self.spool.clone();
        let Ok(Some(rows)) = tokio::task::spawn_blocking(move || spool.take()).await else { return };
        let mut rest: &[LogRow] = &rows;
        while !rest.is_empty() {
            let (batch, tail) = rest.split_at(rest.len().min(self.batch));
            if let Err(error) = insert(&self.store, batch).await {
                tracing::warn!(%error, "request log: replay paused, database unavailable");
                break;
            }
            self.metrics.rows.with_label_values(&["replayed"]).inc_by(batch.len() as u64);
            rest = tail;
        }
        let (spool, left, metrics) = (self.spool.clone(), rest.to_vec(), self.metrics.clone());
        let _ = tokio::task::spawn_blocking(move || spool.finish_replay(&left, &metrics)).await;
    }
}

/// Deletes rows older than `days`, at start and then hourly.
async fn expire(store: Arc<Store>, days: u32) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        let cutoff = crate::db::unix_now_ms() - i64::from(days) * 86_400_000;
        match store.delete_log_before(cutoff).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, days, "request log: deleted rows past the retention"),
            Err(error) => tracing::warn!(%error, "request log: could not delete old rows"),
        }
    }
}

/// Writes a batch; rows already present (a replay after a partial failure) are skipped. PostgreSQL
/// gets one multi-row insert (one round trip). SQLite gets the batch as one JSON array bound to one
/// statement that unpacks it with `jsonb_each`: sqlx hands each SQLite statement to its worker thread,
/// so a statement per row cost ~21 µs of CPU a row, and a multi-row statement of a new size each
/// time costs a fresh parse of thousands of parameters.
async fn insert(store: &Store, rows: &[LogRow]) -> Result<(), StoreError> {
    let pool = store.pool().await?;
    if store.database().dialect == crate::db::Dialect::Sqlite {
        let batch = serde_json::to_string(&JsonRows(rows))
            .map_err(|e| StoreError::Unavailable(format!("request log batch: {e}")))?;
        sqlx::query(sqlx::AssertSqlSafe(sqlite_json_insert_sql())).bind(batch).execute(pool).await?;
        return Ok(());
    }
    let mut query = sqlx::query(sqlx::AssertSqlSafe(insert_sql(rows.len())));
    for row in rows {
        query = bind(query, row);
    }
    query.execute(pool).await?;
    Ok(())
}

/// `INSERT ... SELECT value ->> 0, value ->> 1, ... FROM jsonb_each($1)`: one statement (prepared
/// once, cached by sqlx) for a batch of any size. `jsonb_each` parses the batch once and hands each
/// row over as a binary JSON array, which `->>` indexes without parsing text again (measured: with
/// `json_each` and named fields, re-parsing took most of the statement's time). The `NOT NULL` reals
/// are coalesced because JSON has no NaN.
fn sqlite_json_insert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let fields: Vec<String> = COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| match *c {
                "latency_ms" | "cost_usd" => format!("coalesce(value ->> {i}, 0)"),
                _ => format!("value ->> {i}"),
            })
            .collect();
        // `WHERE true` keeps SQLite from reading `ON CONFLICT` as part of the join.
        format!(
            "INSERT INTO request_log ({}) SELECT {} FROM jsonb_each($1) WHERE true ON CONFLICT (id) DO NOTHING",
            COLUMNS.join(", "),
            fields.join(", ")
        )
    })
}

/// A batch as a JSON array of rows, each row an array of its values in [`COLUMNS`] order.
struct JsonRows<'a>(&'a [LogRow]);

impl Serialize for JsonRows<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut rows = serializer.serialize_seq(Some(self.0.len()))?;
        for row in self.0 {
            rows.serialize_element(&JsonRow(row))?;
        }
        rows.end()
    }
}

struct JsonRow<'a>(&'a LogRow);

impl Serialize for JsonRow<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let r = self.0;
        let mut t = serializer.serialize_tuple(COLUMNS.len())?;
        t.serialize_element(&r.id)?;
        t.serialize_element(&r.created_at)?;
        t.serialize_element(&r.key_id)?;
        t.serialize_element(&r.team_id)?;
        t.serialize_element(&r.endpoint)?;
        t.serialize_element(&r.requested_model)?;
        t.serialize_element(&r.model)?;
        t.serialize_element(&r.provider)?;
        t.serialize_element(&r.status)?;
        t.serialize_element(&r.latency_ms)?;
        t.serialize_element(&r.ttft_ms)?;
        t.serialize_element(&r.prompt_tokens)?;
        t.serialize_element(&r.completion_tokens)?;
        t.serialize_element(&r.cost_usd)?;
        t.serialize_element(&r.cache)?;
        t.serialize_element(&r.router_scores)?;
        t.serialize_element(&r.error_kind)?;
        t.serialize_element(&r.prompt)?;
        t.end()
    }
}

/// `INSERT ... VALUES (...), (...) ON CONFLICT (id) DO NOTHING` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let mut sql = format!("INSERT INTO request_log ({}) VALUES ", COLUMNS.join(", "));
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..COLUMNS.len() {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * COLUMNS.len() + c + 1));
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (id) DO NOTHING");
    sql
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind<'q>(query: Query<'q>, row: &LogRow) -> Query<'q> {
    query
        .bind(row.id.clone())
        .bind(row.created_at)
        .bind(row.key_id.clone())
        .bind(row.team_id.clone())
        .bind(row.endpoint.clone())
        .bind(row.requested_model.clone())
        .bind(row.model.clone())
        .bind(row.provider.clone())
        .bind(i32::from(row.status))
        .bind(row.latency_ms)
        .bind(row.ttft_ms)
        .bind(row.prompt_tokens as i64)
        .bind(row.completion_tokens as i64)
        .bind(row.cost_usd)
        .bind(row.cache.clone())
        .bind(row.router_scores.clone())
        .bind(row.error_kind.clone())
        .bind(row.prompt.clone())
}

/// Rows waiting for the database, as JSON lines. `spool.jsonl` takes new rows; a replay first
/// renames it to `replaying.jsonl`, so rows spooled during the replay are not lost or doubled.
struct Spool {
    dir: PathBuf,
    lock: std::sync::Mutex<()>,
}

impl Spool {
    fn new(dir: PathBuf) -> Self {
        Self { dir, lock: std::sync::Mutex::new(()) }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn append(&self, rows: &[LogRow], metrics: &RequestLogMetrics) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let file = std::fs::OpenOptions::new().create(true).append(true).open(self.path("spool.jsonl"))?;
            let mut out = std::io::BufWriter::new(file);
            for row in rows {
                serde_json::to_writer(&mut out, row)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            out.get_ref().sync_data()
        })();
        match result {
            Ok(()) => metrics.rows.with_label_values(&["spooled"]).inc_by(rows.len() as u64),
            Err(error) => {
                metrics.rows.with_label_values(&["failed"]).inc_by(rows.len() as u64);
                tracing::error!(%error, rows = rows.len(), dir = %self.dir.display(), "request log: cannot spool rows");
            }
        }
    }

    /// The rows to replay (an interrupted replay's first), or `None` when there are none.
    fn take(&self) -> Option<Vec<LogRow>> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let replaying = self.path("replaying.jsonl");
        if !replaying.exists() {
            std::fs::rename(self.path("spool.jsonl"), &replaying).ok()?;
        }
        let file = std::fs::File::open(&replaying).ok()?;
        let rows: Vec<LogRow> = std::io::BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str(&line).ok())
            .collect();
        Some(rows)
    }

    /// Ends a replay: what is `left` stays for the next one.
    fn finish_replay(&self, left: &[LogRow], metrics: &RequestLogMetrics) {
        let replaying = self.path("replaying.jsonl");
        let _ = std::fs::remove_file(&replaying);
        if !left.is_empty() {
            // Put back to the replay file under the lock, ahead of newer spooled rows.
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            let result = (|| -> std::io::Result<()> {
                let mut out = std::io::BufWriter::new(std::fs::File::create(&replaying)?);
                for row in left {
                    serde_json::to_writer(&mut out, row)?;
                    out.write_all(b"\n")?;
                }
                out.flush()?;
                out.get_ref().sync_data()
            })();
            if let Err(error) = result {
                metrics.rows.with_label_values(&["failed"]).inc_by(left.len() as u64);
                tracing::error!(%error, "request log: cannot keep rows for a later replay");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column survives the SQLite batch path (JSON in, typed columns out), including nulls,
    /// quotes and non-ASCII text; a row written twice is kept once.
    #[tokio::test]
    async fn sqlite_batch_insert_keeps_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig { data_dir: dir.path().into(), ..StoreConfig::default() }).unwrap();
        let full = LogRow {
            id: "r-1".into(),
            created_at: 1_764_000_000_123,
            key_id: Some("k'1".into()),
            team_id: Some("t\"1".into()),
            endpoint: "/v1/chat/completions".into(),
            requested_model: Some("auto".into()),
            model: Some("gpt-4o-mini".into()),
            provider: Some("openai".into()),
            status: 200,
            latency_ms: 12.5,
            ttft_ms: Some(3.25),
            prompt_tokens: 9_007_199_254,
            completion_tokens: 7,
            cost_usd: 0.000_012_5,
            cache: Some("miss".into()),
            router_scores: Some(r#"{"a":0.5}"#.into()),
            error_kind: None,
            prompt: Some("héllo ✓ \n 'quoted'".into()),
        };
        let bare = LogRow { id: "r-2".into(), endpoint: "/v1/embeddings".into(), status: 502, ..LogRow::default() };
        insert(&store, &[full.clone(), bare.clone()]).await.unwrap();
        insert(&store, std::slice::from_ref(&full)).await.unwrap();

        let pool = store.pool().await.unwrap();
        let read =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {} FROM request_log ORDER BY id", COLUMNS.join(", "))))
                .fetch_all(pool)
                .await
                .unwrap();
        use sqlx::Row;
        let rows: Vec<LogRow> = read
            .iter()
            .map(|r| LogRow {
                id: r.get(0),
                created_at: r.get(1),
                key_id: r.get(2),
                team_id: r.get(3),
                endpoint: r.get(4),
                requested_model: r.get(5),
                model: r.get(6),
                provider: r.get(7),
                status: r.get::<i32, _>(8) as u16,
                latency_ms: r.get(9),
                ttft_ms: r.get(10),
                prompt_tokens: r.get::<i64, _>(11) as u64,
                completion_tokens: r.get::<i64, _>(12) as u64,
                cost_usd: r.get(13),
                cache: r.get(14),
                router_scores: r.get(15),
                error_kind: r.get(16),
                prompt: r.get(17),
            })
            .collect();
        assert_eq!(rows, [full, bare]);
    }

    #[test]
    fn spool_round_trip_keeps_rows_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        let metrics = RequestLogMetrics::new();
        let row = |id: &str| LogRow { id: id.into(), endpoint: "/v1/chat/completions".into(), ..LogRow::default() };
        assert!(spool.take().is_none());
        spool.append(&[row("a"), row("b")], &metrics);
        let taken = spool.take().unwrap();
        assert_eq!(taken.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        // Spooled during the replay: kept apart, replayed next time.
        spool.append(&[row("c")], &metrics);
        spool.finish_replay(&taken[1..], &metrics);
        assert_eq!(spool.take().unwrap().iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["b"]);
        spool.finish_replay(&[], &metrics);
        assert_eq!(spool.take().unwrap().iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["c"]);
    }
}
