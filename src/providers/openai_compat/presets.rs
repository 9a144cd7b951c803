//! The OpenAI-compatible family: where each provider lives, how it authenticates, and the documented
//! ways in which its API differs from OpenAI's.

use crate::config::ProviderKind;
use crate::providers::transport::ErrorDialect;

use super::errors::{compat_error, xai_error};

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
    /// The message roles are system/user/assistant/tool: a `developer` message goes as `system`
    /// (what OpenAI itself does for models without the developer role).
    pub developer_as_system: bool,
    /// `stream_options` is refused as an unknown field; the provider reports usage at the end of
    /// every stream anyway, so the gateway's `include_usage` is not sent.
    pub no_stream_options: bool,
    /// No function calling: `tools` / `tool_choice` are rejected.
    pub no_tools: bool,
    /// `tool_choice` is not read (the model always decides): anything but `auto` is rejected.
    pub tool_choice_auto_only: bool,
    /// Message content is text only: image parts are rejected.
    pub text_only: bool,
    /// Images are accepted as base64 data URLs only, not by http(s) URL.
    pub inline_images_only: bool,
    /// `response_format` takes `text` and `json_object` only (no `json_schema`).
    pub no_json_schema: bool,
    /// The usage field that counts prompt tokens served from the provider's cache, copied into
    /// OpenAI's `prompt_tokens_details.cached_tokens` where the provider does not set that itself.
    pub cached_tokens_field: Option<&'static str>,
    /// Embeddings' `dimensions` is called something else (Mistral: `output_dimension`).
    pub dimensions_field: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub base_url: &'static str,
    pub auth: Auth,
    pub quirks: Quirks,
    /// Reads the provider's error bodies.
    pub errors: ErrorDialect,
}

/// What most of the family shares: `max_tokens` (every one of them takes it; not all take
/// `max_completion_tokens`) and the four classic roles.
const COMPAT: Quirks = Quirks {
    max_tokens_only: true,
    seed_field: None,
    single_choice: false,
    no_logprobs: false,
    no_logit_bias: false,
    no_penalties: false,
    strip_attribution: false,
    developer_as_system: true,
    no_stream_options: false,
    no_tools: false,
    tool_choice_auto_only: false,
    text_only: false,
    inline_images_only: false,
    no_json_schema: false,
    cached_tokens_field: None,
    dimensions_field: None,
};

pub fn preset(kind: ProviderKind) -> Preset {
    use Auth::{AzureKey, Bearer, OptionalBearer};
    let (base_url, auth, quirks) = match kind {
        ProviderKind::Openai => ("https://api.openai.com/v1", Bearer, Quirks::default()),
        // docs.mistral.ai API reference: requests are validated strictly (unknown fields, such as
        // `stream_options` or `max_completion_tokens`, are a 422 "extra_forbidden"); the last
        // stream chunk always carries `usage`.
        ProviderKind::Mistral => (
            "https://api.mistral.ai/v1",
            Bearer,
            Quirks {
                seed_field: Some("random_seed"),
                no_logprobs: true,
                no_logit_bias: true,
                strip_attribution: true,
                no_stream_options: true,
                // docs.mistral.ai/api/endpoint/embeddings: `output_dimension`, no `user`.
                dimensions_field: Some("output_dimension"),
                ..COMPAT
            },
        ),
        // console.groq.com/docs/openai: logprobs, logit_bias, top_logprobs are a 400; n must be 1.
        ProviderKind::Groq => (
            "https://api.groq.com/openai/v1",
            Bearer,
            Quirks { single_choice: true, no_logprobs: true, no_logit_bias: true, ..COMPAT },
        ),
        ProviderKind::Together => ("https://api.together.xyz/v1", Bearer, COMPAT),
        ProviderKind::Fireworks => ("https://api.fireworks.ai/inference/v1", Bearer, COMPAT),
        // api-docs.deepseek.com: no n or logit_bias; user content is text; response_format is
        // text or json_object; cache hits are counted in `prompt_cache_hit_tokens`.
        ProviderKind::Deepseek => (
            "https://api.deepseek.com/v1",
            Bearer,
            Quirks {
                single_choice: true,
                no_logit_bias: true,
                text_only: true,
                no_json_schema: true,
                cached_tokens_field: Some("prompt_cache_hit_tokens"),
                ..COMPAT
            },
        ),
        ProviderKind::Xai => ("https://api.x.ai/v1", Bearer, COMPAT),
        // docs.perplexity.ai: the Sonar API has no function calling, no n, no logprobs, no logit_bias.
        ProviderKind::Perplexity => (
            "https://api.perplexity.ai",
            Bearer,
            Quirks {
                single_choice: true,
                no_logprobs: true,
                no_logit_bias: true,
                strip_attribution: true,
                no_tools: true,
                ..COMPAT
            },
        ),
        // openrouter.ai/docs/api-reference: `n` is not among the request parameters.
        ProviderKind::Openrouter => ("https://openrouter.ai/api/v1", Bearer, Quirks { single_choice: true, ..COMPAT }),
        // inference-docs.cerebras.ai OpenAI compatibility: frequency_penalty, presence_penalty and
        // logit_bias are not supported; text input only.
        ProviderKind::Cerebras => (
            "https://api.cerebras.ai/v1",
            Bearer,
            Quirks { no_penalties: true, no_logit_bias: true, text_only: true, ..COMPAT },
        ),
        ProviderKind::Deepinfra => ("https://api.deepinfra.com/v1/openai", Bearer, COMPAT),
        // github.com/ollama/ollama docs/openai.md: n, logit_bias and tool_choice are not among the
        // supported fields (they would be ignored); images must be base64, not URLs.
        ProviderKind::Ollama => (
            "http://127.0.0.1:11434/v1",
            OptionalBearer,
            Quirks {
                single_choice: true,
                no_logit_bias: true,
                inline_images_only: true,
                tool_choice_auto_only: true,
                ..COMPAT
            },
        ),
        ProviderKind::Vllm => ("http://127.0.0.1:8000/v1", OptionalBearer, COMPAT),
        // Hugging Face chat-completion task spec: no `n`; `logit_bias` is documented as unused.
        ProviderKind::Huggingface => {
            ("https://router.huggingface.co/v1", Bearer, Quirks { single_choice: true, no_logit_bias: true, ..COMPAT })
        }
        ProviderKind::OpenaiCompatible => ("", OptionalBearer, Quirks::default()),
        ProviderKind::Azure => ("", AzureKey, Quirks::default()),
        // Native adapters have no preset here; they are never built from one.
        ProviderKind::Anthropic
        | ProviderKind::Gemini
        | ProviderKind::VertexAi
        | ProviderKind::Bedrock
        | ProviderKind::Cohere => ("", OptionalBearer, Quirks::default()),
    };
    let errors: ErrorDialect = match kind {
        ProviderKind::Xai => xai_error,
        _ => compat_error,
    };
    Preset { base_url, auth, quirks, errors }
}
