//! Free-form metadata on customers and accounts: a JSON object a caller owns, bounded so
//! that it stays a small annotation and not a document store.

use serde_json::Value;

use super::{Result, violations::Violations};

/// A JSON object, as `customer_settings`, `customer_metadata` and account settings hold.
pub type JsonObject = serde_json::Map<String, Value>;

pub const MAX_METADATA_KEYS: usize = 50;
pub const MAX_METADATA_KEY_LEN: usize = 40;
pub const MAX_METADATA_STRING_LEN: usize = 500;
/// Members of one nested object or array. SPEC bounds only the top level; the same
/// bound on a nested value keeps one key from holding an unbounded list.
pub const MAX_METADATA_NESTED_MEMBERS: usize = 50;
/// The whole object, as compact JSON in UTF-8. The other bounds alone allow 50 keys of
/// 50 strings of 500 characters each (megabytes); metadata is a small annotation that
/// rides along on every read of its customer or account, and every event about it.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Validates metadata: at most 50 keys of 1..40 characters, values scalars (string ≤ 500
/// characters, number, bool, null) or one level of object or array whose members are
/// scalars, and at most 16 KiB as compact JSON in all. Violations name `{field}` (too many keys) or `{field}.{key}`. `None` is an
/// empty object.
pub fn parse_metadata(field: &str, object: Option<&JsonObject>) -> Result<JsonObject> {
    let Some(object) = object else {
        return Ok(JsonObject::new());
    };
    let mut violations = Violations::new();
    if object.len() > MAX_METADATA_KEYS {
        violations.add(
            field,
            format!(
                "must have at most {MAX_METADATA_KEYS} keys, has {}",
                object.len()
            ),
        );
    }
    for (key, value) in object {
        // An empty key has no path of its own; the object is named instead.
        let path = if key.is_empty() {
            field.to_string()
        } else {
            format!("{field}.{key}")
        };
        if let Err(description) = check_key(key) {
            violations.add(path.as_str(), description);
            continue;
        }
        if let Err(description) = check_value(value) {
            violations.add(path, description);
        }
    }
    let size = serde_json::to_string(object).map_or(usize::MAX, |json| json.len());
    if size > MAX_METADATA_BYTES {
        violations.add(
            field,
            format!("must be at most {MAX_METADATA_BYTES} bytes as JSON in all, is {size}"),
        );
    }
    violations.finish()?;
    Ok(object.clone())
}

fn check_key(key: &str) -> Result<(), String> {
    let length = key.chars().count();
    if key.trim().is_empty() {
        Err("a key must not be empty".into())
    } else if length > MAX_METADATA_KEY_LEN {
        Err(format!(
            "a key must be at most {MAX_METADATA_KEY_LEN} characters, this one has {length}"
        ))
    } else if key.chars().any(char::is_control) {
        Err("a key must not contain control characters".into())
    } else {
        Ok(())
    }
}

fn check_value(value: &Value) -> Result<(), String> {
    match value {
        Value::Array(members) => {
            check_members(members.len())?;
            members.iter().try_for_each(check_scalar)
        }
        Value::Object(members) => {
            check_members(members.len())?;
            members.iter().try_for_each(|(key, member)| {
                check_key(key)?;
                check_scalar(member)
            })
        }
        scalar => check_scalar(scalar),
    }
}

fn check_members(count: usize) -> Result<(), String> {
    if count > MAX_METADATA_NESTED_MEMBERS {
        Err(format!(
            "a nested value must have at most {MAX_METADATA_NESTED_MEMBERS} members, has {count}"
        ))
    } else {
        Ok(())
    }
}

fn check_scalar(value: &Value) -> Result<(), String> {
    match value {
        Value::String(text) if text.chars().count() > MAX_METADATA_STRING_LEN => Err(format!(
            "strings must be at most {MAX_METADATA_STRING_LEN} characters"
        )),
        Value::Array(_) | Value::Object(_) => Err(
            "only one level of nesting is allowed: members of an object or array must be scalars"
                .into(),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::Error;

    fn object(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => panic!("test input must be an object"),
        }
    }

    #[test]
    fn the_whole_object_is_bounded_in_bytes() {
        // 40 keys of 500 two-byte characters: every key and value is within its own
        // bound, the whole is about 40 KB.
        let big: JsonObject = (0..40)
            .map(|i| (format!("k{i}"), Value::String("ü".repeat(500))))
            .collect();
        assert_eq!(
            fields_of(parse_metadata("customer_metadata", Some(&big))),
            ["customer_metadata"]
        );
        let small: JsonObject = (0..10)
            .map(|i| (format!("k{i}"), Value::String("ü".repeat(500))))
            .collect();
        assert!(parse_metadata("customer_metadata", Some(&small)).is_ok());
    }

    fn fields_of(result: Result<JsonObject>) -> Vec<String> {
        match result {
            Err(Error::InvalidArgument(list)) => list.into_iter().map(|v| v.field).collect(),
            other => panic!("expected violations, got {other:?}"),
        }
    }

    #[test]
    fn scalars_and_one_level_of_nesting_are_kept_as_given() {
        let input = object(json!({
            "crm_id": "456", "score": 1.5, "vip": true, "note": null,
            "tags": ["a", 1, false, null], "billing": {"id": "x", "n": 2}
        }));
        assert_eq!(parse_metadata("m", Some(&input)).ok(), Some(input));
        assert_eq!(parse_metadata("m", None).ok(), Some(JsonObject::new()));
    }

    #[test]
    fn deeper_nesting_is_a_violation_at_the_key() {
        let input = object(json!({
            "ok": 1, "arr": [[1]], "obj": {"inner": {"x": 1}}, "mixed": [{"a": 1}]
        }));
        let mut fields = fields_of(parse_metadata("c.m", Some(&input)));
        fields.sort();
        assert_eq!(fields, ["c.m.arr", "c.m.mixed", "c.m.obj"]);
    }

    #[test]
    fn key_count_key_length_and_string_length_are_bounded() {
        let fifty: JsonObject = (0..50).map(|i| (format!("k{i}"), json!(i))).collect();
        assert!(parse_metadata("m", Some(&fifty)).is_ok());
        let fifty_one: JsonObject = (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(fields_of(parse_metadata("m", Some(&fifty_one))), ["m"]);

        let key40 = "k".repeat(40);
        let ok = object(json!({ key40: "x".repeat(500) }));
        assert!(parse_metadata("m", Some(&ok)).is_ok());

        let key41 = "k".repeat(41);
        let bad = object(json!({ key41.clone(): 1, "long": "x".repeat(501), "": 1,
            "nested": ["y".repeat(501)] }));
        let mut fields = fields_of(parse_metadata("m", Some(&bad)));
        fields.sort();
        assert_eq!(
            fields,
            [
                "m".to_string(),
                format!("m.{key41}"),
                "m.long".into(),
                "m.nested".into()
            ]
        );
    }

    #[test]
    fn a_nested_value_is_bounded_too() {
        let fifty = object(json!({ "list": vec![1; 50] }));
        assert!(parse_metadata("m", Some(&fifty)).is_ok());
        let fifty_one = object(json!({ "list": vec![1; 51] }));
        assert_eq!(fields_of(parse_metadata("m", Some(&fifty_one))), ["m.list"]);
    }
}
