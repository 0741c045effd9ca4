//! The NATS JetStream relay (issue 18), against a real `nats-server` that each test
//! starts on a loopback port of its own (so it can stop and restart it). Skipped with
//! a notice where `nats-server` is missing, unless `TENANCY_REQUIRE_NATS=1`. Faults
//! between the relay and the broker (cut and black-holed connections, a lease lost with
//! publishes queued, purged and expired streams) are in `relay/faults.rs`.

mod faults;
mod proxy;

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use futures::future::join_all;
use prost::Message as _;
use sea_orm::{ConnectionTrait as _, Database, Statement};
use tenancy::config::ServeArgs;
use tenancy_client::pb;

use crate::{
    helpers::{
        Backend, TestApp, assert_each_write_once, eventually, sequencer_holder, spawn_app_on,
        test_serve_args, unique_email,
    },
    serve_child::ServeChild,
    users::create,
};

const STREAM: &str = "TENANCY_EVENTS";

/// A `nats-server` with JetStream in a temporary directory; killed on drop.
struct Nats {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
}

impl Nats {
    /// Starts one, or `None` (after a notice) where `nats-server` is not installed.
    async fn start() -> Option<Nats> {
        let probe = Command::new("nats-server").arg("--version").output();
        if probe.is_err() {
            if std::env::var("TENANCY_REQUIRE_NATS").as_deref() == Ok("1") {
                panic!(
                    "NATS is required (TENANCY_REQUIRE_NATS=1) but nats-server is not installed"
                );
            }
            static NOTICE: OnceLock<()> = OnceLock::new();
            NOTICE.get_or_init(|| {
                eprintln!("NOTICE: skipping the NATS relay tests: nats-server is not installed")
            });
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut nats = Nats {
            child: None,
            port,
            store: tempfile::tempdir().expect("temp dir"),
        };
        nats.restart().await;
        Some(nats)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn restart(&mut self) {
        self.stop();
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let address: SocketAddr = format!("127.0.0.1:{}", self.port).parse().expect("address");
        eventually(Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(address).await.is_ok()
        })
        .await;
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = async_nats::connect(self.url())
            .await
            .expect("connect to NATS");
        async_nats::jetstream::new(client)
    }

    async fn stream(&self) -> async_nats::jetstream::stream::Stream {
        self.jetstream()
            .await
            .get_stream(STREAM)
            .await
            .expect("the relay created the stream")
    }

    /// The stream's state, or `None` while it cannot be read (not created yet).
    async fn state(&self) -> Option<async_nats::jetstream::stream::State> {
        let client = async_nats::connect(self.url()).await.ok()?;
        let mut stream = async_nats::jetstream::new(client)
            .get_stream(STREAM)
            .await
            .ok()?;
        Some(stream.info().await.ok()?.state.clone())
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

fn relay_args(nats: &Nats) -> ServeArgs {
    relay_args_to(nats.url())
}

fn relay_args_to(url: String) -> ServeArgs {
    let mut serve = test_serve_args();
    serve.events_nats_url = Some(url);
    serve
}

/// The log's newest sequence, read beside the servers.
async fn log_head(app: &TestApp) -> i64 {
    app.log_bounds().await.expect("bounds").1
}

/// The messages of the stream from stream sequence `from` to its last, in stream
/// order: (stream sequence, Nats-Msg-Id, subject, decoded event).
async fn stream_contents(nats: &Nats, from: u64) -> Vec<(u64, i64, String, pb::Event)> {
    let mut stream = nats.stream().await;
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut messages = Vec::new();
    for sequence in from..=last {
        let message = stream.get_raw_message(sequence).await.expect("message");
        let id = message
            .headers
            .get("Nats-Msg-Id")
            .expect("Nats-Msg-Id")
            .as_str()
            .parse()
            .expect("a sequence");
        let event = pb::Event::decode(message.payload).expect("a tenancy.v1.Event");
        messages.push((sequence, id, message.subject.to_string(), event));
    }
    messages
}

/// Waits until the stream holds the whole log, then checks it is exactly the log:
/// same sequences in order, no gap, no duplicate, subjects and types matching.
async fn assert_stream_equals_log(nats: &Nats, app: &TestApp, within: Duration) {
    assert_stream_holds_log_from(nats, app, 1, within).await;
}

/// Waits until the stream has taken the whole log, then checks that it took each event
/// once, in order, with no gap (its last stream sequence is the log's head), and that
/// the messages it keeps start at stream sequence `first_kept` and are exactly the
/// log's events there: message id = stream sequence = event sequence, subjects and
/// types matching. (Every stream here starts with the log, so a message's stream
/// sequence is its event's.)
async fn assert_stream_holds_log_from(
    nats: &Nats,
    app: &TestApp,
    first_kept: u64,
    within: Duration,
) {
    let head = log_head(app).await;
    eventually(within, || async move {
        nats.state()
            .await
            .is_some_and(|state| state.last_sequence >= head as u64)
    })
    .await;
    let state = nats.state().await.expect("the stream's state");
    assert_eq!(state.last_sequence, head as u64, "one message per event");
    if first_kept > 1 {
        assert_eq!(
            state.first_sequence, first_kept,
            "the stream keeps what it kept"
        );
    }
    let log = app
        .log_after(first_kept as i64 - 1, 100_000)
        .await
        .expect("the log");
    let contents = stream_contents(nats, first_kept).await;
    assert_eq!(contents.len(), log.len(), "one message per event");
    for ((at, id, subject, event), logged) in contents.iter().zip(&log) {
        assert_eq!(*id, logged.sequence, "in sequence order, no gap");
        assert_eq!(*at, logged.sequence as u64, "no message before it twice");
        assert_eq!(event.sequence, logged.sequence);
        assert_eq!(event.r#type, logged.kind);
        assert_eq!(*subject, format!("tenancy.events.{}", logged.kind));
    }
}

async fn a_thousand_writes_over_two_instances_reach_the_stream_exactly_once(backend: Backend) {
    let Some(nats) = Nats::start().await else {
        return;
    };
    let database = backend.fresh_database().await;
    let first = spawn_app_on(database.clone(), relay_args(&nats)).await;
    let second = spawn_app_on(database, relay_args(&nats)).await;
    let writers = (0..16).map(|writer| {
        let app = if writer % 2 == 0 { &first } else { &second };
        async move {
            for _ in 0..(1000 / 16 + 1) {
                create(app, &unique_email("relayed"), "").await;
            }
        }
    });
    join_all(writers).await;
    assert!(log_head(&first).await >= 1000);
    assert_stream_equals_log(&nats, &first, Duration::from_secs(60)).await;
}

async fn a_holder_that_stopped_renewing_is_replaced_within_five_seconds(backend: Backend) {
    let Some(nats) = Nats::start().await else {
        return;
    };
    let database = backend.fresh_database().await;
    // A holder that died without giving the lease up: its lease runs 2 s more.
    let db = Database::connect(&database.url).await.expect("connect");
    tenancy::startup::prepare_store(&database, test_serve_args().admin_key.as_deref())
        .await
        .expect("migrate");
    let until = (chrono::Utc::now() + chrono::Duration::seconds(2)).timestamp_micros();
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        format!(
            "INSERT INTO relay_state (name, holder, lease_until, last_sequence) \
             VALUES ('{STREAM}', 'a-dead-instance', {until}, 0)"
        ),
    ))
    .await
    .expect("a dead holder's lease");
    let app = spawn_app_on(database, relay_args(&nats)).await;
    let started = Instant::now();
    create(&app, &unique_email("after-takeover"), "").await;
    assert_stream_equals_log(&nats, &app, Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5) + Duration::from_secs(1),
        "took {took:?}"
    );
    assert!(
        took >= Duration::from_millis(1500),
        "waited for the lease to run out: {took:?}"
    );
}

async fn the_other_instance_takes_over_when_the_relaying_one_stops(backend: Backend) {
    let Some(nats) = Nats::start().await else {
        return;
    };
    let database = backend.fresh_database().await;
    let first = spawn_app_on(database.clone(), relay_args(&nats)).await;
    create(&first, &unique_email("one"), "").await;
    assert_stream_equals_log(&nats, &first, Duration::from_secs(10)).await;
    let second = spawn_app_on(database, relay_args(&nats)).await;
    first.stop().await.expect("stopped");
    for _ in 0..20 {
        create(&second, &unique_email("two"), "").await;
    }
    assert_stream_equals_log(&nats, &second, Duration::from_secs(10)).await;
}

async fn a_broker_away_for_ten_seconds_slows_no_write_and_misses_nothing(backend: Backend) {
    let Some(mut nats) = Nats::start().await else {
        return;
    };
    let database = backend.fresh_database().await;
    let app = spawn_app_on(database, relay_args(&nats)).await;
    create(&app, &unique_email("before"), "").await;
    assert_stream_equals_log(&nats, &app, Duration::from_secs(10)).await;
    nats.stop();
    let away = Instant::now();
    let mut slowest = Duration::ZERO;
    while away.elapsed() < Duration::from_secs(10) {
        let started = Instant::now();
        create(&app, &unique_email("while-away"), "").await;
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        slowest < Duration::from_secs(1),
        "a write waited for the broker: {slowest:?}"
    );
    assert_eq!(
        app.health_of("").await.expect("health"),
        tonic_health::pb::health_check_response::ServingStatus::Serving,
        "the broker is not tenancy's dependency"
    );
    nats.restart().await;
    assert_stream_equals_log(&nats, &app, Duration::from_secs(30)).await;
}

async fn a_relay_that_lost_its_stored_position_publishes_nothing_twice(backend: Backend) {
    let Some(nats) = Nats::start().await else {
        return;
    };
    let database = backend.fresh_database().await;
    // A 1 s duplicate window, outlived below: the broker's dedup cannot hide a repeat.
    let serve = || {
        let mut serve = relay_args(&nats);
        serve.events_nats_duplicate_window = 1;
        serve
    };
    let app = spawn_app_on(database.clone(), serve()).await;
    for _ in 0..10 {
        create(&app, &unique_email("acked"), "").await;
    }
    assert_stream_equals_log(&nats, &app, Duration::from_secs(10)).await;
    app.stop().await.expect("stopped");
    // As if the relay died after the broker acknowledged but before it stored that:
    // the stored position is behind the stream.
    let db = Database::connect(&database.url).await.expect("connect");
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        "UPDATE relay_state SET last_sequence = 2, lease_until = 0".to_string(),
    ))
    .await
    .expect("rewind");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let app = spawn_app_on(database, serve()).await;
    create(&app, &unique_email("after"), "").await;
    assert_stream_equals_log(&nats, &app, Duration::from_secs(10)).await;
}

async fn scalar(db: &sea_orm::DatabaseConnection, sql: &str) -> Option<i64> {
    db.query_one_raw(Statement::from_string(
        db.get_database_backend(),
        sql.to_string(),
    ))
    .await
    .expect(sql)
    .and_then(|row| row.try_get_by_index::<Option<i64>>(0).ok().flatten())
}

/// PostgreSQL: the process that numbers the events and relays them is killed with
/// SIGKILL under writes on two instances. The other takes the sequencer over within
/// 2 s and the relay within 5 s; the log stays gap-free with each write once, and the
/// JetStream stream ends equal to it.
async fn the_instance_holding_sequencer_and_relay_killed_mid_load_loses_nothing(backend: Backend) {
    let Some(nats) = Nats::start().await else {
        return;
    };
    if matches!(backend, Backend::Sqlite) {
        return; // One process per SQLite file runs the relay; no sequencer.
    }
    let database = backend.fresh_database().await;
    let db = Database::connect(&database.url).await.expect("connect");
    let mut victim = ServeChild::start(&database.url, |command| {
        command.env("TENANCY_EVENTS_NATS_URL", nats.url());
    })
    .await;
    // The victim holds both before the survivor starts.
    eventually(Duration::from_secs(10), || async {
        sequencer_holder(&db).await.is_some()
            && scalar(
                &db,
                "SELECT count(*) FROM relay_state WHERE holder IS NOT NULL",
            )
            .await
            .unwrap_or(0)
                == 1
    })
    .await;
    let victim_pid = sequencer_holder(&db).await.expect("the victim's sequencer");
    let survivor = spawn_app_on(database.clone(), relay_args(&nats)).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let mut users = if w % 2 == 0 {
                victim.users.clone()
            } else {
                survivor.users.clone()
            };
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut created = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let request = pb::CreateUserRequest {
                        user: Some(pb::User {
                            email: unique_email("killed"),
                            first_name: "Ana".into(),
                            last_name: "Silva".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    match users.create_user(request).await {
                        Ok(answer) => created.push(answer.into_inner().user.expect("a user").uuid),
                        // The victim's callers fail once it is gone.
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                created
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    victim.process.start_kill().expect("SIGKILL the victim");
    let killed = Instant::now();
    victim.process.wait().await.expect("reaped");
    let took_over = loop {
        if let Some(pid) = sequencer_holder(&db).await
            && pid != victim_pid
        {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "no sequencer 2 s after SIGKILL"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut created = std::collections::HashSet::new();
    for writer in writers {
        created.extend(writer.await.expect("writer"));
    }
    eprintln!(
        "the sequencer was taken over {took_over:?} after SIGKILL; {} writes answered",
        created.len()
    );

    let log = survivor.log_after(0, 1_000_000).await.expect("the log");
    assert_each_write_once(&log, &created);
    // A write the victim committed but could not answer is in the log too: the log
    // holds exactly the users that exist.
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM users").await,
        Some(log.len() as i64)
    );
    assert_stream_equals_log(&nats, &survivor, Duration::from_secs(30)).await;
}

/// The broker restarted (killed and started again on its store) while writes go on:
/// the stream ends equal to the log.
async fn a_broker_restarted_under_writes_ends_equal_to_the_log(backend: Backend) {
    let Some(mut nats) = Nats::start().await else {
        return;
    };
    let database = backend.fresh_database().await;
    let app = spawn_app_on(database, relay_args(&nats)).await;
    let writes = async {
        for _ in 0..200 {
            create(&app, &unique_email("restart"), "").await;
        }
    };
    let restart = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        nats.restart().await;
    };
    tokio::join!(writes, restart);
    assert_stream_equals_log(&nats, &app, Duration::from_secs(30)).await;
}

crate::on_both_backends!(
    the_instance_holding_sequencer_and_relay_killed_mid_load_loses_nothing,
    a_broker_restarted_under_writes_ends_equal_to_the_log,
    a_thousand_writes_over_two_instances_reach_the_stream_exactly_once,
    a_holder_that_stopped_renewing_is_replaced_within_five_seconds,
    the_other_instance_takes_over_when_the_relaying_one_stops,
    a_broker_away_for_ten_seconds_slows_no_write_and_misses_nothing,
    a_relay_that_lost_its_stored_position_publishes_nothing_twice,
);
