//! The inference worker: its own OS thread (never a tokio worker) that owns the encoder and the
//! selector, takes requests from a bounded queue, and runs them in dynamic batches: everything
//! already queued (up to `max_batch`), plus what arrives within `max_wait` once the first is in.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::RouterError;
use super::encoder::Encoder;
use super::selector::Selector;
use crate::telemetry::RouterMetrics;

/// What the worker computes for one prompt.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The prompt's embedding (unit length); shared with the semantic cache.
    pub embedding: Arc<[f32]>,
    /// Predicted quality per selector head, in the card's order.
    pub qualities: Vec<f32>,
}

struct Job {
    text: String,
    reply: oneshot::Sender<Result<Scored, RouterError>>,
}

#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    pub max_batch: usize,
    pub max_wait: Duration,
    pub queue: usize,
}

/// The sending side; cheap to share.
pub struct WorkerHandle {
    jobs: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
    metrics: RouterMetrics,
}

impl WorkerHandle {
    /// Starts the worker thread around a loaded encoder and selector.
    pub fn spawn(
        encoder: Encoder,
        selector: Selector,
        policy: BatchPolicy,
        metrics: RouterMetrics,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = sync_channel(policy.queue);
        let depth = Arc::new(AtomicUsize::new(0));
        let worker = Worker { encoder, selector, queue, policy, depth: depth.clone(), metrics: metrics.clone() };
        std::thread::Builder::new().name("cherrypick-router".into()).spawn(move || worker.run())?;
        Ok(Self { jobs, depth, metrics })
    }

    /// Queues one prompt; a full queue is `Overloaded` at once, never a wait.
    pub fn submit(&self, text: String) -> Result<oneshot::Receiver<Result<Scored, RouterError>>, RouterError> {
        let (reply, receiver) = oneshot::channel();
        // Counted before the send: the worker may take the job (and count it out) at once.
        let depth = self.depth.fetch_add(1, Ordering::Relaxed) + 1;
        match self.jobs.try_send(Job { text, reply }) {
            Ok(()) => {
                self.metrics.queue_depth.set(depth as i64);
                Ok(receiver)
            }
            Err(e) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => RouterError::Overloaded,
                    TrySendError::Disconnected(_) => RouterError::Stopped,
                })
            }
        }
    }
}

struct Worker {
    encoder: Encoder,
    selector: Selector,
    queue: Receiver<Job>,
    policy: BatchPolicy,
    depth: Arc<AtomicUsize>,
    metrics: RouterMetrics,
}

impl Worker {
    fn run(self) {
        let mut batch = Vec::with_capacity(self.policy.max_batch);
        while let Ok(first) = self.queue.recv() {
            batch.push(first);
            self.fill(&mut batch);
            let depth = self.depth.fetch_sub(batch.len(), Ordering::Relaxed) - batch.len();
            self.metrics.queue_depth.set(depth as i64);
            // A caller that gave up (timeout, client gone) needs no answer.
            batch.retain(|job| !job.reply.is_closed());
            if !batch.is_empty() {
                self.metrics.batch_size.observe(batch.len() as f64);
                self.answer(&mut batch);
            }
            batch.clear();
        }
    }

    fn fill(&self, batch: &mut Vec<Job>) {
        while batch.len() < self.policy.max_batch {
            match self.queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let deadline = Instant::now() + self.policy.max_wait;
        while batch.len() < self.policy.max_batch {
            match self.queue.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(job) => batch.push(job),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    fn answer(&self, batch: &mut Vec<Job>) {
        let texts: Vec<&str> = batch.iter().map(|job| job.text.as_str()).collect();
        let scored = self.score(&texts);
        match scored {
            Ok(rows) => {
                for (job, row) in batch.drain(..).zip(rows) {
                    let _ = job.reply.send(Ok(row));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "router batch failed; its requests step aside");
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }

    fn score(&self, texts: &[&str]) -> Result<Vec<Scored>, RouterError> {
        let tokens = self.encoder.tokenize(texts)?;
        let embeddings = self.encoder.encode_tokens(&tokens)?;
        let qualities = self.selector.predict(&embeddings, texts.len())?;
        let dim = self.encoder.dim();
        let heads = qualities.len() / texts.len().max(1);
        Ok((0..texts.len())
            .map(|i| Scored {
                embedding: Arc::from(&embeddings[i * dim..(i + 1) * dim]),
                qualities: qualities[i * heads..(i + 1) * heads].to_vec(),
            })
            .collect())
    }
}
