//! Uncached point reads take one database round trip (PostgreSQL, through a proxy that
//! counts what the server sends): no ping when a connection is taken or given back.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tenancy_client::pb;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use tonic::Code;

use crate::foundation::database::resolve_authority;
use crate::helpers::{Backend, spawn_app_on, test_serve_args, unique_email};

/// Forwards to `target`, counting round trips: a send towards the database counts when
/// the database has answered since the previous one, so a message that arrives in
/// several TCP chunks (as it may on a loaded machine) still counts once.
async fn counting_proxy(target: SocketAddr) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let address = listener.local_addr().expect("proxy address");
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let counter = counter.clone();
            let answered = Arc::new(AtomicBool::new(true));
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    return;
                };
                let (mut client_read, mut client_write) = inbound.into_split();
                let (mut db_read, mut db_write) = outbound.into_split();
                let upstream = async {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n) = client_read.read(&mut buffer).await {
                        if n == 0 || db_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                        if answered.swap(false, Ordering::Relaxed) {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                };
                let downstream = async {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n) = db_read.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        answered.store(true, Ordering::Relaxed);
                        if client_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::select! {
                    _ = upstream => {}
                    _ = downstream => {}
                }
            });
        }
    });
    (address, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncached_point_read_is_one_round_trip() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let mut database = backend.fresh_database().await;
    // Another instance numbers the events, so this one's sequencer only waits for the
    // lock (inside PostgreSQL, without round trips) and its idle polls do not count.
    let _sequencer = spawn_app_on(database.clone(), test_serve_args()).await;
    let (before, target, after) = resolve_authority(&database.url).await;
    let (proxy, sent) = counting_proxy(target).await;
    database.url = format!("{before}{proxy}{after}");
    let mut serve = test_serve_args();
    // Nothing else talks to the database meanwhile: no polls, no health probes.
    serve.event_poll_interval_ms = 600_000;
    serve.cache_staleness_ms = 600_000;
    serve.health_interval = 3600;
    let app = spawn_app_on(database, serve).await;
    let mut users = app.users.clone();
    let read = || pb::GetUserRequest {
        lookup: Some(pb::get_user_request::Lookup::Email(unique_email("nobody"))),
    };
    // Warm up: the key is cached and the statement prepared on the pool's connections.
    for _ in 0..5 {
        assert_eq!(
            users.get_user(read()).await.unwrap_err().code(),
            Code::NotFound
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let start = sent.load(Ordering::Relaxed);
    const READS: u64 = 20;
    for _ in 0..READS {
        assert_eq!(
            users.get_user(read()).await.unwrap_err().code(),
            Code::NotFound
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let round_trips = sent.load(Ordering::Relaxed) - start;

    eprintln!("{READS} uncached GetUser calls: {round_trips} round trips to PostgreSQL");
    // Each read is one round trip: no ping when a connection is taken (that would
    // make two) and none when it is given back (sqlx's pool does that: also two).
    assert!(
        round_trips <= READS + 1,
        "{round_trips} round trips for {READS} reads: more than one each"
    );
}

/// A point read abandoned half-way (its caller's deadline passed while PostgreSQL was
/// still working on it) gives its connection up instead of handing it, mid-answer, to
/// the next read: every later read answers with its own row, and no connection slot
/// is lost (with the slots of all abandoned reads lost, later reads would wait for a
/// connection and answer UNAVAILABLE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_point_read_gives_up_its_connection() {
    use sea_orm::{ConnectionTrait as _, Database, TransactionTrait as _};
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let app = crate::helpers::spawn_app(backend).await;
    let mut users = app.users.clone();
    let mut emails = Vec::new();
    for name in ["first", "second", "third"] {
        let email = unique_email(name);
        crate::users::create(&app, &email, "a long enough passphrase 7").await;
        emails.push(email);
    }
    let get = |email: &str| pb::GetUserRequest {
        lookup: Some(pb::get_user_request::Lookup::Email(email.to_string())),
    };
    users.get_user(get(&emails[0])).await.expect("a first read");

    // Reads of `users` wait behind an exclusive lock while their deadlines pass:
    // more abandoned reads than there are point-read connections.
    let locker = Database::connect(&app.database.url).await.expect("connect");
    let lock = locker.begin().await.expect("begin");
    lock.execute_unprepared("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock users");
    let abandoned = (0..12).map(|_| {
        let mut users = users.clone();
        let mut request = tonic::Request::new(get(&emails[0]));
        request.set_timeout(Duration::from_millis(300));
        async move { users.get_user(request).await }
    });
    for answer in futures::future::join_all(abandoned).await {
        let code = answer
            .expect_err("the read cannot finish behind the lock")
            .code();
        assert!(
            matches!(code, Code::DeadlineExceeded | Code::Cancelled),
            "an abandoned read answers {code:?}"
        );
    }
    lock.rollback().await.expect("unlock");
    let _ = locker.close().await;

    for round in 0..20 {
        let email = &emails[round % emails.len()];
        let user = tokio::time::timeout(Duration::from_secs(2), users.get_user(get(email)))
            .await
            .expect("a read after abandoned ones does not wait for a connection")
            .expect("read")
            .into_inner()
            .user
            .expect("a user");
        assert_eq!(
            &user.email, email,
            "round {round} answered another read's row"
        );
    }
}
