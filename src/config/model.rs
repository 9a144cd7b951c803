//! `[models.NAME]`: the public model table. A public name maps to a provider, the upstream model id,
//! and prices per million tokens.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    /// A key of `[providers]`.
    pub provider: String,
    /// The model id the upstream expects; defaults to the public name.
    #[serde(default)]
    pub upstream: Option<String>,
    /// USD per million prompt tokens.
    #[serde(default)]
    pub input_per_mtok: f64,
    /// USD per million prompt tokens read from the provider's prompt cache (default: `input_per_mtok`).
    #[serde(default)]
    pub cached_input_per_mtok: Option<f64>,
    /// USD per million completion tokens.
    #[serde(default)]
    pub output_per_mtok: f64,
    /// Other public names for this model.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Models (names or aliases) to try in order when this one fails with an error that may pass
    /// (connection, timeout, 429, 5xx) after its retries; a stream only before its first chunk.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// This model's retries, instead of `[retry]` (fields left out take the built-in defaults).
    #[serde(default)]
    pub retry: Option<super::RetryConfig>,
    /// This model's timeouts, instead of `[timeouts]` (fields left out take the built-in defaults).
    #[serde(default)]
    pub timeouts: Option<super::TimeoutConfig>,
    /// Requests per minute sent to this model, all callers together (unset: no limit).
    #[serde(default)]
    pub rpm_limit: Option<i64>,
    /// Tokens (prompt and completion) per minute sent to this model, all callers together.
    #[serde(default)]
    pub tpm_limit: Option<i64>,
}

/// `auto` and `auto:POLICY` are reserved for the router: never a model name in `[models]`.
pub fn is_auto(model: &str) -> bool {
    model == "auto" || model.starts_with("auto:")
}

/// `[routing]`: what `model: "auto"` means until the learned router decides.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RoutingConfig {
    /// The model `auto` resolves to.
    #[serde(default)]
    pub default: Option<String>,
}
