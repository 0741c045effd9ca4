//! The event log (SPEC section 8): every change writes one event in its transaction,
//! sequences are gap-free, and `StreamEvents` replays from a sequence then follows live,
//! so a consumer that reconnects with its last sequence misses nothing and sees nothing
//! twice.

use std::time::{Duration, Instant};

use prost::Message as _;
use tenancy::app::api_keys::issue_key;
use tenancy_client::pb::{self, StreamEventsResponse};
use tonic::{Code, Streaming};

use super::{create_request, create_user, create_user_with};
use crate::helpers::{
    Backend, TestApp, error_reason, spawn_app, spawn_app_on, spawn_app_with, test_serve_args,
    unique_email, violated_fields,
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
    app.log_after(after, 10_000)
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
    // A consumer resumes from a sequence it received: on PostgreSQL the writes are
    // numbered a few milliseconds after they return.
    app.sequenced().await;

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
    // Resumed from a sequence already numbered, as a consumer's would be.
    app.sequenced().await;
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
            newest = Some(app.log_bounds().await.unwrap().1);
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

    // A write that fails *as* its event is written, after its row and the log's
    // counter changed: a trigger refuses the event row. A counter or a user changed
    // outside the create's transaction would survive this (a gap, or a user without
    // an event).
    let db = Database::connect(&app.database.url).await.expect("connect");
    let refuse = match db.get_database_backend() {
        DbBackend::Postgres => vec![
            "CREATE FUNCTION refuse_events() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            // A write's transaction inserts its events into `pending_events`, which
            // the sequencer numbers into `events` after the commit.
            "CREATE TRIGGER refuse_events BEFORE INSERT ON pending_events \
             FOR EACH ROW EXECUTE FUNCTION refuse_events()",
        ],
        _ => vec![
            "CREATE TRIGGER refuse_events BEFORE INSERT ON events \
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
        .expect_err("the event cannot be recorded");
    // SQLite reports a trigger's refusal like the `ON DELETE RESTRICT` keys it
    // enforces with triggers of its own.
    assert!(
        matches!(failed.code(), Code::Internal | Code::FailedPrecondition),
        "{failed:?}"
    );
    let drop = match db.get_database_backend() {
        DbBackend::Postgres => "DROP TRIGGER refuse_events ON pending_events",
        _ => "DROP TRIGGER refuse_events",
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
    let events = app.log_after(0, 100).await.unwrap();
    let summary: Vec<(i64, &str)> = events
        .iter()
        .map(|e| (e.sequence, e.kind.as_str()))
        .collect();
    assert_eq!(summary, vec![(1, "user.created"), (2, "user.created")]);
    assert_eq!(events[0].resource_id.uuid().to_string(), first.uuid);
    assert_eq!(events[1].resource_id.uuid().to_string(), second.uuid);
    assert_eq!(app.log_bounds().await.unwrap(), (0, 2));
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
    app.sequenced().await;

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

/// Prunes every event written so far, as retention would once they are old enough.
async fn prune_all_so_far(app: &TestApp) -> u64 {
    app.sequenced().await;
    // Event times are in microseconds: a cutoff taken after a write is later than it.
    tokio::time::sleep(Duration::from_millis(2)).await;
    app.store.prune_events(Duration::ZERO).await.expect("prune")
}

async fn after_pruning_zero_starts_at_the_oldest_kept_event_and_older_resumes_are_out_of_range(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    for i in 0..3 {
        create_user(&app, &unique_email(&format!("old{i}"))).await;
    }
    let pruned = prune_all_so_far(&app).await;
    let kept = [
        create_user(&app, &unique_email("kept4")).await,
        create_user(&app, &unique_email("kept5")).await,
    ];

    let mut from_zero = open_stream(&app, 0).await;
    let from_zero_events = [
        next_event(&mut from_zero).await,
        next_event(&mut from_zero).await,
    ];
    let from_two = stream_error(&app, 2).await;
    let from_one = stream_error(&app, 1).await;
    let mut from_three = open_stream(&app, 3).await;
    let from_three_first = next_event(&mut from_three).await;
    let later = create_user(&app, &unique_email("later")).await;
    let from_zero_live = next_event(&mut from_zero).await;

    assert_eq!(pruned, 3);
    let sequences: Vec<i64> = from_zero_events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, vec![4, 5], "0 starts at the oldest kept event");
    assert_eq!(user_of(&from_zero_events[0]).uuid, kept[0].uuid);
    assert_eq!(user_of(&from_zero_events[1]).uuid, kept[1].uuid);
    assert_eq!(from_zero_live.sequence, 6, "then follows live");
    assert_eq!(user_of(&from_zero_live).uuid, later.uuid);
    assert_eq!(from_two.code(), Code::OutOfRange, "{from_two:?}");
    assert_eq!(from_one.code(), Code::OutOfRange, "{from_one:?}");
    assert_eq!(
        from_three_first.sequence, 4,
        "resuming at the pruned edge works"
    );
}

async fn zero_works_when_every_event_was_pruned(backend: Backend) {
    let app = spawn_app(backend).await;
    for i in 0..2 {
        create_user(&app, &unique_email(&format!("gone{i}"))).await;
    }
    let pruned = prune_all_so_far(&app).await;

    let mut from_zero = open_stream(&app, 0).await;
    let mut from_newest = open_stream(&app, 2).await;
    let beyond = stream_error(&app, 3).await;
    let next = create_user(&app, &unique_email("next")).await;

    assert_eq!(pruned, 2);
    let first = next_event(&mut from_zero).await;
    assert_eq!(first.sequence, 3, "sequences continue after pruning");
    assert_eq!(user_of(&first).uuid, next.uuid);
    assert_eq!(next_event(&mut from_newest).await.sequence, 3);
    assert_eq!(beyond.code(), Code::OutOfRange, "{beyond:?}");
}

/// The next message of a stream that should end: its status, or `None` if it ended OK.
async fn stream_end(
    stream: &mut Streaming<StreamEventsResponse>,
) -> Result<Option<i64>, tonic::Status> {
    match tokio::time::timeout(PATIENCE, stream.message()).await {
        Ok(Ok(Some(message))) => Ok(Some(message.event.expect("an event").sequence)),
        Ok(Ok(None)) => Ok(None),
        Ok(Err(status)) => Err(status),
        Err(_) => panic!("the stream neither sent nor ended within {PATIENCE:?}"),
    }
}

async fn an_open_stream_that_pruning_overtakes_ends_out_of_range(backend: Backend) {
    // A polls rarely, so it learns of B's events only when its own next write wakes
    // its feed, and by then they are pruned: the stream must notice the jump.
    // On PostgreSQL a third instance, started first, holds the sequencer: A's feed is
    // then woken only by its own writes (and looks often only for a second after them).
    let sequencer = spawn_app(backend).await;
    let mut rare = test_serve_args();
    rare.event_poll_interval_ms = 600_000;
    let a = spawn_app_on(sequencer.database.clone(), rare).await;
    let b = spawn_app_on(a.database.clone(), test_serve_args()).await;
    create_user(&a, &unique_email("seen1")).await;
    create_user(&a, &unique_email("seen2")).await;
    let mut stream = open_stream(&a, 0).await;
    let seen = [next_event(&mut stream).await, next_event(&mut stream).await];
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    create_user(&b, &unique_email("unseen3")).await;
    create_user(&b, &unique_email("unseen4")).await;

    let pruned = prune_all_so_far(&a).await;
    let fifth = create_user(&a, &unique_email("after5")).await;
    let ended = stream_end(&mut stream).await;
    let resumed = stream_error(&a, 2).await;
    let mut restarted = open_stream(&a, 0).await;
    let restart_first = next_event(&mut restarted).await;

    assert_eq!(
        seen.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(pruned, 4);
    let status = ended.expect_err("the stream ends with an error, not with event 5");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("3 to 4"), "{status:?}");
    assert_eq!(resumed.code(), Code::OutOfRange, "{resumed:?}");
    assert_eq!(
        restart_first.sequence, 5,
        "a resynchronised consumer starts from 0"
    );
    assert_eq!(user_of(&restart_first).uuid, fifth.uuid);
}

async fn get_event_log(app: &TestApp) -> pb::EventLog {
    app.sequenced().await;
    super::event_log_through(&app.events).await
}

fn bounds(log: &pb::EventLog) -> (i64, i64) {
    (log.oldest_sequence, log.latest_sequence)
}

async fn get_event_log_reports_the_kept_range_and_the_retention(backend: Backend) {
    let app = spawn_app_with(backend, |serve| serve.event_retention_days = 7).await;
    let empty = get_event_log(&app).await;
    for i in 0..3 {
        create_user(&app, &unique_email(&format!("log{i}"))).await;
    }
    let three = get_event_log(&app).await;
    prune_all_so_far(&app).await;
    let all_pruned = get_event_log(&app).await;
    create_user(&app, &unique_email("log3")).await;
    create_user(&app, &unique_email("log4")).await;
    let two_kept = get_event_log(&app).await;
    // A consumer that wants only new changes starts after the head.
    let mut only_new = open_stream(&app, two_kept.latest_sequence).await;
    let new = create_user(&app, &unique_email("new")).await;
    let first_new = next_event(&mut only_new).await;

    assert_eq!(
        bounds(&empty),
        (1, 0),
        "a new log: nothing kept, nothing written"
    );
    assert_eq!(empty.retention_days, 7);
    assert_eq!(bounds(&three), (1, 3));
    assert_eq!(
        bounds(&all_pruned),
        (4, 3),
        "empty again: oldest is the next sequence"
    );
    assert_eq!(bounds(&two_kept), (4, 5));
    assert_eq!(two_kept.retention_days, 7);
    assert_eq!(first_new.sequence, 6);
    assert_eq!(user_of(&first_new).uuid, new.uuid);
}

async fn get_event_log_needs_the_events_read_scope(backend: Backend) {
    let app = spawn_app(backend).await;
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
        .get_event_log(pb::GetEventLogRequest {})
        .await
        .unwrap_err();
    let anonymous = app
        .events_with_key(None)
        .get_event_log(pb::GetEventLogRequest {})
        .await
        .unwrap_err();
    let allowed = app
        .events_with_key(Some(&consumer))
        .get_event_log(pb::GetEventLogRequest {})
        .await;

    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    assert!(allowed.is_ok(), "{allowed:?}");
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

    let events = a.log_after(0, 10_000).await.unwrap();
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
    after_pruning_zero_starts_at_the_oldest_kept_event_and_older_resumes_are_out_of_range,
    zero_works_when_every_event_was_pruned,
    an_open_stream_that_pruning_overtakes_ends_out_of_range,
    get_event_log_reports_the_kept_range_and_the_retention,
    get_event_log_needs_the_events_read_scope,
    streaming_needs_the_events_read_scope,
    two_instances_on_one_database_share_one_gap_free_log,
);
