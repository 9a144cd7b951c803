//! Server-sent events: a decoder from upstream bytes to events, zero-copy for the common one-line
//! `data:` event, and the encoder of our own frames.

use bytes::{Buf, Bytes, BytesMut};

/// One decoded event: its `event:` name, if any, and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<Bytes>,
    pub data: Bytes,
}

/// Incremental SSE decoder: feed it bytes as they arrive, take complete events out.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buffer: BytesMut,
}

impl SseDecoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete event, or `None` until more bytes arrive. Events without data (comments,
    /// keep-alives) are skipped.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let (end, separator) = find_event_end(&self.buffer)?;
            let block = self.buffer.split_to(end).freeze();
            self.buffer.advance(separator);
            if let Some(event) = parse_block(block) {
                return Some(event);
            }
        }
    }

    /// Whatever is left once the upstream closed: a last event not followed by a blank line.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.buffer.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        parse_block(std::mem::take(&mut self.buffer).freeze())
    }
}

/// Position of the blank line ending the first event, and the length of that separator.
fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(offset) = memchr::memchr(b'\n', &buffer[from..]) {
        let i = from + offset;
        match buffer.get(i + 1) {
            Some(b'\n') => return Some((i, 2)),
            Some(b'\r') if buffer.get(i + 2) == Some(&b'\n') => return Some((i, 3)),
            _ => from = i + 1,
        }
    }
    None
}

fn parse_block(block: Bytes) -> Option<SseEvent> {
    let mut event = None;
    let mut data: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    for line in block.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (field, value) = match memchr::memchr(b':', line) {
            Some(0) => continue,
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => match (&mut joined, &data) {
                (Some(buffer), _) => {
                    buffer.extend_from_slice(b"\n");
                    buffer.extend_from_slice(value);
                }
                (None, Some(first)) => {
                    let mut buffer = BytesMut::from(&first[..]);
                    buffer.extend_from_slice(b"\n");
                    buffer.extend_from_slice(value);
                    joined = Some(buffer);
                }
                (None, None) => data = Some(block.slice_ref(value)),
            },
            b"event" => event = Some(block.slice_ref(value)),
            _ => {}
        }
    }
    let data = joined.map(BytesMut::freeze).or(data)?;
    Some(SseEvent { event, data })
}

/// `data: <json>\n\n`, in one allocation.
pub fn data_frame(json: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(json.len() + 8);
    frame.extend_from_slice(b"data: ");
    frame.extend_from_slice(json);
    frame.extend_from_slice(b"\n\n");
    frame.freeze()
}

pub const DONE_FRAME: &[u8] = b"data: [DONE]\n\n";
pub const KEEP_ALIVE_FRAME: &[u8] = b": keep-alive\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(event) = decoder.next_event() {
                events.push(event);
            }
        }
        events.extend(decoder.finish());
        events
    }

    #[test]
    fn splits_events_across_arbitrary_chunk_boundaries() {
        let stream =
            b"data: {\"a\":1}\n\n: keep-alive\n\nevent: ping\ndata: {}\r\n\r\ndata: x\ndata: y\n\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let events = decode_all(&[&stream[..cut], &stream[cut..]]);
            let data: Vec<&[u8]> = events.iter().map(|e| &e.data[..]).collect();
            assert_eq!(data, [&b"{\"a\":1}"[..], b"{}", b"x\ny", b"[DONE]"], "cut at {cut}");
            assert_eq!(events[1].event.as_deref(), Some(&b"ping"[..]));
        }
    }

    #[test]
    fn a_last_event_without_blank_line_is_kept() {
        let events = decode_all(&[b"data: {\"a\":1}\n\ndata: last"]);
        assert_eq!(events.len(), 2);
        assert_eq!(&events[1].data[..], b"last");
    }

    #[test]
    fn frames() {
        assert_eq!(&data_frame(b"{}")[..], b"data: {}\n\n");
    }
}
