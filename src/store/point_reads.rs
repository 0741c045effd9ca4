//! PostgreSQL connections of their own for single-statement reads.
//!
//! sqlx's pool pings every connection when it is given back (a second round trip per
//! read, and a task spawned for it) because a query abandoned half-way can leave a
//! connection mid-protocol. Here a connection goes straight back to the idle list only
//! when its statement ran to the end, so nothing needs checking; a connection that
//! broke is dropped and the read retried once on a fresh one.
//!
//! A read whose caller went away mid-statement (a deadline, a disconnect: its future is
//! dropped) does not just close its socket: PostgreSQL does not notice a closed socket
//! while a statement waits (on a lock, say), so its backend would live on until
//! `statement_timeout`, and short deadlines against a locked table would pile backends
//! up far past the connection bound. The connection goes, with its permit, to a task
//! that asks PostgreSQL to cancel the statement (`pg_cancel_backend` over the store's
//! pool: sqlx keeps to itself the key a protocol CancelRequest needs), reads what is
//! left of its answer and keeps the connection, or closes it when anything fails. The
//! permit is held until then, when the statement is over (or, after a failure, at its
//! `statement_timeout`), so backends stay within the permits. A cancel is
//! signalled before the Sync that ends the wait is sent, and a backend drops a pending
//! cancel when it next reads from its client between statements, so a cancel that came
//! too late for its statement is spent before that Sync is answered: it never reaches
//! the connection's next statement. One that came too early (before the backend began
//! the statement) is sent again; one whose fate is unknown (an error, no answer in
//! time) might still arrive, so its connection is closed once it is ready, not kept.
//!
//! Every read is bounded (`ConnectionLimits`): a read with no answer within the read
//! timeout (a database that stopped answering, a NAT entry dropped on the way) answers
//! `UNAVAILABLE`, its connection is dropped, and so are the idle ones, likely cut off
//! the same way; the next read opens a new connection. PostgreSQL also ends such a
//! statement itself (`statement_timeout` is the read timeout), so there is nothing left
//! to cancel, and a cancel would wait on a pool that is likely cut off too. Connections
//! idle past the idle limit or older than the age limit are closed instead of reused,
//! so none outlives a middlebox's idle timer or a failover unnoticed. sqlx's
//! `PgConnectOptions` has no TCP keepalive setting; the read timeout is what finds a
//! dead peer.
//!
//! These connections keep PostgreSQL's default `plan_cache_mode`: a point read's
//! generic plan is the index lookup it means, and re-planning it on every execution
//! costs the database ~15 % of a point select (the pool's `force_custom_plan` exists
//! for the `LIKE` prefix filters of lists, which stay on the pool).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use sea_orm::{
    DbErr, QueryResult, RuntimeErr, Statement,
    sqlx::{
        self, Connection as _, PgConnection,
        postgres::{PgConnectOptions, PgPool},
    },
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ConnectionLimits;

/// How long a cancelled statement's answer is first awaited before the cancel is sent
/// again (it may have reached the backend before the statement began); doubled at
/// each round, within the read timeout.
const FIRST_CANCEL_WAIT: Duration = Duration::from_millis(50);

/// Up to `capacity` connections, opened on first use and kept while they work.
pub(super) struct PointReads {
    options: PgConnectOptions,
    /// Idle connections, most recently used last: a quiet service reuses one warm
    /// connection (its statements already prepared) rather than cycling through all.
    idle: Mutex<Vec<Idle>>,
    /// One permit per connection that may exist, idle, in use or being recovered.
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
    limits: ConnectionLimits,
    capacity: usize,
    /// The store's pool, which sends the cancels.
    canceller: PgPool,
}

/// An open connection and the backend serving it.
struct Open {
    connection: PgConnection,
    backend: BackendId,
    opened: Instant,
}

/// A backend named so that a cancel never reaches another: a pid may be reused by a
/// later backend once this one has ended, its start time with it cannot.
#[derive(Clone, Copy)]
struct BackendId {
    pid: i32,
    started: DateTime<Utc>,
}

struct Idle {
    open: Open,
    since: Instant,
}

impl Idle {
    fn expired(&self, limits: &ConnectionLimits, now: Instant) -> bool {
        now.duration_since(self.since) > limits.max_idle
            || now.duration_since(self.open.opened) > limits.max_age
    }
}

/// A connection taken for one statement, with its permit. Back to the idle list through
/// `finish`, closed through `discard`; dropped without either (its caller went away
/// mid-statement), it is recovered by a task of its own (`PointReads::recover`).
pub(super) struct Lease {
    reads: Arc<PointReads>,
    open: Option<Open>,
    permit: Option<OwnedSemaphorePermit>,
}

impl PointReads {
    pub(super) fn new(
        url: &str,
        capacity: u32,
        acquire_timeout: Duration,
        limits: ConnectionLimits,
        canceller: PgPool,
    ) -> Result<Self, DbErr> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))?;
        let statement_timeout = format!("{}ms", limits.read_timeout.as_millis().max(1));
        Ok(PointReads {
            options: options
                .application_name("tenancy")
                .options([("statement_timeout", statement_timeout.as_str())]),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(capacity.max(1) as usize)),
            acquire_timeout,
            limits,
            capacity: capacity.max(1) as usize,
            canceller,
        })
    }

    fn drop_idle(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Runs one statement and returns its first row. A failure on a connection that
    /// broke (see `super::is_broken_connection`) empties the idle list, whose
    /// connections likely broke too, and runs the statement once more on a new one.
    pub(super) async fn query_one(
        self: &Arc<Self>,
        statement: &Statement,
    ) -> Result<Option<QueryResult>, DbErr> {
        match self.query_one_once(statement).await {
            Err(err) if super::is_broken_connection(&err) => {
                tracing::debug!(%err, "a point-read connection broke; retrying the read once");
                self.drop_idle();
                self.query_one_once(statement).await
            }
            other => other,
        }
    }

    /// Connections running a statement now, or recovering from one whose caller went
    /// away.
    pub(super) fn in_use(&self) -> usize {
        self.capacity
            .saturating_sub(self.permits.available_permits())
    }

    /// Closes the idle connections politely (the server is stopping); connections
    /// being recovered are closed when they are ready.
    pub(super) async fn close(&self) {
        self.permits.close();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for idle in idle {
            let _ = idle.open.connection.close().await;
        }
    }

    async fn query_one_once(
        self: &Arc<Self>,
        statement: &Statement,
    ) -> Result<Option<QueryResult>, DbErr> {
        let lease = self.lease().await?;
        self.run(lease, statement).await
    }

    /// Runs one statement on `lease`'s connection and returns its first row; the
    /// connection is kept when the statement ran to its end, closed otherwise. A
    /// statement that writes runs here in its own implicit transaction.
    pub(super) async fn run(
        &self,
        mut lease: Lease,
        statement: &Statement,
    ) -> Result<Option<QueryResult>, DbErr> {
        let values = statement
            .values
            .clone()
            .unwrap_or_else(|| sea_orm::Values(Vec::new()));
        let query = sqlx::query_with(
            sqlx::AssertSqlSafe(statement.sql.as_str()),
            SqlxValues(values),
        );
        let connection = &mut lease
            .open
            .as_mut()
            .expect("a lease holds its connection until it is finished")
            .connection;
        let timeout = self.limits.read_timeout;
        match tokio::time::timeout(timeout, query.fetch_optional(connection)).await {
            Ok(Ok(row)) => {
                lease.finish();
                Ok(row.map(QueryResult::from))
            }
            // After an error the connection may be anywhere in the protocol, and
            // errors on point reads are rare: closed rather than checked.
            Ok(Err(err)) => {
                lease.discard();
                Err(DbErr::Query(RuntimeErr::SqlxError(Arc::new(err))))
            }
            // No answer in time: the connection is dropped, and the idle ones with it.
            // Not retried: a second wait would double the caller's.
            Err(_) => {
                lease.discard();
                self.drop_idle();
                tracing::warn!(
                    timeout_ms = timeout.as_millis(),
                    "a point read got no answer in time; its connection is dropped"
                );
                Err(DbErr::Conn(RuntimeErr::Internal(format!(
                    "the database did not answer a read within {} ms",
                    timeout.as_millis()
                ))))
            }
        }
    }

    /// A connection and its permit, for one statement.
    pub(super) async fn lease(self: &Arc<Self>) -> Result<Lease, DbErr> {
        let timed_out = || DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout);
        let permit =
            tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| timed_out())?
                .map_err(|_| DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed))?;
        let idle = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            // Dropping closes the socket (without a Terminate message, as a read that
            // broke does).
            idle.retain(|connection| !connection.expired(&self.limits, now));
            idle.pop()
        };
        let open = match idle {
            Some(idle) => idle.open,
            None => tokio::time::timeout(self.acquire_timeout, self.open())
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))?,
        };
        Ok(Lease {
            reads: self.clone(),
            open: Some(open),
            permit: Some(permit),
        })
    }

    /// A new connection, and which backend serves it (for a cancel).
    async fn open(&self) -> Result<Open, sqlx::Error> {
        let mut connection = PgConnection::connect_with(&self.options).await?;
        let (pid, started) = sqlx::query_as(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()",
        )
        .persistent(false)
        .fetch_one(&mut connection)
        .await?;
        Ok(Open {
            connection,
            backend: BackendId { pid, started },
            opened: Instant::now(),
        })
    }

    /// Back to the idle list, unless it is past the age limit or the reads are closed.
    fn keep(&self, open: Open) {
        let now = Instant::now();
        if now.duration_since(open.opened) > self.limits.max_age || self.permits.is_closed() {
            return;
        }
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Idle { open, since: now });
    }

    /// A read's caller went away mid-statement: cancels the statement and waits until
    /// the connection is ready for the next one, then keeps it; closes it when anything
    /// fails. Within the read timeout, by which `statement_timeout` has ended the
    /// statement anyway (it began before this).
    async fn recover(&self, mut open: Open) {
        let deadline = Instant::now() + self.limits.read_timeout;
        let mut wait = FIRST_CANCEL_WAIT;
        // Every cancel sent is known to have been signalled (or known not to be).
        let mut settled = true;
        let drained = loop {
            if settled {
                let left = deadline.saturating_duration_since(Instant::now());
                let cancel = self.cancel(open.backend);
                match tokio::time::timeout(left.min(self.acquire_timeout), cancel).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "cancelling an abandoned point read failed");
                        settled = false;
                    }
                    Err(_) => settled = false,
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // Once no more cancels are sent, the statement ends by `statement_timeout`.
            let round = if settled { wait.min(left) } else { left };
            match tokio::time::timeout(round, drain(&mut open.connection)).await {
                Ok(drained) => break Some(drained),
                Err(_) if round >= left => break None,
                Err(_) => wait *= 2,
            }
        };
        match drained {
            Some(Ok(())) if settled => self.keep(open),
            // A cancel whose fate is unknown could still reach the next statement.
            Some(Ok(())) => {
                let _ = open.connection.close().await;
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "an abandoned point read's connection broke");
            }
            None => tracing::debug!("an abandoned point read was not over in time"),
        }
    }

    /// Asks PostgreSQL to cancel what `backend` runs; done when the signal was sent, or
    /// when there is no such backend any more (the connection then reports it broken).
    async fn cancel(&self, backend: BackendId) -> Result<(), sqlx::Error> {
        sqlx::query_scalar::<_, bool>(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
             WHERE pid = $1 AND backend_start = $2",
        )
        .bind(backend.pid)
        .bind(backend.started)
        .fetch_optional(&self.canceller)
        .await
        .map(drop)
    }
}

/// Reads the rest of an abandoned statement's answer, then the answer to a Sync: the
/// connection is then ready for the next statement. An error answer (the cancelled
/// statement's, most likely) ends one wait; the next goes on past it.
async fn drain(connection: &mut PgConnection) -> Result<(), sqlx::Error> {
    // At most one statement was abandoned, so one error answer, two if a cancel
    // reached the Sync itself.
    let mut errors = 0;
    loop {
        match connection.ping().await {
            Err(sqlx::Error::Database(_)) if errors < 2 => errors += 1,
            other => return other,
        }
    }
}

impl Lease {
    /// The statement ran to its end (or none was sent): the connection is ready for
    /// the next one.
    pub(super) fn finish(mut self) {
        if let Some(open) = self.open.take() {
            self.reads.keep(open);
        }
    }

    /// The statement failed or got no answer in time: the connection is closed (its
    /// socket, without a Terminate message).
    fn discard(mut self) {
        self.open = None;
    }
}

impl Drop for Lease {
    /// Reached with the connection only when the caller went away mid-statement.
    fn drop(&mut self) {
        let (Some(open), Some(permit)) = (self.open.take(), self.permit.take()) else {
            return;
        };
        // Without a runtime (the process is stopping) the connection is just dropped.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let reads = self.reads.clone();
            runtime.spawn(async move {
                reads.recover(open).await;
                drop(permit);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL for the tests here, when reachable (`TENANCY_REQUIRE_POSTGRES=1`
    /// makes its absence a failure).
    async fn reads(limits: ConnectionLimits) -> Option<Arc<PointReads>> {
        let url = std::env::var("TENANCY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
        let canceller = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy(&url)
            .ok()?;
        let reads = PointReads::new(&url, 1, Duration::from_secs(3), limits, canceller).ok()?;
        let reads = Arc::new(reads);
        let reachable = reads
            .query_one(&Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT 1",
            ))
            .await
            .is_ok();
        if !reachable {
            assert_ne!(
                std::env::var("TENANCY_REQUIRE_POSTGRES").as_deref(),
                Ok("1"),
                "PostgreSQL is required but {url} is unreachable"
            );
            return None;
        }
        Some(reads)
    }

    #[tokio::test]
    async fn the_read_timeout_is_the_connections_statement_timeout() {
        let limits = ConnectionLimits {
            read_timeout: Duration::from_millis(1234),
            ..ConnectionLimits::default()
        };
        let Some(reads) = reads(limits).await else {
            return;
        };
        let row = reads
            .query_one(&Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT current_setting('statement_timeout') AS timeout",
            ))
            .await
            .expect("read")
            .expect("a row");
        let timeout: String = row.try_get("", "timeout").expect("a setting");
        reads.close().await;
        assert_eq!(timeout, "1234ms");
    }

    fn sql(text: &str) -> Statement {
        Statement::from_string(sea_orm::DbBackend::Postgres, text)
    }

    async fn backend_pid(reads: &Arc<PointReads>) -> i32 {
        let row = reads
            .query_one(&sql("SELECT pg_backend_pid() AS pid"))
            .await
            .expect("read")
            .expect("a row");
        row.try_get("", "pid").expect("a pid")
    }

    #[tokio::test]
    async fn a_read_whose_caller_went_away_has_its_statement_cancelled_and_its_connection_kept() {
        let Some(reads) = reads(ConnectionLimits::default()).await else {
            return;
        };
        let first = backend_pid(&reads).await;
        let abandoned = tokio::time::timeout(
            Duration::from_millis(200),
            reads.query_one(&sql("SELECT pg_sleep(5)")),
        )
        .await;
        // The one connection's permit comes back once the sleep was cancelled.
        let started = Instant::now();
        let next = backend_pid(&reads).await;
        let took = started.elapsed();
        reads.close().await;
        assert!(abandoned.is_err(), "the caller went away");
        assert_eq!(next, first, "the connection was kept");
        assert!(
            took < Duration::from_secs(1),
            "the statement was cancelled, not waited out: {took:?}"
        );
    }

    #[tokio::test]
    async fn a_cancel_too_late_for_its_statement_never_reaches_the_next() {
        let Some(reads) = reads(ConnectionLimits::default()).await else {
            return;
        };
        let first = backend_pid(&reads).await;
        let mut abandoned = 0;
        for round in 0..40u64 {
            // A 10 ms statement whose caller goes away between 5 and 15 ms: some
            // cancels land during the statement, some after it ended.
            let gone = tokio::time::timeout(
                Duration::from_micros(5_000 + 250 * round),
                reads.query_one(&sql("SELECT pg_sleep(0.01)")),
            )
            .await
            .is_err();
            abandoned += u32::from(gone);
            // pg_sleep checks for a pending cancel, as any longer statement would.
            let next = reads.query_one(&sql("SELECT pg_sleep(0.001)")).await;
            assert!(next.is_ok(), "round {round}: {next:?}");
        }
        let last = backend_pid(&reads).await;
        reads.close().await;
        eprintln!("{abandoned} of 40 reads abandoned");
        assert!(abandoned > 0, "some reads were abandoned");
        assert_eq!(last, first, "one connection served every round");
    }
}
