//! The OpenAI chat request as an Anthropic Messages API request (`POST /v1/messages`).
//!
//! What maps where:
//! - system and developer messages -> the top-level `system` text;
//! - user / assistant / tool messages -> alternating `user` and `assistant` turns of content blocks:
//!   tool results (`tool` messages) are `tool_result` blocks of a user turn, tool calls are `tool_use`
//!   blocks, and consecutive messages of the same Anthropic role merge into one turn (Anthropic wants
//!   the roles to alternate);
//! - images: data URLs -> `base64` image sources, http(s) URLs -> `url` sources; PDF files given as
//!   data URLs -> `document` blocks;
//! - `max_completion_tokens` / `max_tokens` -> `max_tokens` (required by Anthropic; [`DEFAULT_MAX_TOKENS`]
//!   when the client gave none), `stop` -> `stop_sequences`, `user` -> `metadata.user_id`;
//! - tools -> `input_schema` tools, `tool_choice` none/auto/required/named -> none/auto/any/tool,
//!   `parallel_tool_calls: false` -> `disable_parallel_tool_use`;
//! - `response_format` json_object / json_schema -> one forced tool whose `input_schema` is the schema;
//!   the answer's tool input becomes the message text (see [`JsonMode`]).
//!
//! Refused with a 400 naming the parameter: `n > 1`, `logprobs`, `top_logprobs`, `logit_bias`,
//! non-zero `presence_penalty` / `frequency_penalty`, `seed`, `temperature` above 1, audio input,
//! files other than PDF data URLs, the deprecated `function_call` / `function` messages,
//! `response_format` together with the client's own tools (the model could not both call the tools
//! and be forced to answer through the JSON tool), and any field OpenAI does not document.
//!
//! Ignored because Anthropic has no counterpart and they do not change the answer: message `name`s,
//! an image's `detail` hint, a tool's `strict` flag, and `metadata` (OpenAI's labels for stored
//! completions).

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Value, json};

use crate::openai::ChatMessage;
use crate::openai::chat::{
    AssistantMessage, ChatCompletionRequest, ResponseFormat, Tool, ToolChoice as OpenAiToolChoice, ToolChoiceMode,
};
use crate::openai::content::{ContentPart, MessageContent};
use crate::providers::ProviderError;
use crate::providers::native::{arguments_object, data_url, instructions, no_choices_beyond_one};

/// `max_tokens` when the client set no limit: Anthropic requires one. 4096 fits every Claude model's
/// output limit (the Claude 3 models stop there), so the default never makes a request invalid.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The forced tool that carries a `json_object` answer.
pub const JSON_OBJECT_TOOL: &str = "json_response";

/// The image types Anthropic accepts.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

#[derive(Debug, Serialize)]
pub struct MessagesRequest<'a> {
    pub model: &'a str,
    pub max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

#[derive(Debug, Serialize)]
pub struct Metadata<'a> {
    pub user_id: &'a str,
}

/// One turn of the conversation.
#[derive(Debug, Serialize)]
pub struct Turn<'a> {
    pub role: Role,
    pub content: TurnContent<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// A turn's content: a lone text is sent as a plain string (as the API's own examples do), anything
/// else as blocks.
#[derive(Debug)]
pub struct TurnContent<'a>(Vec<Block<'a>>);

impl Serialize for TurnContent<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [Block::Text { text }] => serializer.serialize_str(text),
            blocks => blocks.serialize(serializer),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block<'a> {
    Text { text: &'a str },
    Image { source: Source<'a> },
    Document { source: Source<'a> },
    ToolUse { id: &'a str, name: &'a str, input: Value },
    ToolResult { tool_use_id: &'a str, content: ToolResultContent<'a> },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

/// A tool's output: its text, or text and image blocks.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ToolResultContent<'a> {
    Text(&'a str),
    Blocks(Vec<Block<'a>>),
}

#[derive(Debug, Serialize)]
pub struct ToolDefinition<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    pub input_schema: Cow<'a, Value>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice<'a> {
    None,
    Auto {
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    Any {
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    Tool {
        name: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
}

/// JSON mode: the answer comes back as the input of one forced tool, named here. Its input is the
/// client's answer text; the call is not a tool call for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonMode {
    pub tool: String,
}

/// The Anthropic request for `request`, and the JSON mode its answer is read in (if any).
pub fn messages_request<'a>(
    provider: &str,
    request: &'a ChatCompletionRequest,
) -> Result<(MessagesRequest<'a>, Option<JsonMode>), ProviderError> {
    refuse_unsupported(provider, request)?;
    let messages = turns(provider, &request.messages)?;
    let (mut tools, mut tool_choice) = tools(request)?;
    let json_mode = match &request.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(format) => {
            if !tools.is_empty() {
                return Err(ProviderError::unsupported(
                    provider,
                    "response_format",
                    "JSON mode is carried by a forced tool on Anthropic, so it cannot be combined with `tools`",
                ));
            }
            let tool = json_tool(format);
            tool_choice = Some(ToolChoice::Tool { name: tool.name, disable_parallel_tool_use: false });
            let mode = JsonMode { tool: tool.name.to_owned() };
            tools.push(tool);
            Some(mode)
        }
    };
    let body = MessagesRequest {
        model: &request.model,
        max_tokens: request.max_completion_tokens.or(request.max_tokens).unwrap_or(DEFAULT_MAX_TOKENS),
        system: instructions(provider, &request.messages)?,
        messages,
        stop_sequences: request.stop.as_ref().map(|s| s.sequences()).filter(|s| !s.is_empty()),
        temperature: request.temperature,
        top_p: request.top_p,
        metadata: request.user.as_deref().map(|user_id| Metadata { user_id }),
        tools,
        tool_choice,
        stream: request.is_stream(),
    };
    Ok((body, json_mode))
}

fn refuse_unsupported(provider: &str, request: &ChatCompletionRequest) -> Result<(), ProviderError> {
    let refuse = |param: &str, detail: &str| Err(ProviderError::unsupported(provider, param, detail));
    no_choices_beyond_one(provider, request)?;
    if request.logprobs == Some(true) {
        return refuse("logprobs", "Anthropic does not return log probabilities");
    }
    if request.top_logprobs.is_some_and(|n| n > 0) {
        return refuse("top_logprobs", "Anthropic does not return log probabilities");
    }
    if request.logit_bias.as_ref().is_some_and(|bias| !bias.is_empty()) {
        return refuse("logit_bias", "Anthropic has no token biasing");
    }
    if request.presence_penalty.is_some_and(|p| p != 0.0) {
        return refuse("presence_penalty", "Anthropic has no repetition penalties");
    }
    if request.frequency_penalty.is_some_and(|p| p != 0.0) {
        return refuse("frequency_penalty", "Anthropic has no repetition penalties");
    }
    if request.seed.is_some() {
        return refuse("seed", "Anthropic has no seeded sampling");
    }
    if request.temperature.is_some_and(|t| t > 1.0) {
        return refuse("temperature", "Anthropic takes a temperature from 0 to 1");
    }
    if let Some(field) = request.extra.keys().next() {
        return refuse(field, "not a parameter cherrypick can translate for Anthropic");
    }
    Ok(())
}

/// The conversation as alternating turns (system and developer messages go to `system`).
fn turns<'a>(provider: &str, messages: &'a [ChatMessage]) -> Result<Vec<Turn<'a>>, ProviderError> {
    let mut turns: Vec<Turn<'a>> = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let (role, blocks) = match message {
            ChatMessage::System(_) | ChatMessage::Developer(_) => continue,
            ChatMessage::User(m) => {
                (Role::User, content_blocks(provider, &format!("messages[{i}].content"), &m.content)?)
            }
            ChatMessage::Assistant(m) => (Role::Assistant, assistant_blocks(provider, i, m)?),
            ChatMessage::Tool(m) => {
                let content = match &m.content {
                    MessageContent::Text(text) => ToolResultContent::Text(text),
                    parts => {
                        ToolResultContent::Blocks(content_blocks(provider, &format!("messages[{i}].content"), parts)?)
                    }
                };
                (Role::User, vec![Block::ToolResult { tool_use_id: &m.tool_call_id, content }])
            }
            ChatMessage::Function(_) => {
                return Err(ProviderError::unsupported(
                    provider,
                    &format!("messages[{i}].role"),
                    "`function` messages are deprecated: answer tool calls with `tool` messages",
                ));
            }
        };
        if blocks.is_empty() {
            // A message with nothing in it (empty text, no tool calls) adds nothing to the
            // conversation, and Anthropic refuses empty turns.
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.0.extend(blocks),
            _ => turns.push(Turn { role, content: TurnContent(blocks) }),
        }
    }
    Ok(turns)
}

fn assistant_blocks<'a>(provider: &str, i: usize, m: &'a AssistantMessage) -> Result<Vec<Block<'a>>, ProviderError> {
    if m.function_call.is_some() {
        return Err(ProviderError::unsupported(
            provider,
            &format!("messages[{i}].function_call"),
            "`function_call` is deprecated: use `tool_calls`",
        ));
    }
    let mut blocks = match &m.content {
        Some(content) => content_blocks(provider, &format!("messages[{i}].content"), content)?,
        None => Vec::new(),
    };
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let input =
            arguments_object(&format!("messages[{i}].tool_calls[{j}].function.arguments"), &call.function.arguments)?;
        blocks.push(Block::ToolUse { id: &call.id, name: &call.function.name, input });
    }
    Ok(blocks)
}

/// A message's content as blocks; empty texts are left out (Anthropic refuses empty text blocks).
fn content_blocks<'a>(
    provider: &str,
    param: &str,
    content: &'a MessageContent,
) -> Result<Vec<Block<'a>>, ProviderError> {
    let parts = match content {
        MessageContent::Text(text) if text.is_empty() => return Ok(Vec::new()),
        MessageContent::Text(text) => return Ok(vec![Block::Text { text }]),
        MessageContent::Parts(parts) => parts,
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let block = match part {
            ContentPart::Text { text } | ContentPart::Refusal { refusal: text } if text.is_empty() => continue,
            ContentPart::Text { text } | ContentPart::Refusal { refusal: text } => Block::Text { text },
            ContentPart::ImageUrl { image_url } => {
                Block::Image { source: image_source(provider, &format!("{param}[{j}].image_url.url"), &image_url.url)? }
            }
            ContentPart::File { file } => {
                Block::Document { source: pdf_source(provider, &format!("{param}[{j}].file"), &file.fields)? }
            }
            ContentPart::InputAudio { .. } => {
                return Err(ProviderError::unsupported(
                    provider,
                    &format!("{param}[{j}]"),
                    "Anthropic does not take audio input",
                ));
            }
        };
        blocks.push(block);
    }
    Ok(blocks)
}

fn image_source<'a>(provider: &str, param: &str, url: &'a str) -> Result<Source<'a>, ProviderError> {
    if let Some(inline) = data_url(url) {
        if !IMAGE_TYPES.contains(&inline.media_type) {
            return Err(ProviderError::unsupported(provider, param, "Anthropic takes JPEG, PNG, GIF and WebP images"));
        }
        return Ok(Source::Base64 { media_type: inline.media_type, data: inline.data });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Source::Url { url });
    }
    Err(ProviderError::unsupported(provider, param, "images must be base64 data URLs or http(s) URLs"))
}

/// A file part: Anthropic reads PDFs given inline (`file_data` as a base64 data URL).
fn pdf_source<'a>(provider: &str, param: &str, file: &'a crate::openai::Extra) -> Result<Source<'a>, ProviderError> {
    match file.get("file_data").and_then(Value::as_str).and_then(data_url) {
        Some(inline) if inline.media_type == "application/pdf" => {
            Ok(Source::Base64 { media_type: inline.media_type, data: inline.data })
        }
        _ => Err(ProviderError::unsupported(provider, param, "Anthropic takes files as PDF data URLs in `file_data`")),
    }
}

fn tools(request: &ChatCompletionRequest) -> Result<(Vec<ToolDefinition<'_>>, Option<ToolChoice<'_>>), ProviderError> {
    let defined = request.tools.as_deref().unwrap_or_default();
    let mut tools = Vec::with_capacity(defined.len() + 1);
    for (i, Tool { kind, function }) in defined.iter().enumerate() {
        if kind != "function" {
            return Err(ProviderError::invalid_request(format!("tools[{i}].type"), "only `function` tools exist"));
        }
        tools.push(ToolDefinition {
            name: &function.name,
            description: function.description.as_deref(),
            input_schema: function.parameters.as_ref().map_or_else(|| Cow::Owned(empty_schema()), Cow::Borrowed),
        });
    }
    if tools.is_empty() {
        return match &request.tool_choice {
            Some(OpenAiToolChoice::Named(_) | OpenAiToolChoice::Mode(ToolChoiceMode::Required)) => {
                Err(ProviderError::invalid_request("tool_choice", "a tool must be called but no `tools` are given"))
            }
            _ => Ok((tools, None)),
        };
    }
    let disable_parallel_tool_use = request.parallel_tool_calls == Some(false);
    let choice = match &request.tool_choice {
        Some(OpenAiToolChoice::Mode(ToolChoiceMode::None)) => ToolChoice::None,
        None | Some(OpenAiToolChoice::Mode(ToolChoiceMode::Auto)) if !disable_parallel_tool_use => {
            return Ok((tools, None));
        }
        None | Some(OpenAiToolChoice::Mode(ToolChoiceMode::Auto)) => ToolChoice::Auto { disable_parallel_tool_use },
        Some(OpenAiToolChoice::Mode(ToolChoiceMode::Required)) => ToolChoice::Any { disable_parallel_tool_use },
        Some(OpenAiToolChoice::Named(named)) => {
            ToolChoice::Tool { name: &named.function.name, disable_parallel_tool_use }
        }
    };
    Ok((tools, Some(choice)))
}

/// `{"type": "object", "properties": {}}`: a function without parameters.
fn empty_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

/// The forced tool carrying a JSON answer: the client's schema (json_schema) or any object (json_object).
fn json_tool(format: &ResponseFormat) -> ToolDefinition<'_> {
    match format {
        ResponseFormat::JsonSchema { json_schema } => ToolDefinition {
            name: &json_schema.name,
            description: Some(
                json_schema.description.as_deref().unwrap_or("Respond with JSON that matches this schema."),
            ),
            input_schema: json_schema
                .schema
                .as_ref()
                .map_or_else(|| Cow::Owned(json!({"type": "object"})), Cow::Borrowed),
        },
        _ => ToolDefinition {
            name: JSON_OBJECT_TOOL,
            description: Some("Respond with a JSON object."),
            input_schema: Cow::Owned(json!({"type": "object"})),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> ChatCompletionRequest {
        let mut full = json!({"model": "claude-sonnet-4-5"});
        full.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        serde_json::from_value(full).unwrap()
    }

    fn translate(body: Value) -> Result<(Value, Option<JsonMode>), ProviderError> {
        let request = request(body);
        let (body, json_mode) = messages_request("p", &request)?;
        Ok((serde_json::to_value(&body).unwrap(), json_mode))
    }

    fn param_of(err: ProviderError) -> String {
        match err {
            ProviderError::Unsupported { param, .. } | ProviderError::InvalidRequest { param, .. } => param,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn plain_chat_with_sampling_and_defaults() {
        let (body, json_mode) = translate(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.5, "top_p": 0.9, "stop": "\n\n", "user": "u-1",
            "presence_penalty": 0, "logprobs": false, "metadata": {"team": "a"}
        }))
        .unwrap();
        assert_eq!(json_mode, None);
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5", "max_tokens": 4096,
                "messages": [{"role": "user", "content": "hi"}],
                "stop_sequences": ["\n\n"], "temperature": 0.5, "top_p": 0.9,
                "metadata": {"user_id": "u-1"}
            })
        );
        let (body, _) = translate(json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 7, "max_completion_tokens": 9, "stream": true})).unwrap();
        assert_eq!((body["max_tokens"].clone(), body["stream"].clone()), (json!(9), json!(true)));
    }

    #[test]
    fn system_and_developer_messages_become_the_system_prompt() {
        let (body, _) = translate(json!({"messages": [
            {"role": "system", "content": "be terse"},
            {"role": "developer", "content": "use metric"},
            {"role": "user", "content": "hi"}
        ]}))
        .unwrap();
        assert_eq!(body["system"], "be terse\n\nuse metric");
        assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
    }

    #[test]
    fn tool_calls_results_and_merged_turns() {
        let (body, _) = translate(json!({"messages": [
            {"role": "user", "content": "weather in Paris and Oslo?"},
            {"role": "user", "content": [{"type": "text", "text": "in celsius"}]},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "9C"}]},
            {"role": "user", "content": "thanks"},
            {"role": "assistant", "content": null}
        ]}))
        .unwrap();
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [
                    {"type": "text", "text": "weather in Paris and Oslo?"},
                    {"type": "text", "text": "in celsius"}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "9C"}]},
                    {"type": "text", "text": "thanks"}
                ]}
            ])
        );
        let err = translate(json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
        ]}]}))
        .unwrap_err();
        assert_eq!(param_of(err), "messages[0].tool_calls[0].function.arguments");
    }

    #[test]
    fn images_and_documents() {
        let (body, _) = translate(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBER"}},
            {"type": "text", "text": "compare"}
        ]}]}))
        .unwrap();
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}},
                {"type": "text", "text": "compare"}
            ])
        );
        for (part, param) in [
            (
                json!({"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}),
                "messages[0].content[0].image_url.url",
            ),
            (
                json!({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}),
                "messages[0].content[0].image_url.url",
            ),
            (
                json!({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
                "messages[0].content[0]",
            ),
            (json!({"type": "file", "file": {"file_id": "file-1"}}), "messages[0].content[0].file"),
        ] {
            let err = translate(json!({"messages": [{"role": "user", "content": [part]}]})).unwrap_err();
            assert_eq!(param_of(err), param);
        }
    }

    #[test]
    fn tools_and_every_tool_choice() {
        let tools = json!([
            {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}},
            {"type": "function", "function": {"name": "now"}}
        ]);
        let with = |extra: Value| {
            let mut body = json!({"messages": [{"role": "user", "content": "hi"}], "tools": tools.clone()});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            translate(body).map(|(b, _)| b)
        };
        let body = with(json!({})).unwrap();
        assert_eq!(
            body["tools"],
            json!([
                {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                {"name": "now", "input_schema": {"type": "object", "properties": {}}}
            ])
        );
        assert!(body.get("tool_choice").is_none());
        for (choice, parallel, expected) in [
            (json!("none"), json!(false), json!({"type": "none"})),
            (json!("auto"), json!(true), Value::Null),
            (json!("auto"), json!(false), json!({"type": "auto", "disable_parallel_tool_use": true})),
            (json!("required"), json!(null), json!({"type": "any"})),
            (
                json!({"type": "function", "function": {"name": "now"}}),
                json!(false),
                json!({"type": "tool", "name": "now", "disable_parallel_tool_use": true}),
            ),
        ] {
            let body = with(json!({"tool_choice": choice, "parallel_tool_calls": parallel})).unwrap();
            assert_eq!(body.get("tool_choice").cloned().unwrap_or(Value::Null), expected, "{choice}");
        }
        let err =
            translate(json!({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "required"})).unwrap_err();
        assert_eq!(param_of(err), "tool_choice");
    }

    #[test]
    fn json_modes_force_a_tool_carrying_the_schema() {
        let schema = json!({"type": "object", "properties": {"capital": {"type": "string"}}, "required": ["capital"]});
        let (body, json_mode) = translate(json!({
            "messages": [{"role": "user", "content": "capital of France?"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "capital", "schema": schema.clone(), "strict": true}}
        }))
        .unwrap();
        assert_eq!(json_mode, Some(JsonMode { tool: "capital".into() }));
        assert_eq!(
            body["tools"],
            json!([{"name": "capital", "description": "Respond with JSON that matches this schema.", "input_schema": schema}])
        );
        assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "capital"}));

        let (body, json_mode) = translate(
            json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}),
        )
        .unwrap();
        assert_eq!(json_mode, Some(JsonMode { tool: JSON_OBJECT_TOOL.into() }));
        assert_eq!(body["tools"][0]["input_schema"], json!({"type": "object"}));

        let (body, json_mode) =
            translate(json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}}))
                .unwrap();
        assert!(json_mode.is_none() && body.get("tools").is_none());

        let err = translate(json!({
            "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "f"}}]
        }))
        .unwrap_err();
        assert_eq!(param_of(err), "response_format");
    }

    #[test]
    fn what_anthropic_cannot_do_is_refused_naming_the_parameter() {
        for (extra, param) in [
            (json!({"n": 2}), "n"),
            (json!({"logprobs": true}), "logprobs"),
            (json!({"top_logprobs": 2}), "top_logprobs"),
            (json!({"logit_bias": {"50256": -100}}), "logit_bias"),
            (json!({"presence_penalty": 0.5}), "presence_penalty"),
            (json!({"frequency_penalty": -1}), "frequency_penalty"),
            (json!({"seed": 7}), "seed"),
            (json!({"temperature": 1.5}), "temperature"),
            (json!({"reasoning_effort": "low"}), "reasoning_effort"),
        ] {
            let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            assert_eq!(param_of(translate(body).unwrap_err()), param);
        }
        let err = translate(json!({"messages": [{"role": "function", "name": "f", "content": "1"}]})).unwrap_err();
        assert_eq!(param_of(err), "messages[0].role");
        let err = translate(json!({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]})).unwrap_err();
        assert_eq!(param_of(err), "messages[0].content");
    }
}
