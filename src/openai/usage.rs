//! Token usage as OpenAI reports it, and the cheap extraction of it from a response body.

use serde::{Deserialize, Serialize};

use super::Extra;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<Extra>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Reads only `usage` from a response or stream chunk; serde skips the rest without building it.
#[derive(Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<Usage>,
}

impl Usage {
    /// The usage of a whole JSON answer. Parsing it through `UsageOnly` also checks that the body is
    /// valid JSON, in the same single pass.
    pub fn from_response(json: &[u8]) -> Result<Option<Usage>, serde_json::Error> {
        Ok(serde_json::from_slice::<UsageOnly>(json)?.usage)
    }

    /// The usage of a JSON response or chunk, if it has one. Bodies without the word `"usage"` are
    /// not parsed at all, which keeps stream relaying to a substring scan per chunk.
    pub fn find_in(json: &[u8]) -> Option<Usage> {
        memchr::memmem::find(json, b"\"usage\"")?;
        serde_json::from_slice::<UsageOnly>(json).ok()?.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_usage_and_ignores_null_or_missing() {
        let body = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":1}}}"#;
        let usage = Usage::find_in(body).unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens, usage.total_tokens), (3, 4, 7));
        assert_eq!(usage.prompt_tokens_details.unwrap().cached_tokens, Some(1));
        assert_eq!(Usage::find_in(br#"{"id":"x","usage":null}"#), None);
        assert_eq!(Usage::find_in(br#"{"id":"x"}"#), None);
        assert_eq!(Usage::find_in(b"not json \"usage\""), None);
    }
}
