//! PostgreSQL connections of their own for single-statement reads.
//!
//! sqlx's pool pings every connection when it is given back (a second round trip per
//! read, and a task spawned for it) because a query abandoned half-way can leave a
//! connection mid-protocol. Here a connection goes back to the idle list only when its
//! statement ran to the end, so nothing needs checking: a read whose caller went away
//! mid-statement drops its connection instead (closing the socket), and a connection
//! that broke is dropped and the read retried once on a fresh one.
//!
//! These connections keep PostgreSQL's default `plan_cache_mode`: a point read's
//! generic plan is the index lookup it means, and re-planning it on every execution
//! costs the database ~15 % of a point select (the pool's `force_custom_plan` exists
//! for the `LIKE` prefix filters of lists, which stay on the pool).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use sea_orm::{
    DbErr, QueryResult, RuntimeErr, Statement,
    sqlx::{self, Connection as _, PgConnection, postgres::PgConnectOptions},
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Up to `capacity` connections, opened on first use and kept while they work.
pub(super) struct PointReads {
    options: PgConnectOptions,
    /// Idle connections, most recently used last: a quiet service reuses one warm
    /// connection (its statements already prepared) rather than cycling through all.
    idle: Mutex<Vec<PgConnection>>,
    /// One permit per connection that may exist, idle or in use.
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
}

/// A connection taken for one statement; back to the idle list only through `finish`.
struct Lease<'a> {
    reads: &'a PointReads,
    connection: Option<PgConnection>,
    _permit: OwnedSemaphorePermit,
}

impl PointReads {
    pub(super) fn new(url: &str, capacity: u32, acquire_timeout: Duration) -> Result<Self, DbErr> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))?;
        Ok(PointReads {
            options: options.application_name("tenancy"),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(capacity.max(1) as usize)),
            acquire_timeout,
        })
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
                self.idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
                self.query_one_once(statement).await
            }
            other => other,
        }
    }

    /// Closes the idle connections politely (the server is stopping).
    pub(super) async fn close(&self) {
        self.permits.close();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for connection in idle {
            let _ = connection.close().await;
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
        match query.fetch_optional(connection).await {
            Ok(row) => {
                lease.finish();
                Ok(row.map(QueryResult::from))
            }
            // The connection is dropped with the lease: after an error it may be
            // anywhere in the protocol, and errors on point reads are rare.
            Err(err) => Err(DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))),
        }
    }

    async fn lease(&self) -> Result<Lease<'_>, DbErr> {
        let timed_out = || DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout);
        let permit =
            tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| timed_out())?
                .map_err(|_| DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed))?;
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let connection = match idle {
            Some(connection) => connection,
            None => tokio::time::timeout(
                self.acquire_timeout,
                PgConnection::connect_with(&self.options),
            )
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))?,
        };
        Ok(Lease {
            reads: self,
            connection: Some(connection),
            _permit: permit,
        })
    }
}

impl Lease<'_> {
    /// The statement ran to its end: the connection is ready for the next one.
    fn finish(mut self) {
        if let Some(connection) = self.connection.take() {
            self.reads
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(connection);
        }
    }
}
