//! Authenticates every RPC but health and reflection with `authorization: Bearer <key>`,
//! and checks the one scope each RPC needs (the table below).

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::Status;
use tower::{Layer, Service};

use crate::{
    app::App,
    domain::{api_key::Caller, id::Id},
};

tokio::task_local! {
    /// The API key of the RPC being served, for what a caller owns (its request ids).
    static CALLER_KEY: Id;
}

/// The id of the API key that made the RPC being served, if it needed one.
pub fn current_caller_key() -> Option<Id> {
    CALLER_KEY.try_with(|id| *id).ok()
}

/// What an RPC path needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health and reflection: no key.
    Public,
    /// A live key holding this scope (or `admin`).
    Scope(&'static str),
    /// A path no service declares: any live key (the server then says UNIMPLEMENTED).
    AnyKey,
}

/// The scope each RPC needs.
pub fn required_access(path: &str) -> Access {
    if path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.")
        || path == "/tenancy.v1.SessionService/GetJwks"
    {
        return Access::Public;
    }
    let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
        return Access::AnyKey;
    };
    let scope = match (service, method) {
        (
            "tenancy.v1.CustomerService",
            "GetCustomer"
            | "ListCustomers"
            | "ListCustomerUsers"
            | "ListCustomerInvitations"
            | "GetCustomerRole"
            | "ListCustomerRoles",
        ) => "customers.read",
        (
            "tenancy.v1.CustomerService",
            "CreateCustomer" | "UpdateCustomer" | "CreateCustomerRole" | "UpdateCustomerRole"
            | "DeleteCustomerRole",
        ) => "customers.write",
        ("tenancy.v1.CustomerService", "DeleteCustomer") => "customers.delete",
        (
            "tenancy.v1.CustomerService",
            "AddCustomerUser"
            | "UpdateCustomerUser"
            | "RemoveCustomerUser"
            | "CreateCustomerInvitation"
            | "RevokeCustomerInvitation"
            | "ResendCustomerInvitation",
        ) => "memberships.write",
        (
            "tenancy.v1.AccountService",
            "GetAccount"
            | "ListAccounts"
            | "GetEffectiveLimits"
            | "ListAccountUsers"
            | "ListAccountInvitations",
        ) => "accounts.read",
        ("tenancy.v1.AccountService", "CreateAccount" | "UpdateAccount") => "accounts.write",
        ("tenancy.v1.AccountService", "DeleteAccount") => "accounts.delete",
        (
            "tenancy.v1.AccountService",
            "AddAccountUser"
            | "UpdateAccountUser"
            | "RemoveAccountUser"
            | "CreateAccountInvitation"
            | "RevokeAccountInvitation"
            | "ResendAccountInvitation",
        ) => "memberships.write",
        (
            "tenancy.v1.UserService",
            "GetUser"
            | "ListUsers"
            | "ListUserMemberships"
            | "CheckAccess"
            | "BatchCheckAccess"
            | "ListAccessibleResources",
        ) => "users.read",
        (
            "tenancy.v1.UserService",
            "CreateUser" | "UpdateUser" | "DeleteUser" | "SetPassword" | "EnrollTotp"
            | "ConfirmTotp" | "DisableTotp",
        ) => "users.write",
        // The recovery front end: it mails reset and verification tokens and redeems
        // them, and can do nothing else to users.
        (
            "tenancy.v1.UserService",
            "RequestPasswordReset" | "ResetPassword" | "RequestEmailVerification" | "VerifyEmail",
        ) => "users.recover",
        ("tenancy.v1.UserService", "AuthenticateUser" | "ChangePassword") => "users.authenticate",
        // Its own scope: a sign-up front end that accepts invitations must not thereby
        // be able to add or remove members, as `memberships.write` could.
        ("tenancy.v1.UserService", "AcceptInvitation") => "invitations.accept",
        ("tenancy.v1.EventService", "StreamEvents" | "GetEventLog") => "events.read",
        // The sign-in front end: it signs users in and refreshes their sessions.
        ("tenancy.v1.SessionService", "CreateSession" | "RefreshSession") => "sessions.create",
        ("tenancy.v1.SessionService", "RevokeSession" | "ListSessions" | "RevokeUserSessions") => {
            "sessions.manage"
        }
        _ => return Access::AnyKey,
    };
    Access::Scope(scope)
}

/// The bearer key of a request, if it sent one in the right form.
fn bearer_key(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

async fn authorize(
    app: &App,
    access: Access,
    headers: &http::HeaderMap,
) -> Result<Option<Caller>, Status> {
    if access == Access::Public {
        return Ok(None);
    }
    let key = bearer_key(headers).ok_or_else(|| {
        Status::unauthenticated("missing `authorization: Bearer <api key>` metadata")
    })?;
    let caller = app.authenticate_key(key).await?;
    if let Access::Scope(scope) = access
        && !caller.has_scope(scope)
    {
        return Err(Status::permission_denied(format!(
            "this RPC needs an API key with the `{scope}` scope"
        )));
    }
    Ok(Some(caller))
}

/// The tower layer that runs `authorize` before every RPC.
#[derive(Clone)]
pub struct AuthLayer {
    app: App,
}

impl AuthLayer {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            app: self.app.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    app: App,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Authenticate<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let app = self.app.clone();
        Box::pin(async move {
            let access = required_access(request.uri().path());
            match authorize(&app, access, request.headers()).await {
                Ok(Some(caller)) => {
                    let key_id = caller.key_id;
                    request.extensions_mut().insert(caller);
                    CALLER_KEY.scope(key_id, inner.call(request)).await
                }
                Ok(None) => inner.call(request).await,
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_has_a_scope_and_probes_are_public() {
        assert_eq!(
            required_access("/grpc.health.v1.Health/Check"),
            Access::Public
        );
        assert_eq!(
            required_access("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Access::Public
        );
        assert_eq!(
            required_access("/tenancy.v1.UserService/GetUser"),
            Access::Scope("users.read")
        );
        assert_eq!(
            required_access("/tenancy.v1.UserService/AuthenticateUser"),
            Access::Scope("users.authenticate")
        );
        assert_eq!(
            required_access("/tenancy.v1.EventService/StreamEvents"),
            Access::Scope("events.read")
        );
        assert_eq!(
            required_access("/tenancy.v1.UserService/Nope"),
            Access::AnyKey
        );
        assert_eq!(
            required_access("/tenancy.v1.SessionService/CreateSession"),
            Access::Scope("sessions.create")
        );
        assert_eq!(
            required_access("/tenancy.v1.SessionService/RefreshSession"),
            Access::Scope("sessions.create")
        );
        for method in ["GetCustomerRole", "ListCustomerRoles"] {
            assert_eq!(
                required_access(&format!("/tenancy.v1.CustomerService/{method}")),
                Access::Scope("customers.read")
            );
        }
        for method in [
            "CreateCustomerRole",
            "UpdateCustomerRole",
            "DeleteCustomerRole",
        ] {
            assert_eq!(
                required_access(&format!("/tenancy.v1.CustomerService/{method}")),
                Access::Scope("customers.write")
            );
        }
        for method in ["BatchCheckAccess", "ListAccessibleResources"] {
            assert_eq!(
                required_access(&format!("/tenancy.v1.UserService/{method}")),
                Access::Scope("users.read")
            );
        }
        for method in ["RevokeSession", "ListSessions", "RevokeUserSessions"] {
            assert_eq!(
                required_access(&format!("/tenancy.v1.SessionService/{method}")),
                Access::Scope("sessions.manage")
            );
        }
    }

    #[test]
    fn every_declared_rpc_needs_a_scope() {
        use prost::Message as _;
        let set =
            prost_types::FileDescriptorSet::decode(super::super::pb::FILE_DESCRIPTOR_SET).unwrap();
        let mut checked = 0;
        for file in set.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    // The one public RPC: the keys that verify access tokens.
                    if path == "/tenancy.v1.SessionService/GetJwks" {
                        assert_eq!(required_access(&path), Access::Public);
                    } else {
                        assert!(
                            matches!(required_access(&path), Access::Scope(_)),
                            "{path} has no scope"
                        );
                    }
                    checked += 1;
                }
            }
        }
        // 18 customer, 14 account, 20 user, 2 event and 6 session RPCs (SPEC §10-§13).
        assert_eq!(checked, 60);
    }

    #[test]
    fn the_bearer_scheme_is_required() {
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer_key(&headers), Some("abc"));
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer_key(&headers), None);
    }
}
