//! The OpenAI-compatible family: where each provider lives, how it authenticates, and the documented
//! ways in which its API differs from OpenAI's.

use crate::config::ProviderKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <key>`; the key is required.
    Bearer,
    /// A bearer key is sent when configured (local servers such as vLLM may not need one).
    OptionalBearer,
    /// Azure: an `api-key` header, or `Authorization: Bearer` with an Entra ID token; one is required.
    AzureKey,
}

/// Where a provider departs from OpenAI. Each flag is from the provider's API reference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quirks {
    /// Only `max_tokens` is accepted: `max_completion_tokens` is sent under that name.
    pub max_tokens_only: bool,
    /// `seed` is called something else (Mistral: `random_seed`).
    pub seed_field: Option<&'static str>,
    /// `n > 1` is rejected.
    pub single_choice: bool,
    /// `logprobs` / `top_logprobs` are rejected.
    pub no_logprobs: bool,
    /// `logit_bias` is rejected.
    pub no_logit_bias: bool,
    /// `presence_penalty` / `frequency_penalty` are rejected.
    pub no_penalties: bool,
    /// `user` and `metadata` (attribution fields, not output-shaping) are not forwarded.
    pub strip_attribution: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub base_url: &'static str,
    pub auth: Auth,
    pub quirks: Quirks,
}

const COMPAT: Quirks = Quirks {
    max_tokens_only: true,
    seed_field: None,
    single_choice: false,
    no_logprobs: false,
    no_logit_bias: false,
    no_penalties: false,
    strip_attribution: false,
};

pub fn preset(kind: ProviderKind) -> Preset {
    use Auth::{AzureKey, Bearer, OptionalBearer};
    let (base_url, auth, quirks) = match kind {
        ProviderKind::Openai => ("https://api.openai.com/v1", Bearer, Quirks::default()),
        ProviderKind::Mistral => (
            "https://api.mistral.ai/v1",
            Bearer,
            Quirks {
                seed_field: Some("random_seed"),
                no_logprobs: true,
                no_logit_bias: true,
                strip_attribution: true,
                ..COMPAT
            },
        ),
        ProviderKind::Groq => (
            "https://api.groq.com/openai/v1",
            Bearer,
            Quirks { single_choice: true, no_logprobs: true, no_logit_bias: true, ..COMPAT },
        ),
        ProviderKind::Together => ("https://api.together.xyz/v1", Bearer, COMPAT),
        ProviderKind::Fireworks => ("https://api.fireworks.ai/inference/v1", Bearer, COMPAT),
        ProviderKind::Deepseek => {
            ("https://api.deepseek.com/v1", Bearer, Quirks { single_choice: true, no_logit_bias: true, ..COMPAT })
        }
        ProviderKind::Xai => ("https://api.x.ai/v1", Bearer, COMPAT),
        ProviderKind::Perplexity => (
            "https://api.perplexity.ai",
            Bearer,
            Quirks { single_choice: true, no_logit_bias: true, strip_attribution: true, ..COMPAT },
        ),
        ProviderKind::Openrouter => ("https://openrouter.ai/api/v1", Bearer, COMPAT),
        ProviderKind::Cerebras => {
            ("https://api.cerebras.ai/v1", Bearer, Quirks { no_penalties: true, no_logit_bias: true, ..COMPAT })
        }
        ProviderKind::Deepinfra => ("https://api.deepinfra.com/v1/openai", Bearer, COMPAT),
        ProviderKind::Ollama => ("http://127.0.0.1:11434/v1", OptionalBearer, COMPAT),
        ProviderKind::Vllm => ("http://127.0.0.1:8000/v1", OptionalBearer, COMPAT),
        ProviderKind::Huggingface => ("https://router.huggingface.co/v1", Bearer, COMPAT),
        ProviderKind::OpenaiCompatible => ("", OptionalBearer, Quirks::default()),
        ProviderKind::Azure => ("", AzureKey, Quirks::default()),
        // Native adapters have no preset here; they are never built from one.
        ProviderKind::Anthropic
        | ProviderKind::Gemini
        | ProviderKind::VertexAi
        | ProviderKind::Bedrock
        | ProviderKind::Cohere => ("", OptionalBearer, Quirks::default()),
    };
    Preset { base_url, auth, quirks }
}
