//! `application/vnd.amazon.eventstream` bodies as a stream of messages. Frames are decoded (and their
//! prelude and message CRCs checked) by `aws-smithy-eventstream`; a frame the body ends inside is an
//! error, as is a frame that fails its checks.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::providers::ProviderError;

struct Decoding<S> {
    body: S,
    buffer: BytesMut,
    decoder: MessageFrameDecoder,
    /// Bytes of a frame not yet complete were received (they may sit in the decoder's prelude).
    partial: bool,
    provider: String,
    done: bool,
}

/// The messages of an event-stream body, in order.
pub fn messages<S>(provider: String, body: S) -> impl Stream<Item = Result<Message, ProviderError>> + Send
where
    S: Stream<Item = Result<Bytes, ProviderError>> + Send + Unpin,
{
    let state = Decoding {
        body,
        buffer: BytesMut::new(),
        decoder: MessageFrameDecoder::new(),
        partial: false,
        provider,
        done: false,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            if !s.buffer.is_empty() {
                match s.decoder.decode_frame(&mut s.buffer) {
                    Ok(DecodedFrame::Complete(message)) => {
                        s.partial = !s.buffer.is_empty();
                        return Some((Ok(message), s));
                    }
                    Ok(DecodedFrame::Incomplete) => {}
                    Err(e) => {
                        s.done = true;
                        let error =
                            ProviderError::invalid_response(&s.provider, format!("bad event-stream frame: {e}"));
                        return Some((Err(error), s));
                    }
                }
            }
            match s.body.next().await {
                Some(Ok(bytes)) if bytes.is_empty() => {}
                Some(Ok(bytes)) => {
                    s.buffer.extend_from_slice(&bytes);
                    s.partial = true;
                }
                Some(Err(error)) => {
                    s.done = true;
                    return Some((Err(error), s));
                }
                None => {
                    s.done = true;
                    if s.partial {
                        let error =
                            ProviderError::invalid_response(&s.provider, "the stream ended inside an event frame");
                        return Some((Err(error), s));
                    }
                    return None;
                }
            }
        }
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use aws_smithy_types::event_stream::{Header, HeaderValue};

    /// One framed event message, as Bedrock sends them.
    pub fn frame(event_type: &str, payload: &str) -> Vec<u8> {
        let message = Message::new(payload.as_bytes().to_vec())
            .add_header(Header::new(":event-type", HeaderValue::String(event_type.to_owned().into())))
            .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())))
            .add_header(Header::new(":message-type", HeaderValue::String("event".into())));
        let mut out = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(&message, &mut out).unwrap();
        out
    }

    async fn decode(chunks: Vec<Vec<u8>>) -> Vec<Result<Message, ProviderError>> {
        let body = futures_util::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))));
        messages("b".into(), body).collect().await
    }

    #[tokio::test]
    async fn frames_split_anywhere_decode_in_order() {
        let mut wire = frame("messageStart", r#"{"role":"assistant"}"#);
        wire.extend(frame("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#));
        // Byte by byte, and all at once.
        for chunks in [wire.iter().map(|b| vec![*b]).collect::<Vec<_>>(), vec![wire.clone()]] {
            let out = decode(chunks).await;
            assert_eq!(out.len(), 2);
            let payloads: Vec<&[u8]> = out.iter().map(|m| &m.as_ref().unwrap().payload()[..]).collect();
            assert_eq!(
                payloads,
                [&br#"{"role":"assistant"}"#[..], br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#]
            );
        }
    }

    #[tokio::test]
    async fn a_bad_crc_is_an_error() {
        let mut wire = frame("messageStart", r#"{"role":"assistant"}"#);
        let last = wire.len() - 1;
        wire[last] ^= 0xff;
        let out = decode(vec![wire]).await;
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0], Err(ProviderError::InvalidResponse { .. })), "{:?}", out[0]);
    }

    #[tokio::test]
    async fn a_truncated_frame_is_an_error() {
        let whole = frame("messageStart", r#"{"role":"assistant"}"#);
        for cut in [5, 20, whole.len() - 1] {
            let mut wire = whole.clone();
            wire.extend_from_slice(&whole[..cut]);
            let out = decode(vec![wire]).await;
            assert_eq!(out.len(), 2, "cut at {cut}");
            assert!(out[0].is_ok());
            assert!(matches!(&out[1], Err(ProviderError::InvalidResponse { detail, .. }) if detail.contains("inside")));
        }
        assert!(decode(vec![]).await.is_empty());
    }
}
