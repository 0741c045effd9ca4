//! The HTTP/JSON API's error body, `{"error": {"code", "message", "status",
//! "details"}}`: the HTTP status mapped from the gRPC code (google.rpc.Code's table,
//! AIP-193), the same `google.rpc` details as gRPC in proto3 JSON.

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::{Value, json};
use tonic::{Code, body::Body};

/// A request the HTTP/JSON API refuses.
#[derive(Debug)]
pub enum ApiError {
    /// Refused before any RPC ran (route, body, JSON).
    Transport {
        status: StatusCode,
        message: String,
        allow: Option<Vec<&'static str>>,
    },
    /// The RPC's own error.
    Rpc(tonic::Status),
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError::Transport {
            status,
            message: message.into(),
            allow: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "no such route")
    }

    pub fn method_not_allowed(method: &Method, allow: Vec<&'static str>) -> ApiError {
        ApiError::Transport {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("{method} is not allowed here"),
            allow: Some(allow),
        }
    }

    /// A failure of the gateway itself; the cause goes to the log, not to the caller.
    pub fn internal(cause: String) -> ApiError {
        tracing::error!(%cause, "the HTTP/JSON gateway failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    pub fn from_status(status: tonic::Status) -> ApiError {
        ApiError::Rpc(status)
    }

    /// The HTTP status, the status name and the JSON error body.
    fn parts(&self, pool: &DescriptorPool) -> (StatusCode, Value) {
        match self {
            ApiError::Transport {
                status, message, ..
            } => {
                let name = match *status {
                    StatusCode::BAD_REQUEST => "INVALID_ARGUMENT",
                    StatusCode::NOT_FOUND => "NOT_FOUND",
                    StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
                    StatusCode::PAYLOAD_TOO_LARGE => "RESOURCE_EXHAUSTED",
                    StatusCode::REQUEST_TIMEOUT => "DEADLINE_EXCEEDED",
                    _ => "INTERNAL",
                };
                (*status, body(*status, message, name, Vec::new()))
            }
            ApiError::Rpc(status) => {
                let details = details(pool, status.details());
                let http = http_status(status.code(), &details);
                let body = body(http, status.message(), code_name(status.code()), details);
                (http, body)
            }
        }
    }

    /// The JSON error body.
    pub fn body(&self, pool: &DescriptorPool) -> Vec<u8> {
        self.parts(pool).1.to_string().into_bytes()
    }

    pub fn into_response(self, pool: &DescriptorPool) -> Response<Body> {
        let (status, value) = self.parts(pool);
        let mut response = error_response(status, value);
        if let ApiError::Transport {
            allow: Some(allow), ..
        } = &self
            && let Ok(value) = HeaderValue::from_str(&allow.join(", "))
        {
            response.headers_mut().insert(header::ALLOW, value);
        }
        response
    }
}

fn body(status: StatusCode, message: &str, name: &str, details: Vec<Value>) -> Value {
    let mut error = json!({"code": status.as_u16(), "message": message, "status": name});
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    json!({ "error": error })
}

/// A JSON error response.
pub fn error_response(status: StatusCode, body: Value) -> Response<Body> {
    let mut response = Response::new(Body::new(http_body_util::Full::new(Bytes::from(
        body.to_string(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The `google.rpc.Status` details (`grpc-status-details-bin`) in proto3 JSON, each an
/// `Any` with its `@type`.
fn details(pool: &DescriptorPool, encoded: &[u8]) -> Vec<Value> {
    if encoded.is_empty() {
        return Vec::new();
    }
    let Some(descriptor) = pool.get_message_by_name("google.rpc.Status") else {
        return Vec::new();
    };
    let Ok(status) = DynamicMessage::decode(descriptor, encoded) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut out);
    if status
        .serialize_with_options(&mut serializer, &SerializeOptions::new())
        .is_err()
    {
        return Vec::new();
    }
    match serde_json::from_slice::<Value>(&out) {
        Ok(Value::Object(mut status)) => match status.remove("details") {
            Some(Value::Array(details)) => details,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// google.rpc.Code's HTTP mapping (AIP-193); an ABORTED for a stale etag is HTTP's
/// own precondition failure, 412.
pub fn http_status(code: Code, details: &[Value]) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::Aborted if details.iter().any(|d| d["reason"] == "ETAG_MISMATCH") => {
            StatusCode::PRECONDITION_FAILED
        }
        Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The google.rpc.Code name (`NOT_FOUND`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grpc_code_has_the_aip_193_http_status() {
        let table = [
            (Code::Ok, 200),
            (Code::Cancelled, 499),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 400),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        for (code, status) in table {
            assert_eq!(http_status(code, &[]).as_u16(), status, "{code:?}");
        }
        let stale = [
            json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ETAG_MISMATCH"}),
        ];
        assert_eq!(http_status(Code::Aborted, &stale).as_u16(), 412);
    }

    #[test]
    fn an_rpc_error_body_carries_code_status_message_and_details() {
        let pool = DescriptorPool::decode(tonic_types::pb::FILE_DESCRIPTOR_SET).expect("pool");
        let status = <tonic::Status as tonic_types::StatusExt>::with_error_details(
            Code::InvalidArgument,
            "bad",
            tonic_types::ErrorDetails::with_bad_request_violation("customer_id", "is not an id"),
        );
        let body: Value =
            serde_json::from_slice(&ApiError::from_status(status).body(&pool)).unwrap();
        assert_eq!(body["error"]["code"], 400);
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(body["error"]["message"], "bad");
        assert_eq!(
            body["error"]["details"][0]["@type"],
            "type.googleapis.com/google.rpc.BadRequest"
        );
        assert_eq!(
            body["error"]["details"][0]["fieldViolations"][0]["field"],
            "customer_id"
        );
    }
}
