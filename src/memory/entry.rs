//! A cached answer and its byte encoding. The encoding is read without copying the body: a decoded
//! entry's bodies are slices of the stored bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::MemoryError;

/// What the provider answered, as the client first received it.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A whole JSON body.
    Json(Bytes),
    /// A completed stream: the JSON payload of every `data:` event, in order, without `[DONE]`.
    Stream(Vec<Bytes>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The public model that answered, and its provider.
    pub model: String,
    pub provider: String,
    /// Seconds since the Unix epoch when the answer was stored.
    pub created: u64,
    pub body: Body,
}

const VERSION: u8 = 1;
const JSON: u8 = 0;
const STREAM: u8 = 1;

impl Entry {
    /// Bytes this entry occupies once encoded (what the L1 budget counts).
    pub fn encoded_len(&self) -> usize {
        let body = match &self.body {
            Body::Json(body) => 4 + body.len(),
            Body::Stream(chunks) => 4 + chunks.iter().map(|c| 4 + c.len()).sum::<usize>(),
        };
        2 + 8 + 2 + self.model.len() + 2 + self.provider.len() + body
    }

    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        out.put_u8(VERSION);
        out.put_u8(match self.body {
            Body::Json(_) => JSON,
            Body::Stream(_) => STREAM,
        });
        out.put_u64(self.created);
        put_str(&mut out, &self.model);
        put_str(&mut out, &self.provider);
        match &self.body {
            Body::Json(body) => put_bytes(&mut out, body),
            Body::Stream(chunks) => {
                out.put_u32(chunks.len() as u32);
                for chunk in chunks {
                    put_bytes(&mut out, chunk);
                }
            }
        }
        out.freeze()
    }

    pub fn decode(mut data: Bytes) -> Result<Self, MemoryError> {
        let corrupt = || MemoryError::Corrupt;
        if data.remaining() < 10 || data.get_u8() != VERSION {
            return Err(corrupt());
        }
        let kind = data.get_u8();
        let created = data.get_u64();
        let model = take_str(&mut data).ok_or_else(corrupt)?;
        let provider = take_str(&mut data).ok_or_else(corrupt)?;
        let body = match kind {
            JSON => Body::Json(take_bytes(&mut data).ok_or_else(corrupt)?),
            STREAM => {
                if data.remaining() < 4 {
                    return Err(corrupt());
                }
                let count = data.get_u32() as usize;
                // Each chunk needs at least its 4-byte length: bounds a corrupt count.
                let mut chunks = Vec::with_capacity(count.min(data.remaining() / 4));
                for _ in 0..count {
                    chunks.push(take_bytes(&mut data).ok_or_else(corrupt)?);
                }
                Body::Stream(chunks)
            }
            _ => return Err(corrupt()),
        };
        if data.has_remaining() {
            return Err(corrupt());
        }
        Ok(Self { model, provider, created, body })
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.put_u16(s.len() as u16);
    out.put_slice(s);
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32(b.len() as u32);
    out.put_slice(b);
}

fn take_str(data: &mut Bytes) -> Option<String> {
    if data.remaining() < 2 {
        return None;
    }
    let len = data.get_u16() as usize;
    if data.remaining() < len {
        return None;
    }
    String::from_utf8(data.split_to(len).to_vec()).ok()
}

fn take_bytes(data: &mut Bytes) -> Option<Bytes> {
    if data.remaining() < 4 {
        return None;
    }
    let len = data.get_u32() as usize;
    (data.remaining() >= len).then(|| data.split_to(len))
}

/// Tiers below L1 keep entries lz4-compressed: answers are text and shrink 2-4×.
pub fn compress(encoded: &[u8]) -> Vec<u8> {
    lz4_flex::compress_prepend_size(encoded)
}

/// Largest entry accepted from a lower tier: a corrupt size prefix must not allocate gigabytes.
const MAX_ENTRY_BYTES: usize = 256 << 20;

pub fn decompress(stored: &[u8]) -> Result<Bytes, MemoryError> {
    let size = stored.get(..4).map_or(usize::MAX, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    if size > MAX_ENTRY_BYTES {
        return Err(MemoryError::Corrupt);
    }
    lz4_flex::decompress_size_prepended(stored).map(Bytes::from).map_err(|_| MemoryError::Corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(body: Body) -> Entry {
        Entry { model: "gpt-4o".into(), provider: "openai".into(), created: 1_700_000_000, body }
    }

    #[test]
    fn json_and_stream_entries_round_trip_through_bytes_and_lz4() {
        for body in [
            Body::Json(Bytes::from_static(br#"{"id":"x","choices":[]}"#)),
            Body::Stream(vec![Bytes::from_static(b"{\"a\":1}"), Bytes::new(), Bytes::from_static(b"{\"b\":2}")]),
        ] {
            let entry = sample(body);
            let encoded = entry.encode();
            assert_eq!(encoded.len(), entry.encoded_len());
            assert_eq!(Entry::decode(encoded.clone()).unwrap(), entry);
            let stored = compress(&encoded);
            assert_eq!(Entry::decode(decompress(&stored).unwrap()).unwrap(), entry);
        }
    }

    #[test]
    fn truncated_or_foreign_bytes_are_corrupt_not_a_panic() {
        let encoded = sample(Body::Stream(vec![Bytes::from_static(b"chunk")])).encode();
        for cut in 0..encoded.len() {
            assert!(Entry::decode(encoded.slice(..cut)).is_err(), "prefix of {cut} bytes decoded");
        }
        assert!(Entry::decode(Bytes::from_static(b"\x09garbage-garbage")).is_err());
        assert!(decompress(b"\xff\xff\xff\x7fnot lz4").is_err(), "a 2 GiB size prefix");
        assert!(decompress(b"\x01").is_err());
    }
}
