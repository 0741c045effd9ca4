//! Client for the tenancy gRPC service.
//!
//! - [`pb`]: the messages and tonic clients, generated from the repository's `proto/`
//!   when this crate is built (never edited by hand).
//! - [`connect`] / [`Connector`]: a channel whose every call carries the API key
//!   (`authorization: Bearer <key>`), with optional TLS ([`Tls`]).
//! - [`StatusDetails`]: the `google.rpc` details of a failed call (field violations,
//!   `ErrorInfo` reasons, retry delays) as typed values.
//! - [`retry_create`]: a create retried with one `request_id` on UNAVAILABLE, ABORTED
//!   and DEADLINE_EXCEEDED, so the server answers every attempt with the first result.
//! - [`Verifier`]: access tokens (sessions' JWTs) verified offline against the JWKS,
//!   cached by `kid`: typed [`AccessClaims`], or a [`VerifyError`] naming the rule
//!   that failed.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tenancy_client::{RetryPolicy, StatusDetails, pb, retry_create};
//!
//! let client = tenancy_client::connect("http://127.0.0.1:50051", "my-api-key").await?;
//! let users = client.users();
//! let request = pb::CreateUserRequest {
//!     user: Some(pb::User {
//!         email: "ada@example.com".into(),
//!         first_name: "Ada".into(),
//!         last_name: "Lovelace".into(),
//!         ..Default::default()
//!     }),
//!     ..Default::default()
//! };
//! let created = retry_create(&RetryPolicy::default(), request, |request| {
//!     let mut users = users.clone();
//!     async move { users.create_user(request).await }
//! })
//! .await;
//! match created {
//!     Ok(created) => println!("created {:?}", created.user),
//!     Err(status) => {
//!         for violation in StatusDetails::from_status(&status).field_violations {
//!             println!("{}: {}", violation.field, violation.description);
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Verifying an access token in a service that tenancy's sign-in serves:
//!
//! ```no_run
//! # async fn run(token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use tenancy_client::{Expected, Verifier, VerifyError};
//!
//! let channel = tonic::transport::Channel::from_static("http://127.0.0.1:50051").connect_lazy();
//! // One per process: it caches the JWKS (GetJwks needs no API key).
//! let verifier = Verifier::grpc(channel, Expected::new("tenancy", "billing"));
//! match verifier.verify(token).await {
//!     Ok(claims) => println!("user {} in session {}", claims.sub, claims.sid),
//!     Err(VerifyError::Expired { .. }) => println!("refresh the session"),
//!     Err(error) => println!("refused: {error}"),
//! }
//! # Ok(())
//! # }
//! ```

mod auth;
mod channel;
mod details;
mod jwks;
mod retry;
mod token;
mod verifier;

/// The generated `tenancy.v1` messages and clients.
pub mod pb {
    // Generated code: its shapes follow the contract, not the lints.
    #![allow(clippy::all, missing_docs)]

    tonic::include_proto!("tenancy.v1");
}

pub use auth::{ApiKey, InvalidApiKey};
pub use channel::{AuthChannel, Client, ConnectError, Connector, Tls, connect};
pub use details::StatusDetails;
pub use jwks::{GrpcJwks, JwksSource, KeySet, jwks_from_json};
pub use retry::{IdempotentCreate, RetryPolicy, is_retryable, retry_create};
pub use token::{AccessClaims, Audience, Expected, MAX_TOKEN_BYTES, Unverified, VerifyError};
pub use verifier::Verifier;

/// Re-exported so callers use the same tonic as the generated clients.
pub use tonic;
pub use tonic_types;
