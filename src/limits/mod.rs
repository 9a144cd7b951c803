//! Rate limits and budgets. Requests and tokens per minute per virtual key, team, model and provider
//! are token buckets; budgets are ledgers of spend per key or team and period. A request draws from
//! all of its buckets and reserves its estimated cost in one step (all or nothing), and gives back
//! what it did not use once its usage is known, so concurrent requests cannot slip past a limit.
//! With `limits.redis_url` the counters live in Redis (atomic scripts), shared by every replica; if
//! Redis fails, this process's own counters take over until it is back.

mod bucket;
mod redis;
mod refusal;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;

use crate::config::LimitsConfig;
use crate::error::ApiError;
use crate::store::{Account, Limits, Store};
use crate::telemetry::LimitMetrics;
use bucket::{Buckets, Ledgers};
use redis::RedisCounters;
use refusal::{add_window, budget_exhausted, rate_limited};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Key,
    Team,
    Model,
    Provider,
}

impl Scope {
    pub fn label(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Team => "team",
            Self::Model => "model",
            Self::Provider => "provider",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Requests,
    Tokens,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
        }
    }
}

/// `amount` from the bucket named `bucket`, which holds `limit` per minute.
#[derive(Debug, Clone, PartialEq)]
pub struct Draw {
    pub scope: Scope,
    pub kind: Kind,
    pub bucket: String,
    pub limit: i64,
    pub amount: i64,
}

/// A draw that did not fit: which one, and when it would.
#[derive(Debug, Clone)]
pub struct Denied {
    pub index: usize,
    pub scope: Scope,
    pub kind: Kind,
    pub limit: i64,
    pub requested: i64,
    pub retry_after: Duration,
    /// The amount is larger than the whole limit: waiting will not help.
    pub never: bool,
}

impl Denied {
    fn new(index: usize, draw: &Draw, level: f64) -> Self {
        let missing = (draw.amount as f64 - level).max(0.0);
        Self {
            index,
            scope: draw.scope,
            kind: draw.kind,
            limit: draw.limit,
            requested: draw.amount,
            retry_after: Duration::from_secs_f64(missing * 60.0 / draw.limit.max(1) as f64),
            never: draw.amount > draw.limit,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("{0}")]
    Config(String),
    #[error("the limits store is unavailable: {0}")]
    Unavailable(String),
}

/// What one request is limited by: its caller's account and the model and provider it goes to.
pub struct Subject<'a> {
    pub account: Option<&'a Account>,
    pub model: &'a str,
    pub model_limits: (Option<i64>, Option<i64>),
    pub provider: &'a str,
    pub provider_limits: (Option<i64>, Option<i64>),
}

/// One `x-ratelimit-*` family: the tightest bucket of a kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub limit: i64,
    pub remaining: i64,
}

pub struct Limiter {
    local: Buckets,
    ledgers: Ledgers,
    redis: Option<RedisCounters>,
    store: Option<Arc<Store>>,
    key_rpm: Option<i64>,
    metrics: LimitMetrics,
}

/// What an admitted request holds until its usage is known: the tokens and spend it reserved.
pub struct Reservation {
    limiter: Arc<Limiter>,
    tokens: Vec<Draw>,
    /// (ledger, nano-USD reserved, this process's ledger)
    budgets: Vec<(String, i64, Arc<Mutex<i64>>)>,
    /// Whether the tokens, and the budgets, were counted in Redis (each may have fallen back to
    /// this process alone) — they are given back where they were taken.
    tokens_shared: bool,
    budgets_shared: bool,
    pub requests: Option<Window>,
    pub tokens_window: Option<Window>,
}

const NANOS_PER_USD: f64 = 1e9;

impl Limiter {
    pub fn new(config: &LimitsConfig, store: Option<Arc<Store>>, metrics: LimitMetrics) -> Result<Self, LimitError> {
        let redis = config
            .redis_url
            .as_ref()
            .and_then(|s| s.expose())
            .map(|url| RedisCounters::connect(url, &config.key_prefix, Duration::from_millis(config.timeout_ms)))
            .transpose()?;
        Ok(Self { local: Buckets::new(), ledgers: Ledgers::new(), redis, store, key_rpm: config.key_rpm, metrics })
    }

    /// For `/ready`: where the counters are kept.
    pub fn state(&self) -> &'static str {
        match &self.redis {
            None => "local",
            Some(redis) if redis.is_connected() => "redis",
            Some(_) => "redis_unavailable",
        }
    }

    /// The buckets `subject` draws from for a request estimated at `tokens`.
    fn draws(&self, subject: &Subject<'_>, tokens: i64) -> Vec<Draw> {
        let mut draws = Vec::new();
        let mut add = |scope: Scope, id: &str, (rpm, tpm): (Option<i64>, Option<i64>)| {
            if let Some(limit) = rpm {
                draws.push(Draw {
                    scope,
                    kind: Kind::Requests,
                    bucket: format!("rpm:{}:{id}", scope.label()),
                    limit,
                    amount: 1,
                });
            }
            if let Some(limit) = tpm {
                draws.push(Draw {
                    scope,
                    kind: Kind::Tokens,
                    bucket: format!("tpm:{}:{id}", scope.label()),
                    limit,
                    amount: tokens,
                });
            }
        };
        if let Some(account) = subject.account {
            let key = &account.key;
            add(Scope::Key, &key.id, (key.limits.rpm_limit.or(self.key_rpm), key.limits.tpm_limit));
            if let Some(team) = &account.team {
                add(Scope::Team, &team.id, (team.limits.rpm_limit, team.limits.tpm_limit));
            }
        }
        add(Scope::Model, subject.model, subject.model_limits);
        add(Scope::Provider, subject.provider, subject.provider_limits);
        draws
    }

    /// Admits a request estimated at `tokens` and `cost_usd`, or answers why not (429 with
    /// `retry-after` and `x-ratelimit-*`, 429 `insufficient_quota` for a spent budget).
    pub async fn admit(
        self: &Arc<Self>,
        subject: &Subject<'_>,
        tokens: u64,
        cost_usd: f64,
    ) -> Result<Reservation, ApiError> {
        let tokens = tokens.min(i64::MAX as u64) as i64;
        let draws = self.draws(subject, tokens);
        let (levels, shared) = if draws.is_empty() { (Vec::new(), false) } else { self.take(&draws).await? };
        let mut reservation = Reservation {
            limiter: self.clone(),
            requests: window(&draws, &levels, Kind::Requests),
            tokens_window: window(&draws, &levels, Kind::Tokens),
            tokens: draws.into_iter().filter(|d| d.kind == Kind::Tokens).collect(),
            budgets: Vec::new(),
            tokens_shared: shared,
            budgets_shared: false,
        };
        if let Some(account) = subject.account {
            let amount = (cost_usd.max(0.0) * NANOS_PER_USD).round() as i64;
            if let Err(error) = self.reserve(account, amount, &mut reservation).await {
                // Give the tokens back: the request is not going ahead.
                reservation.settle(0, 0.0);
                return Err(error);
            }
        }
        Ok(reservation)
    }

    async fn take(&self, draws: &[Draw]) -> Result<(Vec<i64>, bool), ApiError> {
        let (result, shared) = match &self.redis {
            Some(redis) => match redis.take(draws).await {
                Ok(result) => (result, true),
                Err(error) => {
                    self.metrics.backend_errors.inc();
                    tracing::warn!(%error, "rate limits fall back to this process's counters");
                    (self.local.take(draws), false)
                }
            },
            None => (self.local.take(draws), false),
        };
        match result {
            Ok(levels) => Ok((levels, shared)),
            Err(denied) => {
                self.metrics.rate_limited.with_label_values(&[denied.scope.label(), denied.kind.label()]).inc();
                Err(rate_limited(&denied, &draws[denied.index]))
            }
        }
    }

    /// Reserves `amount` nano-USD on the key's and the team's budgets for this period.
    async fn reserve(&self, account: &Account, amount: i64, reservation: &mut Reservation) -> Result<(), ApiError> {
        let now = crate::db::unix_now();
        let team = account.team.as_ref().map(|t| (Scope::Team, t.id.as_str(), &t.limits));
        let mut ledgers = Vec::new();
        for (scope, id, limits) in [(Scope::Key, account.key.id.as_str(), &account.key.limits)].into_iter().chain(team)
        {
            let Some(budget) = limits.budget_usd else { continue };
            let start = limits.budget_period.start(now);
            let name = format!("budget:{}:{id}:{start}", scope.label());
            // SQL is asked once per ledger and period; from then on the ledger counts.
            let ledger = self
                .ledgers
                .ledger(&name, self.spent(scope, id, start))
                .await
                .map_err(|e: Arc<ApiError>| (*e).clone())?;
            ledgers.push(Ledger {
                scope,
                name,
                budget: (budget * NANOS_PER_USD).round() as i64,
                keep_secs: keep_secs(limits, now),
                local: ledger,
            });
        }
        if ledgers.is_empty() {
            return Ok(());
        }
        let denied = match &self.redis {
            Some(redis) => {
                let args: Vec<_> = ledgers
                    .iter()
                    .map(|l| {
                        let spent = *l.local.lock().unwrap_or_else(|e| e.into_inner());
                        (l.name.clone(), l.budget, amount, spent, l.keep_secs)
                    })
                    .collect();
                match redis.reserve(&args).await {
                    Ok(result) => {
                        reservation.budgets_shared = true;
                        result.err().map(|(index, _)| index)
                    }
                    Err(error) => {
                        self.metrics.backend_errors.inc();
                        tracing::warn!(%error, "budgets fall back to this process's ledgers");
                        reserve_local(&ledgers, amount)
                    }
                }
            }
            None => reserve_local(&ledgers, amount),
        };
        if let Some(index) = denied {
            let scope = ledgers[index].scope;
            self.metrics.budget_rejected.with_label_values(&[scope.label()]).inc();
            return Err(budget_exhausted(scope));
        }
        reservation.budgets = ledgers.into_iter().map(|l| (l.name, amount, l.local)).collect();
        Ok(())
    }

    /// Spend in nano-USD the request log holds for a budget's period (0 without a store).
    async fn spent(&self, scope: Scope, id: &str, start: i64) -> Result<i64, ApiError> {
        let Some(store) = &self.store else { return Ok(0) };
        let usd = store.spend(id, scope == Scope::Team, start).await.map_err(ApiError::from)?;
        Ok((usd * NANOS_PER_USD).round() as i64)
    }
}

struct Ledger {
    scope: Scope,
    name: String,
    budget: i64,
    keep_secs: i64,
    local: Arc<Mutex<i64>>,
}

/// Reserves on this process's ledgers; the index of a budget that is short.
fn reserve_local(ledgers: &[Ledger], amount: i64) -> Option<usize> {
    let mut guards: Vec<_> = ledgers.iter().map(|l| l.local.lock().unwrap_or_else(|e| e.into_inner())).collect();
    for (index, (guard, ledger)) in guards.iter().zip(ledgers).enumerate() {
        if **guard + amount > ledger.budget {
            return Some(index);
        }
    }
    for guard in &mut guards {
        **guard += amount;
    }
    None
}

/// Seconds a budget ledger is kept in Redis: to the end of its period and a day more.
fn keep_secs(limits: &Limits, now: i64) -> i64 {
    let period = match limits.budget_period {
        crate::store::Period::Daily => 86_400,
        crate::store::Period::Weekly => 7 * 86_400,
        crate::store::Period::Monthly => 31 * 86_400,
        crate::store::Period::Total => 365 * 86_400,
    };
    (limits.budget_period.start(now) + period - now).max(60) + 86_400
}

fn window(draws: &[Draw], levels: &[i64], kind: Kind) -> Option<Window> {
    draws
        .iter()
        .zip(levels)
        .filter(|(d, _)| d.kind == kind)
        .map(|(d, &level)| Window { limit: d.limit, remaining: level.max(0) })
        .min_by_key(|w| w.remaining)
}

impl Reservation {
    /// Settles the reservation with what the request really used: unused tokens and spend go back,
    /// a request that used more than it reserved is charged the rest.
    pub fn settle(self, used_tokens: u64, cost_usd: f64) {
        let used = used_tokens.min(i64::MAX as u64) as i64;
        let refunds: Vec<(Draw, i64)> = self.tokens.iter().map(|d| (d.clone(), d.amount - used)).collect();
        let spent = (cost_usd.max(0.0) * NANOS_PER_USD).round() as i64;
        let budgets: Vec<(String, i64)> =
            self.budgets.iter().map(|(name, reserved, _)| (name.clone(), spent - reserved)).collect();
        if refunds.iter().all(|(_, r)| *r == 0) && budgets.iter().all(|(_, d)| *d == 0) {
            return;
        }
        let limiter = self.limiter.clone();
        if !self.tokens_shared {
            limiter.local.give_back(&refunds);
        }
        if !self.budgets_shared {
            for ((_, delta), (_, _, ledger)) in budgets.iter().zip(&self.budgets) {
                *ledger.lock().unwrap_or_else(|e| e.into_inner()) += delta;
            }
        }
        if !self.tokens_shared && !self.budgets_shared {
            return;
        }
        let (tokens_shared, budgets_shared) = (self.tokens_shared, self.budgets_shared);
        tokio::spawn(async move {
            let Some(redis) = &limiter.redis else { return };
            if tokens_shared
                && !refunds.is_empty()
                && let Err(error) = redis.give_back(&refunds).await
            {
                tracing::warn!(%error, "could not give unused tokens back to the shared limits");
            }
            for (name, delta) in budgets.into_iter().filter(|_| budgets_shared) {
                if let Err(error) = redis.adjust(&name, delta).await {
                    tracing::warn!(%error, "could not settle a budget reservation");
                }
            }
        });
    }

    /// The `x-ratelimit-*` headers of an admitted request.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        add_window(&mut headers, Kind::Requests, self.requests);
        add_window(&mut headers, Kind::Tokens, self.tokens_window);
        headers
    }
}
