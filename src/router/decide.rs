//! The router as the gateway sees it: a prompt and a policy in, a model name (or a step aside) out.
//! Loading happens in the background; until the worker is up every decision steps aside.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::RouterError;
use super::utility::{Estimate, Weights, best, utilities};
use super::worker::{Scored, WorkerHandle};
use crate::config::{Config, PolicyConfig, RouterConfig};
use crate::telemetry::RouterMetrics;

/// Per-request choices: `auto:NAME`, `x-cherrypick-cost-weight`, `x-cherrypick-candidates`.
#[derive(Debug, Default, Clone)]
pub struct Hints {
    pub cost_weight: Option<f64>,
    pub candidates: Option<Vec<String>>,
}

/// One routing question: the text to read, the prompt's estimated tokens (for cost), the policy's
/// name (for the route header) and weights (from [`Router::weights`]), and hints the caller
/// validated.
pub struct Ask<'a> {
    pub text: String,
    pub prompt_tokens: u64,
    pub policy: &'a str,
    pub weights: Weights,
    pub hints: &'a Hints,
}

/// The router's answer.
#[derive(Debug)]
pub enum Outcome {
    Routed(Decision),
    /// The request goes to `routing.default`; the reason is a metric label.
    SteppedAside(&'static str),
}

/// How many of the next best candidates an `auto` request may fall back to.
const MAX_ALTERNATIVES: usize = 3;

#[derive(Debug)]
pub struct Decision {
    /// The chosen public model name.
    pub model: Arc<str>,
    /// `x-cherrypick-route`: the policy and each candidate's utility, best first.
    pub summary: String,
    pub embedding: Arc<[f32]>,
    /// The next best candidates, best first: the fallbacks of an `auto` request.
    pub alternatives: Vec<Arc<str>>,
}

/// A configured candidate, once the selector's heads are known.
#[derive(Debug)]
pub struct Candidate {
    pub model: Arc<str>,
    pub head: usize,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// Cost per prompt from the training data, for a model without prices.
    pub mean_cost_usd: f64,
    pub output_tokens: f64,
}

impl Candidate {
    fn cost(&self, prompt_tokens: u64) -> f64 {
        if self.input_per_mtok > 0.0 || self.output_per_mtok > 0.0 {
            (prompt_tokens as f64 * self.input_per_mtok + self.output_tokens * self.output_per_mtok) / 1e6
        } else {
            self.mean_cost_usd
        }
    }
}

/// A loaded router.
pub struct Ready {
    pub worker: WorkerHandle,
    pub candidates: Vec<Candidate>,
}

pub struct Router {
    ready: OnceLock<Ready>,
    /// Why loading failed, for `/ready`.
    failed: OnceLock<String>,
    policies: HashMap<String, Weights>,
    default_policy: String,
    timeout: Duration,
    pub max_tokens: usize,
    /// Recent seconds per call per public model (exponentially weighted), for the latency term.
    latency: HashMap<String, AtomicU64>,
    metrics: RouterMetrics,
}

pub enum State<'a> {
    Loading,
    Ready,
    Failed(&'a str),
}

impl Router {
    pub fn new(config: &Config, metrics: RouterMetrics) -> Self {
        let router = &config.router;
        let weights = |p: &PolicyConfig| Weights { cost: p.cost_weight, latency: p.latency_weight };
        Self {
            ready: OnceLock::new(),
            failed: OnceLock::new(),
            policies: router.all_policies().iter().map(|(k, v)| (k.clone(), weights(v))).collect(),
            default_policy: router.default_policy.clone(),
            timeout: Duration::from_millis(router.timeout_ms),
            max_tokens: router.max_tokens,
            latency: config.models.keys().map(|k| (k.clone(), AtomicU64::new(0))).collect(),
            metrics,
        }
    }

    pub fn set_ready(&self, ready: Ready) {
        let _ = self.ready.set(ready);
    }

    pub fn set_failed(&self, why: String) {
        let _ = self.failed.set(why);
    }

    pub fn state(&self) -> State<'_> {
        match (self.ready.get(), self.failed.get()) {
            (Some(_), _) => State::Ready,
            (None, Some(why)) => State::Failed(why),
            (None, None) => State::Loading,
        }
    }

    /// Whether `auto:NAME` names a policy (`None`: plain `auto`).
    pub fn weights(&self, policy: Option<&str>) -> Option<Weights> {
        self.policies.get(policy.unwrap_or(&self.default_policy)).copied()
    }

    /// Records how long a call to `model` took.
    pub fn observe_latency(&self, model: &str, seconds: f64) {
        let Some(slot) = self.latency.get(model) else { return };
        let old = f64::from_bits(slot.load(Ordering::Relaxed));
        let new = if old == 0.0 { seconds } else { 0.9 * old + 0.1 * seconds };
        slot.store(new.to_bits(), Ordering::Relaxed);
    }

    fn latency_of(&self, model: &str) -> f64 {
        self.latency.get(model).map_or(0.0, |slot| f64::from_bits(slot.load(Ordering::Relaxed)))
    }

    /// The embedding of `text` alone (the semantic cache's, for a request the router does not
    /// route); `None` when the encoder is not up, busy or slow: the caller goes on without it.
    pub async fn embed(&self, text: String) -> Option<Arc<[f32]>> {
        let receiver = self.ready.get()?.worker.submit(text).ok()?;
        match tokio::time::timeout(self.timeout, receiver).await {
            Ok(Ok(Ok(scored))) => Some(scored.embedding),
            _ => None,
        }
    }

    /// Chooses a model for `text`. `weights` comes from [`Router::weights`]; `hints` were validated
    /// by the caller. Never fails: anything that goes wrong steps aside.
    pub async fn decide(&self, ask: Ask<'_>) -> Outcome {
        let started = Instant::now();
        let outcome = self.decide_inner(ask).await;
        match &outcome {
            Outcome::Routed(decision) => {
                self.metrics.decision_seconds.observe(started.elapsed().as_secs_f64());
                self.metrics.decisions.with_label_values(&[&decision.model]).inc();
            }
            Outcome::SteppedAside(reason) => self.metrics.step_asides.with_label_values(&[reason]).inc(),
        }
        outcome
    }

    async fn decide_inner(&self, Ask { text, prompt_tokens, policy, weights, hints }: Ask<'_>) -> Outcome {
        let Some(ready) = self.ready.get() else {
            return Outcome::SteppedAside(if self.failed.get().is_some() { "unavailable" } else { "loading" });
        };
        let receiver = match ready.worker.submit(text) {
            Ok(receiver) => receiver,
            Err(RouterError::Overloaded) => return Outcome::SteppedAside("overloaded"),
            Err(_) => return Outcome::SteppedAside("error"),
        };
        let scored = match tokio::time::timeout(self.timeout, receiver).await {
            Ok(Ok(Ok(scored))) => scored,
            Ok(Ok(Err(_)) | Err(_)) => return Outcome::SteppedAside("error"),
            Err(_) => return Outcome::SteppedAside("timeout"),
        };
        let weights = Weights { cost: hints.cost_weight.unwrap_or(weights.cost), ..weights };
        let allowed: Vec<&Candidate> = ready
            .candidates
            .iter()
            .filter(|c| hints.candidates.as_ref().is_none_or(|names| names.iter().any(|n| **n == *c.model)))
            .collect();
        match self.pick(&allowed, &scored, prompt_tokens, policy, weights) {
            Some(decision) => Outcome::Routed(decision),
            None => Outcome::SteppedAside("no_candidate"),
        }
    }

    fn pick(
        &self,
        allowed: &[&Candidate],
        scored: &Scored,
        prompt_tokens: u64,
        policy: &str,
        weights: Weights,
    ) -> Option<Decision> {
        let estimates: Vec<Estimate> = allowed
            .iter()
            .map(|c| Estimate {
                quality: f64::from(scored.qualities.get(c.head).copied().unwrap_or(0.0)),
                cost: c.cost(prompt_tokens),
                latency: self.latency_of(&c.model),
            })
            .collect();
        let u = utilities(&estimates, weights);
        let best = best(&estimates, &u)?;
        let mut order: Vec<usize> = (0..allowed.len()).collect();
        order.sort_by(|&a, &b| u[b].total_cmp(&u[a]));
        let mut summary = format!("policy={policy}; cost_weight={}", weights.cost);
        for &i in order.iter().take(5) {
            let _ = write!(summary, "; {}={:.3}", allowed[i].model, u[i]);
        }
        let alternatives =
            order.iter().filter(|&&i| i != best).take(MAX_ALTERNATIVES).map(|&i| allowed[i].model.clone()).collect();
        Some(Decision {
            model: allowed[best].model.clone(),
            summary,
            embedding: scored.embedding.clone(),
            alternatives,
        })
    }
}

/// The candidates of a config against a selector's heads: `router.candidates` (or every model with
/// a head), each mapped to its head through `router.heads` or its own name.
pub fn candidates(
    config: &Config,
    heads: &[String],
    mean_cost: &[f64],
    output_tokens: &[Option<f64>],
) -> Result<Vec<Candidate>, RouterError> {
    let router: &RouterConfig = &config.router;
    fn head_of<'a>(router: &'a RouterConfig, model: &'a str) -> &'a str {
        router.heads.get(model).map_or(model, String::as_str)
    }
    let names: Vec<&String> = if router.candidates.is_empty() {
        config.models.keys().filter(|m| heads.iter().any(|h| h == head_of(router, m))).collect()
    } else {
        router.candidates.iter().collect()
    };
    let mut out = Vec::new();
    for name in names {
        let head_name = head_of(router, name);
        let head = heads.iter().position(|h| h == head_name).ok_or_else(|| {
            RouterError::Load(format!(
                "candidate `{name}`: the selector has no head `{head_name}` (map it with [router.heads])"
            ))
        })?;
        let model = &config.models[name];
        out.push(Candidate {
            model: Arc::from(name.as_str()),
            head,
            input_per_mtok: model.input_per_mtok,
            output_per_mtok: model.output_per_mtok,
            mean_cost_usd: mean_cost[head],
            output_tokens: output_tokens[head].unwrap_or(router.default_output_tokens),
        });
    }
    if out.is_empty() {
        return Err(RouterError::Load("no candidate model has a selector head".into()));
    }
    Ok(out)
}
