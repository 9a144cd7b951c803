//! Which text of a request the router reads.
//!
//! The last user message decides what is being asked, and the router reads it alone (the system
//! prompt only when there is no user message): the selector is trained on bare prompts, and the
//! semantic cache compares the same embedding, so one encoder pass serves both. The encoder
//! truncates at `router.max_tokens` (256 by default). Earlier turns, assistant messages and tool
//! results are not read: routing cost does not grow with the conversation. Each part is also cut at a character budget
//! before tokenisation so a 1 MB message costs no more to tokenise than a short one.

use crate::openai::content::{ContentPart, MessageContent};
use crate::openai::{ChatCompletionRequest, ChatMessage, CompletionRequest};

/// Characters kept per part: generously above what `max_tokens` tokens can hold (about 4 characters
/// a token in English; 8 leaves room for short tokens).
pub fn char_budget(max_tokens: usize) -> usize {
    max_tokens.saturating_mul(8)
}

/// The text the router encodes for a chat request, and a rough count of the whole prompt's tokens
/// (for the cost estimate).
pub fn chat_text(request: &ChatCompletionRequest, max_tokens: usize) -> (String, u64) {
    let budget = char_budget(max_tokens);
    let mut prompt_chars = 0usize;
    let mut last_user: Option<&MessageContent> = None;
    let mut instructions: Vec<&MessageContent> = Vec::new();
    for message in &request.messages {
        match message {
            ChatMessage::System(m) | ChatMessage::Developer(m) => instructions.push(&m.content),
            ChatMessage::User(m) => last_user = Some(&m.content),
            _ => {}
        }
        prompt_chars += message_chars(message);
    }
    let mut text = String::with_capacity(budget);
    let read = last_user.map_or(instructions, |content| vec![content]);
    for content in read {
        if text.len() >= budget {
            break;
        }
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        push_content(&mut text, content, budget);
    }
    (text, estimate_tokens(prompt_chars))
}

/// The text for a legacy completion: its prompt (the first one when several are given).
pub fn completion_text(request: &CompletionRequest, max_tokens: usize) -> (String, u64) {
    let prompt = match &request.prompt {
        serde_json::Value::String(s) => s.as_str(),
        serde_json::Value::Array(items) => items.first().and_then(|v| v.as_str()).unwrap_or(""),
        _ => "",
    };
    let mut text = String::new();
    push_cut(&mut text, prompt, char_budget(max_tokens));
    (text, estimate_tokens(prompt.len()))
}

/// The text length of a message (tool-call names and arguments included), counted without copying.
fn message_chars(message: &ChatMessage) -> usize {
    match message {
        ChatMessage::System(m) | ChatMessage::Developer(m) => content_chars(&m.content),
        ChatMessage::User(m) => content_chars(&m.content),
        ChatMessage::Tool(m) => content_chars(&m.content),
        ChatMessage::Assistant(m) => {
            let calls = m.tool_calls.iter().flatten().map(|c| &c.function).chain(&m.function_call);
            m.content.as_ref().map_or(0, content_chars)
                + m.refusal.as_ref().map_or(0, String::len)
                + calls.map(|f| f.name.len() + f.arguments.len()).sum::<usize>()
        }
        ChatMessage::Function(m) => m.content.as_ref().map_or(0, String::len),
    }
}

/// The text parts of a content, in order (what `MessageContent::text` joins with newlines).
fn text_parts(content: &MessageContent) -> impl Iterator<Item = &str> {
    let (whole, parts) = match content {
        MessageContent::Text(text) => (Some(text.as_str()), None),
        MessageContent::Parts(parts) => (None, Some(parts)),
    };
    let texts = parts.into_iter().flatten().filter_map(|part| match part {
        ContentPart::Text { text } => Some(text.as_str()),
        _ => None,
    });
    whole.into_iter().chain(texts)
}

fn content_chars(content: &MessageContent) -> usize {
    text_parts(content).enumerate().map(|(i, t)| t.len() + usize::from(i > 0)).sum()
}

/// Appends `content.text()` cut at `budget` bytes, without building the whole text first.
fn push_content(out: &mut String, content: &MessageContent, budget: usize) {
    let start = out.len();
    for (i, part) in text_parts(content).enumerate() {
        let room = budget - (out.len() - start);
        if i > 0 {
            if room == 0 {
                break;
            }
            out.push('\n');
        }
        let before = out.len();
        push_cut(out, part, budget - (out.len() - start));
        if out.len() - before < part.len() {
            break; // this part was cut: the joined text ends inside it
        }
    }
}

/// About four characters a token, as OpenAI's tokenizers average on English text.
fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// Appends at most `budget` bytes of `text`, cut at a character boundary.
fn push_cut(out: &mut String, text: &str, budget: usize) {
    let mut end = text.len().min(budget);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&text[..end]);
}

/// Estimated prompt tokens of a whole chat request (every message, not only the routed text), for
/// token limits and budgets before the usage is known.
pub fn chat_prompt_tokens(request: &ChatCompletionRequest) -> u64 {
    estimate_tokens(request.messages.iter().map(message_chars).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> ChatCompletionRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_last_user_message_alone_else_the_instructions() {
        let r = request(serde_json::json!({"model": "auto", "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url", "image_url": {"url": "data:x"}}]},
        ]}));
        let (text, tokens) = chat_text(&r, 256);
        assert_eq!(text, "second");
        assert!(tokens > 5);
        let only_instructions = request(serde_json::json!({"model": "auto", "messages": [
            {"role": "system", "content": "You are terse."}, {"role": "developer", "content": "Answer in French."}]}));
        assert_eq!(chat_text(&only_instructions, 256).0, "You are terse.\n\nAnswer in French.");
    }

    #[test]
    fn long_conversations_are_cut() {
        let long = "é".repeat(10_000);
        let r = request(serde_json::json!({"model": "auto", "messages": [
            {"role": "system", "content": long}, {"role": "user", "content": long}]}));
        let (text, tokens) = chat_text(&r, 16);
        assert!(text.len() <= 128, "{}", text.len());
        assert_eq!(tokens, 10_000); // 40,000 bytes / 4
    }

    #[test]
    fn parts_are_cut_like_their_joined_text() {
        let content: MessageContent = serde_json::from_value(serde_json::json!([
            {"type": "text", "text": "héllo"}, {"type": "image_url", "image_url": {"url": "data:x"}},
            {"type": "text", "text": "wörld"}, {"type": "text", "text": "!"}]))
        .unwrap();
        for budget in 0..16 {
            let (mut ours, mut joined) = (String::new(), String::new());
            push_content(&mut ours, &content, budget);
            push_cut(&mut joined, &content.text(), budget);
            assert_eq!(ours, joined, "budget {budget}");
        }
        assert_eq!(content_chars(&content), content.text().len());
    }
}
