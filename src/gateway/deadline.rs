//! A stream's total time limit: past its deadline the stream ends with a timeout error (the client
//! gets an SSE error event), rather than hanging on an upstream that stopped sending.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::providers::{ChunkStream, ProviderError};

pub struct Deadline {
    inner: ChunkStream,
    sleep: Pin<Box<Sleep>>,
    provider: String,
    expired: bool,
}

impl Deadline {
    pub fn new(inner: ChunkStream, deadline: Instant, provider: &str) -> Self {
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            provider: provider.to_owned(),
            expired: false,
        }
    }
}

impl Stream for Deadline {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = self.inner.as_mut().poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(ProviderError::Timeout { provider: self.provider.clone() })));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_stream_past_its_deadline_ends_with_a_timeout() {
        let chunks = futures_util::stream::iter([Ok(Bytes::from_static(b"a"))]).chain(futures_util::stream::pending());
        let mut stream = Deadline::new(Box::pin(chunks), Instant::now() + Duration::from_secs(5), "p");
        assert_eq!(stream.next().await.unwrap().unwrap(), "a");
        assert!(matches!(stream.next().await, Some(Err(ProviderError::Timeout { .. }))));
        assert!(stream.next().await.is_none());
    }
}
