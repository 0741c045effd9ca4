//! Persistence: the only module that knows sea-orm. Functions take and return domain
//! types; one use case that must be atomic is one method running one transaction.

mod accounts;
mod api_keys;
mod customers;
mod entities;
mod events;
mod invitations;
mod members;
mod requests;
mod throttle;
mod users;

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
    RuntimeErr, SqlErr, SqliteTransactionMode, TransactionOptions, TransactionTrait as _,
};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use crate::domain::{Error, Result};

pub use accounts::AccountOwner;
pub use customers::CustomerOwner;
pub use invitations::{Acceptor, Created as CreatedInvitation};
pub use members::MemberRef;
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
}

/// The database handle every use case goes through.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite allows one writer; queueing writers here keeps them off SQLite's busy
    /// handler, whose sleeps would add latency (and, past its timeout, SQLITE_BUSY).
    sqlite_writer: Option<Arc<Mutex<()>>>,
    /// The newest committed event sequence this process knows of.
    last_event: Arc<watch::Sender<i64>>,
    /// SQL statements run through this store, so a test can see what a load costs the
    /// database rather than what the code meant to do.
    statements: Arc<AtomicU64>,
}

/// A write transaction; dropping it without `commit` rolls it back.
pub(crate) struct WriteTx {
    txn: DatabaseTransaction,
    _writer: Option<OwnedMutexGuard<()>>,
    appended_event: Option<i64>,
}

impl Store {
    /// Connects without touching the schema.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Store> {
        let is_sqlite = settings.url.starts_with("sqlite:");
        if is_sqlite {
            create_sqlite_file(&settings.url)?;
        }
        let mut options = ConnectOptions::new(settings.url.clone());
        options
            .max_connections(settings.max_connections)
            .min_connections(0)
            .acquire_timeout(settings.acquire_timeout)
            .connect_timeout(settings.acquire_timeout)
            .sqlx_logging(false)
            // A connection left idle across a database outage is dead; checking it
            // here replaces it instead of failing one call (or health probe) each.
            .test_before_acquire(true)
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
        let store = Store {
            db,
            sqlite_writer: is_sqlite.then(|| Arc::new(Mutex::new(()))),
            last_event: Arc::new(watch::channel(0).0),
            statements,
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
            tx.txn
                .execute_unprepared("SELECT pg_advisory_xact_lock(7307752937115427840)")
                .await
                .map_err(db_error)?;
        }
        Migrator::up(&tx.txn, None).await.map_err(db_error)?;
        self.commit(tx).await
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await.map_err(db_error)
    }

    /// How many SQL statements this store (every clone of it) has run; pings and
    /// transaction control are not counted.
    pub fn statements_executed(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
    }

    pub(crate) fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    pub(crate) async fn begin(&self) -> Result<WriteTx> {
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
        let txn = self
            .db
            .begin_with_options(options)
            .await
            .map_err(db_error)?;
        Ok(WriteTx {
            txn,
            _writer: writer,
            appended_event: None,
        })
    }

    pub(crate) async fn commit(&self, tx: WriteTx) -> Result<()> {
        let appended = tx.appended_event;
        tx.txn.commit().await.map_err(db_error)?;
        if let Some(sequence) = appended {
            self.last_event.send_if_modified(|last| {
                let newer = sequence > *last;
                if newer {
                    *last = sequence;
                }
                newer
            });
        }
        Ok(())
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
        let row = setting::Entity::find_by_id(NAME.to_string())
            .one(&self.db)
            .await
            .map_err(db_error)?
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

fn is_sqlite_busy(err: &DbErr) -> bool {
    let (DbErr::Conn(RuntimeErr::SqlxError(sqlx))
    | DbErr::Exec(RuntimeErr::SqlxError(sqlx))
    | DbErr::Query(RuntimeErr::SqlxError(sqlx))) = err
    else {
        return false;
    };
    match &**sqlx {
        sea_orm::sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("5" | "6" | "517"))
        }
        _ => false,
    }
}

/// Creates the SQLite file and its directory, readable by their owner only.
fn create_sqlite_file(url: &str) -> Result<()> {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let path = std::path::Path::new(path);
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
    } else {
        Error::Internal(Box::new(err))
    }
}

pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    let sqlx = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match &**sqlx {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed
        | Sqlx::Protocol(_) => true,
        Sqlx::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL class 08 (connection exception), 57P01..57P03 (shutdown,
            // crash, cannot connect now); SQLite 5/6 (busy, locked).
            code.starts_with("08")
                || code.starts_with("57P")
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
