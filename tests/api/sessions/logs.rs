//! No token in a log line (SPEC §11): a server logging everything it can (`trace`)
//! through sign-in, refresh, reuse, revocation and a token misused as an API key writes
//! no access token, no refresh token, and neither the master key nor the password.

use std::{fs::File, process::Stdio};

use tenancy_client::pb;
use tonic::Code;

use super::{sign_in_through, user_with_password_through};
use crate::helpers::{Backend, BearerKey, GOOD_PASSWORD, MASTER_KEY};
use crate::serve_child::ServeChild;

async fn no_token_and_no_master_key_is_ever_logged(backend: Backend) {
    let database = backend.fresh_database().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("server.log");
    let log = File::create(&log_path).expect("a log file");
    let child = ServeChild::start(&database.url, |command| {
        command
            .env("RUST_LOG", "trace")
            .env("TENANCY_LOG_BUFFER_BYTES", (64 << 20).to_string())
            .stdout(Stdio::from(log.try_clone().expect("the log file")))
            .stderr(Stdio::from(log));
    })
    .await;
    let sessions = child.sessions.clone();
    let user = user_with_password_through(&child.users, "logged").await;
    let sign_in = || sign_in_through(&sessions, &user.email, GOOD_PASSWORD, "");
    let refresh = |refresh_token: &str| {
        let mut sessions = sessions.clone();
        let request = pb::RefreshSessionRequest {
            refresh_token: refresh_token.into(),
            customer_id: String::new(),
        };
        async move { sessions.refresh_session(request).await }
    };

    let first = sign_in().await.expect("sign in");
    let refreshed = refresh(&first.refresh_token)
        .await
        .expect("refresh")
        .into_inner();
    let reused = refresh(&first.refresh_token).await.expect_err("reused");
    let second = sign_in().await.expect("sign in again");
    sessions
        .clone()
        .revoke_session(pb::RevokeSessionRequest {
            session_id: second.session.clone().expect("a session").uuid,
        })
        .await
        .expect("sign out");
    let revoked = refresh(&second.refresh_token).await.expect_err("revoked");
    // An access token sent where an API key goes, over gRPC and over HTTP.
    let misused = pb::user_service_client::UserServiceClient::with_interceptor(
        tonic::transport::Endpoint::from_shared(format!("http://{}", child.address))
            .expect("endpoint")
            .connect_lazy(),
        BearerKey(Some(second.access_token.clone())),
    )
    .get_user(pb::GetUserRequest {
        lookup: Some(pb::get_user_request::Lookup::Email(user.email.clone())),
    })
    .await
    .expect_err("not an API key");
    let http = reqwest::Client::new()
        .get(format!("http://{}/.well-known/jwks.json", child.address))
        .bearer_auth(&refreshed.access_token)
        .send()
        .await
        .expect("GET the JWKS");
    assert_eq!(http.status(), 200);
    assert!(child.terminate().await.success());

    assert_eq!(reused.code(), Code::Unauthenticated);
    assert_eq!(revoked.code(), Code::Unauthenticated);
    assert_eq!(misused.code(), Code::Unauthenticated);
    let logged = std::fs::read_to_string(&log_path).expect("the log");
    assert!(
        logged.contains("TRACE") && logged.contains("CreateSession"),
        "everything was logged: {} bytes",
        logged.len()
    );
    assert!(
        !logged.contains("lines were dropped"),
        "no line was dropped"
    );
    let mut secrets = vec![("the master key", MASTER_KEY.to_string())];
    secrets.push(("the password", GOOD_PASSWORD.to_string()));
    for (name, access_token, refresh_token) in [
        ("first", &first.access_token, &first.refresh_token),
        (
            "refreshed",
            &refreshed.access_token,
            &refreshed.refresh_token,
        ),
        ("second", &second.access_token, &second.refresh_token),
    ] {
        let signature = access_token.rsplit('.').next().expect("a signature");
        secrets.push((name, access_token.clone()));
        secrets.push((name, signature.to_string()));
        secrets.push((name, refresh_token.clone()));
    }
    for (name, secret) in secrets {
        assert!(!logged.contains(&secret), "{name}: {secret} is in the log");
    }
}

crate::on_both_backends!(no_token_and_no_master_key_is_ever_logged);
