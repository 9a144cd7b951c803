//! The embedded router: a sentence encoder (candle BERT) and an MLP selector that predict, per
//! prompt, each candidate model's quality; one utility trades it against cost and latency.
//!
//! Request path: [`prompt`] picks the text → [`decide::Router`] queues it → the [`worker`] thread
//! encodes and scores batches → [`utility`] picks the model. Offline: [`train`], [`evaluate`].

pub mod attention;
pub mod bert;
pub mod data;
mod decide;
pub mod device;
pub mod difficulty;
pub mod encoder;
pub mod evaluate;
pub mod knn;
pub mod metrics;
pub mod prompt;
pub mod selector;
pub mod small_matmul;
pub mod source;
pub mod static_table;
pub mod train;
pub mod utility;
pub mod worker;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use decide::{Ask, Decision, Hints, Outcome, Router, State};

use crate::config::Config;
use crate::telemetry::RouterMetrics;
use encoder::Encoder;
use selector::Selector;
use worker::{BatchPolicy, WorkerHandle};

#[derive(Debug, Clone, thiserror::Error)]
pub enum RouterError {
    #[error("cannot load the router: {0}")]
    Load(String),
    #[error("encoder failed: {0}")]
    Encode(String),
    #[error("selector failed: {0}")]
    Select(String),
    #[error("the router queue is full")]
    Overloaded,
    #[error("the router worker stopped")]
    Stopped,
}

/// The router of `config`, loading in the background (`None` when `[router]` is not enabled).
pub fn start(config: &Config, metrics: RouterMetrics) -> Option<Arc<Router>> {
    if !config.router.enabled {
        return None;
    }
    let router = Arc::new(Router::new(config, metrics.clone()));
    let config = config.clone();
    let handle = router.clone();
    tokio::spawn(async move {
        match load(&config, metrics).await {
            Ok(ready) => {
                tracing::info!(candidates = ready.candidates.len(), "router ready");
                handle.set_ready(ready);
            }
            Err(e) => {
                tracing::error!(error = %e, "the router is unavailable; `auto` goes to routing.default");
                handle.set_failed(e.to_string());
            }
        }
    });
    Some(router)
}

async fn load(config: &Config, metrics: RouterMetrics) -> Result<decide::Ready, RouterError> {
    let router = &config.router;
    let files = source::fetch(&router.encoder, &router.revision, false).await?;
    let config = config.clone();
    // Loading the weights reads and checks megabytes: not on a tokio worker.
    tokio::task::spawn_blocking(move || {
        let router = &config.router;
        let device = device::select(&router.device)?;
        let encoder = match &router.static_table {
            Some(table) => Encoder::load_static(&files.tokenizer, Path::new(table), router.max_tokens)?,
            None => Encoder::load(&files, router.max_tokens, &device)?,
        };
        let selector = Selector::load(Path::new(&router.selector), &device)?;
        check_pair(&encoder, &selector)?;
        let heads: Vec<String> = selector.names().map(str::to_owned).collect();
        let mean_cost: Vec<f64> = selector.card.models.iter().map(|m| m.mean_cost_usd).collect();
        let output_tokens: Vec<Option<f64>> = selector.card.models.iter().map(|m| m.mean_output_tokens).collect();
        let candidates = decide::candidates(&config, &heads, &mean_cost, &output_tokens)?;
        let policy = BatchPolicy {
            max_batch: router.max_batch,
            max_wait: Duration::from_micros(router.max_wait_us),
            queue: router.queue,
        };
        let worker = WorkerHandle::spawn(encoder, selector, policy, metrics)
            .map_err(|e| RouterError::Load(format!("cannot start the worker thread: {e}")))?;
        Ok(decide::Ready { worker, candidates })
    })
    .await
    .map_err(|e| RouterError::Load(e.to_string()))?
}

/// Marks a selector card trained on the static tier's embeddings.
pub const STATIC_PREFIX: &str = "static:";

/// A selector is only valid on embeddings of the encoder it was trained with.
pub fn check_pair(encoder: &Encoder, selector: &Selector) -> Result<(), RouterError> {
    let trained_static = selector.card.encoder.starts_with(STATIC_PREFIX);
    if trained_static != encoder.is_static() {
        let tier = |s: bool| if s { "the static table" } else { "the BERT encoder" };
        return Err(RouterError::Load(format!(
            "the selector was trained on {} but runs with {}",
            tier(trained_static),
            tier(encoder.is_static())
        )));
    }
    if encoder.dim() != selector.card.embedding_dim {
        return Err(RouterError::Load(format!(
            "the selector expects {}-d embeddings (encoder `{}`), the encoder gives {}",
            selector.card.embedding_dim,
            selector.card.encoder,
            encoder.dim()
        )));
    }
    Ok(())
}
