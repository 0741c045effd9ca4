//! Abuse of sign-in: a true sliding window, counts cleared by a new password, pruned
//! throttle rows, sign-ins that lose a race with SetPassword or deactivation, settings
//! refused at start, one first admin key, and reserve-before-verify checked
//! deterministically.

use std::time::{Duration, Instant};

use tenancy::{app::users::SIGN_IN_FAILED, domain::id::Id, hashing::HashingGate};
use tenancy_client::pb::{self, user_service_client::UserServiceClient};
use tokio::net::TcpListener;
use tonic::{Code, Status};

use super::{count, rows};
use crate::{
    helpers::{
        Backend, GOOD_PASSWORD, Svc, TestApp, spawn_app, spawn_app_on, spawn_app_with,
        test_serve_args, unique_email,
    },
    users::create,
};

const WRONG_PASSWORD: &str = "not the right passphrase 13";
const NEW_PASSWORD: &str = "another good passphrase 77";

fn sign_in(
    mut users: UserServiceClient<Svc>,
    email: &str,
    password: &str,
) -> impl Future<Output = Result<pb::AuthenticateUserResponse, Status>> + Send + use<> {
    let request = pb::AuthenticateUserRequest {
        email: email.into(),
        password: password.into(),
        totp_code: String::new(),
    };
    async move {
        users
            .authenticate_user(request)
            .await
            .map(|r| r.into_inner())
    }
}

async fn refused(app: &TestApp, email: &str, password: &str) {
    let status = sign_in(app.users.clone(), email, password)
        .await
        .expect_err("the sign-in must fail");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), SIGN_IN_FAILED);
}

async fn sleep_until(start: Instant, after: Duration) {
    tokio::time::sleep_until((start + after).into()).await;
}

async fn no_span_of_the_window_holds_more_than_threshold_failures(backend: Backend) {
    // A window anchored at the first failure lets one failure early in a window and
    // two late in it be followed by three more just after it: five in a moment.
    let app = spawn_app_with(backend, |s| {
        s.lockout_threshold = 3;
        s.lockout_window = 3;
        s.lockout_duration = 60;
    })
    .await;
    let email = unique_email("sliding");
    create(&app, &email, GOOD_PASSWORD).await;
    let start = Instant::now();
    refused(&app, &email, WRONG_PASSWORD).await;
    sleep_until(start, Duration::from_millis(2000)).await;
    refused(&app, &email, WRONG_PASSWORD).await;
    // The first failure has left the window; the second has not.
    sleep_until(start, Duration::from_millis(3300)).await;
    refused(&app, &email, WRONG_PASSWORD).await;
    refused(&app, &email, WRONG_PASSWORD).await;
    assert!(
        start.elapsed() < Duration::from_millis(4900),
        "the machine is too slow for this test"
    );
    // Three failures inside the last three seconds: even the right password is refused.
    refused(&app, &email, GOOD_PASSWORD).await;
}

async fn a_new_password_clears_the_failure_count(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.lockout_threshold = 3).await;
    let email = unique_email("cleared");
    let user = create(&app, &email, GOOD_PASSWORD).await;
    for _ in 0..2 {
        refused(&app, &email, WRONG_PASSWORD).await;
    }
    app.users
        .clone()
        .set_password(pb::SetPasswordRequest {
            user_id: user.uuid.clone(),
            password: NEW_PASSWORD.into(),
        })
        .await
        .expect("set password");
    for _ in 0..2 {
        refused(&app, &email, WRONG_PASSWORD).await;
    }
    // Four failures, but only two since the new password.
    sign_in(app.users.clone(), &email, NEW_PASSWORD)
        .await
        .expect("the count started again at SetPassword");

    for _ in 0..2 {
        refused(&app, &email, WRONG_PASSWORD).await;
    }
    app.users
        .clone()
        .change_password(pb::ChangePasswordRequest {
            user_id: user.uuid.clone(),
            current_password: NEW_PASSWORD.into(),
            new_password: GOOD_PASSWORD.into(),
        })
        .await
        .expect("change password");
    for _ in 0..2 {
        refused(&app, &email, WRONG_PASSWORD).await;
    }
    sign_in(app.users.clone(), &email, GOOD_PASSWORD)
        .await
        .expect("the count started again at ChangePassword");
}

async fn a_sign_in_records_only_what_it_verified(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("raced");
    let user = create(&app, &email, GOOD_PASSWORD).await;
    let id = Id::parse(&user.uuid).expect("an id");
    let verified = app
        .store
        .credentials_by_id(id)
        .await
        .expect("credentials")
        .password_hash
        .expect("a hash");

    // SetPassword lands while the old password is being verified: the sign-in must not
    // store a re-hash of the old password over the new one, nor succeed.
    app.users
        .clone()
        .set_password(pb::SetPasswordRequest {
            user_id: user.uuid.clone(),
            password: NEW_PASSWORD.into(),
        })
        .await
        .expect("set password");
    let new_hash = app
        .store
        .credentials_by_id(id)
        .await
        .expect("credentials")
        .password_hash;
    let recorded = app
        .store
        .record_sign_in(id, &email, &verified, Some("$argon2id$stale-rehash".into()))
        .await
        .expect("no database error");
    assert!(recorded.is_none(), "a sign-in against the old hash fails");
    let after = app.store.credentials_by_id(id).await.expect("credentials");
    assert_eq!(after.password_hash, new_hash, "SetPassword's hash stays");
    assert!(after.user.last_login_time.is_none());

    // The user is made inactive while the (new) password is being verified.
    let current = new_hash.expect("a hash");
    let mut inactive = user.clone();
    inactive.status = pb::UserStatus::Inactive as i32;
    app.users
        .clone()
        .update_user(pb::UpdateUserRequest {
            user_id: user.uuid.clone(),
            user: Some(inactive),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
            etag: String::new(),
        })
        .await
        .expect("deactivate");
    let recorded = app
        .store
        .record_sign_in(id, &email, &current, None)
        .await
        .expect("no database error");
    assert!(recorded.is_none(), "an inactive user does not sign in");

    // Nothing changed since the verification: recorded.
    let mut active = user.clone();
    active.status = pb::UserStatus::Active as i32;
    app.users
        .clone()
        .update_user(pb::UpdateUserRequest {
            user_id: user.uuid.clone(),
            user: Some(active),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
            etag: String::new(),
        })
        .await
        .expect("reactivate");
    let recorded = app
        .store
        .record_sign_in(id, &email, &current, None)
        .await
        .expect("no database error")
        .expect("recorded");
    assert!(recorded.0.last_login_time.is_some());
}

async fn throttle_rows_that_hold_nothing_are_pruned(backend: Backend) {
    let configure = |s: &mut tenancy::config::ServeArgs| {
        s.lockout_threshold = 5;
        s.lockout_window = 3;
        s.lockout_duration = 3;
    };
    let first = spawn_app_with(backend, configure).await;
    let old = unique_email("old");
    let fresh = unique_email("fresh");
    refused(&first, &old, WRONG_PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(3200)).await;
    refused(&first, &fresh, WRONG_PASSWORD).await;
    let database = first.database.clone();
    first.stop().await.expect("stopped");

    // Pruning runs with the other periodic work, the first time on start.
    let mut serve = test_serve_args();
    configure(&mut serve);
    let second = spawn_app_on(database, serve).await;
    let started = Instant::now();
    loop {
        let left = rows(&second, "SELECT email FROM login_throttle").await;
        let emails: Vec<String> = left
            .iter()
            .map(|r| r.try_get("", "email").expect("email"))
            .collect();
        if !emails.contains(&old) {
            assert!(emails.contains(&fresh), "a row still in its window stays");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the expired row was never pruned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_zero_lockout_window_or_threshold_is_refused_at_start(backend: Backend) {
    for (flag, configure) in [
        (
            "--lockout-window",
            (|s| s.lockout_window = 0) as fn(&mut tenancy::config::ServeArgs),
        ),
        ("--lockout-threshold", |s| s.lockout_threshold = 0),
    ] {
        let mut serve = test_serve_args();
        configure(&mut serve);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let database = backend.fresh_database().await;
        let error = tenancy::startup::run(database, serve, listener, std::future::pending())
            .await
            .expect_err("refused at start");
        assert!(error.to_string().contains(flag), "{error}");
    }
}

async fn instances_starting_together_on_an_empty_database_create_one_admin_key(backend: Backend) {
    for _ in 0..3 {
        let database = backend.fresh_database().await;
        let mut serve = test_serve_args();
        serve.admin_key = None;
        let (a, b) = tokio::join!(
            spawn_app_on(database.clone(), serve.clone()),
            spawn_app_on(database, serve)
        );
        assert_eq!(count(&a, "SELECT COUNT(*) FROM api_keys").await, 1);
        drop(b);
    }
}

async fn an_attempt_is_counted_before_its_password_is_checked(backend: Backend) {
    let gate = HashingGate::default();
    let app = spawn_app_with(backend, |s| {
        s.lockout_threshold = 3;
        s.hash_workers = Some(1);
        s.hashing_gate = Some(gate.clone());
    })
    .await;
    let email = unique_email("reserved");
    create(&app, &email, GOOD_PASSWORD).await;

    // No password is checked while the gate is closed: whatever the throttle stores
    // now was stored before verification.
    gate.close();
    let guesses: Vec<_> = (0..6)
        .map(|_| tokio::spawn(sign_in(app.users.clone(), &email, WRONG_PASSWORD)))
        .collect();
    let started = Instant::now();
    let attempts_sql = format!("SELECT attempts FROM login_throttle WHERE email = '{email}'");
    loop {
        let stored = rows(&app, &attempts_sql).await;
        let attempts: Option<i32> = stored
            .first()
            .map(|r| r.try_get("", "attempts").expect("attempts"));
        if attempts == Some(3) {
            break;
        }
        assert!(
            attempts.is_none_or(|a| a < 3),
            "more attempts reserved than the threshold: {attempts:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the queued guesses were not counted before verification (stored: {attempts:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let right = tokio::spawn(sign_in(app.users.clone(), &email, GOOD_PASSWORD));
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.open();
    for guess in guesses {
        let status = guess.await.expect("joined").expect_err("wrong password");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let status = right.await.expect("joined").expect_err("locked");
    assert_eq!(status.code(), Code::Unauthenticated);
}

crate::on_both_backends!(
    no_span_of_the_window_holds_more_than_threshold_failures,
    a_new_password_clears_the_failure_count,
    a_sign_in_records_only_what_it_verified,
    throttle_rows_that_hold_nothing_are_pruned,
    a_zero_lockout_window_or_threshold_is_refused_at_start,
    instances_starting_together_on_an_empty_database_create_one_admin_key,
    an_attempt_is_counted_before_its_password_is_checked,
);
