//! An OpenAI chat request as a `GenerateContentRequest` (the same body on the Gemini API and Vertex
//! AI), serialised from borrowed parts of the request.
//!
//! Deliberately not sent: `user` and `metadata` (attribution for the gateway's own accounting, no
//! Gemini field), a message's `name`, and an image's `detail` (a hint Gemini has no per-image field
//! for). Everything else that Gemini cannot take is a 400 naming it.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Value, json};

use super::schema;
use crate::openai::ChatMessage;
use crate::openai::chat::{
    AssistantMessage, ChatCompletionRequest, ResponseFormat, ToolCall, ToolChoice, ToolChoiceMode,
};
use crate::openai::content::{ContentPart, MessageContent};
use crate::providers::ProviderError;
use crate::providers::native::{ToolNames, arguments_object, data_url, instructions, text_only};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest<'a> {
    contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tools<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    generation_config: GenerationConfig<'a>,
}

#[derive(Debug, Serialize)]
struct SystemInstruction {
    parts: [TextPart; 1],
}

#[derive(Debug, Serialize)]
struct TextPart {
    text: String,
}

#[derive(Debug, Serialize)]
struct Content<'a> {
    role: &'static str,
    parts: Vec<Part<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Part<'a> {
    Text {
        text: Cow<'a, str>,
    },
    InlineData {
        #[serde(rename = "inlineData")]
        inline_data: Blob<'a>,
    },
    FileData {
        #[serde(rename = "fileData")]
        file_data: FileData<'a>,
    },
    FunctionCall {
        #[serde(rename = "functionCall")]
        function_call: FunctionCall<'a>,
    },
    FunctionResponse {
        #[serde(rename = "functionResponse")]
        function_response: FunctionResponse<'a>,
    },
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Blob<'a> {
    mime_type: &'a str,
    data: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FileData<'a> {
    mime_type: &'static str,
    file_uri: &'a str,
}

#[derive(Debug, Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    args: Value,
}

#[derive(Debug, Serialize)]
struct FunctionResponse<'a> {
    name: &'a str,
    response: Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Tools<'a> {
    function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Debug, Serialize)]
struct FunctionDeclaration<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    function_calling_config: FunctionCallingConfig<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig<'a> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_function_names: Vec<&'a str>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidate_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig<'_> {
    fn is_empty(&self) -> bool {
        let Self {
            stop_sequences,
            candidate_count,
            max_output_tokens,
            temperature,
            top_p,
            seed,
            presence_penalty,
            frequency_penalty,
            response_mime_type,
            response_schema,
            thinking_config,
        } = self;
        stop_sequences.is_none()
            && candidate_count.is_none()
            && max_output_tokens.is_none()
            && temperature.is_none()
            && top_p.is_none()
            && seed.is_none()
            && presence_penalty.is_none()
            && frequency_penalty.is_none()
            && response_mime_type.is_none()
            && response_schema.is_none()
            && thinking_config.is_none()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig {
    thinking_budget: u32,
}

/// Which API the body is for: Vertex AI also takes `gs://` URIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Gemini,
    Vertex,
}

/// The `generateContent` body for `request`.
pub fn body(provider: &str, request: &ChatCompletionRequest, flavor: Flavor) -> Result<Vec<u8>, ProviderError> {
    let body = translate(provider, request, flavor)?;
    serde_json::to_vec(&body).map_err(|e| ProviderError::invalid_request("messages", e.to_string()))
}

pub fn translate<'a>(
    provider: &str,
    request: &'a ChatCompletionRequest,
    flavor: Flavor,
) -> Result<GenerateContentRequest<'a>, ProviderError> {
    let unsupported = |param: &str, detail: &str| Err(ProviderError::unsupported(provider, param, detail));
    if request.logprobs == Some(true) {
        return unsupported("logprobs", "log probabilities are not translated from Gemini's answers");
    }
    if request.top_logprobs.is_some() {
        return unsupported("top_logprobs", "log probabilities are not translated from Gemini's answers");
    }
    if request.logit_bias.is_some() {
        return unsupported("logit_bias", "Gemini has no token biasing");
    }
    if request.parallel_tool_calls == Some(false) {
        return unsupported("parallel_tool_calls", "Gemini cannot be limited to one tool call per turn");
    }
    let mut generation_config = GenerationConfig {
        stop_sequences: request.stop.as_ref().map(|s| s.sequences()).filter(|s| !s.is_empty()),
        candidate_count: request.n.filter(|n| *n > 1),
        max_output_tokens: request.max_completion_tokens.or(request.max_tokens),
        temperature: request.temperature,
        top_p: request.top_p,
        seed: request
            .seed
            .map(|seed| {
                i32::try_from(seed).map_err(|_| ProviderError::invalid_request("seed", "Gemini takes a 32-bit seed"))
            })
            .transpose()?,
        presence_penalty: request.presence_penalty,
        frequency_penalty: request.frequency_penalty,
        ..GenerationConfig::default()
    };
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => generation_config.response_mime_type = Some("application/json"),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            generation_config.response_mime_type = Some("application/json");
            generation_config.response_schema = json_schema
                .schema
                .as_ref()
                .map(|s| {
                    schema::to_gemini(s).map_err(|detail| {
                        ProviderError::unsupported(provider, "response_format.json_schema.schema", &detail)
                    })
                })
                .transpose()?;
        }
    }
    for (key, value) in &request.extra {
        match key.as_str() {
            "reasoning_effort" => generation_config.thinking_config = Some(thinking(value)?),
            _ => return unsupported(key, "not a parameter the Gemini API takes"),
        }
    }
    let (tools, tool_config) = tools(provider, request)?;
    let system_instruction =
        instructions(provider, &request.messages)?.map(|text| SystemInstruction { parts: [TextPart { text }] });
    Ok(GenerateContentRequest {
        contents: contents(provider, &request.messages, flavor)?,
        system_instruction,
        tools,
        tool_config,
        generation_config,
    })
}

/// `reasoning_effort` as a thinking budget, with the budgets Google's OpenAI compatibility uses.
fn thinking(value: &Value) -> Result<ThinkingConfig, ProviderError> {
    let thinking_budget = match value.as_str() {
        Some("none") => 0,
        Some("low") => 1024,
        Some("medium") => 8192,
        Some("high") => 24576,
        _ => {
            return Err(ProviderError::invalid_request(
                "reasoning_effort",
                "Gemini takes `none`, `low`, `medium` or `high`",
            ));
        }
    };
    Ok(ThinkingConfig { thinking_budget })
}

type ToolParts<'a> = (Vec<Tools<'a>>, Option<ToolConfig<'a>>);

fn tools<'a>(provider: &str, request: &'a ChatCompletionRequest) -> Result<ToolParts<'a>, ProviderError> {
    let definitions = request.tools.as_deref().unwrap_or_default();
    let mut declarations = Vec::with_capacity(definitions.len());
    for (i, tool) in definitions.iter().enumerate() {
        if tool.kind != "function" {
            return Err(ProviderError::unsupported(
                provider,
                &format!("tools[{i}].type"),
                "Gemini takes function tools only",
            ));
        }
        let function = &tool.function;
        let parameters = match &function.parameters {
            Some(p) if !schema::is_empty_object(p) => Some(schema::to_gemini(p).map_err(|detail| {
                ProviderError::unsupported(provider, &format!("tools[{i}].function.parameters"), &detail)
            })?),
            _ => None,
        };
        declarations.push(FunctionDeclaration {
            name: &function.name,
            description: function.description.as_deref(),
            parameters,
        });
    }
    let choice = match &request.tool_choice {
        None => None,
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => Some(("NONE", Vec::new())),
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => Some(("AUTO", Vec::new())),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => Some(("ANY", Vec::new())),
        Some(ToolChoice::Named(named)) => Some(("ANY", vec![named.function.name.as_str()])),
    };
    if declarations.is_empty() {
        // Without tools `none` and `auto` mean what Gemini does anyway; calling one cannot be asked.
        return match choice {
            Some(("ANY", _)) => {
                Err(ProviderError::invalid_request("tool_choice", "a tool call is required but no tools are given"))
            }
            _ => Ok((Vec::new(), None)),
        };
    }
    let tool_config = choice.map(|(mode, allowed_function_names)| ToolConfig {
        function_calling_config: FunctionCallingConfig { mode, allowed_function_names },
    });
    Ok((vec![Tools { function_declarations: declarations }], tool_config))
}

/// The conversation as Gemini's contents: `user` and `model` turns, consecutive turns of one role
/// merged (tool results of parallel calls must arrive together), instructions left out.
fn contents<'a>(
    provider: &str,
    messages: &'a [ChatMessage],
    flavor: Flavor,
) -> Result<Vec<Content<'a>>, ProviderError> {
    let names = ToolNames::new(messages);
    let mut contents: Vec<Content<'a>> = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let (role, parts) = match message {
            ChatMessage::System(_) | ChatMessage::Developer(_) => continue,
            ChatMessage::User(m) => ("user", user_parts(provider, i, &m.content, flavor)?),
            ChatMessage::Assistant(m) => ("model", model_parts(provider, i, m)?),
            ChatMessage::Tool(m) => {
                let name = names.name(&m.tool_call_id).ok_or_else(|| {
                    ProviderError::invalid_request(
                        format!("messages[{i}].tool_call_id"),
                        "answers no tool call of an earlier assistant message (Gemini needs the function's name)",
                    )
                })?;
                let text = text_only(provider, &format!("messages[{i}].content"), &m.content)?;
                (
                    "user",
                    vec![Part::FunctionResponse {
                        function_response: FunctionResponse { name, response: tool_result(&text) },
                    }],
                )
            }
            ChatMessage::Function(m) => (
                "user",
                vec![Part::FunctionResponse {
                    function_response: FunctionResponse {
                        name: &m.name,
                        response: tool_result(m.content.as_deref().unwrap_or_default()),
                    },
                }],
            ),
        };
        if parts.is_empty() {
            // Gemini refuses a turn without parts (e.g. an empty message).
            continue;
        }
        match contents.last_mut() {
            Some(last) if last.role == role => last.parts.extend(parts),
            _ => contents.push(Content { role, parts }),
        }
    }
    Ok(contents)
}

/// A tool's result as the object `functionResponse.response` must be: a JSON object as it is,
/// anything else under `content`.
fn tool_result(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(object @ Value::Object(_)) => object,
        Ok(other) => json!({ "content": other }),
        Err(_) => json!({ "content": text }),
    }
}

fn text_part(text: &str) -> Option<Part<'_>> {
    // Gemini refuses empty text parts.
    (!text.is_empty()).then_some(Part::Text { text: Cow::Borrowed(text) })
}

fn user_parts<'a>(
    provider: &str,
    i: usize,
    content: &'a MessageContent,
    flavor: Flavor,
) -> Result<Vec<Part<'a>>, ProviderError> {
    let parts = match content {
        MessageContent::Text(text) => return Ok(text_part(text).into_iter().collect()),
        MessageContent::Parts(parts) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let param = || format!("messages[{i}].content[{j}]");
        match part {
            ContentPart::Text { text } => out.extend(text_part(text)),
            ContentPart::ImageUrl { image_url } => {
                out.push(media_part(provider, &format!("{}.image_url", param()), &image_url.url, flavor)?)
            }
            ContentPart::InputAudio { input_audio } => {
                let mime_type = match input_audio.format.as_str() {
                    "wav" => "audio/wav",
                    "mp3" => "audio/mp3",
                    _ => {
                        return Err(ProviderError::unsupported(
                            provider,
                            &format!("{}.input_audio.format", param()),
                            "Gemini takes wav or mp3 audio here",
                        ));
                    }
                };
                out.push(Part::InlineData { inline_data: Blob { mime_type, data: &input_audio.data } });
            }
            ContentPart::File { file } => {
                let inline = file.fields.get("file_data").and_then(Value::as_str).and_then(data_url);
                let Some(inline) = inline else {
                    return Err(ProviderError::unsupported(
                        provider,
                        &format!("{}.file", param()),
                        "only inline `file_data` (a base64 data URL) is accepted; file ids are OpenAI's",
                    ));
                };
                out.push(Part::InlineData { inline_data: Blob { mime_type: inline.media_type, data: inline.data } });
            }
            ContentPart::Refusal { .. } => {
                return Err(ProviderError::invalid_request(param(), "a refusal part belongs to an assistant message"));
            }
        }
    }
    Ok(out)
}

/// An image by data URL (inline) or by URL (Gemini fetches it; its type comes from the extension).
fn media_part<'a>(provider: &str, param: &str, url: &'a str, flavor: Flavor) -> Result<Part<'a>, ProviderError> {
    if let Some(inline) = data_url(url) {
        return Ok(Part::InlineData { inline_data: Blob { mime_type: inline.media_type, data: inline.data } });
    }
    let fetchable = url.starts_with("https://")
        || url.starts_with("http://")
        || (flavor == Flavor::Vertex && url.starts_with("gs://"));
    if !fetchable {
        let schemes = if flavor == Flavor::Vertex {
            "a data URL, an http(s) URL or a gs:// URI"
        } else {
            "a data URL or an http(s) URL"
        };
        return Err(ProviderError::unsupported(provider, param, &format!("the image must be {schemes}")));
    }
    let Some(mime_type) = media_type_of(url) else {
        return Err(ProviderError::unsupported(
            provider,
            param,
            "the image type cannot be told from the URL (png, jpeg, webp, heic, heif or pdf); send it as a data URL",
        ));
    };
    Ok(Part::FileData { file_data: FileData { mime_type, file_uri: url } })
}

/// The media type of a URL's file, from its extension.
fn media_type_of(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let file = path.rsplit('/').next().unwrap_or(path);
    let extension = file.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

fn model_parts<'a>(provider: &str, i: usize, message: &'a AssistantMessage) -> Result<Vec<Part<'a>>, ProviderError> {
    let mut out = Vec::new();
    match &message.content {
        Some(MessageContent::Text(text)) => out.extend(text_part(text)),
        Some(MessageContent::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                match part {
                    ContentPart::Text { text } => out.extend(text_part(text)),
                    ContentPart::Refusal { refusal } => out.extend(text_part(refusal)),
                    _ => {
                        return Err(ProviderError::unsupported(
                            provider,
                            &format!("messages[{i}].content[{j}]"),
                            "an assistant message takes text only",
                        ));
                    }
                }
            }
        }
        None => {
            if let Some(refusal) = &message.refusal {
                out.extend(text_part(refusal));
            }
        }
    }
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        out.push(function_call(provider, &format!("messages[{i}].tool_calls[{j}]"), call)?);
    }
    if let Some(call) = &message.function_call {
        let args = arguments_object(&format!("messages[{i}].function_call.arguments"), &call.arguments)?;
        out.push(Part::FunctionCall { function_call: FunctionCall { name: &call.name, args } });
    }
    Ok(out)
}

fn function_call<'a>(provider: &str, param: &str, call: &'a ToolCall) -> Result<Part<'a>, ProviderError> {
    if call.kind != "function" {
        return Err(ProviderError::unsupported(provider, &format!("{param}.type"), "Gemini takes function calls only"));
    }
    let args = arguments_object(&format!("{param}.function.arguments"), &call.function.arguments)?;
    Ok(Part::FunctionCall { function_call: FunctionCall { name: &call.function.name, args } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gemini(request: Value) -> Result<Value, ProviderError> {
        let request: ChatCompletionRequest = serde_json::from_value(request).unwrap();
        let body = body("gemini", &request, Flavor::Gemini)?;
        Ok(serde_json::from_slice(&body).unwrap())
    }

    fn param_of(error: ProviderError) -> String {
        match error {
            ProviderError::Unsupported { param, .. } | ProviderError::InvalidRequest { param, .. } => param,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_conversation_with_instructions_tools_and_results() {
        let body = gemini(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "be terse"},
                {"role": "developer", "content": "use metric"},
                {"role": "user", "content": "Weather in Paris and Oslo?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\":21}"},
                {"role": "tool", "tool_call_id": "c2", "content": "cold"},
                {"role": "user", "content": [{"type": "text", "text": "Thanks"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}]}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}}},
                      {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "temperature": 0.5, "top_p": 0.9, "max_completion_tokens": 100, "max_tokens": 5, "stop": "END",
            "n": 2, "seed": 7, "presence_penalty": 0.1, "frequency_penalty": 0.2,
            "response_format": {"type": "json_object"}, "reasoning_effort": "low", "user": "u1"
        }))
        .unwrap();
        assert_eq!(
            body,
            json!({
                "systemInstruction": {"parts": [{"text": "be terse\n\nuse metric"}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "Weather in Paris and Oslo?"}]},
                    {"role": "model", "parts": [
                        {"text": "Checking."},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
                    ]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                        {"functionResponse": {"name": "get_weather", "response": {"content": "cold"}}},
                        {"text": "Thanks"},
                        {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}
                    ]}
                ],
                "tools": [{"functionDeclarations": [
                    {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
                    {"name": "now"}
                ]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
                "generationConfig": {
                    "temperature": 0.5, "topP": 0.9, "maxOutputTokens": 100, "stopSequences": ["END"],
                    "candidateCount": 2, "seed": 7, "presencePenalty": 0.1, "frequencyPenalty": 0.2,
                    "responseMimeType": "application/json", "thinkingConfig": {"thinkingBudget": 1024}
                }
            })
        );
    }

    #[test]
    fn tool_choice_modes_and_structured_output() {
        let base = |extra: Value| {
            let mut request = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}]});
            request.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            gemini(request).unwrap()
        };
        for (choice, mode) in [("none", "NONE"), ("auto", "AUTO"), ("required", "ANY")] {
            assert_eq!(
                base(json!({"tool_choice": choice}))["toolConfig"],
                json!({"functionCallingConfig": {"mode": mode}})
            );
        }
        assert!(base(json!({}))["toolConfig"].is_null());
        let body = base(json!({"response_format": {"type": "json_schema", "json_schema": {"name": "s", "strict": true,
            "schema": {"type": "object", "properties": {"x": {"type": ["string", "null"]}}, "required": ["x"], "additionalProperties": false}}}}));
        assert_eq!(
            body["generationConfig"],
            json!({"responseMimeType": "application/json", "responseSchema": {"type": "object", "properties": {"x": {"type": "string", "nullable": true}}, "required": ["x"]}})
        );
    }

    #[test]
    fn images_by_url_and_files() {
        let with = |url: &str, flavor: Flavor| {
            let request: ChatCompletionRequest = serde_json::from_value(json!({"model": "m", "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}))
            .unwrap();
            body("p", &request, flavor)
                .map(|b| serde_json::from_slice::<Value>(&b).unwrap()["contents"][0]["parts"][0].clone())
        };
        assert_eq!(
            with("https://example.com/cat.JPG?size=2", Flavor::Gemini).unwrap(),
            json!({"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?size=2"}})
        );
        assert_eq!(
            with("gs://bucket/a.png", Flavor::Vertex).unwrap(),
            json!({"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/a.png"}})
        );
        assert_eq!(
            param_of(with("gs://bucket/a.png", Flavor::Gemini).unwrap_err()),
            "messages[0].content[0].image_url"
        );
        assert_eq!(
            param_of(with("https://example.com/image", Flavor::Gemini).unwrap_err()),
            "messages[0].content[0].image_url"
        );
        let pdf = gemini(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
            {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}]}]}))
        .unwrap();
        assert_eq!(
            pdf["contents"][0]["parts"],
            json!([{"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}, {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}}])
        );
    }

    #[test]
    fn what_gemini_cannot_take_is_a_400_naming_it() {
        let hi = json!([{"role": "user", "content": "hi"}]);
        for (extra, param) in [
            (json!({"logprobs": true}), "logprobs"),
            (json!({"top_logprobs": 2}), "top_logprobs"),
            (json!({"logit_bias": {"1": 2}}), "logit_bias"),
            (json!({"parallel_tool_calls": false}), "parallel_tool_calls"),
            (json!({"seed": 1_i64 << 40}), "seed"),
            (json!({"service_tier": "flex"}), "service_tier"),
            (json!({"reasoning_effort": "extreme"}), "reasoning_effort"),
            (json!({"tool_choice": "required"}), "tool_choice"),
            (
                json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"allOf": [{"type": "object"}, {"type": "object"}]}}}]}),
                "tools[0].function.parameters",
            ),
        ] {
            let mut request = json!({"model": "m", "messages": hi});
            request.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            assert_eq!(param_of(gemini(request).unwrap_err()), param, "{extra}");
        }
        let orphan = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "nope", "content": "x"}]});
        assert_eq!(param_of(gemini(orphan).unwrap_err()), "messages[1].tool_call_id");
        let bad_args = json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]});
        assert_eq!(param_of(gemini(bad_args).unwrap_err()), "messages[0].tool_calls[0].function.arguments");
    }

    #[test]
    fn tool_results_become_objects() {
        assert_eq!(tool_result("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(tool_result("[1,2]"), json!({"content": [1, 2]}));
        assert_eq!(tool_result("sunny"), json!({"content": "sunny"}));
    }
}
