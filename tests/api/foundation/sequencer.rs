//! The event sequencer (issue 17): on PostgreSQL, writes insert their events without a
//! sequence and one sequencer across the instances numbers them after commit. These
//! check the consumer's contract under that: gap-free, in commit order, nothing
//! skipped because its transaction committed late, one sequencer at a time.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait as _, Database, DbBackend, Statement, TransactionTrait as _};
use tenancy::domain::event::EventResource;
use tenancy_client::pb;
use tokio::sync::mpsc;

use super::create_user_with;
use crate::helpers::{
    Backend, TestApp, assert_each_write_once, sequencer_holder, spawn_app, spawn_app_on,
    test_serve_args, unique_email,
};

fn email_of(resource: &EventResource) -> String {
    match resource {
        EventResource::User(user) => user.email.as_str().to_string(),
        other => panic!("a user event, got {other:?}"),
    }
}

/// Reads a stream from `after` into a channel of `(sequence, type, user id)`.
fn collect_stream(app: &TestApp, after: i64) -> mpsc::UnboundedReceiver<(i64, String, String)> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let mut events = app.events.clone();
    tokio::spawn(async move {
        let mut stream = events
            .stream_events(pb::StreamEventsRequest {
                after_sequence: after,
            })
            .await
            .expect("stream")
            .into_inner();
        while let Ok(Some(message)) = stream.message().await {
            let event = message.event.expect("an event");
            let user = match &event.resource {
                Some(pb::event::Resource::User(user)) => user.uuid.clone(),
                _ => String::new(),
            };
            if sender.send((event.sequence, event.r#type, user)).is_err() {
                return;
            }
        }
    });
    receiver
}

async fn receive(
    stream: &mut mpsc::UnboundedReceiver<(i64, String, String)>,
    count: usize,
) -> Vec<(i64, String, String)> {
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        match tokio::time::timeout(Duration::from_secs(10), stream.recv()).await {
            Ok(Some(event)) => got.push(event),
            Ok(None) => panic!("the stream ended after {} events", got.len()),
            Err(_) => panic!("only {} of {count} events arrived in 10 s", got.len()),
        }
    }
    got
}

async fn sixteen_writers_over_two_instances_get_every_event_once_gap_free_in_commit_order(
    backend: Backend,
) {
    const PER_WRITER: usize = 25;
    let a = spawn_app(backend).await;
    let b = spawn_app_on(a.database.clone(), test_serve_args()).await;
    let mut on_a = collect_stream(&a, 0);
    let mut on_b = collect_stream(&b, 0);
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let mut users = if w % 2 == 0 {
                a.users.clone()
            } else {
                b.users.clone()
            };
            tokio::spawn(async move {
                let mut created = Vec::with_capacity(PER_WRITER);
                for i in 0..PER_WRITER {
                    let email = unique_email(&format!("seq-w{w}-{i}"));
                    created.push(create_user_with(&mut users, &email).await.uuid);
                }
                created
            })
        })
        .collect();
    let mut by_writer = Vec::new();
    for writer in writers {
        by_writer.push(writer.await.expect("writer"));
    }
    let total = 16 * PER_WRITER;
    let streamed_a = receive(&mut on_a, total).await;
    let streamed_b = receive(&mut on_b, total).await;
    let log = a.log_after(0, 100_000).await.expect("the log");

    let sequences: Vec<i64> = log.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=total as i64).collect::<Vec<_>>(),
        "gap-free"
    );
    let logged: Vec<(i64, String, String)> = log
        .iter()
        .map(|e| (e.sequence, e.kind.clone(), e.resource_id.uuid().to_string()))
        .collect();
    assert_eq!(streamed_a, logged, "a stream on A is the log");
    assert_eq!(streamed_b, logged, "a stream on B is the log");
    let created: HashSet<&String> = by_writer.iter().flatten().collect();
    let mut seen = HashSet::new();
    for (_, kind, user) in &logged {
        assert_eq!(kind, "user.created");
        assert!(created.contains(user), "an event for a user nobody created");
        assert!(seen.insert(user.clone()), "user {user} has two events");
    }
    assert_eq!(seen.len(), total, "one user.created per row");
    // Each writer created its users one after the other, each after the previous one
    // committed: commit order puts their events in that order.
    let position: HashMap<&String, i64> = logged.iter().map(|(s, _, u)| (u, *s)).collect();
    for (w, users) in by_writer.iter().enumerate() {
        let order: Vec<i64> = users.iter().map(|u| position[u]).collect();
        assert!(
            order.windows(2).all(|pair| pair[0] < pair[1]),
            "writer {w}'s events are out of its commit order: {order:?}"
        );
    }
    let names: HashSet<String> = log.iter().map(|e| email_of(&e.resource)).collect();
    assert_eq!(names.len(), total);
}

/// PostgreSQL: a transaction that took its transaction id and wrote its event, then
/// waits 2 s while others commit, is numbered after them (its commit came later),
/// reaches the consumers, and does not hold the others back.
async fn a_transaction_that_commits_late_is_neither_skipped_nor_holds_others_back(
    backend: Backend,
) {
    if matches!(backend, Backend::Sqlite) {
        return; // One writer at a time: no transaction commits around another.
    }
    let app = spawn_app(backend).await;
    let marker = create_user_with(&mut app.users.clone(), &unique_email("late")).await;
    app.sequenced().await;
    let mut stream = collect_stream(&app, 0);
    let first = receive(&mut stream, 1).await;
    assert_eq!(first[0].2, marker.uuid);

    let db = Database::connect(&app.database.url).await.expect("connect");
    let late = db.begin().await.expect("begin");
    late.execute_unprepared("SELECT pg_current_xact_id()")
        .await
        .expect("take a transaction id");
    // A second event for the marker user, written before the others begin.
    late.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO pending_events (kind, resource_id, customer_id, time, payload) \
         SELECT kind, resource_id, customer_id, time, payload FROM events WHERE resource_id = $1",
        [uuid::Uuid::parse_str(&marker.uuid).unwrap().into()],
    ))
    .await
    .expect("the late transaction's event");
    let mut around = Vec::new();
    for i in 0..5 {
        around.push(
            create_user_with(&mut app.users.clone(), &unique_email(&format!("around{i}")))
                .await
                .uuid,
        );
    }
    let before_commit = Instant::now();
    let meanwhile = receive(&mut stream, 5).await;
    let waited_for_others = before_commit.elapsed();
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(waited_for_others)).await;
    late.commit().await.expect("commit late");
    let after = receive(&mut stream, 1).await;
    let log = app.log_after(0, 1000).await.expect("the log");

    assert_eq!(
        meanwhile.iter().map(|e| e.2.clone()).collect::<Vec<_>>(),
        around,
        "the transactions around the late one reach the stream while it is open"
    );
    assert!(
        waited_for_others < Duration::from_secs(1),
        "{waited_for_others:?}"
    );
    assert_eq!(
        after[0].0, 7,
        "the late commit comes after those committed before it"
    );
    assert_eq!(after[0].2, marker.uuid);
    let sequences: Vec<i64> = log.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=7).collect::<Vec<_>>());
}

/// PostgreSQL: the sequencer's connection is cut (its backend terminated, as when its
/// host dies or loses the database) three times while 8 writers write on two
/// instances: another process (or the same one, reconnected) takes over within 2 s,
/// and the log ends gap-free with every write's event once.
async fn the_sequencer_is_replaced_within_two_seconds_without_gap_or_duplicate(backend: Backend) {
    if matches!(backend, Backend::Sqlite) {
        return; // No sequencer: each commit numbers its events.
    }
    let a = spawn_app(backend).await;
    let b = spawn_app_on(a.database.clone(), test_serve_args()).await;
    let db = Database::connect(&a.database.url).await.expect("connect");
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let mut users = if w % 2 == 0 {
                a.users.clone()
            } else {
                b.users.clone()
            };
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut created = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let email = unique_email(&format!("cut-w{w}-{i}"));
                    created.push(create_user_with(&mut users, &email).await.uuid);
                    i += 1;
                }
                created
            })
        })
        .collect();
    let mut takeovers = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let holder = sequencer_holder(&db)
            .await
            .expect("a sequencer holds the lock");
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_terminate_backend($1)",
            [holder.into()],
        ))
        .await
        .expect("terminate the sequencer's backend");
        let cut = Instant::now();
        loop {
            match sequencer_holder(&db).await {
                Some(next) if next != holder => break,
                _ => {}
            }
            assert!(
                cut.elapsed() < Duration::from_secs(2),
                "no sequencer 2 s after the cut"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        takeovers.push(cut.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let mut created = HashSet::new();
    for writer in writers {
        created.extend(writer.await.expect("writer"));
    }
    let log = a.log_after(0, 1_000_000).await.expect("the log");
    eprintln!(
        "sequencer takeovers after {takeovers:?}; {} events",
        log.len()
    );

    let logged = assert_each_write_once(&log, &created);
    assert_eq!(
        logged.len(),
        created.len(),
        "every write's event, and no other"
    );
}

/// PostgreSQL: the instances that are not the sequencer hold no snapshot while they
/// wait for its lock. A statement waiting in `pg_advisory_lock` would keep one for as
/// long as the other instance numbers events, and vacuum could then remove no dead row
/// in the whole database (moved `pending_events`, the counter row's old versions).
async fn an_instance_waiting_to_sequence_holds_back_no_vacuum(backend: Backend) {
    if matches!(backend, Backend::Sqlite) {
        return; // No sequencer.
    }
    let a = spawn_app(backend).await;
    let b = spawn_app_on(a.database.clone(), test_serve_args()).await;
    let db = Database::connect(&a.database.url).await.expect("connect");
    let mut users = a.users.clone();
    for i in 0..5 {
        create_user_with(&mut users, &unique_email(&format!("xmin{i}"))).await;
    }
    let mut sessions_seen = 0;
    for _ in 0..20 {
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT pid, backend_xmin IS NOT NULL AS holds_snapshot, state, query                  FROM pg_stat_activity                  WHERE datname = current_database() AND application_name = 'tenancy-sequencer'",
            ))
            .await
            .expect("pg_stat_activity");
        sessions_seen = sessions_seen.max(rows.len());
        for row in rows {
            let holds: bool = row.try_get("", "holds_snapshot").unwrap();
            let query: String = row.try_get("", "query").unwrap_or_default();
            let state: String = row.try_get("", "state").unwrap_or_default();
            // The sequencer's own batch statement holds one for its few milliseconds.
            let numbering = query.contains("DELETE FROM pending_events")
                || query.contains("VACUUM")
                || query.contains("UPDATE event_log_state");
            assert!(
                !holds || (numbering && state == "active"),
                "a sequencer session holds a snapshot while {state}: {query}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sessions_seen, 2,
        "both instances have their sequencer session"
    );
    let _ = db.close().await;
    drop(b);
}

crate::on_both_backends!(
    sixteen_writers_over_two_instances_get_every_event_once_gap_free_in_commit_order,
    a_transaction_that_commits_late_is_neither_skipped_nor_holds_others_back,
    the_sequencer_is_replaced_within_two_seconds_without_gap_or_duplicate,
    an_instance_waiting_to_sequence_holds_back_no_vacuum,
);
