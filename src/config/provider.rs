//! `[providers.NAME]`: which API an upstream speaks, where it is, and its credentials.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Secret;

#[derive(Debug, Clone, Deserialize)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Overrides the preset's base URL (required for `openai_compatible`).
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Extra headers sent with every request (e.g. OpenRouter's `HTTP-Referer`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The APIs cherrypick speaks. The OpenAI-compatible family shares one adapter with presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openai,
    Mistral,
    Groq,
    Together,
    Fireworks,
    Deepseek,
    Xai,
    Perplexity,
    Openrouter,
    Cerebras,
    Deepinfra,
    Ollama,
    Vllm,
    Huggingface,
    /// Any other server speaking the OpenAI API at `base_url`.
    OpenaiCompatible,
}

impl ProviderKind {
    /// Every kind with a preset (all but `OpenaiCompatible`, which has no default base URL).
    pub const PRESETS: [ProviderKind; 14] = [
        Self::Openai,
        Self::Mistral,
        Self::Groq,
        Self::Together,
        Self::Fireworks,
        Self::Deepseek,
        Self::Xai,
        Self::Perplexity,
        Self::Openrouter,
        Self::Cerebras,
        Self::Deepinfra,
        Self::Ollama,
        Self::Vllm,
        Self::Huggingface,
    ];
}
