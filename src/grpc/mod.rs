//! The gRPC surface: the only module that knows tonic and prost. Handlers convert a
//! request into domain values, make one call into `app`, and convert the result back.

mod accounts;
pub mod auth;
mod convert;
mod customers;
mod events;
pub mod fingerprint;
pub mod health;
pub mod input;
mod limits;
mod members;
pub mod pb;
pub mod request_limits;
pub mod request_log;
pub mod rpc_metrics;
pub mod server;
pub mod sessions;
pub mod status;
pub mod traces;
mod users;

pub use accounts::AccountApi;
pub use customers::CustomerApi;
pub use events::{EventApi, encode_event};
pub use users::UserApi;

use prost::Message;

use crate::{
    app::App,
    domain::{Result, idempotency::RequestKey},
};

/// The idempotency key of a create request: its `request_id`, scoped to the calling API
/// key, and a keyed fingerprint of the request encoded without the request id and
/// without its secret fields (`fingerprint::SECRET_FIELDS`).
fn request_key<M: Message + Clone>(
    app: &App,
    method: &str,
    request: &M,
    request_id: &str,
    clear_request_id: impl FnOnce(&mut M),
) -> Result<Option<RequestKey>> {
    let mut body = request.clone();
    clear_request_id(&mut body);
    let body = fingerprint::without_secrets(method, &body.encode_to_vec())?;
    RequestKey::new(
        app.secret(),
        auth::current_caller_key(),
        request_id,
        method,
        &body,
    )
}
