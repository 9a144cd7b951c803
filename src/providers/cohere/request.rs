//! An OpenAI chat request as the body of Cohere's `POST /v2/chat`. The body borrows from the
//! request: only the bits Cohere spells differently are built anew.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::openai::chat::{
    AssistantMessage, ChatCompletionRequest, ResponseFormat, Tool, ToolCall, ToolChoice, ToolChoiceMode,
};
use crate::openai::content::{ContentPart, ImageUrl, MessageContent};
use crate::openai::{ChatMessage, Extra};
use crate::providers::ProviderError;
use crate::providers::native::no_choices_beyond_one;

/// Cohere-native request fields a client may send as extra fields; they pass through untouched.
const NATIVE_FIELDS: &[&str] = &["k", "safety_mode", "thinking"];

#[derive(Debug, Serialize)]
pub struct ChatBody<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDefinition<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict_tools: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<JsonFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(flatten)]
    native: BTreeMap<&'a str, &'a Value>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum Message<'a> {
    System {
        content: Content<'a>,
    },
    User {
        content: Content<'a>,
    },
    Assistant {
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<Content<'a>>,
        /// The text an assistant wrote before its tool calls: Cohere keeps it apart from `content`.
        #[serde(skip_serializing_if = "Option::is_none")]
        tool_plan: Option<String>,
        #[serde(skip_serializing_if = "<[ToolCall]>::is_empty")]
        tool_calls: &'a [ToolCall],
    },
    Tool {
        tool_call_id: &'a str,
        content: Content<'a>,
    },
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(&'a str),
    Parts(Vec<Part<'a>>),
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'a> {
    Text {
        text: &'a str,
    },
    /// `{url, detail}` as OpenAI has it: Cohere takes data URLs and web URLs alike.
    ImageUrl {
        image_url: &'a ImageUrl,
    },
}

#[derive(Debug, Serialize)]
struct ToolDefinition<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDefinition<'a>,
}

#[derive(Debug, Serialize)]
struct FunctionDefinition<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a Value>,
}

/// Cohere's JSON mode: `{"type": "json_object"}`, with `json_schema` for structured output.
#[derive(Debug, Serialize)]
struct JsonFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    json_schema: Option<&'a Value>,
}

/// The Cohere body for `request`, or a 400 naming the first parameter Cohere cannot take.
pub fn chat_body<'a>(provider: &str, request: &'a ChatCompletionRequest) -> Result<ChatBody<'a>, ProviderError> {
    let unsupported = |param: &str, why: &str| Err(ProviderError::unsupported(provider, param, why));
    no_choices_beyond_one(provider, request)?;
    if request.logit_bias.as_ref().is_some_and(|bias| !bias.is_empty()) {
        return unsupported("logit_bias", "token biasing is not available");
    }
    // Cohere can return log probabilities, but not in a shape OpenAI's `logprobs` can be built from
    // (a probability per token id, no token text per id, no alternatives).
    if request.logprobs == Some(true) {
        return unsupported("logprobs", "log probabilities are not available");
    }
    if request.top_logprobs.is_some_and(|n| n > 0) {
        return unsupported("top_logprobs", "alternative tokens are not available");
    }
    if request.parallel_tool_calls == Some(false) {
        return unsupported("parallel_tool_calls", "the model may always call several tools at once");
    }
    let native = native_fields(provider, &request.extra)?;
    let (tools, strict_tools) = tools(provider, request.tools.as_deref().unwrap_or_default())?;
    Ok(ChatBody {
        model: &request.model,
        messages: messages(provider, &request.messages)?,
        stream: request.is_stream().then_some(true),
        tools,
        strict_tools,
        tool_choice: tool_choice(provider, request.tool_choice.as_ref())?,
        response_format: match &request.response_format {
            None | Some(ResponseFormat::Text) => None,
            Some(ResponseFormat::JsonObject) => Some(JsonFormat { kind: "json_object", json_schema: None }),
            Some(ResponseFormat::JsonSchema { json_schema }) => {
                Some(JsonFormat { kind: "json_object", json_schema: json_schema.schema.as_ref() })
            }
        },
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        stop_sequences: request.stop.as_ref().map(|stop| stop.sequences()),
        temperature: request.temperature,
        p: request.top_p,
        seed: request.seed,
        frequency_penalty: request.frequency_penalty,
        presence_penalty: request.presence_penalty,
        native,
    })
}

/// Extra fields: Cohere's own parameters pass through; anything else is a 400 naming it. A `null`
/// is the same as leaving the field out. (`user` and `metadata` are OpenAI attribution fields that
/// do not change the answer; Cohere has no place for them and they are not sent.)
fn native_fields<'a>(provider: &str, extra: &'a Extra) -> Result<BTreeMap<&'a str, &'a Value>, ProviderError> {
    let mut native = BTreeMap::new();
    for (name, value) in extra {
        if value.is_null() {
            continue;
        }
        if !NATIVE_FIELDS.contains(&name.as_str()) {
            return Err(ProviderError::unsupported(provider, name, "not a parameter Cohere's chat API takes"));
        }
        native.insert(name.as_str(), value);
    }
    Ok(native)
}

fn messages<'a>(provider: &str, messages: &'a [ChatMessage]) -> Result<Vec<Message<'a>>, ProviderError> {
    messages
        .iter()
        .enumerate()
        .map(|(i, message)| {
            let at = |field: &str| format!("messages[{i}].{field}");
            let unsupported = |field: &str, why: &str| Err(ProviderError::unsupported(provider, &at(field), why));
            match message {
                ChatMessage::System(m) | ChatMessage::Developer(m) => {
                    no_extra_fields(provider, i, &m.extra)?;
                    if m.name.is_some() {
                        return unsupported("name", "messages have no author names");
                    }
                    Ok(Message::System { content: text_content(provider, &at("content"), &m.content)? })
                }
                ChatMessage::User(m) => {
                    no_extra_fields(provider, i, &m.extra)?;
                    if m.name.is_some() {
                        return unsupported("name", "messages have no author names");
                    }
                    Ok(Message::User { content: user_content(provider, i, &m.content)? })
                }
                ChatMessage::Assistant(m) => assistant(provider, i, m),
                ChatMessage::Tool(m) => {
                    no_extra_fields(provider, i, &m.extra)?;
                    Ok(Message::Tool {
                        tool_call_id: &m.tool_call_id,
                        content: text_content(provider, &at("content"), &m.content)?,
                    })
                }
                ChatMessage::Function(_) => {
                    unsupported("role", "`function` messages are deprecated: use `tool` messages")
                }
            }
        })
        .collect()
}

fn assistant<'a>(provider: &str, i: usize, m: &'a AssistantMessage) -> Result<Message<'a>, ProviderError> {
    let at = |field: &str| format!("messages[{i}].{field}");
    let unsupported = |field: &str, why: &str| Err(ProviderError::unsupported(provider, &at(field), why));
    no_extra_fields(provider, i, &m.extra)?;
    if m.name.is_some() {
        return unsupported("name", "messages have no author names");
    }
    if m.refusal.is_some() {
        return unsupported("refusal", "an assistant message cannot carry a refusal");
    }
    if m.function_call.is_some() {
        return unsupported("function_call", "deprecated: use `tool_calls`");
    }
    let tool_calls = m.tool_calls.as_deref().unwrap_or_default();
    if let Some(j) = tool_calls.iter().position(|call| call.kind != "function") {
        return unsupported(&format!("tool_calls[{j}].type"), "only function tool calls exist");
    }
    let content = m.content.as_ref().map(|c| text_content(provider, &at("content"), c)).transpose()?;
    if tool_calls.is_empty() {
        return Ok(Message::Assistant { content, tool_plan: None, tool_calls });
    }
    // Cohere answers a tool-calling turn with its reasoning in `tool_plan`, not `content`; the text
    // an OpenAI client echoes back next to its tool calls goes back where it came from.
    let tool_plan = m.content.as_ref().map(MessageContent::text).filter(|text| !text.is_empty());
    Ok(Message::Assistant { content: None, tool_plan, tool_calls })
}

/// Unknown fields on a message: a 400 naming them (a `null` is as good as absent).
fn no_extra_fields(provider: &str, i: usize, extra: &Extra) -> Result<(), ProviderError> {
    match extra.iter().find(|(_, value)| !value.is_null()) {
        Some((name, _)) => Err(ProviderError::unsupported(
            provider,
            &format!("messages[{i}].{name}"),
            "not a message field Cohere takes",
        )),
        None => Ok(()),
    }
}

/// Content that must be text (system, assistant and tool messages).
fn text_content<'a>(provider: &str, param: &str, content: &'a MessageContent) -> Result<Content<'a>, ProviderError> {
    match content {
        MessageContent::Text(text) => Ok(Content::Text(text)),
        MessageContent::Parts(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| match part {
                ContentPart::Text { text } => Ok(Part::Text { text }),
                _ => Err(ProviderError::unsupported(provider, &format!("{param}[{j}]"), "only text is accepted here")),
            })
            .collect::<Result<_, _>>()
            .map(Content::Parts),
    }
}

/// A user message's content: text and images.
fn user_content<'a>(provider: &str, i: usize, content: &'a MessageContent) -> Result<Content<'a>, ProviderError> {
    let parts = match content {
        MessageContent::Text(text) => return Ok(Content::Text(text)),
        MessageContent::Parts(parts) => parts,
    };
    parts
        .iter()
        .enumerate()
        .map(|(j, part)| match part {
            ContentPart::Text { text } => Ok(Part::Text { text }),
            ContentPart::ImageUrl { image_url } => Ok(Part::ImageUrl { image_url }),
            ContentPart::InputAudio { .. } => Err(ProviderError::unsupported(
                provider,
                &format!("messages[{i}].content[{j}]"),
                "audio input is not available",
            )),
            ContentPart::File { .. } => Err(ProviderError::unsupported(
                provider,
                &format!("messages[{i}].content[{j}]"),
                "file input is not available",
            )),
            ContentPart::Refusal { .. } => Err(ProviderError::unsupported(
                provider,
                &format!("messages[{i}].content[{j}]"),
                "a user message cannot carry a refusal",
            )),
        })
        .collect::<Result<_, _>>()
        .map(Content::Parts)
}

/// Function tools as Cohere defines them (the same shape, less `strict`), and `strict_tools`:
/// Cohere's strict mode covers all tools of a request or none.
fn tools<'a>(provider: &str, tools: &'a [Tool]) -> Result<(Vec<ToolDefinition<'a>>, Option<bool>), ProviderError> {
    let definitions = tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            if tool.kind != "function" {
                return Err(ProviderError::unsupported(
                    provider,
                    &format!("tools[{i}].type"),
                    "only function tools exist",
                ));
            }
            let f = &tool.function;
            Ok(ToolDefinition {
                kind: "function",
                function: FunctionDefinition {
                    name: &f.name,
                    description: f.description.as_deref(),
                    parameters: f.parameters.as_ref(),
                },
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let strict = |tool: &Tool| tool.function.strict == Some(true);
    let strict_tools = match tools.iter().position(strict) {
        None => None,
        Some(_) if tools.iter().all(strict) => Some(true),
        Some(_) => {
            let i = tools.iter().position(|tool| !strict(tool)).unwrap_or_default();
            return Err(ProviderError::unsupported(
                provider,
                &format!("tools[{i}].function.strict"),
                "strict mode applies to all tools of a request or to none",
            ));
        }
    };
    Ok((definitions, strict_tools))
}

fn tool_choice(provider: &str, choice: Option<&ToolChoice>) -> Result<Option<&'static str>, ProviderError> {
    match choice {
        None | Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => Ok(None),
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => Ok(Some("NONE")),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => Ok(Some("REQUIRED")),
        Some(ToolChoice::Named(_)) => Err(ProviderError::unsupported(
            provider,
            "tool_choice",
            "a named tool cannot be forced: use \"required\" (with only that tool) instead",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> ChatCompletionRequest {
        serde_json::from_value(body).unwrap()
    }

    fn body(request: &ChatCompletionRequest) -> Value {
        serde_json::to_value(chat_body("cohere", request).unwrap()).unwrap()
    }

    fn rejected(body: Value) -> String {
        match chat_body("cohere", &request(body)) {
            Err(ProviderError::Unsupported { param, .. }) => param,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_parameter_in_cohere_words() {
        let r = request(json!({
            "model": "command-a-03-2025",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": true, "stream_options": {"include_usage": true},
            "temperature": 0.5, "top_p": 0.9, "seed": 7, "max_tokens": 10, "max_completion_tokens": 20,
            "stop": "END", "frequency_penalty": 0.1, "presence_penalty": 0.2,
            "response_format": {"type": "json_object"},
            "user": "u1", "metadata": {"a": "b"}, "k": 40, "safety_mode": "STRICT", "n": 1,
            "parallel_tool_calls": true, "logprobs": false
        }));
        assert_eq!(
            body(&r),
            json!({
                "model": "command-a-03-2025",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": true,
                "temperature": 0.5, "p": 0.9, "seed": 7, "max_tokens": 20, "stop_sequences": ["END"],
                "frequency_penalty": 0.1, "presence_penalty": 0.2,
                "response_format": {"type": "json_object"},
                "k": 40, "safety_mode": "STRICT"
            })
        );
    }

    #[test]
    fn roles_images_tool_calls_and_results() {
        let r = request(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "be terse"},
                {"role": "developer", "content": [{"type": "text", "text": "use metric"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
                ]},
                {"role": "assistant", "content": "I will look it up.", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
                ], "refusal": null},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "assistant", "content": "Sunny."}
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "d", "parameters": {"type": "object"}}}],
            "tool_choice": "required"
        }));
        assert_eq!(
            body(&r),
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "be terse"},
                    {"role": "system", "content": [{"type": "text", "text": "use metric"}]},
                    {"role": "user", "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
                    ]},
                    {"role": "assistant", "tool_plan": "I will look it up.", "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                    {"role": "assistant", "content": "Sunny."}
                ],
                "tools": [{"type": "function", "function": {"name": "weather", "description": "d", "parameters": {"type": "object"}}}],
                "tool_choice": "REQUIRED"
            })
        );
    }

    #[test]
    fn structured_output_and_strict_tools() {
        let r = request(json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "strict": true, "schema": {"type": "object"}}},
            "tools": [{"type": "function", "function": {"name": "f", "strict": true}}],
            "tool_choice": "none"
        }));
        let b = body(&r);
        assert_eq!(b["response_format"], json!({"type": "json_object", "json_schema": {"type": "object"}}));
        assert_eq!(b["strict_tools"], true);
        assert_eq!(b["tool_choice"], "NONE");
        assert_eq!(b["tools"], json!([{"type": "function", "function": {"name": "f"}}]));
        let text = request(json!({"model": "m", "messages": [], "response_format": {"type": "text"}}));
        assert!(body(&text).get("response_format").is_none());
    }

    #[test]
    fn what_cohere_cannot_take_is_a_400_naming_it() {
        let base = |extra: Value| {
            let mut b = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            b
        };
        assert_eq!(rejected(base(json!({"n": 2}))), "n");
        assert_eq!(rejected(base(json!({"logit_bias": {"1": 5}}))), "logit_bias");
        assert_eq!(rejected(base(json!({"logprobs": true}))), "logprobs");
        assert_eq!(rejected(base(json!({"top_logprobs": 2}))), "top_logprobs");
        assert_eq!(rejected(base(json!({"parallel_tool_calls": false}))), "parallel_tool_calls");
        assert_eq!(rejected(base(json!({"reasoning_effort": "low"}))), "reasoning_effort");
        assert_eq!(
            rejected(base(json!({"tool_choice": {"type": "function", "function": {"name": "f"}}}))),
            "tool_choice"
        );
        assert_eq!(
            rejected(base(json!({"tools": [
                {"type": "function", "function": {"name": "a", "strict": true}},
                {"type": "function", "function": {"name": "b"}}
            ]}))),
            "tools[1].function.strict"
        );
        let audio = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
        ]}]});
        assert_eq!(rejected(audio), "messages[0].content[0]");
        let image_in_system = json!({"model": "m", "messages": [{"role": "system", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
        ]}]});
        assert_eq!(rejected(image_in_system), "messages[0].content[0]");
        let named = json!({"model": "m", "messages": [{"role": "user", "content": "hi", "name": "ada"}]});
        assert_eq!(rejected(named), "messages[0].name");
        let unknown = json!({"model": "m", "messages": [{"role": "user", "content": "hi", "cache_control": {}}]});
        assert_eq!(rejected(unknown), "messages[0].cache_control");
        let function = json!({"model": "m", "messages": [{"role": "function", "name": "f", "content": "x"}]});
        assert_eq!(rejected(function), "messages[0].role");
    }
}
