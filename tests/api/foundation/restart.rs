//! PostgreSQL crashing and coming back while two instances write (issue 17): no
//! committed user loses its event, no event is numbered twice or skipped, a stream
//! that reconnects gets every event once in order, and the sequencer numbers again
//! after the restart.
//!
//! The shared test cluster serves every other test at the same time, so this test runs
//! a PostgreSQL cluster of its own (`initdb` and `pg_ctl` from the machine's
//! PostgreSQL) on a free port and stops it with `-m immediate`: the server processes
//! are killed without a checkpoint and recover from the WAL on the next start. Where no
//! PostgreSQL binaries exist the test is skipped with a notice, unless
//! `TENANCY_REQUIRE_POSTGRES=1`.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sea_orm::{ConnectionTrait as _, Database, DatabaseConnection, Statement};
use tenancy::store::DatabaseSettings;
use tenancy_client::pb;
use tonic::Code;

use super::create_request;
use crate::helpers::{Svc, spawn_app_on, test_serve_args, unique_email};
use tenancy_client::pb::{
    event_service_client::EventServiceClient, user_service_client::UserServiceClient,
};

/// A PostgreSQL cluster in a temporary directory, stopped and removed on drop.
struct PrivateCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivateCluster {
    /// The newest installed PostgreSQL's `bin` directory.
    fn binaries() -> Option<PathBuf> {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                bin.join("pg_ctl").exists().then_some((version, bin))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, bin)| bin)
    }

    fn start() -> Option<PrivateCluster> {
        let Some(bin) = Self::binaries() else {
            if std::env::var("TENANCY_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("TENANCY_REQUIRE_POSTGRES=1 but no /usr/lib/postgresql/*/bin/pg_ctl");
            }
            eprintln!("NOTICE: skipping the PostgreSQL restart test: no initdb/pg_ctl found");
            return None;
        };
        // initdb refuses to run as root: the cluster then belongs to `postgres`.
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = tempfile::Builder::new()
            .prefix("tenancy-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let cluster = PrivateCluster {
            bin,
            dir,
            port,
            as_postgres: root,
        };
        if root {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&cluster.dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown the cluster directory");
        }
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        cluster.start_server();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `tool` of the cluster's PostgreSQL, run as the cluster's owner.
    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let output = self
            .command(tool)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=60",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Kills the server processes (no checkpoint, no goodbye to the clients), waits
    /// `outage`, and starts it again: it recovers from the WAL.
    fn crash_and_restart(&self, outage: Duration) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        std::thread::sleep(outage);
        self.start_server();
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn one_number(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|| panic!("{sql}: no row"));
    row.try_get_by_index(0).expect(sql)
}

/// What a writer learned about each email it sent: created (its answer arrived), or
/// written by a try whose answer was lost (a later try heard EMAIL_TAKEN).
#[derive(Default)]
struct Outcomes {
    created: HashMap<String, String>,
    written_unanswered: Vec<String>,
}

/// Creates users until `stop`, each email tried until it is settled.
async fn write_until(
    mut users: UserServiceClient<Svc>,
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Outcomes>>,
) {
    while !stop.load(Ordering::Relaxed) {
        let email = unique_email("restart");
        let mut failed_before = false;
        loop {
            match users.create_user(create_request(&email)).await {
                Ok(response) => {
                    let id = response.into_inner().user.expect("a user").uuid;
                    outcomes.lock().unwrap().created.insert(email.clone(), id);
                    break;
                }
                Err(status) if status.code() == Code::AlreadyExists && failed_before => {
                    outcomes
                        .lock()
                        .unwrap()
                        .written_unanswered
                        .push(email.clone());
                    break;
                }
                Err(status) => {
                    assert!(
                        matches!(
                            status.code(),
                            Code::Unavailable | Code::Internal | Code::Unknown
                        ),
                        "a write during the outage answered {status:?}"
                    );
                    failed_before = true;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Follows the log on `app` from 0, reconnecting whenever the stream fails, until
/// `stop` and nothing new arrives for a second; answers the sequences received.
async fn follow(events: EventServiceClient<Svc>, stop: Arc<AtomicBool>) -> Vec<i64> {
    let mut received = Vec::new();
    let mut quiet_since: Option<tokio::time::Instant> = None;
    loop {
        let after = received.last().copied().unwrap_or(0);
        let stream = events
            .clone()
            .stream_events(pb::StreamEventsRequest {
                after_sequence: after,
            })
            .await;
        if let Ok(stream) = stream {
            let mut stream = stream.into_inner();
            loop {
                match tokio::time::timeout(Duration::from_millis(500), stream.message()).await {
                    Ok(Ok(Some(message))) => {
                        received.push(message.event.expect("an event").sequence);
                        quiet_since = None;
                    }
                    Ok(_) => break,
                    Err(_) => {
                        if stop.load(Ordering::Relaxed) {
                            let since = *quiet_since.get_or_insert_with(tokio::time::Instant::now);
                            if since.elapsed() >= Duration::from_secs(2) {
                                return received;
                            }
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_crashing_under_load_loses_no_event_and_numbers_none_twice() {
    crate::helpers::within_time_limit(async {
        let Some(cluster) = PrivateCluster::start() else {
            return;
        };
        let settings = DatabaseSettings {
            url: cluster.url(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            limits: Default::default(),
        };
        let a = spawn_app_on(settings.clone(), test_serve_args()).await;
        let b = spawn_app_on(settings.clone(), test_serve_args()).await;
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Outcomes::default()));
        let follower = tokio::spawn(follow(a.events.clone(), stop.clone()));
        let mut writers = Vec::new();
        for app in [&a, &b] {
            for _ in 0..4 {
                writers.push(tokio::spawn(write_until(
                    app.users.clone(),
                    stop.clone(),
                    outcomes.clone(),
                )));
            }
        }

        tokio::time::sleep(Duration::from_secs(2)).await;
        let before_crash = outcomes.lock().unwrap().created.len();
        assert!(before_crash > 0, "writes went through before the crash");
        let cluster = Arc::new(cluster);
        tokio::task::spawn_blocking({
            let cluster = cluster.clone();
            move || cluster.crash_and_restart(Duration::from_secs(1))
        })
        .await
        .expect("crash and restart");
        // Writes go on for a while after the database is back.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let at_restart_plus_4s = outcomes.lock().unwrap().created.len();
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.await.expect("a writer");
        }
        assert!(
            at_restart_plus_4s > before_crash,
            "writes went through after the restart ({before_crash} before, {at_restart_plus_4s} after)"
        );

        let db = Database::connect(&cluster.url()).await.expect("connect");
        // The sequencer numbers what committed before the crash and after it.
        let mut waited = Duration::ZERO;
        while one_number(&db, "SELECT count(*) FROM pending_events").await > 0 {
            assert!(waited < Duration::from_secs(20), "events still wait for their number");
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += Duration::from_millis(100);
        }
        let events = one_number(&db, "SELECT count(*) FROM events").await;
        let users = one_number(&db, "SELECT count(*) FROM users").await;
        assert_eq!(
            one_number(&db, "SELECT coalesce(max(sequence), 0) FROM events").await,
            events,
            "sequences 1..N with no gap (none was numbered twice: the key is the sequence)"
        );
        assert_eq!(one_number(&db, "SELECT coalesce(min(sequence), 1) FROM events").await, 1);
        assert_eq!(users, events, "one event per user");
        assert_eq!(
            one_number(
                &db,
                "SELECT count(*) FROM users u WHERE \
                 (SELECT count(*) FROM events e WHERE e.resource_id = u.id \
                  AND e.kind = 'user.created') <> 1"
            )
            .await,
            0,
            "every user has exactly one user.created event"
        );
        let (created, unanswered) = {
            let outcomes = outcomes.lock().unwrap();
            (outcomes.created.clone(), outcomes.written_unanswered.clone())
        };
        for (email, id) in &created {
            let found = one_number(
                &db,
                &format!("SELECT count(*) FROM users WHERE id = '{id}' AND email = '{email}'"),
            )
            .await;
            assert_eq!(found, 1, "the created {email} survived the crash");
        }
        assert_eq!(
            users as usize,
            created.len() + unanswered.len(),
            "every stored user was answered created, or heard EMAIL_TAKEN on a retry"
        );

        let received = follower.await.expect("the follower");
        let expected: Vec<i64> = (1..=events).collect();
        assert_eq!(
            received, expected,
            "the reconnecting stream got every event once, in order"
        );
        let _ = db.close().await;
        eprintln!(
            "restart under load: {} users ({} before the crash, {} answered lost), {} events",
            users,
            before_crash,
            unanswered.len(),
            events
        );
        drop(a);
        drop(b);
    })
    .await
}
