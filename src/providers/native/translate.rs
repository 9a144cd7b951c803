//! Running a provider's stream translator over its upstream events: each event becomes zero or more
//! OpenAI chunks, in order; an upstream that stops early is an error, not a short answer.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use crate::providers::{ChunkStream, ProviderError};

/// One provider's stream events to OpenAI chunks.
pub trait Translate: Send + Unpin + 'static {
    type Event: Send + 'static;

    /// Translates one upstream event, appending the chunks it makes to `out`. An error event from the
    /// upstream is returned as `Err` and ends the stream.
    fn event(&mut self, event: Self::Event, out: &mut VecDeque<Bytes>) -> Result<(), ProviderError>;

    /// The upstream closed the stream. `Ok` if the answer was complete (chunks still owed, such as
    /// the usage chunk, go to `out`); an error if it was cut short.
    fn end(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), ProviderError>;
}

/// The chunk stream of `events` translated by `translator`.
pub fn translated<S, T>(events: S, translator: T) -> ChunkStream
where
    S: Stream<Item = Result<T::Event, ProviderError>> + Send + 'static,
    T: Translate,
{
    Box::pin(Translated { events: Box::pin(events), translator, pending: VecDeque::new(), error: None, done: false })
}

struct Translated<E, T> {
    events: Pin<Box<dyn Stream<Item = Result<E, ProviderError>> + Send>>,
    translator: T,
    /// Chunks made but not yet taken: one event can make several.
    pending: VecDeque<Bytes>,
    /// An error to report once the chunks made before it are out.
    error: Option<ProviderError>,
    done: bool,
}

impl<T: Translate> Stream for Translated<T::Event, T> {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            if let Some(error) = this.error.take() {
                return Poll::Ready(Some(Err(error)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let outcome = match this.events.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(event))) => this.translator.event(event, &mut this.pending),
                Poll::Ready(Some(Err(error))) => Err(error),
                Poll::Ready(None) => {
                    this.done = true;
                    this.translator.end(&mut this.pending)
                }
            };
            if let Err(error) = outcome {
                this.error = Some(error);
                this.done = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// Doubles every number; ends with `end` unless a zero was seen.
    struct Doubler {
        complete: bool,
    }

    impl Translate for Doubler {
        type Event = u32;
        fn event(&mut self, n: u32, out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
            if n == 99 {
                return Err(ProviderError::invalid_response("p", "error event"));
            }
            self.complete |= n == 0;
            out.push_back(Bytes::from(n.to_string()));
            out.push_back(Bytes::from((2 * n).to_string()));
            Ok(())
        }
        fn end(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), ProviderError> {
            if !self.complete {
                return Err(ProviderError::invalid_response("p", "cut"));
            }
            out.push_back(Bytes::from_static(b"end"));
            Ok(())
        }
    }

    async fn run(events: Vec<u32>) -> Vec<Result<String, String>> {
        let events = futures_util::stream::iter(events.into_iter().map(Ok));
        translated(events, Doubler { complete: false })
            .map(|item| item.map(|b| String::from_utf8(b.to_vec()).unwrap()).map_err(|e| e.to_string()))
            .collect()
            .await
    }

    #[tokio::test]
    async fn chunks_in_order_then_the_end() {
        let out = run(vec![1, 0]).await;
        assert_eq!(out, ["1", "2", "0", "0", "end"].map(|s| Ok(s.to_owned())));
    }

    #[tokio::test]
    async fn a_cut_stream_and_an_error_event_end_with_an_error_after_the_chunks_before_them() {
        let out = run(vec![3]).await;
        assert_eq!(out.len(), 3);
        assert!(out[2].as_ref().unwrap_err().contains("cut"));
        let out = run(vec![0, 99, 5]).await;
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(out[2].as_ref().unwrap_err().contains("error event"));
    }
}
