//! What every translating adapter shares: building OpenAI answers (whole and as stream chunks),
//! running a stream translator over upstream events, and reading the canonical request's parts.

mod borrowed;
mod chunk;
mod codec;
mod completion;
mod request;
mod translate;

pub use borrowed::{Few, Skip, Str};
pub use chunk::{ChunkWriter, Text};
pub use codec::Codec;
pub use completion::{Completion, FinishReason, Message};
pub use request::{DataUrl, ToolNames, arguments_object, data_url, instructions, no_choices_beyond_one, text_only};
pub use translate::{Translate, translated};

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, for `created`.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An id for an answer whose upstream gave none (`chatcmpl-` and 24 hex digits, like OpenAI's).
pub fn completion_id() -> String {
    format!("chatcmpl-{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}

/// An id for a tool call whose upstream gave none (Gemini).
pub fn tool_call_id() -> String {
    format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}
