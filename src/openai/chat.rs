//! `POST /v1/chat/completions` request types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Extra;
use super::content::MessageContent;

/// A chat completion request as OpenAI documents it. Unknown top-level fields land in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<Extra>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Extra>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatCompletionRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// Whether the client asked for a final usage chunk on a stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options.as_ref().is_some_and(|o| o.include_usage == Some(true))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `stop`: one sequence or up to four.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn sequences(&self) -> &[String] {
        match self {
            Stop::One(s) => std::slice::from_ref(s),
            Stop::Many(v) => v,
        }
    }
}

/// One message of the conversation, by role.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    System(InstructionMessage),
    /// `developer` replaces `system` for OpenAI's reasoning models; other providers treat it as system.
    Developer(InstructionMessage),
    User(UserMessage),
    Assistant(AssistantMessage),
    Tool(ToolMessage),
    /// Deprecated by OpenAI but still accepted.
    Function(FunctionMessage),
}

// Read through one flat struct rather than serde's internally tagged enum: that would buffer each
// message and lose the path of a bad field (`messages[0]` instead of `messages[0].content`).
impl<'de> Deserialize<'de> for ChatMessage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = RawMessage::deserialize(deserializer)?;
        let content = |content: Option<MessageContent>| content.ok_or_else(|| D::Error::missing_field("content"));
        Ok(match raw.role {
            Role::System => ChatMessage::System(InstructionMessage {
                content: content(raw.content)?,
                name: raw.name,
                extra: raw.extra,
            }),
            Role::Developer => ChatMessage::Developer(InstructionMessage {
                content: content(raw.content)?,
                name: raw.name,
                extra: raw.extra,
            }),
            Role::User => {
                ChatMessage::User(UserMessage { content: content(raw.content)?, name: raw.name, extra: raw.extra })
            }
            Role::Assistant => ChatMessage::Assistant(AssistantMessage {
                content: raw.content,
                refusal: raw.refusal,
                name: raw.name,
                tool_calls: raw.tool_calls,
                function_call: raw.function_call,
                extra: raw.extra,
            }),
            Role::Tool => ChatMessage::Tool(ToolMessage {
                content: content(raw.content)?,
                tool_call_id: raw.tool_call_id.ok_or_else(|| D::Error::missing_field("tool_call_id"))?,
                extra: raw.extra,
            }),
            Role::Function => ChatMessage::Function(FunctionMessage {
                name: raw.name.ok_or_else(|| D::Error::missing_field("name"))?,
                content: raw.content.map(|c| c.text()),
            }),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

#[derive(Deserialize)]
struct RawMessage {
    role: Role,
    #[serde(default)]
    content: Option<MessageContent>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    function_call: Option<FunctionCall>,
    #[serde(default)]
    tool_call_id: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstructionMessage {
    pub content: MessageContent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserMessage {
    pub content: MessageContent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolMessage {
    pub content: MessageContent,
    pub tool_call_id: String,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionMessage {
    pub name: String,
    #[serde(default)]
    pub content: Option<String>,
}

/// A tool call the assistant made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text, as the model produced it (it may not parse).
    pub arguments: String,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDefinition,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `tool_choice`: `"none" | "auto" | "required"` or a named function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(ToolChoiceMode),
    Named(NamedToolChoice),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoiceMode {
    None,
    Auto,
    Required,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: NamedFunction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedFunction {
    pub name: String,
}

/// `response_format`: free text, JSON mode, or structured output with a JSON schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_documented_field_round_trips_and_unknown_fields_pass_through() {
        let body = json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "be terse"},
                {"role": "system", "content": "you are helpful", "name": "sys"},
                {"role": "user", "content": [
                    {"type": "text", "text": "describe"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": 0.0,
            "top_p": 1.0,
            "n": 1,
            "stop": ["\n\n"],
            "max_tokens": 10,
            "max_completion_tokens": 20,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.5,
            "logit_bias": {"50256": -100},
            "logprobs": true,
            "top_logprobs": 2,
            "seed": 7,
            "user": "u1",
            "metadata": {"team": "a"},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": true}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "parallel_tool_calls": false,
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}, "strict": true}},
            "reasoning_effort": "low",
            "service_tier": "auto"
        });
        let request: ChatCompletionRequest = serde_json::from_value(body.clone()).unwrap();
        assert!(request.is_stream() && request.wants_stream_usage());
        assert_eq!(request.extra.len(), 2, "unknown fields are kept: {:?}", request.extra);
        let mut back = serde_json::to_value(&request).unwrap();
        // `content: null` on the assistant message is equivalent to leaving it out.
        back["messages"][3]["content"] = Value::Null;
        assert_eq!(back, body);
    }

    #[test]
    fn tool_choice_modes_and_json_mode() {
        let request: ChatCompletionRequest = serde_json::from_value(json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tool_choice": "required", "response_format": {"type": "json_object"}
        }))
        .unwrap();
        assert_eq!(request.tool_choice, Some(ToolChoice::Mode(ToolChoiceMode::Required)));
        assert_eq!(request.response_format, Some(ResponseFormat::JsonObject));
    }

    #[test]
    fn unknown_role_is_an_error() {
        let err = serde_json::from_value::<ChatCompletionRequest>(json!({
            "model": "m", "messages": [{"role": "robot", "content": "hi"}]
        }))
        .unwrap_err();
        assert!(err.to_string().contains("robot"), "{err}");
    }
}
