//! `google.protobuf.Struct` ⇄ JSON objects, and limits ⇄ Struct.

use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Number, Value as Json};

use crate::domain::{Error, Result, customer::JsonObject, limits::Limits};

/// A request's Struct as a JSON object; `None` when the request carried none. A number
/// JSON cannot hold (NaN, infinity) is an error at `field`.
pub fn to_json_object(field: &str, value: Option<&Struct>) -> Result<Option<JsonObject>> {
    value
        .map(|object| {
            let mut map = Map::new();
            for (key, value) in &object.fields {
                map.insert(key.clone(), to_json(&format!("{field}.{key}"), value)?);
            }
            Ok(map)
        })
        .transpose()
}

fn to_json(field: &str, value: &Value) -> Result<Json> {
    Ok(match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::NumberValue(n)) => Json::Number(
            Number::from_f64(*n).ok_or_else(|| Error::invalid(field, "must be a finite number"))?,
        ),
        Some(Kind::ListValue(list)) => Json::Array(
            list.values
                .iter()
                .enumerate()
                .map(|(i, v)| to_json(&format!("{field}[{i}]"), v))
                .collect::<Result<_>>()?,
        ),
        Some(Kind::StructValue(object)) => {
            Json::Object(to_json_object(field, Some(object))?.unwrap_or_default())
        }
    })
}

pub fn to_struct(object: &JsonObject) -> Struct {
    Struct {
        fields: object
            .iter()
            .map(|(key, value)| (key.clone(), to_value(value)))
            .collect(),
    }
}

fn to_value(value: &Json) -> Value {
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(values) => Kind::ListValue(ListValue {
            values: values.iter().map(to_value).collect(),
        }),
        Json::Object(object) => Kind::StructValue(to_struct(object)),
    };
    Value { kind: Some(kind) }
}

pub fn limits_struct(limits: &Limits) -> Struct {
    Struct {
        fields: limits
            .0
            .iter()
            .map(|(key, value)| {
                (
                    key.clone(),
                    Value {
                        kind: Some(Kind::NumberValue(*value as f64)),
                    },
                )
            })
            .collect(),
    }
}
