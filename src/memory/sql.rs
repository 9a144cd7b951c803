//! L3: durable answers in SQL through sqlx: a SQLite file by default, PostgreSQL in production.
//! The schema is migrated on first use (and again after a failed attempt, so a database that was
//! down at start is set up once it is reachable); expired rows are deleted in the background.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, SqlSafeStr};
use tokio::sync::OnceCell;

use super::entry::{compress, decompress};
use super::tier::Tier;
use super::{Key, MemoryError};

const SQLITE: &[(i64, &str, &str)] =
    &[(1, "cache entries", include_str!("../../migrations/sqlite/0001_cache_entries.sql"))];
const POSTGRES: &[(i64, &str, &str)] =
    &[(1, "cache entries", include_str!("../../migrations/postgres/0001_cache_entries.sql"))];

pub struct L3 {
    pool: AnyPool,
    migrator: Migrator,
    migrated: OnceCell<()>,
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn backend(error: impl std::fmt::Display) -> MemoryError {
    MemoryError::Backend(error.to_string())
}

impl L3 {
    /// Opens the pool lazily: no connection is made until the first call.
    pub fn open(url: &str, max_connections: u32, timeout: Duration) -> Result<Self, MemoryError> {
        install_default_drivers();
        let migrations = if url.starts_with("sqlite:") {
            if let Some(dir) = sqlite_dir(url) {
                std::fs::create_dir_all(&dir).map_err(|e| MemoryError::Config(format!("{}: {e}", dir.display())))?;
            }
            SQLITE
        } else {
            POSTGRES
        };
        let migrator = Migrator::with_migrations(
            migrations
                .iter()
                .map(|&(version, name, sql)| {
                    Migration::new(version, Cow::Borrowed(name), MigrationType::Simple, sql.into_sql_str(), false)
                })
                .collect(),
        );
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(timeout)
            .connect_lazy(url)
            .map_err(|e| MemoryError::Config(format!("cache.l3.url: {}", redact_url(&e.to_string()))))?;
        Ok(Self { pool, migrator, migrated: OnceCell::new() })
    }

    async fn ready(&self) -> Result<&AnyPool, MemoryError> {
        self.migrated.get_or_try_init(|| async { self.migrator.run(&self.pool).await.map_err(backend) }).await?;
        Ok(&self.pool)
    }

    /// Deletes expired rows; returns how many.
    pub async fn delete_expired(&self) -> Result<u64, MemoryError> {
        let pool = self.ready().await?;
        let done = sqlx::query("DELETE FROM cache_entries WHERE expires_at <= $1")
            .bind(unix_now())
            .execute(pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }
}

/// The folder of a `sqlite://PATH?...` URL, to create before SQLite opens the file.
fn sqlite_dir(url: &str) -> Option<std::path::PathBuf> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()).map(Into::into)
}

/// A connection error may echo the URL; never show its password.
fn redact_url(text: &str) -> String {
    match (text.find("://"), text.find('@')) {
        (Some(scheme), Some(at)) if scheme < at => format!("{}://***{}", &text[..scheme], &text[at..]),
        _ => text.to_owned(),
    }
}

// An `Arc` so the cleanup task can hold the tier too.
#[async_trait]
impl Tier for std::sync::Arc<L3> {
    fn name(&self) -> &'static str {
        "l3"
    }

    async fn get(&self, key: &Key) -> Result<Option<Bytes>, MemoryError> {
        let pool = self.ready().await?;
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT value FROM cache_entries WHERE key = $1 AND expires_at > $2")
                .bind(key.0.as_slice())
                .bind(unix_now())
                .fetch_optional(pool)
                .await
                .map_err(backend)?;
        row.map(|(value,)| decompress(&value)).transpose()
    }

    async fn put(&self, key: &Key, entry: &Bytes, ttl: Duration) -> Result<(), MemoryError> {
        let pool = self.ready().await?;
        sqlx::query(
            "INSERT INTO cache_entries (key, value, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        )
        .bind(key.0.as_slice())
        .bind(compress(entry))
        .bind(unix_now() + ttl.as_secs().max(1) as i64)
        .execute(pool)
        .await
        .map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_folders_and_redaction() {
        assert_eq!(
            sqlite_dir("sqlite:///var/lib/cp/cache.sqlite?mode=rwc").unwrap(),
            std::path::Path::new("/var/lib/cp")
        );
        assert_eq!(sqlite_dir("sqlite::memory:"), None);
        assert_eq!(redact_url("error for postgres://u:hunter2@db/x"), "error for postgres://***@db/x");
    }
}
