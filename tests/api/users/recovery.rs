//! Password reset and email verification (issue 28, SPEC §12): one-time tokens (a new
//! request kills the previous one, a used token is dead, one of concurrent redemptions
//! wins), the same answer for an unknown email, a reset ending every session and the
//! lockout, a verification token bound to the email it was issued for, hostile tokens.

use std::time::{Duration, Instant};

use tenancy_client::pb;
use tonic::Code;

use crate::helpers::{
    Backend, GOOD_PASSWORD, TestApp, error_reason, spawn_app, spawn_app_with, unique_email,
    violated_fields,
};
use crate::sessions::{refresh, session_events, sign_in, sign_in_with, user_with_password};

const NEW_PASSWORD: &str = "a brand new passphrase 9";

async fn request_reset(app: &TestApp, email: &str) -> pb::RequestPasswordResetResponse {
    app.users
        .clone()
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: email.into(),
        })
        .await
        .expect("request a reset")
        .into_inner()
}

async fn reset(app: &TestApp, token: &str, password: &str) -> Result<(), tonic::Status> {
    app.users
        .clone()
        .reset_password(pb::ResetPasswordRequest {
            token: token.into(),
            new_password: password.into(),
        })
        .await
        .map(|_| ())
}

async fn a_reset_sets_the_password_ends_every_session_and_clears_the_lockout(backend: Backend) {
    let app = spawn_app_with(backend, |serve| serve.lockout_threshold = 3).await;
    let user = user_with_password(&app, "reset").await;
    let sessions = [
        sign_in(&app, &user.email, "").await.expect("sign in"),
        sign_in(&app, &user.email, "").await.expect("sign in"),
    ];
    // Lock the email.
    for n in 0..3 {
        let _ = sign_in_with(&app, &user.email, &format!("wrong {n}"), "").await;
    }
    assert!(sign_in(&app, &user.email, "").await.is_err(), "locked");

    let issued = request_reset(&app, &user.email).await;
    assert_eq!(issued.token.len(), 43, "32 random bytes, URL-safe");
    let expires = issued.expire_time.expect("expiry").seconds;
    let in_thirty_minutes = chrono::Utc::now().timestamp() + 30 * 60;
    assert!(
        (expires - in_thirty_minutes).abs() <= 5,
        "30 minutes by default"
    );
    reset(&app, &issued.token, NEW_PASSWORD)
        .await
        .expect("reset");

    for session in &sessions {
        let refused = refresh(&app, &session.refresh_token, "")
            .await
            .expect_err("every session ended");
        assert_eq!(refused.code(), Code::Unauthenticated);
    }
    let reasons: Vec<_> = session_events(&app)
        .await
        .into_iter()
        .filter(|(kind, ..)| kind == "session.revoked")
        .map(|(_, _, reason)| reason)
        .collect();
    assert_eq!(
        reasons,
        vec![Some("password_reset".to_string()); 2],
        "each session revoked for the reset"
    );
    assert_eq!(
        sign_in(&app, &user.email, "")
            .await
            .expect_err("the old password")
            .code(),
        Code::Unauthenticated
    );
    sign_in_with(&app, &user.email, NEW_PASSWORD, "")
        .await
        .expect("the new password works at once: the lockout was cleared");
    let used = reset(&app, &issued.token, "yet another passphrase 11")
        .await
        .expect_err("a used token is dead");
    assert_eq!(used.code(), Code::FailedPrecondition);

    // The event says the password changed, and carries no token.
    let log = app.log_after(0, 10_000).await.expect("log");
    assert!(log.iter().any(|e| e.kind == "user.password_changed"));
    assert!(!format!("{log:?}").contains(&issued.token));
}

async fn a_second_request_kills_the_first_token_and_the_policy_applies(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "twice").await;
    let first = request_reset(&app, &user.email).await.token;
    let second = request_reset(&app, &user.email).await.token;
    assert_ne!(first, second);
    let replaced = reset(&app, &first, NEW_PASSWORD)
        .await
        .expect_err("replaced");
    assert_eq!(replaced.code(), Code::FailedPrecondition);
    let weak = reset(&app, &second, "short").await.expect_err("policy");
    assert_eq!(weak.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&weak), vec!["new_password"]);
    let same_as_email = reset(&app, &second, &user.email).await.expect_err("policy");
    assert_eq!(same_as_email.code(), Code::InvalidArgument);
    reset(&app, &second, NEW_PASSWORD)
        .await
        .expect("a refused password did not use the token up");
}

async fn an_unknown_or_inactive_email_gets_the_same_shape_in_about_the_same_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "known").await;
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
    let unknown = unique_email("nobody");
    // Warm both paths, then time them alternately.
    let _ = request_reset(&app, &user.email).await;
    let _ = request_reset(&app, &unknown).await;
    let (mut known_time, mut unknown_time) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..20 {
        let started = Instant::now();
        let known = request_reset(&app, &user.email).await;
        known_time += started.elapsed();
        assert!(!known.token.is_empty());
        let started = Instant::now();
        let answer = request_reset(&app, &unknown).await;
        unknown_time += started.elapsed();
        assert!(answer.token.is_empty());
        assert!(answer.expire_time.is_some(), "the same shape");
    }
    let inactive_answer = request_reset(&app, &inactive.email).await;
    assert!(inactive_answer.token.is_empty() && inactive_answer.expire_time.is_some());
    eprintln!("known {known_time:?}, unknown {unknown_time:?} for 20 requests each");
    let (fast, slow) = if known_time < unknown_time {
        (known_time, unknown_time)
    } else {
        (unknown_time, known_time)
    };
    assert!(
        slow.as_secs_f64() <= fast.as_secs_f64() * 3.0 + 0.05,
        "known {known_time:?} against unknown {unknown_time:?}"
    );
}

async fn sixteen_concurrent_resets_with_one_token_let_exactly_one_through(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "race").await;
    let token = request_reset(&app, &user.email).await.token;
    let calls: Vec<_> = (0..16)
        .map(|n| {
            let mut users = app.users.clone();
            let token = token.clone();
            tokio::spawn(async move {
                users
                    .reset_password(pb::ResetPasswordRequest {
                        token,
                        new_password: format!("{NEW_PASSWORD} {n}"),
                    })
                    .await
                    .map(|_| n)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for call in calls {
        match call.await.expect("call") {
            Ok(n) => winners.push(n),
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one reset succeeds");
    sign_in_with(
        &app,
        &user.email,
        &format!("{NEW_PASSWORD} {}", winners[0]),
        "",
    )
    .await
    .expect("the winner's password is the one set");
    let changes = app
        .log_after(0, 10_000)
        .await
        .expect("log")
        .into_iter()
        .filter(|e| e.kind == "user.password_changed")
        .count();
    assert_eq!(changes, 1);
}

async fn malformed_truncated_foreign_and_oversized_tokens_are_refused_with_nothing_changed(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "hostile").await;
    let token = request_reset(&app, &user.email).await.token;
    let foreign = "A".repeat(43);
    let oversized = "x".repeat(10_000);
    let padded = format!("{token}=");
    for bad in [
        "",
        &token[..20],
        &padded,
        &foreign,
        &oversized,
        "nul\0token",
        "' OR 1=1 --",
    ] {
        let status = reset(&app, bad, NEW_PASSWORD).await.expect_err("refused");
        assert!(
            matches!(
                status.code(),
                Code::InvalidArgument | Code::FailedPrecondition
            ),
            "{:?}: {status:?}",
            &bad[..bad.len().min(20)]
        );
        if status.code() == Code::InvalidArgument {
            assert_eq!(violated_fields(&status), vec!["token"]);
        }
        let verify = app
            .users
            .clone()
            .verify_email(pb::VerifyEmailRequest { token: bad.into() })
            .await
            .expect_err("refused");
        assert!(matches!(
            verify.code(),
            Code::InvalidArgument | Code::FailedPrecondition
        ));
    }
    sign_in(&app, &user.email, "")
        .await
        .expect("the password is unchanged");
    reset(&app, &token, NEW_PASSWORD)
        .await
        .expect("the real token still works");
}

async fn an_email_is_verified_by_its_own_token_and_a_new_email_needs_a_new_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "verify").await;
    assert!(!user.email_verified && !user.totp_enabled);
    let request = |app: &TestApp| {
        let mut users = app.users.clone();
        let user_id = user.uuid.clone();
        async move {
            users
                .request_email_verification(pb::RequestEmailVerificationRequest { user_id })
                .await
                .expect("request")
                .into_inner()
        }
    };
    let verify = |app: &TestApp, token: String| {
        let mut users = app.users.clone();
        async move {
            users
                .verify_email(pb::VerifyEmailRequest { token })
                .await
                .map(|r| r.into_inner().user.expect("user"))
        }
    };
    let first = request(&app).await;
    let expires = first.expire_time.expect("expiry").seconds;
    assert!((expires - (chrono::Utc::now().timestamp() + 24 * 3600)).abs() <= 5);
    let verified = verify(&app, first.token.clone()).await.expect("verify");
    assert!(verified.email_verified);
    let claims = crate::sessions::verified(
        &app,
        &sign_in(&app, &user.email, "")
            .await
            .expect("sign in")
            .access_token,
    )
    .await;
    assert!(claims.email_verified, "the access token says so");
    assert_eq!(
        verify(&app, first.token).await.expect_err("used").code(),
        Code::FailedPrecondition
    );

    // A token for the old email does not verify the new one; changing the email clears
    // the flag.
    let stale = request(&app).await.token;
    let new_email = unique_email("moved");
    let moved = app
        .users
        .clone()
        .update_user(pb::UpdateUserRequest {
            user_id: user.uuid.clone(),
            user: Some(pb::User {
                email: new_email.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["email".into()],
            }),
            etag: String::new(),
        })
        .await
        .expect("change the email")
        .into_inner()
        .user
        .expect("user");
    assert!(!moved.email_verified, "a new email is not verified");
    let refused = verify(&app, stale)
        .await
        .expect_err("the old email's token");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let fresh = request(&app).await.token;
    assert!(verify(&app, fresh).await.expect("verify").email_verified);

    let events: Vec<_> = app
        .log_after(0, 10_000)
        .await
        .expect("log")
        .into_iter()
        .filter(|e| e.kind == "user.updated")
        .collect();
    assert!(
        events.len() >= 3,
        "each flag change is a user.updated event"
    );
}

async fn recovery_rpcs_need_the_recovery_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "scope").await;
    let recover = app.key_with(&["users.recover"]).await;
    let write = app.key_with(&["users.write"]).await;
    let call = |key: &str| {
        let mut users = app.users_with_key(Some(key));
        let email = user.email.clone();
        async move {
            users
                .request_password_reset(pb::RequestPasswordResetRequest { email })
                .await
        }
    };
    assert!(call(&recover).await.is_ok());
    assert_eq!(
        call(&write).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let enroll = app
        .users_with_key(Some(&recover))
        .enroll_totp(pb::EnrollTotpRequest {
            user_id: user.uuid.clone(),
        })
        .await
        .expect_err("TOTP needs users.write");
    assert_eq!(enroll.code(), Code::PermissionDenied);
    assert_eq!(error_reason(&enroll), None);
    let _ = GOOD_PASSWORD;
}

crate::on_both_backends!(
    a_reset_sets_the_password_ends_every_session_and_clears_the_lockout,
    a_second_request_kills_the_first_token_and_the_policy_applies,
    an_unknown_or_inactive_email_gets_the_same_shape_in_about_the_same_time,
    sixteen_concurrent_resets_with_one_token_let_exactly_one_through,
    malformed_truncated_foreign_and_oversized_tokens_are_refused_with_nothing_changed,
    an_email_is_verified_by_its_own_token_and_a_new_email_needs_a_new_one,
    recovery_rpcs_need_the_recovery_scope,
);
