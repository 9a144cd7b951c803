//! Checks serde cannot express: ranges and non-empty lists, each a 400 naming the field.

use crate::error::ApiError;
use crate::openai::{ChatCompletionRequest, CompletionRequest, EmbeddingsRequest};

pub fn chat(request: &ChatCompletionRequest) -> Result<(), ApiError> {
    if request.messages.is_empty() {
        return Err(ApiError::invalid_field("messages", "`messages` must contain at least one message"));
    }
    sampling(request.temperature, request.top_p, request.n)?;
    if let Some(stop) = &request.stop
        && stop.sequences().len() > 4
    {
        return Err(ApiError::invalid_field("stop", "`stop` takes at most 4 sequences"));
    }
    if request.stream_options.is_some() && !request.is_stream() {
        return Err(ApiError::invalid_field(
            "stream_options",
            "`stream_options` is only allowed when `stream` is true",
        ));
    }
    if let Some(tools) = &request.tools
        && tools.iter().any(|t| t.function.name.is_empty())
    {
        return Err(ApiError::invalid_field("tools", "every tool needs a non-empty `function.name`"));
    }
    Ok(())
}

pub fn completion(request: &CompletionRequest) -> Result<(), ApiError> {
    if request.prompt.is_null() {
        return Err(ApiError::invalid_field("prompt", "`prompt` must be a string or an array"));
    }
    sampling(request.temperature, request.top_p, request.n)
}

pub fn embeddings(request: &EmbeddingsRequest) -> Result<(), ApiError> {
    if request.input.is_empty() {
        return Err(ApiError::invalid_field("input", "`input` must not be empty"));
    }
    Ok(())
}

fn sampling(temperature: Option<f64>, top_p: Option<f64>, n: Option<u32>) -> Result<(), ApiError> {
    if let Some(t) = temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(ApiError::invalid_field("temperature", format!("`temperature` must be between 0 and 2, not {t}")));
    }
    if let Some(p) = top_p
        && !(0.0..=1.0).contains(&p)
    {
        return Err(ApiError::invalid_field("top_p", format!("`top_p` must be between 0 and 1, not {p}")));
    }
    if n == Some(0) {
        return Err(ApiError::invalid_field("n", "`n` must be at least 1"));
    }
    Ok(())
}
