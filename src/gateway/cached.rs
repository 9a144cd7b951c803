//! The cache's part of a request: which keys it has, whether it may be answered from memory or
//! stored, replaying a stored answer, and recording a new one (a stream only once it completed).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::Ticket;
use super::{Answer, Gateway};
use crate::config::{CacheMode, is_auto};
use crate::error::ApiError;
use crate::memory::key::{chat_key, chat_question, embeddings_key};
use crate::memory::{Body, Controls, Entry, Hit, Key, Memory, Scope, replay};
use crate::openai::chat::StreamOptions;
use crate::openai::{ChatCompletionRequest, EmbeddingsRequest};
use crate::providers::{ChunkStream, ProviderError};
use crate::router::Hints;
use crate::store::Account;

/// Who is asking and how: the routing hints, the caller's tenant and the cache controls.
#[derive(Default)]
pub struct RequestContext {
    pub hints: Hints,
    /// A digest of the caller's key (`memory::key::tenant_of`).
    pub tenant: String,
    pub cache: Controls,
    /// The virtual key the request came with (none for the master key or an open gateway).
    pub account: Option<Arc<Account>>,
    /// Limits, budget and request log of this request; taken by a stream that carries it on.
    pub ticket: Option<Ticket>,
    /// `x-ratelimit-*` of the limits the request was admitted under.
    pub rate_headers: Option<axum::http::HeaderMap>,
}

impl RequestContext {
    pub fn new(hints: Hints, tenant: String, cache: Controls) -> Self {
        Self { hints, tenant, cache, account: None, ticket: None, rate_headers: None }
    }

    pub(super) fn ticket(&mut self, f: impl FnOnce(&mut Ticket)) {
        if let Some(ticket) = &mut self.ticket {
            f(ticket);
        }
    }
}

/// Longest last user message the semantic cache compares (about 250 tokens): the encoder reads
/// 256 tokens, and two long prompts that differ only past that point must not look the same.
pub const SEMANTIC_MAX_CHARS: usize = 1000;

/// What the cache does for one request.
pub struct Plan {
    memory: Arc<Memory>,
    pub exact: Key,
    /// The cache's answer space (see `cache_target`); the semantic partition is derived from it.
    target: String,
    /// The semantic partition, question text, and (once computed) its embedding.
    pub semantic: Option<(Key, String)>,
    pub embedding: Option<Arc<[f32]>>,
    /// `false` after `Cache-Control: no-cache`: answer fresh, but still store.
    pub lookup: bool,
    ttl: Option<Duration>,
}

impl Gateway {
    /// The `x-cherrypick-cache` value of an answer that did not come from the cache: `miss` after
    /// a lookup, `bypass` when the request was not looked up, none when the cache is off.
    pub(super) fn cache_status(&self, plan: Option<&Plan>) -> Option<&'static str> {
        self.memory.as_ref()?;
        Some(if plan.is_some_and(|p| p.lookup) { "miss" } else { "bypass" })
    }

    /// Counts a request the cache looked up and missed, or did not look up.
    pub(super) fn count_miss(&self, plan: Option<&Plan>) {
        if let (Some(memory), Some(status)) = (&self.memory, self.cache_status(plan)) {
            memory.metrics().requests.with_label_values(&[status]).inc();
        }
    }

    /// The answer space of a request: a model's public name (aliases share it), or the routing
    /// policy together with the hints that steer it.
    fn cache_target(&self, model: &str, hints: &Hints) -> Result<String, ApiError> {
        if is_auto(model) {
            return Ok(format!("{model}|{:?}|{:?}", hints.cost_weight, hints.candidates));
        }
        Ok(self.routes.resolve(model)?.model.to_string())
    }

    /// Whether the request may touch the cache at all (the mode, the model's setting and
    /// `no-store`), and if so whether it may be answered from it.
    fn lookup_allowed(&self, memory: &Memory, target: &str, deterministic: bool, controls: Controls) -> Option<bool> {
        let config = memory.config();
        let mode_allows = deterministic || config.mode == CacheMode::All;
        if !mode_allows || !config.model_enabled(target) || controls.no_store {
            return None;
        }
        Some(!controls.skip_lookup)
    }

    pub(super) fn chat_plan(
        &self,
        request: &ChatCompletionRequest,
        ctx: &RequestContext,
    ) -> Result<Option<Plan>, ApiError> {
        let Some(memory) = &self.memory else { return Ok(None) };
        let target = self.cache_target(&request.model, &ctx.hints)?;
        let Some(lookup) = self.lookup_allowed(memory, &target, request.is_deterministic(), ctx.cache) else {
            return Ok(None);
        };
        let exact = chat_key(&Scope { tenant: &ctx.tenant, target: &target }, request);
        Ok(Some(Plan {
            memory: memory.clone(),
            exact,
            target,
            semantic: None,
            embedding: None,
            lookup,
            ttl: ctx.cache.ttl,
        }))
    }

    pub(super) fn embeddings_plan(
        &self,
        request: &EmbeddingsRequest,
        ctx: &RequestContext,
    ) -> Result<Option<Plan>, ApiError> {
        let Some(memory) = &self.memory else { return Ok(None) };
        let target = self.cache_target(&request.model, &ctx.hints)?;
        // Embeddings are deterministic.
        let Some(lookup) = self.lookup_allowed(memory, &target, true, ctx.cache) else { return Ok(None) };
        let exact = embeddings_key(&Scope { tenant: &ctx.tenant, target: &target }, request);
        Ok(Some(Plan {
            memory: memory.clone(),
            exact,
            target,
            semantic: None,
            embedding: None,
            lookup,
            ttl: ctx.cache.ttl,
        }))
    }

    /// The semantic partition and question of a request whose exact key missed, when the
    /// semantic cache applies to it.
    pub(super) fn semantic_question(
        &self,
        plan: &Plan,
        request: &ChatCompletionRequest,
        tenant: &str,
    ) -> Option<(Key, String)> {
        if !plan.memory.semantic_enabled() || self.router.is_none() {
            return None;
        }
        let question = chat_question(&Scope { tenant, target: &plan.target }, request)?;
        Some(question).filter(|(_, text)| !text.is_empty() && text.len() <= SEMANTIC_MAX_CHARS)
    }

    /// The semantic lookup, computing the question's embedding unless routing already did.
    pub(super) async fn semantic_hit(&self, plan: &mut Plan) -> Option<Hit> {
        let (partition, text) = plan.semantic.as_ref()?;
        if plan.embedding.is_none() {
            plan.embedding = self.router.as_ref()?.embed(text.clone()).await;
        }
        if !plan.lookup {
            return None;
        }
        plan.memory.semantic(partition, text, plan.embedding.as_deref()?).await
    }
}

impl Plan {
    pub async fn exact_hit(&self) -> Option<Hit> {
        if !self.lookup {
            return None;
        }
        self.memory.get(&self.exact).await
    }

    /// Counts what this request's lookup ended in.
    pub fn count(&self, result: &'static str) {
        self.memory.metrics().requests.with_label_values(&[result]).inc();
    }

    fn question(&self) -> Option<(Key, String, Arc<[f32]>)> {
        let (partition, text) = self.semantic.clone()?;
        Some((partition, text, self.embedding.clone()?))
    }

    /// Stores a whole JSON answer in the background.
    pub fn store_json(&self, model: &str, provider: &str, body: Bytes) {
        let entry = Entry { model: model.into(), provider: provider.into(), created: now(), body: Body::Json(body) };
        let (memory, key, ttl, question) = (self.memory.clone(), self.exact, self.ttl, self.question());
        tokio::spawn(async move { memory.store(key, &entry, ttl, question).await });
    }

    /// Wraps a stream so that it is stored once it ends with a finish reason; a stream that fails,
    /// is cut, or whose client leaves is never stored. `hide_usage` drops the usage chunk the
    /// gateway asked for on the client's behalf (it is still stored).
    pub fn record_stream(
        self,
        model: &str,
        provider: &str,
        first: &Bytes,
        rest: ChunkStream,
        hide_usage: bool,
    ) -> ChunkStream {
        let recorder = Recorder {
            inner: rest,
            chunks: vec![first.clone()],
            finished: has_finish_reason(first),
            hide_usage,
            model: model.into(),
            provider: provider.into(),
            plan: Some(self),
        };
        Box::pin(recorder)
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn has_finish_reason(chunk: &[u8]) -> bool {
    memchr::memmem::find(chunk, b"\"finish_reason\"").is_some()
        && serde_json::from_slice::<serde_json::Value>(chunk).is_ok_and(|v| {
            v.get("choices")
                .and_then(|c| c.as_array())
                .is_some_and(|choices| choices.iter().any(|c| c.get("finish_reason").is_some_and(|r| !r.is_null())))
        })
}

struct Recorder {
    inner: ChunkStream,
    chunks: Vec<Bytes>,
    finished: bool,
    hide_usage: bool,
    model: String,
    provider: String,
    plan: Option<Plan>,
}

impl Stream for Recorder {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let item = self.inner.as_mut().poll_next(cx);
            match &item {
                Poll::Ready(Some(Ok(chunk))) => {
                    let chunk = chunk.clone();
                    if !self.finished && has_finish_reason(&chunk) {
                        self.finished = true;
                    }
                    let hidden = self.hide_usage && replay::is_usage_only(&chunk);
                    self.chunks.push(chunk);
                    if hidden {
                        continue;
                    }
                }
                Poll::Ready(Some(Err(_))) => self.plan = None,
                Poll::Ready(None) => {
                    if let Some(plan) = self.plan.take().filter(|_| self.finished) {
                        let entry = Entry {
                            model: std::mem::take(&mut self.model),
                            provider: std::mem::take(&mut self.provider),
                            created: now(),
                            body: Body::Stream(std::mem::take(&mut self.chunks)),
                        };
                        let (memory, key, ttl, question) = (plan.memory.clone(), plan.exact, plan.ttl, plan.question());
                        tokio::spawn(async move { memory.store(key, &entry, ttl, question).await });
                    }
                }
                Poll::Pending => {}
            }
            return item;
        }
    }
}

/// Drops the usage chunk the gateway asked for on the client's behalf, when `hide` (streams only).
pub fn hide_usage(answer: Answer, hide: bool) -> Answer {
    match answer {
        Answer::Stream { route, first, rest, cache } if hide => {
            let rest = rest.filter(|chunk| std::future::ready(!matches!(chunk, Ok(c) if replay::is_usage_only(c))));
            Answer::Stream { route, first, rest: Box::pin(rest), cache }
        }
        other => other,
    }
}

/// A stored answer, shaped for this client: as one body or as chunks.
pub fn replayed(hit: Hit, stream: bool, include_usage: bool) -> Result<Answer, ApiError> {
    let Entry { model, provider, body, .. } = hit.entry;
    let corrupt = || ApiError::internal("a cached answer could not be replayed");
    let reply = match (body, stream) {
        (Body::Json(body), false) => Replay::Json(body),
        (Body::Stream(chunks), false) => Replay::Json(replay::assemble(&chunks).ok_or_else(corrupt)?),
        (Body::Json(body), true) => Replay::Stream(replay::split(&body, include_usage).ok_or_else(corrupt)?),
        (Body::Stream(chunks), true) => {
            Replay::Stream(chunks.into_iter().filter(|c| include_usage || !replay::is_usage_only(c)).collect())
        }
    };
    Ok(Answer::Cached { source: hit.source, model, provider, reply })
}

pub enum Replay {
    Json(Bytes),
    Stream(Vec<Bytes>),
}

/// The stream options the gateway sends upstream for a stream it will store: with usage, so a
/// later replay can report it whether or not this client asked for it.
pub fn with_usage(options: Option<StreamOptions>) -> Option<StreamOptions> {
    let mut options = options.unwrap_or(StreamOptions { include_usage: None, extra: Default::default() });
    options.include_usage = Some(true);
    Some(options)
}
