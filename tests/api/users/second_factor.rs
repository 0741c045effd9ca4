//! The second factor (issue 28, SPEC §12): TOTP enrolled and confirmed before it is on,
//! then asked for (only after a right password) by `CreateSession` and
//! `AuthenticateUser`; each code accepted once, recovery codes once each, wrong codes
//! counted by the one lockout; the secret and codes never in an event.
//!
//! Codes are computed here from the secret `EnrollTotp` returns. A TOTP step is 30 s and
//! the server accepts one step either side, so a test uses the previous, current and
//! next steps' codes (three distinct steps) without waiting, after moving away from a
//! step boundary.

use std::time::Duration;

use tenancy::domain::second_factor::Totp;
use tenancy_client::pb;
use tonic::Code;

use crate::helpers::{
    Backend, GOOD_PASSWORD, TestApp, error_reason, spawn_app, spawn_app_with, violated_fields,
};
use crate::sessions::{sign_in_with, user_with_password};

/// The enrolled generator of a user, from the base32 secret.
pub(crate) fn generator(secret: &str) -> Totp {
    let bytes = totp_rs::Secret::try_from_base32(secret)
        .expect("a base32 secret")
        .to_vec();
    Totp::new(&bytes, "tenancy", "user").expect("a TOTP")
}

fn unix_now() -> u64 {
    chrono::Utc::now().timestamp() as u64
}

/// Waits until at least 4 s from either end of the current 30 s step.
pub(crate) async fn away_from_a_step_boundary() {
    loop {
        let into = unix_now() % 30;
        if (4..=26).contains(&into) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Enrolls and confirms TOTP with the previous step's code; answers the generator and
/// the recovery codes.
async fn enable_totp(app: &TestApp, user: &pb::User) -> (Totp, Vec<String>) {
    let mut users = app.users.clone();
    let enrolled = users
        .enroll_totp(pb::EnrollTotpRequest {
            user_id: user.uuid.clone(),
        })
        .await
        .expect("enroll")
        .into_inner();
    assert!(enrolled.otpauth_uri.starts_with("otpauth://totp/"));
    assert!(enrolled.otpauth_uri.contains(&enrolled.secret));
    let totp = generator(&enrolled.secret);
    away_from_a_step_boundary().await;
    let codes = users
        .confirm_totp(pb::ConfirmTotpRequest {
            user_id: user.uuid.clone(),
            code: totp.code_at(unix_now() - 30),
        })
        .await
        .expect("confirm")
        .into_inner()
        .recovery_codes;
    (totp, codes)
}

async fn authenticate(
    app: &TestApp,
    email: &str,
    password: &str,
    code: &str,
) -> Result<pb::AuthenticateUserResponse, tonic::Status> {
    app.users
        .clone()
        .authenticate_user(pb::AuthenticateUserRequest {
            email: email.into(),
            password: password.into(),
            totp_code: code.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn create_session(
    app: &TestApp,
    email: &str,
    password: &str,
    code: &str,
) -> Result<pb::CreateSessionResponse, tonic::Status> {
    app.sessions
        .clone()
        .create_session(pb::CreateSessionRequest {
            email: email.into(),
            password: password.into(),
            customer_id: String::new(),
            totp_code: code.into(),
        })
        .await
        .map(|r| r.into_inner())
}

fn assert_second_factor_required(status: &tonic::Status) {
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(
        error_reason(status).as_deref(),
        Some("SECOND_FACTOR_REQUIRED")
    );
}

async fn a_confirmed_second_factor_is_asked_for_after_a_right_password_and_each_code_works_once(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "totp").await;
    let mut users = app.users.clone();
    let enrolled = users
        .enroll_totp(pb::EnrollTotpRequest {
            user_id: user.uuid.clone(),
        })
        .await
        .expect("enroll")
        .into_inner();
    // Enrolled but not confirmed: sign-in is as before; a wrong code does not confirm.
    sign_in_with(&app, &user.email, GOOD_PASSWORD, "")
        .await
        .expect("not on before ConfirmTotp");
    let totp = generator(&enrolled.secret);
    away_from_a_step_boundary().await;
    let now = unix_now();
    let wrong = format!(
        "{:06}",
        (totp.code_at(now).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let refused = users
        .confirm_totp(pb::ConfirmTotpRequest {
            user_id: user.uuid.clone(),
            code: wrong.clone(),
        })
        .await
        .expect_err("a wrong code");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), vec!["code"]);
    let codes = users
        .confirm_totp(pb::ConfirmTotpRequest {
            user_id: user.uuid.clone(),
            code: totp.code_at(now - 30),
        })
        .await
        .expect("confirm")
        .into_inner()
        .recovery_codes;
    assert_eq!(codes.len(), 10);
    let fetched = users
        .get_user(pb::GetUserRequest {
            lookup: Some(pb::get_user_request::Lookup::UserId(user.uuid.clone())),
        })
        .await
        .expect("get")
        .into_inner()
        .user
        .expect("user");
    assert!(fetched.totp_enabled);

    // No code: refused, but only once the password was right.
    let no_code = create_session(&app, &user.email, GOOD_PASSWORD, "")
        .await
        .expect_err("a code is needed");
    assert_second_factor_required(&no_code);
    let wrong_password = create_session(&app, &user.email, "not the password", "")
        .await
        .expect_err("wrong password");
    assert_eq!(wrong_password.code(), Code::Unauthenticated);
    assert_eq!(
        error_reason(&wrong_password),
        None,
        "says nothing of a factor"
    );

    // The current step's code, once; the confirming step's code is already used.
    let current = totp.code_at(now);
    create_session(&app, &user.email, GOOD_PASSWORD, &current)
        .await
        .expect("the current code");
    assert_second_factor_required(
        &authenticate(&app, &user.email, GOOD_PASSWORD, &current)
            .await
            .expect_err("a replay"),
    );
    assert_second_factor_required(
        &authenticate(&app, &user.email, GOOD_PASSWORD, &totp.code_at(now - 30))
            .await
            .expect_err("the confirming code"),
    );
    authenticate(&app, &user.email, GOOD_PASSWORD, &totp.code_at(now + 30))
        .await
        .expect("the next step's code, within the skew");

    // A recovery code works once, in any case.
    create_session(&app, &user.email, GOOD_PASSWORD, &codes[0].to_uppercase())
        .await
        .expect("a recovery code");
    assert_second_factor_required(
        &create_session(&app, &user.email, GOOD_PASSWORD, &codes[0])
            .await
            .expect_err("used"),
    );

    // Off again: no code needed.
    users
        .disable_totp(pb::DisableTotpRequest {
            user_id: user.uuid.clone(),
        })
        .await
        .expect("disable");
    create_session(&app, &user.email, GOOD_PASSWORD, "")
        .await
        .expect("no second factor");

    let log = format!("{:?}", app.log_after(0, 10_000).await.expect("log"));
    assert!(!log.contains(&enrolled.secret), "the secret is in an event");
    for code in &codes {
        assert!(
            !log.contains(code.as_str()),
            "a recovery code is in an event"
        );
    }
}

async fn sixteen_concurrent_sign_ins_with_one_code_let_exactly_one_through(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "race").await;
    let (totp, _) = enable_totp(&app, &user).await;
    let code = totp.code_at(unix_now());
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let mut sessions = app.sessions.clone();
            let (email, code) = (user.email.clone(), code.clone());
            tokio::spawn(async move {
                sessions
                    .create_session(pb::CreateSessionRequest {
                        email,
                        password: GOOD_PASSWORD.into(),
                        customer_id: String::new(),
                        totp_code: code,
                    })
                    .await
            })
        })
        .collect();
    let mut accepted = 0;
    for call in calls {
        match call.await.expect("call") {
            Ok(_) => accepted += 1,
            Err(status) => assert_eq!(status.code(), Code::Unauthenticated, "{status:?}"),
        }
    }
    assert_eq!(accepted, 1, "one code, one sign-in");
}

async fn forty_parallel_wrong_codes_are_held_by_the_lockout(backend: Backend) {
    let app = spawn_app_with(backend, |serve| serve.lockout_threshold = 10).await;
    let user = user_with_password(&app, "guess").await;
    let (totp, _) = enable_totp(&app, &user).await;
    let calls: Vec<_> = (0..40)
        .map(|n| {
            let mut users = app.users.clone();
            let email = user.email.clone();
            tokio::spawn(async move {
                users
                    .authenticate_user(pb::AuthenticateUserRequest {
                        email,
                        password: GOOD_PASSWORD.into(),
                        totp_code: format!("{:06}", 100_000 + n),
                    })
                    .await
            })
        })
        .collect();
    let mut checked = 0;
    for call in calls {
        let status = call.await.expect("call").expect_err("a wrong code");
        assert_eq!(status.code(), Code::Unauthenticated);
        if error_reason(&status).as_deref() == Some("SECOND_FACTOR_REQUIRED") {
            checked += 1;
        }
    }
    assert!(
        checked <= 10,
        "{checked} codes were checked; the lockout allows 10"
    );
    let locked = authenticate(&app, &user.email, GOOD_PASSWORD, &totp.code_at(unix_now()))
        .await
        .expect_err("locked, even with the right code");
    assert_eq!(locked.code(), Code::Unauthenticated);
    assert_eq!(
        error_reason(&locked),
        None,
        "the locked answer says nothing more"
    );
}

async fn hostile_codes_and_enrollments_are_refused_with_nothing_changed(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "hostile").await;
    let mut users = app.users.clone();
    let no_enrollment = users
        .confirm_totp(pb::ConfirmTotpRequest {
            user_id: user.uuid.clone(),
            code: "123456".into(),
        })
        .await
        .expect_err("nothing enrolled");
    assert_eq!(no_enrollment.code(), Code::FailedPrecondition);
    let (_, _) = enable_totp(&app, &user).await;
    let again = users
        .enroll_totp(pb::EnrollTotpRequest {
            user_id: user.uuid.clone(),
        })
        .await
        .expect_err("already on");
    assert_eq!(again.code(), Code::FailedPrecondition);
    for bad in [
        "12345",
        "1234567",
        "abcdef",
        "１２３４５６",
        "12\u{0}456",
        &"9".repeat(500),
    ] {
        let status = users
            .confirm_totp(pb::ConfirmTotpRequest {
                user_id: user.uuid.clone(),
                code: bad.into(),
            })
            .await
            .expect_err("refused");
        assert!(
            matches!(
                status.code(),
                Code::InvalidArgument | Code::FailedPrecondition
            ),
            "{status:?}"
        );
        let signed_in = authenticate(&app, &user.email, GOOD_PASSWORD, bad)
            .await
            .expect_err("refused");
        assert!(
            matches!(
                signed_in.code(),
                Code::Unauthenticated | Code::InvalidArgument
            ),
            "{signed_in:?}"
        );
    }
    let missing = users
        .enroll_totp(pb::EnrollTotpRequest {
            user_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .expect_err("no such user");
    assert_eq!(missing.code(), Code::NotFound);
}

crate::on_both_backends!(
    a_confirmed_second_factor_is_asked_for_after_a_right_password_and_each_code_works_once,
    sixteen_concurrent_sign_ins_with_one_code_let_exactly_one_through,
    forty_parallel_wrong_codes_are_held_by_the_lockout,
    hostile_codes_and_enrollments_are_refused_with_nothing_changed,
);
