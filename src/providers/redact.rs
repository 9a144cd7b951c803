//! Scrubbing upstream error messages before they reach a client or a log: the provider's key, anything
//! that looks like a credential, and URLs (which can name internal hosts) are removed.

/// `message` with `secret`, credential-like words and URLs replaced.
pub fn redact(message: &str, secret: Option<&str>) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_LEN));
    for (i, word) in message.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if secret.is_some_and(|s| !s.is_empty() && word.contains(s)) || looks_like_credential(word) {
            out.push_str("***");
        } else if word.contains("://") {
            out.push_str("<url>");
        } else {
            out.push_str(word);
        }
        if out.len() >= MAX_LEN {
            out.push_str(" ...");
            break;
        }
    }
    out
}

const MAX_LEN: usize = 1000;

/// Long tokens of key alphabet that mix letters and digits (`sk-proj-...`, `gsk_...`, `AIza...`).
fn looks_like_credential(word: &str) -> bool {
    let token = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '*');
    token.len() >= 20
        && token.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*' | '.'))
        && token.chars().any(|c| c.is_ascii_digit())
        && token.chars().any(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_keys_and_urls_keeps_the_sentence() {
        let message = "Incorrect API key provided: sk-proj-abc123def456ghi789jkl. You can find your key at https://platform.openai.com/account.";
        assert_eq!(redact(message, None), "Incorrect API key provided: *** You can find your key at <url>");
        assert_eq!(redact("bad key mysecret!", Some("mysecret")), "bad key ***");
        assert_eq!(
            redact("This model's maximum context length is 8192 tokens.", None),
            "This model's maximum context length is 8192 tokens."
        );
    }
}
