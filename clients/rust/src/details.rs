//! The `google.rpc` details of a failed call, as typed values.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{
    ErrorInfo, FieldViolation, PreconditionViolation, QuotaViolation, StatusExt as _,
};

/// What the server said about a failed call: the code and message plus whichever
/// `google.rpc` details it attached (the contract says which codes carry which).
///
/// Details that cannot be decoded are left out rather than failing: the code and
/// message are always there.
#[derive(Clone, Debug)]
pub struct StatusDetails {
    pub code: Code,
    pub message: String,
    /// `google.rpc.BadRequest`: on INVALID_ARGUMENT, one per offending field, named
    /// by its path in the request (`customer.display_name`).
    pub field_violations: Vec<FieldViolation>,
    /// `google.rpc.ErrorInfo`: a machine-readable reason (`EMAIL_TAKEN`,
    /// `ETAG_MISMATCH`, ...) in the domain `tenancy.v1`.
    pub error_info: Option<ErrorInfo>,
    /// `google.rpc.PreconditionFailure`: on FAILED_PRECONDITION.
    pub precondition_violations: Vec<PreconditionViolation>,
    /// `google.rpc.QuotaFailure`: on RESOURCE_EXHAUSTED from a limit.
    pub quota_violations: Vec<QuotaViolation>,
    /// `google.rpc.RetryInfo`: how long the server asks a retry to wait.
    pub retry_delay: Option<Duration>,
    /// `google.rpc.RequestInfo`: the id to quote on INTERNAL (it is in the server's log).
    pub request_id: Option<String>,
}

impl StatusDetails {
    pub fn from_status(status: &Status) -> Self {
        let details = status.get_error_details();
        Self {
            code: status.code(),
            message: status.message().to_owned(),
            field_violations: details
                .bad_request()
                .map(|b| b.field_violations.clone())
                .unwrap_or_default(),
            error_info: details.error_info().cloned(),
            precondition_violations: details
                .precondition_failure()
                .map(|p| p.violations.clone())
                .unwrap_or_default(),
            quota_violations: details
                .quota_failure()
                .map(|q| q.violations.clone())
                .unwrap_or_default(),
            retry_delay: details.retry_info().and_then(|r| r.retry_delay),
            request_id: details.request_info().map(|r| r.request_id.clone()),
        }
    }

    /// The `ErrorInfo` reason, if any (`EMAIL_TAKEN`, `ETAG_MISMATCH`, ...).
    pub fn reason(&self) -> Option<&str> {
        self.error_info.as_ref().map(|info| info.reason.as_str())
    }

    /// The description of the violation of `field`, if that field was named.
    pub fn violation(&self, field: &str) -> Option<&str> {
        self.field_violations
            .iter()
            .find(|v| v.field == field)
            .map(|v| v.description.as_str())
    }

    /// The fields named by the violations, in the server's order.
    pub fn violated_fields(&self) -> Vec<&str> {
        self.field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect()
    }
}

impl From<&Status> for StatusDetails {
    fn from(status: &Status) -> Self {
        Self::from_status(status)
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn field_violations_are_read_in_order() {
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "invalid request",
            ErrorDetails::with_bad_request(vec![
                FieldViolation::new("customer.display_name", "is required"),
                FieldViolation::new("owner.email", "is not an email address"),
            ]),
        );
        let details = StatusDetails::from_status(&status);
        assert_eq!(details.code, Code::InvalidArgument);
        assert_eq!(
            details.violated_fields(),
            ["customer.display_name", "owner.email"]
        );
        assert_eq!(
            details.violation("owner.email"),
            Some("is not an email address")
        );
        assert_eq!(details.violation("customer.slug"), None);
        assert_eq!(details.reason(), None);
    }

    #[test]
    fn reason_domain_and_metadata_come_from_error_info() {
        let status = Status::with_error_details(
            Code::AlreadyExists,
            "taken",
            ErrorDetails::with_error_info(
                "EMAIL_TAKEN",
                "tenancy.v1",
                [("field".to_string(), "email".to_string())],
            ),
        );
        let details = StatusDetails::from_status(&status);
        assert_eq!(details.reason(), Some("EMAIL_TAKEN"));
        let info = details.error_info.unwrap();
        assert_eq!(info.domain, "tenancy.v1");
        assert_eq!(
            info.metadata.get("field").map(String::as_str),
            Some("email")
        );
        assert!(details.field_violations.is_empty());
    }

    #[test]
    fn retry_delay_preconditions_and_request_id() {
        let mut attached = ErrorDetails::with_retry_info(Some(Duration::from_millis(200)));
        attached
            .add_precondition_failure_violation("STATE", "customer", "is archived")
            .set_request_info("req-1", "");
        let status = Status::with_error_details(Code::FailedPrecondition, "no", attached);
        let details = StatusDetails::from_status(&status);
        assert_eq!(details.retry_delay, Some(Duration::from_millis(200)));
        assert_eq!(details.precondition_violations.len(), 1);
        assert_eq!(details.precondition_violations[0].subject, "customer");
        assert_eq!(details.request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn a_status_without_details_keeps_code_and_message() {
        let details = StatusDetails::from_status(&Status::not_found("customer not found"));
        assert_eq!(details.code, Code::NotFound);
        assert_eq!(details.message, "customer not found");
        assert!(details.field_violations.is_empty() && details.error_info.is_none());
    }
}
