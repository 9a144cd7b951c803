//! OpenAI embeddings through Cohere's `POST /v2/embed`: texts in, float vectors out, written as
//! OpenAI's list (the vectors copied as Cohere wrote them, or packed as base64 when asked).

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::openai::Usage;
use crate::openai::embeddings::{EmbeddingInput, EmbeddingsRequest};
use crate::providers::{JsonReply, ProviderError};

/// What the texts are for, when the client does not say (`input_type` as an extra field): Cohere's
/// v3+ models require one, and documents for search are what an embeddings call is most often for.
const DEFAULT_INPUT_TYPE: &str = "search_document";

/// Cohere-native embed fields a client may send as extra fields.
const NATIVE_FIELDS: &[&str] = &["input_type", "truncate", "max_tokens"];

#[derive(Debug, Serialize)]
pub struct EmbedBody<'a> {
    model: &'a str,
    texts: &'a [String],
    input_type: &'a str,
    embedding_types: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimension: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    truncate: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<&'a Value>,
}

/// Whether the answer wants the vectors as numbers or as base64 of little-endian f32s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Float,
    Base64,
}

/// The Cohere body for `request`, and the encoding the answer must use.
pub fn embed_body<'a>(
    provider: &str,
    request: &'a EmbeddingsRequest,
) -> Result<(EmbedBody<'a>, Encoding), ProviderError> {
    let texts = match &request.input {
        EmbeddingInput::Text(text) => std::slice::from_ref(text),
        EmbeddingInput::Texts(texts) => texts.as_slice(),
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenArrays(_) => {
            return Err(ProviderError::unsupported(provider, "input", "only text can be embedded, not token ids"));
        }
    };
    let encoding = match request.encoding_format.as_deref() {
        None | Some("float") => Encoding::Float,
        Some("base64") => Encoding::Base64,
        Some(_) => {
            return Err(ProviderError::invalid_request("encoding_format", "must be `float` or `base64`"));
        }
    };
    let field = |name: &str| request.extra.get(name).filter(|v| !v.is_null());
    if let Some(name) =
        request.extra.iter().find(|(k, v)| !v.is_null() && !NATIVE_FIELDS.contains(&k.as_str())).map(|(k, _)| k)
    {
        return Err(ProviderError::unsupported(provider, name, "not a parameter Cohere's embed API takes"));
    }
    let input_type = match field("input_type") {
        None => DEFAULT_INPUT_TYPE,
        Some(Value::String(kind)) => kind,
        Some(_) => return Err(ProviderError::invalid_request("input_type", "must be a string, e.g. `search_query`")),
    };
    // `user` is attribution only: Cohere has no place for it and the vectors do not depend on it.
    let body = EmbedBody {
        model: &request.model,
        texts,
        input_type,
        embedding_types: ["float"],
        output_dimension: request.dimensions,
        truncate: field("truncate"),
        max_tokens: field("max_tokens"),
    };
    Ok((body, encoding))
}

#[derive(Deserialize)]
struct EmbedResponse<'a> {
    #[serde(borrow)]
    embeddings: Embeddings<'a>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct Embeddings<'a> {
    #[serde(borrow)]
    float: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    billed_units: Option<BilledUnits>,
}

#[derive(Deserialize)]
struct BilledUnits {
    #[serde(default)]
    input_tokens: Option<f64>,
}

/// OpenAI's embeddings list for Cohere's answer `body`.
pub fn embeddings_list(
    provider: &str,
    model: &str,
    body: &[u8],
    encoding: Encoding,
) -> Result<JsonReply, ProviderError> {
    let invalid = |detail: String| ProviderError::invalid_response(provider, detail);
    let response: EmbedResponse =
        serde_json::from_slice(body).map_err(|e| invalid(format!("not a Cohere embed answer: {e}")))?;
    let tokens = response
        .meta
        .and_then(|meta| meta.billed_units)
        .and_then(|billed| billed.input_tokens)
        .map_or(0, |n| n.max(0.0) as u64);
    let vectors_len: usize = response.embeddings.float.iter().map(|v| v.get().len()).sum();
    let mut out = Vec::with_capacity(vectors_len + 64 * response.embeddings.float.len() + 128);
    out.extend_from_slice(b"{\"object\":\"list\",\"data\":[");
    for (i, vector) in response.embeddings.float.iter().enumerate() {
        if !vector.get().starts_with('[') {
            return Err(invalid(format!("embedding {i} is not a list of numbers")));
        }
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"object\":\"embedding\",\"index\":");
        out.extend_from_slice(i.to_string().as_bytes());
        out.extend_from_slice(b",\"embedding\":");
        match encoding {
            Encoding::Float => out.extend_from_slice(vector.get().as_bytes()),
            Encoding::Base64 => {
                let floats: Vec<f32> = serde_json::from_str(vector.get())
                    .map_err(|e| invalid(format!("an embedding is not numbers: {e}")))?;
                let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
                out.push(b'"');
                out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(bytes).as_bytes());
                out.push(b'"');
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"model\":");
    out.extend_from_slice(&serde_json::to_vec(model).unwrap_or_default());
    out.extend_from_slice(format!(",\"usage\":{{\"prompt_tokens\":{tokens},\"total_tokens\":{tokens}}}}}").as_bytes());
    let usage = Usage { prompt_tokens: tokens, total_tokens: tokens, ..Usage::default() };
    Ok(JsonReply { body: out.into(), usage: Some(usage) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> EmbeddingsRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn texts_input_type_and_dimensions() {
        let r = request(json!({"model": "embed-v4.0", "input": "hello", "dimensions": 256}));
        let (body, encoding) = embed_body("cohere", &r).unwrap();
        assert_eq!(encoding, Encoding::Float);
        assert_eq!(
            serde_json::to_value(body).unwrap(),
            json!({"model": "embed-v4.0", "texts": ["hello"], "input_type": "search_document", "embedding_types": ["float"], "output_dimension": 256})
        );
        let r = request(
            json!({"model": "e", "input": ["a", "b"], "input_type": "search_query", "truncate": "END", "encoding_format": "base64", "user": "u"}),
        );
        let (body, encoding) = embed_body("cohere", &r).unwrap();
        assert_eq!(encoding, Encoding::Base64);
        assert_eq!(
            serde_json::to_value(body).unwrap(),
            json!({"model": "e", "texts": ["a", "b"], "input_type": "search_query", "embedding_types": ["float"], "truncate": "END"})
        );
    }

    #[test]
    fn what_cohere_cannot_embed_is_a_400() {
        let param = |body: Value| match embed_body("cohere", &request(body)) {
            Err(ProviderError::Unsupported { param, .. } | ProviderError::InvalidRequest { param, .. }) => param,
            other => panic!("{other:?}"),
        };
        assert_eq!(param(json!({"model": "e", "input": [1, 2, 3]})), "input");
        assert_eq!(param(json!({"model": "e", "input": "a", "encoding_format": "int8"})), "encoding_format");
        assert_eq!(param(json!({"model": "e", "input": "a", "input_type": 3})), "input_type");
        assert_eq!(param(json!({"model": "e", "input": "a", "pooling": "mean"})), "pooling");
    }

    #[test]
    fn openai_list_as_floats_and_as_base64() {
        let body = json!({
            "id": "da6e531f-54c6-4a73-bf92-f60566d8d753",
            "embeddings": {"float": [[0.5, -0.25], [1e-3, 2]]},
            "texts": ["hello", "world"],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 2}},
            "response_type": "embeddings_by_type"
        })
        .to_string();
        let reply = embeddings_list("cohere", "embed-v4.0", body.as_bytes(), Encoding::Float).unwrap();
        let list: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            list,
            json!({"object": "list", "data": [
                {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]},
                {"object": "embedding", "index": 1, "embedding": [1e-3, 2]}
            ], "model": "embed-v4.0", "usage": {"prompt_tokens": 2, "total_tokens": 2}})
        );
        assert_eq!(reply.usage.unwrap().prompt_tokens, 2);
        let reply = embeddings_list("cohere", "embed-v4.0", body.as_bytes(), Encoding::Base64).unwrap();
        let list: Value = serde_json::from_slice(&reply.body).unwrap();
        let packed =
            base64::engine::general_purpose::STANDARD.decode(list["data"][0]["embedding"].as_str().unwrap()).unwrap();
        let floats: Vec<f32> = packed.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(floats, [0.5, -0.25]);
        assert!(matches!(
            embeddings_list("cohere", "e", br#"{"embeddings":[[1]]}"#, Encoding::Float),
            Err(ProviderError::InvalidResponse { .. })
        ));
    }
}
