//! The HTTP/JSON gateway: turns a request on a generated route into the gRPC request
//! of its RPC (proto3 JSON mapping → protobuf), sends it through the *same* tower
//! stack as gRPC (request log, limits, auth, input checks, the handler), and turns the
//! answer back into JSON, or into server-sent events for a server-streaming RPC. So
//! HTTP can skip no check that gRPC has, and the handler is the one `app/` use case.

use std::{convert::Infallible, time::Duration};

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use futures::StreamExt as _;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Limited, StreamBody};
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, SerializeOptions,
};
use serde_json::{Map, Value};
use tonic::body::Body;
use tower::ServiceExt as _;

use super::{
    error::ApiError,
    routes::{self, Lookup, Route},
};
use crate::grpc::server::Protocol;

/// The gRPC stack, shareable across the HTTP router's threads.
pub type GrpcService = tower::util::BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// How long a client may take to send a request body (a slow-loris body holds a
/// connection no longer; HTTP/1.1 headers have the listener's own timeout).
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers of the HTTP request that do not travel into the gRPC request: transport and
/// content negotiation (the gRPC request has its own). Others (`authorization`,
/// `grpc-timeout`, trace context, custom metadata) pass through.
const DROPPED_HEADERS: [&str; 12] = [
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "host",
    "accept",
    "accept-encoding",
    "grpc-encoding",
    "grpc-accept-encoding",
];

/// Everything the gateway needs: the gRPC stack and the descriptors of `proto/` and of
/// `google.rpc` (for error details).
#[derive(Clone)]
pub struct Gateway {
    grpc: GrpcService,
    pool: DescriptorPool,
    max_request_bytes: usize,
}

impl Gateway {
    pub fn new(
        grpc: GrpcService,
        max_request_bytes: usize,
    ) -> Result<Gateway, prost_reflect::DescriptorError> {
        let mut pool = DescriptorPool::decode(crate::grpc::pb::FILE_DESCRIPTOR_SET)?;
        pool.decode_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)?;
        Ok(Gateway {
            grpc,
            pool,
            max_request_bytes,
        })
    }

    /// True when `path` is served by a generated route (with any method).
    pub fn serves(path: &str) -> bool {
        path.starts_with("/v1/")
    }

    /// Answers one HTTP/JSON request.
    pub async fn handle(&self, request: Request<Body>) -> Response<Body> {
        match self.transcode(request).await {
            Ok(response) => response,
            Err(error) => error.into_response(&self.pool),
        }
    }

    async fn transcode(&self, request: Request<Body>) -> Result<Response<Body>, ApiError> {
        let (parts, body) = request.into_parts();
        let (route, variables) = match routes::lookup(&parts.method, parts.uri.path()) {
            Lookup::Found(route, variables) => (route, variables),
            Lookup::WrongMethod(allowed) => {
                return Err(ApiError::method_not_allowed(&parts.method, allowed));
            }
            Lookup::NotFound => return Err(ApiError::not_found()),
        };
        let input = self.message(route.input)?;
        let output = self.message(route.output)?;

        // A route with no body and no query (a GET by id) whose variables are string
        // fields: the message is built directly, not through a JSON object.
        if route.body.is_empty()
            && parts.uri.query().is_none()
            && !route.server_streaming
            && let Some(message) = message_of_variables(&input, &variables)
        {
            return self.call(route, &parts, message, output).await;
        }
        let mut fields = Map::new();
        if !route.body.is_empty() {
            // A declared length over the limit is refused before a byte is read.
            let declared = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|length| length > self.max_request_bytes as u64) {
                return Err(too_large(self.max_request_bytes));
            }
            let body = self.read_body(body).await?;
            let value = parse_json(&body)?;
            if route.body == "*" {
                match value {
                    Value::Object(object) => fields = object,
                    _ => {
                        return Err(ApiError::bad_request(
                            "the request body must be a JSON object",
                        ));
                    }
                }
            } else {
                fields.insert(route.body.to_owned(), value);
            }
        }
        if let Some(query) = parts.uri.query() {
            if route.body == "*"
                && let Some((name, _)) = url::form_urlencoded::parse(query.as_bytes()).next()
            {
                return Err(ApiError::bad_request(format!(
                    "query parameter `{name}`: this route takes its fields in the JSON body"
                )));
            }
            add_query(&input, &mut fields, query, route.body)?;
        }
        if route.server_streaming {
            // `Last-Event-ID` (an EventSource reconnecting) resumes after that sequence.
            if let Some(last) = parts.headers.get("last-event-id") {
                let last = last
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .ok_or_else(|| {
                        ApiError::bad_request("header `Last-Event-ID`: not a sequence number")
                    })?;
                fields.remove("afterSequence");
                fields.insert("after_sequence".to_owned(), Value::String(last.to_string()));
            }
        }
        for (name, value) in variables {
            let field = input.get_field_by_name(name).ok_or_else(|| {
                ApiError::internal(format!("route field {name} is not in {}", route.input))
            })?;
            fields.remove(field.json_name());
            fields.remove(field.name());
            fields.insert(name.to_owned(), Value::String(value));
        }

        let mut track = serde_path_to_error::Track::new();
        let message = DynamicMessage::deserialize_with_options(
            input,
            serde_path_to_error::Deserializer::new(Value::Object(fields), &mut track),
            &DeserializeOptions::new().deny_unknown_fields(true),
        )
        .map_err(|e| ApiError::bad_request(format!("field `{}`: {e}", track.path())))?;

        if !route.server_streaming {
            return self.call(route, &parts, message, output).await;
        }
        let response = self.send(grpc_request(route, &parts, message)).await?;
        Ok(server_sent_events(response, output, self.pool.clone()))
    }

    /// Sends `request` through the gRPC stack; a status in the answer's headers (an
    /// error before any message) is the error.
    async fn send(&self, request: Request<Body>) -> Result<Response<Body>, ApiError> {
        let response = self
            .grpc
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never: Infallible| match never {});
        match tonic::Status::from_header_map(response.headers()) {
            Some(status) if status.code() != tonic::Code::Ok => Err(ApiError::from_status(status)),
            _ => Ok(response),
        }
    }

    /// Sends the unary RPC of `route` with the encoded `message` and answers its
    /// outcome as JSON.
    async fn call(
        &self,
        route: &Route,
        parts: &http::request::Parts,
        message: DynamicMessage,
        output: MessageDescriptor,
    ) -> Result<Response<Body>, ApiError> {
        let response = self.send(grpc_request(route, parts, message)).await?;
        let (response_parts, body) = response.into_parts();
        let collected = body
            .collect()
            .await
            .map_err(|e| ApiError::from_status(tonic::Status::unavailable(e.to_string())))?;
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let mut frames = collected.to_bytes();
        match tonic::Status::from_header_map(&trailers) {
            Some(status) if status.code() != tonic::Code::Ok => {
                return Err(ApiError::from_status(status));
            }
            _ => {}
        }
        let payload = next_frame(&mut frames)
            .ok_or_else(|| ApiError::internal("the RPC answered no message".to_owned()))?;
        // Written straight from the bytes where it can be (see `json`), else through
        // prost-reflect.
        let mut json = Vec::with_capacity(payload.len() * 2 + 64);
        if super::json::write_message(&output, &payload, &mut json).is_none() {
            let message = DynamicMessage::decode(output, payload).map_err(|e| {
                ApiError::internal(format!("the RPC's answer does not decode: {e}"))
            })?;
            json = to_json(&message)?;
        }
        let mut response = Response::new(Body::new(http_body_util::Full::new(Bytes::from(json))));
        copy_metadata(&response_parts.headers, response.headers_mut());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(response)
    }

    fn message(&self, name: &str) -> Result<MessageDescriptor, ApiError> {
        self.pool
            .get_message_by_name(name)
            .ok_or_else(|| ApiError::internal(format!("no message {name} in the descriptors")))
    }

    async fn read_body(&self, body: Body) -> Result<Bytes, ApiError> {
        let limited = Limited::new(body, self.max_request_bytes);
        match tokio::time::timeout(BODY_READ_TIMEOUT, limited.collect()).await {
            Err(_) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "the request body was not sent in time",
            )),
            Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
                Err(too_large(self.max_request_bytes))
            }
            Ok(Err(_)) => Err(ApiError::bad_request("the request body could not be read")),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }
}

/// The request message of a route whose only fields are its path variables, when each
/// is a string field (as the JSON mapping would read it); `None` otherwise.
fn message_of_variables(
    input: &MessageDescriptor,
    variables: &[(&'static str, String)],
) -> Option<DynamicMessage> {
    let mut message = DynamicMessage::new(input.clone());
    for (name, value) in variables {
        let field = input.get_field_by_name(name)?;
        if field.kind() != Kind::String || field.is_list() || field.is_map() {
            return None;
        }
        message.set_field(&field, prost_reflect::Value::String(value.clone()));
    }
    Some(message)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is over {limit} bytes"),
    )
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// Adds the query parameters to `fields`: each names a top-level field (either
/// spelling); a repeated field may repeat; a well-known message that is one JSON string
/// (`update_mask`, a Timestamp) is given as that string.
fn add_query(
    input: &MessageDescriptor,
    fields: &mut Map<String, Value>,
    query: &str,
    body_field: &str,
) -> Result<(), ApiError> {
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let field = input
            .get_field_by_name(&name)
            .or_else(|| input.get_field_by_json_name(&name))
            .filter(|field| field.name() != body_field)
            .ok_or_else(|| {
                ApiError::bad_request(format!("query parameter `{name}`: no such field"))
            })?;
        let scalar = match field.kind() {
            Kind::Bool => match value.as_ref() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "query parameter `{name}`: expected true or false"
                    )));
                }
            },
            Kind::Message(message)
                if !matches!(
                    message.full_name(),
                    "google.protobuf.Timestamp"
                        | "google.protobuf.Duration"
                        | "google.protobuf.FieldMask"
                ) =>
            {
                return Err(ApiError::bad_request(format!(
                    "query parameter `{name}`: a message field goes in a JSON body"
                )));
            }
            _ => Value::String(value.into_owned()),
        };
        let key = field.name().to_owned();
        if field.is_list() {
            match fields
                .entry(key)
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(items) => items.push(scalar),
                _ => unreachable!("query parameters only ever insert arrays for lists"),
            }
        } else if fields.insert(key, scalar).is_some() {
            return Err(ApiError::bad_request(format!(
                "query parameter `{name}`: given more than once"
            )));
        }
    }
    Ok(())
}

/// The gRPC request of `route`: one uncompressed frame, the caller's metadata, and the
/// message itself for the input check (`DecodedInput`).
fn grpc_request(
    route: &Route,
    parts: &http::request::Parts,
    message: DynamicMessage,
) -> Request<Body> {
    let length = message.encoded_len();
    let mut frame = BytesMut::with_capacity(length + 5);
    frame.put_u8(0);
    frame.put_u32(length as u32);
    message
        .encode(&mut frame)
        .expect("the frame was sized for the message");
    let mut request = Request::new(Body::new(http_body_util::Full::new(frame.freeze())));
    *request.method_mut() = Method::POST;
    *request.version_mut() = http::Version::HTTP_2;
    *request.uri_mut() = http::Uri::from_static(route.rpc);
    let headers = request.headers_mut();
    for (name, value) in &parts.headers {
        if !DROPPED_HEADERS.contains(&name.as_str()) && name != "last-event-id" {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    if let Some(peer) = parts.extensions.get::<crate::grpc::server::PeerAddress>() {
        request.extensions_mut().insert(*peer);
    }
    request.extensions_mut().insert(Protocol::Http);
    request
        .extensions_mut()
        .insert(crate::grpc::input::DecodedInput(std::sync::Arc::new(
            message,
        )));
    request
}

/// The answer's metadata that an HTTP caller may use (not gRPC's own headers).
fn copy_metadata(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        let name_str = name.as_str();
        if !name_str.starts_with("grpc-")
            && name_str != "content-type"
            && name_str != "te"
            && name_str != "trailer"
        {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Takes one length-prefixed gRPC message off `frames`.
fn next_frame(frames: &mut Bytes) -> Option<Bytes> {
    if frames.len() < 5 {
        return None;
    }
    let length = u32::from_be_bytes([frames[1], frames[2], frames[3], frames[4]]) as usize;
    if frames.len() < 5 + length {
        return None;
    }
    frames.advance(5);
    Some(frames.split_to(length))
}

pub(super) fn to_json(message: &DynamicMessage) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut serializer, &SerializeOptions::new())
        .map_err(|e| ApiError::internal(format!("the answer does not serialise: {e}")))?;
    Ok(out)
}

/// A server-streaming RPC's answer as server-sent events: one `data:` line per message
/// (its JSON), `id:` the event's sequence so `Last-Event-ID` resumes; a failing status
/// ends the stream with an `event: error` whose data is the error body.
fn server_sent_events(
    response: Response<Body>,
    output: MessageDescriptor,
    pool: DescriptorPool,
) -> Response<Body> {
    let body = response.into_body();
    let stream = futures::stream::unfold(
        (body, BytesMut::new(), output, pool, false),
        |(mut body, mut buffer, output, pool, done)| async move {
            if done {
                return None;
            }
            loop {
                if let Some(event) = take_event(&mut buffer, &output) {
                    return Some((
                        Ok::<_, Infallible>(http_body::Frame::data(event)),
                        (body, buffer, output, pool, false),
                    ));
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            buffer.extend_from_slice(data);
                        } else if let Some(trailers) = frame.trailers_ref() {
                            let ending = match tonic::Status::from_header_map(trailers) {
                                Some(status) if status.code() != tonic::Code::Ok => {
                                    let error = ApiError::from_status(status).body(&pool);
                                    format!(
                                        "event: error\ndata: {}\n\n",
                                        String::from_utf8_lossy(&error)
                                    )
                                }
                                _ => return None,
                            };
                            return Some((
                                Ok(http_body::Frame::data(Bytes::from(ending))),
                                (body, buffer, output, pool, true),
                            ));
                        }
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%error, "event stream ended with an error");
                        return None;
                    }
                    None => return None,
                }
            }
        },
    );
    let mut response = Response::new(Body::new(StreamBody::new(stream.boxed())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// One complete message off `buffer` as an SSE event, if one is there.
fn take_event(buffer: &mut BytesMut, output: &MessageDescriptor) -> Option<Bytes> {
    if buffer.len() < 5 {
        return None;
    }
    let length = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
    if buffer.len() < 5 + length {
        return None;
    }
    buffer.advance(5);
    let payload = buffer.split_to(length).freeze();
    let message = DynamicMessage::decode(output.clone(), payload).ok()?;
    let json = to_json(&message).ok()?;
    let sequence = message
        .get_field_by_name("event")
        .and_then(|event| {
            event
                .as_message()
                .and_then(|e| e.get_field_by_name("sequence"))
                .map(|s| s.into_owned())
        })
        .and_then(|sequence| sequence.as_i64());
    let mut event = String::with_capacity(json.len() + 32);
    if let Some(sequence) = sequence {
        event.push_str(&format!("id: {sequence}\n"));
    }
    event.push_str("data: ");
    event.push_str(&String::from_utf8_lossy(&json));
    event.push_str("\n\n");
    Some(Bytes::from(event))
}
