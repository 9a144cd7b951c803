//! A request's account of itself: what it reserved against limits and budgets, and the request-log
//! row it becomes. Finished exactly once: by the handler for a whole answer or an error, by the
//! stream wrapper when a stream ends. Finishing settles the reservation with the real usage and
//! queues the row; neither waits on anything.

use std::sync::Arc;
use std::time::Instant;

use crate::limits::Reservation;
use crate::openai::Usage;
use crate::store::Account;
use crate::store::log::{LogRow, RequestLog};

use super::Route;

pub struct Ticket {
    row: LogRow,
    started: Instant,
    log: Option<RequestLog>,
    reservation: Option<Reservation>,
    usage_known: bool,
    finished: bool,
}

impl Ticket {
    pub fn new(id: String, endpoint: &str, account: Option<&Arc<Account>>, log: Option<RequestLog>) -> Self {
        let row = LogRow {
            id,
            created_at: crate::db::unix_now_ms(),
            key_id: account.map(|a| a.key.id.clone()),
            team_id: account.and_then(|a| a.team.as_ref().map(|t| t.id.clone())),
            endpoint: endpoint.to_owned(),
            ..LogRow::default()
        };
        Self { row, started: Instant::now(), log, reservation: None, usage_known: false, finished: false }
    }

    pub fn logs_prompts(&self) -> bool {
        self.log.as_ref().is_some_and(RequestLog::log_prompts)
    }

    pub fn requested(&mut self, model: &str) {
        self.row.requested_model = Some(model.to_owned());
    }

    pub fn prompt(&mut self, text: impl FnOnce() -> String) {
        if self.logs_prompts() {
            self.row.prompt = Some(text());
        }
    }

    pub fn routed(&mut self, route: &Route, scores: Option<String>) {
        self.row.model = Some(route.model.to_string());
        self.row.provider = Some(route.provider.name().to_owned());
        if scores.is_some() {
            self.row.router_scores = scores;
        }
    }

    pub fn cache(&mut self, result: &str) {
        self.row.cache = Some(result.to_owned());
    }

    pub fn reserved(&mut self, reservation: Reservation) {
        self.reservation = Some(reservation);
    }

    pub fn reservation(&self) -> Option<&Reservation> {
        self.reservation.as_ref()
    }

    /// The answer is a stream: from here on the ticket ends with it (status 200, the head is sent).
    pub fn streaming(&mut self) {
        self.row.status = 200;
    }

    pub fn stream_failed(&mut self, kind: &str) {
        self.row.error_kind = Some(kind.to_owned());
    }

    pub fn first_byte(&mut self) {
        self.row.ttft_ms = Some(self.started.elapsed().as_secs_f64() * 1e3);
    }

    pub fn usage(&mut self, usage: &Usage, cost_usd: f64) {
        self.row.prompt_tokens = usage.prompt_tokens;
        self.row.completion_tokens = usage.completion_tokens;
        self.row.cost_usd = cost_usd;
        self.usage_known = true;
    }

    /// Ends the request with `status` (and the kind of error, if it failed).
    pub fn finish(mut self, status: u16, error: Option<&str>) {
        self.close(status, error);
    }

    fn close(&mut self, status: u16, error: Option<&str>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.row.status = status;
        if let Some(error) = error {
            self.row.error_kind = Some(error.to_owned());
        }
        self.row.latency_ms = self.started.elapsed().as_secs_f64() * 1e3;
        if let Some(reservation) = self.reservation.take() {
            // Unknown usage (a stream cut before its usage chunk) keeps what was reserved.
            if self.usage_known {
                reservation.settle(self.row.prompt_tokens + self.row.completion_tokens, self.row.cost_usd);
            } else if status >= 400 {
                reservation.settle(0, 0.0);
            }
        }
        if let Some(log) = &self.log {
            log.record(std::mem::take(&mut self.row));
        }
    }
}

impl Drop for Ticket {
    /// A stream that ended, or a request whose client went away before its answer (499, as nginx
    /// logs it).
    fn drop(&mut self) {
        let status = if self.row.status == 0 { 499 } else { self.row.status };
        self.close(status, None);
    }
}
