//! `/metrics` (issue 16): the RPC counters equal the calls made, per method and code;
//! a caller that goes away is `Canceled`; the gauges follow streams; the listener
//! needs no key, serves nothing else, and one that cannot bind stops the start.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::Duration,
};

use tenancy::hashing::HashingGate;
use tenancy_client::pb;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use tonic::Code;

use crate::{
    helpers::{
        Backend, GOOD_PASSWORD, TestApp, eventually, spawn_app_with, test_serve_args, unique_email,
    },
    users::{create_request, new_user},
};

/// A server with metrics on a port of its own, and that port.
pub(crate) async fn spawn_with_metrics(
    backend: Backend,
    configure: impl FnOnce(&mut tenancy::config::ServeArgs),
) -> (TestApp, SocketAddr) {
    let bound = Arc::new(OnceLock::new());
    let app = spawn_app_with(backend, |s| {
        s.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
        s.metrics_bound = Some(bound.clone());
        configure(s);
    })
    .await;
    let address = *bound
        .get()
        .expect("the metrics listener is bound once serving");
    (app, address)
}

/// The status line and body of one plain HTTP/1.1 request, without any key.
async fn http(address: SocketAddr, method: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let request = format!("{method} {path} HTTP/1.1\r\nHost: tenancy\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("headers, then a body");
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, body.to_string())
}

/// Every sample of a scrape: `name{labels}` → value.
pub(crate) async fn scrape(address: SocketAddr) -> HashMap<String, f64> {
    let (status, body) = http(address, "GET", "/metrics").await;
    assert!(status.contains("200"), "{status}");
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn handled(service: &str, method: &str, code: &str, kind: &str) -> String {
    format!(
        "grpc_server_handled_total{{grpc_type=\"{kind}\",grpc_service=\"tenancy.v1.{service}\",grpc_method=\"{method}\",grpc_code=\"{code}\"}}"
    )
}

fn per_method(name: &str, service: &str, method: &str, kind: &str) -> String {
    format!(
        "{name}{{grpc_type=\"{kind}\",grpc_service=\"tenancy.v1.{service}\",grpc_method=\"{method}\"}}"
    )
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

async fn the_counters_equal_the_calls_per_method_and_code(backend: Backend) {
    let (app, metrics) = spawn_with_metrics(backend, |_| {}).await;
    let mut users = app.users.clone();
    for _ in 0..5 {
        let missing = users
            .get_user(pb::GetUserRequest {
                lookup: Some(pb::get_user_request::Lookup::Email(unique_email("nobody"))),
            })
            .await
            .expect_err("nobody");
        assert_eq!(missing.code(), Code::NotFound);
    }
    for _ in 0..3 {
        users
            .create_user(create_request(new_user(&unique_email("m")), "", ""))
            .await
            .expect("created");
    }
    for _ in 0..2 {
        let refused = users
            .create_user(create_request(new_user("not an email"), "", ""))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument);
    }

    let samples = scrape(metrics).await;
    let get = |s: &str| value(&samples, s);
    assert_eq!(
        get(&handled("UserService", "GetUser", "NotFound", "unary")),
        5.0
    );
    assert_eq!(
        get(&handled("UserService", "CreateUser", "OK", "unary")),
        3.0
    );
    assert_eq!(
        get(&handled(
            "UserService",
            "CreateUser",
            "InvalidArgument",
            "unary"
        )),
        2.0
    );
    assert_eq!(get(&handled("UserService", "GetUser", "OK", "unary")), 0.0);
    for (method, calls) in [("GetUser", 5.0), ("CreateUser", 5.0)] {
        let started = per_method("grpc_server_started_total", "UserService", method, "unary");
        let count = per_method(
            "grpc_server_handling_seconds_count",
            "UserService",
            method,
            "unary",
        );
        assert_eq!(get(&started), calls, "{method} started");
        assert_eq!(
            get(&count),
            calls,
            "{method}: the histogram counts every handled call"
        );
    }
    assert!(
        get("process_resident_memory_bytes") > 1e6,
        "RSS is reported"
    );
    assert!(
        samples.contains_key("tenancy_cache_hits_total{cache=\"customers\"}"),
        "per-cache counters"
    );
    assert!(samples.contains_key("tenancy_db_connections{state=\"idle\"}"));
    assert!(samples.contains_key("tenancy_password_hash_queue_depth"));
    assert!(samples.contains_key("tenancy_password_hash_queue_wait_seconds_count"));
}

async fn a_caller_that_goes_away_is_counted_canceled(backend: Backend) {
    let gate = HashingGate::closed();
    let (app, metrics) = spawn_with_metrics(backend, |s| {
        s.hash_workers = Some(1);
        s.hashing_gate = Some(gate.clone());
    })
    .await;
    let mut users = app.users.clone();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        users.create_user(create_request(
            new_user(&unique_email("gone")),
            GOOD_PASSWORD,
            "",
        )),
    )
    .await;
    assert!(
        abandoned.is_err(),
        "the client gave up while the hash was held"
    );
    let series = handled("UserService", "CreateUser", "Canceled", "unary");
    eventually(Duration::from_secs(5), || {
        let series = series.clone();
        async move { value(&scrape(metrics).await, &series) == 1.0 }
    })
    .await;
    gate.open();
    let samples = scrape(metrics).await;
    assert_eq!(
        value(
            &samples,
            &handled("UserService", "CreateUser", "Unknown", "unary")
        ),
        0.0,
        "not Unknown"
    );
}

async fn open_streams_are_gauged_and_a_closed_one_is_canceled(backend: Backend) {
    let (app, metrics) = spawn_with_metrics(backend, |_| {}).await;
    crate::users::create(&app, &unique_email("before"), "").await;
    let stream = app
        .events
        .clone()
        .stream_events(pb::StreamEventsRequest { after_sequence: 0 })
        .await
        .expect("stream")
        .into_inner();
    // On PostgreSQL the event is numbered just after its commit, so the head follows.
    eventually(Duration::from_secs(5), || async move {
        let samples = scrape(metrics).await;
        value(&samples, "tenancy_event_streams_open") == 1.0
            && value(&samples, "tenancy_event_log_head_sequence") >= 1.0
    })
    .await;
    let samples = scrape(metrics).await;
    assert!(
        samples
            .keys()
            .any(|series| series.starts_with("tenancy_event_stream_lag_events{")),
        "the open stream's lag is a series: {samples:?}"
    );
    drop(stream);
    let canceled = handled("EventService", "StreamEvents", "Canceled", "server_stream");
    eventually(Duration::from_secs(5), || {
        let canceled = canceled.clone();
        async move {
            let samples = scrape(metrics).await;
            value(&samples, &canceled) == 1.0
                && value(&samples, "tenancy_event_streams_open") == 0.0
        }
    })
    .await;
}

async fn the_listener_needs_no_key_and_serves_nothing_else(backend: Backend) {
    let (_app, metrics) = spawn_with_metrics(backend, |_| {}).await;
    let (status, body) = http(metrics, "GET", "/metrics").await;
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("grpc_server_started_total"), "{body}");
    let (status, body) = http(metrics, "GET", "/").await;
    assert!(status.contains("404"), "{status}");
    assert!(!body.contains("grpc_server"), "{body}");
    let (status, _) = http(metrics, "GET", "/tenancy.v1.UserService/GetUser").await;
    assert!(status.contains("404"), "{status}");
    let (status, _) = http(metrics, "POST", "/metrics").await;
    assert!(status.contains("405"), "{status}");
}

crate::on_both_backends!(
    the_counters_equal_the_calls_per_method_and_code,
    a_caller_that_goes_away_is_counted_canceled,
    open_streams_are_gauged_and_a_closed_one_is_canceled,
    the_listener_needs_no_key_and_serves_nothing_else,
);

#[tokio::test]
async fn a_metrics_address_that_cannot_be_bound_stops_the_start_before_the_database() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut serve = test_serve_args();
    serve.metrics_listen = Some(taken.local_addr().expect("address"));
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // A database that cannot be reached: the metrics address must be refused first.
    let database = tenancy::store::DatabaseSettings {
        url: "postgres://nobody@127.0.0.1:1/none".into(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(1),
        limits: Default::default(),
    };
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        tenancy::startup::run(database, serve, grpc, std::future::pending()),
    )
    .await
    .expect("refused at once");
    let error = result.expect_err("the start fails").to_string();
    assert!(error.contains("cannot listen for metrics"), "{error}");
    assert!(
        error.contains("TENANCY_METRICS_LISTEN"),
        "names the setting: {error}"
    );
}
