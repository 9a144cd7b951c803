//! The request as the provider takes it: OpenAI's, with the preset's quirks applied. What the
//! provider cannot take is a 400 naming the parameter; the request is borrowed when nothing changes.

use std::borrow::Cow;

use super::Quirks;
use crate::openai::chat::{ChatCompletionRequest, ResponseFormat, ToolChoice, ToolChoiceMode};
use crate::openai::content::{ContentPart, MessageContent};
use crate::openai::{ChatMessage, EmbeddingsRequest};
use crate::providers::ProviderError;

pub fn adapt<'a>(
    provider: &str,
    q: &Quirks,
    request: &'a ChatCompletionRequest,
) -> Result<Cow<'a, ChatCompletionRequest>, ProviderError> {
    let reject = |param: &str, detail: &str| Err(ProviderError::unsupported(provider, param, detail));
    if q.single_choice && request.n.is_some_and(|n| n > 1) {
        return reject("n", "only one choice per request (n = 1)");
    }
    if q.no_logprobs && (request.logprobs == Some(true) || request.top_logprobs.is_some()) {
        return reject(
            if request.logprobs == Some(true) { "logprobs" } else { "top_logprobs" },
            "log probabilities are not available",
        );
    }
    if q.no_logit_bias && request.logit_bias.is_some() {
        return reject("logit_bias", "token biasing is not available");
    }
    if q.no_penalties && (request.presence_penalty.is_some() || request.frequency_penalty.is_some()) {
        let param = if request.presence_penalty.is_some() { "presence_penalty" } else { "frequency_penalty" };
        return reject(param, "repetition penalties are not available");
    }
    if q.no_tools {
        for (param, set) in [
            ("tools", request.tools.is_some()),
            ("tool_choice", request.tool_choice.is_some()),
            ("parallel_tool_calls", request.parallel_tool_calls.is_some()),
        ] {
            if set {
                return reject(param, "function calling is not available");
            }
        }
    }
    if q.tool_choice_auto_only
        && request.tool_choice.as_ref().is_some_and(|c| !matches!(c, ToolChoice::Mode(ToolChoiceMode::Auto)))
    {
        return reject("tool_choice", "the model always chooses whether to call a tool (only `auto`)");
    }
    if q.no_json_schema && matches!(request.response_format, Some(ResponseFormat::JsonSchema { .. })) {
        return reject("response_format", "structured output takes `json_object` only, not `json_schema`");
    }
    if q.text_only || q.inline_images_only {
        check_images(provider, q, &request.messages)?;
    }

    let rename_max = q.max_tokens_only && request.max_completion_tokens.is_some();
    let rename_seed = q.seed_field.is_some() && request.seed.is_some();
    let strip = q.strip_attribution && (request.user.is_some() || request.metadata.is_some());
    let developer = q.developer_as_system && request.messages.iter().any(|m| matches!(m, ChatMessage::Developer(_)));
    let stream_options = q.no_stream_options && request.stream_options.is_some();
    if !(rename_max || rename_seed || strip || developer || stream_options) {
        return Ok(Cow::Borrowed(request));
    }
    let mut adapted = request.clone();
    if rename_max {
        let max = adapted.max_completion_tokens.take();
        adapted.max_tokens = adapted.max_tokens.or(max);
    }
    if let (Some(field), Some(seed)) = (q.seed_field, adapted.seed.take()) {
        adapted.extra.insert(field.to_owned(), seed.into());
    }
    if strip {
        adapted.user = None;
        adapted.metadata = None;
    }
    if developer {
        let messages = std::mem::take(&mut adapted.messages);
        adapted.messages = messages
            .into_iter()
            .map(|message| match message {
                ChatMessage::Developer(instructions) => ChatMessage::System(instructions),
                other => other,
            })
            .collect();
    }
    if stream_options {
        adapted.stream_options = None;
    }
    Ok(Cow::Owned(adapted))
}

/// Image parts against `text_only` / `inline_images_only`.
fn check_images(provider: &str, q: &Quirks, messages: &[ChatMessage]) -> Result<(), ProviderError> {
    for (i, message) in messages.iter().enumerate() {
        let content = match message {
            ChatMessage::System(m) | ChatMessage::Developer(m) => Some(&m.content),
            ChatMessage::User(m) => Some(&m.content),
            ChatMessage::Assistant(m) => m.content.as_ref(),
            ChatMessage::Tool(m) => Some(&m.content),
            ChatMessage::Function(_) => None,
        };
        let Some(MessageContent::Parts(parts)) = content else { continue };
        for (j, part) in parts.iter().enumerate() {
            let param = || format!("messages[{i}].content[{j}]");
            match part {
                ContentPart::Text { .. } => {}
                _ if q.text_only => {
                    return Err(ProviderError::unsupported(provider, &param(), "message content is text only"));
                }
                ContentPart::ImageUrl { image_url } if !image_url.url.starts_with("data:") => {
                    return Err(ProviderError::unsupported(
                        provider,
                        &format!("{}.image_url.url", param()),
                        "images must be inline (a base64 `data:` URL), not fetched from a URL",
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The embeddings request with the preset's quirks applied: a borrowed request when nothing changes.
pub fn adapt_embeddings<'a>(quirks: &Quirks, request: &'a EmbeddingsRequest) -> Cow<'a, EmbeddingsRequest> {
    let rename = quirks.dimensions_field.filter(|_| request.dimensions.is_some());
    let strip = quirks.strip_attribution && request.user.is_some();
    if rename.is_none() && !strip {
        return Cow::Borrowed(request);
    }
    let mut adapted = request.clone();
    if let (Some(field), Some(dimensions)) = (rename, adapted.dimensions.take()) {
        adapted.extra.insert(field.to_owned(), dimensions.into());
    }
    if strip {
        adapted.user = None;
    }
    Cow::Owned(adapted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(extra: serde_json::Value) -> ChatCompletionRequest {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(body).unwrap()
    }

    fn param(result: Result<Cow<'_, ChatCompletionRequest>, ProviderError>) -> String {
        match result {
            Err(ProviderError::Unsupported { param, .. }) => param,
            other => panic!("{:?}", other.map(|r| serde_json::to_value(&*r).unwrap())),
        }
    }

    #[test]
    fn developer_messages_go_as_system_where_the_role_is_missing() {
        let q = Quirks { developer_as_system: true, ..Quirks::default() };
        let r = request(json!({"messages": [
            {"role": "system", "content": "a"}, {"role": "developer", "content": "b"}, {"role": "user", "content": "c"}
        ]}));
        let body = serde_json::to_value(&*adapt("p", &q, &r).unwrap()).unwrap();
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "a"}, {"role": "system", "content": "b"}, {"role": "user", "content": "c"}
            ])
        );
        assert!(matches!(adapt("p", &q, &request(json!({}))).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn stream_options_are_dropped_where_refused() {
        let q = Quirks { no_stream_options: true, ..Quirks::default() };
        let r = request(json!({"stream": true, "stream_options": {"include_usage": true}}));
        let body = serde_json::to_value(&*adapt("p", &q, &r).unwrap()).unwrap();
        assert!(body.get("stream_options").is_none());
        assert_eq!(body["stream"], true);
    }

    #[test]
    fn tools_images_and_schemas_the_provider_cannot_take_are_named() {
        let tools = json!({"tools": [{"type": "function", "function": {"name": "f"}}]});
        assert_eq!(param(adapt("p", &Quirks { no_tools: true, ..Quirks::default() }, &request(tools))), "tools");
        let choice = json!({"tool_choice": "auto"});
        assert_eq!(param(adapt("p", &Quirks { no_tools: true, ..Quirks::default() }, &request(choice))), "tool_choice");
        let auto_only = Quirks { tool_choice_auto_only: true, ..Quirks::default() };
        assert_eq!(param(adapt("p", &auto_only, &request(json!({"tool_choice": "required"})))), "tool_choice");
        assert!(adapt("p", &auto_only, &request(json!({"tool_choice": "auto"}))).is_ok());

        let image = |url: &str| {
            request(json!({"messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": url}}
            ]}]}))
        };
        let text_only = Quirks { text_only: true, ..Quirks::default() };
        assert_eq!(param(adapt("p", &text_only, &image("data:image/png;base64,AAAA"))), "messages[0].content[1]");
        let inline = Quirks { inline_images_only: true, ..Quirks::default() };
        assert_eq!(
            param(adapt("p", &inline, &image("https://example.com/a.png"))),
            "messages[0].content[1].image_url.url"
        );
        assert!(adapt("p", &inline, &image("data:image/png;base64,AAAA")).is_ok());

        let schema = json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}});
        let no_schema = Quirks { no_json_schema: true, ..Quirks::default() };
        assert_eq!(param(adapt("p", &no_schema, &request(schema))), "response_format");
        assert!(adapt("p", &no_schema, &request(json!({"response_format": {"type": "json_object"}}))).is_ok());
    }
}
