//! Embeddings through InvokeModel, whose body is the model family's own: Amazon Titan Text
//! Embeddings (`{"inputText": ..}`, one text per call) and Cohere Embed (`{"texts": [..]}`, up to 96
//! per call). The answers become OpenAI's embedding list, vectors copied as the upstream wrote them
//! or packed as base64 little-endian f32 when the client asks for base64.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Answer;
use crate::openai::Usage;
use crate::openai::embeddings::{EmbeddingInput, EmbeddingsRequest};
use crate::providers::ProviderError;

/// Cohere Embed on Bedrock takes at most this many texts per call.
pub const COHERE_BATCH: usize = 96;

/// How many InvokeModel calls of one embeddings request run at once.
pub const CONCURRENCY: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `amazon.titan-embed-text-v1` / `-v2:0`; v2 takes `dimensions` and `normalize`.
    Titan { v2: bool },
    /// `cohere.embed-english-v3`, `cohere.embed-multilingual-v3`, `cohere.embed-v4:0` (which takes
    /// `output_dimension`).
    Cohere { v4: bool },
}

/// The model family of an embeddings model id (a plain id, a regional profile such as
/// `us.cohere.embed-v4:0`, or an ARN ending in one).
pub fn family(provider: &str, model: &str) -> Result<Family, ProviderError> {
    if model.contains("amazon.titan-embed-text-v1") {
        Ok(Family::Titan { v2: false })
    } else if model.contains("amazon.titan-embed-text") {
        Ok(Family::Titan { v2: true })
    } else if model.contains("cohere.embed-") {
        Ok(Family::Cohere { v4: model.contains("cohere.embed-v4") })
    } else {
        Err(ProviderError::unsupported(
            provider,
            "model",
            "Bedrock embeddings are available for Amazon Titan Text Embeddings and Cohere Embed models",
        ))
    }
}

/// What the client asked for, checked against what the family can do.
#[derive(Debug)]
pub struct Plan<'a> {
    pub family: Family,
    pub texts: Vec<&'a str>,
    pub base64: bool,
    pub dimensions: Option<u32>,
    /// Cohere's `input_type` (`search_document` unless the client sets it).
    pub input_type: &'a str,
}

pub fn plan<'a>(provider: &str, request: &'a EmbeddingsRequest) -> Result<Plan<'a>, ProviderError> {
    let family = family(provider, &request.model)?;
    let texts: Vec<&str> = match &request.input {
        EmbeddingInput::Text(text) => vec![text],
        EmbeddingInput::Texts(texts) => texts.iter().map(String::as_str).collect(),
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenArrays(_) => {
            return Err(ProviderError::unsupported(provider, "input", "Bedrock embeds text, not token ids"));
        }
    };
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => return Err(ProviderError::invalid_request("encoding_format", "must be `float` or `base64`")),
    };
    let dimensions_supported = matches!(family, Family::Titan { v2: true } | Family::Cohere { v4: true });
    if request.dimensions.is_some() && !dimensions_supported {
        return Err(ProviderError::unsupported(provider, "dimensions", "this embeddings model has one fixed size"));
    }
    let mut input_type = "search_document";
    for (key, value) in &request.extra {
        match (key.as_str(), value.as_str(), family) {
            ("input_type", Some(kind), Family::Cohere { .. }) => input_type = kind,
            _ => return Err(ProviderError::unsupported(provider, key, "not a parameter of this embeddings model")),
        }
    }
    Ok(Plan { family, texts, base64, dimensions: request.dimensions, input_type })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TitanRequest<'a> {
    input_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    normalize: Option<bool>,
}

#[derive(Serialize)]
struct CohereRequest<'a> {
    texts: &'a [&'a str],
    input_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimension: Option<u32>,
}

impl Plan<'_> {
    /// The InvokeModel bodies, in order: one per text (Titan) or per batch of texts (Cohere).
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        match self.family {
            Family::Titan { v2 } => self
                .texts
                .iter()
                .map(|text| {
                    // OpenAI's embeddings are unit length; Titan v2 normalises when asked.
                    let normalize = v2.then_some(true);
                    encode(&TitanRequest { input_text: text, dimensions: self.dimensions, normalize })
                })
                .collect(),
            Family::Cohere { .. } => self
                .texts
                .chunks(COHERE_BATCH)
                .map(|texts| {
                    encode(&CohereRequest { texts, input_type: self.input_type, output_dimension: self.dimensions })
                })
                .collect(),
        }
    }
}

fn encode(body: &impl Serialize) -> Vec<u8> {
    // Serialising structs of strings and numbers cannot fail.
    serde_json::to_vec(body).unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanResponse<'a> {
    #[serde(borrow)]
    embedding: &'a RawValue,
    #[serde(default)]
    input_text_token_count: Option<u64>,
}

#[derive(Deserialize)]
struct CohereResponse<'a> {
    /// A list of vectors, or (when the model answers by type, as Embed v4 does) an object whose
    /// `float` is that list.
    #[serde(borrow)]
    embeddings: &'a RawValue,
}

#[derive(Deserialize)]
struct ByType<'a> {
    #[serde(borrow)]
    float: Vec<&'a RawValue>,
}

fn cohere_vectors(raw: &RawValue) -> Result<Vec<&RawValue>, serde_json::Error> {
    if raw.get().starts_with('{') {
        serde_json::from_str::<ByType<'_>>(raw.get()).map(|by_type| by_type.float)
    } else {
        serde_json::from_str(raw.get())
    }
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<Embedding<'a>>,
    model: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct Embedding<'a> {
    object: &'static str,
    index: usize,
    embedding: Vector<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector<'a> {
    Floats(&'a RawValue),
    Base64(String),
}

/// OpenAI's embedding list from the answers of `plan`'s bodies, in the same order.
pub fn list(
    provider: &str,
    plan: &Plan<'_>,
    model: &str,
    answers: &[Answer],
) -> Result<(bytes::Bytes, Usage), ProviderError> {
    let bad =
        |e: serde_json::Error| ProviderError::invalid_response(provider, format!("not an embeddings answer: {e}"));
    let mut vectors: Vec<&RawValue> = Vec::with_capacity(plan.texts.len());
    let mut tokens = 0u64;
    for answer in answers {
        match plan.family {
            Family::Titan { .. } => {
                let response: TitanResponse<'_> = serde_json::from_slice(&answer.body).map_err(bad)?;
                vectors.push(response.embedding);
                tokens += response.input_text_token_count.or(answer.input_tokens).unwrap_or(0);
            }
            Family::Cohere { .. } => {
                let response: CohereResponse<'_> = serde_json::from_slice(&answer.body).map_err(bad)?;
                vectors.extend(cohere_vectors(response.embeddings).map_err(bad)?);
                tokens += answer.input_tokens.unwrap_or(0);
            }
        }
    }
    if vectors.len() != plan.texts.len() {
        return Err(ProviderError::invalid_response(
            provider,
            format!("{} embeddings for {} texts", vectors.len(), plan.texts.len()),
        ));
    }
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let embedding = if plan.base64 { Vector::Base64(packed(provider, raw)?) } else { Vector::Floats(raw) };
            Ok(Embedding { object: "embedding", index, embedding })
        })
        .collect::<Result<Vec<_>, ProviderError>>()?;
    let usage = Usage { prompt_tokens: tokens, total_tokens: tokens, ..Usage::default() };
    let body = EmbeddingList { object: "list", data, model, usage: usage.clone() };
    let bytes = serde_json::to_vec(&body).map_err(|e| ProviderError::invalid_response(provider, e.to_string()))?;
    Ok((bytes.into(), usage))
}

/// A vector as OpenAI's base64: little-endian f32s.
fn packed(provider: &str, raw: &RawValue) -> Result<String, ProviderError> {
    let floats: Vec<f32> = serde_json::from_str(raw.get()).map_err(|e| {
        ProviderError::invalid_response(provider, format!("an embedding is not a list of numbers: {e}"))
    })?;
    let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn request(body: Value) -> EmbeddingsRequest {
        serde_json::from_value(body).unwrap()
    }

    fn answer(body: Value, tokens: Option<u64>) -> Answer {
        Answer { body: body.to_string().into(), input_tokens: tokens }
    }

    #[test]
    fn titan_embeds_one_text_per_call() {
        let r = request(json!({"model": "amazon.titan-embed-text-v2:0", "input": ["a", "b"], "dimensions": 256}));
        let plan = plan("b", &r).unwrap();
        let bodies: Vec<Value> = plan.bodies().iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
        assert_eq!(
            bodies,
            [
                json!({"inputText": "a", "dimensions": 256, "normalize": true}),
                json!({"inputText": "b", "dimensions": 256, "normalize": true})
            ]
        );
        let answers = [
            answer(
                json!({"embedding": [0.1, -0.2], "inputTextTokenCount": 2, "embeddingsByType": {"float": [0.1, -0.2]}}),
                None,
            ),
            answer(json!({"embedding": [0.3, 0.4], "inputTextTokenCount": 3}), None),
        ];
        let (body, usage) = list("b", &plan, "amazon.titan-embed-text-v2:0", &answers).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({
                "object": "list",
                "data": [
                    {"object": "embedding", "index": 0, "embedding": [0.1, -0.2]},
                    {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]}
                ],
                "model": "amazon.titan-embed-text-v2:0",
                "usage": {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5}
            })
        );
        assert_eq!(usage.prompt_tokens, 5);
    }

    #[test]
    fn cohere_batches_texts_and_reads_both_answer_shapes() {
        let texts: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
        let r = request(json!({"model": "cohere.embed-english-v3", "input": texts, "input_type": "search_query"}));
        let plan = plan("b", &r).unwrap();
        let bodies: Vec<Value> = plan.bodies().iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0]["texts"].as_array().unwrap().len(), 96);
        assert_eq!(bodies[1], json!({"texts": ["t96", "t97", "t98", "t99"], "input_type": "search_query"}));

        let r = request(
            json!({"model": "cohere.embed-v4:0", "input": "x", "encoding_format": "base64", "dimensions": 256}),
        );
        let plan = super::plan("b", &r).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&plan.bodies()[0]).unwrap(),
            json!({"texts": ["x"], "input_type": "search_document", "output_dimension": 256})
        );
        let answers = [answer(
            json!({"id": "i", "embeddings": {"float": [[1.0, -2.0]]}, "response_type": "embeddings_by_type"}),
            Some(1),
        )];
        let (body, _) = list("b", &plan, "cohere.embed-v4:0", &answers).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        // 1.0f32 and -2.0f32, little-endian.
        assert_eq!(body["data"][0]["embedding"], "AACAPwAAAMA=");
        assert_eq!(body["usage"]["prompt_tokens"], 1);
        let v3 = request(json!({"model": "cohere.embed-english-v3", "input": ["x"]}));
        let plan = super::plan("b", &v3).unwrap();
        let answers =
            [answer(json!({"embeddings": [[0.5]], "response_type": "embeddings_floats", "texts": ["x"]}), Some(1))];
        let (body, _) = list("b", &plan, "cohere.embed-english-v3", &answers).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["data"][0]["embedding"], json!([0.5]));
    }

    #[test]
    fn what_the_model_cannot_take_is_refused() {
        let refused = |body: Value| match plan("b", &request(body)).unwrap_err() {
            ProviderError::Unsupported { param, .. } | ProviderError::InvalidRequest { param, .. } => param,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(json!({"model": "amazon.titan-embed-text-v1", "input": "x", "dimensions": 8})),
            "dimensions"
        );
        assert_eq!(refused(json!({"model": "cohere.embed-english-v3", "input": "x", "dimensions": 8})), "dimensions");
        assert_eq!(refused(json!({"model": "amazon.titan-embed-text-v2:0", "input": [1, 2]})), "input");
        assert_eq!(refused(json!({"model": "meta.llama3", "input": "x"})), "model");
        assert_eq!(
            refused(json!({"model": "amazon.titan-embed-text-v2:0", "input": "x", "input_type": "q"})),
            "input_type"
        );
        assert_eq!(
            refused(json!({"model": "amazon.titan-embed-text-v2:0", "input": "x", "encoding_format": "int8"})),
            "encoding_format"
        );
    }

    #[test]
    fn a_missing_vector_is_an_invalid_response() {
        let r = request(json!({"model": "cohere.embed-english-v3", "input": ["a", "b"]}));
        let plan = plan("b", &r).unwrap();
        let answers = [answer(json!({"embeddings": [[0.5]]}), None)];
        assert!(matches!(list("b", &plan, "m", &answers), Err(ProviderError::InvalidResponse { .. })));
    }
}
