//! The pipeline for one request: look in the cache, resolve the model, call its provider, account
//! for the answer and store it. Nothing else calls providers.

mod breaker;
mod cached;
mod deadline;
mod metered;
mod retry;
mod routes;
mod routing;
mod ticket;
mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;

pub use breaker::Phase;
pub use cached::{Replay, RequestContext, SEMANTIC_MAX_CHARS};
pub use routes::{Route, RouteLimits, RouteTable};
pub use routing::Routed;
pub use ticket::Ticket;

use crate::config::Config;
use crate::error::ApiError;
use crate::limits::{Limiter, Subject};
use crate::memory::{Memory, Source};
use crate::openai::{ChatCompletionRequest, CompletionRequest, EmbeddingsRequest, Usage};
use crate::providers::{ChunkStream, ProviderError, Registry, Reply};
use crate::router::{Router, prompt};
use crate::store::Store;
use crate::telemetry::Metrics;
use deadline::Deadline;
use metered::Metered;
use retry::{Answered, with_retries};

/// What the gateway answers: a whole JSON body, or a stream whose first chunk has already arrived
/// (so a failing upstream is still a plain JSON error).
/// `cache` is the `x-cherrypick-cache` value of an answer from a provider: `miss`, `bypass` (the
/// request was not cacheable or said `no-store`), or none when the cache is off.
pub enum Answer {
    Json {
        route: Routed,
        body: Bytes,
        cache: Option<&'static str>,
    },
    Stream {
        route: Routed,
        first: Bytes,
        rest: ChunkStream,
        cache: Option<&'static str>,
    },
    /// From the cache: no provider was called.
    Cached {
        source: Source,
        model: String,
        provider: String,
        reply: Replay,
    },
}

/// How much prompt a request-log row keeps (system prompt and last user message, in tokens of
/// about 4 characters), with `request_log.log_prompts` on.
const LOGGED_PROMPT_TOKENS: usize = 8192;

pub struct Gateway {
    routes: RouteTable,
    providers: Registry,
    router: Option<Arc<Router>>,
    memory: Option<Arc<Memory>>,
    limiter: Arc<Limiter>,
    default_completion_tokens: u64,
    metrics: Arc<Metrics>,
}

impl Gateway {
    /// Builds the gateway; with `[router]` enabled the router starts loading in the background
    /// (must be called inside a tokio runtime).
    pub fn new(config: &Config, metrics: Arc<Metrics>, store: Option<Arc<Store>>) -> Result<Self, GatewayError> {
        let providers = Registry::from_config(config)?;
        let routes = RouteTable::new(config, &providers, &metrics);
        let router = crate::router::start(config, metrics.router.clone());
        let memory = if config.cache.enabled {
            Some(Arc::new(Memory::new(&config.cache, &config.router.encoder, metrics.cache.clone())?))
        } else {
            None
        };
        let limiter = Arc::new(Limiter::new(&config.limits, store, metrics.limits.clone())?);
        let default_completion_tokens = config.limits.default_completion_tokens;
        Ok(Self { routes, providers, router, memory, limiter, default_completion_tokens, metrics })
    }

    pub fn memory(&self) -> Option<&Memory> {
        self.memory.as_deref()
    }

    pub fn router(&self) -> Option<&Router> {
        self.router.as_deref()
    }

    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    pub fn providers(&self) -> &Registry {
        &self.providers
    }

    pub async fn chat(&self, mut request: ChatCompletionRequest, ctx: &mut RequestContext) -> Result<Answer, ApiError> {
        ctx.ticket(|t| t.requested(&request.model));
        validate::chat(&request)?;
        allowed(ctx, &request.model)?;
        ctx.ticket(|t| t.prompt(|| prompt::chat_text(&request, LOGGED_PROMPT_TOKENS).0));
        let (stream, include_usage) = (request.is_stream(), request.wants_stream_usage());
        let mut plan = self.chat_plan(&request, ctx)?;
        if let Some(plan) = &plan
            && let Some(hit) = plan.exact_hit().await
        {
            plan.count(hit.source.header());
            ctx.ticket(|t| t.cache(hit.source.header()));
            return cached::replayed(hit, stream, include_usage);
        }
        if let Some(plan) = &mut plan {
            plan.semantic = self.semantic_question(plan, &request, &ctx.tenant);
        }
        let route = self.route(&request.model, &ctx.hints, |max| prompt::chat_text(&request, max)).await?;
        if let Some(plan) = &mut plan {
            plan.embedding = plan.semantic.as_ref().and(route.embedding.clone());
            if let Some(hit) = self.semantic_hit(plan).await {
                plan.count(hit.source.header());
                ctx.ticket(|t| t.cache(hit.source.header()));
                return cached::replayed(hit, stream, include_usage);
            }
        }
        let completion = request.max_completion_tokens.or(request.max_tokens).map(u64::from);
        let completion =
            completion.unwrap_or(self.default_completion_tokens) * u64::from(request.n.unwrap_or(1).max(1));
        self.admit(&route, ctx, prompt::chat_prompt_tokens(&request), completion).await?;
        if stream {
            // Usage is always asked for: spend is accounted (and a stored stream can be replayed
            // with it); the usage chunk is hidden again from a client that did not ask.
            request.stream_options = cached::with_usage(request.stream_options.take());
        }
        self.count_miss(plan.as_ref());
        let started = Instant::now();
        let (route, reply) =
            self.call_chain(route, &mut request, |r| &mut r.model, |route, request| route.provider.chat(request)).await;
        let answer = self.answer(route, reply, started, self.cache_status(plan.as_ref()), ctx)?;
        let Some(plan) = plan else { return Ok(cached::hide_usage(answer, !include_usage)) };
        Ok(match answer {
            Answer::Json { route, body, cache } => {
                plan.store_json(&route.model, route.provider.name(), body.clone());
                Answer::Json { route, body, cache }
            }
            Answer::Stream { route, first, rest, cache } => {
                let hide_usage = !include_usage;
                let rest = plan.record_stream(&route.model, route.provider.name(), &first, rest, hide_usage);
                Answer::Stream { route, first, rest, cache }
            }
            cached @ Answer::Cached { .. } => cached,
        })
    }

    pub async fn completion(
        &self,
        mut request: CompletionRequest,
        ctx: &mut RequestContext,
    ) -> Result<Answer, ApiError> {
        ctx.ticket(|t| t.requested(&request.model));
        validate::completion(&request)?;
        allowed(ctx, &request.model)?;
        let route = self.route(&request.model, &ctx.hints, |max| prompt::completion_text(&request, max)).await?;
        let (_, prompt_tokens) = prompt::completion_text(&request, 0);
        let completion = request.max_tokens.map_or(self.default_completion_tokens, u64::from);
        self.admit(&route, ctx, prompt_tokens, completion).await?;
        let started = Instant::now();
        let (route, reply) = self
            .call_chain(route, &mut request, |r| &mut r.model, |route, request| route.provider.completion(request))
            .await;
        self.answer(route, reply, started, None, ctx)
    }

    pub async fn embeddings(
        &self,
        mut request: EmbeddingsRequest,
        ctx: &mut RequestContext,
    ) -> Result<Answer, ApiError> {
        ctx.ticket(|t| t.requested(&request.model));
        validate::embeddings(&request)?;
        allowed(ctx, &request.model)?;
        let plan = self.embeddings_plan(&request, ctx)?;
        if let Some(plan) = &plan
            && let Some(hit) = plan.exact_hit().await
        {
            plan.count(hit.source.header());
            ctx.ticket(|t| t.cache(hit.source.header()));
            return cached::replayed(hit, false, false);
        }
        self.count_miss(plan.as_ref());
        let route = Routed::direct(self.routes.resolve(&request.model)?);
        self.admit(&route, ctx, request.input_tokens_estimate(), 0).await?;
        let started = Instant::now();
        let (route, reply) = self
            .call_chain(
                route,
                &mut request,
                |r| &mut r.model,
                |route, request| Box::pin(async move { route.provider.embeddings(request).await.map(Reply::Json) }),
            )
            .await;
        let answer = self.answer(route, reply, started, self.cache_status(plan.as_ref()), ctx)?;
        if let (Some(plan), Answer::Json { route, body, .. }) = (plan, &answer) {
            plan.store_json(&route.model, route.provider.name(), body.clone());
        }
        Ok(answer)
    }

    fn answer(
        &self,
        routed: Routed,
        reply: Result<Answered, ProviderError>,
        started: Instant,
        cache: Option<&'static str>,
        ctx: &mut RequestContext,
    ) -> Result<Answer, ApiError> {
        let route = routed.route.clone();
        ctx.ticket(|t| {
            t.routed(&route, routed.summary.clone());
            if let Some(cache) = cache {
                t.cache(cache);
            }
        });
        let reply = reply.map_err(|e| self.upstream_failed(&route, e))?;
        match reply {
            Answered::Json(json) => {
                let seconds = started.elapsed().as_secs_f64();
                route.metrics.latency.observe(seconds);
                self.observe_latency(&route, seconds);
                if let Some(usage) = json.usage.as_ref() {
                    let cost = record_usage(&route, usage);
                    ctx.ticket(|t| t.usage(usage, cost));
                }
                Ok(Answer::Json { route: routed, body: json.body, cache })
            }
            Answered::Stream { first, rest } => {
                let seconds = started.elapsed().as_secs_f64();
                route.metrics.time_to_first_token.observe(seconds);
                self.observe_latency(&route, seconds);
                let usage = Usage::find_in(&first);
                let deadline =
                    tokio::time::Instant::from_std(started) + Duration::from_secs_f64(route.timeouts.total_secs);
                let rest = Box::pin(Deadline::new(rest, deadline, route.provider.name()));
                let mut ticket = ctx.ticket.take();
                if let Some(ticket) = &mut ticket {
                    ticket.first_byte();
                    ticket.streaming();
                }
                let rest = Metered::new(rest, route.clone(), started, usage, self.metrics.clone(), ticket);
                Ok(Answer::Stream { route: routed, first, rest: Box::pin(rest), cache })
            }
        }
    }

    /// Calls `route` with its retries, then the requested model's fallbacks in order while the call
    /// fails in a way another model may not; `model` is the request's model field, set to each
    /// route's upstream id before it is called. The route that answered (or failed last) comes back.
    async fn call_chain<R>(
        &self,
        mut route: Routed,
        request: &mut R,
        model: fn(&mut R) -> &mut String,
        call: impl for<'a> Fn(&'a Route, &'a R) -> BoxFuture<'a, Result<Reply, ProviderError>>,
    ) -> (Routed, Result<Answered, ProviderError>) {
        let (fallbacks, mut tried) = (route.fallbacks(), 0);
        loop {
            model(request).clone_from(&route.upstream);
            let reply = with_retries(
                route.provider.name(),
                &route.breakers,
                &route.retry,
                Duration::from_secs_f64(route.timeouts.first_byte_secs),
                || call(&route, &*request),
                |error| self.retried(&route, error),
            )
            .await;
            match self.fallback(&route, &fallbacks, &mut tried, &reply) {
                Some(next) => route = next,
                None => return (route, reply),
            }
        }
    }

    /// The next untried model of the requested model's `fallbacks`, when `reply` failed in a
    /// way another model may not (connection, timeout, 429, 5xx). The failure is counted here, as
    /// the client never sees it.
    fn fallback(
        &self,
        route: &Routed,
        fallbacks: &[String],
        tried: &mut usize,
        reply: &Result<Answered, ProviderError>,
    ) -> Option<Routed> {
        let Err(error) = reply else { return None };
        if !(error.is_retryable() || matches!(error, ProviderError::CircuitOpen { .. })) {
            return None;
        }
        let next = self.routes.resolve(fallbacks.get(*tried)?).ok()?;
        *tried += 1;
        self.metrics.upstream_errors.with_label_values(&[route.provider.name(), error.kind_label()]).inc();
        tracing::warn!(model = %route.model, fallback = %next.model, error = %error, "upstream call failed; falling back");
        // The answer's route header keeps the router's reasoning and says where it fell from.
        let summary = route.summary.as_ref().map(|s| format!("{s}; fell_back_from={}", route.model));
        Some(Routed { summary, ..Routed::direct(next) })
    }

    /// Draws the request from its limits and reserves its estimated cost on its budgets; the
    /// reservation rides on the ticket until the usage is known.
    async fn admit(
        &self,
        route: &Route,
        ctx: &mut RequestContext,
        prompt: u64,
        completion: u64,
    ) -> Result<(), ApiError> {
        let provider = route.provider.name();
        let subject = Subject {
            account: ctx.account.as_deref(),
            model: &route.model,
            model_limits: route.limits.model,
            provider,
            provider_limits: route.limits.provider,
        };
        let usage = Usage { prompt_tokens: prompt, completion_tokens: completion, ..Usage::default() };
        let reservation = self.limiter.admit(&subject, prompt + completion, route.cost_usd(&usage)).await?;
        let headers = reservation.headers();
        if !headers.is_empty() {
            ctx.rate_headers = Some(headers);
        }
        ctx.ticket(|t| t.reserved(reservation));
        Ok(())
    }

    /// Counts a retry of a failed upstream call.
    fn retried(&self, route: &Route, error: &ProviderError) {
        self.metrics.upstream_retries.with_label_values(&[route.provider.name(), error.kind_label()]).inc();
        tracing::debug!(model = %route.model, provider = route.provider.name(), error = %error, "retrying upstream call");
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

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("cache: {0}")]
    Memory(#[from] crate::memory::MemoryError),
    #[error("limits: {0}")]
    Limits(#[from] crate::limits::LimitError),
}

/// Tokens and spend of one answer, from its usage and the route's prices; returns the spend.
fn record_usage(route: &Route, usage: &Usage) -> f64 {
    let metrics = &route.metrics;
    metrics.prompt_tokens.inc_by(usage.prompt_tokens);
    metrics.completion_tokens.inc_by(usage.completion_tokens);
    let cost = route.cost_usd(usage);
    if cost > 0.0 {
        metrics.cost_usd.inc_by(cost);
    }
    cost
}

/// Refuses a model the request's virtual key may not use.
fn allowed(ctx: &RequestContext, model: &str) -> Result<(), ApiError> {
    match &ctx.account {
        Some(account) if !account.allows_model(model) => Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "invalid_request_error",
            format!("this API key may not use the model `{model}`"),
        )
        .with_param("model")
        .with_code("model_not_allowed")),
        _ => Ok(()),
    }
}
