//! `[router]`: the learned router behind `model: "auto"`. Without this section (or with
//! `enabled = false`) `auto` resolves to `routing.default`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RouterConfig {
    pub enabled: bool,
    /// A Hugging Face repo id (`sentence-transformers/all-MiniLM-L6-v2`) or a local folder in
    /// Hugging Face layout (`config.json`, `model.safetensors`, `tokenizer.json`).
    pub encoder: String,
    /// Hub revision when `encoder` is a repo id.
    pub revision: String,
    /// The fast tier: a static token-embedding table distilled from `encoder`
    /// (`cherrypick models distill`). Microseconds per prompt; needs a selector trained on it.
    pub static_table: Option<String>,
    /// The folder of a trained selector: `router.safetensors` + `router.json`.
    pub selector: String,
    /// Public model names (keys of `[models]`) the router chooses between. Empty: every model with a
    /// selector head.
    pub candidates: Vec<String>,
    /// Public model name → the selector head that predicts its quality, for models whose public name
    /// differs from the name they were trained under.
    pub heads: BTreeMap<String, String>,
    /// The policy of plain `auto`: one of `policies`.
    pub default_policy: String,
    /// `auto:NAME` → weights. `cheap`, `balanced` and `best` exist unless overridden.
    pub policies: BTreeMap<String, PolicyConfig>,
    /// Prompt tokens read by the encoder (system prompt + last user message, truncated).
    pub max_tokens: usize,
    /// Largest batch the worker encodes at once.
    pub max_batch: usize,
    /// How long the worker waits for a batch to fill once it has one request, in microseconds.
    pub max_wait_us: u64,
    /// Requests waiting for the worker beyond which new ones step aside to `routing.default`.
    pub queue: usize,
    /// Threads the encoder's matrix products use.
    pub threads: usize,
    /// A decision that takes longer steps aside (milliseconds).
    pub timeout_ms: u64,
    /// `auto` (a GPU when the build has the `cuda` feature and one is present, else the CPU), `cpu`
    /// or `cuda`.
    pub device: String,
    /// Predicted completion length for a model whose selector card has no measured one.
    pub default_output_tokens: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct PolicyConfig {
    /// Weight of predicted cost, in units of the most expensive candidate's cost for the prompt.
    pub cost_weight: f64,
    /// Weight of expected latency, in units of the slowest candidate's.
    #[serde(default)]
    pub latency_weight: f64,
}

pub const DEFAULT_ENCODER: &str = "sentence-transformers/all-MiniLM-L6-v2";

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            encoder: DEFAULT_ENCODER.into(),
            revision: "main".into(),
            static_table: None,
            selector: "models/router".into(),
            candidates: Vec::new(),
            heads: BTreeMap::new(),
            default_policy: "balanced".into(),
            policies: BTreeMap::new(),
            max_tokens: 256,
            max_batch: 16,
            max_wait_us: 1000,
            queue: 256,
            threads: 1,
            timeout_ms: 250,
            device: "auto".into(),
            default_output_tokens: 256.0,
        }
    }
}

impl RouterConfig {
    /// The configured policies over the built-in `cheap`, `balanced` and `best`.
    pub fn all_policies(&self) -> BTreeMap<String, PolicyConfig> {
        let mut all = BTreeMap::from([
            ("cheap".to_owned(), PolicyConfig { cost_weight: 1.0, latency_weight: 0.0 }),
            ("balanced".to_owned(), PolicyConfig { cost_weight: 0.1, latency_weight: 0.0 }),
            ("best".to_owned(), PolicyConfig { cost_weight: 0.0, latency_weight: 0.0 }),
        ]);
        all.extend(self.policies.iter().map(|(k, v)| (k.clone(), *v)));
        all
    }
}
