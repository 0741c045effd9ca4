//! Sign-in into a session and what its access token says (SPEC §11): a JWT that
//! verifies against the JWKS (and fails when altered), with exactly the claims of §11;
//! wrong credentials in every form get the one UNAUTHENTICATED through the shared
//! lockout; the active customer's membership rule; the JWKS over plain HTTP on the same
//! port; the scopes.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use tenancy::signing::{Expected, VerifyError, VerifyingKeys, verify};
use tenancy_client::pb;
use tonic::Code;

use super::{customer_with_owner, jwks, sign_in, sign_in_with, user_with_password, verified};
use crate::customers::set_status;
use crate::helpers::{Backend, GOOD_PASSWORD, spawn_app, spawn_app_with, unique_email};
use crate::members::add;
use tenancy_client::pb::add_customer_user_request::Member;

async fn a_sign_in_yields_a_token_that_verifies_with_the_claims_of_the_spec(backend: Backend) {
    let app = spawn_app(backend).await;
    let (customer, owner_email) = customer_with_owner(&app, "owner").await;
    let member = user_with_password(&app, "member").await;
    add(
        &app,
        &customer.uuid,
        Member::UserId(member.uuid.clone()),
        &["rooms.read", "billing.read"],
    )
    .await
    .expect("add member");

    let signed_in = sign_in(&app, &member.email, &customer.uuid)
        .await
        .expect("sign in");
    let session = signed_in.session.clone().expect("a session");
    assert_eq!(session.status, pb::SessionStatus::Active as i32);
    assert_eq!(session.user_id, member.uuid);
    assert_eq!(session.customer_id, customer.uuid);
    assert_eq!(
        signed_in.refresh_token.len(),
        43,
        "32 random bytes, base64url"
    );
    let token = &signed_in.access_token;
    assert!(token.len() <= 4096);

    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().expect("a header"))
            .expect("base64url"),
    )
    .expect("JSON");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    let published = jwks(&app).await;
    assert!(
        published.keys.iter().any(|key| key.kid == header["kid"]),
        "the kid is in the JWKS"
    );
    for key in &published.keys {
        assert_eq!(
            (
                key.kty.as_str(),
                key.crv.as_str(),
                key.alg.as_str(),
                key.use_.as_str()
            ),
            ("OKP", "Ed25519", "EdDSA", "sig")
        );
    }

    let claims = verified(&app, token).await;
    assert_eq!(claims.iss, "tenancy");
    assert!(claims.aud.contains("tenancy"));
    assert_eq!(claims.sub.to_string(), member.uuid);
    assert_eq!(claims.sid.to_string(), session.uuid);
    assert_eq!(claims.exp - claims.iat, 300, "five minutes by default");
    let expires = signed_in
        .access_token_expire_time
        .expect("an expire time")
        .seconds;
    assert_eq!(expires, claims.exp);
    assert_eq!(claims.email, member.email);
    assert!(!claims.email_verified);
    assert_eq!(
        claims.customer_id.map(|id| id.to_string()),
        Some(customer.uuid.clone())
    );
    let mut permissions = claims.permissions.clone();
    permissions.sort();
    assert_eq!(permissions, vec!["billing.read", "rooms.read"]);
    assert!(!claims.owner);
    assert!(claims.roles.is_empty());

    // The owner holds every permission; a user-level session carries none.
    let owner = sign_in(&app, &owner_email, &customer.uuid)
        .await
        .expect("owner signs in");
    let owner_claims = verified(&app, &owner.access_token).await;
    assert!(owner_claims.owner);
    assert_eq!(owner_claims.permissions.len(), 13);
    assert_ne!(owner_claims.jti, claims.jti);
    let plain = sign_in(&app, &member.email, "").await.expect("sign in");
    let plain_claims = verified(&app, &plain.access_token).await;
    assert_eq!(plain_claims.customer_id, None);
    assert!(plain_claims.permissions.is_empty() && !plain_claims.owner);
    assert_eq!(
        plain.session.expect("session").customer_id,
        "",
        "a user-level session"
    );
}

async fn a_token_altered_in_any_part_does_not_verify(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "tamper").await;
    let token = sign_in(&app, &user.email, "")
        .await
        .expect("sign in")
        .access_token;
    let keys = VerifyingKeys::from_jwks(&jwks(&app).await);
    let expected = Expected {
        issuer: "tenancy",
        audience: "tenancy",
        leeway: Duration::from_secs(5),
    };
    let now = chrono::Utc::now();
    assert!(verify(&token, &keys, &expected, now).is_ok());
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    claims["owner"] = serde_json::Value::Bool(true);
    let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(
        verify(&forged, &keys, &expected, now).unwrap_err(),
        VerifyError::BadSignature
    );
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("b64");
    signature[0] ^= 1;
    let bad_signature = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(signature)
    );
    assert!(verify(&bad_signature, &keys, &expected, now).is_err());
    let wrong_audience = Expected {
        audience: "billing",
        ..expected
    };
    assert_eq!(
        verify(&token, &keys, &wrong_audience, now).unwrap_err(),
        VerifyError::WrongAudience
    );
    let later = now + chrono::Duration::minutes(6);
    assert!(matches!(
        verify(&token, &keys, &expected, later),
        Err(VerifyError::Expired { .. })
    ));
}

async fn wrong_credentials_in_every_form_get_one_answer_through_the_shared_lockout(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |serve| serve.lockout_threshold = 3).await;
    let user = user_with_password(&app, "locked").await;
    let inactive = user_with_password(&app, "inactive").await;
    app.users
        .clone()
        .update_user(pb::UpdateUserRequest {
            user_id: inactive.uuid.clone(),
            user: Some(pb::User {
                status: pb::UserStatus::Inactive as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
            etag: String::new(),
        })
        .await
        .expect("deactivate");
    let mut messages = Vec::new();
    for (email, password) in [
        (user.email.as_str(), "wrong password 1"),
        (&unique_email("nobody"), GOOD_PASSWORD),
        (inactive.email.as_str(), GOOD_PASSWORD),
        ("not an email", GOOD_PASSWORD),
        ("nul\0@example.com", GOOD_PASSWORD),
    ] {
        let status = sign_in_with(&app, email, password, "")
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{email}: {status:?}");
        messages.push(status.message().to_string());
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "one message for every wrong credential");

    // Two more failures, one through AuthenticateUser: the third locks the email for
    // sessions too (one counter).
    let _ = sign_in_with(&app, &user.email, "wrong password 2", "").await;
    let _ = app
        .users
        .clone()
        .authenticate_user(pb::AuthenticateUserRequest {
            email: user.email.clone(),
            password: "wrong password 3".into(),
            totp_code: String::new(),
        })
        .await;
    let locked = sign_in(&app, &user.email, "").await.expect_err("locked");
    assert_eq!(locked.code(), Code::Unauthenticated);
    assert_eq!(locked.message(), messages[0]);
}

async fn a_customer_the_user_may_not_act_in_is_refused_only_after_the_right_password(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (customer, owner_email) = customer_with_owner(&app, "owner").await;
    let stranger = user_with_password(&app, "stranger").await;

    let wrong_password = sign_in_with(&app, &stranger.email, "not the password", &customer.uuid)
        .await
        .expect_err("refused");
    assert_eq!(wrong_password.code(), Code::Unauthenticated);
    let not_member = sign_in(&app, &stranger.email, &customer.uuid)
        .await
        .expect_err("not a member");
    assert_eq!(not_member.code(), Code::PermissionDenied, "{not_member:?}");
    let bad_id = sign_in(&app, &stranger.email, "not-an-id")
        .await
        .expect_err("bad id");
    assert_eq!(bad_id.code(), Code::InvalidArgument);

    set_status(&app, &customer.uuid, pb::CustomerStatus::Suspended).await;
    assert!(
        sign_in(&app, &owner_email, &customer.uuid).await.is_ok(),
        "SUSPENDED customers allow sign-in"
    );
    set_status(&app, &customer.uuid, pb::CustomerStatus::Inactive).await;
    let inactive = sign_in(&app, &owner_email, &customer.uuid)
        .await
        .expect_err("INACTIVE");
    assert_eq!(inactive.code(), Code::PermissionDenied);
}

async fn the_jwks_is_served_over_http_on_the_grpc_port_with_a_cache_lifetime(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "http").await;
    let url = format!("http://{}/.well-known/jwks.json", app.address);
    let client = reqwest::Client::new();
    let response = client.get(&url).send().await.expect("GET the JWKS");
    assert_eq!(response.status(), 200);
    let cache = response
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(cache.contains("max-age="), "{cache:?}");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let served: tenancy::signing::Jwks = response.json().await.expect("a JWKS");
    assert_eq!(served, jwks(&app).await, "the same document as GetJwks");
    // gRPC answers on the same port meanwhile; the token verifies with the HTTP keys.
    let token = sign_in(&app, &user.email, "")
        .await
        .expect("sign in")
        .access_token;
    let keys = VerifyingKeys::from_jwks(&served);
    assert!(
        verify(
            &token,
            &keys,
            &Expected {
                issuer: "tenancy",
                audience: "tenancy",
                leeway: Duration::ZERO
            },
            chrono::Utc::now()
        )
        .is_ok()
    );
    let missing = client
        .get(format!("http://{}/nothing-here", app.address))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);
    let posted = client.post(&url).send().await.expect("POST");
    assert_eq!(posted.status(), 405);
}

async fn each_session_rpc_needs_its_scope_and_the_jwks_none(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "scoped").await;
    let create_key = app.key_with(&["sessions.create"]).await;
    let manage_key = app.key_with(&["sessions.manage"]).await;
    let other_key = app.key_with(&["users.authenticate"]).await;
    let sessions = |key: Option<&str>| {
        pb::session_service_client::SessionServiceClient::with_interceptor(
            app.channel.clone(),
            crate::helpers::BearerKey(key.map(str::to_string)),
        )
    };
    let create = |key: Option<&str>| {
        let mut client = sessions(key);
        let email = user.email.clone();
        async move {
            client
                .create_session(pb::CreateSessionRequest {
                    email,
                    password: GOOD_PASSWORD.into(),
                    ..Default::default()
                })
                .await
        }
    };
    let created = create(Some(&create_key)).await.expect("sessions.create");
    let refresh_token = created.into_inner().refresh_token;
    assert_eq!(
        create(Some(&manage_key)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(
        create(Some(&other_key)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(
        create(None).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert!(
        sessions(Some(&create_key))
            .refresh_session(pb::RefreshSessionRequest {
                refresh_token,
                customer_id: String::new(),
            })
            .await
            .is_ok()
    );
    let list = |key: Option<&str>| {
        let mut client = sessions(key);
        let user_id = user.uuid.clone();
        async move {
            client
                .list_sessions(pb::ListSessionsRequest {
                    user_id,
                    ..Default::default()
                })
                .await
        }
    };
    assert!(list(Some(&manage_key)).await.is_ok());
    assert_eq!(
        list(Some(&create_key)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    for code in [
        sessions(Some(&create_key))
            .revoke_user_sessions(pb::RevokeUserSessionsRequest {
                user_id: user.uuid.clone(),
            })
            .await
            .unwrap_err()
            .code(),
        sessions(Some(&create_key))
            .revoke_session(pb::RevokeSessionRequest {
                session_id: user.uuid.clone(),
            })
            .await
            .unwrap_err()
            .code(),
    ] {
        assert_eq!(code, Code::PermissionDenied);
    }
    assert!(
        sessions(None).get_jwks(pb::GetJwksRequest {}).await.is_ok(),
        "the JWKS needs no key"
    );
}

crate::on_both_backends!(
    a_sign_in_yields_a_token_that_verifies_with_the_claims_of_the_spec,
    a_token_altered_in_any_part_does_not_verify,
    wrong_credentials_in_every_form_get_one_answer_through_the_shared_lockout,
    a_customer_the_user_may_not_act_in_is_refused_only_after_the_right_password,
    the_jwks_is_served_over_http_on_the_grpc_port_with_a_cache_lifetime,
    each_session_rpc_needs_its_scope_and_the_jwks_none,
);
