//! The NATS JetStream relay (`--events-nats-url`): publishes every event of the log,
//! in sequence order, to a JetStream stream, one message per event.
//!
//! - Body: the event as `StreamEvents` sends it (a `tenancy.v1.Event` protobuf).
//!   Subject: `<prefix>.<event type>`, e.g. `tenancy.events.customer.created`.
//!   Headers: `Nats-Msg-Id` = the sequence (the broker drops a repeated id within
//!   its duplicate window), `Tenancy-Event-Type`, `Tenancy-Event-Sequence`.
//! - Each batch is published, every ack awaited, then the last sequence stored in
//!   `relay_state` with the lease renewal, in one statement. A restart resumes after
//!   the stored sequence, or after the stream's newest message if that is further
//!   (acked but not yet stored), so nothing is published twice even past the window.
//! - One relay per stream name runs across instances: a lease in `relay_state`
//!   (`store::relay`), renewed every second, taken over once it runs out.
//! - The broker is not tenancy's dependency: writes never wait for it, health does not
//!   follow it; the relay backs off, logs its lag, and catches up.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use async_nats::{
    HeaderMap,
    jetstream::{self, context::PublishAckFuture},
};
use tokio::sync::watch;

use crate::{domain::event::Event, grpc::encode_event, store::Store};

/// Where the relay publishes.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub url: String,
    /// The JetStream stream's name; also the relay's name in `relay_state`.
    pub stream: String,
    /// Subjects are `<prefix>.<event type>`; the stream takes `<prefix>.>`.
    pub subject_prefix: String,
    /// The stream's duplicate window when the relay creates it.
    pub duplicate_window: Duration,
}

/// What the relay is doing, for the metrics.
#[derive(Debug, Default)]
pub struct RelayStatus {
    /// This process holds the lease and publishes.
    pub active: AtomicBool,
    /// The newest sequence the broker acknowledged (as far as this process knows).
    pub acknowledged: AtomicI64,
}

/// How long a lease lasts; renewed every `RENEW`, so a holder that died is replaced
/// within `LEASE + CLAIM_EVERY`.
const LEASE: Duration = Duration::from_secs(3);
const RENEW: Duration = Duration::from_secs(1);
const CLAIM_EVERY: Duration = Duration::from_secs(1);
/// Events published before their acks are awaited.
const BATCH: u64 = 256;
/// How often an idle relay looks for other instances' events (its own process's
/// commits wake it at once).
const IDLE_POLL: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a failing relay says so.
const LAG_LOG_EVERY: Duration = Duration::from_secs(10);

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Why publishing stopped without failing.
enum Stopped {
    LostLease,
    ShuttingDown,
}

/// Runs the relay until `shutting_down` turns true, then gives up its lease.
pub async fn run(
    store: Store,
    settings: RelaySettings,
    status: Arc<RelayStatus>,
    mut shutting_down: watch::Receiver<bool>,
) {
    let holder = ulid::Ulid::new().to_string();
    let mut jetstream: Option<jetstream::Context> = None;
    let mut backoff = Duration::from_millis(100);
    let mut last_lag_log: Option<Instant> = None;
    tracing::info!(url = %settings.url, stream = %settings.stream, "event relay to NATS started");
    loop {
        if *shutting_down.borrow() {
            break;
        }
        let claimed = store.claim_relay(&settings.stream, &holder, LEASE).await;
        let position = match claimed {
            Ok(Some(position)) => position,
            Ok(None) => {
                status.active.store(false, Ordering::Relaxed);
                if pause(CLAIM_EVERY, &mut shutting_down).await {
                    break;
                }
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "the event relay cannot read its position");
                if pause(CLAIM_EVERY, &mut shutting_down).await {
                    break;
                }
                continue;
            }
        };
        if !status.active.swap(true, Ordering::Relaxed) {
            tracing::info!(
                after_sequence = position,
                "event relay holds the lease; publishing"
            );
        }
        status.acknowledged.store(position, Ordering::Relaxed);
        let context = match &jetstream {
            Some(context) => context.clone(),
            None => match connect(&settings).await {
                Ok(context) => {
                    jetstream = Some(context.clone());
                    context
                }
                Err(error) => {
                    report_failure(&store, &status, &error, &mut last_lag_log).await;
                    if pause(backoff, &mut shutting_down).await {
                        break;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        let relay = Relay {
            store: &store,
            settings: &settings,
            holder: &holder,
            status: &status,
            context,
        };
        match relay.publish_from(position, &mut shutting_down).await {
            Ok(Stopped::ShuttingDown) => break,
            Ok(Stopped::LostLease) => {
                status.active.store(false, Ordering::Relaxed);
                tracing::warn!("the event relay lost its lease to another instance");
            }
            Err(error) => {
                report_failure(&store, &status, &error, &mut last_lag_log).await;
                if pause(backoff, &mut shutting_down).await {
                    break;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        backoff = Duration::from_millis(100);
    }
    if status.active.swap(false, Ordering::Relaxed)
        && let Err(error) = store.release_relay(&settings.stream, &holder).await
    {
        tracing::warn!(%error, "the event relay could not give up its lease");
    }
}

/// Sleeps `pause`; true when the server began shutting down meanwhile.
async fn pause(pause: Duration, shutting_down: &mut watch::Receiver<bool>) -> bool {
    let woken = tokio::select! {
        _ = tokio::time::sleep(pause) => false,
        _ = shutting_down.wait_for(|down| *down) => true,
    };
    woken || *shutting_down.borrow()
}

async fn report_failure(
    store: &Store,
    status: &RelayStatus,
    error: &Failure,
    last: &mut Option<Instant>,
) {
    if last.is_some_and(|at| at.elapsed() < LAG_LOG_EVERY) {
        return;
    }
    *last = Some(Instant::now());
    let acknowledged = status.acknowledged.load(Ordering::Relaxed);
    let lag = match store.event_bounds().await {
        Ok((_, head)) => (head - acknowledged).max(0),
        Err(_) => -1,
    };
    tracing::warn!(%error, acknowledged, lag_events = lag, "the event relay cannot publish to NATS; retrying");
}

async fn connect(settings: &RelaySettings) -> Result<jetstream::Context, Failure> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .name("tenancy-relay")
        .connect(settings.url.as_str())
        .await?;
    let context = jetstream::new(client);
    context
        .get_or_create_stream(jetstream::stream::Config {
            name: settings.stream.clone(),
            subjects: vec![format!("{}.>", settings.subject_prefix)],
            duplicate_window: settings.duplicate_window,
            ..Default::default()
        })
        .await?;
    Ok(context)
}

struct Relay<'a> {
    store: &'a Store,
    settings: &'a RelaySettings,
    holder: &'a str,
    status: &'a RelayStatus,
    context: jetstream::Context,
}

impl Relay<'_> {
    /// The sequence in the `Nats-Msg-Id` of the stream's newest message (0 if none).
    async fn newest_in_stream(&self) -> Result<i64, Failure> {
        let mut stream = self.context.get_stream(&self.settings.stream).await?;
        let last = stream.info().await?.state.last_sequence;
        if last == 0 {
            return Ok(0);
        }
        let message = stream.get_raw_message(last).await?;
        Ok(message
            .headers
            .get("Nats-Msg-Id")
            .and_then(|id| id.as_str().parse().ok())
            .unwrap_or(0))
    }

    async fn publish(&self, event: &Event) -> Result<PublishAckFuture, Failure> {
        let sequence = event.sequence.to_string();
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", sequence.as_str());
        headers.insert("Tenancy-Event-Sequence", sequence.as_str());
        headers.insert("Tenancy-Event-Type", event.kind.as_str());
        let subject = format!("{}.{}", self.settings.subject_prefix, event.kind);
        Ok(self
            .context
            .publish_with_headers(subject, headers, encode_event(event).into())
            .await?)
    }

    async fn publish_from(
        &self,
        stored: i64,
        shutting_down: &mut watch::Receiver<bool>,
    ) -> Result<Stopped, Failure> {
        let name = &self.settings.stream;
        let mut position = stored.max(self.newest_in_stream().await?);
        if position > stored && !self.advance(position).await? {
            return Ok(Stopped::LostLease);
        }
        let mut committed = self.store.subscribe_events();
        let mut renewed = Instant::now();
        loop {
            if *shutting_down.borrow() {
                return Ok(Stopped::ShuttingDown);
            }
            let events = self.store.events_after(position, BATCH).await?;
            let Some(last) = events.last().map(|event| event.sequence) else {
                if renewed.elapsed() >= RENEW {
                    if !self.advance(position).await? {
                        return Ok(Stopped::LostLease);
                    }
                    renewed = Instant::now();
                }
                tokio::select! {
                    _ = committed.changed() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutting_down.wait_for(|down| *down) => return Ok(Stopped::ShuttingDown),
                }
                continue;
            };
            if events[0].sequence != position + 1 {
                tracing::error!(
                    after = position,
                    next = events[0].sequence,
                    "events were pruned before the relay published them; the stream has a gap"
                );
            }
            let mut acks = Vec::with_capacity(events.len());
            for event in &events {
                acks.push(self.publish(event).await?);
            }
            // In order: the stored position never passes an unacknowledged event.
            for ack in acks {
                ack.await?;
            }
            if !self.advance(last).await? {
                return Ok(Stopped::LostLease);
            }
            renewed = Instant::now();
            position = last;
            tracing::trace!(name, position, "relayed");
        }
    }

    async fn advance(&self, position: i64) -> Result<bool, Failure> {
        let held = self
            .store
            .advance_relay(&self.settings.stream, self.holder, position, LEASE)
            .await?;
        if held {
            self.status.acknowledged.store(position, Ordering::Relaxed);
        }
        Ok(held)
    }
}
