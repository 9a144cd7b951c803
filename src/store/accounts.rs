//! Teams and virtual keys in SQL: the admin API's records and what a presented key resolves to.

use serde::{Deserialize, Deserializer, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::period::Period;

/// The limits a key or a team carries. `None` is unlimited (for a key's RPM: `limits.key_rpm`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Limits {
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub budget_usd: Option<f64>,
    pub budget_period: Period,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Team {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    pub limits: Limits,
    pub created_at: i64,
}

/// A virtual key as the admin API shows it: never the key itself, only its last characters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub key_hint: String,
    pub team_id: Option<String>,
    /// Models (names or aliases, `auto` included) the key may use; `None`: all.
    pub models: Option<Vec<String>>,
    #[serde(flatten)]
    pub limits: Limits,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// What a presented virtual key resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub key: KeyInfo,
    pub team: Option<Team>,
}

impl Account {
    pub fn allows_model(&self, model: &str) -> bool {
        self.key.models.as_ref().is_none_or(|models| models.iter().any(|m| m == model))
    }
}

/// `POST /admin/teams`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    pub name: String,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub budget_usd: Option<f64>,
    #[serde(default)]
    pub budget_period: Period,
}

/// `POST /admin/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub team_id: Option<String>,
    pub models: Option<Vec<String>>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub budget_usd: Option<f64>,
    #[serde(default)]
    pub budget_period: Period,
}

/// `PATCH /admin/keys/{id}` and `/admin/teams/{id}`: an absent field is kept, `null` clears it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub team_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub budget_usd: Option<Option<f64>>,
    pub budget_period: Option<Period>,
}

fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl Limits {
    /// Every problem with these values, as (field, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        for (field, value) in [("rpm_limit", self.rpm_limit), ("tpm_limit", self.tpm_limit)] {
            if value.is_some_and(|v| v < 1) {
                problems.push((field, format!("{field} must be at least 1 (leave it out or null for no limit)")));
            }
        }
        if self.budget_usd.is_some_and(|b| !b.is_finite() || b < 0.0) {
            problems.push(("budget_usd", "budget_usd must be a non-negative number".to_owned()));
        }
        problems
    }

    pub(super) fn apply(&mut self, patch: &Patch) {
        if let Some(v) = patch.rpm_limit {
            self.rpm_limit = v;
        }
        if let Some(v) = patch.tpm_limit {
            self.tpm_limit = v;
        }
        if let Some(v) = patch.budget_usd {
            self.budget_usd = v;
        }
        if let Some(v) = patch.budget_period {
            self.budget_period = v;
        }
    }
}

pub(super) const KEY_COLUMNS: &str = "k.id, k.name, k.key_hint, k.team_id, k.models, k.rpm_limit, k.tpm_limit, \
     k.budget_usd, k.budget_period, k.created_at, k.revoked_at";
pub(super) const TEAM_COLUMNS: &str =
    "t.id, t.name, t.rpm_limit, t.tpm_limit, t.budget_usd, t.budget_period, t.created_at";
/// The key's team under prefixed names, for a join.
pub(super) const JOINED_TEAM_COLUMNS: &str = "t.id AS t_id, t.name AS t_name, t.rpm_limit AS t_rpm_limit, \
     t.tpm_limit AS t_tpm_limit, t.budget_usd AS t_budget_usd, t.budget_period AS t_budget_period, \
     t.created_at AS t_created_at";

fn limits_from(row: &AnyRow, prefix: &str) -> Result<Limits, sqlx::Error> {
    let column = |name: &str| format!("{prefix}{name}");
    let period: String = row.try_get(column("budget_period").as_str())?;
    Ok(Limits {
        rpm_limit: row.try_get(column("rpm_limit").as_str())?,
        tpm_limit: row.try_get(column("tpm_limit").as_str())?,
        budget_usd: row.try_get(column("budget_usd").as_str())?,
        budget_period: Period::parse(&period).unwrap_or_default(),
    })
}

pub(super) fn team_from(row: &AnyRow, prefix: &str) -> Result<Team, sqlx::Error> {
    Ok(Team {
        id: row.try_get(format!("{prefix}id").as_str())?,
        name: row.try_get(format!("{prefix}name").as_str())?,
        limits: limits_from(row, prefix)?,
        created_at: row.try_get(format!("{prefix}created_at").as_str())?,
    })
}

pub(super) fn key_from(row: &AnyRow) -> Result<KeyInfo, sqlx::Error> {
    let models: Option<String> = row.try_get("models")?;
    Ok(KeyInfo {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        key_hint: row.try_get("key_hint")?,
        team_id: row.try_get("team_id")?,
        models: models.and_then(|m| serde_json::from_str(&m).ok()),
        limits: limits_from(row, "")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub(super) fn account_from(row: &AnyRow) -> Result<Account, sqlx::Error> {
    let key = key_from(row)?;
    let team_id: Option<String> = row.try_get("t_id")?;
    let team = team_id.map(|_| team_from(row, "t_")).transpose()?;
    Ok(Account { key, team })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_tells_absent_from_null() {
        let patch: Patch = serde_json::from_str(r#"{"rpm_limit": null, "tpm_limit": 5}"#).unwrap();
        assert_eq!(patch.rpm_limit, Some(None));
        assert_eq!(patch.tpm_limit, Some(Some(5)));
        assert_eq!(patch.budget_usd, None);
        let mut limits = Limits { rpm_limit: Some(10), budget_usd: Some(1.0), ..Limits::default() };
        limits.apply(&patch);
        assert_eq!(limits, Limits { rpm_limit: None, tpm_limit: Some(5), budget_usd: Some(1.0), ..Limits::default() });
        assert!(serde_json::from_str::<Patch>(r#"{"rpm": 1}"#).is_err());
    }

    #[test]
    fn limits_are_checked() {
        let limits =
            Limits { rpm_limit: Some(0), tpm_limit: Some(-1), budget_usd: Some(f64::NAN), ..Limits::default() };
        let fields: Vec<_> = limits.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["rpm_limit", "tpm_limit", "budget_usd"]);
    }
}
