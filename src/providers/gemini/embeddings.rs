//! Embeddings: the Gemini API's `batchEmbedContents` and Vertex AI's `predict`, both answered in
//! OpenAI's `list` shape (floats, or base64 of little-endian f32s when asked).

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::openai::Usage;
use crate::openai::embeddings::{EmbeddingInput, EmbeddingsRequest};
use crate::providers::{JsonReply, ProviderError};

/// What every embeddings request needs, checked and read once for both APIs.
pub struct Embed<'a> {
    pub texts: Vec<&'a str>,
    pub dimensions: Option<u32>,
    pub task_type: Option<&'a str>,
    pub base64: bool,
}

impl<'a> Embed<'a> {
    pub fn read(provider: &str, request: &'a EmbeddingsRequest) -> Result<Self, ProviderError> {
        let texts = match &request.input {
            EmbeddingInput::Text(text) => vec![text.as_str()],
            EmbeddingInput::Texts(texts) => texts.iter().map(String::as_str).collect(),
            EmbeddingInput::Tokens(_) | EmbeddingInput::TokenArrays(_) => {
                return Err(ProviderError::unsupported(provider, "input", "Gemini embeds text, not token ids"));
            }
        };
        let base64 = match request.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(_) => return Err(ProviderError::invalid_request("encoding_format", "`float` or `base64`")),
        };
        let mut task_type = None;
        for (key, value) in &request.extra {
            match (key.as_str(), value) {
                // Gemini's own knob (`RETRIEVAL_QUERY`, `SEMANTIC_SIMILARITY`, …), passed on.
                ("task_type", Value::String(task)) => task_type = Some(task.as_str()),
                _ => return Err(ProviderError::unsupported(provider, key, "not a parameter Gemini's embeddings take")),
            }
        }
        // `user` is attribution for the gateway; Gemini has no field for it.
        Ok(Self { texts, dimensions: request.dimensions, task_type, base64 })
    }
}

// --- The Gemini API: `models/{model}:batchEmbedContents`

#[derive(Serialize)]
pub struct BatchEmbedContents<'a> {
    requests: Vec<EmbedContent<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EmbedContent<'a> {
    /// `models/{model}`: each request names its model again.
    model: &'a str,
    content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<u32>,
}

#[derive(Serialize)]
struct Content<'a> {
    parts: [Text<'a>; 1],
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
}

impl<'a> BatchEmbedContents<'a> {
    pub fn new(embed: &Embed<'a>, model_name: &'a str) -> Self {
        let requests = embed
            .texts
            .iter()
            .map(|text| EmbedContent {
                model: model_name,
                content: Content { parts: [Text { text }] },
                task_type: embed.task_type,
                output_dimensionality: embed.dimensions,
            })
            .collect();
        Self { requests }
    }
}

#[derive(Deserialize)]
struct BatchEmbedResponse {
    #[serde(default)]
    embeddings: Vec<Values>,
}

#[derive(Deserialize)]
struct Values {
    #[serde(default)]
    values: Vec<f64>,
}

/// `batchEmbedContents`' answer. It reports no token counts: usage is zero.
pub fn from_gemini(body: &[u8], model: &str, embed: &Embed<'_>) -> Result<JsonReply, String> {
    let response: BatchEmbedResponse = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let vectors: Vec<Vec<f64>> = response.embeddings.into_iter().map(|e| e.values).collect();
    list(model, vectors, 0, embed)
}

// --- Vertex AI: `publishers/google/models/{model}:predict`

#[derive(Serialize)]
pub struct Predict<'a> {
    instances: Vec<Instance<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Parameters>,
}

#[derive(Serialize)]
struct Instance<'a> {
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_type: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Parameters {
    output_dimensionality: u32,
}

/// Vertex's Gemini embedding models take one text per `predict` call (the older `text-embedding-*`
/// and `text-multilingual-embedding-*` take a batch).
pub fn one_text_per_call(model: &str) -> bool {
    model.starts_with("gemini-embedding")
}

impl<'a> Predict<'a> {
    pub fn new(embed: &Embed<'a>) -> Self {
        Self::of(embed, &embed.texts)
    }

    /// A call for some of the texts.
    pub fn of(embed: &Embed<'a>, texts: &[&'a str]) -> Self {
        Self {
            instances: texts.iter().map(|content| Instance { content, task_type: embed.task_type }).collect(),
            parameters: embed.dimensions.map(|output_dimensionality| Parameters { output_dimensionality }),
        }
    }
}

#[derive(Deserialize)]
struct PredictResponse {
    #[serde(default)]
    predictions: Vec<Prediction>,
}

#[derive(Deserialize)]
struct Prediction {
    embeddings: PredictionEmbeddings,
}

#[derive(Deserialize)]
struct PredictionEmbeddings {
    #[serde(default)]
    values: Vec<f64>,
    #[serde(default)]
    statistics: Option<Statistics>,
}

#[derive(Deserialize)]
struct Statistics {
    /// A number, sometimes written as a float.
    #[serde(default)]
    token_count: f64,
}

/// `predict`'s answer; each prediction counts its tokens.
pub fn from_vertex(body: &[u8], model: &str, embed: &Embed<'_>) -> Result<JsonReply, String> {
    from_vertex_calls(std::slice::from_ref(&body), model, embed)
}

/// The answers of several `predict` calls, in the order of their texts.
pub fn from_vertex_calls(bodies: &[impl AsRef<[u8]>], model: &str, embed: &Embed<'_>) -> Result<JsonReply, String> {
    let mut tokens = 0.0;
    let mut vectors = Vec::with_capacity(embed.texts.len());
    for body in bodies {
        let response: PredictResponse = serde_json::from_slice(body.as_ref()).map_err(|e| e.to_string())?;
        for prediction in response.predictions {
            tokens += prediction.embeddings.statistics.as_ref().map_or(0.0, |s| s.token_count);
            vectors.push(prediction.embeddings.values);
        }
    }
    list(model, vectors, tokens as u64, embed)
}

// --- OpenAI's answer

#[derive(Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    usage: ListUsage,
}

/// OpenAI's embeddings usage has no completion tokens.
#[derive(Serialize)]
struct ListUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f64>),
    Base64(String),
}

fn list(model: &str, vectors: Vec<Vec<f64>>, prompt_tokens: u64, embed: &Embed<'_>) -> Result<JsonReply, String> {
    if vectors.len() != embed.texts.len() {
        return Err(format!("{} embeddings for {} inputs", vectors.len(), embed.texts.len()));
    }
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, values)| {
            let embedding = if embed.base64 { Vector::Base64(base64_f32(&values)) } else { Vector::Floats(values) };
            Embedding { object: "embedding", index, embedding }
        })
        .collect();
    let body = serde_json::to_vec(&List {
        object: "list",
        data,
        model,
        usage: ListUsage { prompt_tokens, total_tokens: prompt_tokens },
    })
    .map_err(|e| e.to_string())?;
    let usage = Usage { prompt_tokens, total_tokens: prompt_tokens, ..Usage::default() };
    Ok(JsonReply { body: Bytes::from(body), usage: Some(usage) })
}

/// OpenAI's base64 encoding: the vector as little-endian f32s.
fn base64_f32(values: &[f64]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| (*v as f32).to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(value: Value) -> EmbeddingsRequest {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn gemini_batch_request_and_answer() {
        let r = request(
            json!({"model": "e", "input": ["hello", "world"], "dimensions": 3, "task_type": "RETRIEVAL_QUERY"}),
        );
        let embed = Embed::read("p", &r).unwrap();
        let body = serde_json::to_value(BatchEmbedContents::new(&embed, "models/gemini-embedding-001")).unwrap();
        assert_eq!(
            body,
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}, "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 3},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "world"}]}, "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 3}
            ]})
        );
        let reply = from_gemini(
            br#"{"embeddings":[{"values":[0.1,-0.2,0.3]},{"values":[0,0.5,-0.5]}]}"#,
            "gemini-embedding-001",
            &embed,
        )
        .unwrap();
        let answer: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            answer,
            json!({"object": "list", "model": "gemini-embedding-001", "usage": {"prompt_tokens": 0, "total_tokens": 0},
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2, 0.3]}, {"object": "embedding", "index": 1, "embedding": [0.0, 0.5, -0.5]}]})
        );
        assert!(from_gemini(br#"{"embeddings":[]}"#, "m", &embed).is_err());
    }

    #[test]
    fn vertex_gemini_embedding_takes_one_text_per_call_and_the_answers_join_in_order() {
        assert!(one_text_per_call("gemini-embedding-001") && !one_text_per_call("text-embedding-005"));
        let r = request(json!({"model": "e", "input": ["a", "b"]}));
        let embed = Embed::read("p", &r).unwrap();
        let calls: Vec<Value> =
            embed.texts.iter().map(|t| serde_json::to_value(Predict::of(&embed, &[t])).unwrap()).collect();
        assert_eq!(calls, [json!({"instances": [{"content": "a"}]}), json!({"instances": [{"content": "b"}]})]);
        let bodies = [
            br#"{"predictions":[{"embeddings":{"values":[1,0],"statistics":{"token_count":1}}}]}"#.as_slice(),
            br#"{"predictions":[{"embeddings":{"values":[0,1],"statistics":{"token_count":2.0}}}]}"#.as_slice(),
        ];
        let reply = from_vertex_calls(&bodies, "gemini-embedding-001", &embed).unwrap();
        let answer: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(answer["data"][0]["embedding"], json!([1.0, 0.0]));
        assert_eq!(answer["data"][1]["embedding"], json!([0.0, 1.0]));
        assert_eq!(answer["usage"]["prompt_tokens"], 3);
    }

    #[test]
    fn vertex_predict_request_and_base64_answer() {
        let r = request(json!({"model": "e", "input": "hello", "encoding_format": "base64"}));
        let embed = Embed::read("p", &r).unwrap();
        assert_eq!(serde_json::to_value(Predict::new(&embed)).unwrap(), json!({"instances": [{"content": "hello"}]}));
        let reply = from_vertex(
            br#"{"predictions":[{"embeddings":{"statistics":{"truncated":false,"token_count":6},"values":[1.0,-2.5]}}],"metadata":{"billableCharacterCount":5}}"#,
            "text-embedding-005",
            &embed,
        )
        .unwrap();
        let answer: Value = serde_json::from_slice(&reply.body).unwrap();
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(answer["data"][0]["embedding"].as_str().unwrap()).unwrap();
        let floats: Vec<f32> = bytes.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(floats, [1.0, -2.5]);
        assert_eq!(reply.usage.unwrap().prompt_tokens, 6);
    }

    #[test]
    fn token_inputs_and_unknown_fields_are_refused() {
        let tokens = request(json!({"model": "e", "input": [1, 2, 3]}));
        assert!(matches!(Embed::read("p", &tokens), Err(ProviderError::Unsupported { param, .. }) if param == "input"));
        let extra = request(json!({"model": "e", "input": "x", "truncate": "END"}));
        assert!(
            matches!(Embed::read("p", &extra), Err(ProviderError::Unsupported { param, .. }) if param == "truncate")
        );
        let format = request(json!({"model": "e", "input": "x", "encoding_format": "int8"}));
        assert!(
            matches!(Embed::read("p", &format), Err(ProviderError::InvalidRequest { param, .. }) if param == "encoding_format")
        );
    }
}
