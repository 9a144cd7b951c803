//! The SQL database behind L3 and the store: one pool per URL (a SQLite file by default, PostgreSQL
//! in production) and one migration list for both, so they can share a database: sqlx records every
//! applied version in one table, and two parts with their own numbering would collide in it.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, SqlSafeStr};

const SQLITE: &[(i64, &str, &str)] = &[
    (1, "cache entries", include_str!("../migrations/sqlite/0001_cache_entries.sql")),
    (2, "accounts", include_str!("../migrations/sqlite/0002_accounts.sql")),
    (3, "request log", include_str!("../migrations/sqlite/0003_request_log.sql")),
];
const POSTGRES: &[(i64, &str, &str)] = &[
    (1, "cache entries", include_str!("../migrations/postgres/0001_cache_entries.sql")),
    (2, "accounts", include_str!("../migrations/postgres/0002_accounts.sql")),
    (3, "request log", include_str!("../migrations/postgres/0003_request_log.sql")),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A lazily connected pool and the migrator for its dialect.
pub struct Database {
    pub pool: AnyPool,
    pub dialect: Dialect,
    migrator: Migrator,
}

impl Database {
    /// Opens the pool without connecting: a database that is down at start does not stop the gateway.
    /// `what` names the config key in errors.
    pub fn open(url: &str, max_connections: u32, timeout: Duration, what: &str) -> Result<Self, String> {
        install_default_drivers();
        let dialect = if url.starts_with("sqlite:") { Dialect::Sqlite } else { Dialect::Postgres };
        if dialect == Dialect::Sqlite
            && let Some(dir) = sqlite_dir(url)
        {
            std::fs::create_dir_all(&dir).map_err(|e| format!("{what}: {}: {e}", dir.display()))?;
        }
        let migrations = match dialect {
            Dialect::Sqlite => SQLITE,
            Dialect::Postgres => POSTGRES,
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
            .map_err(|e| format!("{what}: {}", redact_url(&e.to_string())))?;
        Ok(Self { pool, dialect, migrator })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        self.migrator.run(&self.pool).await
    }

    /// (idle, in use) connections, for `cherrypick_db_connections`.
    pub fn connections(&self) -> (u32, u32) {
        let (size, idle) = (self.pool.size(), self.pool.num_idle() as u32);
        (idle, size.saturating_sub(idle))
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

pub fn unix_now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
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
pub fn redact_url(text: &str) -> String {
    match (text.find("://"), text.find('@')) {
        (Some(scheme), Some(at)) if scheme < at => format!("{}://***{}", &text[..scheme], &text[at..]),
        _ => text.to_owned(),
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
