//! The rules: identifiers, validation, users, passwords, API keys and events, as plain
//! types. Nothing here knows about gRPC or the database.

pub mod account;
pub mod api_key;
pub mod customer;
pub mod error;
pub mod etag;
pub mod event;
pub mod geo;
pub mod id;
pub mod idempotency;
pub mod invitation;
pub mod limits;
pub mod membership;
pub mod metadata;
pub mod page;
pub mod password;
pub mod refusals;
pub mod role;
pub mod second_factor;
pub mod secret_token;
pub mod session;
pub mod user;
pub mod violations;

pub use error::Error;

/// Result type of every fallible domain, store and application call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
