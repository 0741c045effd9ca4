//! No token in a log line (SPEC §11, §12): a server logging everything it can
//! (`trace`) through sign-in, refresh, reuse, revocation, a token misused as an API key,
//! a second factor enrolled and used, and reset and verification tokens writes no
//! access token, no refresh token, no TOTP secret, code or recovery code, no one-time
//! token, and neither the master key nor the password.

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
    // A second factor enrolled, confirmed and used; reset and verification tokens.
    let mut users = child.users.clone();
    let enrolled = users
        .enroll_totp(pb::EnrollTotpRequest {
            user_id: user.uuid.clone(),
        })
        .await
        .expect("enroll")
        .into_inner();
    let totp = crate::users::second_factor::generator(&enrolled.secret);
    crate::users::second_factor::away_from_a_step_boundary().await;
    let now = chrono::Utc::now().timestamp() as u64;
    let recovery_codes = users
        .confirm_totp(pb::ConfirmTotpRequest {
            user_id: user.uuid.clone(),
            code: totp.code_at(now - 30),
        })
        .await
        .expect("confirm")
        .into_inner()
        .recovery_codes;
    let code = totp.code_at(now);
    let with_code = sessions
        .clone()
        .create_session(pb::CreateSessionRequest {
            email: user.email.clone(),
            password: GOOD_PASSWORD.into(),
            customer_id: String::new(),
            totp_code: code.clone(),
        })
        .await
        .expect("sign in with a code")
        .into_inner();
    let with_recovery = sessions
        .clone()
        .create_session(pb::CreateSessionRequest {
            email: user.email.clone(),
            password: GOOD_PASSWORD.into(),
            customer_id: String::new(),
            totp_code: recovery_codes[0].clone(),
        })
        .await
        .expect("sign in with a recovery code")
        .into_inner();
    let reset_token = users
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: user.email.clone(),
        })
        .await
        .expect("reset")
        .into_inner()
        .token;
    let verification_token = users
        .request_email_verification(pb::RequestEmailVerificationRequest {
            user_id: user.uuid.clone(),
        })
        .await
        .expect("verification")
        .into_inner()
        .token;
    users
        .verify_email(pb::VerifyEmailRequest {
            token: verification_token.clone(),
        })
        .await
        .expect("verify");
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
    secrets.push(("the TOTP secret", enrolled.secret.clone()));
    secrets.push(("the TOTP URI", enrolled.otpauth_uri.clone()));
    secrets.push(("a TOTP code", format!("\"{code}\"")));
    secrets.push(("a TOTP code", format!("={code}")));
    for recovery_code in &recovery_codes {
        secrets.push(("a recovery code", recovery_code.clone()));
    }
    secrets.push(("the reset token", reset_token));
    secrets.push(("the verification token", verification_token));
    for (name, token) in [
        ("signed in with a code", &with_code.access_token),
        (
            "signed in with a recovery code",
            &with_recovery.access_token,
        ),
    ] {
        secrets.push((name, token.clone()));
    }
    for (name, secret) in secrets {
        assert!(!logged.contains(&secret), "{name}: {secret} is in the log");
    }
}

crate::on_both_backends!(no_token_and_no_master_key_is_ever_logged);
