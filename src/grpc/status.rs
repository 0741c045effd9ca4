//! The one place where an `Error` becomes a `tonic::Status`, with `google.rpc` details.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt as _};

use super::request_log::current_request_id;
use crate::domain::Error;

/// The `ErrorInfo` domain of this service.
const ERROR_DOMAIN: &str = "tenancy.v1";

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        match error {
            Error::InvalidArgument(violations) => {
                let summary = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                let details = ErrorDetails::with_bad_request(
                    violations
                        .into_iter()
                        .map(|v| FieldViolation::new(v.field, v.description))
                        .collect::<Vec<_>>(),
                );
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid request: {summary}"),
                    details,
                )
            }
            Error::NotFound { resource } => Status::not_found(format!("{resource} not found")),
            Error::AlreadyExists {
                resource,
                field,
                reason,
            } => Status::with_error_details(
                Code::AlreadyExists,
                format!("a {resource} with this {field} already exists"),
                ErrorDetails::with_error_info(
                    reason,
                    ERROR_DOMAIN,
                    [
                        ("field".to_string(), field.to_string()),
                        ("resource".to_string(), resource.to_string()),
                    ],
                ),
            ),
            Error::FailedPrecondition {
                kind,
                subject,
                description,
            } => Status::with_error_details(
                Code::FailedPrecondition,
                description.clone(),
                ErrorDetails::with_precondition_failure_violation(kind, subject, description),
            ),
            Error::Aborted { resource } => Status::with_error_details(
                Code::Aborted,
                format!(
                    "the {resource} was changed since the etag was read; read it again and retry"
                ),
                ErrorDetails::with_error_info(
                    "ETAG_MISMATCH",
                    ERROR_DOMAIN,
                    [("resource".to_string(), resource.to_string())],
                ),
            ),
            Error::Contention => Status::with_error_details(
                Code::Aborted,
                "the write collided with a concurrent write and nothing was changed; \
                 it is safe to retry",
                {
                    let mut details =
                        ErrorDetails::with_retry_info(Some(std::time::Duration::from_millis(50)));
                    details.set_error_info(
                        "CONCURRENT_WRITE",
                        ERROR_DOMAIN,
                        std::collections::HashMap::<String, String>::new(),
                    );
                    details
                },
            ),
            Error::Unauthenticated(message) => Status::unauthenticated(message),
            Error::SecondFactorRequired { wrong_code } => Status::with_error_details(
                Code::Unauthenticated,
                if wrong_code {
                    "the second-factor code is wrong or was already used: send a current TOTP \
                     code or an unused recovery code as totp_code"
                } else {
                    "this user signs in with a second factor: send a current TOTP code or an \
                     unused recovery code as totp_code"
                },
                ErrorDetails::with_error_info(
                    "SECOND_FACTOR_REQUIRED",
                    ERROR_DOMAIN,
                    std::collections::HashMap::<String, String>::new(),
                ),
            ),
            Error::RefreshTokenReused => Status::with_error_details(
                Code::Unauthenticated,
                "the refresh token was already used, so it may have been stolen: its \
                 session is revoked; sign in again",
                ErrorDetails::with_error_info(
                    "REFRESH_TOKEN_REUSED",
                    ERROR_DOMAIN,
                    std::collections::HashMap::<String, String>::new(),
                ),
            ),
            Error::PermissionDenied(message) => Status::permission_denied(message),
            Error::ResourceExhausted(message) => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(Some(std::time::Duration::from_millis(200))),
            ),
            Error::QuotaExceeded {
                subject,
                description,
            } => Status::with_error_details(
                Code::ResourceExhausted,
                description.clone(),
                ErrorDetails::with_quota_failure_violation(subject, description),
            ),
            Error::OutOfRange(message) => Status::out_of_range(message),
            Error::Overloaded { max_in_flight } => Status::with_error_details(
                Code::Unavailable,
                format!(
                    "the server is overloaded: {max_in_flight} RPCs are in flight \
                     (--max-in-flight); nothing was done, retry with backoff"
                ),
                {
                    let mut details =
                        ErrorDetails::with_retry_info(Some(std::time::Duration::from_millis(100)));
                    details.set_error_info(
                        "SERVER_OVERLOADED",
                        ERROR_DOMAIN,
                        [("max_in_flight".to_string(), max_in_flight.to_string())],
                    );
                    details
                },
            ),
            Error::WriteQueueFull { capacity } => Status::with_error_details(
                Code::Unavailable,
                format!(
                    "the server is overloaded: {capacity} writes already wait for the \
                     database (--db-write-queue); nothing was written, retry with backoff"
                ),
                {
                    let mut details =
                        ErrorDetails::with_retry_info(Some(std::time::Duration::from_millis(50)));
                    details.set_error_info(
                        "WRITE_QUEUE_FULL",
                        ERROR_DOMAIN,
                        [("capacity".to_string(), capacity.to_string())],
                    );
                    details
                },
            ),
            Error::DeadlineExceeded { timeout } => Status::with_error_details(
                Code::DeadlineExceeded,
                format!(
                    "the RPC did not finish within its deadline of {} ms (the caller's \
                     grpc-timeout or the server's request timeout, --request-timeout, \
                     whichever is sooner); \
                     nothing of it was committed and nothing of it will be",
                    timeout.as_millis()
                ),
                ErrorDetails::with_error_info(
                    "REQUEST_TIMEOUT",
                    ERROR_DOMAIN,
                    [("timeout_ms".to_string(), timeout.as_millis().to_string())],
                ),
            ),
            Error::Unavailable(cause) => {
                let request_id = current_request_id();
                tracing::warn!(%request_id, error = %chain(cause.as_ref()), "database unavailable");
                Status::with_error_details(
                    Code::Unavailable,
                    "the database is unavailable; retry later",
                    ErrorDetails::with_retry_info(Some(std::time::Duration::from_secs(1))),
                )
            }
            Error::Internal(cause) => {
                let request_id = current_request_id();
                tracing::error!(%request_id, error = %chain(cause.as_ref()), "internal error");
                Status::with_error_details(
                    Code::Internal,
                    format!("internal error (request id {request_id})"),
                    ErrorDetails::with_request_info(request_id, ""),
                )
            }
        }
    }
}

/// An error and every source below it, on one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
