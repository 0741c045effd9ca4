//! Point-read connections (PostgreSQL) are bounded: a read the database never answers
//! fails within the read timeout with UNAVAILABLE, its connection and the idle ones are
//! dropped, and the next read works on a new connection; connections past their idle
//! or age limit are replaced rather than reused; reads whose callers went away
//! mid-statement leave no backend behind beyond the connection bound.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::{
    ConnectionTrait as _, Database, Statement,
    sqlx::{self, Connection as _, PgConnection},
};
use tenancy_client::pb;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf},
};
use tonic::{Code, Request};

use super::{create_user, database::resolve_authority, get_by_email};
use crate::helpers::{
    Backend, TestApp, spawn_app_on, spawn_observed_app_on, test_serve_args, unique_email,
};

/// A TCP forwarder that can be switched to a blackhole: bytes stop flowing, in both
/// directions, on every connection open at that moment and on those accepted while it
/// lasts, and nothing is closed (as when a NAT entry on the way is dropped). Once
/// forwarding again, only connections accepted afterwards work.
struct BlackholeProxy {
    address: SocketAddr,
    state: Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    blackholed: AtomicBool,
    /// Bumped at every switch: a connection forwards only in the epoch it began in.
    epoch: AtomicU64,
}

impl ProxyState {
    fn forwards(&self, epoch: u64) -> bool {
        !self.blackholed.load(Ordering::SeqCst) && self.epoch.load(Ordering::SeqCst) == epoch
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, state: Arc<ProxyState>, epoch: u64) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer).await {
            // EOF is not passed on either: a blackhole never closes anything.
            Ok(0) | Err(_) => {
                std::future::pending::<()>().await;
            }
            Ok(n) => {
                if state.forwards(epoch) && to.write_all(&buffer[..n]).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

impl BlackholeProxy {
    async fn start(target: SocketAddr) -> BlackholeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let state = Arc::new(ProxyState::default());
        tokio::spawn({
            let state = state.clone();
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let epoch = state.epoch.load(Ordering::SeqCst);
                    let state = state.clone();
                    tokio::spawn(async move {
                        let Ok(outbound) = TcpStream::connect(target).await else {
                            return;
                        };
                        let (in_read, in_write) = inbound.into_split();
                        let (out_read, out_write) = outbound.into_split();
                        tokio::spawn(pump(in_read, out_write, state.clone(), epoch));
                        pump(out_read, in_write, state, epoch).await;
                    });
                }
            }
        });
        BlackholeProxy { address, state }
    }

    fn blackhole(&self, on: bool) {
        self.state.blackholed.store(on, Ordering::SeqCst);
        self.state.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// The backends of the server's point-read connections (`application_name` tenancy)
/// that PostgreSQL has on `url`'s database, read directly.
async fn point_read_backends(url: &str) -> HashSet<i32> {
    let db = Database::connect(url).await.expect("connect directly");
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'tenancy'",
        ))
        .await
        .expect("pg_stat_activity");
    let _ = db.close().await;
    rows.iter()
        .map(|row| row.try_get::<i32>("", "pid").expect("pid"))
        .collect()
}

async fn get_nobody(app: &TestApp) -> Code {
    match tokio::time::timeout(
        Duration::from_secs(20),
        app.users
            .clone()
            .get_user(get_by_email(&unique_email("nobody"))),
    )
    .await
    {
        Ok(Ok(_)) => Code::Ok,
        Ok(Err(status)) => status.code(),
        Err(_) => panic!("no answer within 20 s: the read hangs"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_read_the_database_never_answers_fails_in_time_and_the_next_uses_a_new_connection()
{
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let mut database = backend.fresh_database().await;
    let direct_url = database.url.clone();
    let (before, target, after) = resolve_authority(&database.url).await;
    let proxy = BlackholeProxy::start(target).await;
    database.url = format!("{before}{}{after}", proxy.address);
    database.limits.read_timeout = Duration::from_secs(1);
    let mut serve = test_serve_args();
    // Every RPC then reads its API key with a point read.
    serve.cache_capacity = 0;
    let app = spawn_app_on(database, serve).await;
    // Concurrent calls leave several point-read connections idle: all of them are cut
    // off by the blackhole.
    let warm: Vec<_> = (0..6)
        .map(|_| {
            let users = app.users.clone();
            tokio::spawn(async move {
                users
                    .clone()
                    .get_user(get_by_email(&unique_email("warm")))
                    .await
                    .map_err(|s| s.code())
            })
        })
        .collect();
    for call in warm {
        assert_eq!(call.await.unwrap().unwrap_err(), Code::NotFound);
    }
    let backends_before = point_read_backends(&direct_url).await;

    proxy.blackhole(true);
    let started = Instant::now();
    let silent = get_nobody(&app).await;
    let failed_after = started.elapsed();
    proxy.blackhole(false);
    let started = Instant::now();
    let next = get_nobody(&app).await;
    let next_took = started.elapsed();
    let later: Vec<Code> = {
        let mut codes = Vec::new();
        for _ in 0..5 {
            codes.push(get_nobody(&app).await);
        }
        codes
    };
    let backends_after = point_read_backends(&direct_url).await;

    eprintln!(
        "a read the database never answered failed after {failed_after:?}; the next took \
         {next_took:?}; point-read backends before {backends_before:?}, after \
         {backends_after:?}"
    );
    assert_eq!(silent, Code::Unavailable);
    assert!(
        failed_after < Duration::from_millis(2_500),
        "the 1 s read timeout held: {failed_after:?}"
    );
    assert_eq!(next, Code::NotFound, "the next read works");
    assert!(
        next_took < Duration::from_millis(900),
        "on a new connection, not a dead idle one: {next_took:?}"
    );
    assert!(later.iter().all(|c| *c == Code::NotFound), "{later:?}");
    assert!(
        !backends_after.is_subset(&backends_before),
        "a new connection served it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_read_connections_past_their_idle_or_age_limit_are_replaced() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let mut database = backend.fresh_database().await;
    let url = database.url.clone();
    // One point-read connection, so the one in use is the one PostgreSQL lists.
    database.max_connections = 2;
    database.limits.max_idle = Duration::from_secs(1);
    database.limits.max_age = Duration::from_secs(3);
    let mut serve = test_serve_args();
    serve.cache_capacity = 0;
    // The server's own polls (point reads too) are rare here, so the test decides
    // when the connection is idle.
    serve.event_poll_interval_ms = 10_000;
    serve.cache_staleness_ms = 60_000;
    let app = spawn_app_on(database, serve).await;

    let backend_now = || async {
        // A dropped connection's backend exits a moment after its socket closes.
        let started = Instant::now();
        loop {
            let backends = point_read_backends(&url).await;
            if backends.len() == 1 || started.elapsed() > Duration::from_secs(5) {
                return backends;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(get_nobody(&app).await, Code::NotFound);
    let first = backend_now().await;
    // Idle past the limit: replaced.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(get_nobody(&app).await, Code::NotFound);
    let after_idle = backend_now().await;
    // Busy (never idle a second) until past the age limit: replaced.
    let opened = Instant::now();
    let mut during_age = HashSet::new();
    while opened.elapsed() < Duration::from_millis(3_600) {
        assert_eq!(get_nobody(&app).await, Code::NotFound);
        if opened.elapsed() < Duration::from_millis(2_500) {
            during_age = backend_now().await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after_age = backend_now().await;

    eprintln!(
        "backends: {first:?}, after idling {after_idle:?}, aging {during_age:?} then {after_age:?}"
    );
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(after_idle.len(), 1, "{after_idle:?}");
    assert_ne!(first, after_idle, "an idle connection was reused");
    assert_eq!(during_age, after_idle, "a busy young connection is kept");
    assert_eq!(after_age.len(), 1, "{after_age:?}");
    assert_ne!(after_age, after_idle, "an old connection was reused");
}

/// The server's backends on the connection's database now: every client backend but
/// this connection's and `side`'s, and those of them on point-read connections.
async fn server_backends(sampler: &mut PgConnection, side: i32) -> (i64, i64, i64) {
    sqlx::query_as::<_, (i64, i64, i64)>(
        "SELECT count(*), \
                count(*) FILTER (WHERE application_name = 'tenancy'), \
                count(*) FILTER (WHERE application_name = 'tenancy' \
                                 AND wait_event_type = 'Lock') \
         FROM pg_stat_activity \
         WHERE datname = current_database() AND backend_type = 'client backend' \
           AND pid <> pg_backend_pid() AND pid <> $1",
    )
    .bind(side)
    .fetch_one(sampler)
    .await
    .expect("pg_stat_activity")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_cancelled_by_short_deadlines_on_a_locked_table_keep_backends_within_the_bound() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let mut database = backend.fresh_database().await;
    database.max_connections = 10;
    // Were the rule broken, each abandoned read's backend would live until this
    // statement_timeout: short, so the pile-up (about 200/s times this) stays far below
    // the max_connections of a PostgreSQL that other tests share.
    database.limits.read_timeout = Duration::from_millis(250);
    // The pool, the point reads and the batch connections share max_connections; the
    // sequencer holds one session of its own.
    let bound = i64::from(database.max_connections) + 1;
    let url = database.url.clone();
    // The server's own store for assertions: no second instance's connections here.
    let app = spawn_observed_app_on(database, test_serve_args()).await;
    let user = create_user(&app, &unique_email("locked")).await;

    let mut side = PgConnection::connect(&url).await.expect("side session");
    let side_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut side)
        .await
        .expect("side pid");
    sqlx::raw_sql(sqlx::AssertSqlSafe(
        "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE",
    ))
    .execute(&mut side)
    .await
    .expect("lock users");

    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (url, sampling) = (url.clone(), sampling.clone());
        async move {
            let mut sampler = PgConnection::connect(&url).await.expect("sampler");
            let mut samples = Vec::new();
            while sampling.load(Ordering::SeqCst) {
                samples.push(server_backends(&mut sampler, side_pid).await);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            samples
        }
    });
    // 200 GetUser/s for 3 s, each with a 50 ms deadline (`grpc-timeout`), by the email
    // of nobody or the id of the user: neither is cached.
    let mut calls = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < Duration::from_secs(3) {
        tick.tick().await;
        n += 1;
        let lookup = if n.is_multiple_of(2) {
            pb::get_user_request::Lookup::Email(unique_email("nobody"))
        } else {
            pb::get_user_request::Lookup::UserId(user.uuid.clone())
        };
        let mut request = Request::new(pb::GetUserRequest {
            lookup: Some(lookup),
        });
        request.set_timeout(Duration::from_millis(50));
        let mut users = app.users.clone();
        calls.spawn(async move {
            match tokio::time::timeout(Duration::from_secs(5), users.get_user(request)).await {
                Ok(Ok(_)) => Code::Ok,
                Ok(Err(status)) => status.code(),
                Err(_) => panic!("a call with a 50 ms deadline had no answer within 5 s"),
            }
        });
    }
    let mut codes = std::collections::BTreeMap::<String, u32>::new();
    while let Some(code) = calls.join_next().await {
        *codes
            .entry(format!("{:?}", code.expect("call")))
            .or_default() += 1;
    }
    // Still locked: whatever the abandoned reads left behind shows now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sampling.store(false, Ordering::SeqCst);
    let samples = sampler.await.expect("sampler");

    sqlx::raw_sql("COMMIT")
        .execute(&mut side)
        .await
        .expect("release the lock");
    let released = Instant::now();
    let mut after = Vec::new();
    for _ in 0..20 {
        let mut request = Request::new(pb::GetUserRequest {
            lookup: Some(pb::get_user_request::Lookup::UserId(user.uuid.clone())),
        });
        request.set_timeout(Duration::from_secs(1));
        let asked = Instant::now();
        let answer = app.users.clone().get_user(request).await;
        after.push((answer.map(|_| ()).map_err(|s| s.code()), asked.elapsed()));
    }
    let first_answer = after[0].1;

    let peak = samples.iter().map(|s| s.0).max().unwrap_or_default();
    let peak_point_reads = samples.iter().map(|s| s.1).max().unwrap_or_default();
    let waiting = samples.iter().map(|s| s.2).max().unwrap_or_default();
    eprintln!(
        "{} samples; server backends peaked at {peak} (bound {bound}), point-read \
         backends at {peak_point_reads}, {waiting} at most waiting on the lock; calls: \
         {codes:?}; after the release {after:?} (first {first_answer:?}, {:?} since)",
        samples.len(),
        released.elapsed()
    );
    assert!(
        samples.len() >= 20,
        "sampled every 50 ms: {}",
        samples.len()
    );
    assert!(waiting > 0, "point reads waited on the lock");
    assert!(
        !codes.contains_key("Ok") && !codes.contains_key("NotFound"),
        "no read got past the lock: {codes:?}"
    );
    assert!(
        peak <= bound,
        "the server's backends stay within {bound}: {peak} at the peak"
    );
    assert!(
        after
            .iter()
            .all(|(answer, took)| answer.is_ok() && *took < Duration::from_secs(1)),
        "reads answer normally once the lock is released: {after:?}"
    );
}
