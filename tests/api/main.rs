//! Black-box tests through real gRPC clients. Each test runs on SQLite and, when it is
//! reachable, on PostgreSQL (see `helpers`).

mod helpers;

mod accounts;
mod caching;
mod customers;
mod foundation;
mod hardening;
mod http;
mod members;
mod relay;
mod serve_child;
mod sessions;
mod users;
mod validation_enums;
