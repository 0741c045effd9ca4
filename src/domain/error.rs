//! The one error type every layer below gRPC returns; `grpc::status` maps it to a
//! `tonic::Status` in one place.

/// One violated request field: `field` is the request path (`user.email`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Why a request could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; every violated field is listed.
    #[error("invalid request: {}", .0.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; "))]
    InvalidArgument(Vec<FieldViolation>),
    /// The named resource does not exist.
    #[error("{resource} not found")]
    NotFound { resource: &'static str },
    /// A unique value is taken; `reason` is the machine-readable code (`EMAIL_TAKEN`).
    #[error("{resource} with this {field} already exists")]
    AlreadyExists {
        resource: &'static str,
        field: &'static str,
        reason: &'static str,
    },
    /// The system is not in the state the request needs.
    #[error("{description}")]
    FailedPrecondition {
        /// Machine-readable precondition type, e.g. `USER_OWNS_RESOURCES`.
        kind: &'static str,
        subject: String,
        description: String,
    },
    /// The caller's etag is stale: the resource changed since it was read.
    #[error("the {resource} was changed by someone else; read it again and retry")]
    Aborted { resource: &'static str },
    /// The write collided with a concurrent one (a deadlock or a serialization
    /// failure the database broke by rolling this transaction back): nothing was
    /// written, and the same request may simply be sent again.
    #[error("the write collided with a concurrent write; nothing was changed, retry")]
    Contention,
    /// The caller could not be identified (bad key, wrong password, ...).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The password was right, but the user has a second factor and no valid code was
    /// given (`wrong_code`: one was given, wrong or already used).
    #[error("a second factor is required")]
    SecondFactorRequired { wrong_code: bool },
    /// A refresh token that was already redeemed was presented again: its session is
    /// now revoked (the token was likely stolen).
    #[error("the refresh token was already used; its session is revoked")]
    RefreshTokenReused,
    /// The caller is identified but may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A bounded queue or a per-caller cap is full; retrying later may succeed.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A quota of the data is used up (`max_accounts`); retrying will not help until
    /// the quota or the usage changes.
    #[error("{description}")]
    QuotaExceeded {
        /// What the quota is on, e.g. `customers/<id>`.
        subject: String,
        description: String,
    },
    /// A position outside what is kept (events resumed before the oldest one kept).
    #[error("{0}")]
    OutOfRange(String),
    /// The server is working on as many RPCs as it may (`--max-in-flight`); this one
    /// was refused before any work was done for it, so retrying later may succeed.
    #[error("the server is overloaded: {max_in_flight} RPCs are in flight")]
    Overloaded { max_in_flight: usize },
    /// As many writes wait for the database as may (`--db-write-queue`): this one was
    /// refused before anything was written, so retrying later may succeed.
    #[error("{capacity} writes already wait for the database")]
    WriteQueueFull { capacity: usize },
    /// The RPC did not finish within its deadline (the caller's or the server's) and
    /// nothing of it was committed, or ever will be (see `crate::deadline`).
    #[error("the RPC did not finish within its deadline of {} ms", .timeout.as_millis())]
    DeadlineExceeded { timeout: std::time::Duration },
    /// The database cannot be reached; retrying later may succeed.
    #[error("the database is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A bug or an unexpected failure; the cause goes to the log, never to the caller.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// An invalid-argument error naming one field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// An internal error from anything displayable.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Internal(cause.into())
    }
}
