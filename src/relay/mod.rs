//! The NATS JetStream relay (`--events-nats-url`): publishes every event of the log,
//! in sequence order, to a JetStream stream, one message per event, each once, with
//! no gap.
//!
//! - Body: the event as `StreamEvents` sends it (a `tenancy.v1.Event` protobuf).
//!   Subject: `<prefix>.<event type>`, e.g. `tenancy.events.customer.created`.
//!   Headers: `Nats-Msg-Id` = the sequence, `Tenancy-Event-Type`,
//!   `Tenancy-Event-Sequence`, and `Nats-Expected-Last-Sequence`.
//! - Order rests on the broker: each message says after which stream sequence it
//!   belongs, so the broker stores it there or nowhere (`link`). A late publish from a
//!   dropped connection or from a relay that lost its lease is rejected, not appended.
//! - Each batch is published, every ack awaited (each must name the expected stream
//!   sequence), then the last event and its stream sequence stored in `relay_state`
//!   with the lease renewal, in one statement. On any error, and whenever the lease is
//!   lost or cannot be renewed, the connection is dropped with everything queued in it;
//!   the relay then resumes from the stream's newest event, or, when that message was
//!   purged or expired, from the stored position moved on by the messages the stream
//!   took after it (`resume`).
//! - One relay per stream name runs across instances: a lease in `relay_state`
//!   (`store::relay`) on the database's clock, renewed before each batch; a batch must
//!   be acknowledged while the lease lasts. A relay that cannot publish gives the lease
//!   up, so an instance that can takes over.
//! - The broker is not tenancy's dependency: writes never wait for it, health does not
//!   follow it; the relay backs off, logs its lag, and catches up.

mod link;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::watch;

use crate::store::{RelayPosition, Store};
use link::{Link, Newest, Position};

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

/// How long a lease lasts; renewed before a batch once `RENEW` old, so a holder that
/// died is replaced within `LEASE + CLAIM_EVERY`.
const LEASE: Duration = Duration::from_secs(3);
const RENEW: Duration = Duration::from_secs(1);
const CLAIM_EVERY: Duration = Duration::from_secs(1);
/// A batch must be acknowledged this long before the lease ends by this process's
/// clock, which the database's clock may outrun a little.
const LEASE_MARGIN: Duration = Duration::from_millis(500);
/// Events published before their acks are awaited.
const BATCH: u64 = 256;
/// How often an idle relay looks for other instances' events (its own process's
/// commits wake it at once).
const IDLE_POLL: Duration = Duration::from_millis(100);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a failing relay says so.
const LAG_LOG_EVERY: Duration = Duration::from_secs(10);

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Why publishing stopped without failing.
enum Stopped {
    LostLease,
    ShuttingDown,
}

/// The lease as this process can count on it: it runs at least `LEASE` from when the
/// claim or renewal was sent, since the database set its end later, by its own clock.
#[derive(Debug, Clone, Copy)]
struct Lease {
    sent: Instant,
}

impl Lease {
    fn due(&self) -> bool {
        self.sent.elapsed() >= RENEW
    }

    /// When a batch must have been acknowledged.
    fn deadline(&self) -> tokio::time::Instant {
        (self.sent + LEASE - LEASE_MARGIN).into()
    }
}

impl From<Position> for RelayPosition {
    fn from(position: Position) -> RelayPosition {
        RelayPosition {
            event: position.event,
            stream_sequence: Some(position.stream_sequence),
        }
    }
}

/// Runs the relay until `shutting_down` turns true, then gives up its lease.
pub async fn run(
    store: Store,
    settings: RelaySettings,
    status: Arc<RelayStatus>,
    mut shutting_down: watch::Receiver<bool>,
) {
    let holder = ulid::Ulid::new().to_string();
    let mut backoff = FIRST_BACKOFF;
    let mut last_lag_log: Option<Instant> = None;
    tracing::info!(url = %settings.url, stream = %settings.stream, "event relay to NATS started");
    loop {
        if *shutting_down.borrow() {
            break;
        }
        let stored = match store.claim_relay(&settings.stream, &holder, LEASE).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                status.active.store(false, Ordering::Relaxed);
                if pause(CLAIM_EVERY, &mut shutting_down).await {
                    break;
                }
                continue;
            }
            Err(error) => {
                status.active.store(false, Ordering::Relaxed);
                tracing::warn!(%error, "the event relay cannot read its position");
                if pause(CLAIM_EVERY, &mut shutting_down).await {
                    break;
                }
                continue;
            }
        };
        if !status.active.swap(true, Ordering::Relaxed) {
            tracing::info!(
                after_sequence = stored.event,
                "event relay holds the lease; publishing"
            );
        }
        status.acknowledged.store(stored.event, Ordering::Relaxed);
        let relay = Relay {
            store: &store,
            settings: &settings,
            holder: &holder,
            status: &status,
        };
        match relay.hold(stored, &mut shutting_down).await {
            Ok(Stopped::ShuttingDown) => break,
            Ok(Stopped::LostLease) => {
                status.active.store(false, Ordering::Relaxed);
                tracing::warn!("the event relay lost its lease to another instance");
                backoff = FIRST_BACKOFF;
            }
            Err(error) => {
                if status.acknowledged.load(Ordering::Relaxed) > stored.event {
                    backoff = FIRST_BACKOFF;
                }
                // Another instance, which may reach the broker, can take over now; this
                // one claims again only after a claim round of the others.
                status.active.store(false, Ordering::Relaxed);
                if let Err(error) = store.release_relay(&settings.stream, &holder).await {
                    tracing::warn!(%error, "the event relay could not give up its lease");
                }
                report_failure(&store, &status, &error, &mut last_lag_log).await;
                if pause(backoff.max(CLAIM_EVERY), &mut shutting_down).await {
                    break;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
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

struct Relay<'a> {
    store: &'a Store,
    settings: &'a RelaySettings,
    holder: &'a str,
    status: &'a RelayStatus,
}

impl Relay<'_> {
    /// Publishes while this process holds the lease, on one connection that is dropped,
    /// with whatever it still has queued, when this returns.
    async fn hold(
        &self,
        stored: RelayPosition,
        shutting_down: &mut watch::Receiver<bool>,
    ) -> Result<Stopped, Failure> {
        let link = tokio::select! {
            link = Link::open(self.settings) => link?,
            _ = shutting_down.wait_for(|down| *down) => return Ok(Stopped::ShuttingDown),
        };
        let position = self.resume(&link, stored).await?;
        // Stored at once, with the lease renewed: connecting may have taken a while.
        let Some(lease) = self.advance(position).await? else {
            return Ok(Stopped::LostLease);
        };
        self.publish_from(&link, position, lease, shutting_down)
            .await
    }

    /// Where publishing resumes. The stream's newest event when it can be read (and is
    /// not behind the stored one). When that message is gone (purged, expired) the
    /// stored position holds, moved on by as many log events as the stream took after
    /// it: every message there was published in log order right after its predecessor
    /// (the expected-last-sequence guard), but the relay died or lost its lease before
    /// it stored them. A stream with fewer messages than the stored position says
    /// (recreated) continues after the stored event.
    async fn resume(&self, link: &Link, stored: RelayPosition) -> Result<Position, Failure> {
        let end = link.stream_end(&self.settings.stream).await?;
        let last_sequence = end.last_sequence;
        let after_stored = Position {
            event: stored.event,
            stream_sequence: last_sequence,
        };
        let position = match (end.newest, stored.stream_sequence) {
            (Newest::Event(newest), _) => Position {
                event: newest.max(stored.event),
                stream_sequence: last_sequence,
            },
            (Newest::Gone, Some(at)) if at < last_sequence => {
                let unrecorded = last_sequence - at;
                let events = self.store.events_after(stored.event, unrecorded).await?;
                let taken = u64::try_from(events.len())?;
                match events.last() {
                    Some(newest) if taken == unrecorded => Position {
                        event: newest.sequence,
                        stream_sequence: last_sequence,
                    },
                    _ => {
                        return Err(format!(
                            "the stream took {unrecorded} messages after event {} (stream \
                             sequence {at}) but the log has only {taken} events after it",
                            stored.event
                        )
                        .into());
                    }
                }
            }
            (Newest::Gone | Newest::Foreign, _) => after_stored,
        };
        if position.event != stored.event {
            tracing::info!(
                stored = stored.event,
                resumed = position.event,
                "the stream holds events the relay had not recorded; resuming after them"
            );
        }
        Ok(position)
    }

    async fn publish_from(
        &self,
        link: &Link,
        mut position: Position,
        mut lease: Lease,
        shutting_down: &mut watch::Receiver<bool>,
    ) -> Result<Stopped, Failure> {
        let mut committed = self.store.subscribe_events();
        loop {
            if *shutting_down.borrow() {
                return Ok(Stopped::ShuttingDown);
            }
            let events = self.store.events_after(position.event, BATCH).await?;
            // Right before a batch (or a wait), so a batch starts with most of a lease.
            if lease.due() {
                let Some(renewed) = self.advance(position).await? else {
                    return Ok(Stopped::LostLease);
                };
                lease = renewed;
            }
            let Some(first) = events.first() else {
                tokio::select! {
                    _ = committed.changed() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutting_down.wait_for(|down| *down) => return Ok(Stopped::ShuttingDown),
                }
                continue;
            };
            if first.sequence != position.event + 1 {
                tracing::error!(
                    after = position.event,
                    next = first.sequence,
                    "events were pruned before the relay published them; the stream has a gap"
                );
            }
            let publish = link.publish(&self.settings.subject_prefix, position, &events);
            position = tokio::time::timeout_at(lease.deadline(), publish)
                .await
                .map_err(|_| "the broker did not acknowledge a batch while the lease lasted")??;
            let Some(renewed) = self.advance(position).await? else {
                return Ok(Stopped::LostLease);
            };
            lease = renewed;
            tracing::trace!(stream = %self.settings.stream, position = position.event, "relayed");
        }
    }

    /// Stores `position` and renews the lease; `None` when another holder has it.
    async fn advance(&self, position: Position) -> Result<Option<Lease>, Failure> {
        let sent = Instant::now();
        let held = self
            .store
            .advance_relay(&self.settings.stream, self.holder, position.into(), LEASE)
            .await?;
        if !held {
            return Ok(None);
        }
        self.status
            .acknowledged
            .store(position.event, Ordering::Relaxed);
        Ok(Some(Lease { sent }))
    }
}
