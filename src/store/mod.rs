//! Persistence: the only module that knows sea-orm. Functions take and return domain
//! types; one use case that must be atomic is one method running one transaction.

mod accounts;
mod api_keys;
mod customers;
mod entities;
mod events;
mod invitations;
mod members;
mod point_reads;
mod recovery;
mod relay;
mod requests;
mod roles;
mod rows;
mod sequencer;
mod sessions;
mod signing_keys;
mod throttle;
mod user_batches;
mod users;

/// The PostgreSQL advisory-lock keys of the service, in one place so no two uses share
/// one (a session lock on a key another path takes per transaction would block it).
pub mod advisory_lock {
    /// Held per transaction while migrating.
    pub const MIGRATE: i64 = 7_307_752_937_115_427_840;
    /// Held per transaction while the first admin key is created.
    pub const FIRST_ADMIN_KEY: i64 = 7_307_752_937_115_427_841;
    /// Held for its session by the one event sequencer.
    pub const SEQUENCER: i64 = 7_307_752_937_115_427_842;
    /// Held per transaction while signing keys are rotated.
    pub const SIGNING_KEYS: i64 = 7_307_752_937_115_427_843;
}

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, TimeZone as _, Utc};
use migrations::{Migrator, MigratorTrait as _};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, QueryResult, RuntimeErr, Select, Selector, SelectorTrait, SqlErr,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait as _,
};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use crate::{
    deadline::Deadline,
    domain::{Error, Result, id::Id},
};

pub use accounts::AccountOwner;
pub use customers::CustomerOwner;
pub use invitations::{Acceptor, Created as CreatedInvitation};
pub use members::MemberRef;
pub use recovery::{StoredTotp, TokenPurpose};
pub use relay::RelayPosition;
pub use roles::{NewRole, RoleChanges};
pub use sessions::{REFRESH_REFUSED, SessionGrant, SessionsOf};
pub use throttle::{Attempt, ThrottlePolicy};
pub use users::Credentials;

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `sqlite://path?mode=rwc` or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
    /// How long an RPC waits for a connection before it answers `UNAVAILABLE`.
    pub acquire_timeout: Duration,
    pub limits: ConnectionLimits,
}

/// Bounds on database connections beyond their number.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long a point read (PostgreSQL) may wait for its answer: past it the read
    /// answers `UNAVAILABLE` and its connection is dropped, not reused. It is also the
    /// point-read connections' `statement_timeout`.
    pub read_timeout: Duration,
    /// A connection idle longer than this is closed rather than reused.
    pub max_idle: Duration,
    /// A connection open longer than this is closed rather than reused.
    pub max_age: Duration,
    /// Batched writes (PostgreSQL's CreateUser) that may wait for their statement at
    /// once; more are refused with `WriteQueueFull`.
    pub write_queue: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            read_timeout: Duration::from_secs(5),
            max_idle: Duration::from_secs(60),
            max_age: Duration::from_secs(30 * 60),
            write_queue: 4096,
        }
    }
}

/// PostgreSQL ends a pool session that sits in a transaction this long without sending
/// a statement (milliseconds). The server's own transactions never pause between their
/// statements: they hash passwords before they begin.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "4000";

/// The database handle every use case goes through.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// The database file, on SQLite.
    sqlite_file: Option<Arc<std::path::PathBuf>>,
    /// SQLite allows one writer; queueing writers here keeps them off SQLite's busy
    /// handler, whose sleeps would add latency (and, past its timeout, SQLITE_BUSY).
    sqlite_writer: Option<Arc<Mutex<()>>>,
    /// The newest committed event sequence this process knows of.
    last_event: Arc<watch::Sender<i64>>,
    /// SQL statements run through this store, so a test can see what a load costs the
    /// database rather than what the code meant to do.
    statements: Arc<AtomicU64>,
    /// Told, right after each commit, the ids its events touched (see `on_commit`).
    commit_observer: Arc<std::sync::RwLock<Option<CommitObserver>>>,
    /// PostgreSQL with two connections or more: connections for single-statement
    /// reads (see `point_reads`).
    point_reads: Option<Arc<point_reads::PointReads>>,
    /// Write transactions waiting for the SQLite writer lock or a pooled connection.
    waiting_writers: Arc<std::sync::atomic::AtomicUsize>,
    /// PostgreSQL: events are numbered after commit by one sequencer (see
    /// `sequencer`); `None` on SQLite, which numbers them in the transaction.
    sequencer: Option<Arc<sequencer::Sequencer>>,
    /// PostgreSQL: CreateUser calls without a request id, written in batches (see
    /// `user_batches`).
    user_batches: Option<Arc<user_batches::UserBatches>>,
}

/// How the database connections are used right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Pooled connections open, in use by a statement or transaction.
    pub in_use: usize,
    /// Pooled connections open and idle.
    pub idle: usize,
    /// Write transactions waiting for a connection (or SQLite's writer lock).
    pub waiting: usize,
    /// PostgreSQL point-read connections in use (0 where there are none).
    pub point_reads_in_use: usize,
}

/// The SQL of a read whose text depends only on the backend, built once and then run
/// with each call's values: sea-query building a full column list on every call was
/// ~5 % of an uncached point read's CPU.
pub(crate) struct FixedSql {
    postgres: std::sync::OnceLock<(String, usize)>,
    sqlite: std::sync::OnceLock<(String, usize)>,
}

impl FixedSql {
    pub(crate) const fn new() -> FixedSql {
        FixedSql {
            postgres: std::sync::OnceLock::new(),
            sqlite: std::sync::OnceLock::new(),
        }
    }

    /// `build` makes the statement (with any values of the right types) the first
    /// time; `values` are this call's, in the order `build` binds them.
    pub(crate) fn statement(
        &self,
        backend: DbBackend,
        build: impl FnOnce() -> Statement,
        values: Vec<sea_orm::Value>,
    ) -> Result<Statement> {
        let slot = match backend {
            DbBackend::Postgres => &self.postgres,
            _ => &self.sqlite,
        };
        let (sql, bound) = slot.get_or_init(|| {
            let built = build();
            let bound = built.values.as_ref().map_or(0, |v| v.0.len());
            (built.sql, bound)
        });
        if *bound != values.len() {
            return Err(Error::internal(format!(
                "a fixed statement binds {bound} values, given {}",
                values.len()
            )));
        }
        Ok(Statement::from_sql_and_values(backend, sql.clone(), values))
    }
}

/// What `Store::on_commit` registers: called with the ids a committed transaction's
/// events touched, before the write returns to its caller.
pub type CommitObserver = Arc<dyn Fn(&[Id]) + Send + Sync>;

/// A write transaction; dropping it without `commit` rolls it back at once.
pub(crate) struct WriteTx {
    /// `None` only once committed or handed to the rollback in `drop`.
    txn: Option<DatabaseTransaction>,
    writer: Option<OwnedMutexGuard<()>>,
    /// Events recorded by this transaction, written to the log at commit.
    pending_events: Vec<entities::event::ActiveModel>,
    /// PostgreSQL: this transaction wrote rows to `pending_events`, so the sequencer
    /// is woken once it commits.
    pending_written: bool,
    touched: Vec<Id>,
}

impl WriteTx {
    pub(crate) fn txn(&self) -> &DatabaseTransaction {
        self.txn
            .as_ref()
            .expect("a WriteTx holds its transaction until commit or drop")
    }
}

impl Drop for WriteTx {
    /// A transaction dropped on an error path would otherwise only queue its ROLLBACK
    /// until its pooled connection is used again: meanwhile it keeps its row locks (on
    /// PostgreSQL the next writer of those rows waits; on SQLite the next writer waits
    /// for the write lock). So the rollback runs now, and the SQLite writer slot is
    /// released only after it.
    fn drop(&mut self) {
        let Some(txn) = self.txn.take() else {
            return;
        };
        let writer = self.writer.take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = txn.rollback().await {
                    tracing::warn!(%error, "rolling back an abandoned transaction failed");
                }
                drop(writer);
            });
        }
    }
}

impl Store {
    /// Connects without touching the schema.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Store> {
        let is_sqlite = settings.url.starts_with("sqlite:");
        if is_sqlite {
            create_sqlite_file(&settings.url)?;
        }
        // On PostgreSQL, half the connections (at least one each) serve point reads
        // (see `point_reads`), the rest the pool; one connection in all means no split.
        let point_read_connections = if is_sqlite || settings.max_connections < 2 {
            0
        } else {
            settings.max_connections / 2
        };
        // The batched CreateUser statements take connections of their own when the
        // pool keeps at least two (see `user_batches`).
        let batch_connections = if is_sqlite
            || settings.max_connections - point_read_connections
                < 2 + user_batches::UserBatches::CONNECTIONS
        {
            0
        } else {
            user_batches::UserBatches::CONNECTIONS
        };
        let mut options = ConnectOptions::new(settings.url.clone());
        options
            .max_connections(settings.max_connections - point_read_connections - batch_connections)
            .min_connections(0)
            .acquire_timeout(settings.acquire_timeout)
            .connect_timeout(settings.acquire_timeout)
            .idle_timeout(settings.limits.max_idle)
            .max_lifetime(settings.limits.max_age)
            .sqlx_logging(false)
            // A ping per checkout doubles the round trips of a point read. A connection
            // left dead by an outage is found by the read itself instead, which
            // `Store::read` then retries once on a fresh connection.
            .test_before_acquire(false)
            // A prepared statement's generic plan cannot use the `text_pattern_ops`
            // indexes for `LIKE $1` (the prefix is unknown when it is planned), and
            // PostgreSQL switches to it after five executions: plan each execution with
            // its values instead, which point reads barely notice.
            //
            // A transaction whose process froze (SIGSTOP, a stalled VM) or lost the
            // network between two of its statements keeps its row locks; PostgreSQL
            // ends such a session after `IDLE_IN_TRANSACTION_TIMEOUT`, so other
            // instances' writes of those rows wait no longer than that (SPEC §8: one
            // stalled instance never stops the others for more than 5 s).
            .map_sqlx_postgres_opts(|opts| {
                opts.options([
                    ("plan_cache_mode", "force_custom_plan"),
                    (
                        "idle_in_transaction_session_timeout",
                        IDLE_IN_TRANSACTION_TIMEOUT,
                    ),
                    ("tcp_user_timeout", IDLE_IN_TRANSACTION_TIMEOUT),
                ])
            })
            .map_sqlx_sqlite_opts(|opts| {
                use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30))
                    .foreign_keys(true)
                    .create_if_missing(true)
            });
        let mut db = connect_with_retry(options, is_sqlite, settings.acquire_timeout).await?;
        let statements = Arc::new(AtomicU64::new(0));
        db.set_metric_callback({
            let statements = statements.clone();
            move |_| {
                statements.fetch_add(1, Ordering::Relaxed);
            }
        });
        let point_reads = if point_read_connections == 0 {
            None
        } else {
            let reads = point_reads::PointReads::new(
                &settings.url,
                point_read_connections,
                settings.acquire_timeout,
                settings.limits,
                db.get_postgres_connection_pool().clone(),
            )
            .map_err(db_error)?;
            Some(Arc::new(reads))
        };
        let (sequencer, user_batches) = if is_sqlite {
            (None, None)
        } else {
            let options: sea_orm::sqlx::postgres::PgConnectOptions = settings
                .url
                .parse()
                .map_err(|e: sea_orm::sqlx::Error| Error::internal(e))?;
            let batches = user_batches::UserBatches::new(
                (batch_connections > 0).then(|| (options.clone(), settings)),
                settings.limits.write_queue,
            );
            (
                Some(Arc::new(sequencer::Sequencer::new(options))),
                Some(Arc::new(batches)),
            )
        };
        let store = Store {
            sqlite_file: sqlite_file(&settings.url).map(|file| Arc::new(file.to_path_buf())),
            user_batches,
            sequencer,
            point_reads,
            db,
            sqlite_writer: is_sqlite.then(|| Arc::new(Mutex::new(()))),
            last_event: Arc::new(watch::channel(0).0),
            statements,
            commit_observer: Arc::default(),
            waiting_writers: Arc::default(),
        };
        Ok(store)
    }

    /// Applies pending migrations. Processes that start together on one database (two
    /// instances, or `tenancy keys` beside a starting server) take turns: one migrates,
    /// the others then find nothing to do instead of racing to create the same tables.
    pub async fn migrate(&self) -> Result<()> {
        use sea_orm::ConnectionTrait as _;
        // On SQLite the IMMEDIATE transaction holds the database's write lock.
        let tx = self.begin().await?;
        if self.backend() == DbBackend::Postgres {
            tx.txn()
                .execute_unprepared(&format!(
                    "SELECT pg_advisory_xact_lock({})",
                    advisory_lock::MIGRATE
                ))
                .await
                .map_err(db_error)?;
        }
        Migrator::up(tx.txn(), None).await.map_err(db_error)?;
        self.commit(tx).await
    }

    /// The database file, on SQLite (`None` on PostgreSQL).
    pub fn sqlite_file(&self) -> Option<&std::path::Path> {
        self.sqlite_file.as_deref().map(|path| path.as_path())
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<()> {
        self.read(|| self.db.ping()).await
    }

    /// Runs an idempotent read (or a BEGIN); when it failed on a connection that broke (left dead by
    /// a database restart or a network cut), drops the idle connections (which are
    /// likely dead too) and runs it once more on a fresh one. Failing to connect at all
    /// is not retried: the database is down, and the caller hears `UNAVAILABLE`.
    pub(crate) async fn read<T, F, Fut>(&self, run: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, DbErr>>,
    {
        match run().await {
            Err(err) if is_broken_connection(&err) => {
                tracing::debug!(%err, "a pooled connection broke; retrying the read once");
                self.drop_idle_connections();
                run().await.map_err(db_error)
            }
            other => other.map_err(db_error),
        }
    }

    fn drop_idle_connections(&self) {
        if self.backend() != DbBackend::Postgres {
            return;
        }
        let pool = self.db.get_postgres_connection_pool();
        for _ in 0..pool.num_idle() {
            match pool.try_acquire() {
                Some(mut connection) => connection.close_on_drop(),
                None => break,
            }
        }
    }

    /// Registers the function told the ids each committed write touched (replacing any
    /// earlier one): in-process caches drop what a local write changed before the RPC
    /// that wrote returns, instead of waiting for the event feed.
    pub fn on_commit(&self, observer: CommitObserver) {
        let mut slot = self
            .commit_observer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some(observer);
    }

    /// How many SQL statements this store (every clone of it) has run; pings and
    /// transaction control are not counted.
    pub fn statements_executed(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    pub async fn close(self) {
        if let Some(reads) = &self.point_reads {
            reads.close().await;
        }
        if let Some(batches) = &self.user_batches {
            batches.close().await;
        }
        let _ = self.db.close().await;
    }

    /// The first row of a single-statement read: on PostgreSQL one round trip on a
    /// point-read connection, otherwise through the pool; a connection that broke is
    /// retried once either way (see `read`).
    pub(crate) async fn query_one(&self, statement: Statement) -> Result<Option<QueryResult>> {
        match &self.point_reads {
            Some(reads) => {
                // The pool's statements are counted by its metric callback.
                self.statements.fetch_add(1, Ordering::Relaxed);
                reads.query_one(&statement).await.map_err(db_error)
            }
            None => {
                use sea_orm::ConnectionTrait as _;
                self.read(|| self.db.query_one_raw(statement.clone())).await
            }
        }
    }

    /// Runs one statement that writes, in its own implicit transaction, on a point-read
    /// connection (PostgreSQL): one round trip, where `BEGIN … COMMIT` on the pool takes
    /// three or more, and no ping when the connection goes back. `None` when there are
    /// no point-read connections (SQLite, a pool of one): the caller then writes in a
    /// transaction. The call's commit gate is passed once a connection is held, right
    /// before the statement is sent, so from then on the caller is answered with the
    /// outcome (see `crate::deadline`). Never retried: after a broken connection or no
    /// answer in time the outcome is unknown, and the call is answered with that error.
    pub(crate) async fn write_one(
        &self,
        statement: &Statement,
    ) -> Option<Result<Option<QueryResult>>> {
        let reads = self.point_reads.as_ref()?;
        Some(self.write_one_on(reads, statement).await)
    }

    async fn write_one_on(
        &self,
        reads: &Arc<point_reads::PointReads>,
        statement: &Statement,
    ) -> Result<Option<QueryResult>> {
        let lease = reads.lease().await.map_err(db_error)?;
        let deadline = Deadline::current();
        if let Some(deadline) = &deadline
            && !deadline.begin_commit()
        {
            lease.finish();
            return Err(Error::DeadlineExceeded {
                timeout: deadline.budget(),
            });
        }
        self.statements.fetch_add(1, Ordering::Relaxed);
        reads.run(lease, statement).await.map_err(|err| {
            // An error answer from the database rolled the statement back.
            if let Some(deadline) = &deadline
                && matches!(sqlx_cause(&err), Some(sea_orm::sqlx::Error::Database(_)))
                && !is_broken_connection(&err)
            {
                deadline.commit_rolled_back();
            }
            db_error(err)
        })
    }

    /// The one row `selector` selects (the query is limited to one), decoded.
    pub(crate) async fn select_one<S: SelectorTrait>(
        &self,
        selector: Selector<S>,
    ) -> Result<Option<S::Item>> {
        let statement = selector.into_statement(self.backend());
        match self.query_one(statement).await? {
            Some(row) => S::from_raw_query_result(row).map(Some).map_err(db_error),
            None => Ok(None),
        }
    }

    /// `Entity::find()…one(db)`, as one point read.
    pub(crate) async fn find_one<E>(&self, select: Select<E>) -> Result<Option<E::Model>>
    where
        E: EntityTrait,
    {
        use sea_orm::QuerySelect as _;
        self.select_one(select.limit(1).into_model::<E::Model>())
            .await
    }

    pub(crate) fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// An SQL expression for now on the database's clock, in microseconds since the
    /// epoch: the one clock every instance shares (theirs may disagree).
    pub(crate) fn database_now(&self) -> &'static str {
        match self.backend() {
            DbBackend::Postgres => "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint",
            _ => "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)",
        }
    }

    /// The pool's connections now, for the metrics.
    pub fn pool_stats(&self) -> PoolStats {
        let (size, idle) = match self.backend() {
            DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (pool.size() as usize, pool.num_idle())
            }
            _ => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size() as usize, pool.num_idle())
            }
        };
        PoolStats {
            in_use: size.saturating_sub(idle),
            idle,
            waiting: self.waiting_writers.load(Ordering::Relaxed),
            point_reads_in_use: self.point_reads.as_ref().map_or(0, |r| r.in_use()),
        }
    }

    pub(crate) async fn begin(&self) -> Result<WriteTx> {
        self.waiting_writers.fetch_add(1, Ordering::Relaxed);
        let waited = self.begin_waiting().await;
        self.waiting_writers.fetch_sub(1, Ordering::Relaxed);
        waited
    }

    async fn begin_waiting(&self) -> Result<WriteTx> {
        let writer = match &self.sqlite_writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let options = TransactionOptions {
            // IMMEDIATE takes the write lock up front: a deferred transaction that
            // reads first and then writes can fail with SQLITE_BUSY at once.
            sqlite_transaction_mode: writer.as_ref().map(|_| SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        // Nothing is written before BEGIN succeeds, so a BEGIN that met a dead
        // connection is retried like a read.
        let txn = self.read(|| self.db.begin_with_options(options)).await?;
        Ok(WriteTx {
            txn: Some(txn),
            writer,
            pending_events: Vec::new(),
            pending_written: false,
            touched: Vec::new(),
        })
    }

    /// Commits `tx`, unless the RPC it serves timed out (then it is rolled back and the
    /// answer is `DeadlineExceeded`): once COMMIT is sent, the RPC is answered with its
    /// outcome, never told it timed out (see `crate::deadline`).
    pub(crate) async fn commit(&self, mut tx: WriteTx) -> Result<()> {
        let appended = self.write_pending_events(&mut tx).await?;
        let pending = tx.pending_written;
        let deadline = Deadline::current();
        if let Some(deadline) = &deadline
            && !deadline.begin_commit()
        {
            // Dropping `tx` rolls it back.
            return Err(Error::DeadlineExceeded {
                timeout: deadline.budget(),
            });
        }
        let txn = tx
            .txn
            .take()
            .ok_or_else(|| Error::internal("a transaction committed twice"))?;
        // The SQLite writer slot is held until the commit has finished.
        let writer = tx.writer.take();
        let committed = txn.commit().await;
        drop(writer);
        if let Err(err) = committed {
            // A broken connection leaves the outcome unknown: the call stays
            // committing and is answered with this error, never with a timeout.
            if let Some(deadline) = &deadline
                && !is_broken_connection(&err)
            {
                deadline.commit_rolled_back();
            }
            return Err(db_error(err));
        }
        self.committed(&tx.touched, pending, appended);
        Ok(())
    }

    /// What follows every commit: caches drop what the write touched, the sequencer
    /// is woken for new pending events, and local streams learn the new head.
    fn committed(&self, touched: &[Id], pending_written: bool, appended: Option<i64>) {
        if !touched.is_empty() {
            let observer = self
                .commit_observer
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if let Some(observer) = observer {
                observer(touched);
            }
        }
        if pending_written && let Some(sequencer) = &self.sequencer {
            sequencer.written();
        }
        if let Some(sequence) = appended {
            self.last_event.send_if_modified(|last| {
                let newer = sequence > *last;
                if newer {
                    *last = sequence;
                }
                newer
            });
        }
    }

    /// The 32-byte secret that keys page tokens and request fingerprints, created on
    /// first use and shared by every instance on this database.
    pub async fn server_secret(&self) -> Result<[u8; 32]> {
        use entities::setting;
        use rand::RngCore as _;
        use sea_orm::{ActiveValue::Set, EntityTrait as _, sea_query::OnConflict};

        const NAME: &str = "server_secret";
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        // Insert-if-absent, then read: two instances starting together agree on one.
        setting::Entity::insert(setting::ActiveModel {
            name: Set(NAME.into()),
            value: Set(hex::encode(fresh)),
        })
        .on_conflict(
            OnConflict::column(setting::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(db_error)?;
        let query = setting::Entity::find_by_id(NAME.to_string());
        let row = self
            .find_one(query)
            .await?
            .ok_or_else(|| Error::internal("server secret missing after insert"))?;
        let bytes = hex::decode(&row.value).map_err(Error::internal)?;
        bytes
            .try_into()
            .map_err(|_| Error::internal("server secret has the wrong length"))
    }
}

/// Connects; on SQLite, retries while another process holds the lock. Turning a new
/// file into WAL needs an exclusive lock that SQLite's busy handler does not wait for,
/// so two processes opening a fresh file at once (a server and `tenancy keys`, or two
/// instances) would otherwise fail with SQLITE_BUSY.
async fn connect_with_retry(
    options: ConnectOptions,
    is_sqlite: bool,
    patience: Duration,
) -> Result<DatabaseConnection> {
    let started = std::time::Instant::now();
    let mut attempt = 0u32;
    loop {
        match Database::connect(options.clone()).await {
            Ok(db) => return Ok(db),
            Err(err)
                if is_sqlite
                    && is_sqlite_busy(&err)
                    && started.elapsed() < patience.max(Duration::from_secs(5)) =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt.min(10)))).await;
            }
            Err(err) => return Err(db_error(err)),
        }
    }
}

/// The driver's error behind a connection, execution or query failure.
pub(crate) fn sqlx_cause(err: &DbErr) -> Option<&sea_orm::sqlx::Error> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(sqlx))
        | DbErr::Exec(RuntimeErr::SqlxError(sqlx))
        | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => Some(sqlx),
        _ => None,
    }
}

fn is_sqlite_busy(err: &DbErr) -> bool {
    let Some(sqlx) = sqlx_cause(err) else {
        return false;
    };
    match sqlx {
        sea_orm::sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("5" | "6" | "517"))
        }
        _ => false,
    }
}

/// Creates the SQLite file and its directory, readable by their owner only.
/// The file of a SQLite URL (`sqlite://path?mode=rwc`); `None` for PostgreSQL and for
/// an in-memory database.
pub fn sqlite_file(url: &str) -> Option<&std::path::Path> {
    let path = url
        .strip_prefix("sqlite:")?
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::Path::new(path))
}

fn create_sqlite_file(url: &str) -> Result<()> {
    let Some(path) = sqlite_file(url) else {
        return Ok(());
    };
    let unavailable = |e: std::io::Error| Error::Unavailable(Box::new(e));
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        // The file holds password hashes and the server secret: owner only. SQLite
        // gives its -wal and -shm files the database file's mode.
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(parent).map_err(unavailable)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(unavailable(e)),
    }
}

/// Classifies a database error: unreachable database → `Unavailable`; everything else
/// is `Internal` unless the caller classified it first (see `is_unique_violation`).
pub(crate) fn db_error(err: DbErr) -> Error {
    if is_unavailable(&err) {
        Error::Unavailable(Box::new(err))
    } else if is_contention(&err) {
        Error::Contention
    } else if let Some(constraint) = foreign_key_violation(&err) {
        // Every delete removes what refers to its row first; reaching this means a
        // referring row was added that the delete did not know about.
        tracing::warn!(error = %err, "a write met a foreign key");
        Error::FailedPrecondition {
            kind: "RESOURCE_STILL_REFERENCED",
            subject: constraint,
            description: "other records still refer to this resource; remove them first".into(),
        }
    } else {
        Error::Internal(Box::new(err))
    }
}

/// PostgreSQL's deadlock_detected (40P01), serialization_failure (40001) and
/// lock_not_available (55P03, a `NOWAIT` lock another transaction holds): the
/// transaction was rolled back whole, so the write may be retried.
fn is_contention(err: &DbErr) -> bool {
    match sqlx_cause(err) {
        Some(sea_orm::sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40P01" | "40001" | "55P03"))
        }
        _ => false,
    }
}

/// The referring table of a foreign-key violation (PostgreSQL names the constraint,
/// `invitations_customer_id_fkey`; SQLite names none).
fn foreign_key_violation(err: &DbErr) -> Option<String> {
    let Some(sea_orm::sqlx::Error::Database(db)) = sqlx_cause(err) else {
        return None;
    };
    // PostgreSQL 23503; SQLite 787 (SQLITE_CONSTRAINT_FOREIGNKEY), and 1811
    // (SQLITE_CONSTRAINT_TRIGGER), which is how SQLite reports an `ON DELETE RESTRICT`
    // key: it enforces the action with a trigger of its own. The schema has no
    // triggers of its own, so 1811 is always a foreign key here.
    match db.code().as_deref() {
        Some("23503" | "787" | "1811") => Some(
            db.constraint()
                .map_or_else(|| "a foreign key".to_string(), str::to_string),
        ),
        _ => None,
    }
}

pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// An error on a connection that was established and then broke (as opposed to one
/// that could not be made, or a statement the database refused).
fn is_broken_connection(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    // Acquiring (connecting) fails as `ConnectionAcquire`; `Conn` is a ping's failure on
    // a connection the pool handed out.
    let Some(sqlx) = sqlx_cause(err) else {
        return false;
    };
    match sqlx {
        Sqlx::Io(_) | Sqlx::Tls(_) | Sqlx::Protocol(_) => true,
        Sqlx::Database(db) => {
            let code = db.code().unwrap_or_default();
            // Connection exceptions, and the server ending the session (57P01 admin
            // shutdown, 57P02 crash shutdown).
            code.starts_with("08") || code == "57P01" || code == "57P02"
        }
        _ => false,
    }
}

fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    if matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) {
        return true;
    }
    let Some(sqlx) = sqlx_cause(err) else {
        return false;
    };
    match sqlx {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed
        | Sqlx::Protocol(_) => true,
        Sqlx::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL class 08 (connection exception), 57P01..57P03 (shutdown,
            // crash, cannot connect now), 25P03 (the session ended after idling in its
            // transaction for `IDLE_IN_TRANSACTION_TIMEOUT`: the transaction is rolled
            // back, so the write may be retried), 57014 (cancelled: a point read's
            // `statement_timeout`); SQLite 5/6 (busy, locked).
            code.starts_with("08")
                || code.starts_with("57P")
                || code == "25P03"
                || code == "57014"
                || code == "5"
                || code == "6"
                || code == "517"
        }
        _ => false,
    }
}

pub(crate) fn to_micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

pub(crate) fn from_micros(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros).single().unwrap_or_default()
}

/// Now, truncated to microseconds so it round-trips through the database unchanged.
pub(crate) fn now() -> DateTime<Utc> {
    from_micros(to_micros(Utc::now()))
}

/// A page from `rows`, which a query fetched in id order with `limit(size + 1)`: the
/// extra row only tells that there is more, and the next page starts after the last
/// id kept.
pub(crate) fn keyset_page<R, T>(
    rows: Vec<R>,
    size: u64,
    id: impl Fn(&R) -> sea_orm::prelude::Uuid,
    convert: impl Fn(R) -> Result<T>,
) -> Result<crate::domain::page::Page<T>> {
    let more = rows.len() as u64 > size;
    let kept: Vec<R> = rows.into_iter().take(size as usize).collect();
    let next_after = if more {
        kept.last()
            .map(|row| crate::domain::id::Id::from_uuid(id(row)))
    } else {
        None
    };
    let items = kept.into_iter().map(convert).collect::<Result<Vec<_>>>()?;
    Ok(crate::domain::page::Page { items, next_after })
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` prefix pattern.
pub(crate) fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}
