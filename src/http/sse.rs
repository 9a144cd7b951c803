//! The SSE response: chunks are framed and sent as they arrive, with keep-alive comments while the
//! upstream is quiet, a final `[DONE]`, or an error event if the upstream fails mid-stream. Dropping
//! the body (the client went away) drops the upstream stream, which cancels the upstream request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;
use crate::providers::ChunkStream;
use crate::providers::sse::{DONE_FRAME, KEEP_ALIVE_FRAME, data_frame};

pub fn sse_response(first: Bytes, rest: ChunkStream, keep_alive: Duration) -> Response {
    let body = SseBody {
        first: Some(first),
        rest,
        keep_alive,
        timer: Box::pin(tokio::time::sleep(keep_alive)),
        active: false,
        done: false,
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no")),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

struct SseBody {
    first: Option<Bytes>,
    rest: ChunkStream,
    keep_alive: Duration,
    timer: Pin<Box<Sleep>>,
    /// A chunk went out since the timer last fired: no keep-alive needed this period. Cheaper than
    /// resetting the timer on every chunk.
    active: bool,
    done: bool,
}

impl Stream for SseBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(data_frame(&first))));
        }
        match self.rest.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.active = true;
                Poll::Ready(Some(Ok(data_frame(&chunk))))
            }
            Poll::Ready(Some(Err(error))) => {
                self.done = true;
                let error = ApiError::from(error);
                Poll::Ready(Some(Ok(data_frame(&error.to_json()))))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(Some(Ok(Bytes::from_static(DONE_FRAME))))
            }
            Poll::Pending => loop {
                if self.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let next = Instant::now() + self.keep_alive;
                self.timer.as_mut().reset(next);
                if !std::mem::take(&mut self.active) {
                    return Poll::Ready(Some(Ok(Bytes::from_static(KEEP_ALIVE_FRAME))));
                }
            },
        }
    }
}
