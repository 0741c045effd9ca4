//! PostgreSQL's event sequencer: numbers committed events, so that no write waits on a
//! row every write updates.
//!
//! A write transaction inserts its events into `pending_events` (no sequence, no
//! shared row). The sequencer, one per database, moves committed ones into `events`
//! in batches, each in one statement: it deletes up to `BATCH` pending rows, numbers
//! them after `event_log_state.last_sequence` in (transaction id, insertion) order,
//! inserts them into `events` and advances `last_sequence`. A row is visible to the
//! sequencer only once its transaction committed, so sequences follow commit order: a
//! transaction that committed late is numbered late, never behind a consumer's cursor;
//! within a batch, a transaction that began after another committed has the larger
//! transaction id and comes after it. One statement at a time on one connection means
//! sequence N+1 never becomes visible before N.
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
//! `TAKEOVER_POLL`. Server-side TCP keepalives on that connection let PostgreSQL drop
//! a holder whose host vanished within a few seconds; the holder's own statements are
//! bounded by `STATEMENT_TIMEOUT` on the client.
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
/// Events moved in one statement.
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

/// Numbers the batch and moves it; answers (rows moved, last sequence after).
const STAMP: &str = "
WITH batch AS (
    DELETE FROM pending_events
    WHERE id IN (SELECT id FROM pending_events ORDER BY id LIMIT $1)
    RETURNING txid, id, kind, resource_id, customer_id, time, payload
),
numbered AS (
    SELECT s.last_sequence + row_number() OVER (ORDER BY b.txid, b.id) AS sequence,
           b.kind, b.resource_id, b.customer_id, b.time, b.payload
    FROM batch b CROSS JOIN event_log_state s WHERE s.id = 1
),
inserted AS (
    INSERT INTO events (sequence, kind, resource_id, customer_id, time, payload)
    SELECT sequence, kind, resource_id, customer_id, time, payload FROM numbered
    RETURNING sequence
),
head AS (
    UPDATE event_log_state
    SET last_sequence = last_sequence + (SELECT count(*) FROM inserted),
        complete_as_of = CASE WHEN (SELECT count(*) FROM inserted) < $1
            THEN (extract(epoch FROM statement_timestamp()) * 1000000)::bigint
            ELSE complete_as_of END
    WHERE id = 1 AND EXISTS (SELECT 1 FROM inserted)
    RETURNING last_sequence
)
SELECT (SELECT count(*) FROM inserted) AS moved, (SELECT last_sequence FROM head) AS last";

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
                if moved < BATCH {
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
