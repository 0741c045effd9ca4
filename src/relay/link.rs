//! The relay's connection to NATS, which the relay abandons on any doubt together with
//! everything still queued in it.
//!
//! Dropping an async-nats `Client` does not do that: its connection task keeps
//! draining the command queue onto the socket until the queue is empty, and after a
//! broken connection it reconnects first (at once, by default) and then sends what was
//! queued — publishes of a batch the relay already gave up, arriving late and after
//! the ones lost with the old connection. So each link runs its connection on a
//! runtime of its own, on its own thread, which ends when the link is dropped and
//! takes the connection task, the socket and the queue with it; and it never
//! reconnects. Bytes already handed to the kernel can still arrive: the broker's
//! expected-last-sequence check rejects those (see `publish`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_nats::{
    HeaderMap,
    jetstream::{
        self, context::PublishAckFuture, message::PublishMessage, stream::RawMessageErrorKind,
    },
};
use tokio::sync::{oneshot, watch};

use super::{Failure, RelaySettings};
use crate::{domain::event::Event, grpc::encode_event};

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bounds each JetStream API request (stream info, a message read, stream creation).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Longer than any link lives: the connection task waits this long before it would
/// reconnect, and the link is dropped long before.
const NEVER_RECONNECT: Duration = Duration::from_secs(24 * 60 * 60);

/// Where the relay stands in the stream: the newest event the stream holds (or held,
/// before a purge or expiry) and its stream sequence. The next publish must follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Position {
    pub event: i64,
    pub stream_sequence: u64,
}

/// The stream's end as the broker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StreamEnd {
    /// The sequence of the newest message ever stored; purges and expiry keep it.
    pub last_sequence: u64,
    pub newest: Newest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Newest {
    /// The event in the newest message.
    Event(i64),
    /// No message left at `last_sequence` (none yet, purged, expired or deleted).
    Gone,
    /// A message without an event sequence in `Nats-Msg-Id`: not the relay's.
    Foreign,
}

pub(super) struct Link {
    jetstream: jetstream::Context,
    /// Turns true when the connection broke.
    broken: watch::Receiver<bool>,
    /// Dropping it ends the link's runtime, and with it the connection task.
    _runtime: oneshot::Sender<()>,
}

impl Link {
    /// Connects and creates the stream when it is missing.
    pub(super) async fn open(settings: &RelaySettings) -> Result<Link, Failure> {
        let (broken_tx, broken) = watch::channel(false);
        // The first connection is made at once (the client asks this callback for it too).
        let connected = Arc::new(AtomicBool::new(false));
        let options = async_nats::ConnectOptions::new()
            .connection_timeout(CONNECT_TIMEOUT)
            .name("tenancy-relay")
            .reconnect_delay_callback({
                let connected = connected.clone();
                move |_| {
                    if connected.load(Ordering::Relaxed) {
                        NEVER_RECONNECT
                    } else {
                        Duration::ZERO
                    }
                }
            })
            .event_callback(move |event| {
                if matches!(
                    event,
                    async_nats::Event::Disconnected | async_nats::Event::Closed
                ) {
                    broken_tx.send_replace(true);
                }
                std::future::ready(())
            });
        let url = settings.url.clone();
        let stream = jetstream::stream::Config {
            name: settings.stream.clone(),
            subjects: vec![format!("{}.>", settings.subject_prefix)],
            duplicate_window: settings.duplicate_window,
            ..Default::default()
        };
        let (opened_tx, opened) = oneshot::channel::<Result<jetstream::Context, Failure>>();
        let (runtime, stopped) = oneshot::channel::<()>();
        let runtime_thread = move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = opened_tx.send(Err(error.into()));
                    return;
                }
            };
            runtime.block_on(async move {
                let connected = async {
                    let client = options.connect(url).await?;
                    // Before the connection task first runs: this runtime has one thread.
                    connected.store(true, Ordering::Relaxed);
                    let mut context = jetstream::new(client);
                    context.set_timeout(REQUEST_TIMEOUT);
                    context.get_or_create_stream(stream).await?;
                    Ok(context)
                }
                .await;
                let connected_ok = connected.is_ok();
                if opened_tx.send(connected).is_ok() && connected_ok {
                    let _ = stopped.await;
                }
            });
            // The runtime drops here, cancelling the connection task.
        };
        std::thread::Builder::new()
            .name("tenancy-relay-nats".into())
            .spawn(runtime_thread)?;
        let jetstream = opened
            .await
            .map_err(|_| "the relay's NATS connection thread ended")??;
        Ok(Link {
            jetstream,
            broken,
            _runtime: runtime,
        })
    }

    pub(super) async fn stream_end(&self, name: &str) -> Result<StreamEnd, Failure> {
        let stream = self.jetstream.get_stream(name).await?;
        let state = &stream.cached_info().state;
        let last_sequence = state.last_sequence;
        if state.messages == 0 {
            return Ok(StreamEnd {
                last_sequence,
                newest: Newest::Gone,
            });
        }
        let newest = match stream.get_raw_message(last_sequence).await {
            Ok(message) => message
                .headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .and_then(|id| id.as_str().parse().ok())
                .map_or(Newest::Foreign, Newest::Event),
            Err(error) if error.kind() == RawMessageErrorKind::NoMessageFound => Newest::Gone,
            Err(error) => return Err(error.into()),
        };
        Ok(StreamEnd {
            last_sequence,
            newest,
        })
    }

    /// Publishes `events` (consecutive in the log) right after `after` and waits for every
    /// ack; returns the new position. Each message carries `Nats-Expected-Last-Sequence`,
    /// so the broker stores it only in the one place it belongs: a publish that comes
    /// late, out of order or after another relay moved the stream on is rejected, and
    /// a gap cannot open behind a lost one. Fails on any error or misplaced ack; the
    /// caller then drops the link.
    pub(super) async fn publish(
        &self,
        prefix: &str,
        after: Position,
        events: &[Event],
    ) -> Result<Position, Failure> {
        let mut broken = self.broken.clone();
        tokio::select! {
            published = self.publish_in_order(prefix, after, events) => published,
            _ = broken.wait_for(|broken| *broken) => Err("the connection to NATS broke".into()),
        }
    }

    async fn publish_in_order(
        &self,
        prefix: &str,
        after: Position,
        events: &[Event],
    ) -> Result<Position, Failure> {
        let mut acks = Vec::with_capacity(events.len());
        for (expected_last, event) in (after.stream_sequence..).zip(events) {
            acks.push(self.publish_one(prefix, event, expected_last).await?);
        }
        let mut position = after;
        for (ack, event) in acks.into_iter().zip(events) {
            let ack = ack.await?;
            let slot = position.stream_sequence + 1;
            // A duplicate ack (the broker already had this id, within its window) is
            // fine where it names the slot this event belongs in, and only there.
            if ack.sequence != slot {
                return Err(format!(
                    "the broker has event {} at stream sequence {}, not {slot}",
                    event.sequence, ack.sequence
                )
                .into());
            }
            position = Position {
                event: event.sequence,
                stream_sequence: slot,
            };
        }
        Ok(position)
    }

    async fn publish_one(
        &self,
        prefix: &str,
        event: &Event,
        expected_last: u64,
    ) -> Result<PublishAckFuture, Failure> {
        let sequence = event.sequence.to_string();
        let mut headers = HeaderMap::new();
        headers.insert("Tenancy-Event-Sequence", sequence.as_str());
        headers.insert("Tenancy-Event-Type", event.kind.as_str());
        let message = PublishMessage::build()
            .headers(headers)
            .message_id(&sequence)
            .expected_last_sequence(expected_last)
            .payload(encode_event(event).into());
        Ok(self
            .jetstream
            .send_publish(format!("{prefix}.{}", event.kind), message)
            .await?)
    }
}
