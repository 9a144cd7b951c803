//! L3: durable answers in SQL through sqlx: a SQLite file by default, PostgreSQL in production.
//! The schema is migrated on first use (and again after a failed attempt, so a database that was
//! down at start is set up once it is reachable); expired rows are deleted in the background.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::AnyPool;
use tokio::sync::OnceCell;

use super::entry::{compress, decompress};
use super::tier::Tier;
use super::{Key, MemoryError};
use crate::db::Database;
pub use crate::db::unix_now;

pub struct L3 {
    db: Database,
    migrated: OnceCell<()>,
}

fn backend(error: impl std::fmt::Display) -> MemoryError {
    MemoryError::Backend(error.to_string())
}

impl L3 {
    /// Opens the pool lazily: no connection is made until the first call.
    pub fn open(url: &str, max_connections: u32, timeout: Duration) -> Result<Self, MemoryError> {
        let db = Database::open(url, max_connections, timeout, "cache.l3.url").map_err(MemoryError::Config)?;
        Ok(Self { db, migrated: OnceCell::new() })
    }

    async fn ready(&self) -> Result<&AnyPool, MemoryError> {
        self.migrated.get_or_try_init(|| async { self.db.migrate().await.map_err(backend) }).await?;
        Ok(&self.db.pool)
    }

    /// (idle, in use) connections of the pool.
    pub fn connections(&self) -> (u32, u32) {
        self.db.connections()
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
