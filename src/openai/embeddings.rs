//! `POST /v1/embeddings` request type.

use serde::{Deserialize, Serialize};

use super::Extra;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: EmbeddingInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `input`: one text, several texts, one token array, or several token arrays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenArrays(Vec<Vec<u32>>),
}

impl EmbeddingsRequest {
    /// Estimated input tokens (4 characters a token), for limits before the usage is known.
    pub fn input_tokens_estimate(&self) -> u64 {
        match &self.input {
            EmbeddingInput::Text(text) => (text.len() as u64).div_ceil(4),
            EmbeddingInput::Texts(texts) => texts.iter().map(|t| (t.len() as u64).div_ceil(4)).sum(),
            EmbeddingInput::Tokens(tokens) => tokens.len() as u64,
            EmbeddingInput::TokenArrays(arrays) => arrays.iter().map(|a| a.len() as u64).sum(),
        }
    }
}

impl EmbeddingInput {
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Text(text) => text.is_empty(),
            Self::Texts(texts) => texts.is_empty(),
            Self::Tokens(tokens) => tokens.is_empty(),
            Self::TokenArrays(arrays) => arrays.is_empty(),
        }
    }
}
