//! JSON Schema (2020-12) of the values we serialise, written by hand next to each type
//! (`impl Schema for …`), and a small validator for exactly the keywords these schemas use. The
//! MCP adapter publishes the schemas as tools' `outputSchema`; the unit tests next to each type
//! and the integration tests validate real serialisations against them, so a field added to a
//! type without its schema fails a test instead of a client.
//!
//! Hand-written rather than derived: the subset is small (objects, arrays, scalars, enums,
//! `anyOf`), and a derive crate would bring a proc-macro dependency for a few dozen lines.

use serde_json::{Map, Value, json};

/// A type whose JSON form has a fixed schema.
pub trait Schema {
    fn schema() -> Value;
}

pub fn string() -> Value {
    json!({ "type": "string" })
}

pub fn integer() -> Value {
    json!({ "type": "integer" })
}

pub fn number() -> Value {
    json!({ "type": "number" })
}

pub fn boolean() -> Value {
    json!({ "type": "boolean" })
}

/// Any JSON value (e.g. an agent's parsed JSON answer).
pub fn any() -> Value {
    json!({})
}

pub fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

pub fn null() -> Value {
    json!({ "type": "null" })
}

pub fn nullable(ty: &str) -> Value {
    json!({ "type": [ty, "null"] })
}

/// A string that is one of `values`.
pub fn one_of_strings(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

pub fn any_of(schemas: Vec<Value>) -> Value {
    json!({ "anyOf": schemas })
}

/// A closed object: exactly these properties may appear, `required` must.
pub fn object(properties: &[(&str, Value)], required: &[&str]) -> Value {
    let props: Map<String, Value> = properties
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

/// `base` (an `object(..)` schema) with more properties, some of them required.
pub fn extend(mut base: Value, properties: &[(&str, Value)], required: &[&str]) -> Value {
    if let Some(props) = base.get_mut("properties").and_then(Value::as_object_mut) {
        for (k, v) in properties {
            props.insert((*k).to_string(), v.clone());
        }
    }
    if let Some(req) = base.get_mut("required").and_then(Value::as_array_mut) {
        req.extend(required.iter().map(|r| json!(r)));
    }
    base
}

/// Checks `value` against `schema`, for the keywords the schemas above use: `type` (one or a
/// list), `properties`, `required`, `additionalProperties` (boolean or schema), `items`, `enum`,
/// `const` and `anyOf`. Any other keyword is refused, so a schema cannot silently use more than
/// this validator checks. The error names the path of the first mismatch.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, "$")
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

fn check(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    let Some(s) = schema.as_object() else {
        return match schema {
            Value::Bool(true) => Ok(()),
            _ => Err(format!("{path}: not allowed by schema {schema}")),
        };
    };
    for key in s.keys() {
        let known = [
            "type",
            "properties",
            "required",
            "additionalProperties",
            "items",
            "enum",
            "const",
            "anyOf",
            "description",
            "title",
            "$schema",
        ];
        if !known.contains(&key.as_str()) {
            return Err(format!("{path}: schema keyword {key:?} is not supported"));
        }
    }
    if let Some(ty) = s.get("type") {
        let ok = match ty {
            Value::String(t) => type_matches(t, v),
            Value::Array(ts) => {
                // 2020-12 wants the names unique; a validator that allowed repeats would pass
                // schemas that real clients refuse.
                let names: std::collections::BTreeSet<&str> =
                    ts.iter().filter_map(Value::as_str).collect();
                if names.len() != ts.len() {
                    return Err(format!(
                        "{path}: schema type list {ty} repeats or is not strings"
                    ));
                }
                names.iter().any(|t| type_matches(t, v))
            }
            _ => false,
        };
        if !ok {
            return Err(format!("{path}: {v} is not of type {ty}"));
        }
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        return Err(format!(
            "{path}: {v} is not one of {}",
            Value::from(allowed.clone())
        ));
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        return Err(format!("{path}: {v} is not {c}"));
    }
    if let Some(options) = s.get("anyOf").and_then(Value::as_array) {
        let errors: Vec<String> = options
            .iter()
            .filter_map(|o| check(o, v, path).err())
            .collect();
        if errors.len() == options.len() {
            return Err(format!(
                "{path}: matches no anyOf option: {}",
                errors.join(" | ")
            ));
        }
    }
    if let Value::Object(obj) = v {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(required) = s.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    return Err(format!("{path}: missing required property {r:?}"));
                }
            }
        }
        for (k, item) in obj {
            let at = format!("{path}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(sub) => check(sub, item, &at)?,
                None => match s.get("additionalProperties") {
                    None | Some(Value::Bool(true)) => {}
                    Some(Value::Bool(false)) => {
                        return Err(format!("{at}: property not in the schema"));
                    }
                    Some(sub) => check(sub, item, &at)?,
                },
            }
        }
    }
    if let (Value::Array(items), Some(sub)) = (v, s.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(sub, item, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator_accepts_matches_and_names_the_first_mismatch() {
        let s = object(
            &[
                ("a", string()),
                ("n", integer()),
                ("k", one_of_strings(&["x", "y"])),
                ("l", array(number())),
                ("o", nullable("number")),
            ],
            &["a"],
        );
        assert_eq!(
            validate(
                &s,
                &json!({"a": "s", "n": 3.0, "k": "x", "l": [1, 2.5], "o": null})
            ),
            Ok(())
        );
        let bad = [
            json!({}),
            json!({"a": 1}),
            json!({"a": "s", "n": 1.5}),
            json!({"a": "s", "k": "z"}),
            json!({"a": "s", "l": ["1"]}),
            json!({"a": "s", "extra": 1}),
            json!([]),
        ];
        for v in bad {
            assert!(validate(&s, &v).is_err(), "{v} passed");
        }
        let either = any_of(vec![
            object(&[("x", string())], &["x"]),
            object(&[("y", string())], &["y"]),
        ]);
        assert!(validate(&either, &json!({"y": "1"})).is_ok());
        assert!(validate(&either, &json!({"x": "1", "y": "1"})).is_err());
    }

    #[test]
    fn unknown_keywords_and_repeated_types_are_refused_not_ignored() {
        assert!(validate(&json!({"minimum": 3}), &json!(1)).is_err());
        assert!(validate(&json!({"type": ["null", "null"]}), &json!(null)).is_err());
    }
}
