//! The public model table: names and aliases to a provider, upstream model id and prices. `auto` is
//! the router's; until the learned router decides, it resolves to `routing.default`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::breaker::{Breaker, Breakers, Phase};
use crate::config::{Config, RetryConfig, TimeoutConfig, is_auto};
use crate::error::ApiError;
use crate::openai::Usage;
use crate::openai::models::{ModelList, ModelObject};
use crate::providers::{Provider, Registry};
use crate::telemetry::{Metrics, ModelMetrics};

pub struct Route {
    /// The public name (the key of `[models]`).
    pub model: Arc<str>,
    pub upstream: String,
    pub provider: Arc<dyn Provider>,
    pub prices: Prices,
    pub retry: RetryConfig,
    pub timeouts: TimeoutConfig,
    /// Public names tried in order when this model fails in a way that may pass.
    pub fallbacks: Arc<[String]>,
    /// The provider's circuit breaker (shared by its models) and this deployment's own.
    pub breakers: Breakers,
    pub metrics: ModelMetrics,
    pub limits: RouteLimits,
}

/// (requests, tokens) per minute of the model and of its provider, all callers together.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RouteLimits {
    pub model: (Option<i64>, Option<i64>),
    pub provider: (Option<i64>, Option<i64>),
}

/// USD per million tokens of one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub input: f64,
    /// Prompt tokens the provider read from its prompt cache.
    pub cached_input: f64,
    pub output: f64,
}

impl Route {
    pub fn cost_usd(&self, usage: &Usage) -> f64 {
        self.prices.cost_usd(usage)
    }
}

impl Prices {
    /// What an answer cost: prompt tokens read from the provider's cache at their own price.
    pub fn cost_usd(&self, usage: &Usage) -> f64 {
        let cached = usage.prompt_tokens_details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0);
        let cached = cached.min(usage.prompt_tokens);
        let fresh = usage.prompt_tokens - cached;
        (fresh as f64 * self.input + cached as f64 * self.cached_input + usage.completion_tokens as f64 * self.output)
            / 1e6
    }
}

pub struct RouteTable {
    by_name: HashMap<String, Arc<Route>>,
    /// One circuit breaker per provider.
    breakers: HashMap<String, Arc<Breaker>>,
    auto: Option<Arc<Route>>,
    /// `GET /v1/models`, rendered once.
    model_list: Bytes,
}

impl RouteTable {
    /// Builds the table from a validated config (every model's provider exists).
    pub fn new(config: &Config, providers: &Registry, metrics: &Metrics) -> Self {
        let mut by_name = HashMap::new();
        let mut listed = Vec::new();
        let mut breakers: HashMap<String, Arc<Breaker>> = HashMap::new();
        for (name, model) in &config.models {
            let Some(provider) = providers.get(&model.provider) else {
                continue;
            };
            let breaker = breakers
                .entry(model.provider.clone())
                .or_insert_with(|| {
                    let gauge = metrics.circuit_state.with_label_values(&[model.provider.as_str()]);
                    Arc::new(Breaker::new(config.breaker, gauge))
                })
                .clone();
            let route = Arc::new(Route {
                model: Arc::from(name.as_str()),
                upstream: model.upstream.clone().unwrap_or_else(|| name.clone()),
                provider: provider.clone(),
                retry: model.retry.unwrap_or(config.retry),
                timeouts: model.timeouts.unwrap_or(config.timeouts),
                fallbacks: model.fallbacks.clone().into(),
                breakers: Breakers {
                    provider: breaker,
                    deployment: Breaker::new(
                        config.breaker,
                        metrics.model_circuit_state.with_label_values(&[name.as_str()]),
                    ),
                },
                prices: Prices {
                    input: model.input_per_mtok,
                    cached_input: model.cached_input_per_mtok.unwrap_or(model.input_per_mtok),
                    output: model.output_per_mtok,
                },
                metrics: metrics.for_model(name, &model.provider),
                limits: RouteLimits {
                    model: (model.rpm_limit, model.tpm_limit),
                    provider: config
                        .providers
                        .get(&model.provider)
                        .map_or((None, None), |p| (p.rpm_limit, p.tpm_limit)),
                },
            });
            for public in std::iter::once(name).chain(&model.aliases) {
                by_name.insert(public.clone(), route.clone());
                listed.push(ModelObject {
                    id: public.clone(),
                    object: "model",
                    created: 0,
                    owned_by: model.provider.clone(),
                });
            }
        }
        let auto = config.routing.default.as_ref().and_then(|name| by_name.get(name)).cloned();
        if auto.is_some() {
            listed.push(ModelObject { id: "auto".into(), object: "model", created: 0, owned_by: "cherrypick".into() });
        }
        let model_list =
            serde_json::to_vec(&ModelList { object: "list", data: listed }).map(Bytes::from).unwrap_or_default();
        Self { by_name, breakers, auto, model_list }
    }

    /// Model deployments whose own circuit breaker is not closed, by public name.
    pub fn open_deployments(&self) -> std::collections::BTreeMap<&str, Phase> {
        self.by_name
            .values()
            .map(|route| (&*route.model, route.breakers.deployment.phase()))
            .filter(|(_, phase)| *phase != Phase::Closed)
            .collect()
    }

    /// A provider's circuit breaker, when a model uses the provider.
    pub fn breaker(&self, provider: &str) -> Option<&Breaker> {
        self.breakers.get(provider).map(|b| &**b)
    }

    pub fn resolve(&self, model: &str) -> Result<Arc<Route>, ApiError> {
        if let Some(route) = self.by_name.get(model) {
            return Ok(route.clone());
        }
        if is_auto(model) {
            return self.auto.clone().ok_or_else(|| ApiError::model_not_found(model).with_code("model_not_found"));
        }
        Err(ApiError::model_not_found(model))
    }

    pub fn model_list(&self) -> Bytes {
        self.model_list.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::usage::PromptTokensDetails;

    #[test]
    fn cached_prompt_tokens_cost_their_own_price() {
        let prices = Prices { input: 3.0, cached_input: 0.3, output: 15.0 };
        let mut usage = Usage { prompt_tokens: 1_000_000, completion_tokens: 100_000, ..Usage::default() };
        assert!((prices.cost_usd(&usage) - 4.5).abs() < 1e-9);
        usage.prompt_tokens_details =
            Some(PromptTokensDetails { cached_tokens: Some(800_000), extra: Default::default() });
        assert!((prices.cost_usd(&usage) - (0.6 + 0.24 + 1.5)).abs() < 1e-9);
        // A provider reporting more cached than prompt tokens cannot make the cost negative.
        usage.prompt_tokens_details =
            Some(PromptTokensDetails { cached_tokens: Some(2_000_000), extra: Default::default() });
        assert!((prices.cost_usd(&usage) - (0.3 + 1.5)).abs() < 1e-9);
    }
}
