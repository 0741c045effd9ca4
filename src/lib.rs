//! tenancy: the platform's source of truth for who owns what — customers, their
//! accounts, the users acting on them — served over gRPC.
//!
//! A request flows through three rooms, each with one door:
//!
//! - [`grpc`] (tonic/prost only here): authenticates the API key and checks its scope
//!   (`grpc::auth`), logs one line per RPC (`grpc::request_log`), converts the request
//!   into domain values, calls one use case, converts the answer back; every error
//!   becomes a `tonic::Status` in `grpc::status`.
//! - [`app`]: the use cases. They validate with [`domain`], hash passwords on the
//!   bounded [`hashing`] pool off the async runtime, and persist through [`store`].
//! - [`store`] (sea-orm only here): one method per atomic use case, one transaction
//!   each, which also appends the change's event to the log.
//!
//! - [`signing`] (no tonic, no sea-orm): master key, Ed25519 key ring, access tokens, JWKS.
//!
//! - [`http`]: plain HTTP on the gRPC port: the JWKS and OpenAPI documents, and the
//!   HTTP/JSON API, a gateway on routes generated from `proto/` into the same gRPC stack.
//!
//! - [`cache`]: answers of the hot reads and the live API keys, kept in memory and
//!   dropped by the changes that touch them (this process's on commit, others' through
//!   the event feed), never served older than their staleness bound.
//!
//! [`metrics`] serves Prometheus metrics on a listener of its own; the request-log
//! layer counts every RPC into them.
//!
//! [`relay`] publishes the event log to NATS JetStream (one relay across instances).
//!
//! [`startup`] wires these into a server (health, reflection, TLS, graceful shutdown);
//! [`config`] holds every setting; `main.rs` only parses, sets up telemetry and starts.

pub mod app;
pub mod cache;
pub mod commands;
pub mod config;
pub mod deadline;
pub mod domain;
pub mod grpc;
pub mod hashing;
pub mod http;
pub mod metrics;
pub mod relay;
pub mod signing;
pub mod startup;
pub mod store;
pub mod telemetry;

/// Generated messages, servers and clients of `proto/tenancy/v1`.
pub use grpc::pb;
