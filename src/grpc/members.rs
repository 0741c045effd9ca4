//! What the member RPCs of both services share.

use tonic::Request;

use crate::domain::api_key::Caller;

/// The scope that lets a caller move the ownership of a customer or an account, on
/// top of `memberships.write` (the seeds: only through the admin area).
pub const TRANSFER_SCOPE: &str = "memberships.transfer";

/// Whether the caller may move ownership: the scope table gates whole RPCs, so this
/// part of an RPC is checked here.
pub fn may_transfer<T>(request: &Request<T>) -> bool {
    request
        .extensions()
        .get::<Caller>()
        .is_some_and(|caller| caller.has_scope(TRANSFER_SCOPE))
}
