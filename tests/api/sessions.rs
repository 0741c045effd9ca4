//! SessionService (issue 27, SPEC §11): sign-in into sessions whose access tokens other
//! services verify offline, refresh with reuse detection, revocation by the rules of
//! §11, and the keys that verify the tokens.
//!
//! Files: tokens and claims (`sessions/tokens.rs`), refresh and reuse
//! (`sessions/refresh.rs`), revocation (`sessions/revocation.rs`), signing keys and their
//! rotation (`sessions/keys.rs`), the master key and `tenancy signing-keys`
//! (`sessions/master_key.rs`), tokens kept out of the logs (`sessions/logs.rs`), the JWKS
//! over HTTP/1.1, HTTP/2 and TLS (`sessions/transport.rs`).

mod keys;
mod logs;
mod master_key;
mod refresh;
mod revocation;
mod tokens;
mod transport;

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use tenancy::signing::{
    AccessClaims, Expected, Jwks, MasterKey, VerifyError, VerifyingKeys, verify,
};
use tenancy_client::pb::{
    self, session_service_client::SessionServiceClient, user_service_client::UserServiceClient,
};
use tonic::Status;

use crate::customers::{self, personal};
use crate::helpers::{GOOD_PASSWORD, MASTER_KEY, Svc, TestApp, unique_email};

/// The test servers' master key (`helpers::MASTER_KEY`).
pub fn master_key() -> MasterKey {
    MasterKey::from_base64(MASTER_KEY, "the tests' master key").expect("a master key")
}

/// The `kid` in the header of an access token.
pub fn kid_of(token: &str) -> String {
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().expect("a header"))
            .expect("base64url"),
    )
    .expect("JSON");
    header["kid"].as_str().expect("a kid").to_string()
}

/// A user with `GOOD_PASSWORD`.
pub async fn user_with_password(app: &TestApp, prefix: &str) -> pb::User {
    user_with_password_through(&app.users, prefix).await
}

/// `user_with_password` through `users` (a server the test did not spawn in-process).
pub async fn user_with_password_through(users: &UserServiceClient<Svc>, prefix: &str) -> pb::User {
    users
        .clone()
        .create_user(pb::CreateUserRequest {
            user: Some(pb::User {
                email: unique_email(prefix),
                first_name: "Ana".into(),
                last_name: "Silva".into(),
                ..Default::default()
            }),
            password: GOOD_PASSWORD.into(),
            request_id: String::new(),
        })
        .await
        .expect("create user")
        .into_inner()
        .user
        .expect("a user")
}

/// A customer whose owner signs in with `GOOD_PASSWORD`: (customer, owner's email).
pub async fn customer_with_owner(app: &TestApp, prefix: &str) -> (pb::Customer, String) {
    let email = unique_email(prefix);
    // The new owner signs in with `GOOD_PASSWORD` (`customers::create_request`).
    let customer = customers::create(app, personal(&email)).await;
    (customer, email)
}

pub async fn sign_in(
    app: &TestApp,
    email: &str,
    customer_id: &str,
) -> Result<pb::CreateSessionResponse, Status> {
    sign_in_with(app, email, GOOD_PASSWORD, customer_id).await
}

pub async fn sign_in_with(
    app: &TestApp,
    email: &str,
    password: &str,
    customer_id: &str,
) -> Result<pb::CreateSessionResponse, Status> {
    sign_in_through(&app.sessions, email, password, customer_id).await
}

/// `sign_in_with` through `sessions`.
pub async fn sign_in_through(
    sessions: &SessionServiceClient<Svc>,
    email: &str,
    password: &str,
    customer_id: &str,
) -> Result<pb::CreateSessionResponse, Status> {
    sessions
        .clone()
        .create_session(pb::CreateSessionRequest {
            email: email.into(),
            password: password.into(),
            customer_id: customer_id.into(),
            totp_code: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

pub async fn refresh(
    app: &TestApp,
    refresh_token: &str,
    customer_id: &str,
) -> Result<pb::RefreshSessionResponse, Status> {
    app.sessions
        .clone()
        .refresh_session(pb::RefreshSessionRequest {
            refresh_token: refresh_token.into(),
            customer_id: customer_id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

/// The server's JWKS, fetched over gRPC with no API key.
pub async fn jwks(app: &TestApp) -> Jwks {
    jwks_through(&app.sessions).await
}

/// `jwks` through `sessions`.
pub async fn jwks_through(sessions: &SessionServiceClient<Svc>) -> Jwks {
    let keys = sessions
        .clone()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .expect("GetJwks")
        .into_inner()
        .keys;
    Jwks {
        keys: keys
            .into_iter()
            .map(|key| tenancy::signing::Jwk {
                kty: key.kty,
                crv: key.crv,
                kid: key.kid,
                x: key.x,
                alg: key.alg,
                use_: key.r#use,
            })
            .collect(),
    }
}

/// Verifies `token` as a platform service would (issuer and audience `tenancy`, the
/// server's defaults).
pub async fn verified(app: &TestApp, token: &str) -> AccessClaims {
    verify_now(&jwks(app).await, token)
        .unwrap_or_else(|e| panic!("the access token does not verify: {e}"))
}

/// Verifies `token` now with the keys of `jwks`, as `verified` does.
pub fn verify_now(jwks: &Jwks, token: &str) -> Result<AccessClaims, VerifyError> {
    verify(
        token,
        &VerifyingKeys::from_jwks(jwks),
        &Expected {
            issuer: "tenancy",
            audience: "tenancy",
            leeway: Duration::from_secs(5),
        },
        chrono::Utc::now(),
    )
}

/// The `session.*` events of the log, as (type, session id, revoke reason).
pub async fn session_events(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    use tenancy::domain::event::EventResource;
    app.log_after(0, 100_000)
        .await
        .expect("log")
        .into_iter()
        .filter_map(|event| match event.resource {
            EventResource::Session(session) => Some((
                event.kind,
                session.id.uuid().to_string(),
                session.revoke_reason.map(|r| r.as_str().to_string()),
            )),
            _ => None,
        })
        .collect()
}
