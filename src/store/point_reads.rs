//! PostgreSQL connections of their own for single-statement reads.
//!
//! sqlx's pool pings every connection when it is given back (a second round trip per
//! read, and a task spawned for it) because a query abandoned half-way can leave a
//! connection mid-protocol. Here a connection goes back to the idle list only when its
//! statement ran to the end, so nothing needs checking: a read whose caller went away
//! mid-statement drops its connection instead (closing the socket), and a connection
//! that broke is dropped and the read retried once on a fresh one.
//!
//! Every read is bounded (`ConnectionLimits`): a read with no answer within the read
//! timeout (a database that stopped answering, a NAT entry dropped on the way) answers
//! `UNAVAILABLE`, its connection is dropped, and so are the idle ones, likely cut off
//! the same way; the next read opens a new connection. PostgreSQL also ends such a
//! statement itself (`statement_timeout`). Connections idle past the idle limit or
//! older than the age limit are closed instead of reused, so none outlives a
//! middlebox's idle timer or a failover unnoticed. sqlx's `PgConnectOptions` has no TCP
//! keepalive setting; the read timeout is what finds a dead peer.
//!
//! These connections keep PostgreSQL's default `plan_cache_mode`: a point read's
//! generic plan is the index lookup it means, and re-planning it on every execution
//! costs the database ~15 % of a point select (the pool's `force_custom_plan` exists
//! for the `LIKE` prefix filters of lists, which stay on the pool).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use sea_orm::{
    DbErr, QueryResult, RuntimeErr, Statement,
    sqlx::{self, Connection as _, PgConnection, postgres::PgConnectOptions},
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ConnectionLimits;

/// Up to `capacity` connections, opened on first use and kept while they work.
pub(super) struct PointReads {
    options: PgConnectOptions,
    /// Idle connections, most recently used last: a quiet service reuses one warm
    /// connection (its statements already prepared) rather than cycling through all.
    idle: Mutex<Vec<Idle>>,
    /// One permit per connection that may exist, idle or in use.
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
    limits: ConnectionLimits,
    capacity: usize,
}

struct Idle {
    connection: PgConnection,
    opened: Instant,
    since: Instant,
}

impl Idle {
    fn expired(&self, limits: &ConnectionLimits, now: Instant) -> bool {
        now.duration_since(self.since) > limits.max_idle
            || now.duration_since(self.opened) > limits.max_age
    }
}

/// A connection taken for one statement; back to the idle list only through `finish`.
struct Lease<'a> {
    reads: &'a PointReads,
    connection: Option<PgConnection>,
    opened: Instant,
    _permit: OwnedSemaphorePermit,
}

impl PointReads {
    pub(super) fn new(
        url: &str,
        capacity: u32,
        acquire_timeout: Duration,
        limits: ConnectionLimits,
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
        &self,
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

    /// Connections running a statement now.
    pub(super) fn in_use(&self) -> usize {
        self.capacity
            .saturating_sub(self.permits.available_permits())
    }

    /// Closes the idle connections politely (the server is stopping).
    pub(super) async fn close(&self) {
        self.permits.close();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for idle in idle {
            let _ = idle.connection.close().await;
        }
    }

    async fn query_one_once(&self, statement: &Statement) -> Result<Option<QueryResult>, DbErr> {
        let mut lease = self.lease().await?;
        let values = statement
            .values
            .clone()
            .unwrap_or_else(|| sea_orm::Values(Vec::new()));
        let query = sqlx::query_with(
            sqlx::AssertSqlSafe(statement.sql.as_str()),
            SqlxValues(values),
        );
        let connection = lease
            .connection
            .as_mut()
            .expect("a lease holds its connection until it is finished");
        let timeout = self.limits.read_timeout;
        match tokio::time::timeout(timeout, query.fetch_optional(connection)).await {
            Ok(Ok(row)) => {
                lease.finish();
                Ok(row.map(QueryResult::from))
            }
            // The connection is dropped with the lease: after an error it may be
            // anywhere in the protocol, and errors on point reads are rare.
            Ok(Err(err)) => Err(DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))),
            // No answer in time: the connection is dropped with the lease, and the
            // idle ones with it. Not retried: a second wait would double the caller's.
            Err(_) => {
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

    async fn lease(&self) -> Result<Lease<'_>, DbErr> {
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
            // went away does).
            idle.retain(|connection| !connection.expired(&self.limits, now));
            idle.pop()
        };
        let (connection, opened) = match idle {
            Some(idle) => (idle.connection, idle.opened),
            None => {
                let connection = tokio::time::timeout(
                    self.acquire_timeout,
                    PgConnection::connect_with(&self.options),
                )
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))?;
                (connection, Instant::now())
            }
        };
        Ok(Lease {
            reads: self,
            connection: Some(connection),
            opened,
            _permit: permit,
        })
    }
}

impl Lease<'_> {
    /// The statement ran to its end: the connection is ready for the next one.
    /// One past the age limit is closed instead.
    fn finish(mut self) {
        let now = Instant::now();
        if now.duration_since(self.opened) > self.reads.limits.max_age {
            return;
        }
        if let Some(connection) = self.connection.take() {
            self.reads
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Idle {
                    connection,
                    opened: self.opened,
                    since: now,
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL for the tests here, when reachable (`TENANCY_REQUIRE_POSTGRES=1`
    /// makes its absence a failure).
    async fn reads(limits: ConnectionLimits) -> Option<PointReads> {
        let url = std::env::var("TENANCY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
        let reads = PointReads::new(&url, 1, Duration::from_secs(3), limits).ok()?;
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
}
