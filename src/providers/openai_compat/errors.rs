//! Error bodies of the OpenAI-compatible family. Most are OpenAI's `{"error": {...}}` or a flat
//! `{"message", "type", "code"}` (Mistral, Cerebras, vLLM), which `openai_error` reads; the rest
//! need a little more.

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::providers::transport::{ErrorDetail, openai_error};

/// `openai_error`, plus the shapes it leaves as raw text:
/// - a validation error whose `message` is an object (Mistral's 422: `{"detail": [{"loc", "msg"}]}`);
/// - `{"detail": {"error": "..."}}` (DeepInfra);
/// - an HTML error page from a proxy in front of the API (Perplexity's 401): its `<title>`.
pub fn compat_error(headers: &HeaderMap, body: &[u8]) -> ErrorDetail {
    let mut detail = openai_error(headers, body);
    if detail.message.is_some() {
        return detail;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => {
            let nested = value.get("message").or_else(|| value.get("detail")).unwrap_or(&Value::Null);
            detail.message = validation_message(nested)
                .or_else(|| nested.get("error").and_then(Value::as_str).map(str::to_owned))
                .or_else(|| nested.get("message").and_then(Value::as_str).map(str::to_owned));
        }
        Err(_) => detail.message = html_title(body),
    }
    detail
}

/// xAI: `{"code": "<gRPC status text>", "error": "<message>"}`. A wrong key is a 400 there
/// ("Incorrect API key provided"); it is an authentication failure. The `code` is a sentence, not a
/// machine-readable code, so it is not passed on.
pub fn xai_error(headers: &HeaderMap, body: &[u8]) -> ErrorDetail {
    let mut detail = compat_error(headers, body);
    if detail.code.as_deref().is_some_and(|code| code.contains(' ')) {
        detail.code = None;
    }
    if let Some(message) = &detail.message
        && (message.contains("Incorrect API key") || message.contains("Incorrect%20API%20key"))
    {
        detail.status = Some(StatusCode::UNAUTHORIZED);
        detail.code = Some("invalid_api_key".to_owned());
    }
    detail
}

/// Pydantic / FastAPI validation errors: `{"detail": [{"loc": [...], "msg": "..."}]}` as
/// "body.field: msg; ...".
fn validation_message(value: &Value) -> Option<String> {
    let items = value.get("detail").unwrap_or(value).as_array()?;
    let parts: Vec<String> = items
        .iter()
        .filter_map(|item| {
            let msg = item.get("msg")?.as_str()?;
            let loc: Vec<String> = item
                .get("loc")
                .and_then(Value::as_array)
                .map(|loc| loc.iter().map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_owned)).collect())
                .unwrap_or_default();
            Some(if loc.is_empty() { msg.to_owned() } else { format!("{}: {msg}", loc.join(".")) })
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn html_title(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title>")? + "<title>".len();
    let end = start + lower[start..].find("</title>")?;
    let title = text[start..end].trim();
    (!title.is_empty()).then(|| title.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dialect: fn(&HeaderMap, &[u8]) -> ErrorDetail, body: &str) -> ErrorDetail {
        dialect(&HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn mistral_validation_errors_name_the_field() {
        let body = r#"{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body","stream_options"],"msg":"Extra inputs are not permitted","input":{"include_usage":true}}]},"type":"invalid_request_error","param":null,"code":null}"#;
        let detail = read(compat_error, body);
        assert_eq!(detail.message.as_deref(), Some("body.stream_options: Extra inputs are not permitted"));
        assert_eq!(detail.kind.as_deref(), Some("invalid_request_error"));
    }

    #[test]
    fn deepinfra_detail_and_html_pages() {
        assert_eq!(
            read(compat_error, r#"{"detail":{"error":"Not authenticated"}}"#).message.as_deref(),
            Some("Not authenticated")
        );
        let html = "<html>\r\n<head><title>401 Authorization Required</title></head>\r\n<body><center><h1>401 Authorization Required</h1></center><hr><center>openresty/1.25.3.1</center></body></html>";
        assert_eq!(read(compat_error, html).message.as_deref(), Some("401 Authorization Required"));
        assert_eq!(read(compat_error, "upstream exploded").message, None);
    }

    #[test]
    fn xai_wrong_key_is_an_authentication_failure() {
        let body = r#"{"code":"Client specified an invalid argument","error":"Incorrect API key provided: te***ey. You can obtain an API key from https://console.x.ai."}"#;
        let detail = read(xai_error, body);
        assert_eq!(detail.status, Some(StatusCode::UNAUTHORIZED));
        assert_eq!(detail.code.as_deref(), Some("invalid_api_key"));
        let limit = read(xai_error, r#"{"code":"Some resource has been exhausted","error":"Too many requests"}"#);
        assert_eq!((limit.status, limit.code, limit.message.as_deref()), (None, None, Some("Too many requests")));
    }
}
