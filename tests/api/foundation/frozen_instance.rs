//! A frozen instance (issue 26, SPEC §8): "one stalled, frozen or partitioned instance
//! never stops the others from writing or from numbering events for more than 5 s".
//! The instance holding the sequencer's lock is a `tenancy serve` child process,
//! frozen with SIGSTOP under writes on both instances, then resumed. And an instance
//! frozen inside a write transaction, holding a row lock the other instance's write
//! needs.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;
use sea_orm::{ConnectionTrait as _, Database, DatabaseConnection, DbBackend, Statement};

use super::create_request;
use crate::{
    accounts,
    customers::{self, personal},
    helpers::{
        Backend, Svc, assert_each_write_once, eventually, sequencer_holder, spawn_observed_app_on,
        test_serve_args, unique_email,
    },
    serve_child::ServeChild,
};
use tenancy::domain::event::EventResource;
use tenancy_client::pb::user_service_client::UserServiceClient;

/// The spec's bound on how long one instance may hold the others' writes or numbering.
const BOUND: Duration = Duration::from_secs(5);

/// Creates a user, giving up after `within`; its id and when the answer came.
async fn create_within(
    users: &mut UserServiceClient<Svc>,
    prefix: &str,
    within: Duration,
) -> Option<(String, Instant)> {
    let answer = tokio::time::timeout(
        within,
        users.create_user(create_request(&unique_email(prefix))),
    )
    .await
    .ok()?
    .ok()?;
    Some((answer.into_inner().user?.uuid, Instant::now()))
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .expect(sql)
        .and_then(|row| row.try_get_by_index::<i64>(0).ok())
        .unwrap_or(0)
}

async fn is_numbered(db: &DatabaseConnection, user: &str) -> bool {
    let user = uuid::Uuid::parse_str(user).expect("a user id");
    db.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT sequence FROM events WHERE resource_id = $1",
        [user.into()],
    ))
    .await
    .expect("events")
    .is_some()
}

/// PostgreSQL: the sequencer's holder, a child process, is frozen with SIGSTOP while
/// four writers write through it and the other instance. A write through the other
/// instance is answered and numbered within 5 s, the lock having moved to that
/// instance. Resumed, the frozen process writes again but never holds the lock again,
/// and the log is gap-free with every answered write once.
async fn a_frozen_sequencer_holder_is_replaced_within_five_seconds_and_stays_out(backend: Backend) {
    if matches!(backend, Backend::Sqlite) {
        return; // No sequencer: each commit numbers its own events.
    }
    let database = backend.fresh_database().await;
    let db = Database::connect(&database.url).await.expect("connect");
    let frozen = ServeChild::start(&database.url, |_| {}).await;
    eventually(Duration::from_secs(10), || async {
        sequencer_holder(&db).await.is_some()
    })
    .await;
    let frozen_session = sequencer_holder(&db).await.expect("the child's sequencer");
    let other = spawn_observed_app_on(database.clone(), test_serve_args()).await;
    assert!(!other.store.is_sequencer(), "the child holds the lock");

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            // Through the frozen one a write gives up sooner: it cannot be answered.
            let (mut users, within) = if w % 2 == 0 {
                (frozen.users.clone(), Duration::from_secs(1))
            } else {
                (other.users.clone(), BOUND)
            };
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answered = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match create_within(&mut users, &format!("frozen-w{w}"), within).await {
                        Some(write) => answered.push(write),
                        None if w % 2 == 0 => tokio::time::sleep(Duration::from_millis(50)).await,
                        None => panic!("a write through the other instance waited over {BOUND:?}"),
                    }
                }
                (w, answered)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    frozen.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    let (probe, answered) = create_within(&mut other.users.clone(), "probe", BOUND)
        .await
        .expect("a write through the other instance is answered while the holder is frozen");
    let answered = answered - stopped;
    let mut took_over = None;
    let numbered = loop {
        if took_over.is_none()
            && sequencer_holder(&db)
                .await
                .is_some_and(|session| session != frozen_session)
        {
            took_over = Some(stopped.elapsed());
        }
        if is_numbered(&db, &probe).await {
            break stopped.elapsed();
        }
        assert!(
            stopped.elapsed() < BOUND,
            "a write answered {answered:?} after SIGSTOP was not numbered within {BOUND:?}; \
             the lock is held by session {:?} (the frozen instance's is {frozen_session})",
            sequencer_holder(&db).await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let successor = sequencer_holder(&db).await.expect("a sequencer");
    assert_ne!(successor, frozen_session, "the lock moved");
    assert!(other.store.is_sequencer(), "to the other instance");

    frozen.signal(Signal::SIGCONT);
    let resumed = Instant::now();
    // The resumed process finds its session ended: it asks for the lock again (a
    // second sequencer session) and never gets it while the other instance holds it.
    let mut asked_again = false;
    while resumed.elapsed() < Duration::from_secs(2) {
        assert_eq!(
            sequencer_holder(&db).await,
            Some(successor),
            "the lock changed hands after the frozen instance resumed"
        );
        assert!(other.store.is_sequencer());
        asked_again |= count(
            &db,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'tenancy-sequencer'",
        )
        .await
            == 2;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut created = HashSet::new();
    let mut after_resume = 0;
    for writer in writers {
        let (w, answered) = writer.await.expect("writer");
        after_resume += answered
            .iter()
            .filter(|(_, at)| w % 2 == 0 && *at > resumed)
            .count();
        created.extend(answered.into_iter().map(|(user, _)| user));
    }
    created.insert(probe);
    // Seen at the latest when the write was numbered.
    let took_over = took_over.unwrap_or(numbered);
    eprintln!(
        "SIGSTOP: a write answered after {answered:?}, the lock taken over after \
         {took_over:?}, the write numbered after {numbered:?}; {} writes answered, {after_resume} \
         by the resumed instance",
        created.len()
    );
    assert!(
        asked_again,
        "the resumed instance stands by for the lock again"
    );
    assert!(after_resume > 0, "the resumed instance writes again");

    let log = other.log_after(0, 1_000_000).await.expect("the log");
    assert_each_write_once(&log, &created);
    // A write the frozen instance committed but answered too late is there too: the
    // log holds exactly the users that exist.
    assert_eq!(
        count(&db, "SELECT count(*) FROM users").await,
        log.len() as i64
    );
}

/// The first column of the first row `sql` returns, polled every 5 ms until `check`
/// holds; the test fails when it has not within `within`.
async fn poll_until<T: sea_orm::TryGetable>(
    db: &DatabaseConnection,
    sql: &str,
    within: Duration,
    check: impl Fn(&T) -> bool,
) -> T {
    let started = Instant::now();
    loop {
        let value = db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .expect(sql)
            .and_then(|row| row.try_get_by_index::<T>(0).ok());
        if let Some(value) = value.filter(|value| check(value)) {
            return value;
        }
        assert!(started.elapsed() < within, "not within {within:?}: {sql}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// PostgreSQL: an instance (a child process) is frozen with SIGSTOP inside a write
/// transaction: its UpdateAccount's statement sleeps in a trigger when the freeze comes,
/// then ends on the server, and the session sits idle in the transaction holding the
/// account's row lock. The other instance's rename of that account, which waits for
/// the lock, is answered within 5 s of the freeze: PostgreSQL ends the frozen session
/// (`idle_in_transaction_session_timeout`; without it the rename waits for as long as
/// the process stays frozen). Resumed, the frozen instance's call fails, nothing of
/// it is committed or logged, and it writes again; the log is gap-free.
async fn a_write_frozen_inside_its_transaction_holds_the_row_under_five_seconds(backend: Backend) {
    if matches!(backend, Backend::Sqlite) {
        return; // One process: there is no other instance to hold up.
    }
    let database = backend.fresh_database().await;
    // The in-process instance starts first and keeps the sequencer: freezing the child
    // then holds up only the row, not the numbering (see the test above for that).
    let other = spawn_observed_app_on(database.clone(), test_serve_args()).await;
    eventually(Duration::from_secs(10), || async {
        other.store.is_sequencer()
    })
    .await;
    let victim = ServeChild::start(&database.url, |_| {}).await;
    let customer = customers::create(&other, personal(&unique_email("frozen-tx"))).await;
    let account = accounts::create(&other, &customer.uuid, "before").await;
    let db = Database::connect(&database.url).await.expect("connect");
    for sql in [
        "CREATE FUNCTION slow_rename() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(0.5); RETURN NEW; END $$",
        "CREATE TRIGGER slow_rename BEFORE UPDATE ON accounts FOR EACH ROW \
         WHEN (NEW.name = 'slow') EXECUTE FUNCTION slow_rename()",
    ] {
        db.execute_unprepared(sql).await.expect(sql);
    }

    let slow = tokio::spawn(accounts::rename(
        victim.accounts.clone(),
        account.uuid.clone(),
        "slow",
    ));
    let in_trigger = "SELECT pid FROM pg_stat_activity \
                      WHERE datname = current_database() AND wait_event = 'PgSleep'";
    let session: i32 = poll_until(&db, in_trigger, Duration::from_secs(5), |_| true).await;
    victim.signal(Signal::SIGSTOP);
    let frozen = Instant::now();
    let renamed = tokio::spawn(accounts::rename(
        other.accounts.clone(),
        account.uuid.clone(),
        "renamed",
    ));
    // The statement ends on the server; the frozen process never sends the next one.
    let state = format!("SELECT state FROM pg_stat_activity WHERE pid = {session}");
    poll_until(&db, &state, Duration::from_secs(2), |state: &String| {
        state == "idle in transaction"
    })
    .await;
    let idle = frozen.elapsed();
    let waiting = "SELECT count(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    poll_until(&db, waiting, Duration::from_secs(2), |n: &i64| *n > 0).await;
    let renamed = tokio::time::timeout(BOUND.saturating_sub(frozen.elapsed()), renamed)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "a rename through the other instance waited over {BOUND:?} for the row of \
                 a frozen transaction (idle in it after {idle:?})"
            )
        })
        .expect("join")
        .expect("the rename through the other instance");
    let answered = frozen.elapsed();
    assert_eq!(renamed.name, "renamed");
    // PostgreSQL ended the frozen instance's session.
    let gone = format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {session}");
    poll_until(&db, &gone, Duration::from_secs(1), |n: &i64| *n == 0).await;

    victim.signal(Signal::SIGCONT);
    let failed = tokio::time::timeout(Duration::from_secs(5), slow)
        .await
        .expect("the resumed instance answers its call")
        .expect("join")
        .expect_err("the frozen write cannot commit: its session was ended");
    // Rolled back whole by PostgreSQL: the caller may retry, as when the database is down.
    assert_eq!(failed.code(), tonic::Code::Unavailable, "{failed:?}");
    let name = format!("SELECT name FROM accounts WHERE id = '{}'", account.uuid);
    let stored: String = poll_until(&db, &name, Duration::ZERO, |_| true).await;
    assert_eq!(
        stored, "renamed",
        "nothing of the frozen write is committed"
    );
    let after = accounts::rename(victim.accounts.clone(), account.uuid.clone(), "after")
        .await
        .expect("the resumed instance writes again");
    assert_eq!(after.name, "after");
    eprintln!(
        "SIGSTOP inside a transaction: idle in it after {idle:?}, the other instance's \
         rename answered after {answered:?}; resumed, its call failed with {:?}: {}",
        failed.code(),
        failed.message()
    );

    let log = other.log_after(0, 10_000).await.expect("the log");
    let sequences: Vec<i64> = log.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=log.len() as i64).collect::<Vec<_>>(),
        "gap-free"
    );
    let names: Vec<&str> = log
        .iter()
        .filter_map(|event| match &event.resource {
            EventResource::Account(logged) if logged.id.uuid().to_string() == account.uuid => {
                Some(logged.name.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        ["before", "renamed", "after"],
        "no event of the frozen write"
    );
}

crate::on_both_backends!(
    a_frozen_sequencer_holder_is_replaced_within_five_seconds_and_stays_out,
    a_write_frozen_inside_its_transaction_holds_the_row_under_five_seconds,
);
