//! JSON Schema (as OpenAI takes it for tool parameters and structured output) to Gemini's `Schema`,
//! an OpenAPI 3.0 subset. Keys Gemini refuses are left out when they only constrain what the model
//! may write (`additionalProperties`, `$schema`, `strict`, …); the constructs that change what a
//! value may be are rewritten to their Gemini equivalents:
//! - `type: ["string", "null"]` -> `type: "string", nullable: true` (several types -> `anyOf`);
//! - `const: x` -> `enum: [x]`; `oneOf` -> `anyOf`; a single-element `allOf` -> that element;
//! - `$ref` to `#/$defs/…` or `#/definitions/…` -> the definition, inlined.
//!
//! What cannot be expressed (a recursive `$ref`, a multi-element `allOf`) is a 400 naming the param.

use serde_json::{Map, Value};

/// The keys of Gemini's `Schema` that are copied as they are.
const KEPT: &[&str] = &[
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "default",
    "minimum",
    "maximum",
    "propertyOrdering",
];

/// How deep `$ref`s may nest before we call the schema recursive.
const MAX_REF_DEPTH: usize = 16;

/// `Err(detail)` when the schema cannot be expressed.
pub fn to_gemini(schema: &Value) -> Result<Value, String> {
    let defs = schema.get("$defs").or_else(|| schema.get("definitions"));
    convert(schema, defs, 0)
}

fn convert(schema: &Value, defs: Option<&Value>, depth: usize) -> Result<Value, String> {
    let Value::Object(object) = schema else {
        // `true`/`false` schemas and other oddities: Gemini has no equivalent; the model decides.
        return Ok(Value::Object(Map::new()));
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        if depth >= MAX_REF_DEPTH {
            return Err(format!("`$ref` `{reference}` is recursive, which Gemini's schemas cannot express"));
        }
        let target = resolve(reference, defs).ok_or_else(|| format!("`$ref` `{reference}` does not resolve"))?;
        let mut inlined = convert(target, defs, depth + 1)?;
        // Siblings of `$ref` (usually a `description`) refine the definition.
        if let (Value::Object(inlined), Value::Object(siblings)) =
            (&mut inlined, convert_siblings(object, defs, depth)?)
        {
            inlined.extend(siblings);
        }
        return Ok(inlined);
    }
    convert_siblings(object, defs, depth)
}

fn convert_siblings(object: &Map<String, Value>, defs: Option<&Value>, depth: usize) -> Result<Value, String> {
    let mut out = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "type" => set_type(&mut out, value),
            "const" => {
                out.insert("enum".into(), Value::Array(vec![value.clone()]));
            }
            "properties" => {
                let Value::Object(properties) = value else { continue };
                let mut converted = Map::with_capacity(properties.len());
                for (name, property) in properties {
                    converted.insert(name.clone(), convert(property, defs, depth)?);
                }
                out.insert("properties".into(), Value::Object(converted));
            }
            "required" => {
                out.insert(key.clone(), value.clone());
            }
            "items" => {
                out.insert("items".into(), convert(value, defs, depth)?);
            }
            "anyOf" | "oneOf" => {
                let Value::Array(options) = value else { continue };
                let options = options.iter().map(|o| convert(o, defs, depth)).collect::<Result<Vec<_>, _>>()?;
                out.insert("anyOf".into(), Value::Array(options));
            }
            "allOf" => match value.as_array().map(Vec::as_slice) {
                Some([only]) => {
                    if let Value::Object(merged) = convert(only, defs, depth)? {
                        out.extend(merged);
                    }
                }
                _ => return Err("`allOf` with several schemas cannot be expressed in Gemini's schemas".into()),
            },
            key if KEPT.contains(&key) => {
                out.insert(key.to_owned(), value.clone());
            }
            // `additionalProperties`, `$schema`, `$defs`, `$id`, `strict`, `examples`, …
            _ => {}
        }
    }
    Ok(Value::Object(out))
}

/// `type` as Gemini takes it: one type, with `nullable` for a `"null"` alternative.
fn set_type(out: &mut Map<String, Value>, value: &Value) {
    let Value::Array(types) = value else {
        out.insert("type".into(), value.clone());
        return;
    };
    let nullable = types.iter().any(|t| t == "null");
    let concrete: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
    match concrete.as_slice() {
        [] => {
            out.insert("nullable".into(), Value::Bool(true));
        }
        [one] => {
            out.insert("type".into(), (*one).clone());
        }
        several => {
            let options = several.iter().map(|t| Value::Object(Map::from_iter([("type".to_owned(), (*t).clone())])));
            out.insert("anyOf".into(), Value::Array(options.collect()));
        }
    }
    if nullable {
        out.insert("nullable".into(), Value::Bool(true));
    }
}

fn resolve<'a>(reference: &str, defs: Option<&'a Value>) -> Option<&'a Value> {
    let name = reference.strip_prefix("#/$defs/").or_else(|| reference.strip_prefix("#/definitions/"))?;
    defs?.get(name)
}

/// Gemini refuses an `OBJECT` schema without properties; a function without parameters is
/// declared without `parameters` instead.
pub fn is_empty_object(schema: &Value) -> bool {
    let Value::Object(object) = schema else { return false };
    object.get("type").is_none_or(|t| t == "object")
        && object.get("properties").is_none_or(|p| p.as_object().is_some_and(Map::is_empty))
        // Anything else (`anyOf`, `$ref`, …) says something about the arguments.
        && object.keys().all(|k| {
            matches!(k.as_str(), "type" | "properties" | "additionalProperties" | "$schema" | "title" | "description")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unsupported_keys_go_and_property_names_stay() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "format": {"type": "string", "description": "a property named like a keyword"},
                "tags": {"type": "array", "items": {"type": "string", "examples": ["a"]}, "maxItems": 3}
            },
            "required": ["format"],
            "additionalProperties": false
        });
        assert_eq!(
            to_gemini(&schema).unwrap(),
            json!({
                "type": "object",
                "properties": {
                    "format": {"type": "string", "description": "a property named like a keyword"},
                    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}
                },
                "required": ["format"]
            })
        );
    }

    #[test]
    fn nullable_types_consts_refs_and_unions() {
        let schema = json!({
            "type": "object",
            "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}},
            "properties": {
                "unit": {"$ref": "#/$defs/Unit", "description": "which unit"},
                "note": {"type": ["string", "null"]},
                "kind": {"const": "weather"},
                "either": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                "wrapped": {"allOf": [{"$ref": "#/$defs/Unit"}]}
            }
        });
        assert_eq!(
            to_gemini(&schema).unwrap(),
            json!({
                "type": "object",
                "properties": {
                    "unit": {"type": "string", "enum": ["c", "f"], "description": "which unit"},
                    "note": {"type": "string", "nullable": true},
                    "kind": {"enum": ["weather"]},
                    "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "wrapped": {"type": "string", "enum": ["c", "f"]}
                }
            })
        );
    }

    #[test]
    fn recursion_and_compound_all_of_are_refused() {
        let recursive = json!({"$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}, "$ref": "#/$defs/Node"});
        assert!(to_gemini(&recursive).unwrap_err().contains("recursive"));
        let all_of = json!({"allOf": [{"type": "object"}, {"required": ["a"]}]});
        assert!(to_gemini(&all_of).unwrap_err().contains("allOf"));
        assert!(to_gemini(&json!({"$ref": "#/$defs/Missing"})).unwrap_err().contains("does not resolve"));
    }

    #[test]
    fn empty_objects() {
        assert!(is_empty_object(&json!({"type": "object", "properties": {}})));
        assert!(is_empty_object(&json!({"type": "object"})));
        assert!(is_empty_object(&json!({"type": "object", "properties": {}, "additionalProperties": false})));
        assert!(!is_empty_object(&json!({"type": "object", "properties": {"a": {"type": "string"}}})));
        assert!(!is_empty_object(&json!({"anyOf": [{"type": "object"}]})));
    }
}
