//! The edge check every RPC of `proto/` passes before its handler: the request must be
//! one well-formed protobuf message of the RPC's input type, no larger than the
//! configured maximum, and every string in it (nested messages, repeated fields, maps,
//! oneofs and `google.protobuf.Struct` values included) must be valid UTF-8, free of
//! NUL and within the limit `limits::of` gives its field. It is driven by the embedded
//! descriptor set, so a field added to `proto/` is covered without touching a handler;
//! a unit test fails when a string field has no limit.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Buf as _, Bytes};
use futures::future::BoxFuture;
use http_body_util::{BodyExt as _, Limited};
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, MapKey, MessageDescriptor,
    ReflectMessage as _, Value,
};
use tonic::{Status, body::Body};
use tower::{Layer, Service};

use super::{limits, pb};
use crate::domain::{Error, error::FieldViolation};

/// The request message, decoded, that the in-process HTTP/JSON gateway attaches to the
/// gRPC request it built from it (callers from outside cannot set extensions): the check
/// then reads it rather than decoding the body it was encoded into.
#[derive(Debug, Clone)]
pub struct DecodedInput(pub Arc<DynamicMessage>);

/// The descriptors of `proto/`, and the request size limit.
#[derive(Debug)]
struct Rules {
    /// The input message of every RPC of `proto/`, by its path
    /// (`/tenancy.v1.UserService/GetUser`): looked up once here rather than by
    /// service and method name on every request.
    inputs: std::collections::HashMap<String, MessageDescriptor>,
    max_request_bytes: usize,
}

/// The descriptor pool of `proto/` (with the well-known types it imports).
pub fn descriptor_pool() -> Result<DescriptorPool, prost_reflect::DescriptorError> {
    DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET)
}

impl Rules {
    fn new(pool: &DescriptorPool, max_request_bytes: usize) -> Rules {
        let inputs = pool
            .services()
            .flat_map(|service| {
                service
                    .methods()
                    .map(|method| {
                        let path = format!("/{}/{}", service.full_name(), method.name());
                        (path, method.input())
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        Rules {
            inputs,
            max_request_bytes,
        }
    }

    /// The input message of the RPC at `path` (`/tenancy.v1.UserService/GetUser`), if
    /// `proto/` declares it; health, reflection and unknown paths are not checked here.
    fn input_of(&self, path: &str) -> Option<MessageDescriptor> {
        self.inputs.get(path).cloned()
    }

    /// Checks a whole gRPC request body (length-prefixed frames) against `input`.
    fn check_body(&self, input: &MessageDescriptor, mut body: Bytes) -> Result<(), Status> {
        while body.has_remaining() {
            if body.remaining() < 5 {
                return Err(malformed("the request ends inside a gRPC frame header"));
            }
            let compressed = body.get_u8();
            let len = body.get_u32() as usize;
            if compressed != 0 {
                return Err(Status::unimplemented(
                    "compressed requests are not accepted; send them uncompressed",
                ));
            }
            if len > self.max_request_bytes {
                return Err(too_large(self.max_request_bytes));
            }
            if body.remaining() < len {
                return Err(malformed("the request ends inside a message"));
            }
            let message = body.split_to(len);
            let message = DynamicMessage::decode(input.clone(), message).map_err(|e| {
                malformed(&format!("the request is not a valid {}: {e}", input.name()))
            })?;
            self.check_message(&message)?;
        }
        Ok(())
    }

    /// Checks every string of one decoded request message.
    fn check_message(&self, message: &DynamicMessage) -> Result<(), Status> {
        let mut violations = Vec::new();
        check_message(message, "", &mut violations);
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations).into());
        }
        Ok(())
    }
}

fn malformed(description: &str) -> Status {
    Error::invalid("", description).into()
}

fn too_large(max: usize) -> Status {
    Error::ResourceExhausted(format!(
        "the request is larger than the {max} bytes this server accepts"
    ))
    .into()
}

/// The well-known types whose own field names would only clutter a path: a Struct
/// reads `customer.customer_metadata["plan"]`, not `….fields["plan"].string_value`.
fn is_transparent(message: &MessageDescriptor) -> bool {
    matches!(
        message.full_name(),
        "google.protobuf.Struct" | "google.protobuf.Value" | "google.protobuf.ListValue"
    )
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn check_message(message: &DynamicMessage, path: &str, violations: &mut Vec<FieldViolation>) {
    let transparent = is_transparent(&message.descriptor());
    for (field, value) in message.fields() {
        let path = if transparent {
            path.to_string()
        } else {
            join(path, field.name())
        };
        match value {
            Value::List(items) => {
                for (index, item) in items.iter().enumerate() {
                    check_value(&field, item, &format!("{path}[{index}]"), violations);
                }
            }
            Value::Map(entries) => {
                let Some(entry) = field.kind().as_message().cloned() else {
                    continue;
                };
                let key_field = entry.map_entry_key_field();
                let value_field = entry.map_entry_value_field();
                // Sorted, so the violations of one request always come in one order.
                let mut entries: Vec<_> = entries.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (key, item) in entries {
                    let entry_path = match key {
                        MapKey::String(key) => format!("{path}[{key:?}]"),
                        other => format!("{path}[{other:?}]"),
                    };
                    if let MapKey::String(key) = key {
                        check_string(&key_field, key, &entry_path, violations);
                    }
                    check_value(&value_field, item, &entry_path, violations);
                }
            }
            single => check_value(&field, single, &path, violations),
        }
    }
}

fn check_value(
    field: &FieldDescriptor,
    value: &Value,
    path: &str,
    violations: &mut Vec<FieldViolation>,
) {
    match value {
        Value::String(text) => check_string(field, text, path, violations),
        Value::Message(message) => check_message(message, path, violations),
        _ => {}
    }
}

fn check_string(
    field: &FieldDescriptor,
    text: &str,
    path: &str,
    violations: &mut Vec<FieldViolation>,
) {
    let full_name = field.full_name();
    if limits::CHECKED_BY_HANDLER.contains(&full_name) {
        return;
    }
    let max = limits::of(full_name).unwrap_or(limits::FALLBACK);
    if text.contains('\0') {
        violations.push(FieldViolation::new(path, "must not contain NUL characters"));
    }
    // The domain rules trim what they read, so the limit counts what is left; the
    // padding itself is bounded too. A string of at most `max` bytes has at most `max`
    // characters: no count needed.
    let trimmed = text.trim();
    let too_long = |text: &str, max: usize| text.len() > max && text.chars().count() > max;
    if too_long(trimmed, max) || too_long(text, max + limits::PADDING) {
        violations.push(FieldViolation::new(
            path,
            format!("must be at most {max} characters"),
        ));
    }
}

/// The tower layer that runs the edge check before every RPC of `proto/`.
#[derive(Debug, Clone)]
pub struct InputCheckLayer {
    rules: Arc<Rules>,
}

impl InputCheckLayer {
    /// Refuses requests over `max_request_bytes` (one message) with RESOURCE_EXHAUSTED.
    pub fn new(max_request_bytes: usize) -> Result<Self, prost_reflect::DescriptorError> {
        Ok(Self {
            rules: Arc::new(Rules::new(&descriptor_pool()?, max_request_bytes)),
        })
    }
}

impl<S> Layer<S> for InputCheckLayer {
    type Service = InputCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InputCheck {
            inner,
            rules: self.rules.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct InputCheck<S> {
    inner: S,
    rules: Arc<Rules>,
}

impl<S, ResBody> Service<http::Request<Body>> for InputCheck<S>
where
    S: Service<http::Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let rules = self.rules.clone();
        Box::pin(async move {
            let Some(input) = rules.input_of(request.uri().path()) else {
                return inner.call(request).await;
            };
            if let Some(DecodedInput(message)) = request.extensions_mut().remove::<DecodedInput>()
                && message.descriptor() == input
            {
                let checked = if prost::Message::encoded_len(&*message) > rules.max_request_bytes {
                    Err(too_large(rules.max_request_bytes))
                } else {
                    rules.check_message(&message)
                };
                if let Err(status) = checked {
                    return Ok(status.into_http());
                }
                return inner.call(request).await;
            }
            let (parts, body) = request.into_parts();
            // One frame header and one message: every RPC of `proto/` takes one request.
            let limit = rules.max_request_bytes.saturating_add(5);
            let body = match Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                    return Ok(too_large(rules.max_request_bytes).into_http());
                }
                Err(_) => {
                    return Ok(Status::cancelled("the request body could not be read").into_http());
                }
            };
            if let Err(status) = rules.check_body(&input, body.clone()) {
                return Ok(status.into_http());
            }
            inner
                .call(http::Request::from_parts(
                    parts,
                    Body::new(http_body_util::Full::new(body)),
                ))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn rules() -> Rules {
        Rules::new(&descriptor_pool().unwrap(), 1 << 20)
    }

    /// Every message a request can carry: the RPC inputs and what they reach.
    fn request_messages(pool: &DescriptorPool) -> Vec<MessageDescriptor> {
        let mut seen = std::collections::BTreeMap::new();
        let mut todo: Vec<MessageDescriptor> = pool
            .services()
            .flat_map(|s| s.methods().map(|m| m.input()).collect::<Vec<_>>())
            .collect();
        while let Some(message) = todo.pop() {
            if seen.contains_key(message.full_name()) {
                continue;
            }
            for field in message.fields() {
                if let Some(nested) = field.kind().as_message() {
                    todo.push(nested.clone());
                }
            }
            seen.insert(message.full_name().to_string(), message);
        }
        seen.into_values().collect()
    }

    #[test]
    fn every_string_field_a_request_can_carry_has_a_limit() {
        let pool = descriptor_pool().unwrap();
        let mut missing = Vec::new();
        let mut checked = 0;
        for message in request_messages(&pool) {
            for field in message.fields() {
                if field.kind() == prost_reflect::Kind::String {
                    checked += 1;
                    if limits::of(field.full_name()).is_none() {
                        missing.push(field.full_name().to_string());
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "string fields without a limit:\n{}",
            missing.join("\n")
        );
        // The well-known Struct's keys and strings are reached too.
        assert!(checked > 50, "only {checked} string fields found");
    }

    #[test]
    fn every_limit_names_a_field_of_the_contract() {
        let pool = descriptor_pool().unwrap();
        let known: std::collections::BTreeSet<String> = request_messages(&pool)
            .iter()
            .flat_map(|m| {
                m.fields()
                    .map(|f| f.full_name().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        for (name, _) in limits::TABLE {
            assert!(
                known.contains(*name),
                "{name} is in the limits table but no request has it"
            );
        }
    }

    fn framed(message: &[u8]) -> Bytes {
        let mut body = vec![0];
        body.extend_from_slice(&(message.len() as u32).to_be_bytes());
        body.extend_from_slice(message);
        Bytes::from(body)
    }

    fn fields_of(status: &Status) -> Vec<String> {
        use tonic_types::StatusExt as _;
        status
            .get_details_bad_request()
            .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default()
    }

    fn input(rules: &Rules, path: &str) -> MessageDescriptor {
        rules.input_of(path).unwrap()
    }

    #[test]
    fn nested_repeated_and_struct_strings_are_named_by_their_path() {
        let rules = rules();
        let request = pb::ListUsersRequest {
            query: "a\0b".into(),
            page_token: "x".repeat(5000),
            ..Default::default()
        };
        let status = rules
            .check_body(
                &input(&rules, "/tenancy.v1.UserService/ListUsers"),
                framed(&request.encode_to_vec()),
            )
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(fields_of(&status), ["query", "page_token"]);

        let mask = prost_types::FieldMask {
            paths: vec!["first_name".into(), "x\0".into()],
        };
        let request = pb::UpdateUserRequest {
            update_mask: Some(mask),
            ..Default::default()
        };
        let status = rules
            .check_body(
                &input(&rules, "/tenancy.v1.UserService/UpdateUser"),
                framed(&request.encode_to_vec()),
            )
            .unwrap_err();
        assert_eq!(fields_of(&status), ["update_mask.paths[1]"]);
    }

    #[test]
    fn struct_keys_and_values_are_checked_and_named() {
        use prost_types::{ListValue, Struct, Value as V, value::Kind};
        let pool = descriptor_pool().unwrap();
        let string = |s: &str| V {
            kind: Some(Kind::StringValue(s.into())),
        };
        let metadata = Struct {
            fields: [
                ("plan".to_string(), string("gold\0")),
                (
                    "tags".to_string(),
                    V {
                        kind: Some(Kind::ListValue(ListValue {
                            values: vec![string("ok"), string(&"y".repeat(5000))],
                        })),
                    },
                ),
                ("k\0".to_string(), string("fine")),
            ]
            .into_iter()
            .collect(),
        };
        let customer = pool.get_message_by_name("tenancy.v1.Customer").unwrap();
        let field = customer.get_field_by_name("customer_metadata").unwrap();
        let path = customer;
        let mut message = DynamicMessage::new(path.clone());
        let as_dynamic = DynamicMessage::decode(
            pool.get_message_by_name("google.protobuf.Struct").unwrap(),
            metadata.encode_to_vec().as_slice(),
        )
        .unwrap();
        message.set_field(&field, Value::Message(as_dynamic));
        let mut violations = Vec::new();
        check_message(&message, "", &mut violations);
        let name = field.name();
        let fields: Vec<_> = violations.iter().map(|v| v.field.clone()).collect();
        assert_eq!(
            fields,
            [
                format!("{name}[\"k\\0\"]"),
                format!("{name}[\"plan\"]"),
                format!("{name}[\"tags\"][1]"),
            ]
        );
    }

    #[test]
    fn malformed_bodies_are_invalid_arguments() {
        let rules = rules();
        let get_user = input(&rules, "/tenancy.v1.UserService/GetUser");
        // Field 1 as a length-delimited string holding invalid UTF-8.
        let bad_utf8 = [0x0a, 0x02, 0xff, 0xfe];
        for body in [
            framed(&bad_utf8),
            framed(&[0x0a, 0x10, b'a']),
            Bytes::from_static(&[0, 0, 0]),
            Bytes::from_static(&[0, 0, 0, 0, 9, 1]),
        ] {
            let status = rules.check_body(&get_user, body).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        }
        let huge = Rules {
            max_request_bytes: 10,
            ..rules
        };
        let status = huge.check_body(&get_user, framed(&[0; 11])).unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    }

    #[test]
    fn the_sign_in_email_is_left_to_the_handler() {
        let rules = rules();
        let request = pb::AuthenticateUserRequest {
            email: format!("{}\0", "a".repeat(300_000)),
            password: "secret".into(),
            totp_code: String::new(),
        };
        rules
            .check_body(
                &input(&rules, "/tenancy.v1.UserService/AuthenticateUser"),
                framed(&request.encode_to_vec()),
            )
            .unwrap();
    }
}
