//! Passwords and sign-in: policy, SetPassword, ChangePassword, AuthenticateUser, the
//! lockout, re-hashing and the bounded hashing pool.

use std::time::{Duration, Instant};

use futures::future::join_all;
use tenancy::config::ServeArgs;
use tenancy_client::pb::{self, user_service_client::UserServiceClient};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use super::{assert_not_internal, create, create_request, events, get, new_user, update};
use crate::helpers::{
    Backend, GOOD_PASSWORD, Svc, TestApp, spawn_app, spawn_app_on, spawn_app_with, test_serve_args,
    unique_email, violated_fields,
};

const OTHER_PASSWORD: &str = "another good passphrase 77";
const WRONG_PASSWORD: &str = "not the right passphrase 13";

/// A sign-in that owns its request, so it can be spawned or collected.
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

/// Seconds and nanoseconds, for ordering timestamps.
fn instant(time: &prost_types::Timestamp) -> (i64, i32) {
    (time.seconds, time.nanos)
}

/// Signs in and expects the one answer every failure gets; returns its message.
async fn refused(app: &TestApp, email: &str, password: &str) -> String {
    let status = sign_in(app.users.clone(), email, password)
        .await
        .expect_err("sign-in must fail");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status.details().is_empty(),
        "no details tell failures apart"
    );
    status.message().to_string()
}

async fn set_password(app: &TestApp, id: &str, password: &str) -> Result<(), Status> {
    app.users
        .clone()
        .set_password(pb::SetPasswordRequest {
            user_id: id.into(),
            password: password.into(),
        })
        .await
        .map(|_| ())
}

async fn change_password(app: &TestApp, id: &str, current: &str, new: &str) -> Result<(), Status> {
    app.users
        .clone()
        .change_password(pb::ChangePasswordRequest {
            user_id: id.into(),
            current_password: current.into(),
            new_password: new.into(),
        })
        .await
        .map(|_| ())
}

async fn stored_hash(app: &TestApp, email: &str) -> String {
    app.store
        .credentials_by_email(email)
        .await
        .expect("credentials")
        .expect("a user")
        .password_hash
        .expect("a password hash")
}

async fn deactivate(app: &TestApp, user: &pb::User) {
    let mut inactive = user.clone();
    inactive.status = pb::UserStatus::Inactive as i32;
    update(app, &user.uuid, "", &["status"], inactive)
        .await
        .expect("deactivate");
}

/// The policy violations of each password, as CreateUser, SetPassword and
/// ChangePassword all apply them.
fn policy_cases(email: &str) -> Vec<(String, bool)> {
    vec![
        ("Zq7!xk2".into(), false),                  // 7 characters
        ("Zq7!xk2m".into(), true),                  // 8
        ("ünïcödé".into(), false),                  // 7 characters in 14 bytes
        ("ünïcödé!".into(), true),                  // 8 characters
        ("Qz7!".repeat(32), true),                  // 128
        (format!("{}x", "Qz7!".repeat(32)), false), // 129
        (email.to_uppercase(), false),              // the email
        ("password1".into(), false),                // common
        ("iloveyou".into(), false),                 // common
        ("P@ssw0rd".into(), false),                 // common, l33t
    ]
}

async fn create_user_enforces_the_password_policy(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = policy_cases("").len();
    for n in 0..cases {
        let email = unique_email(&format!("policy{n}"));
        let (password, allowed) = policy_cases(&email).swap_remove(n);
        let result = app
            .users
            .clone()
            .create_user(create_request(new_user(&email), &password, ""))
            .await;
        match (result, allowed) {
            (Ok(_), true) => {}
            (Err(status), false) => {
                assert_eq!(status.code(), Code::InvalidArgument, "{password}");
                assert_eq!(violated_fields(&status), ["password"], "{password}");
            }
            (result, _) => panic!("{password}: expected allowed={allowed}, got {result:?}"),
        }
    }
    let allowed = policy_cases("").iter().filter(|(_, ok)| *ok).count();
    assert_eq!(super::all_users(&app).await.len(), allowed);
}

async fn a_user_without_a_password_cannot_sign_in_until_one_is_set(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("nopass");
    let created = create(&app, &email, "").await;
    assert!(!created.has_password);
    // Not even the password behind the dummy hash that stands in for a missing one.
    for guess in [GOOD_PASSWORD, "dummy password for unknown emails"] {
        refused(&app, &email, guess).await;
    }
    let status = change_password(&app, &created.uuid, GOOD_PASSWORD, OTHER_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    set_password(&app, &created.uuid, GOOD_PASSWORD)
        .await
        .expect("set");
    let read = get(&app, &created.uuid).await.unwrap();
    assert!(read.has_password);
    assert_ne!(read.etag, created.etag, "setting a password moves the etag");
    sign_in(app.users.clone(), &email, GOOD_PASSWORD)
        .await
        .expect("signs in once a password is set");
}

async fn set_password_enforces_the_policy_and_replaces_the_old_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("reset");
    let created = create(&app, &email, GOOD_PASSWORD).await;
    for (password, allowed) in policy_cases(&email) {
        if allowed {
            continue;
        }
        let status = set_password(&app, &created.ulid, &password)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{password}");
        assert_eq!(violated_fields(&status), ["password"], "{password}");
    }
    sign_in(app.users.clone(), &email, GOOD_PASSWORD)
        .await
        .expect("refused resets change nothing");

    set_password(&app, &created.ulid, OTHER_PASSWORD)
        .await
        .expect("set");
    refused(&app, &email, GOOD_PASSWORD).await;
    sign_in(app.users.clone(), &email, OTHER_PASSWORD)
        .await
        .expect("the new password works");

    let unknown = uuid::Uuid::now_v7().to_string();
    let status = set_password(&app, &unknown, OTHER_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = set_password(&app, "nope", OTHER_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["user_id"]);
}

async fn wrong_current_passwords_share_the_sign_in_lockout(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.lockout_threshold = 3).await;
    let email = unique_email("change-lock");
    let created = create(&app, &email, GOOD_PASSWORD).await;
    for _ in 0..3 {
        let status = change_password(&app, &created.uuid, WRONG_PASSWORD, OTHER_PASSWORD)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    // ChangePassword is a password oracle too: three wrong guesses there lock both.
    let status = change_password(&app, &created.uuid, GOOD_PASSWORD, OTHER_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    refused(&app, &email, GOOD_PASSWORD).await;
}

async fn change_password_needs_the_right_current_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("change");
    let created = create(&app, &email, GOOD_PASSWORD).await;

    let status = change_password(&app, &created.uuid, WRONG_PASSWORD, OTHER_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    for (password, allowed) in policy_cases(&email) {
        if allowed {
            continue;
        }
        let status = change_password(&app, &created.uuid, GOOD_PASSWORD, &password)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{password}");
        assert_eq!(violated_fields(&status), ["new_password"], "{password}");
    }
    let status = change_password(&app, &created.uuid, "", "12")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["current_password", "new_password"]);
    let status = change_password(
        &app,
        &uuid::Uuid::now_v7().to_string(),
        GOOD_PASSWORD,
        OTHER_PASSWORD,
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    sign_in(app.users.clone(), &email, GOOD_PASSWORD)
        .await
        .expect("failed changes change nothing");

    change_password(&app, &created.ulid, GOOD_PASSWORD, OTHER_PASSWORD)
        .await
        .expect("change");
    refused(&app, &email, GOOD_PASSWORD).await;
    sign_in(app.users.clone(), &email, OTHER_PASSWORD)
        .await
        .expect("the new password works");
}

async fn signing_in_returns_the_user_with_last_login_time_and_memberships(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("Login");
    let created = create(&app, &email, GOOD_PASSWORD).await;
    assert!(created.last_login_time.is_none());
    let before = events(&app).await.len();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    let signed_in = sign_in(
        app.users.clone(),
        &format!("  {}  ", email.to_uppercase()),
        GOOD_PASSWORD,
    )
    .await
    .expect("sign in with the email in any case");
    let user = signed_in.user.expect("the user");
    assert_eq!(user.uuid, created.uuid);
    assert_eq!(user.email, created.email);
    assert!(signed_in.memberships.is_empty(), "no memberships exist yet");
    let login = user.last_login_time.expect("last_login_time is set");
    assert!(login.seconds >= started - 1 && login.seconds <= started + 60);
    assert_eq!(
        get(&app, &created.uuid).await.unwrap().last_login_time,
        Some(login)
    );

    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = sign_in(app.users.clone(), &email, GOOD_PASSWORD)
        .await
        .unwrap()
        .user
        .unwrap();
    assert!(
        instant(&again.last_login_time.unwrap()) > instant(&login),
        "every sign-in records its time"
    );
    assert_eq!(
        events(&app).await.len(),
        before,
        "a sign-in is not a change event"
    );

    let status = sign_in(app.users.clone(), "", "").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["email", "password"]);
}

async fn every_sign_in_failure_gets_the_same_answer(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.lockout_threshold = 3;
    })
    .await;
    let known = unique_email("known");
    create(&app, &known, GOOD_PASSWORD).await;
    let inactive_email = unique_email("inactive");
    let inactive = create(&app, &inactive_email, GOOD_PASSWORD).await;
    deactivate(&app, &inactive).await;
    let no_password = unique_email("nopassword");
    create(&app, &no_password, "").await;
    let locked = unique_email("locked");
    create(&app, &locked, GOOD_PASSWORD).await;
    for _ in 0..3 {
        refused(&app, &locked, WRONG_PASSWORD).await;
    }

    let answers = [
        (
            "wrong password",
            refused(&app, &known, WRONG_PASSWORD).await,
        ),
        (
            "unknown email",
            refused(&app, &unique_email("unknown"), GOOD_PASSWORD).await,
        ),
        (
            "inactive user",
            refused(&app, &inactive_email, GOOD_PASSWORD).await,
        ),
        (
            "no password",
            refused(&app, &no_password, GOOD_PASSWORD).await,
        ),
        ("locked user", refused(&app, &locked, GOOD_PASSWORD).await),
    ];
    for (case, message) in &answers {
        assert_eq!(message, &answers[0].1, "{case} is told apart");
        assert!(!message.contains('@'), "{case} quotes the email");
    }
    // Reactivated, the inactive user signs in: it was refused for being inactive.
    let mut active = get(&app, &inactive.uuid).await.unwrap();
    active.status = pb::UserStatus::Active as i32;
    update(&app, &inactive.uuid, "", &["status"], active)
        .await
        .unwrap();
    sign_in(app.users.clone(), &inactive_email, GOOD_PASSWORD)
        .await
        .expect("an active user with the right password signs in");
}

async fn sign_in_failures_take_about_as_long_as_a_wrong_password(backend: Backend) {
    // Costly enough that one argon2 verification dwarfs the rest of an RPC.
    let app = spawn_app_with(backend, |s| {
        s.lockout_threshold = 3;
        s.argon2_memory_kib = 16 * 1024;
        s.argon2_iterations = 2;
    })
    .await;
    const SAMPLES: usize = 4;
    let mut wrong = Vec::new();
    for n in 0..SAMPLES {
        let email = unique_email(&format!("timed{n}"));
        create(&app, &email, GOOD_PASSWORD).await;
        wrong.push(email);
    }
    let inactive_email = unique_email("timed-inactive");
    let inactive = create(&app, &inactive_email, GOOD_PASSWORD).await;
    deactivate(&app, &inactive).await;
    let locked = unique_email("timed-locked");
    create(&app, &locked, GOOD_PASSWORD).await;
    for _ in 0..3 {
        refused(&app, &locked, WRONG_PASSWORD).await;
    }
    let no_password = unique_email("timed-nopassword");
    create(&app, &no_password, "").await;

    let time = |email: String, password: &'static str| {
        let app = &app;
        async move {
            let started = Instant::now();
            refused(app, &email, password).await;
            started.elapsed()
        }
    };
    let mut minimum = [Duration::MAX; 5];
    for wrong_email in &wrong {
        let took = [
            time(wrong_email.clone(), WRONG_PASSWORD).await,
            time(unique_email("timed-unknown"), GOOD_PASSWORD).await,
            time(inactive_email.clone(), GOOD_PASSWORD).await,
            time(locked.clone(), GOOD_PASSWORD).await,
            time(no_password.clone(), GOOD_PASSWORD).await,
        ];
        for (min, took) in minimum.iter_mut().zip(took) {
            *min = (*min).min(took);
        }
    }
    let names = [
        "wrong password",
        "unknown email",
        "inactive",
        "locked",
        "no password",
    ];
    // Noise only adds time, so a minimum far below the wrong password's is a skipped hash.
    for (name, min) in names.iter().zip(minimum).skip(1) {
        assert!(
            min * 3 >= minimum[0],
            "{name} took {min:?}, a wrong password {:?}",
            minimum[0]
        );
    }
}

async fn ten_failures_lock_the_email_even_for_the_right_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("Lockme");
    create(&app, &email, GOOD_PASSWORD).await;
    let bystander = unique_email("bystander");
    create(&app, &bystander, GOOD_PASSWORD).await;

    // Nine failures, in any case of the email, leave the door open; success resets.
    for _ in 0..2 {
        for n in 0..9 {
            let spelled = if n % 2 == 0 {
                email.to_uppercase()
            } else {
                email.clone()
            };
            refused(&app, &spelled, WRONG_PASSWORD).await;
        }
        sign_in(app.users.clone(), &email, GOOD_PASSWORD)
            .await
            .expect("nine failures do not lock");
    }
    // The tenth locks, counted across spellings of the email.
    for n in 0..10 {
        let spelled = if n % 2 == 0 {
            email.to_uppercase()
        } else {
            email.clone()
        };
        refused(&app, &spelled, WRONG_PASSWORD).await;
    }
    let wrong = refused(&app, &email, WRONG_PASSWORD).await;
    let locked = refused(&app, &email, GOOD_PASSWORD).await;
    assert_eq!(locked, wrong);
    refused(&app, &email.to_uppercase(), GOOD_PASSWORD).await;
    // Only that email is locked.
    sign_in(app.users.clone(), &bystander, GOOD_PASSWORD)
        .await
        .expect("other users still sign in");
}

async fn a_lock_expires_after_its_duration(backend: Backend) {
    // The lock outlasts the window here: a lock shorter than the window is held until
    // the window has room again (see hardening::sign_in).
    let app = spawn_app_with(backend, |s| {
        s.lockout_threshold = 3;
        s.lockout_duration = 2;
        s.lockout_window = 1;
    })
    .await;
    let email = unique_email("expires");
    create(&app, &email, GOOD_PASSWORD).await;
    for _ in 0..3 {
        refused(&app, &email, WRONG_PASSWORD).await;
    }
    refused(&app, &email, GOOD_PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    refused(&app, &email, GOOD_PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    sign_in(app.users.clone(), &email, GOOD_PASSWORD)
        .await
        .expect("the lock has expired");
    // A fresh count after the lock: two failures do not lock again.
    for _ in 0..2 {
        refused(&app, &email, WRONG_PASSWORD).await;
    }
    sign_in(app.users.clone(), &email, GOOD_PASSWORD)
        .await
        .expect("a new window");
}

async fn failures_outside_the_window_do_not_count(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.lockout_threshold = 3;
        s.lockout_duration = 60;
        s.lockout_window = 1;
    })
    .await;
    let email = unique_email("window");
    create(&app, &email, GOOD_PASSWORD).await;
    for _ in 0..2 {
        refused(&app, &email, WRONG_PASSWORD).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..2 {
        refused(&app, &email, WRONG_PASSWORD).await;
    }
    sign_in(app.users.clone(), &email, GOOD_PASSWORD)
        .await
        .expect("four failures, but never three within a second");
    // Three within the window do lock, for the lock's duration (not the window's).
    for _ in 0..3 {
        refused(&app, &email, WRONG_PASSWORD).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    refused(&app, &email, GOOD_PASSWORD).await;
}

async fn forty_parallel_wrong_guesses_lock_the_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("parallel");
    create(&app, &email, GOOD_PASSWORD).await;
    let apps = [&app];
    guess_in_parallel(&apps, &email, 40).await;
    refused(&app, &email, GOOD_PASSWORD).await;
}

async fn the_right_password_sent_while_parallel_guesses_are_checked_is_refused(backend: Backend) {
    // One slow hashing thread: the guesses are still being verified when the right
    // password arrives. Only a count taken *before* verifying has seen them all by then.
    let app = spawn_app_with(backend, |s| {
        s.hash_workers = Some(1);
        s.argon2_memory_kib = 24 * 1024;
        s.argon2_iterations = 2;
    })
    .await;
    let email = unique_email("inflight");
    create(&app, &email, GOOD_PASSWORD).await;
    let guesses = (0..39).map(|_| {
        let users = app.users.clone();
        let email = email.clone();
        async move { sign_in(users, &email, WRONG_PASSWORD).await.err() }
    });
    let right = {
        let users = app.users.clone();
        let email = email.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            sign_in(users, &email, GOOD_PASSWORD).await.err()
        }
    };
    let (guesses, right) = futures::join!(join_all(guesses), right);
    for status in guesses {
        assert_eq!(status.expect("a wrong guess").code(), Code::Unauthenticated);
    }
    let status = right.expect("at most ten guesses are verified, and this is the 40th");
    assert_eq!(status.code(), Code::Unauthenticated);
    refused(&app, &email, GOOD_PASSWORD).await;
}

/// Fires `guesses` wrong passwords for `email` at once, alternating between `apps`.
async fn guess_in_parallel(apps: &[&TestApp], email: &str, guesses: usize) {
    let results = join_all((0..guesses).map(|n| {
        let app = apps[n % apps.len()];
        let spelled = if n % 3 == 0 {
            email.to_uppercase()
        } else {
            email.to_string()
        };
        sign_in(app.users.clone(), &spelled, WRONG_PASSWORD)
    }))
    .await;
    for result in results {
        let status = result.expect_err("a wrong guess");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
}

async fn parallel_guesses_are_each_counted_exactly_once(backend: Backend) {
    // With the threshold equal to the number of parallel guesses, one lost update
    // leaves the email open, and one guess counted twice locks the control email.
    let app = spawn_app_with(backend, |s| s.lockout_threshold = 24).await;
    let (target, control) = (unique_email("counted"), unique_email("control"));
    create(&app, &target, GOOD_PASSWORD).await;
    create(&app, &control, GOOD_PASSWORD).await;
    let apps = [&app];
    futures::join!(
        guess_in_parallel(&apps, &target, 24),
        guess_in_parallel(&apps, &control, 23),
    );
    refused(&app, &target, GOOD_PASSWORD).await;
    sign_in(app.users.clone(), &control, GOOD_PASSWORD)
        .await
        .expect("23 failures are fewer than 24");
}

async fn two_instances_sharing_a_database_share_the_failure_count(backend: Backend) {
    let first = spawn_app_with(backend, |s| s.lockout_threshold = 12).await;
    let mut serve = test_serve_args();
    serve.lockout_threshold = 12;
    let second = spawn_app_on(first.database.clone(), serve).await;
    let (target, control) = (unique_email("twice"), unique_email("control"));
    create(&first, &target, GOOD_PASSWORD).await;
    create(&second, &control, GOOD_PASSWORD).await;
    // Six on each instance: fewer than twelve on either, twelve in all.
    let apps = [&first, &second];
    futures::join!(
        guess_in_parallel(&apps, &target, 12),
        guess_in_parallel(&apps, &control, 11),
    );
    refused(&first, &target, GOOD_PASSWORD).await;
    refused(&second, &target, GOOD_PASSWORD).await;
    sign_in(second.users.clone(), &control, GOOD_PASSWORD)
        .await
        .expect("eleven failures are fewer than twelve");
}

async fn a_hash_made_with_other_parameters_is_rehashed_at_the_next_sign_in(backend: Backend) {
    let old = spawn_app(backend).await;
    let mut serve = test_serve_args();
    serve.argon2_memory_kib = 512;
    serve.argon2_iterations = 2;
    let new = spawn_app_on(old.database.clone(), serve).await;
    let email = unique_email("rehash");
    let created = create(&old, &email, GOOD_PASSWORD).await;
    let original = stored_hash(&old, &email).await;
    assert!(
        original.starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
        "{original}"
    );

    refused(&new, &email, WRONG_PASSWORD).await;
    assert_eq!(
        stored_hash(&old, &email).await,
        original,
        "no re-hash on failure"
    );

    sign_in(new.users.clone(), &email, GOOD_PASSWORD)
        .await
        .expect("the old hash still verifies");
    let rehashed = stored_hash(&old, &email).await;
    assert!(
        rehashed.starts_with("$argon2id$v=19$m=512,t=2,p=1$"),
        "{rehashed}"
    );
    sign_in(new.users.clone(), &email, GOOD_PASSWORD)
        .await
        .expect("the new hash verifies");
    assert_eq!(
        stored_hash(&old, &email).await,
        rehashed,
        "current hashes stay"
    );
    assert_eq!(get(&old, &created.uuid).await.unwrap().etag, created.etag);
}

async fn passwords_are_hashed_with_owasp_parameters_by_default(backend: Backend) {
    let defaults = ServeArgs::defaults();
    let app = spawn_app_with(backend, |s| {
        s.argon2_memory_kib = defaults.argon2_memory_kib;
        s.argon2_iterations = defaults.argon2_iterations;
        s.argon2_parallelism = defaults.argon2_parallelism;
    })
    .await;
    let email = unique_email("owasp");
    create(&app, &email, GOOD_PASSWORD).await;
    let hash = stored_hash(&app, &email).await;
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    sign_in(app.users.clone(), &email, GOOD_PASSWORD)
        .await
        .expect("sign in");
    assert_eq!(stored_hash(&app, &email).await, hash, "current: no re-hash");
}

async fn a_saturated_hashing_pool_answers_resource_exhausted(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.hash_workers = Some(1);
        s.hash_queue = 1;
        s.argon2_memory_kib = 32 * 1024;
        s.argon2_iterations = 3;
    })
    .await;
    let email = unique_email("busy");
    let user = create(&app, &email, GOOD_PASSWORD).await;
    let creates = (0..10).map(|n| {
        let mut users = app.users.clone();
        async move {
            users
                .create_user(create_request(
                    new_user(&unique_email(&format!("burst{n}"))),
                    GOOD_PASSWORD,
                    "",
                ))
                .await
                .map(|_| ())
        }
    });
    let sign_ins = (0..10).map(|_| {
        let users = app.users.clone();
        let email = email.clone();
        async move { sign_in(users, &email, GOOD_PASSWORD).await.map(|_| ()) }
    });
    let (creates, sign_ins) = futures::join!(join_all(creates), join_all(sign_ins));
    let mut exhausted = 0;
    let mut ok = 0;
    for result in creates.iter().chain(&sign_ins) {
        match result {
            Ok(()) => ok += 1,
            Err(status) if status.code() == Code::ResourceExhausted => {
                exhausted += 1;
                assert!(
                    status.get_details_retry_info().is_some(),
                    "says when to retry"
                );
            }
            Err(status) => {
                assert_not_internal(status);
                assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
            }
        }
    }
    assert!(exhausted > 0, "a queue of one cannot take twenty");
    assert!(ok > 0, "the pool still works");
    // The pool drains and serves again.
    assert_eq!(get(&app, &user.uuid).await.unwrap().uuid, user.uuid);
    create(&app, &unique_email("after"), GOOD_PASSWORD).await;
}

async fn an_overloaded_hashing_pool_locks_no_one_out(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.lockout_threshold = 3;
        s.hash_workers = Some(1);
        s.hash_queue = 1;
        // About 200 ms a job: the pool stays full long enough to turn the sign-ins away.
        s.argon2_memory_kib = 64 * 1024;
        s.argon2_iterations = 3;
    })
    .await;
    let email = unique_email("overload");
    create(&app, &email, GOOD_PASSWORD).await;
    let mut saturated = false;
    for pause in [50, 30, 80, 50, 100] {
        // Two slow jobs fill the pool (one running, one queued)...
        let blockers: Vec<_> = (0..2)
            .map(|_| {
                tokio::spawn(sign_in(
                    app.users.clone(),
                    &unique_email("blocker"),
                    WRONG_PASSWORD,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(pause)).await;
        // ...so these sign-ins are turned away before any password is checked.
        let results =
            join_all((0..8).map(|_| sign_in(app.users.clone(), &email, GOOD_PASSWORD))).await;
        for blocker in blockers {
            let _ = blocker.await;
        }
        saturated = results
            .iter()
            .all(|r| matches!(r, Err(status) if status.code() == Code::ResourceExhausted));
        if saturated {
            break;
        }
    }
    assert!(saturated, "could not fill the hashing pool");
    sign_in(app.users.clone(), &email, GOOD_PASSWORD)
        .await
        .expect("refused-for-load attempts are not failures");
}

crate::on_both_backends!(
    wrong_current_passwords_share_the_sign_in_lockout,
    create_user_enforces_the_password_policy,
    a_user_without_a_password_cannot_sign_in_until_one_is_set,
    set_password_enforces_the_policy_and_replaces_the_old_password,
    change_password_needs_the_right_current_password,
    signing_in_returns_the_user_with_last_login_time_and_memberships,
    every_sign_in_failure_gets_the_same_answer,
    sign_in_failures_take_about_as_long_as_a_wrong_password,
    ten_failures_lock_the_email_even_for_the_right_password,
    a_lock_expires_after_its_duration,
    failures_outside_the_window_do_not_count,
    forty_parallel_wrong_guesses_lock_the_email,
    parallel_guesses_are_each_counted_exactly_once,
    the_right_password_sent_while_parallel_guesses_are_checked_is_refused,
    two_instances_sharing_a_database_share_the_failure_count,
    a_hash_made_with_other_parameters_is_rehashed_at_the_next_sign_in,
    passwords_are_hashed_with_owasp_parameters_by_default,
    a_saturated_hashing_pool_answers_resource_exhausted,
    an_overloaded_hashing_pool_locks_no_one_out,
);

#[test]
fn the_defaults_bound_hashing_to_the_cores_lock_after_ten_in_15_minutes_and_keep_request_ids_a_day()
{
    let defaults = ServeArgs::defaults();
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(defaults.hash_workers(), cores);
    let throttle = defaults.throttle().expect("the defaults are valid");
    assert_eq!(throttle.threshold, 10);
    assert_eq!(throttle.window, Duration::from_secs(15 * 60));
    assert_eq!(throttle.lock, Duration::from_secs(15 * 60));
    assert!(defaults.request_id_retention() >= Duration::from_secs(24 * 3600));
    let mut short = ServeArgs::defaults();
    short.request_id_retention_hours = 1;
    assert_eq!(
        short.request_id_retention(),
        Duration::from_secs(24 * 3600),
        "never kept less than a day"
    );
}
