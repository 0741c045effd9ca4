//! The event log (SPEC section 8): every change writes one event in its transaction,
//! sequences are gap-free, and `StreamEvents` replays from a sequence then follows live,
//! so a consumer that reconnects with its last sequence misses nothing and sees nothing
//! twice.

use std::time::{Duration, Instant};

use prost::Message as _;
use tenancy::{
    app::api_keys::issue_key,
    pb::{self, StreamEventsResponse},
};
use tonic::{Code, Streaming};

use super::{create_request, create_user, create_user_with};
use crate::helpers::{
    Backend, TestApp, error_reason, spawn_app, spawn_app_on, test_serve_args, unique_email,
    violated_fields,
};

/// How long a test waits for an event that should come.
const PATIENCE: Duration = Duration::from_secs(5);

async fn open_stream(app: &TestApp, after_sequence: i64) -> Streaming<StreamEventsResponse> {
    app.events
        .clone()
        .stream_events(pb::StreamEventsRequest { after_sequence })
        .await
        .unwrap_or_else(|status| panic!("stream after {after_sequence}: {status:?}"))
        .into_inner()
}

async fn next_event(stream: &mut Streaming<StreamEventsResponse>) -> pb::Event {
    match tokio::time::timeout(PATIENCE, stream.message()).await {
        Ok(Ok(Some(message))) => message.event.expect("an event"),
        Ok(Ok(None)) => panic!("the stream ended"),
        Ok(Err(status)) => panic!("the stream failed: {status:?}"),
        Err(_) => panic!("no event within {PATIENCE:?}"),
    }
}

fn user_of(event: &pb::Event) -> &pb::User {
    match &event.resource {
        Some(pb::event::Resource::User(user)) => user,
        other => panic!("a user event, got {other:?}"),
    }
}

async fn stored_sequences(app: &TestApp, after: i64) -> Vec<i64> {
    app.store
        .events_after(after, 10_000)
        .await
        .expect("events")
        .iter()
        .map(|e| e.sequence)
        .collect()
}

async fn stream_error(app: &TestApp, after_sequence: i64) -> tonic::Status {
    app.events
        .clone()
        .stream_events(pb::StreamEventsRequest { after_sequence })
        .await
        .err()
        .unwrap_or_else(|| panic!("after_sequence {after_sequence} should be refused"))
}

async fn streaming_from_zero_replays_every_change_in_order_then_follows_live(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut users = app.users.clone();
    let mut created = Vec::new();
    for i in 0..4 {
        let email = unique_email(&format!("replay{i}"));
        let mut request = create_request(&email);
        request.password = crate::helpers::GOOD_PASSWORD.into();
        created.push(
            users
                .create_user(request)
                .await
                .unwrap()
                .into_inner()
                .user
                .unwrap(),
        );
    }

    let mut stream = open_stream(&app, 0).await;
    let mut replayed = Vec::new();
    for _ in 0..4 {
        replayed.push(next_event(&mut stream).await);
    }
    let live_user = create_user(&app, &unique_email("live")).await;
    let live = next_event(&mut stream).await;

    for (i, (event, user)) in replayed.iter().zip(&created).enumerate() {
        assert_eq!(event.sequence, i as i64 + 1);
        assert_eq!(event.r#type, "user.created");
        assert_eq!(event.resource_id, user.uuid);
        assert_eq!(event.customer_id, "", "a user event has no customer");
        assert!(event.time.is_some());
        assert_eq!(
            user_of(event),
            user,
            "the event carries the user as created"
        );
        let wire = event.encode_to_vec();
        assert!(
            !wire.windows(7).any(|w| w == b"$argon2"),
            "no password hash in an event"
        );
    }
    assert_eq!(live.sequence, 5);
    assert_eq!(user_of(&live).uuid, live_user.uuid);
}

async fn resuming_from_n_yields_exactly_the_events_after_n(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut emails = Vec::new();
    for i in 0..6 {
        let email = unique_email(&format!("resume{i}"));
        create_user(&app, &email).await;
        emails.push(email);
    }

    let mut stream = open_stream(&app, 3).await;
    let replayed = [
        next_event(&mut stream).await,
        next_event(&mut stream).await,
        next_event(&mut stream).await,
    ];
    // If the replay held anything more, it would come before this one.
    let seventh = create_user(&app, &unique_email("resume6")).await;
    let next = next_event(&mut stream).await;

    let sequences: Vec<i64> = replayed.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, vec![4, 5, 6]);
    let replayed_emails: Vec<&str> = replayed.iter().map(|e| user_of(e).email.as_str()).collect();
    assert_eq!(
        replayed_emails,
        emails[3..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(next.sequence, 7);
    assert_eq!(user_of(&next).uuid, seventh.uuid);
}

async fn a_consumer_reconnecting_while_writes_continue_misses_nothing_and_sees_nothing_twice(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    for i in 0..3 {
        create_user(&app, &unique_email(&format!("early{i}"))).await;
    }
    let start_after = 2;
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let mut users = app.users.clone();
            tokio::spawn(async move {
                for i in 0..30 {
                    create_user_with(&mut users, &unique_email(&format!("w{w}-{i}"))).await;
                }
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut received = Vec::new();
    let mut cursor = start_after;
    let mut reconnects_during_writes = 0;
    let mut newest: Option<i64> = None;
    loop {
        let writing = writers.iter().any(|w| !w.is_finished());
        if !writing && newest.is_none() {
            newest = Some(app.store.event_bounds().await.unwrap().1);
        }
        if newest == Some(cursor) {
            break;
        }
        assert!(Instant::now() < deadline, "caught up in time");
        // A short session: a few events (or a quiet moment), then reconnect from the
        // last sequence received, as a consumer that restarts would.
        let mut stream = open_stream(&app, cursor).await;
        if writing {
            reconnects_during_writes += 1;
        }
        for _ in 0..4 {
            match tokio::time::timeout(Duration::from_millis(300), stream.message()).await {
                Ok(Ok(Some(message))) => {
                    let sequence = message.event.unwrap().sequence;
                    received.push(sequence);
                    cursor = sequence;
                }
                Ok(other) => panic!("the stream ended or failed: {other:?}"),
                Err(_) => break,
            }
        }
    }
    for writer in writers {
        writer.await.expect("writer");
    }

    let newest = newest.unwrap();
    eprintln!(
        "{} events received over {reconnects_during_writes} reconnects during writes",
        received.len()
    );
    assert_eq!(newest, 63, "3 + 2 × 30 users, one event each");
    let expected: Vec<i64> = (start_after + 1..=newest).collect();
    assert_eq!(received, expected, "every event once, in order");
    assert_eq!(stored_sequences(&app, start_after).await, expected);
    assert!(
        reconnects_during_writes >= 3,
        "the consumer reconnected while writes went on ({reconnects_during_writes} times)"
    );
}

async fn a_change_that_rolls_back_leaves_no_event(backend: Backend) {
    use sea_orm::{ConnectionTrait as _, Database, DbBackend};
    let app = spawn_app(backend).await;
    let first = create_user(&app, &unique_email("first")).await;

    // A uniqueness race rolls back before anything is appended.
    let duplicate = app
        .users
        .clone()
        .create_user(create_request(&first.email.to_uppercase()))
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists, "{duplicate:?}");
    assert_eq!(error_reason(&duplicate).as_deref(), Some("EMAIL_TAKEN"));

    // A write that fails *after* the event was appended: a create with a request id
    // records it after its event, and a trigger refuses that record. An event appended
    // outside the create's transaction would survive this.
    let db = Database::connect(&app.database.url).await.expect("connect");
    let refuse = match db.get_database_backend() {
        DbBackend::Postgres => vec![
            "CREATE FUNCTION refuse_request_ids() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            "CREATE TRIGGER refuse_request_ids BEFORE INSERT ON request_ids \
             FOR EACH ROW EXECUTE FUNCTION refuse_request_ids()",
        ],
        _ => vec![
            "CREATE TRIGGER refuse_request_ids BEFORE INSERT ON request_ids \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        ],
    };
    for sql in refuse {
        db.execute_unprepared(sql)
            .await
            .expect("install the trigger");
    }
    let mut failing = create_request(&unique_email("rolled-back"));
    failing.request_id = uuid::Uuid::new_v4().to_string();
    let failed = app
        .users
        .clone()
        .create_user(failing.clone())
        .await
        .expect_err("the request id cannot be recorded");
    assert_eq!(failed.code(), Code::Internal, "{failed:?}");
    let drop = match db.get_database_backend() {
        DbBackend::Postgres => "DROP TRIGGER refuse_request_ids ON request_ids",
        _ => "DROP TRIGGER refuse_request_ids",
    };
    db.execute_unprepared(drop).await.expect("drop the trigger");
    let _ = db.close().await;
    let lookup = app
        .users
        .clone()
        .get_user(pb::GetUserRequest {
            lookup: Some(pb::get_user_request::Lookup::Email(
                failing.user.as_ref().expect("user").email.clone(),
            )),
        })
        .await
        .expect_err("the user was rolled back with its event");
    assert_eq!(lookup.code(), Code::NotFound);

    let second = create_user(&app, &unique_email("second")).await;
    let events = app.store.events_after(0, 100).await.unwrap();
    let summary: Vec<(i64, &str)> = events
        .iter()
        .map(|e| (e.sequence, e.kind.as_str()))
        .collect();
    assert_eq!(summary, vec![(1, "user.created"), (2, "user.created")]);
    assert_eq!(events[0].resource_id.uuid().to_string(), first.uuid);
    assert_eq!(events[1].resource_id.uuid().to_string(), second.uuid);
    assert_eq!(app.store.event_bounds().await.unwrap(), (0, 2));
}

async fn after_sequence_must_be_within_the_kept_log(backend: Backend) {
    let app = spawn_app(backend).await;
    let on_empty_log_from_zero = app
        .events
        .clone()
        .stream_events(pb::StreamEventsRequest { after_sequence: 0 })
        .await;
    let on_empty_log_from_one = stream_error(&app, 1).await;
    for i in 0..2 {
        create_user(&app, &unique_email(&format!("bounds{i}"))).await;
    }

    let negative = stream_error(&app, -1).await;
    let beyond = stream_error(&app, 3).await;
    let far_beyond = stream_error(&app, i64::MAX).await;
    let newest = app
        .events
        .clone()
        .stream_events(pb::StreamEventsRequest { after_sequence: 2 })
        .await;

    assert!(
        on_empty_log_from_zero.is_ok(),
        "{:?}",
        on_empty_log_from_zero.err()
    );
    assert_eq!(on_empty_log_from_one.code(), Code::OutOfRange);
    assert_eq!(negative.code(), Code::InvalidArgument, "{negative:?}");
    assert_eq!(violated_fields(&negative), vec!["after_sequence"]);
    assert_eq!(beyond.code(), Code::OutOfRange, "{beyond:?}");
    assert_eq!(far_beyond.code(), Code::OutOfRange, "{far_beyond:?}");
    assert!(
        newest.is_ok(),
        "resuming from the newest: {:?}",
        newest.err()
    );
}

async fn resuming_before_the_oldest_kept_event_is_out_of_range(backend: Backend) {
    let app = spawn_app(backend).await;
    for i in 0..3 {
        create_user(&app, &unique_email(&format!("old{i}"))).await;
    }

    let pruned = app
        .store
        .prune_events(chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .expect("prune");
    let from_zero = stream_error(&app, 0).await;
    let from_two = stream_error(&app, 2).await;
    let mut from_newest = open_stream(&app, 3).await;
    let later = create_user(&app, &unique_email("later")).await;
    let next = next_event(&mut from_newest).await;

    assert_eq!(pruned, 3);
    assert_eq!(from_zero.code(), Code::OutOfRange, "{from_zero:?}");
    assert_eq!(from_two.code(), Code::OutOfRange, "{from_two:?}");
    assert_eq!(next.sequence, 4, "sequences continue after pruning");
    assert_eq!(user_of(&next).uuid, later.uuid);
}

async fn streaming_needs_the_events_read_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    create_user(&app, &unique_email("scoped")).await;
    let reader = issue_key(&app.store, "reader", &["users.read".into()])
        .await
        .unwrap()
        .secret;
    let consumer = issue_key(&app.store, "consumer", &["events.read".into()])
        .await
        .unwrap()
        .secret;

    let refused = app
        .events_with_key(Some(&reader))
        .stream_events(pb::StreamEventsRequest { after_sequence: 0 })
        .await
        .unwrap_err();
    let mut allowed = app
        .events_with_key(Some(&consumer))
        .stream_events(pb::StreamEventsRequest { after_sequence: 0 })
        .await
        .expect("events.read may stream")
        .into_inner();

    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(next_event(&mut allowed).await.sequence, 1);
}

async fn two_instances_on_one_database_share_one_gap_free_log(backend: Backend) {
    let a = spawn_app(backend).await;
    let b = spawn_app_on(a.database.clone(), test_serve_args()).await;
    let writers: Vec<_> = [&a, &b]
        .into_iter()
        .enumerate()
        .flat_map(|(n, app)| {
            (0..2).map(move |w| {
                let mut users = app.users.clone();
                tokio::spawn(async move {
                    let mut emails = Vec::new();
                    for i in 0..10 {
                        let email = unique_email(&format!("i{n}w{w}n{i}"));
                        create_user_with(&mut users, &email).await;
                        emails.push(email);
                    }
                    emails
                })
            })
        })
        .collect();
    let mut emails = Vec::new();
    for writer in writers {
        emails.extend(writer.await.expect("writer"));
    }

    let events = a.store.events_after(0, 10_000).await.unwrap();
    let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=40).collect::<Vec<_>>(),
        "gap-free across instances"
    );
    let mut logged: Vec<String> = events
        .iter()
        .map(|e| match &e.resource {
            tenancy::domain::event::EventResource::User(user) => user.email.as_str().to_string(),
            other => panic!("a user event, got {other:?}"),
        })
        .collect();
    logged.sort();
    emails.sort();
    assert_eq!(
        logged, emails,
        "one event per change, on whichever instance"
    );

    // A consumer on A sees B's writes live (A learns of them by polling).
    let mut on_a = open_stream(&a, 40).await;
    let started = Instant::now();
    let from_b = create_user(&b, &unique_email("from-b")).await;
    let seen = next_event(&mut on_a).await;
    let latency = started.elapsed();
    eprintln!("an event written on instance B reached a stream on A after {latency:?}");
    assert_eq!(seen.sequence, 41);
    assert_eq!(user_of(&seen).uuid, from_b.uuid);
    assert!(
        latency < Duration::from_secs(3),
        "live within ~2 s: {latency:?}"
    );
}

crate::on_both_backends!(
    streaming_from_zero_replays_every_change_in_order_then_follows_live,
    resuming_from_n_yields_exactly_the_events_after_n,
    a_consumer_reconnecting_while_writes_continue_misses_nothing_and_sees_nothing_twice,
    a_change_that_rolls_back_leaves_no_event,
    after_sequence_must_be_within_the_kept_log,
    resuming_before_the_oldest_kept_event_is_out_of_range,
    streaming_needs_the_events_read_scope,
    two_instances_on_one_database_share_one_gap_free_log,
);
