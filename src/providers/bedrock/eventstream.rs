//! `application/vnd.amazon.eventstream` bodies as a stream of frames, read in place.
//!
//! A frame is `total length (u32) | headers length (u32) | prelude CRC32 | headers | payload |
//! message CRC32`, big-endian, each header `name length (u8) | name | type (u8) | value`. Both CRCs are
//! checked; a frame that fails them, or that the body ends inside, is an error.
//!
//! Why not `aws_smithy_eventstream::frame::MessageFrameDecoder`: it copies every header name, header
//! value and payload into buffers of their own (eight allocations per event), where a streamed
//! answer may allocate only its output chunk. Frames here are slices of the body as received; the
//! tests check this reader against that crate's writer and reader.

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::providers::ProviderError;

const PRELUDE_LEN: usize = 12;
const CRC_LEN: usize = 4;
/// The largest frame AWS event streams allow (16 MiB of payload, 128 KiB of headers).
const MAX_FRAME_LEN: usize = 16 * 1024 * 1024 + 128 * 1024 + PRELUDE_LEN + CRC_LEN;

/// One checked frame, sharing the body's memory.
#[derive(Debug, Clone)]
pub struct Frame {
    bytes: Bytes,
    headers_end: usize,
}

impl Frame {
    /// The value of a string header (`:event-type`, `:message-type`, ...).
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut headers = &self.bytes[PRELUDE_LEN..self.headers_end];
        while let Some((header, value, rest)) = split_header(headers) {
            if header == name.as_bytes() {
                return match value {
                    Value::String(text) => std::str::from_utf8(text).ok(),
                    Value::Other => None,
                };
            }
            headers = rest;
        }
        None
    }

    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.headers_end..self.bytes.len() - CRC_LEN]
    }

    /// A message as `aws-smithy-eventstream` frames it, read back (tests).
    #[cfg(test)]
    pub fn of(message: &aws_smithy_types::event_stream::Message) -> Self {
        let mut wire = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(message, &mut wire).unwrap();
        next_frame(&mut Bytes::from(wire)).unwrap().unwrap()
    }
}

enum Value<'a> {
    String(&'a [u8]),
    Other,
}

/// The first header of `headers`: its name, its value and the headers after it; `None` at the end
/// or on a malformed header (frames are checked when read, so that means the end).
fn split_header(headers: &[u8]) -> Option<(&[u8], Value<'_>, &[u8])> {
    let (&name_len, rest) = headers.split_first()?;
    let name = rest.get(..usize::from(name_len))?;
    let (&kind, rest) = rest.get(usize::from(name_len)..)?.split_first()?;
    let fixed = |len: usize| rest.get(len..).map(|after| (Value::Other, after));
    let (value, after) = match kind {
        0 | 1 => fixed(0)?, // true, false
        2 => fixed(1)?,     // byte
        3 => fixed(2)?,     // int16
        4 => fixed(4)?,     // int32
        5 | 8 => fixed(8)?, // int64, timestamp
        9 => fixed(16)?,    // uuid
        6 | 7 => {
            let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
            let value = rest.get(2..2 + len)?;
            let after = rest.get(2 + len..)?;
            (if kind == 7 { Value::String(value) } else { Value::Other }, after)
        }
        _ => return None,
    };
    Some((name, value, after))
}

/// Whether `headers` is a sequence of well-formed headers that ends exactly at its end.
fn headers_well_formed(mut headers: &[u8]) -> bool {
    while !headers.is_empty() {
        match split_header(headers) {
            Some((_, _, rest)) => headers = rest,
            None => return false,
        }
    }
    true
}

/// The frame at the start of `buffer`, split off it; `Ok(None)` while the frame is incomplete.
fn next_frame(buffer: &mut Bytes) -> Result<Option<Frame>, String> {
    if buffer.len() < PRELUDE_LEN {
        return Ok(None);
    }
    let word = |at: usize| u32::from_be_bytes([buffer[at], buffer[at + 1], buffer[at + 2], buffer[at + 3]]);
    let (total, headers_len, prelude_crc) = (word(0) as usize, word(4) as usize, word(8));
    if crc32(&buffer[..8]) != prelude_crc {
        return Err("the prelude's CRC does not match".into());
    }
    if !(PRELUDE_LEN + CRC_LEN..=MAX_FRAME_LEN).contains(&total) || headers_len > total - PRELUDE_LEN - CRC_LEN {
        return Err(format!("impossible lengths (frame {total}, headers {headers_len})"));
    }
    if buffer.len() < total {
        return Ok(None);
    }
    if crc32(&buffer[..total - CRC_LEN]) != word(total - CRC_LEN) {
        return Err("the message's CRC does not match".into());
    }
    let headers_end = PRELUDE_LEN + headers_len;
    if !headers_well_formed(&buffer[PRELUDE_LEN..headers_end]) {
        return Err("malformed headers".into());
    }
    Ok(Some(Frame { bytes: buffer.split_to(total), headers_end }))
}

/// CRC-32 (IEEE 802.3, as zlib), the checksum of event-stream frames.
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut bit = 0;
            while bit < 8 {
                c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                bit += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !data.iter().fold(!0u32, |c, &b| TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8))
}

struct Reading<S> {
    body: S,
    /// Received bytes not yet read as frames: a chunk of the body as it came, or the joined tail of
    /// chunks when a frame spans them.
    pending: Bytes,
    provider: String,
    done: bool,
}

/// The frames of an event-stream body, in order.
pub fn frames<S>(provider: String, body: S) -> impl Stream<Item = Result<Frame, ProviderError>> + Send
where
    S: Stream<Item = Result<Bytes, ProviderError>> + Send + Unpin,
{
    let state = Reading { body, pending: Bytes::new(), provider, done: false };
    futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            match next_frame(&mut s.pending) {
                Ok(Some(frame)) => return Some((Ok(frame), s)),
                Ok(None) => {}
                Err(detail) => {
                    s.done = true;
                    let error =
                        ProviderError::invalid_response(&s.provider, format!("bad event-stream frame: {detail}"));
                    return Some((Err(error), s));
                }
            }
            match s.body.next().await {
                Some(Ok(chunk)) if s.pending.is_empty() => s.pending = chunk,
                Some(Ok(chunk)) => {
                    let mut joined = BytesMut::with_capacity(s.pending.len() + chunk.len());
                    joined.extend_from_slice(&s.pending);
                    joined.extend_from_slice(&chunk);
                    s.pending = joined.freeze();
                }
                Some(Err(error)) => {
                    s.done = true;
                    return Some((Err(error), s));
                }
                None => {
                    s.done = true;
                    if s.pending.is_empty() {
                        return None;
                    }
                    let error = ProviderError::invalid_response(&s.provider, "the stream ended inside an event frame");
                    return Some((Err(error), s));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};

    fn message(event_type: &str, payload: &str) -> Message {
        Message::new(payload.as_bytes().to_vec())
            .add_header(Header::new(":event-type", HeaderValue::String(event_type.to_owned().into())))
            .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())))
            .add_header(Header::new(":message-type", HeaderValue::String("event".into())))
    }

    /// A frame as `aws-smithy-eventstream` writes it.
    fn frame(message: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(message, &mut out).unwrap();
        out
    }

    async fn read(chunks: Vec<Vec<u8>>) -> Vec<Result<Frame, ProviderError>> {
        let body = futures_util::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))));
        frames("b".into(), body).collect().await
    }

    #[test]
    fn crc32_is_ieee() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[tokio::test]
    async fn frames_split_anywhere_read_in_order() {
        let mut wire = frame(&message("messageStart", r#"{"role":"assistant"}"#));
        wire.extend(frame(&message("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#)));
        let byte_by_byte = wire.iter().map(|b| vec![*b]).collect::<Vec<_>>();
        for chunks in [byte_by_byte, vec![wire.clone()], vec![wire[..30].to_vec(), wire[30..].to_vec()]] {
            let out = read(chunks).await;
            assert_eq!(out.len(), 2);
            let frames: Vec<&Frame> = out.iter().map(|f| f.as_ref().unwrap()).collect();
            assert_eq!(frames[0].header(":event-type"), Some("messageStart"));
            assert_eq!(frames[0].header(":message-type"), Some("event"));
            assert_eq!(frames[0].payload(), br#"{"role":"assistant"}"#);
            assert_eq!(frames[1].header(":event-type"), Some("contentBlockDelta"));
            assert_eq!(frames[1].header(":exception-type"), None);
        }
    }

    #[tokio::test]
    async fn every_header_type_is_skipped_and_agrees_with_the_crates_reader() {
        let message = Message::new(&b"{}"[..])
            .add_header(Header::new("t", HeaderValue::Bool(true)))
            .add_header(Header::new("f", HeaderValue::Bool(false)))
            .add_header(Header::new("b", HeaderValue::Byte(-1)))
            .add_header(Header::new("s", HeaderValue::Int16(-2)))
            .add_header(Header::new("i", HeaderValue::Int32(3)))
            .add_header(Header::new("l", HeaderValue::Int64(4)))
            .add_header(Header::new("a", HeaderValue::ByteArray(Bytes::from_static(b"xyz"))))
            .add_header(Header::new("ts", HeaderValue::Timestamp(aws_smithy_types::DateTime::from_secs(5))))
            .add_header(Header::new("u", HeaderValue::Uuid(6)))
            .add_header(Header::new(":exception-type", HeaderValue::String("throttlingException".into())));
        let wire = frame(&message);
        let ours = read(vec![wire.clone()]).await.remove(0).unwrap();
        let theirs = aws_smithy_eventstream::frame::read_message_from(&wire[..]).unwrap();
        assert_eq!(ours.header(":exception-type"), Some("throttlingException"));
        assert_eq!(ours.header("a"), None, "not a string");
        assert_eq!(ours.payload(), &theirs.payload()[..]);
    }

    #[tokio::test]
    async fn a_bad_crc_is_an_error_as_for_the_crate() {
        let whole = frame(&message("messageStart", r#"{"role":"assistant"}"#));
        for at in [2, 9, 20, whole.len() - 10, whole.len() - 1] {
            let mut wire = whole.clone();
            wire[at] ^= 0x01;
            assert!(aws_smithy_eventstream::frame::read_message_from(&wire[..]).is_err(), "byte {at}");
            let out = read(vec![wire]).await;
            assert_eq!(out.len(), 1);
            assert!(matches!(&out[0], Err(ProviderError::InvalidResponse { .. })), "byte {at}: {:?}", out[0]);
        }
    }

    #[tokio::test]
    async fn a_truncated_frame_is_an_error() {
        let whole = frame(&message("messageStart", r#"{"role":"assistant"}"#));
        for cut in [5, 12, 20, whole.len() - 1] {
            let mut wire = whole.clone();
            wire.extend_from_slice(&whole[..cut]);
            let out = read(vec![wire]).await;
            assert_eq!(out.len(), 2, "cut at {cut}");
            assert!(out[0].is_ok());
            assert!(matches!(&out[1], Err(ProviderError::InvalidResponse { detail, .. }) if detail.contains("inside")));
        }
        assert!(read(vec![]).await.is_empty());
    }
}
