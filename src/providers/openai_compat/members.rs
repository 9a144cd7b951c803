//! A few top-level members of a JSON object found by scanning its bytes, with their spans, so that
//! a relayed chunk can be checked and cut without parsing it: serde_json allocates (a scratch stack)
//! to skip or capture nested values, which would cost every relayed chunk an allocation.

use std::ops::Range;

/// Where one top-level member is: `start` is its key's opening quote, `value` the value's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub start: usize,
    pub value: Range<usize>,
}

/// The top-level members of `object` named by `keys`, in their order; `None` when `object` is not
/// a JSON object as far as this scan can tell (the caller then leaves it alone). Keys are compared
/// as written (no unescaping: the keys looked for have no escapes).
pub fn members<const N: usize>(object: &[u8], keys: [&[u8]; N]) -> Option<[Option<Member>; N]> {
    let mut found = [const { None }; N];
    let mut i = skip_space(object, 0);
    if object.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_space(object, i + 1);
    if object.get(i) == Some(&b'}') {
        return Some(found);
    }
    loop {
        if object.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(object, i)?;
        let key = &object[i + 1..key_end - 1];
        let colon = skip_space(object, key_end);
        if object.get(colon) != Some(&b':') {
            return None;
        }
        let value_start = skip_space(object, colon + 1);
        let value_end = value_end(object, value_start)?;
        if let Some(k) = keys.iter().position(|wanted| *wanted == key) {
            found[k] = Some(Member { start: i, value: value_start..value_end });
        }
        i = skip_space(object, value_end);
        match object.get(i) {
            Some(b',') => i = skip_space(object, i + 1),
            Some(b'}') => return Some(found),
            _ => return None,
        }
    }
}

/// `object` without `member`, in one allocation of exactly the result's size.
pub fn without(object: &[u8], member: &Member) -> Option<Vec<u8>> {
    let previous = object[..member.start].iter().rposition(|b| !b.is_ascii_whitespace())?;
    let (from, to) = match object[previous] {
        b',' => (previous, member.value.end),
        b'{' => {
            let next = skip_space(object, member.value.end);
            if object.get(next) == Some(&b',') { (member.start, next + 1) } else { (member.start, member.value.end) }
        }
        _ => return None,
    };
    let mut out = Vec::with_capacity(object.len() - (to - from));
    out.extend_from_slice(&object[..from]);
    out.extend_from_slice(&object[to..]);
    Some(out)
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The index after the string starting at `i` (its opening quote).
fn string_end(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        j += memchr::memchr2(b'"', b'\\', bytes.get(j..)?)?;
        if bytes[j] == b'\\' {
            j += 2;
        } else {
            return Some(j + 1);
        }
    }
}

/// The index after the value starting at `i`.
fn value_end(bytes: &[u8], i: usize) -> Option<usize> {
    match bytes.get(i)? {
        b'"' => string_end(bytes, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while let Some(byte) = bytes.get(j) {
                match byte {
                    b'"' => {
                        j = string_end(bytes, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let end = bytes[i..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                .map_or(bytes.len(), |n| i + n);
            (end > i).then_some(end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(object: &str, member: &Option<Member>) -> String {
        member.as_ref().map(|m| object[m.value.clone()].to_owned()).unwrap_or_default()
    }

    #[test]
    fn finds_top_level_members_only() {
        let object = r#"{"id":"a \"usage\": {","x_groq":{"usage":{"n":1}},"choices":[{"delta":{"content":"}]"}}],"usage" : null , "n": -1.5e3}"#;
        let [usage, choices, groq, n] = members(object.as_bytes(), [b"usage", b"choices", b"x_groq", b"n"]).unwrap();
        assert_eq!(text(object, &usage), "null");
        assert_eq!(text(object, &choices), r#"[{"delta":{"content":"}]"}}]"#);
        assert_eq!(text(object, &groq), r#"{"usage":{"n":1}}"#);
        assert_eq!(text(object, &n), "-1.5e3");
        assert_eq!(members(b"{}", [b"usage"]), Some([None]));
        for broken in [&b"[1]"[..], b"{\"a\"}", b"{\"a\":1", b"{\"a\":\"x", b"{\"a\":[1}", b"not json"] {
            assert_eq!(members(broken, [b"a"]), None, "{}", String::from_utf8_lossy(broken));
        }
    }

    #[test]
    fn a_member_is_cut_out_wherever_it_is() {
        for (object, expected) in [
            (r#"{"id":"a","usage":{"x":1},"model":"m"}"#, r#"{"id":"a","model":"m"}"#),
            (r#"{"id":"a","model":"m","usage":{"x":1}}"#, r#"{"id":"a","model":"m"}"#),
            (r#"{"usage":{"x":1},"id":"a"}"#, r#"{"id":"a"}"#),
            (r#"{"usage":{"x":1}}"#, r#"{}"#),
            (r#"{ "id": "a" , "usage" : { "x": 1 } }"#, r#"{ "id": "a"  }"#),
        ] {
            let [usage] = members(object.as_bytes(), [b"usage"]).unwrap();
            let out = without(object.as_bytes(), usage.as_ref().unwrap()).unwrap();
            assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
            serde_json::from_slice::<serde_json::Value>(&out).unwrap();
        }
    }
}
