//! `router export`: logged requests that have feedback, in the router's training format (one JSON
//! object a line: `id`, `prompt`, and per routed model its `quality` = the feedback score, `cost_usd`,
//! `latency_ms`, `output_tokens`). The prompt is there only if it was logged
//! (`request_log.log_prompts`); rows without one carry no `prompt` field.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

#[derive(Debug, Serialize)]
pub struct TrainingRow {
    pub id: String,
    pub task: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    pub quality: BTreeMap<String, f64>,
    pub cost_usd: BTreeMap<String, f64>,
    pub latency_ms: BTreeMap<String, f64>,
    pub output_tokens: BTreeMap<String, f64>,
}

/// What an export wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Exported {
    pub rows: usize,
    pub with_prompt: usize,
}

impl Store {
    /// Writes every logged request since `since_ms` (unix milliseconds) that has feedback and
    /// reached a model, oldest first.
    pub async fn export_feedback(&self, since_ms: i64, out: &mut impl Write) -> Result<Exported, StoreError> {
        let pool = self.pool().await?;
        let rows = sqlx::query(
            "SELECT r.id, r.model, r.prompt, r.cost_usd, r.latency_ms, r.completion_tokens, f.score \
             FROM request_log r JOIN feedback f ON f.request_id = r.id \
             WHERE r.created_at >= $1 AND r.model IS NOT NULL ORDER BY r.created_at, r.id",
        )
        .bind(since_ms)
        .fetch_all(pool)
        .await?;
        let mut exported = Exported::default();
        for row in rows {
            let model: String = row.try_get("model")?;
            let one = |value: f64| BTreeMap::from([(model.clone(), value)]);
            let line = TrainingRow {
                id: row.try_get("id")?,
                task: "feedback",
                prompt: row.try_get("prompt")?,
                quality: one(row.try_get("score")?),
                cost_usd: one(row.try_get("cost_usd")?),
                latency_ms: one(row.try_get("latency_ms")?),
                output_tokens: one(row.try_get::<i64, _>("completion_tokens")? as f64),
            };
            exported.rows += 1;
            exported.with_prompt += usize::from(line.prompt.is_some());
            serde_json::to_writer(&mut *out, &line).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            out.write_all(b"\n").map_err(|e| StoreError::Unavailable(e.to_string()))?;
        }
        Ok(exported)
    }
}

/// `YYYY-MM-DD` (UTC midnight) as unix milliseconds.
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let (year, month, day) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(super::period::days_from_civil(year, month, day) * 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("2026-11-01"), Some(1_793_491_200_000));
        assert_eq!(parse_date("1970-01-01"), Some(0));
        for bad in ["2026-13-01", "2026-11", "yesterday", "2026-11-01-02"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
