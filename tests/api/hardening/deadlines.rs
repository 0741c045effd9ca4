//! No write after its caller was told it failed (issue 26, SPEC §8): a call answered
//! DEADLINE_EXCEEDED is never committed later, whether the server's request timeout or
//! the caller's own `grpc-timeout` ran out, on the batched and the transactional paths;
//! one stuck row delays only its own call; a full write queue answers UNAVAILABLE.
//!
//! The fault: a side session changes a user's email to `stuck` and holds the
//! transaction open, so the unique index entry for `stuck` stays taken and every write
//! of that email waits on it.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait as _, Database, DatabaseTransaction, TransactionTrait as _};
use tenancy_client::pb;
use tonic::{Code, Request};

use super::count;
use crate::helpers::{Backend, TestApp, error_reason, spawn_app_on, test_serve_args, unique_email};

fn create_request(email: &str, request_id: &str) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        user: Some(pb::User {
            email: email.into(),
            first_name: "Ana".into(),
            last_name: "Silva".into(),
            ..Default::default()
        }),
        password: String::new(),
        request_id: request_id.into(),
    }
}

/// Holds the unique index entry of `email` in an open transaction of a side session.
async fn hold_email(app: &TestApp, email: &str) -> DatabaseTransaction {
    let holder = app
        .users
        .clone()
        .create_user(create_request(&unique_email("holder"), ""))
        .await
        .expect("create the holder")
        .into_inner()
        .user
        .expect("a user");
    let db = Database::connect(&app.database.url).await.expect("connect");
    let side = db.begin().await.expect("begin");
    side.execute_unprepared(&format!(
        "UPDATE users SET email = '{email}' WHERE id = '{}'",
        holder.uuid
    ))
    .await
    .expect("hold the email");
    side
}

async fn users_with_email(app: &TestApp, email: &str) -> i64 {
    count(
        app,
        &format!("SELECT count(*) FROM users WHERE email = '{email}'"),
    )
    .await
}

async fn a_stuck_email_delays_only_its_own_calls_and_a_timed_out_call_is_never_written(
    backend: Backend,
) {
    let Backend::Postgres(_) = backend else {
        return; // The fault is a row lock PostgreSQL holds for another session.
    };
    let database = backend.fresh_database().await;
    let mut serve = test_serve_args();
    serve.request_timeout = 1;
    let app = spawn_app_on(database, serve).await;
    let stuck = unique_email("stuck");
    let side = hold_email(&app, &stuck).await;

    // The stuck email through the batch (no request id), the transaction (a request id)
    // and with the caller's own 300 ms deadline; twenty other emails beside them.
    let mut calls = Vec::new();
    let started = Instant::now();
    for (n, request_id) in ["", &uuid::Uuid::new_v4().to_string(), ""]
        .into_iter()
        .enumerate()
    {
        let mut users = app.users.clone();
        let mut request = Request::new(create_request(&stuck, request_id));
        if n == 2 {
            request.set_timeout(Duration::from_millis(300));
        }
        calls.push(tokio::spawn(async move {
            (
                users.create_user(request).await.map(|_| ()),
                started.elapsed(),
            )
        }));
    }
    let others: Vec<String> = (0..20).map(|i| unique_email(&format!("free{i}"))).collect();
    let mut other_calls = Vec::new();
    for email in &others {
        let mut users = app.users.clone();
        let request = create_request(email, "");
        other_calls.push(tokio::spawn(async move {
            (
                users.create_user(request).await.map(|_| ()),
                started.elapsed(),
            )
        }));
    }
    let mut stuck_answers = Vec::new();
    for call in calls {
        stuck_answers.push(call.await.expect("call"));
    }
    let mut created = HashSet::new();
    let mut timed_out = HashSet::new();
    let mut slowest_other = Duration::ZERO;
    for (email, call) in others.iter().zip(other_calls) {
        let (answer, took) = call.await.expect("call");
        slowest_other = slowest_other.max(took);
        match answer {
            Ok(()) => created.insert(email.clone()),
            Err(status) if status.code() == Code::DeadlineExceeded => {
                timed_out.insert(email.clone())
            }
            Err(status) => panic!("{email}: {status:?}"),
        };
    }
    // The held email is released; anything still queued or running would write now.
    side.rollback().await.expect("release the email");
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    for (answer, took) in &stuck_answers {
        let status = answer
            .as_ref()
            .expect_err("the stuck email cannot be written");
        // tonic's client reports its own deadline as CANCELLED when it fires first.
        assert!(
            matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{status:?}"
        );
        assert!(
            *took < Duration::from_millis(2_500),
            "answered after {took:?}"
        );
    }
    assert_eq!(
        users_with_email(&app, &stuck).await,
        0,
        "a call answered DEADLINE_EXCEEDED was written after all"
    );
    for email in &created {
        assert_eq!(
            users_with_email(&app, email).await,
            1,
            "{email} answered OK"
        );
    }
    for email in &timed_out {
        assert_eq!(
            users_with_email(&app, email).await,
            0,
            "{email} answered DEADLINE_EXCEEDED was written after all"
        );
    }
    assert_eq!(
        created.len(),
        others.len(),
        "the other emails wait for nobody: {} timed out",
        timed_out.len()
    );
    assert!(
        slowest_other < Duration::from_millis(900),
        "the other emails were held up for {slowest_other:?}"
    );
    app.sequenced().await;
    assert_eq!(
        count(
            &app,
            "SELECT (SELECT count(*) FROM users) - (SELECT count(*) FROM events WHERE kind = 'user.created')"
        )
        .await,
        0,
        "one user.created per user"
    );
}

async fn a_full_write_queue_answers_unavailable_and_writes_nothing(backend: Backend) {
    let Backend::Postgres(_) = backend else {
        return; // The write queue batches PostgreSQL's CreateUser.
    };
    let mut database = backend.fresh_database().await;
    database.limits.write_queue = 4;
    let mut serve = test_serve_args();
    serve.request_timeout = 2;
    let app = spawn_app_on(database, serve).await;
    let stuck = unique_email("stuck");
    let side = hold_email(&app, &stuck).await;
    // The flusher is busy with the stuck email while forty calls arrive.
    let held = tokio::spawn({
        let mut users = app.users.clone();
        let request = create_request(&stuck, "");
        async move { users.create_user(request).await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let emails: Vec<String> = (0..40).map(|i| unique_email(&format!("q{i}"))).collect();
    let calls: Vec<_> = emails
        .iter()
        .map(|email| {
            let mut users = app.users.clone();
            let request = create_request(email, "");
            tokio::spawn(async move { users.create_user(request).await.map(|_| ()) })
        })
        .collect();
    let mut refused = Vec::new();
    for (email, call) in emails.iter().zip(calls) {
        match call.await.expect("call") {
            Ok(()) => assert_eq!(users_with_email(&app, email).await, 1),
            Err(status) if status.code() == Code::Unavailable => {
                assert_eq!(error_reason(&status).as_deref(), Some("WRITE_QUEUE_FULL"));
                use tonic_types::StatusExt as _;
                assert!(
                    status.get_details_retry_info().is_some(),
                    "a RetryInfo: {status:?}"
                );
                refused.push(email.clone());
            }
            Err(status) => panic!("{email}: {status:?}"),
        }
    }
    side.rollback().await.expect("release");
    let _ = held.await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !refused.is_empty(),
        "forty calls behind a stuck statement with room for four: some must be refused"
    );
    for email in &refused {
        assert_eq!(
            users_with_email(&app, email).await,
            0,
            "{email} was refused"
        );
    }
}

crate::on_both_backends!(
    a_stuck_email_delays_only_its_own_calls_and_a_timed_out_call_is_never_written,
    a_full_write_queue_answers_unavailable_and_writes_nothing,
);
