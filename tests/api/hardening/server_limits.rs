//! Server-wide bounds: a request timeout that ends slow unary RPCs with
//! DEADLINE_EXCEEDED but never an open stream, a limit on streams per HTTP/2
//! connection, and RPCs past the in-flight limit shed with UNAVAILABLE.

use std::time::{Duration, Instant};

use tenancy::hashing::HashingGate;
use tenancy_client::pb;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::{
    helpers::{Backend, GOOD_PASSWORD, TestApp, error_reason, spawn_app_with, unique_email},
    users::{create, create_request, new_user},
};

/// A CreateUser with a password: it waits for a hashing worker.
async fn create_with_password(app: &TestApp, email: &str) -> Result<pb::User, Status> {
    app.users
        .clone()
        .create_user(create_request(new_user(email), GOOD_PASSWORD, ""))
        .await
        .map(|r| r.into_inner().user.expect("a user"))
}

async fn get_nobody(app: &TestApp) -> Result<pb::GetUserResponse, Status> {
    app.users
        .clone()
        .get_user(pb::GetUserRequest {
            lookup: Some(pb::get_user_request::Lookup::Email(unique_email("nobody"))),
        })
        .await
        .map(|r| r.into_inner())
}

async fn a_unary_rpc_past_the_request_timeout_ends_with_deadline_exceeded(backend: Backend) {
    let gate = HashingGate::closed();
    let app = spawn_app_with(backend, |s| {
        s.request_timeout = 1;
        s.hash_workers = Some(1);
        s.hashing_gate = Some(gate.clone());
    })
    .await;
    let started = Instant::now();
    let held = tokio::time::timeout(
        Duration::from_secs(20),
        create_with_password(&app, &unique_email("held")),
    )
    .await;
    let took = started.elapsed();
    gate.open();
    let after = get_nobody(&app).await;

    let status = held
        .expect("the server answered, the client did not give up")
        .expect_err("held past the timeout");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("request timeout"),
        "a clear message: {status:?}"
    );
    assert_eq!(error_reason(&status).as_deref(), Some("REQUEST_TIMEOUT"));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "answered after {took:?}"
    );
    assert_eq!(
        after.unwrap_err().code(),
        Code::NotFound,
        "the server goes on"
    );
}

async fn an_event_stream_outlives_the_request_timeout(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.request_timeout = 1).await;
    let mut stream = app
        .events
        .clone()
        .stream_events(pb::StreamEventsRequest { after_sequence: 0 })
        .await
        .expect("stream")
        .into_inner();
    // Twice the timeout, with nothing to send meanwhile.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let email = unique_email("late");
    create(&app, &email, "").await;
    let next = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    let event = message.event.expect("an event");
                    if format!("{event:?}").contains(&email) {
                        return Ok(event.sequence);
                    }
                }
                other => return Err(format!("{other:?}")),
            }
        }
    })
    .await;

    let sequence = next
        .expect("the event arrived")
        .unwrap_or_else(|e| panic!("the stream ended at the request timeout: {e}"));
    assert!(sequence > 0);
}

async fn one_connection_opens_no_more_streams_than_allowed(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_concurrent_streams = 2).await;
    // One channel is one HTTP/2 connection.
    let open = || async {
        app.events
            .clone()
            .stream_events(pb::StreamEventsRequest { after_sequence: 0 })
            .await
            .expect("stream")
            .into_inner()
    };
    let first = open().await;
    let _second = open().await;
    let third = tokio::spawn({
        let mut users = app.users.clone();
        async move {
            users
                .get_user(pb::GetUserRequest {
                    lookup: Some(pb::get_user_request::Lookup::Email(unique_email("nobody"))),
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let waited = !third.is_finished();
    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(10), third).await;

    assert!(waited, "a third stream opened beside two on one connection");
    let third = third.expect("it ran once a stream ended").expect("task");
    assert_eq!(third.unwrap_err().code(), Code::NotFound);
}

async fn rpcs_past_the_in_flight_limit_are_shed_but_health_answers(backend: Backend) {
    let gate = HashingGate::closed();
    let app = spawn_app_with(backend, |s| {
        s.max_in_flight = 1;
        s.hash_workers = Some(1);
        s.hashing_gate = Some(gate.clone());
    })
    .await;
    let spawn_held = || {
        let users = app.users.clone();
        tokio::spawn(async move {
            users
                .clone()
                .create_user(create_request(
                    new_user(&unique_email("held")),
                    GOOD_PASSWORD,
                    "",
                ))
                .await
        })
    };
    let mut held = spawn_held();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Once the held RPC is in flight, the next one is shed.
    let started = Instant::now();
    let shed = loop {
        assert!(started.elapsed() < Duration::from_secs(10), "never shed");
        if held.is_finished() {
            // A probe arrived first, so the held call was the one shed: start it again.
            held = spawn_held();
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        match get_nobody(&app).await {
            Err(status) if status.code() == Code::Unavailable => break status,
            other => {
                assert_eq!(other.unwrap_err().code(), Code::NotFound);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let health = app.health_of("").await;
    gate.open();
    let created = tokio::time::timeout(Duration::from_secs(10), held).await;
    let after = get_nobody(&app).await;

    assert!(shed.message().contains("overloaded"), "{shed:?}");
    assert_eq!(error_reason(&shed).as_deref(), Some("SERVER_OVERLOADED"));
    assert_eq!(health.expect("health answers"), ServingStatus::Serving);
    assert!(created.expect("finished").expect("task").is_ok());
    assert_eq!(after.unwrap_err().code(), Code::NotFound);
}

crate::on_both_backends!(
    a_unary_rpc_past_the_request_timeout_ends_with_deadline_exceeded,
    an_event_stream_outlives_the_request_timeout,
    one_connection_opens_no_more_streams_than_allowed,
    rpcs_past_the_in_flight_limit_are_shed_but_health_answers,
);
