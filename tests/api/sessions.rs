//! SessionService (issue 27, SPEC §11): sign-in into sessions whose access tokens other
//! services verify offline, refresh with reuse detection, revocation by the rules of
//! §11, and the keys that verify the tokens.
//!
//! Files: tokens and claims (`sessions/tokens.rs`), refresh and reuse
//! (`sessions/refresh.rs`), revocation (`sessions/revocation.rs`).

mod refresh;
mod revocation;
mod tokens;

use std::time::Duration;

use tenancy::signing::{AccessClaims, Expected, Jwks, VerifyingKeys, verify};
use tenancy_client::pb;
use tonic::Status;

use crate::customers::{self, personal};
use crate::helpers::{GOOD_PASSWORD, TestApp, unique_email};

/// A user with `GOOD_PASSWORD`.
pub async fn user_with_password(app: &TestApp, prefix: &str) -> pb::User {
    app.users
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
    app.sessions
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
    let keys = app
        .sessions
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
    let keys = VerifyingKeys::from_jwks(&jwks(app).await);
    verify(
        token,
        &keys,
        &Expected {
            issuer: "tenancy",
            audience: "tenancy",
            leeway: Duration::from_secs(5),
        },
        chrono::Utc::now(),
    )
    .unwrap_or_else(|e| panic!("the access token does not verify: {e}"))
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
