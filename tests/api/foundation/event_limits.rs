//! What open event streams cost (issue 6): one poller per process serves every stream,
//! so many idle consumers cost the database one query per poll interval and leave room
//! for everything else; streams per key are capped; dead peers are dropped.

use std::time::{Duration, Instant};

use futures::future::join_all;
use tenancy::app::api_keys::issue_key;
use tenancy_client::pb;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::{
    Code,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::health_check_response::ServingStatus;

use super::create_user;
use crate::helpers::{
    ADMIN_KEY, Backend, BearerKey, TestApp, spawn_app_with, spawn_observed_app, unique_email,
};

const STREAMS: usize = 500;
/// HTTP/2 servers commonly allow a few hundred concurrent streams per connection, so
/// the streams are spread over several connections, as many consumers would be.
const CONNECTIONS: usize = 10;
const POLL_MS: u64 = 200;

fn connection(app: &TestApp) -> Channel {
    Endpoint::from_shared(format!("http://{}", app.address))
        .expect("endpoint")
        .connect_lazy()
}

async fn open(
    channel: Channel,
    key: &str,
    after_sequence: i64,
) -> Result<tonic::Streaming<pb::StreamEventsResponse>, tonic::Status> {
    pb::event_service_client::EventServiceClient::with_interceptor(
        channel,
        BearerKey(Some(key.to_string())),
    )
    .stream_events(pb::StreamEventsRequest { after_sequence })
    .await
    .map(tonic::Response::into_inner)
}

/// How long a health check takes, and what it answered.
async fn probe(app: &TestApp) -> (Duration, Result<ServingStatus, tonic::Status>) {
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(5), app.health_of(""))
        .await
        .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer within 5 s")));
    (started.elapsed(), status)
}

async fn five_hundred_open_streams_cost_one_query_per_poll_interval_and_health_still_answers(
    backend: Backend,
) {
    let app = spawn_observed_app(backend, |serve| {
        serve.event_poll_interval_ms = POLL_MS;
        serve.max_streams_per_key = STREAMS as u32;
    })
    .await;
    create_user(&app, &unique_email("before")).await;
    let channels: Vec<Channel> = (0..CONNECTIONS).map(|_| connection(&app)).collect();
    let mut streams: Vec<_> =
        join_all((0..STREAMS).map(|i| open(channels[i % CONNECTIONS].clone(), ADMIN_KEY, 1)))
            .await
            .into_iter()
            .map(|opened| opened.expect("open a stream"))
            .collect();
    // Let every stream finish its replay (nothing to replay) and go live.
    tokio::time::sleep(Duration::from_millis(4 * POLL_MS)).await;

    let window = Duration::from_millis(15 * POLL_MS);
    let before = app.store.statements_executed();
    let started = Instant::now();
    let mut probes = Vec::new();
    while started.elapsed() < window {
        probes.push(probe(&app).await);
        tokio::time::sleep(Duration::from_millis(POLL_MS / 2)).await;
    }
    let idle_statements = app.store.statements_executed() - before;
    let intervals = started.elapsed().as_millis() as u64 / POLL_MS;

    // A change reaches every stream, still without a query per stream.
    let before_write = app.store.statements_executed();
    let written = create_user(&app, &unique_email("fan-out")).await;
    let received = join_all(streams.iter_mut().map(|stream| async move {
        match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
            Ok(Ok(Some(message))) => message.event.map(|e| (e.sequence, e.resource_id)),
            _ => None,
        }
    }))
    .await;
    let write_statements = app.store.statements_executed() - before_write;
    let probe_after_write = probe(&app).await;

    eprintln!(
        "{STREAMS} open streams: {idle_statements} statements in {intervals} poll intervals \
         of {POLL_MS} ms; {} health probes, slowest {:?}; one write and its fan-out to every \
         stream took {write_statements} statements",
        probes.len(),
        probes
            .iter()
            .map(|(latency, _)| *latency)
            .max()
            .unwrap_or_default(),
    );
    // Per interval, the event feed's query and the API key cache's revocation poll.
    assert!(
        idle_statements <= 2 * intervals + 2,
        "two queries per poll interval, not one per stream: {idle_statements} in {intervals} intervals"
    );
    assert!(
        idle_statements >= intervals / 3,
        "the poller is running: {idle_statements} in {intervals} intervals"
    );
    for (latency, status) in probes.iter().chain([&probe_after_write]) {
        assert_eq!(
            status.as_ref().ok(),
            Some(&ServingStatus::Serving),
            "{status:?}"
        );
        // Well under the 3 s pool acquire timeout that a starved pool would hit, with
        // room for a loaded 2-core machine running the rest of the suite.
        assert!(
            *latency < Duration::from_millis(2500),
            "a probe took {latency:?}"
        );
    }
    let missed = received
        .iter()
        .filter(|got| got.as_ref() != Some(&(2, written.uuid.clone())))
        .count();
    assert_eq!(missed, 0, "every stream received the new event");
    assert!(
        write_statements < 50,
        "the fan-out is not a query per stream: {write_statements} statements"
    );
}

async fn open_streams_per_key_are_capped(backend: Backend) {
    let app = spawn_app_with(backend, |serve| serve.max_streams_per_key = 2).await;
    let consumer = issue_key(&app.store, "consumer", &["events.read".into()])
        .await
        .unwrap()
        .secret;
    let other = issue_key(&app.store, "other", &["events.read".into()])
        .await
        .unwrap()
        .secret;
    let channel = connection(&app);

    let first = open(channel.clone(), &consumer, 0).await.expect("first");
    let _second = open(channel.clone(), &consumer, 0).await.expect("second");
    let third = open(channel.clone(), &consumer, 0).await.err();
    let other_key = open(channel.clone(), &other, 0).await;
    drop(first);
    // The server frees the place once it sees the cancellation.
    let deadline = Instant::now() + Duration::from_secs(5);
    let reopened = loop {
        match open(channel.clone(), &consumer, 0).await {
            Ok(stream) => break Ok(stream),
            Err(status) if Instant::now() < deadline => {
                let _ = status;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => break Err(status),
        }
    };
    let still_capped = open(channel.clone(), &consumer, 0).await.err();

    let third = third.expect("a third stream of one key is refused");
    assert_eq!(third.code(), Code::ResourceExhausted, "{third:?}");
    assert!(
        third.message().contains("2 open event streams"),
        "{third:?}"
    );
    assert!(
        other_key.is_ok(),
        "another key has its own count: {other_key:?}"
    );
    assert!(
        reopened.is_ok(),
        "a closed stream frees its place: {reopened:?}"
    );
    let still_capped = still_capped.expect("the cap holds again");
    assert_eq!(
        still_capped.code(),
        Code::ResourceExhausted,
        "{still_capped:?}"
    );
}

/// An HTTP/2 frame header's type and flags.
async fn read_frame(socket: &mut tokio::net::TcpStream) -> Option<(u8, u8)> {
    let mut header = [0u8; 9];
    socket.read_exact(&mut header).await.ok()?;
    let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let mut payload = vec![0u8; length];
    socket.read_exact(&mut payload).await.ok()?;
    Some((header[3], header[4]))
}

async fn http2_keepalive_drops_a_peer_that_stops_answering(backend: Backend) {
    let app = spawn_app_with(backend, |serve| {
        serve.http2_keepalive_interval = 1;
        serve.http2_keepalive_timeout = 1;
    })
    .await;
    // A client that opens HTTP/2 and then goes silent, as a vanished peer does.
    let mut socket = tokio::net::TcpStream::connect(app.address).await.unwrap();
    socket
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    socket
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let started = Instant::now();

    let mut pinged = false;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some((kind, flags)) = read_frame(&mut socket).await {
            // PING without the ACK flag: the server asking whether we are there.
            pinged |= kind == 6 && flags & 1 == 0;
        }
    })
    .await;

    eprintln!(
        "a silent HTTP/2 peer was dropped after {:?}",
        started.elapsed()
    );
    assert!(closed.is_ok(), "the server kept a silent peer for 10 s");
    assert!(pinged, "the server pinged before it gave up");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "not before a ping went unanswered: {:?}",
        started.elapsed()
    );
}

async fn a_consumer_that_falls_far_behind_still_gets_every_event_once_in_order(backend: Backend) {
    use tenancy::domain::user::{NewUser, UserFields};
    const EVENTS: i64 = 3_000;
    let app = spawn_app_with(backend, |serve| serve.event_poll_interval_ms = 100).await;
    // A small HTTP/2 window and a consumer that does not read: the server's stream
    // stalls, the process-wide broadcast moves on, and the stream must catch up from
    // the database instead of skipping what the broadcast no longer holds.
    let channel = Endpoint::from_shared(format!("http://{}", app.address))
        .expect("endpoint")
        .initial_stream_window_size(65_535)
        .connect_lazy();
    let mut stream = open(channel, ADMIN_KEY, 0).await.expect("open");
    // Written beside the server (as another instance would), so they arrive in
    // batches through the poll, faster than the stalled stream takes them.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = app.store.clone();
            tokio::spawn(async move {
                for i in 0..EVENTS / 4 {
                    let email = unique_email(&format!("bulk{w}-{i}"));
                    let fields = UserFields {
                        email: &email,
                        first_name: "Bulk",
                        last_name: "Writer",
                        ..Default::default()
                    };
                    let user = NewUser::parse("user", &fields).expect("a valid user");
                    store.create_user(user, None, None).await.expect("create");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    // The feed has broadcast far more than it keeps for a stalled stream.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut received = Vec::new();
    while received.len() < EVENTS as usize {
        match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
            Ok(Ok(Some(message))) => received.push(message.event.expect("an event").sequence),
            other => panic!("after {} events: {other:?}", received.len()),
        }
    }

    assert_eq!(
        received,
        (1..=EVENTS).collect::<Vec<_>>(),
        "every event once, in order"
    );
}

crate::on_both_backends!(
    a_consumer_that_falls_far_behind_still_gets_every_event_once_in_order,
    five_hundred_open_streams_cost_one_query_per_poll_interval_and_health_still_answers,
    open_streams_per_key_are_capped,
    http2_keepalive_drops_a_peer_that_stops_answering,
);
