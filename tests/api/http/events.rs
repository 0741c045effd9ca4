//! `GET /v1/events:stream` as server-sent events (SPEC §14): `id:` is the event's
//! sequence, `Last-Event-ID` resumes after it; the event log's 64-bit sequences are
//! JSON strings.

use std::time::Duration;

use serde_json::Value;

use super::{Http, create_customer};
use crate::helpers::{Backend, spawn_app, unique_email};

/// Reads `count` events off an SSE answer: (id, data).
async fn read_events(mut response: reqwest::Response, count: usize) -> Vec<(i64, Value)> {
    assert_eq!(response.status(), 200, "{response:?}");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .expect("an event in time")
            .expect("a chunk")
            .expect("the stream goes on");
        text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            let mut id = None;
            let mut data = None;
            for line in event.lines() {
                if let Some(value) = line.strip_prefix("id: ") {
                    id = Some(value.parse::<i64>().expect("a numeric id"));
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(value).expect("JSON data"));
                }
            }
            events.push((id.expect("an id"), data.expect("data")));
        }
    }
    events
}

async fn events_stream_as_server_sent_events_and_resume_from_last_event_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let http = Http::new(&app);
    for n in 0..3 {
        create_customer(&http, &unique_email(&format!("sse{n}"))).await;
    }
    app.sequenced().await;

    let log = http.get("/v1/eventLog").await.ok("event log");
    // int64 as a JSON string.
    let latest: i64 = log["eventLog"]["latestSequence"]
        .as_str()
        .expect("latestSequence is a string")
        .parse()
        .expect("a number");
    assert!(latest >= 3, "{log}");

    let first = read_events(
        http.request(reqwest::Method::GET, "/v1/events:stream?afterSequence=0")
            .send()
            .await
            .expect("stream"),
        3,
    )
    .await;
    let ids: Vec<i64> = first.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for (id, data) in &first {
        assert_eq!(data["event"]["sequence"], id.to_string(), "{data}");
        assert!(data["event"]["type"].as_str().is_some());
    }

    // An EventSource reconnecting sends the last id it saw.
    let resumed = read_events(
        http.request(reqwest::Method::GET, "/v1/events:stream")
            .header("last-event-id", ids[0].to_string())
            .send()
            .await
            .expect("stream"),
        2,
    )
    .await;
    assert_eq!(resumed[0].0, ids[1]);
    assert_eq!(resumed[1].0, ids[2]);

    // The stream's key rules hold: no key, no stream.
    let refused = http
        .with_key(None)
        .get("/v1/events:stream?after_sequence=0")
        .await;
    assert_eq!(refused.status, 401, "{refused:?}");
}

crate::on_both_backends!(events_stream_as_server_sent_events_and_resume_from_last_event_id);
