//! The OpenAPI 3.1 document of the HTTP/JSON API, made from the same descriptors and
//! route table as the server's routes: schemas follow the proto3 JSON mapping
//! (lowerCamelCase names, enums by name, 64-bit integers as strings, Timestamps as
//! RFC 3339 strings).

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::http_routes::Route;

pub fn document(
    pool: &DescriptorPool,
    routes: &[Route],
) -> Result<String, Box<dyn std::error::Error>> {
    let mut schemas = BTreeMap::new();
    let mut pending: Vec<MessageDescriptor> = Vec::new();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();

    for route in routes {
        let input = pool
            .get_message_by_name(&route.input)
            .ok_or_else(|| format!("no message {}", route.input))?;
        let output = pool
            .get_message_by_name(&route.output)
            .ok_or_else(|| format!("no message {}", route.output))?;
        let path_fields = path_variables(&route.template);
        let mut parameters = Vec::new();
        for name in &path_fields {
            let field = input
                .get_field_by_name(name)
                .ok_or_else(|| format!("{}: no field {name} in {}", route.rpc, route.input))?;
            parameters.push(json!({
                "name": name, "in": "path", "required": true,
                "schema": field_schema(&field, &mut pending),
            }));
        }
        if route.body != "*" {
            for field in input.fields() {
                if path_fields.contains(field.name()) || field.name() == route.body {
                    continue;
                }
                if matches!(field.kind(), Kind::Message(m) if !query_message(&m)) {
                    continue;
                }
                parameters.push(json!({
                    "name": field.json_name(), "in": "query", "required": false,
                    "schema": field_schema(&field, &mut pending),
                }));
            }
        }
        let mut operation = json!({
            "operationId": if route.binding == 0 {
                format!("{}_{}", route.service, route.rpc_name)
            } else {
                format!("{}_{}_{}", route.service, route.rpc_name, route.binding)
            },
            "summary": format!("{}.{}", route.service, route.rpc_name),
            "tags": [route.service.clone()],
            "parameters": parameters,
            "responses": {
                "default": {
                    "description": "An error: the HTTP status mapped from the gRPC code",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                }
            }
        });
        let ok = if route.server_streaming {
            json!({
                "description": "Server-sent events: `id` is the event's sequence, `data` one response message as JSON",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}
            })
        } else {
            json!({
                "description": "OK",
                "content": {"application/json": {"schema": message_ref(&output, &mut pending)}}
            })
        };
        operation["responses"]["200"] = ok;
        if !route.body.is_empty() {
            let schema = if route.body == "*" {
                message_ref(&input, &mut pending)
            } else {
                let field = input
                    .get_field_by_name(&route.body)
                    .ok_or_else(|| format!("{}: no body field {}", route.rpc, route.body))?;
                field_schema(&field, &mut pending)
            };
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": schema}}
            });
        }
        let path = route.template.clone();
        let entry = paths.entry(path).or_default();
        if entry.contains_key(&route.method.to_lowercase()) {
            return Err(format!("two RPCs on {} {}", route.method, route.template).into());
        }
        entry.insert(route.method.to_lowercase(), operation);
    }

    let mut seen = BTreeSet::new();
    while let Some(message) = pending.pop() {
        if !seen.insert(message.full_name().to_owned()) {
            continue;
        }
        let mut properties = Map::new();
        for field in message.fields() {
            properties.insert(
                field.json_name().to_owned(),
                field_schema(&field, &mut pending),
            );
        }
        schemas.insert(
            message.full_name().to_owned(),
            json!({"type": "object", "properties": properties, "additionalProperties": false}),
        );
    }
    schemas.insert(
        "Error".to_owned(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message", "status"],
                "properties": {
                    "code": {"type": "integer", "description": "The HTTP status"},
                    "message": {"type": "string"},
                    "status": {"type": "string", "description": "The google.rpc.Code name, e.g. NOT_FOUND"},
                    "details": {"type": "array", "items": {
                        "type": "object",
                        "properties": {"@type": {"type": "string"}},
                        "additionalProperties": true
                    }}
                }
            }}
        }),
    );

    let document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tenancy",
            "version": "v1",
            "description": "Customers, accounts, users and memberships over HTTP/JSON: the same \
                API as gRPC (proto/tenancy/v1), generated from its google.api.http annotations.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API key"}}
        }
    });
    Ok(serde_json::to_string_pretty(&document)?)
}

/// The field paths a template binds (`/v1/customers/{customer_id}` → `customer_id`).
pub fn path_variables(template: &str) -> BTreeSet<String> {
    template
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split('}').next())
        .map(|var| var.split('=').next().unwrap_or(var).to_owned())
        .collect()
}

/// Well-known messages that travel as one JSON string, so a query parameter can hold them.
fn query_message(message: &MessageDescriptor) -> bool {
    matches!(
        message.full_name(),
        "google.protobuf.Timestamp" | "google.protobuf.Duration" | "google.protobuf.FieldMask"
    )
}

fn message_ref(message: &MessageDescriptor, pending: &mut Vec<MessageDescriptor>) -> Value {
    if let Some(schema) = well_known(message) {
        return schema;
    }
    pending.push(message.clone());
    json!({"$ref": format!("#/components/schemas/{}", message.full_name())})
}

fn well_known(message: &MessageDescriptor) -> Option<Value> {
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => {
            json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"})
        }
        "google.protobuf.FieldMask" => {
            json!({"type": "string", "description": "Comma-separated lowerCamelCase field paths"})
        }
        "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({"type": "array"}),
        "google.protobuf.Empty" => json!({"type": "object"}),
        "google.protobuf.Any" => {
            json!({"type": "object", "properties": {"@type": {"type": "string"}}, "additionalProperties": true})
        }
        "google.protobuf.StringValue" => json!({"type": "string"}),
        "google.protobuf.BoolValue" => json!({"type": "boolean"}),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => json!({"type": "integer"}),
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({"type": "string", "format": "int64"})
        }
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => json!({"type": "number"}),
        "google.protobuf.BytesValue" => json!({"type": "string", "contentEncoding": "base64"}),
        _ => return None,
    })
}

fn kind_schema(kind: &Kind, pending: &mut Vec<MessageDescriptor>) -> Value {
    match kind {
        Kind::Double | Kind::Float => json!({"type": "number"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "int64", "minimum": 0}),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({"type": "string", "format": "int64"}),
        Kind::Uint64 | Kind::Fixed64 => json!({"type": "string", "format": "uint64"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Kind::Enum(e) => {
            json!({"type": "string", "enum": e.values().map(|v| v.name().to_owned()).collect::<Vec<_>>()})
        }
        Kind::Message(m) => message_ref(m, pending),
    }
}

fn field_schema(field: &FieldDescriptor, pending: &mut Vec<MessageDescriptor>) -> Value {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return json!({"type": "object"});
        };
        let value = entry.map_entry_value_field();
        return json!({"type": "object", "additionalProperties": kind_schema(&value.kind(), pending)});
    }
    let schema = kind_schema(&field.kind(), pending);
    if field.is_list() {
        json!({"type": "array", "items": schema})
    } else {
        schema
    }
}
