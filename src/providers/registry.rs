//! The providers named in config, built once at start, sharing one pooled HTTP client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::openai_compat::OpenAiCompatible;
use super::{Provider, anthropic, bedrock, cohere, gemini};
use crate::config::{Config, ProviderConfig, ProviderKind};

#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<String, Arc<dyn Provider>>,
}

impl Registry {
    pub fn from_config(config: &Config) -> Result<Self, reqwest::Error> {
        let shared = http_client(Duration::from_secs(config.server.connect_timeout_secs))?;
        let mut providers = BTreeMap::new();
        for (name, provider) in &config.providers {
            // A provider with its own connect timeout gets its own connection pool.
            let client = match provider.connect_timeout_secs {
                Some(secs) => http_client(Duration::from_secs_f64(secs))?,
                None => shared.clone(),
            };
            providers.insert(name.clone(), build(name, provider, client));
        }
        Ok(Self { providers })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<dyn Provider>)> {
        self.providers.iter().map(|(name, provider)| (name.as_str(), provider))
    }
}

/// The one place that knows which adapter serves which kind.
fn build(name: &str, config: &ProviderConfig, client: reqwest::Client) -> Arc<dyn Provider> {
    match config.kind {
        ProviderKind::Openai
        | ProviderKind::Mistral
        | ProviderKind::Groq
        | ProviderKind::Together
        | ProviderKind::Fireworks
        | ProviderKind::Deepseek
        | ProviderKind::Xai
        | ProviderKind::Perplexity
        | ProviderKind::Openrouter
        | ProviderKind::Cerebras
        | ProviderKind::Deepinfra
        | ProviderKind::Ollama
        | ProviderKind::Vllm
        | ProviderKind::Huggingface
        | ProviderKind::OpenaiCompatible
        | ProviderKind::Azure => Arc::new(OpenAiCompatible::new(name, config, client)),
        ProviderKind::Anthropic => Arc::new(anthropic::Anthropic::new(name, config, client)),
        ProviderKind::Gemini | ProviderKind::VertexAi => Arc::new(gemini::Gemini::new(name, config, client)),
        ProviderKind::Bedrock => Arc::new(bedrock::Bedrock::new(name, config, client)),
        ProviderKind::Cohere => Arc::new(cohere::Cohere::new(name, config, client)),
    }
}

/// One client for all upstreams: connections are pooled per host and reused across requests.
pub fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .user_agent(concat!("cherrypick/", env!("CARGO_PKG_VERSION")))
        .build()
}
