//! Memory bounds in bytes (issue 15): a cache holds no more than `--cache-max-bytes` of
//! large customers and still answers right; a stream whose client does not read holds
//! no more than `--stream-buffer-bytes` of large events and still sends every one, in
//! order.

use std::time::Duration;

use tenancy_client::pb;
use tonic::transport::Endpoint;

use super::metrics::{scrape, spawn_with_metrics};

use crate::{
    customers::{
        create, get, personal, update,
        validation::{object, string},
    },
    helpers::{ADMIN_KEY, Backend, BearerKey, unique_email},
};

/// Metadata of about 15 KiB as JSON (its limit is 16 KiB), different for each `tag`.
fn large_metadata(tag: &str) -> prost_types::Struct {
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    let text = format!("{tag}-{}", "m".repeat(480));
    let fields: Vec<(&str, prost_types::Value)> = keys
        .iter()
        .map(|key| (key.as_str(), string(&text)))
        .collect();
    object(&fields)
}

async fn a_cache_smaller_than_its_entries_stays_under_its_byte_bound_and_answers_right(
    backend: Backend,
) {
    // Room for two of these customers (each some 20 KiB in memory), not five.
    const MAX_BYTES: usize = 48 * 1024;
    let (app, metrics) = spawn_with_metrics(backend, |serve| {
        serve.cache_max_bytes = MAX_BYTES;
    })
    .await;
    let mut created = Vec::new();
    for i in 0..5 {
        let customer = pb::Customer {
            customer_metadata: Some(large_metadata(&format!("c{i}"))),
            ..personal(&unique_email(&format!("big{i}")))
        };
        created.push(create(&app, customer).await);
    }

    let mut most = 0.0_f64;
    for round in 0..3 {
        for customer in &created {
            let read = get(&app, &customer.uuid).await.expect("get");
            assert_eq!(
                (&read.uuid, &read.customer_metadata),
                (&customer.uuid, &customer.customer_metadata),
                "round {round}: the answer is the customer's own"
            );
            let samples = scrape(metrics).await;
            most = most.max(samples[r#"tenancy_cache_bytes{cache="customers"}"#]);
        }
    }
    let samples = scrape(metrics).await;

    assert!(
        most <= MAX_BYTES as f64,
        "the customers cache held {most} bytes, over its bound of {MAX_BYTES}"
    );
    assert!(most > 0.0, "the customers cache held something");
    assert!(
        samples[r#"tenancy_cache_evictions_total{cache="customers"}"#] > 0.0,
        "five large customers do not fit: some were evicted"
    );
}

/// Whether the client opens its stream before the events are written (they reach it
/// live) or after (it replays them from the database).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Opened {
    Before,
    After,
}

async fn a_client_that_does_not_read_is_held_at_most_the_buffer_bound_and_gets_every_event(
    backend: Backend,
) {
    slow_client_of_large_events(backend, Opened::Before).await;
}

async fn a_replay_to_a_client_that_does_not_read_is_held_at_most_the_buffer_bound_and_complete(
    backend: Backend,
) {
    slow_client_of_large_events(backend, Opened::After).await;
}

async fn slow_client_of_large_events(backend: Backend, opened: Opened) {
    // Each update's event carries the whole customer: some 15 KiB.
    const UPDATES: usize = 100;
    const BUFFER: u64 = 65_536;
    let (app, metrics) = spawn_with_metrics(backend, |serve| {
        serve.stream_buffer_bytes = BUFFER;
        serve.event_poll_interval_ms = 100;
    })
    .await;
    let customer = create(&app, personal(&unique_email("stream-bytes"))).await;
    // Small HTTP/2 windows and a client that does not read: what the server cannot
    // send waits in the stream, which may hold only its bound of it.
    let channel = Endpoint::from_shared(format!("http://{}", app.address))
        .expect("endpoint")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect_lazy();
    let open = || async {
        pb::event_service_client::EventServiceClient::with_interceptor(
            channel.clone(),
            BearerKey(Some(ADMIN_KEY.into())),
        )
        .stream_events(pb::StreamEventsRequest { after_sequence: 0 })
        .await
        .expect("open a stream")
        .into_inner()
    };
    let mut stream = match opened {
        Opened::Before => Some(open().await),
        Opened::After => None,
    };

    let buffered = || async {
        scrape(metrics)
            .await
            .into_iter()
            .find(|(series, _)| series.starts_with("tenancy_event_stream_buffered_bytes{"))
            .map_or(0.0, |(_, value)| value)
    };
    let mut most = 0.0_f64;
    for i in 0..UPDATES {
        let changes = pb::Customer {
            customer_metadata: Some(large_metadata(&format!("u{i}"))),
            ..Default::default()
        };
        update(&app, &customer.uuid, changes, &["customer_metadata"], "")
            .await
            .expect("update");
        if i % 10 == 0 {
            most = most.max(buffered().await);
        }
    }
    app.sequenced().await;
    let mut stream = match stream.take() {
        Some(stream) => stream,
        None => open().await,
    };
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        most = most.max(buffered().await);
    }
    let (_, latest) = app.log_bounds().await.expect("the log's bounds");

    let mut received = Vec::new();
    while received.len() < latest as usize {
        match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
            Ok(Ok(Some(message))) => received.push(message.event.expect("an event").sequence),
            other => panic!("after {} events: {other:?}", received.len()),
        }
    }

    assert!(
        most <= BUFFER as f64,
        "the stream held {most} bytes, over its bound of {BUFFER}"
    );
    assert!(
        most > BUFFER as f64 / 4.0,
        "the stream filled its buffer (else nothing was tested): {most}"
    );
    assert_eq!(
        received,
        (1..=latest).collect::<Vec<_>>(),
        "every event once, in order"
    );
}

crate::on_both_backends!(
    a_cache_smaller_than_its_entries_stays_under_its_byte_bound_and_answers_right,
    a_client_that_does_not_read_is_held_at_most_the_buffer_bound_and_gets_every_event,
    a_replay_to_a_client_that_does_not_read_is_held_at_most_the_buffer_bound_and_complete,
);
