//! PLACEHOLDER: the Cohere adapter is being written on its own branch; this stub only keeps the tree
//! building until it lands.

use async_trait::async_trait;

use super::{Provider, ProviderError, Reply};
use crate::config::ProviderConfig;
use crate::openai::ChatCompletionRequest;

pub struct Cohere {
    name: String,
}

impl Cohere {
    pub fn new(name: &str, config: &ProviderConfig, client: reqwest::Client) -> Self {
        let _ = (config, client);
        Self { name: name.to_owned() }
    }
}

#[async_trait]
impl Provider for Cohere {
    fn name(&self) -> &str {
        &self.name
    }

    async fn chat(&self, request: &ChatCompletionRequest) -> Result<Reply, ProviderError> {
        let _ = request;
        Err(ProviderError::unsupported(&self.name, "model", "not written yet"))
    }
}
