//! PostgreSQL's event sequencer: numbers committed events, so that no write waits on a
//! row every write updates.
//!
//! A write transaction inserts its events into `pending_events` (no sequence, no
//! shared row) as its last statement before COMMIT, after every row lock it takes. The
//! sequencer, one per database, moves committed ones into `events` in batches, each in
//! one statement: it deletes the pending rows of whole transactions, numbers them after
//! `event_log_state.last_sequence`, inserts them into `events` and advances
//! `last_sequence`. One statement at a time on one connection means sequence N+1 never
//! becomes visible before N.
//!
//! Why the log is a serial history. Take two transactions A and B that change the same
//! row, A's change first. B locks that row only after A committed, and B inserts its
//! pending rows after its last lock, so every pending id of B is larger than every one
//! of A (ids come from one sequence, in the order the inserts ran; A's were taken before
//! A's COMMIT). Any snapshot that sees B committed sees A committed too, so A is in the
//! same batch as B or an earlier one; within a batch, transactions go in the order of
//! their first pending id, so A before B. A transaction's events are contiguous because
//! a batch takes every pending row of each transaction it picks (they became visible
//! together, at its commit) and orders them together. Transaction ids play no part in
//! the order (only in grouping): PostgreSQL hands one out at a transaction's first
//! write or lock, which may be long before it waited for a row and committed, so
//! ordering by it could put a cascade that began first, waited, and committed last
//! ahead of the update it waited for. The single-statement writes
//! (`user_batches`) insert their pending rows only after all their user rows, for the
//! same reason.
//!
//! Why not the transaction-id horizon design (number at insert, publish below
//! `pg_snapshot_xmin`): here a sequence exists only after commit, so there is no
//! horizon to wait for, and one long transaction anywhere on the cluster (a
//! `pg_dump`, a session idle in transaction) cannot hold the whole log back.
//!
//! Exactly one sequencer runs: each process tries `pg_try_advisory_lock` on a
//! connection of its own every `TAKEOVER_POLL` and stamps only on that connection, so
//! a holder that lost the database cannot stamp either. A holder that dies frees the
//! lock with its connection and the next instance to ask has it within
//! `TAKEOVER_POLL`. A holder that stops without dying (frozen by SIGSTOP or a stalled
//! VM, cut off by the network, stuck in a statement) is ended by PostgreSQL itself,
//! which bounds that session: idle for `IDLE_SESSION_TIMEOUT` (a working sequencer
//! sends a statement at least every `FRESHEN_EVERY`), a statement past
//! `SERVER_STATEMENT_TIMEOUT`, data unacknowledged by the peer for `TCP_USER_TIMEOUT`,
//! keepalives unanswered. The session's end frees the lock, another instance takes it
//! within `TAKEOVER_POLL`, and the stopped one, when it resumes, finds its connection
//! closed: it can only stand by and ask for the lock again. Numbering so stops for
//! about 2.3 s when the holder froze between statements (measured 2.03–2.14 s), and
//! at most about 4.3 s when it froze inside a stuck statement (cancelled at 2 s, then
//! idle for 2 s).
//!
//! `event_log_state.complete_as_of` (the database's clock) is when the log was last
//! known complete: every transaction committed before it is numbered. Caches on every
//! instance take their freshness from it (see `Store::feed_after`).

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use sea_orm::sqlx::{self, Connection as _, PgConnection, Row as _, postgres::PgConnectOptions};
use tokio::sync::watch;

use super::Store;

use super::advisory_lock::SEQUENCER as LOCK_KEY;
/// Pending rows one statement picks; it moves every event of their transactions.
pub(crate) const BATCH: i64 = 1000;
/// How often an instance that is not the sequencer asks for the lock.
const TAKEOVER_POLL: Duration = Duration::from_millis(250);
/// How often the sequencer looks for events committed by other instances (its own
/// instance's commits wake it at once).
const IDLE_POLL: Duration = Duration::from_millis(10);
/// A batch that moved events is followed by the next one no sooner than this (unless
/// it was full): under load the events of many commits gather meanwhile and one
/// statement, one commit, numbers them all. It adds at most this to the visibility lag.
const STAMP_GAP: Duration = Duration::from_millis(4);
/// How often, while events flow, the sequencer vacuums `pending_events` itself (see
/// `hold_and_stamp`).
const VACUUM_EVERY: Duration = Duration::from_secs(1);
/// Without truncation: giving the freed pages back to the file takes a lock that every
/// write's insert into `pending_events` would wait behind; they are reused instead.
const VACUUM: &str = "VACUUM (TRUNCATE false) pending_events";
/// How often an idle sequencer renews `complete_as_of`.
const FRESHEN_EVERY: Duration = Duration::from_millis(100);
/// A statement of the sequencer that takes longer is abandoned with its connection
/// (and so the lock).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// PostgreSQL ends the sequencer's session when it sent nothing for this long (its
/// process frozen or its host gone quiet), which frees the lock.
const IDLE_SESSION_TIMEOUT: &str = "2000";
/// PostgreSQL cancels a statement of the sequencer's that ran this long, so a stuck
/// one holds the lock no longer (then the client's `STATEMENT_TIMEOUT` drops it).
const SERVER_STATEMENT_TIMEOUT: &str = "2000";
/// PostgreSQL drops the session when data it sent stays unacknowledged this long.
const TCP_USER_TIMEOUT: &str = "2000";

/// Numbers the batch and moves it; answers (rows picked, rows moved, last sequence
/// after).
///
/// The batch is every pending event of each transaction among the oldest `$1` rows,
/// so a transaction's events are never split over two batches. Within it, transactions
/// go in the order of their first pending row's id, and each one's events in id order
/// (see the module's comment for why that is the order their changes took effect).
/// An event's `time` is when it was numbered, by the database's clock: one clock for
/// every instance, which retention then compares with (`Store::prune_events`).
const STAMP: &str = "
WITH picked AS (
    SELECT id, txid FROM pending_events ORDER BY id LIMIT $1
),
batch AS (
    DELETE FROM pending_events
    WHERE txid IN (SELECT txid FROM picked)
    RETURNING txid, id, kind, resource_id, customer_id, payload
),
ordered AS (
    SELECT b.id, b.kind, b.resource_id, b.customer_id, b.payload,
           min(b.id) OVER (PARTITION BY b.txid) AS first_id
    FROM batch b
),
numbered AS (
    SELECT s.last_sequence + row_number() OVER (ORDER BY o.first_id, o.id) AS sequence,
           o.kind, o.resource_id, o.customer_id, o.payload
    FROM ordered o CROSS JOIN event_log_state s WHERE s.id = 1
),
inserted AS (
    INSERT INTO events (sequence, kind, resource_id, customer_id, time, payload)
    SELECT sequence, kind, resource_id, customer_id,
           (extract(epoch FROM statement_timestamp()) * 1000000)::bigint, payload
    FROM numbered
    RETURNING sequence
),
head AS (
    UPDATE event_log_state
    SET last_sequence = last_sequence + (SELECT count(*) FROM inserted),
        complete_as_of = CASE WHEN (SELECT count(*) FROM picked) < $1
            THEN (extract(epoch FROM statement_timestamp()) * 1000000)::bigint
            ELSE complete_as_of END
    WHERE id = 1 AND EXISTS (SELECT 1 FROM inserted)
    RETURNING last_sequence
)
SELECT (SELECT count(*) FROM picked) AS picked, (SELECT count(*) FROM inserted) AS moved,
       (SELECT last_sequence FROM head) AS last";

/// Renews `complete_as_of` while nothing is pending. Losing it in a crash loses
/// nothing (it is a freshness mark), so it does not wait for the disk.
const FRESHEN: &str = "
BEGIN;
SET LOCAL synchronous_commit TO off;
UPDATE event_log_state
SET complete_as_of = (extract(epoch FROM statement_timestamp()) * 1000000)::bigint
WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM pending_events);
COMMIT;";

/// The sequencer's share of a PostgreSQL store.
pub(super) struct Sequencer {
    options: PgConnectOptions,
    /// Bumped after each commit that wrote pending events: wakes the sequencer.
    written: watch::Sender<u64>,
    /// This process holds the lock and stamps.
    active: AtomicBool,
}

impl Sequencer {
    pub(super) fn new(options: PgConnectOptions) -> Sequencer {
        Sequencer {
            options: options.application_name("tenancy-sequencer").options([
                // PostgreSQL notices a holder whose host vanished in about 3 s and
                // frees its lock for another instance.
                ("tcp_keepalives_idle", "1"),
                ("tcp_keepalives_interval", "1"),
                ("tcp_keepalives_count", "2"),
                ("tcp_user_timeout", TCP_USER_TIMEOUT),
                // A frozen holder's kernel still answers keepalives: the session's
                // silence is what tells.
                ("idle_session_timeout", IDLE_SESSION_TIMEOUT),
                ("idle_in_transaction_session_timeout", IDLE_SESSION_TIMEOUT),
                ("statement_timeout", SERVER_STATEMENT_TIMEOUT),
            ]),
            written: watch::channel(0).0,
            active: AtomicBool::new(false),
        }
    }

    pub(super) fn written(&self) {
        self.written
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    pub(super) fn subscribe_written(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    pub(super) fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }
}

enum Ended {
    ShuttingDown,
    Failed(sqlx::Error),
}

impl Store {
    /// Runs the sequencer until the server shuts down: takes the lock when it is free,
    /// then numbers committed events. Returns at once on SQLite, which numbers events
    /// in the writing transaction.
    pub async fn run_sequencer(self, mut shutting_down: watch::Receiver<bool>) {
        let Some(sequencer) = self.sequencer.clone() else {
            return;
        };
        let mut failures = 0u32;
        while !*shutting_down.borrow() {
            let ended = self.hold_and_stamp(&sequencer, &mut shutting_down).await;
            if sequencer.active.swap(false, Ordering::Relaxed) {
                tracing::info!("this process stopped numbering events");
            }
            let pause = match ended {
                Ended::ShuttingDown => return,
                Ended::Failed(error) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_multiple_of(60) {
                        tracing::warn!(%error, "the event sequencer lost its connection; reconnecting");
                    }
                    Duration::from_millis(200)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutting_down.wait_for(|down| *down) => return,
            }
        }
    }

    async fn hold_and_stamp(
        &self,
        sequencer: &Sequencer,
        shutting_down: &mut watch::Receiver<bool>,
    ) -> Ended {
        let mut connection = match bounded(PgConnection::connect_with(&sequencer.options)).await {
            Ok(connection) => connection,
            Err(error) => return Ended::Failed(error),
        };
        // Asks again every `TAKEOVER_POLL` rather than waiting in `pg_advisory_lock`:
        // a statement that waits keeps its snapshot, and a snapshot held for as long
        // as another instance numbers events would keep vacuum from removing any dead
        // row in the whole database (the moved `pending_events`, the counter row's
        // versions, every update's old rows).
        loop {
            let taken = bounded(
                sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                    .bind(LOCK_KEY)
                    .fetch_one(&mut connection),
            )
            .await;
            match taken {
                Ok(true) => break,
                Ok(false) => {}
                Err(error) => return Ended::Failed(error),
            }
            tokio::select! {
                _ = tokio::time::sleep(TAKEOVER_POLL) => {}
                _ = shutting_down.wait_for(|down| *down) => return Ended::ShuttingDown,
            }
        }
        // `pending_events` holds a few live rows and, between vacuums, every row
        // moved since: its statistics make a sequential scan look cheapest, which
        // would read every dead row at each batch. The batch takes the oldest rows by
        // the primary key instead, and the table is vacuumed every second while
        // events flow (autovacuum looks at most once a minute), so it stays a few
        // pages long however long the load lasts.
        if let Err(error) =
            bounded(sqlx::query("SET enable_seqscan = off").execute(&mut connection)).await
        {
            return Ended::Failed(error);
        }
        sequencer.active.store(true, Ordering::Relaxed);
        tracing::info!("this process numbers the events (the event sequencer)");
        let mut vacuumed = Instant::now();
        let mut moved_since_vacuum = 0i64;
        let mut written = sequencer.written.subscribe();
        let mut freshened = Instant::now();
        loop {
            if *shutting_down.borrow() {
                // Closing the connection frees the lock for another instance at once.
                let _ = connection.close().await;
                return Ended::ShuttingDown;
            }
            // A commit from here on wakes the wait below, even one this batch moves.
            written.borrow_and_update();
            let stamped = Instant::now();
            let row = match bounded(sqlx::query(STAMP).bind(BATCH).fetch_one(&mut connection)).await
            {
                Ok(row) => row,
                Err(error) => return Ended::Failed(error),
            };
            let moved: i64 = row.try_get("moved").unwrap_or(0);
            let picked: i64 = row.try_get("picked").unwrap_or(0);
            moved_since_vacuum += moved;
            if moved_since_vacuum > 0 && vacuumed.elapsed() >= VACUUM_EVERY {
                if let Err(error) = bounded(sqlx::raw_sql(VACUUM).execute(&mut connection)).await {
                    return Ended::Failed(error);
                }
                vacuumed = Instant::now();
                moved_since_vacuum = 0;
            }
            if moved > 0 {
                if let Ok(Some(last)) = row.try_get::<Option<i64>, _>("last") {
                    self.last_event.send_if_modified(|known| {
                        let newer = last > *known;
                        if newer {
                            *known = last;
                        }
                        newer
                    });
                }
                freshened = Instant::now();
                if picked < BATCH {
                    tokio::select! {
                        _ = tokio::time::sleep_until((stamped + STAMP_GAP).into()) => {}
                        _ = shutting_down.wait_for(|down| *down) => {}
                    }
                }
                // What committed meanwhile, here or on another instance, is in the next
                // batch; an empty one leads to the wait below.
                continue;
            } else if freshened.elapsed() >= FRESHEN_EVERY {
                if let Err(error) = bounded(sqlx::raw_sql(FRESHEN).execute(&mut connection)).await {
                    return Ended::Failed(error);
                }
                freshened = Instant::now();
            }
            tokio::select! {
                _ = written.changed() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = shutting_down.wait_for(|down| *down) => {}
            }
        }
    }

    /// Whether this process is the one numbering events (PostgreSQL).
    pub fn is_sequencer(&self) -> bool {
        self.sequencer
            .as_ref()
            .is_some_and(|sequencer| sequencer.active())
    }
}

async fn bounded<T>(
    work: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    tokio::time::timeout(STATEMENT_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the database did not answer the sequencer within 5 s",
            )))
        })
}
