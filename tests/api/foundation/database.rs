//! The database going away and coming back (PostgreSQL): health says NOT_SERVING and
//! RPCs answer UNAVAILABLE meanwhile, and both recover by themselves.
//!
//! The server reaches PostgreSQL through a TCP proxy the test can stop (dropping every
//! connection and the listening socket) and start again on the same port.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use super::{create_request, get_by_email};
use crate::helpers::{Backend, TestApp, spawn_app_on, test_serve_args, unique_email};

/// A TCP forwarder to `target` on a fixed local address.
struct Proxy {
    address: SocketAddr,
    target: SocketAddr,
    accepting: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let mut proxy = Proxy {
            address: listener.local_addr().expect("proxy address"),
            target,
            accepting: None,
            connections: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let (target, connections) = (self.target, self.connections.clone());
        self.accepting = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let forward = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().unwrap().push(forward);
            }
        }));
    }

    /// Closes the listening socket and every forwarded connection.
    async fn stop(&mut self) {
        if let Some(accepting) = self.accepting.take() {
            accepting.abort();
            let _ = accepting.await;
        }
        let connections: Vec<_> = self.connections.lock().unwrap().drain(..).collect();
        for connection in connections {
            connection.abort();
            let _ = connection.await;
        }
    }

    /// Listens on the same address again.
    async fn restart(&mut self) {
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.address).await {
                Ok(listener) => break listener,
                Err(error) if attempts < 50 => {
                    attempts += 1;
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("rebind {}: {error}", self.address),
            }
        };
        self.serve(listener);
    }
}

/// The parts of a `postgres://[user[:password]@]host[:port]/db` URL: everything before
/// `host:port`, `host:port` itself (port 5432 when absent), and everything after it.
pub fn split_authority(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').expect("a database path");
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (format!("{userinfo}@"), host_port),
        None => (String::new(), authority),
    };
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    };
    (
        format!("{scheme}://{userinfo}"),
        host_port,
        format!("/{path}"),
    )
}

/// `split_authority` with `host:port` resolved: the address a proxy in front of the
/// database forwards to.
pub async fn resolve_authority(url: &str) -> (String, SocketAddr, String) {
    let (before, host_port, after) = split_authority(url);
    let target = tokio::net::lookup_host(&host_port)
        .await
        .expect("resolve PostgreSQL")
        .next()
        .expect("an address");
    (before, target, after)
}

/// Polls the overall health until it is `wanted`; returns how long that took.
async fn wait_for_health(app: &TestApp, wanted: ServingStatus, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(status) = app.health_of("").await
            && status == wanted
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "health did not become {wanted:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The codes of `n` concurrent GetUser calls for unknown emails.
async fn concurrent_reads(app: &TestApp, n: usize) -> Vec<Code> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let mut users = app.users.clone();
            tokio::spawn(async move {
                match users.get_user(get_by_email(&unique_email("nobody"))).await {
                    Ok(_) => Code::Ok,
                    Err(status) => status.code(),
                }
            })
        })
        .collect();
    let mut codes = Vec::new();
    for call in calls {
        codes.push(call.await.expect("call"));
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_rpcs_follow_the_database_down_and_back_up() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let mut database = backend.fresh_database().await;
    let (before, target, after) = resolve_authority(&database.url).await;
    let mut proxy = Proxy::start(target).await;
    database.url = format!("{before}{}{after}", proxy.address);
    database.acquire_timeout = Duration::from_secs(1);
    let mut serve = test_serve_args();
    serve.health_interval = 1;
    let app = spawn_app_on(database, serve).await;
    let mut users = app.users.clone();
    users
        .create_user(create_request(&unique_email("before")))
        .await
        .expect("works while the database is up");
    // Concurrent calls leave several connections idle in the pool: all of them go
    // stale when the database goes away.
    let codes = concurrent_reads(&app, 8).await;
    assert!(codes.iter().all(|c| *c == Code::NotFound), "{codes:?}");

    proxy.stop().await;
    // A probe a second, each given up to 2 s.
    let down_after = wait_for_health(&app, ServingStatus::NotServing, Duration::from_secs(6)).await;
    let started = Instant::now();
    let read = users
        .get_user(get_by_email(&unique_email("down")))
        .await
        .unwrap_err();
    let write = users
        .create_user(create_request(&unique_email("down")))
        .await
        .unwrap_err();
    let rpc_latency = started.elapsed() / 2;
    for service in [
        "tenancy.v1.UserService",
        "tenancy.v1.CustomerService",
        "tenancy.v1.EventService",
    ] {
        assert_eq!(
            app.health_of(service).await.ok(),
            Some(ServingStatus::NotServing),
            "{service}"
        );
    }

    proxy.restart().await;
    // The next probe succeeds, however many dead connections the pool held.
    let up_after = wait_for_health(&app, ServingStatus::Serving, Duration::from_secs(5)).await;
    let started = Instant::now();
    let email = unique_email("after");
    let created = users.create_user(create_request(&email)).await;
    let recovered_in = started.elapsed();
    let read_again = users.get_user(get_by_email(&email)).await;
    // No call fails on a connection left over from before the outage.
    let mut after_codes = concurrent_reads(&app, 8).await;
    for _ in 0..10 {
        let status = users.get_user(get_by_email(&unique_email("again"))).await;
        after_codes.push(status.map_or_else(|s| s.code(), |_| Code::Ok));
    }

    eprintln!(
        "database down: NOT_SERVING after {down_after:?}, an RPC answered in {rpc_latency:?}; \
         back up: SERVING after {up_after:?}, first RPC took {recovered_in:?}"
    );
    assert_eq!(read.code(), Code::Unavailable, "{read:?}");
    assert_eq!(write.code(), Code::Unavailable, "{write:?}");
    for status in [&read, &write] {
        assert!(
            !status.message().to_lowercase().contains("connect")
                && !status.message().contains("sqlx"),
            "no database error text on the wire: {status:?}"
        );
    }
    assert!(created.is_ok(), "RPCs work again: {created:?}");
    assert!(read_again.is_ok(), "RPCs work again: {read_again:?}");
    assert!(
        after_codes.iter().all(|c| *c == Code::NotFound),
        "every call after recovery works: {after_codes:?}"
    );

    // A blip shorter than a probe interval: the calls right after it do not fail on
    // the connections it killed.
    let warm = concurrent_reads(&app, 8).await;
    proxy.stop().await;
    proxy.restart().await;
    // A write first: its BEGIN meets one of the dead connections.
    let write_after_blip = users
        .create_user(create_request(&unique_email("blip-write")))
        .await;
    let mut after_blip = Vec::new();
    for _ in 0..10 {
        let status = users.get_user(get_by_email(&unique_email("blip"))).await;
        after_blip.push(status.map_or_else(|s| s.code(), |_| Code::Ok));
    }
    assert!(warm.iter().all(|c| *c == Code::NotFound), "{warm:?}");
    assert!(
        write_after_blip.is_ok(),
        "a write after a blip works: {write_after_blip:?}"
    );
    assert!(
        after_blip.iter().all(|c| *c == Code::NotFound),
        "every call after a blip works: {after_blip:?}"
    );

    let events = app.log_after(0, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "the refused write left no event (the third is the write after the blip)"
    );
}
