//! The store: teams, virtual keys, spend, the request log and feedback, in SQL (a SQLite file by
//! default, PostgreSQL in production). Keys are kept as SHA-256 digests; a presented key is looked
//! up once and then served from a short-lived in-process cache, so the hot path rarely touches SQL.

mod accounts;
pub mod export;
pub mod log;
mod period;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::sync::OnceCell;

pub use accounts::{Account, KeyInfo, Limits, NewKey, NewTeam, Patch, Team};
pub use period::Period;

use crate::config::StoreConfig;
use crate::db::{Database, unix_now};
use accounts::{JOINED_TEAM_COLUMNS, KEY_COLUMNS, TEAM_COLUMNS, account_from, key_from, team_from};

/// Text every virtual key starts with, so it is recognisable in a leaked file.
pub const KEY_PREFIX: &str = "sk-cp-";
/// How long a resolved key is trusted before SQL is asked again: the longest a revocation made
/// through another replica takes to apply here.
const ACCOUNT_TTL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store's database is unavailable: {0}")]
    Unavailable(String),
    #[error("no {what} has the id `{id}`")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    Invalid { field: &'static str, message: String },
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict(db.message().to_owned()),
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                Self::Invalid { field: "team_id", message: "no team has this id".into() }
            }
            _ => Self::Unavailable(crate::db::redact_url(&error.to_string())),
        }
    }
}

pub struct Store {
    db: Database,
    migrated: OnceCell<()>,
    accounts: moka::future::Cache<[u8; 32], Option<Arc<Account>>>,
}

/// A new key: its record, and the key itself, shown this once.
#[derive(Debug, serde::Serialize)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub info: KeyInfo,
}

pub fn key_digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds a team's columns as $1..$6: id, name, rpm_limit, tpm_limit, budget_usd, budget_period.
fn bind_team<'q>(query: Query<'q>, team: &Team) -> Query<'q> {
    query
        .bind(team.id.clone())
        .bind(team.name.clone())
        .bind(team.limits.rpm_limit)
        .bind(team.limits.tpm_limit)
        .bind(team.limits.budget_usd)
        .bind(team.limits.budget_period.as_str())
}

/// Binds a key's columns as $1..$8: id, name, team_id, models, rpm_limit, tpm_limit, budget_usd,
/// budget_period.
fn bind_key<'q>(query: Query<'q>, key: &KeyInfo) -> Query<'q> {
    query
        .bind(key.id.clone())
        .bind(key.name.clone())
        .bind(key.team_id.clone())
        .bind(key.models.as_ref().map(|m| serde_json::to_string(m).unwrap_or_default()))
        .bind(key.limits.rpm_limit)
        .bind(key.limits.tpm_limit)
        .bind(key.limits.budget_usd)
        .bind(key.limits.budget_period.as_str())
}

fn invalid(field: &'static str, message: String) -> StoreError {
    StoreError::Invalid { field, message }
}

fn check_limits(limits: &Limits) -> Result<(), StoreError> {
    match limits.problems().into_iter().next() {
        Some((field, message)) => Err(invalid(field, message)),
        None => Ok(()),
    }
}

fn check_name(name: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(invalid("name", "name must be 1 to 200 characters".into()));
    }
    Ok(())
}

impl Store {
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let db = Database::open(
            &config.url(),
            config.max_connections,
            Duration::from_millis(config.timeout_ms),
            "store.url",
        )
        .map_err(StoreError::Unavailable)?;
        let accounts = moka::future::Cache::builder().max_capacity(100_000).time_to_live(ACCOUNT_TTL).build();
        Ok(Self { db, migrated: OnceCell::new(), accounts })
    }

    /// The pool, with the schema migrated (retried on each call until it succeeds once).
    pub async fn pool(&self) -> Result<&sqlx::AnyPool, StoreError> {
        self.migrated.get_or_try_init(|| self.migrate()).await?;
        Ok(&self.db.pool)
    }

    /// Runs the migrations, trying again briefly: the request log's writer has a pool of its own on
    /// the same database, and two first uses at once race to record the same version (PostgreSQL
    /// serialises them with a lock; SQLite has none, so the loser sees a duplicate version).
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            match self.db.migrate().await {
                Ok(()) => return Ok(()),
                Err(_) if attempt < 3 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(error) => return Err(StoreError::Unavailable(error.to_string())),
            }
        }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The account of a presented virtual key, or `None` for an unknown or revoked key.
    pub async fn authenticate(&self, key: &[u8]) -> Result<Option<Arc<Account>>, StoreError> {
        let digest = key_digest(key);
        self.accounts
            .try_get_with(digest, async move {
                let pool = self.pool().await?;
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {KEY_COLUMNS}, {JOINED_TEAM_COLUMNS} FROM virtual_keys k \
                     LEFT JOIN teams t ON t.id = k.team_id WHERE k.key_hash = $1"
                )))
                .bind(digest.as_slice())
                .fetch_optional(pool)
                .await?;
                let account = row.map(|row| account_from(&row)).transpose()?;
                Ok::<_, StoreError>(account.filter(|a| a.key.revoked_at.is_none()).map(Arc::new))
            })
            .await
            .map_err(|e: Arc<StoreError>| StoreError::Unavailable(e.to_string()))
    }

    pub async fn create_team(&self, new: NewTeam) -> Result<Team, StoreError> {
        check_name(&new.name)?;
        let team = Team {
            id: format!("team-{}", uuid::Uuid::new_v4().simple()),
            name: new.name,
            limits: Limits {
                rpm_limit: new.rpm_limit,
                tpm_limit: new.tpm_limit,
                budget_usd: new.budget_usd,
                budget_period: new.budget_period,
            },
            created_at: unix_now(),
        };
        check_limits(&team.limits)?;
        let pool = self.pool().await?;
        let query = sqlx::query(
            "INSERT INTO teams (id, name, rpm_limit, tpm_limit, budget_usd, budget_period, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        );
        bind_team(query, &team).bind(team.created_at).execute(pool).await.map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("a team named `{}` exists", team.name)),
            other => other,
        })?;
        Ok(team)
    }

    pub async fn teams(&self) -> Result<Vec<Team>, StoreError> {
        let pool = self.pool().await?;
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {TEAM_COLUMNS} FROM teams t ORDER BY t.created_at, t.id")))
                .fetch_all(pool)
                .await?;
        Ok(rows.iter().map(|r| team_from(r, "")).collect::<Result<_, _>>()?)
    }

    pub async fn team(&self, id: &str) -> Result<Team, StoreError> {
        let pool = self.pool().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {TEAM_COLUMNS} FROM teams t WHERE t.id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "team", id: id.to_owned() })?;
        Ok(team_from(&row, "")?)
    }

    pub async fn update_team(&self, id: &str, patch: Patch) -> Result<Team, StoreError> {
        if patch.team_id.is_some() || patch.models.is_some() {
            return Err(invalid("team_id", "a team has only name, limits and budget to change".into()));
        }
        let mut team = self.team(id).await?;
        if let Some(name) = patch.name.clone() {
            check_name(&name)?;
            team.name = name;
        }
        team.limits.apply(&patch);
        check_limits(&team.limits)?;
        let query = sqlx::query(
            "UPDATE teams SET name = $2, rpm_limit = $3, tpm_limit = $4, budget_usd = $5, budget_period = $6 \
             WHERE id = $1",
        );
        bind_team(query, &team).execute(self.pool().await?).await?;
        self.accounts.invalidate_all();
        Ok(team)
    }

    pub async fn create_key(&self, new: NewKey) -> Result<CreatedKey, StoreError> {
        check_name(&new.name)?;
        let key = format!(
            "{KEY_PREFIX}{}",
            rand::rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect::<String>()
        );
        let info = KeyInfo {
            id: format!("key-{}", uuid::Uuid::new_v4().simple()),
            name: new.name,
            key_hint: format!("{KEY_PREFIX}...{}", &key[key.len() - 4..]),
            team_id: new.team_id,
            models: new.models,
            limits: Limits {
                rpm_limit: new.rpm_limit,
                tpm_limit: new.tpm_limit,
                budget_usd: new.budget_usd,
                budget_period: new.budget_period,
            },
            created_at: unix_now(),
            revoked_at: None,
        };
        check_limits(&info.limits)?;
        if let Some(team) = &info.team_id {
            self.team(team).await.map_err(|_| invalid("team_id", format!("no team has the id `{team}`")))?;
        }
        let pool = self.pool().await?;
        let query = sqlx::query(
            "INSERT INTO virtual_keys (id, name, team_id, models, rpm_limit, tpm_limit, budget_usd, budget_period, \
             key_hash, key_hint, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        );
        bind_key(query, &info)
            .bind(key_digest(key.as_bytes()).as_slice())
            .bind(&info.key_hint)
            .bind(info.created_at)
            .execute(pool)
            .await?;
        Ok(CreatedKey { key, info })
    }

    pub async fn keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let pool = self.pool().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM virtual_keys k ORDER BY k.created_at, k.id"
        )))
        .fetch_all(pool)
        .await?;
        Ok(rows.iter().map(key_from).collect::<Result<_, _>>()?)
    }

    pub async fn key(&self, id: &str) -> Result<KeyInfo, StoreError> {
        let pool = self.pool().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {KEY_COLUMNS} FROM virtual_keys k WHERE k.id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "key", id: id.to_owned() })?;
        Ok(key_from(&row)?)
    }

    pub async fn update_key(&self, id: &str, patch: Patch) -> Result<KeyInfo, StoreError> {
        let mut key = self.key(id).await?;
        if let Some(name) = patch.name.clone() {
            check_name(&name)?;
            key.name = name;
        }
        if let Some(team) = patch.team_id.clone() {
            if let Some(team) = &team {
                self.team(team).await.map_err(|_| invalid("team_id", format!("no team has the id `{team}`")))?;
            }
            key.team_id = team;
        }
        if let Some(models) = patch.models.clone() {
            key.models = models;
        }
        key.limits.apply(&patch);
        check_limits(&key.limits)?;
        let query = sqlx::query(
            "UPDATE virtual_keys SET name = $2, team_id = $3, models = $4, rpm_limit = $5, tpm_limit = $6, \
             budget_usd = $7, budget_period = $8 WHERE id = $1",
        );
        bind_key(query, &key).execute(self.pool().await?).await?;
        self.accounts.invalidate_all();
        Ok(key)
    }

    /// Revokes a key for good; requests with it answer 401 from now on (on other replicas within
    /// 10 s).
    pub async fn revoke_key(&self, id: &str) -> Result<KeyInfo, StoreError> {
        let pool = self.pool().await?;
        sqlx::query("UPDATE virtual_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(unix_now())
            .execute(pool)
            .await?;
        self.accounts.invalidate_all();
        self.key(id).await
    }

    /// Spend in USD logged for a key (or a team, `team = true`) since `since` (unix seconds).
    pub async fn spend(&self, id: &str, team: bool, since: i64) -> Result<f64, StoreError> {
        let pool = self.pool().await?;
        let column = if team { "team_id" } else { "key_id" };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COALESCE(SUM(cost_usd), 0.0) AS spend FROM request_log WHERE {column} = $1 AND created_at >= $2"
        )))
        .bind(id)
        .bind(since.saturating_mul(1000))
        .fetch_one(pool)
        .await?;
        Ok(row.try_get::<f64, _>("spend")?)
    }

    /// Stores feedback on a logged request (replacing earlier feedback on it). False when no
    /// request of `owner` (a key id; `None`: any) has this id.
    pub async fn add_feedback(
        &self,
        request_id: &str,
        owner: Option<&str>,
        score: f64,
        comment: Option<&str>,
    ) -> Result<bool, StoreError> {
        let pool = self.pool().await?;
        let row =
            sqlx::query("SELECT key_id FROM request_log WHERE id = $1").bind(request_id).fetch_optional(pool).await?;
        let Some(row) = row else { return Ok(false) };
        let key_id: Option<String> = row.try_get("key_id")?;
        if owner.is_some() && owner != key_id.as_deref() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO feedback (request_id, score, comment, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (request_id) DO UPDATE SET score = excluded.score, comment = excluded.comment, \
             created_at = excluded.created_at",
        )
        .bind(request_id)
        .bind(score)
        .bind(comment)
        .bind(unix_now())
        .execute(pool)
        .await?;
        Ok(true)
    }

    /// Deletes request-log rows older than `cutoff_ms` and the feedback on them; returns the rows.
    pub async fn delete_log_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let pool = self.pool().await?;
        sqlx::query("DELETE FROM feedback WHERE request_id IN (SELECT id FROM request_log WHERE created_at < $1)")
            .bind(cutoff_ms)
            .execute(pool)
            .await?;
        let done = sqlx::query("DELETE FROM request_log WHERE created_at < $1").bind(cutoff_ms).execute(pool).await?;
        Ok(done.rows_affected())
    }
}
