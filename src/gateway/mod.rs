//! The pipeline for one request: resolve the model, call its provider, account for the answer.
//! Nothing else calls providers.

mod metered;
mod routes;
mod routing;
mod validate;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;

pub use routes::{Route, RouteTable};
pub use routing::Routed;

use crate::config::Config;
use crate::error::ApiError;
use crate::openai::{ChatCompletionRequest, CompletionRequest, EmbeddingsRequest, Usage};
use crate::providers::{ChunkStream, ProviderError, Registry, Reply};
use crate::router::{Hints, Router, prompt};
use crate::telemetry::Metrics;
use metered::Metered;

/// What the gateway answers: a whole JSON body, or a stream whose first chunk has already arrived
/// (so a failing upstream is still a plain JSON error).
pub enum Answer {
    Json { route: Routed, body: Bytes },
    Stream { route: Routed, first: Bytes, rest: ChunkStream },
}

impl Answer {
    pub fn routed(&self) -> &Routed {
        match self {
            Answer::Json { route, .. } | Answer::Stream { route, .. } => route,
        }
    }
}

pub struct Gateway {
    routes: RouteTable,
    providers: Registry,
    router: Option<Arc<Router>>,
    metrics: Arc<Metrics>,
}

impl Gateway {
    /// Builds the gateway; with `[router]` enabled the router starts loading in the background
    /// (must be called inside a tokio runtime).
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<Self, reqwest::Error> {
        let providers = Registry::from_config(config)?;
        let routes = RouteTable::new(config, &providers, &metrics);
        let router = crate::router::start(config, metrics.router.clone());
        Ok(Self { routes, providers, router, metrics })
    }

    pub fn router(&self) -> Option<&Router> {
        self.router.as_deref()
    }

    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    pub fn providers(&self) -> &Registry {
        &self.providers
    }

    pub async fn chat(&self, mut request: ChatCompletionRequest, hints: &Hints) -> Result<Answer, ApiError> {
        validate::chat(&request)?;
        let route = self.route(&request.model, hints, |max| prompt::chat_text(&request, max)).await?;
        request.model.clone_from(&route.upstream);
        let started = Instant::now();
        let reply = route.provider.chat(&request).await;
        self.answer(route, reply, started).await
    }

    pub async fn completion(&self, mut request: CompletionRequest, hints: &Hints) -> Result<Answer, ApiError> {
        validate::completion(&request)?;
        let route = self.route(&request.model, hints, |max| prompt::completion_text(&request, max)).await?;
        request.model.clone_from(&route.upstream);
        let started = Instant::now();
        let reply = route.provider.completion(&request).await;
        self.answer(route, reply, started).await
    }

    pub async fn embeddings(&self, mut request: EmbeddingsRequest) -> Result<Answer, ApiError> {
        validate::embeddings(&request)?;
        let route = Routed::direct(self.routes.resolve(&request.model)?);
        request.model.clone_from(&route.upstream);
        let started = Instant::now();
        let reply = route.provider.embeddings(&request).await.map(Reply::Json);
        self.answer(route, reply, started).await
    }

    async fn answer(
        &self,
        routed: Routed,
        reply: Result<Reply, ProviderError>,
        started: Instant,
    ) -> Result<Answer, ApiError> {
        let route = routed.route.clone();
        let reply = reply.map_err(|e| self.upstream_failed(&route, e))?;
        match reply {
            Reply::Json(json) => {
                let seconds = started.elapsed().as_secs_f64();
                route.metrics.latency.observe(seconds);
                self.observe_latency(&route, seconds);
                record_usage(&route, json.usage.as_ref());
                Ok(Answer::Json { route: routed, body: json.body })
            }
            Reply::Stream(mut stream) => match stream.next().await {
                Some(Ok(first)) => {
                    let seconds = started.elapsed().as_secs_f64();
                    route.metrics.time_to_first_token.observe(seconds);
                    self.observe_latency(&route, seconds);
                    let usage = Usage::find_in(&first);
                    let rest = Metered::new(stream, route.clone(), started, usage, self.metrics.clone());
                    Ok(Answer::Stream { route: routed, first, rest: Box::pin(rest) })
                }
                Some(Err(e)) => Err(self.upstream_failed(&route, e)),
                None => Err(self.upstream_failed(
                    &route,
                    ProviderError::invalid_response(route.provider.name(), "the stream ended before its first chunk"),
                )),
            },
        }
    }

    /// Feeds the router's latency term: time to the answer, or to the first chunk of a stream.
    fn observe_latency(&self, route: &Route, seconds: f64) {
        if let Some(router) = &self.router {
            router.observe_latency(&route.model, seconds);
        }
    }

    fn upstream_failed(&self, route: &Route, error: ProviderError) -> ApiError {
        self.metrics.upstream_errors.with_label_values(&[route.provider.name(), error.kind_label()]).inc();
        tracing::warn!(model = %route.model, provider = route.provider.name(), error = %error, "upstream call failed");
        error.into()
    }
}

/// Tokens and spend of one answer, from its usage and the route's prices.
fn record_usage(route: &Route, usage: Option<&Usage>) {
    let Some(usage) = usage else { return };
    let metrics = &route.metrics;
    metrics.prompt_tokens.inc_by(usage.prompt_tokens);
    metrics.completion_tokens.inc_by(usage.completion_tokens);
    let cost = route.cost_usd(usage);
    if cost > 0.0 {
        metrics.cost_usd.inc_by(cost);
    }
}
