//! Reading the canonical (OpenAI) request the way every translation needs: the instructions, images
//! given as data URLs, tool-call arguments as JSON objects, and which tool call had which name.

use std::collections::HashMap;

use serde_json::Value;

use crate::openai::ChatMessage;
use crate::openai::chat::ChatCompletionRequest;
use crate::openai::content::{ContentPart, MessageContent};
use crate::providers::ProviderError;

/// The system and developer messages' text, joined by blank lines, for APIs that take instructions
/// apart from the conversation. Instructions must be text.
pub fn instructions(provider: &str, messages: &[ChatMessage]) -> Result<Option<String>, ProviderError> {
    let mut joined: Option<String> = None;
    for (i, message) in messages.iter().enumerate() {
        let (ChatMessage::System(m) | ChatMessage::Developer(m)) = message else { continue };
        if !m.content.is_text_only() {
            return Err(ProviderError::unsupported(
                provider,
                &format!("messages[{i}].content"),
                "system instructions must be text",
            ));
        }
        let text = m.content.text();
        match &mut joined {
            Some(all) => {
                all.push_str("\n\n");
                all.push_str(&text);
            }
            None => joined = Some(text),
        }
    }
    Ok(joined)
}

/// An inline image: `data:<media type>;base64,<data>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataUrl<'a> {
    pub media_type: &'a str,
    pub data: &'a str,
}

/// The parts of a base64 data URL, or `None` for any other URL.
pub fn data_url(url: &str) -> Option<DataUrl<'_>> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some(DataUrl { media_type, data })
}

/// A tool call's `arguments` (JSON text) as the object the native APIs want. Empty text is `{}`.
pub fn arguments_object(param: &str, arguments: &str) -> Result<Value, ProviderError> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(ProviderError::invalid_request(param, "tool call arguments must be a JSON object")),
        Err(e) => Err(ProviderError::invalid_request(param, format!("tool call arguments are not JSON: {e}"))),
    }
}

/// Tool call ids to function names, from the assistant messages: APIs that answer a call by name
/// (Gemini) need the name of the call a `tool` message answers.
#[derive(Debug, Default)]
pub struct ToolNames<'a> {
    by_id: HashMap<&'a str, &'a str>,
}

impl<'a> ToolNames<'a> {
    pub fn new(messages: &'a [ChatMessage]) -> Self {
        let by_id = messages
            .iter()
            .filter_map(|m| match m {
                ChatMessage::Assistant(a) => a.tool_calls.as_deref(),
                _ => None,
            })
            .flatten()
            .map(|call| (call.id.as_str(), call.function.name.as_str()))
            .collect();
        Self { by_id }
    }

    pub fn name(&self, id: &str) -> Option<&'a str> {
        self.by_id.get(id).copied()
    }
}

/// `n > 1` for an API that makes one choice per request: a 400 naming `n`.
pub fn no_choices_beyond_one(provider: &str, request: &ChatCompletionRequest) -> Result<(), ProviderError> {
    match request.n {
        Some(n) if n > 1 => Err(ProviderError::unsupported(provider, "n", "only one choice per request (n = 1)")),
        _ => Ok(()),
    }
}

/// The text of a message's content when the API takes text only there (e.g. tool results).
pub fn text_only(provider: &str, param: &str, content: &MessageContent) -> Result<String, ProviderError> {
    if let MessageContent::Parts(parts) = content
        && parts.iter().any(|p| !matches!(p, ContentPart::Text { .. }))
    {
        return Err(ProviderError::unsupported(provider, param, "only text is accepted here"));
    }
    Ok(content.text())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(value: Value) -> Vec<ChatMessage> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn instructions_join_system_and_developer_messages() {
        let m = messages(json!([
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "use metric"}]}
        ]));
        assert_eq!(instructions("p", &m).unwrap().as_deref(), Some("be terse\n\nuse metric"));
        assert_eq!(instructions("p", &m[1..2]).unwrap(), None);
        let image =
            messages(json!([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]));
        let err = instructions("p", &image).unwrap_err();
        assert!(matches!(&err, ProviderError::Unsupported { param, .. } if param == "messages[0].content"));
    }

    #[test]
    fn data_urls_and_arguments() {
        assert_eq!(data_url("data:image/png;base64,iVBOR"), Some(DataUrl { media_type: "image/png", data: "iVBOR" }));
        assert_eq!(data_url("https://example.com/cat.png"), None);
        assert_eq!(data_url("data:image/png,raw"), None);
        assert_eq!(arguments_object("a", "").unwrap(), json!({}));
        assert_eq!(arguments_object("a", r#"{"x":1}"#).unwrap(), json!({"x": 1}));
        assert!(matches!(arguments_object("a", "[1]"), Err(ProviderError::InvalidRequest { .. })));
        assert!(matches!(arguments_object("a", "{"), Err(ProviderError::InvalidRequest { .. })));
    }

    #[test]
    fn tool_names_by_call_id() {
        let m = messages(json!([
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
        ]));
        let names = ToolNames::new(&m);
        assert_eq!(names.name("c1"), Some("weather"));
        assert_eq!(names.name("c2"), None);
    }
}
