//! OpenAI chat requests as Bedrock Converse requests, serialised from borrowed parts of the request.
//!
//! Decisions where the APIs differ:
//! - system and developer messages become `system` blocks, one per text, wherever they appear;
//! - `tool` messages become `toolResult` blocks of a user turn (text, images); consecutive turns of
//!   one role are merged, as Converse wants user and assistant turns to alternate;
//! - `tool_choice: "none"` leaves the tools out (Converse cannot forbid calls to tools it knows), which
//!   is refused when the conversation already holds tool calls: Converse needs the tool definitions
//!   to read them;
//! - JSON mode and structured output force a tool whose input schema is the wanted schema (the way
//!   Anthropic's models do structured output on Bedrock); the tool's input is the answer's text. It
//!   cannot be combined with the client's own tools;
//! - `metadata` becomes `requestMetadata` (Bedrock's invocation-log tags); `user`, message `name`s,
//!   an image's `detail` and `stream_options` have no Converse counterpart and do not change the
//!   answer, so they are not sent (usage is always reported);
//! - what Converse cannot do (`n` > 1, log probabilities, `logit_bias`, penalties, `seed`,
//!   `parallel_tool_calls: false`, audio and file parts, image URLs, unknown parameters) is a 400
//!   naming the parameter. A tool's `strict` flag is a best-effort hint and is not sent.

use std::sync::LazyLock;

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::openai::ChatMessage;
use crate::openai::Extra;
use crate::openai::chat::{ChatCompletionRequest, ResponseFormat, ToolChoice, ToolChoiceMode};
use crate::openai::content::{ContentPart, MessageContent};
use crate::providers::ProviderError;
use crate::providers::native::{data_url, no_choices_beyond_one};

/// The Converse request of a chat request, and whether its answer comes back as a forced tool call.
#[derive(Debug)]
pub struct Converse<'a> {
    pub body: ConverseBody<'a>,
    /// JSON mode: the forced tool's input is the answer's text.
    pub json_mode: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseBody<'a> {
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<SystemBlock<'a>>,
    #[serde(skip_serializing_if = "InferenceConfig::is_empty")]
    inference_config: InferenceConfig<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_metadata: Option<&'a Extra>,
}

#[derive(Debug, Serialize)]
struct Turn<'a> {
    role: Role,
    content: Vec<Block<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    User,
    Assistant,
}

#[derive(Debug, Serialize)]
struct SystemBlock<'a> {
    text: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum Block<'a> {
    Text(&'a str),
    Image(Image<'a>),
    ToolUse(ToolUse<'a>),
    ToolResult(ToolResult<'a>),
}

#[derive(Debug, Serialize)]
struct Image<'a> {
    format: &'static str,
    source: ImageSource<'a>,
}

#[derive(Debug, Serialize)]
struct ImageSource<'a> {
    /// Base64, as the JSON protocol carries blobs.
    bytes: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolUse<'a> {
    tool_use_id: &'a str,
    name: &'a str,
    input: Input<'a>,
}

/// A tool call's arguments: the client's JSON object as written, or `{}` for empty arguments.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Input<'a> {
    Raw(&'a RawValue),
    Empty(EmptyObject),
}

#[derive(Debug, Serialize)]
struct EmptyObject {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolResult<'a> {
    tool_use_id: &'a str,
    content: Vec<ResultBlock<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum ResultBlock<'a> {
    Text(&'a str),
    Image(Image<'a>),
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<&'a [String]>,
}

impl InferenceConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_tokens.is_none() && self.temperature.is_none() && self.top_p.is_none() && self.stop_sequences.is_none()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    tools: Vec<ToolEntry<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Choice<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolEntry<'a> {
    tool_spec: ToolSpec<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolSpec<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: Schema<'a>,
}

#[derive(Debug, Serialize)]
struct Schema<'a> {
    json: &'a Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum Choice<'a> {
    Auto(EmptyObject),
    Any(EmptyObject),
    Tool { name: &'a str },
}

/// The schema of a tool defined without parameters, and of JSON mode's answer.
static ANY_OBJECT: LazyLock<Value> = LazyLock::new(|| serde_json::json!({"type": "object", "properties": {}}));
static JSON_OBJECT: LazyLock<Value> = LazyLock::new(|| serde_json::json!({"type": "object"}));

/// The forced tool of `response_format: {"type": "json_object"}`.
pub const JSON_OBJECT_TOOL: &str = "json_object";

/// Builds the Converse request, or says which parameter Converse cannot take.
pub fn converse<'a>(provider: &str, request: &'a ChatCompletionRequest) -> Result<Converse<'a>, ProviderError> {
    check_parameters(provider, request)?;
    let mut system = Vec::new();
    let mut turns: Vec<Turn<'a>> = Vec::with_capacity(request.messages.len());
    let mut has_tool_blocks = false;
    for (i, message) in request.messages.iter().enumerate() {
        let (role, blocks) = match message {
            ChatMessage::System(m) | ChatMessage::Developer(m) => {
                instruction_blocks(provider, i, &m.content, &mut system)?;
                continue;
            }
            ChatMessage::User(m) => (Role::User, user_blocks(provider, i, &m.content)?),
            ChatMessage::Assistant(m) => {
                if m.function_call.is_some() {
                    return Err(ProviderError::unsupported(
                        provider,
                        &format!("messages[{i}].function_call"),
                        "use `tool_calls`: the deprecated function call is not translated",
                    ));
                }
                let mut blocks = Vec::new();
                if let Some(content) = &m.content {
                    assistant_text(provider, i, content, &mut blocks)?;
                }
                for (j, call) in m.tool_calls.iter().flatten().enumerate() {
                    has_tool_blocks = true;
                    let input = arguments(
                        &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                        &call.function.arguments,
                    )?;
                    blocks.push(Block::ToolUse(ToolUse { tool_use_id: &call.id, name: &call.function.name, input }));
                }
                (Role::Assistant, blocks)
            }
            ChatMessage::Tool(m) => {
                has_tool_blocks = true;
                let content = result_blocks(provider, i, &m.content)?;
                (Role::User, vec![Block::ToolResult(ToolResult { tool_use_id: &m.tool_call_id, content })])
            }
            ChatMessage::Function(_) => {
                return Err(ProviderError::unsupported(
                    provider,
                    &format!("messages[{i}].role"),
                    "use `tool` messages: the deprecated `function` role is not translated",
                ));
            }
        };
        // A turn with nothing to say (an assistant message of empty text) is left out: Converse
        // refuses empty turns and blank text.
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => turns.push(Turn { role, content: blocks }),
        }
    }
    let (tool_config, json_mode) = tool_config(provider, request, has_tool_blocks)?;
    let inference_config = InferenceConfig {
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        temperature: request.temperature,
        top_p: request.top_p,
        stop_sequences: request.stop.as_ref().map(|s| s.sequences()).filter(|s| !s.is_empty()),
    };
    let body = ConverseBody {
        messages: turns,
        system,
        inference_config,
        tool_config,
        request_metadata: request.metadata.as_ref().filter(|m| !m.is_empty()),
    };
    Ok(Converse { body, json_mode })
}

fn check_parameters(provider: &str, request: &ChatCompletionRequest) -> Result<(), ProviderError> {
    let refuse = |param: &str, why: &str| Err(ProviderError::unsupported(provider, param, why));
    no_choices_beyond_one(provider, request)?;
    if request.logprobs == Some(true) {
        return refuse("logprobs", "Bedrock's Converse API does not return log probabilities");
    }
    if request.top_logprobs.is_some() {
        return refuse("top_logprobs", "Bedrock's Converse API does not return log probabilities");
    }
    if request.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return refuse("logit_bias", "Bedrock's Converse API has no token biasing");
    }
    if request.presence_penalty.is_some_and(|p| p != 0.0) {
        return refuse("presence_penalty", "Bedrock's Converse API has no repetition penalties");
    }
    if request.frequency_penalty.is_some_and(|p| p != 0.0) {
        return refuse("frequency_penalty", "Bedrock's Converse API has no repetition penalties");
    }
    if request.seed.is_some() {
        return refuse("seed", "Bedrock's Converse API has no sampling seed");
    }
    if request.parallel_tool_calls == Some(false) {
        return refuse("parallel_tool_calls", "Bedrock's Converse API cannot turn parallel tool calls off");
    }
    if let Some(name) = request.extra.keys().next() {
        return refuse(name, "Bedrock's Converse API has no such parameter");
    }
    if let Some(metadata) = &request.metadata
        && let Some((key, _)) = metadata.iter().find(|(_, v)| !v.is_string())
    {
        return Err(ProviderError::invalid_request(
            format!("metadata.{key}"),
            "metadata values must be strings (they become Bedrock's requestMetadata)",
        ));
    }
    Ok(())
}

fn instruction_blocks<'a>(
    provider: &str,
    i: usize,
    content: &'a MessageContent,
    system: &mut Vec<SystemBlock<'a>>,
) -> Result<(), ProviderError> {
    match content {
        MessageContent::Text(text) => system.push(SystemBlock { text }),
        MessageContent::Parts(parts) => {
            for (j, part) in parts.iter().enumerate() {
                let ContentPart::Text { text } = part else {
                    return Err(ProviderError::unsupported(
                        provider,
                        &format!("messages[{i}].content[{j}]"),
                        "system instructions must be text",
                    ));
                };
                system.push(SystemBlock { text });
            }
        }
    }
    Ok(())
}

fn user_blocks<'a>(provider: &str, i: usize, content: &'a MessageContent) -> Result<Vec<Block<'a>>, ProviderError> {
    match content {
        MessageContent::Text(text) => Ok(vec![Block::Text(text)]),
        MessageContent::Parts(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| match part {
                ContentPart::Text { text } => Ok(Block::Text(text)),
                ContentPart::ImageUrl { image_url } => {
                    image(provider, &format!("messages[{i}].content[{j}].image_url.url"), &image_url.url)
                        .map(Block::Image)
                }
                other => Err(unsupported_part(provider, i, j, other)),
            })
            .collect(),
    }
}

fn assistant_text<'a>(
    provider: &str,
    i: usize,
    content: &'a MessageContent,
    blocks: &mut Vec<Block<'a>>,
) -> Result<(), ProviderError> {
    match content {
        MessageContent::Text(text) if !text.is_empty() => blocks.push(Block::Text(text)),
        MessageContent::Text(_) => {}
        MessageContent::Parts(parts) => {
            for (j, part) in parts.iter().enumerate() {
                match part {
                    ContentPart::Text { text } | ContentPart::Refusal { refusal: text } if !text.is_empty() => {
                        blocks.push(Block::Text(text));
                    }
                    ContentPart::Text { .. } | ContentPart::Refusal { .. } => {}
                    other => return Err(unsupported_part(provider, i, j, other)),
                }
            }
        }
    }
    Ok(())
}

fn result_blocks<'a>(
    provider: &str,
    i: usize,
    content: &'a MessageContent,
) -> Result<Vec<ResultBlock<'a>>, ProviderError> {
    match content {
        MessageContent::Text(text) => Ok(vec![ResultBlock::Text(text)]),
        MessageContent::Parts(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| match part {
                ContentPart::Text { text } => Ok(ResultBlock::Text(text)),
                ContentPart::ImageUrl { image_url } => {
                    image(provider, &format!("messages[{i}].content[{j}].image_url.url"), &image_url.url)
                        .map(ResultBlock::Image)
                }
                other => Err(unsupported_part(provider, i, j, other)),
            })
            .collect(),
    }
}

fn unsupported_part(provider: &str, i: usize, j: usize, part: &ContentPart) -> ProviderError {
    let what = match part {
        ContentPart::InputAudio { .. } => "audio input is not available through Bedrock's Converse API",
        ContentPart::File { .. } => "file parts are not translated for Bedrock",
        ContentPart::Refusal { .. } => "a refusal part belongs to an assistant message",
        ContentPart::Text { .. } | ContentPart::ImageUrl { .. } => "this part is not accepted here",
    };
    ProviderError::unsupported(provider, &format!("messages[{i}].content[{j}]"), what)
}

/// An image given as a data URL; Converse takes image bytes only, not URLs to fetch.
fn image<'a>(provider: &str, param: &str, url: &'a str) -> Result<Image<'a>, ProviderError> {
    let Some(data) = data_url(url) else {
        return Err(ProviderError::unsupported(
            provider,
            param,
            "Bedrock takes images as base64 data URLs (data:image/png;base64,...), not as links",
        ));
    };
    let format = match data.media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => {
            return Err(ProviderError::unsupported(provider, param, "Bedrock takes PNG, JPEG, GIF and WebP images"));
        }
    };
    Ok(Image { format, source: ImageSource { bytes: data.data } })
}

/// A tool call's arguments as the JSON object they are, passed on as written.
fn arguments<'a>(param: &str, arguments: &'a str) -> Result<Input<'a>, ProviderError> {
    if arguments.trim().is_empty() {
        return Ok(Input::Empty(EmptyObject {}));
    }
    match serde_json::from_str::<&RawValue>(arguments) {
        Ok(raw) if raw.get().starts_with('{') => Ok(Input::Raw(raw)),
        Ok(_) => Err(ProviderError::invalid_request(param, "tool call arguments must be a JSON object")),
        Err(e) => Err(ProviderError::invalid_request(param, format!("tool call arguments are not JSON: {e}"))),
    }
}

/// `toolConfig` from the tools, `tool_choice` and `response_format`; and whether JSON mode is on.
fn tool_config<'a>(
    provider: &str,
    request: &'a ChatCompletionRequest,
    has_tool_blocks: bool,
) -> Result<(Option<ToolConfig<'a>>, bool), ProviderError> {
    let tools = request.tools.as_deref().unwrap_or_default();
    let json_tool = match &request.response_format {
        Some(ResponseFormat::JsonObject) => Some(ToolSpec {
            name: JSON_OBJECT_TOOL,
            description: Some("Answer with a JSON object."),
            input_schema: Schema { json: &JSON_OBJECT },
        }),
        Some(ResponseFormat::JsonSchema { json_schema }) => Some(ToolSpec {
            name: &json_schema.name,
            description: json_schema.description.as_deref(),
            input_schema: Schema { json: json_schema.schema.as_ref().unwrap_or(&JSON_OBJECT) },
        }),
        Some(ResponseFormat::Text) | None => None,
    };
    if let Some(spec) = json_tool {
        if !tools.is_empty() {
            return Err(ProviderError::unsupported(
                provider,
                "response_format",
                "on Bedrock, JSON mode forces a tool call and cannot be combined with `tools`",
            ));
        }
        let name = spec.name;
        let config =
            ToolConfig { tools: vec![ToolEntry { tool_spec: spec }], tool_choice: Some(Choice::Tool { name }) };
        return Ok((Some(config), true));
    }
    let choice = match &request.tool_choice {
        None => None,
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => Some(Choice::Auto(EmptyObject {})),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => Some(Choice::Any(EmptyObject {})),
        Some(ToolChoice::Named(named)) => Some(Choice::Tool { name: &named.function.name }),
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => {
            if has_tool_blocks && !tools.is_empty() {
                return Err(ProviderError::unsupported(
                    provider,
                    "tool_choice",
                    "Bedrock cannot forbid tool calls while the conversation holds tool calls \
                     (it needs the tools to read them); use `auto`",
                ));
            }
            return Ok((None, false));
        }
    };
    if tools.is_empty() {
        return match choice {
            Some(Choice::Any(_) | Choice::Tool { .. }) => {
                Err(ProviderError::invalid_request("tool_choice", "a tool can only be required when `tools` are given"))
            }
            _ => Ok((None, false)),
        };
    }
    let tools = tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            if tool.kind != "function" {
                return Err(ProviderError::unsupported(
                    provider,
                    &format!("tools[{i}].type"),
                    "Bedrock takes function tools only",
                ));
            }
            let function = &tool.function;
            Ok(ToolEntry {
                tool_spec: ToolSpec {
                    name: &function.name,
                    description: function.description.as_deref(),
                    input_schema: Schema { json: function.parameters.as_ref().unwrap_or(&ANY_OBJECT) },
                },
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((Some(ToolConfig { tools, tool_choice: choice }), false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> ChatCompletionRequest {
        let mut base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        base.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn body(request: &ChatCompletionRequest) -> Value {
        serde_json::to_value(&converse("b", request).unwrap().body).unwrap()
    }

    fn refused(request: &ChatCompletionRequest) -> String {
        match converse("b", request).unwrap_err() {
            ProviderError::Unsupported { param, .. } | ProviderError::InvalidRequest { param, .. } => param,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_conversation_with_instructions_tools_and_results() {
        let r = request(json!({
            "messages": [
                {"role": "system", "content": "be terse"},
                {"role": "user", "content": "weather in Paris and Rome?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}},
                    {"id": "t2", "type": "function", "function": {"name": "weather", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "t2", "content": [{"type": "text", "text": "rain"}]},
                {"role": "user", "content": "thanks"},
                {"role": "developer", "content": [{"type": "text", "text": "use metric"}]}
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "d", "parameters": {"type": "object"}}}],
            "tool_choice": "auto",
            "max_completion_tokens": 100, "temperature": 0.5, "top_p": 0.9, "stop": "END",
            "metadata": {"team": "a"}, "user": "u1", "stream_options": {"include_usage": true}
        }));
        assert_eq!(
            body(&r),
            json!({
                "messages": [
                    {"role": "user", "content": [{"text": "weather in Paris and Rome?"}]},
                    {"role": "assistant", "content": [
                        {"text": "Checking."},
                        {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Paris"}}},
                        {"toolUse": {"toolUseId": "t2", "name": "weather", "input": {}}}
                    ]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}},
                        {"toolResult": {"toolUseId": "t2", "content": [{"text": "rain"}]}},
                        {"text": "thanks"}
                    ]}
                ],
                "system": [{"text": "be terse"}, {"text": "use metric"}],
                "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
                "toolConfig": {
                    "tools": [{"toolSpec": {"name": "weather", "description": "d", "inputSchema": {"json": {"type": "object"}}}}],
                    "toolChoice": {"auto": {}}
                },
                "requestMetadata": {"team": "a"}
            })
        );
    }

    #[test]
    fn a_plain_request_sends_only_messages() {
        assert_eq!(body(&request(json!({}))), json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}));
    }

    #[test]
    fn images_from_data_urls_and_links_refused() {
        let r = request(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what?"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}
        ]}]}));
        assert_eq!(
            body(&r)["messages"][0]["content"][1],
            json!({"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}})
        );
        let link = request(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ]}]}));
        assert_eq!(refused(&link), "messages[0].content[0].image_url.url");
        let tiff = request(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}
        ]}]}));
        assert_eq!(refused(&tiff), "messages[0].content[0].image_url.url");
        let audio = request(json!({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
        ]}]}));
        assert_eq!(refused(&audio), "messages[0].content[0]");
    }

    #[test]
    fn tool_choice_modes() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let choice = |c: Value| body(&request(json!({"tools": tools, "tool_choice": c})))["toolConfig"].clone();
        assert_eq!(choice(json!("required"))["toolChoice"], json!({"any": {}}));
        assert_eq!(
            choice(json!({"type": "function", "function": {"name": "f"}}))["toolChoice"],
            json!({"tool": {"name": "f"}})
        );
        // No parameters: an empty object schema, as Converse requires one.
        assert_eq!(
            choice(json!("auto"))["tools"][0],
            json!({"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object", "properties": {}}}}})
        );
        assert_eq!(choice(json!("none")), Value::Null);
        let with_history = request(json!({
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t", "content": "x"}
            ],
            "tools": tools, "tool_choice": "none"
        }));
        assert_eq!(refused(&with_history), "tool_choice");
        assert_eq!(refused(&request(json!({"tool_choice": "required"}))), "tool_choice");
        assert_eq!(refused(&request(json!({"tools": tools, "parallel_tool_calls": false}))), "parallel_tool_calls");
    }

    #[test]
    fn json_mode_forces_a_tool() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let r = request(
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}}),
        );
        let converse = converse("b", &r).unwrap();
        assert!(converse.json_mode);
        assert_eq!(
            serde_json::to_value(&converse.body).unwrap()["toolConfig"],
            json!({"tools": [{"toolSpec": {"name": "answer", "inputSchema": {"json": schema}}}], "toolChoice": {"tool": {"name": "answer"}}})
        );
        let object = body(&request(json!({"response_format": {"type": "json_object"}})));
        assert_eq!(object["toolConfig"]["toolChoice"], json!({"tool": {"name": "json_object"}}));
        let with_tools = request(json!({
            "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "f"}}]
        }));
        assert_eq!(refused(&with_tools), "response_format");
        assert!(!converse_json_mode(&request(json!({"response_format": {"type": "text"}}))));
    }

    fn converse_json_mode(r: &ChatCompletionRequest) -> bool {
        converse("b", r).unwrap().json_mode
    }

    #[test]
    fn what_converse_cannot_do_is_refused_by_name() {
        for (params, name) in [
            (json!({"n": 2}), "n"),
            (json!({"logprobs": true}), "logprobs"),
            (json!({"top_logprobs": 2}), "top_logprobs"),
            (json!({"logit_bias": {"1": 5}}), "logit_bias"),
            (json!({"presence_penalty": 0.5}), "presence_penalty"),
            (json!({"frequency_penalty": 0.5}), "frequency_penalty"),
            (json!({"seed": 1}), "seed"),
            (json!({"reasoning_effort": "low"}), "reasoning_effort"),
            (json!({"metadata": {"n": 1}}), "metadata.n"),
        ] {
            assert_eq!(refused(&request(params.clone())), name, "{params}");
        }
        // Neutral values are no request at all.
        body(&request(json!({"n": 1, "logprobs": false, "presence_penalty": 0.0})));
        let bad_args = request(json!({"messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}
        ]}));
        assert_eq!(refused(&bad_args), "messages[1].tool_calls[0].function.arguments");
    }
}
