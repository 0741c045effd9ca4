//! `StreamEvents` (replay from a sequence, then follow live) and `GetEventLog`.
//!
//! One feed per process polls the database for new events and broadcasts them to every
//! live stream, so open streams cost the database one query per poll interval however
//! many there are. A stream reads the database itself only to replay, or to catch up
//! when it fell behind the broadcast.
//!
//! What a stream holds for a client that reads slowly is bounded in estimated bytes
//! (`--stream-buffer-bytes`) as well as in events: at the bound it stops taking events,
//! the broadcast moves on without it, and it reads them from the database once the
//! client has taken what it holds.

use std::{
    collections::{HashMap, HashSet},
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, watch};

use super::App;
use crate::{
    cache::{Caches, encoded_len},
    domain::{
        Error, Result,
        api_key::Caller,
        event::{Event, EventLog},
        id::Id,
    },
    store::Store,
};

/// Events in sequence order; ends when the server shuts down or the receiver goes, or
/// with `OUT_OF_RANGE` when pruning overtook the stream. Each event taken from it gives
/// its bytes back to the stream's buffer.
pub struct EventStream {
    receiver: mpsc::Receiver<(Result<Event>, Option<Hold>)>,
}

impl tokio_stream::Stream for EventStream {
    type Item = Result<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver
            .poll_recv(cx)
            .map(|next| next.map(|(item, _released)| item))
    }
}

const BATCH: u64 = 500;
/// Events the broadcast holds for a stream that is busy sending; one that falls
/// further behind catches up from the database instead.
const TAIL_CAPACITY: usize = 2 * BATCH as usize;
/// How often, and for how long after a local write, the feed looks for events when
/// another instance's sequencer numbers them.
const LOOK_OFTEN: Duration = Duration::from_millis(10);
const LOOK_OFTEN_FOR: Duration = Duration::from_secs(1);

/// How event streams are served.
#[derive(Debug, Clone, Copy)]
pub struct EventSettings {
    /// How often the feed looks for events that other instances committed.
    pub poll_interval: Duration,
    /// Open streams one API key may hold on this process.
    pub max_streams_per_key: usize,
    /// Reported by `GetEventLog`; pruning itself runs in `startup`.
    pub retention_days: u64,
    /// Estimated bytes of events one stream holds for its client (see [`event_bytes`]).
    pub stream_buffer_bytes: usize,
}

/// An event as the feed broadcasts it: weighed once for every stream.
struct Weighed {
    event: Event,
    bytes: usize,
}

/// The estimated bytes an event holds in memory: its resource as compact JSON (every
/// string in it) and its inline size.
pub(crate) fn event_bytes(event: &Event) -> usize {
    std::mem::size_of::<Event>()
        .saturating_add(event.kind.len())
        .saturating_add(encoded_len(&event.resource))
}

/// What one stream may hold for its client, in estimated bytes, and what it holds now.
#[derive(Clone)]
struct Budget {
    permits: Arc<Semaphore>,
    /// The bound, in permits (one per byte).
    max: u32,
    held: Arc<AtomicUsize>,
}

/// The bytes of one event a stream holds, from when it took the event until its client
/// takes it.
struct Hold {
    _permit: OwnedSemaphorePermit,
    bytes: usize,
    held: Arc<AtomicUsize>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl Budget {
    fn new(max_bytes: usize) -> Budget {
        let max = u32::try_from(max_bytes).unwrap_or(u32::MAX).max(1);
        Budget {
            permits: Arc::new(Semaphore::new(max as usize)),
            max,
            held: Arc::default(),
        }
    }

    /// An event larger than the whole bound takes all of it, so it is held alone.
    fn permits_for(&self, bytes: usize) -> u32 {
        u32::try_from(bytes).unwrap_or(u32::MAX).min(self.max)
    }

    fn hold(&self, permit: OwnedSemaphorePermit, bytes: usize) -> Hold {
        self.held.fetch_add(bytes, Ordering::Relaxed);
        Hold {
            _permit: permit,
            bytes,
            held: self.held.clone(),
        }
    }

    /// Room for `bytes` if the client has left it now.
    fn try_take(&self, bytes: usize) -> Option<Hold> {
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(self.permits_for(bytes))
            .ok()?;
        Some(self.hold(permit, bytes))
    }

    /// Waits until the client has left room for `bytes`, and reserves it until the
    /// permit is dropped; `None` when the client went or the server is shutting down
    /// first.
    async fn room(
        &self,
        bytes: usize,
        sender: &mpsc::Sender<(Result<Event>, Option<Hold>)>,
        shutting_down: &mut watch::Receiver<bool>,
    ) -> Option<OwnedSemaphorePermit> {
        let permits = self.permits_for(bytes);
        tokio::select! {
            permit = self.permits.clone().acquire_many_owned(permits) => permit.ok(),
            _ = sender.closed() => None,
            _ = shutting_down.wait_for(|down| *down) => None,
        }
    }

    /// Waits for room for an event of `bytes`, then holds them.
    async fn take(
        &self,
        bytes: usize,
        sender: &mpsc::Sender<(Result<Event>, Option<Hold>)>,
        shutting_down: &mut watch::Receiver<bool>,
    ) -> Option<Hold> {
        let permit = self.room(bytes, sender, shutting_down).await?;
        Some(self.hold(permit, bytes))
    }
}

/// The process's one poller, and the count of open streams per key.
#[derive(Clone)]
pub(crate) struct EventFeed {
    tail: broadcast::Sender<Arc<Weighed>>,
    open: Arc<Mutex<HashMap<Id, usize>>>,
    settings: EventSettings,
    /// The newest sequence the poller has read.
    head: Arc<AtomicI64>,
    /// Each open stream by its process-local number: its key and the last sequence
    /// it sent, for the metrics' lag.
    positions: StreamPositions,
    next_stream: Arc<AtomicU64>,
}

/// Each open stream by its process-local number.
type StreamPositions = Arc<Mutex<HashMap<u64, Position>>>;

/// One open stream's key, the last sequence it sent, and the bytes it holds.
struct Position {
    key: Id,
    sent: Arc<AtomicI64>,
    held: Arc<AtomicUsize>,
}

/// How far one open stream is behind the feed, and what it holds for its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLag {
    pub key: Id,
    pub stream: u64,
    pub events_behind: i64,
    /// Estimated bytes of events the stream holds that its client has not taken yet.
    pub buffered_bytes: usize,
}

impl EventFeed {
    /// Starts polling after the newest event committed so far.
    /// Each poll first applies the events it read to `caches`, then confirms their
    /// freshness as of the moment the poll began.
    pub(crate) async fn start(
        store: Store,
        settings: EventSettings,
        caches: Arc<Caches>,
        shutting_down: watch::Receiver<bool>,
    ) -> Result<EventFeed> {
        // Caches are empty now: whatever they store later is read after this moment.
        let started = Instant::now();
        let (_, head) = store.event_bounds().await?;
        caches.changes.confirm(started);
        let (tail, _) = broadcast::channel(TAIL_CAPACITY);
        let head_seen = Arc::new(AtomicI64::new(head));
        tokio::spawn(poll(
            store,
            tail.clone(),
            head_seen.clone(),
            head,
            settings.poll_interval,
            caches,
            shutting_down,
        ));
        Ok(EventFeed {
            tail,
            open: Arc::default(),
            settings,
            head: head_seen,
            positions: Arc::default(),
            next_stream: Arc::default(),
        })
    }

    pub(crate) fn head(&self) -> i64 {
        self.head.load(Ordering::Relaxed)
    }

    pub(crate) fn stream_lags(&self) -> Vec<StreamLag> {
        let head = self.head();
        let positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut lags: Vec<StreamLag> = positions
            .iter()
            .map(|(stream, position)| StreamLag {
                key: position.key,
                stream: *stream,
                events_behind: (head - position.sent.load(Ordering::Relaxed)).max(0),
                buffered_bytes: position.held.load(Ordering::Relaxed),
            })
            .collect();
        lags.sort_by_key(|lag| lag.stream);
        lags
    }

    fn take_slot(&self, key: Id) -> Result<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_default();
        if *count >= self.settings.max_streams_per_key {
            return Err(Error::ResourceExhausted(format!(
                "this API key already holds {} open event streams on this server (the limit, \
                 --max-streams-per-key); close one or use another key",
                self.settings.max_streams_per_key
            )));
        }
        *count += 1;
        let stream = self.next_stream.fetch_add(1, Ordering::Relaxed) + 1;
        let sent = Arc::new(AtomicI64::new(self.head()));
        let budget = Budget::new(self.settings.stream_buffer_bytes);
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                stream,
                Position {
                    key,
                    sent: sent.clone(),
                    held: budget.held.clone(),
                },
            );
        Ok(StreamSlot {
            open: self.open.clone(),
            key,
            positions: self.positions.clone(),
            stream,
            sent,
            budget,
        })
    }
}

/// One open stream of a key; giving it back (on drop) frees the place.
struct StreamSlot {
    open: Arc<Mutex<HashMap<Id, usize>>>,
    key: Id,
    positions: StreamPositions,
    stream: u64,
    /// The last sequence the stream sent (shared with its `Cursor`).
    sent: Arc<AtomicI64>,
    budget: Budget,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.stream);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The feed: one query per wake-up, woken by a local commit or the poll interval.
async fn poll(
    store: Store,
    tail: broadcast::Sender<Arc<Weighed>>,
    head: Arc<AtomicI64>,
    mut cursor: i64,
    every: Duration,
    caches: Arc<Caches>,
    mut shutting_down: watch::Receiver<bool>,
) {
    let mut committed = store.subscribe_events();
    let mut written = store.subscribe_written();
    // After this process wrote events that another instance's sequencer numbers, look
    // often for a while: its own streams should not wait a whole poll interval.
    let mut look_often_until: Option<Instant> = None;
    let mut failing = false;
    loop {
        let started = Instant::now();
        let full = match store.feed_after(cursor, BATCH).await {
            Ok((batch, age)) => {
                if failing {
                    failing = false;
                    tracing::info!("the event feed reads the database again");
                }
                let full = batch.len() as u64 == BATCH;
                for event in batch {
                    cursor = event.sequence;
                    caches.changed(&event.touched_ids());
                    // No receiver (no live stream) is not an error.
                    let bytes = event_bytes(&event);
                    let _ = tail.send(Arc::new(Weighed { event, bytes }));
                }
                head.store(cursor, Ordering::Relaxed);
                // Every write committed `age` before this read began has its events in
                // what was read (see `Store::feed_after`), so the caches are fresh as
                // of then.
                if !full && let Some(as_of) = started.checked_sub(age) {
                    caches.changes.confirm(as_of);
                }
                full
            }
            Err(error) => {
                if !failing {
                    failing = true;
                    tracing::warn!(%error, "the event feed cannot read the database");
                }
                false
            }
        };
        if full && !*shutting_down.borrow() {
            continue;
        }
        let pause = match look_often_until {
            Some(until) if Instant::now() < until && !store.is_sequencer() => LOOK_OFTEN,
            _ => every,
        };
        let pause = tokio::time::sleep(pause);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = committed.changed() => break,
                Ok(()) = async {
                    match written.as_mut() {
                        Some(written) => written.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    look_often_until = Some(Instant::now() + LOOK_OFTEN_FOR);
                    // This process's sequencer numbers what it wrote and then wakes
                    // `committed`: reading now would find nothing new.
                    if !store.is_sequencer() {
                        break;
                    }
                }
                _ = &mut pause => break,
                _ = shutting_down.wait_for(|down| *down) => return,
            }
        }
    }
}

/// Where a stream stands: the last sequence it sent, and whether the next must follow
/// it exactly (always, except before the first event of a stream from 0).
struct Cursor {
    last: i64,
    exact: bool,
    /// `last`, where the metrics read it.
    sent: Arc<AtomicI64>,
}

impl Cursor {
    /// Sequences are gap-free, so anything but the next one means pruning deleted
    /// events this stream has not sent yet.
    fn accept(&mut self, sequence: i64) -> Result<()> {
        if self.exact && sequence != self.last + 1 {
            return Err(Error::OutOfRange(format!(
                "events {} to {} were pruned before this stream sent them; resynchronise, \
                 then resume from a later sequence",
                self.last + 1,
                sequence - 1
            )));
        }
        self.last = sequence;
        self.exact = true;
        self.sent.store(sequence, Ordering::Relaxed);
        Ok(())
    }
}

/// What one step of a stream decided.
enum Step {
    /// Caught up with the database: follow the broadcast.
    Live,
    /// The broadcast skipped ahead or overflowed: read the database again.
    CatchUp,
    End,
}

impl App {
    /// Opens a stream of the events after `after_sequence` for `caller`. 0 starts from
    /// the oldest kept event; a positive value whose next event was pruned, or that is
    /// after the newest, is `OUT_OF_RANGE`.
    pub async fn stream_events(&self, caller: &Caller, after_sequence: i64) -> Result<EventStream> {
        if after_sequence < 0 {
            return Err(Error::invalid("after_sequence", "must not be negative"));
        }
        let (pruned_through, last) = self.store.event_bounds().await?;
        if after_sequence > 0 && after_sequence < pruned_through {
            return Err(Error::OutOfRange(format!(
                "events up to {pruned_through} are no longer kept; resynchronise, then resume \
                 from 0 or a later sequence"
            )));
        }
        if after_sequence > last {
            return Err(Error::OutOfRange(format!(
                "the newest event is {last}; {after_sequence} is after it"
            )));
        }
        let slot = self.events.take_slot(caller.key_id)?;
        // Subscribed before the first read, so nothing the feed broadcasts later is
        // missed, and whatever it broadcast earlier is in the database already.
        let live = self.events.tail.subscribe();
        let cursor = Cursor {
            last: after_sequence.max(pruned_through),
            exact: after_sequence > 0,
            sent: slot.sent.clone(),
        };
        cursor
            .sent
            .store(cursor.last.min(self.events.head()), Ordering::Relaxed);
        let (sender, receiver) = mpsc::channel(BATCH as usize);
        let budget = slot.budget.clone();
        let revoked = self.caches.revoked_keys.subscribe();
        tokio::spawn(follow(
            self.store.clone(),
            live,
            cursor,
            Outlet { sender, budget },
            self.shutting_down.clone(),
            slot,
            revoked,
        ));
        Ok(EventStream { receiver })
    }

    /// The bounds and retention of the kept log.
    pub async fn event_log(&self) -> Result<EventLog> {
        let (pruned_through, latest) = self.store.event_bounds().await?;
        Ok(EventLog::from_bounds(
            pruned_through,
            latest,
            self.events.settings.retention_days,
        ))
    }
}

/// Where a stream's events go: the queue its client reads, and the bytes it may hold.
struct Outlet {
    sender: mpsc::Sender<(Result<Event>, Option<Hold>)>,
    budget: Budget,
}

/// Serves one stream until it ends, or until the key watch reports its key revoked:
/// the key was checked only when the stream opened, so a revoked key would otherwise
/// keep receiving every change.
async fn follow(
    store: Store,
    mut live: broadcast::Receiver<Arc<Weighed>>,
    mut cursor: Cursor,
    outlet: Outlet,
    mut shutting_down: watch::Receiver<bool>,
    slot: StreamSlot,
    mut revoked: watch::Receiver<Arc<HashSet<Id>>>,
) {
    let key = slot.key;
    let ended_by_revocation = {
        let streaming = async {
            let mut step = Step::CatchUp;
            loop {
                step = match step {
                    Step::CatchUp => {
                        catch_up(&store, &mut cursor, &outlet, &mut shutting_down).await
                    }
                    Step::Live => {
                        follow_live(&mut live, &mut cursor, &outlet, &mut shutting_down).await
                    }
                    Step::End => return,
                };
            }
        };
        // `wait_for` also sees a revocation published before this stream subscribed.
        // Its sender lives as long as the caches, so an error only comes at exit.
        let revocation = async {
            if revoked.wait_for(|ids| ids.contains(&key)).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = streaming => false,
            () = revocation => true,
        }
    };
    if ended_by_revocation {
        deliver(
            &outlet,
            Err(Error::Unauthenticated(
                "the API key of this stream was revoked",
            )),
            None,
            &mut shutting_down,
        )
        .await;
    }
    drop(slot);
}

/// Reads the database from the cursor until a batch comes back short, holding no more
/// of each batch than the stream's bound leaves room for.
async fn catch_up(
    store: &Store,
    cursor: &mut Cursor,
    outlet: &Outlet,
    shutting_down: &mut watch::Receiver<bool>,
) -> Step {
    // Half the bound free before each read: a slow client's stream then reads the
    // database in steps of half its bound, not an event per query.
    let half = outlet.budget.max as usize / 2;
    loop {
        if outlet
            .budget
            .room(half, &outlet.sender, shutting_down)
            .await
            .is_none()
        {
            return Step::End;
        }
        let batch = match store.events_after(cursor.last, BATCH).await {
            Ok(batch) => batch,
            Err(error) => {
                deliver(outlet, Err(error), None, shutting_down).await;
                return Step::End;
            }
        };
        let full = batch.len() as u64 == BATCH;
        let mut held = Vec::with_capacity(batch.len());
        let mut cut = false;
        for event in batch {
            let bytes = event_bytes(&event);
            let hold = match outlet.budget.try_take(bytes) {
                Some(hold) => hold,
                // What does not fit is dropped, and read again once the client has
                // taken what the stream holds.
                None if !held.is_empty() => {
                    cut = true;
                    break;
                }
                None => match outlet
                    .budget
                    .take(bytes, &outlet.sender, shutting_down)
                    .await
                {
                    Some(hold) => hold,
                    None => return Step::End,
                },
            };
            held.push((event, hold));
        }
        for (event, hold) in held {
            if let Err(error) = cursor.accept(event.sequence) {
                deliver(outlet, Err(error), None, shutting_down).await;
                return Step::End;
            }
            if !deliver(outlet, Ok(event), Some(hold), shutting_down).await {
                return Step::End;
            }
        }
        if !full && !cut {
            return Step::Live;
        }
    }
}

async fn follow_live(
    live: &mut broadcast::Receiver<Arc<Weighed>>,
    cursor: &mut Cursor,
    outlet: &Outlet,
    shutting_down: &mut watch::Receiver<bool>,
) -> Step {
    loop {
        let received = tokio::select! {
            received = live.recv() => received,
            _ = outlet.sender.closed() => return Step::End,
            _ = shutting_down.wait_for(|down| *down) => return Step::End,
        };
        let weighed = match received {
            Ok(weighed) => weighed,
            Err(broadcast::error::RecvError::Lagged(_)) => return Step::CatchUp,
            Err(broadcast::error::RecvError::Closed) => return Step::End,
        };
        let sequence = weighed.event.sequence;
        if sequence <= cursor.last {
            // Already sent while catching up.
            continue;
        }
        if sequence != cursor.last + 1 {
            // The database tells whether the missing ones were pruned (then the
            // stream ends OUT_OF_RANGE) or merely not broadcast to this receiver.
            return Step::CatchUp;
        }
        // While this waits for the client, the broadcast moves on; if it overtakes
        // the stream, the next receive says so and the stream reads the database.
        let Some(hold) = outlet
            .budget
            .take(weighed.bytes, &outlet.sender, shutting_down)
            .await
        else {
            return Step::End;
        };
        if cursor.accept(sequence).is_err()
            || !deliver(outlet, Ok(weighed.event.clone()), Some(hold), shutting_down).await
        {
            return Step::End;
        }
    }
}

/// Sends one item unless the consumer went or the server is shutting down, so a
/// consumer that stopped reading does not hold up shutdown.
async fn deliver(
    outlet: &Outlet,
    item: Result<Event>,
    hold: Option<Hold>,
    shutting_down: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        sent = outlet.sender.send((item, hold)) => sent.is_ok(),
        _ = shutting_down.wait_for(|down| *down) => false,
    }
}
