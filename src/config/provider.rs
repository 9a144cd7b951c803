//! `[providers.NAME]`: which API an upstream speaks, where it is, and its credentials.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Secret;

#[derive(Debug, Clone, Deserialize)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Overrides the preset's base URL (required for `openai_compatible` and `azure`: the resource's
    /// endpoint, e.g. `https://NAME.openai.azure.com`).
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Extra headers sent with every request (e.g. OpenRouter's `HTTP-Referer`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Azure: the `api-version` query parameter. Anthropic: the `anthropic-version` header.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Azure: a Microsoft Entra ID token sent as `Authorization: Bearer` instead of `api-key`.
    #[serde(default)]
    pub azure_ad_token: Option<Secret>,
    /// Bedrock: the AWS region (default: `AWS_REGION`, then `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// Bedrock: AWS credentials (default: the standard `AWS_*` environment variables).
    #[serde(default)]
    pub aws_access_key_id: Option<Secret>,
    #[serde(default)]
    pub aws_secret_access_key: Option<Secret>,
    #[serde(default)]
    pub aws_session_token: Option<Secret>,
    /// Vertex AI: the Google Cloud project (default: the service account's `project_id`).
    #[serde(default)]
    pub project: Option<String>,
    /// Vertex AI: the location, e.g. `us-central1` or `global` (default `us-central1`).
    #[serde(default)]
    pub location: Option<String>,
    /// Vertex AI: path to a service-account JSON key (default: `GOOGLE_APPLICATION_CREDENTIALS`).
    #[serde(default)]
    pub credentials_file: Option<String>,
    /// How long connecting to this provider may take (default `server.connect_timeout_secs`).
    #[serde(default)]
    pub connect_timeout_secs: Option<f64>,
    /// Requests per minute sent to this provider, all models and callers together (unset: no limit).
    #[serde(default)]
    pub rpm_limit: Option<i64>,
    /// Tokens per minute sent to this provider, all models and callers together.
    #[serde(default)]
    pub tpm_limit: Option<i64>,
}

impl ProviderConfig {
    /// A provider of `kind` with everything else defaulted (tests, programmatic configs).
    pub fn new(kind: ProviderKind) -> Self {
        Self {
            kind,
            base_url: None,
            api_key: None,
            headers: BTreeMap::new(),
            api_version: None,
            azure_ad_token: None,
            region: None,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            aws_session_token: None,
            project: None,
            location: None,
            credentials_file: None,
            connect_timeout_secs: None,
            rpm_limit: None,
            tpm_limit: None,
        }
    }

    /// Every secret of this provider, named by its config key, for resolution and warnings.
    pub fn secrets_mut(&mut self) -> [(&'static str, &mut Option<Secret>); 5] {
        [
            ("api_key", &mut self.api_key),
            ("azure_ad_token", &mut self.azure_ad_token),
            ("aws_access_key_id", &mut self.aws_access_key_id),
            ("aws_secret_access_key", &mut self.aws_secret_access_key),
            ("aws_session_token", &mut self.aws_session_token),
        ]
    }
}

/// The APIs cherrypick speaks. The OpenAI-compatible family shares one adapter with presets; the
/// others have native translations.
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
    /// Azure OpenAI: OpenAI's API on deployment URLs.
    Azure,
    Anthropic,
    Gemini,
    /// Gemini on Google Cloud's Vertex AI.
    VertexAi,
    Bedrock,
    Cohere,
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
