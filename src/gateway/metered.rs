//! A stream wrapper that accounts for a streamed answer: latency to its end, and tokens and spend
//! from the usage chunk when the upstream sends one. Recorded once, when the stream ends or is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;

use super::{Route, Ticket, record_usage};
use crate::openai::Usage;
use crate::providers::{ChunkStream, ProviderError};
use crate::telemetry::Metrics;

pub struct Metered {
    inner: ChunkStream,
    route: Arc<Route>,
    started: Instant,
    usage: Option<Usage>,
    metrics: Arc<Metrics>,
    ticket: Option<Ticket>,
    finished: bool,
}

impl Metered {
    pub fn new(
        inner: ChunkStream,
        route: Arc<Route>,
        started: Instant,
        usage: Option<Usage>,
        metrics: Arc<Metrics>,
        ticket: Option<Ticket>,
    ) -> Self {
        Self { inner, route, started, usage, metrics, ticket, finished: false }
    }

    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.route.metrics.latency.observe(self.started.elapsed().as_secs_f64());
            let mut ticket = self.ticket.take();
            if let Some(usage) = &self.usage {
                let cost = record_usage(&self.route, usage);
                if let Some(ticket) = &mut ticket {
                    ticket.usage(usage, cost);
                }
            }
            // Dropping the ticket ends it: settled and logged.
            drop(ticket);
        }
    }
}

impl Stream for Metered {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.as_mut().poll_next(cx);
        match &item {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(usage) = Usage::find_in(chunk) {
                    self.usage = Some(usage);
                }
            }
            Poll::Ready(Some(Err(error))) => {
                self.metrics.upstream_errors.with_label_values(&[self.route.provider.name(), error.kind_label()]).inc();
                let kind = error.kind_label();
                if let Some(ticket) = &mut self.ticket {
                    ticket.stream_failed(kind);
                }
                self.finish();
            }
            Poll::Ready(None) => self.finish(),
            Poll::Pending => {}
        }
        item
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // A client that disconnected still used the tokens it received.
        self.finish();
    }
}
