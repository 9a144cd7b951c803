//! What every adapter does with its config's credentials and extra headers, in one place.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::ProviderError;
use crate::config::ProviderConfig;

/// Adds the provider's configured extra headers (e.g. OpenRouter's `HTTP-Referer`); the config
/// loader has checked that each is a valid header.
pub fn insert_configured_headers(headers: &mut HeaderMap, config: &ProviderConfig) {
    for (name, value) in &config.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            headers.insert(name, value);
        }
    }
}

/// What to set when the provider's required key is missing: its `env::` variable, if it has one.
pub fn missing_key_env(config: &ProviderConfig) -> String {
    config.api_key.as_ref().and_then(|k| k.env_name()).unwrap_or("the provider's `api_key`").to_owned()
}

/// Fails fast, naming what to set, when a required key is missing (`missing` from `missing_key_env`).
pub fn check_key(provider: &str, missing: Option<&String>) -> Result<(), ProviderError> {
    match missing {
        Some(env) => Err(ProviderError::MissingCredentials { provider: provider.to_owned(), env: env.clone() }),
        None => Ok(()),
    }
}
