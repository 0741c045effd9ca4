//! PostgreSQL: CreateUser calls without a request id that are waiting at the same time
//! are written by one statement, so the database parses, plans, commits and flushes
//! its WAL once per batch rather than once per user.
//!
//! A call queues its row (at most `--db-write-queue` wait at once; more are refused
//! with `WriteQueueFull`) and, when one of `FLUSHERS` slots is free, starts a flusher
//! that writes whatever is queued (up to `MAX_BATCH` users a statement) until the
//! queue is empty. A lone call is written at once, as before; under load the queue
//! fills while the statements in flight run, and batches grow with the load. Each
//! user and its `user.created` event are inserted by the same statement (data-modifying
//! CTEs), so they are written together or not at all, as with a transaction.
//!
//! No write after its caller was told it failed: right before each statement, a call
//! whose caller went away is dropped unwritten, and one whose deadline passed is
//! answered `DeadlineExceeded` unwritten; every other call of the statement is marked
//! committing (`crate::deadline`), so its caller hears the statement's outcome, even
//! past its deadline, never that it timed out.
//!
//! One statement answers each call on its own: `ON CONFLICT DO NOTHING` leaves out a
//! taken email (`EMAIL_TAKEN` for that call only). A statement the database refused,
//! or cancelled after `BATCH_STATEMENT_TIMEOUT` (one row waiting on another
//! transaction's entry for its email holds the whole statement), is run again for each
//! call alone, all at once, each bounded by its own deadline: the stuck row waits, or
//! times out, alone. Rows are inserted in email order, so two batches never wait on
//! each other's emails in opposite orders. A flusher runs as a task of its own: a
//! caller that goes away does not cancel the statement that writes the others.

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex, PoisonError, atomic::Ordering},
    time::Duration,
};

use sea_orm::{
    ConnectionTrait as _, DbBackend, DbErr, RuntimeErr, Statement, TransactionTrait as _, Value,
    sqlx::{
        self,
        postgres::{PgConnectOptions, PgPool, PgPoolOptions},
    },
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use uuid::Uuid;

use super::{
    DatabaseSettings, Store, db_error, entities::user, is_broken_connection, now, sqlx_cause,
    to_micros,
};
use crate::{
    deadline::Deadline,
    domain::{Error, Result, id::Id},
};

/// Batch statements in flight at once (per instance). One: under load the queue fills
/// while it runs and the next statement carries every call that arrived meanwhile.
/// Measured with 16 callers: two in flight made batches half as large and cost
/// PostgreSQL more per user than the overlap of their WAL flushes saved (5,450/s
/// against 6,178/s with one, `bench/writes.sh`).
const FLUSHERS: usize = 1;
/// Users one statement writes at most.
const MAX_BATCH: usize = 64;
/// PostgreSQL cancels a batch statement that runs longer (the batches' connection's
/// `statement_timeout`); a batch of 64 users takes a few milliseconds. Its calls then
/// run alone.
const BATCH_STATEMENT_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a call with no deadline of its own (not an RPC) may take alone.
const ALONE_TIMEOUT: Duration = Duration::from_secs(30);
/// After a connection broke under a batch, its statement may still run on the server
/// (PostgreSQL notices a closed socket only when it next writes to it), for at most
/// `BATCH_STATEMENT_TIMEOUT`. A call run again alone then waits at least this long, so
/// it meets that statement's outcome through its email's unique entry, whatever its
/// own deadline says.
const ORPHAN_BOUND: Duration = Duration::from_secs(1);

/// The user rows and `user.created` events of a batch, from parallel arrays (one
/// element per user, in queue order). `password_hash` travels as '' for none: arrays
/// are bound without NULL elements, and a PHC hash string is never empty.
///
/// The uncorrelated `count(*)` over `written` is a one-time filter, evaluated before
/// the first event row is inserted: every user row is written (and every wait on
/// another transaction's unique-index entry is over) before any pending event takes
/// its id, as a transaction writes its events after its last lock (see `sequencer`).
const INSERT_USERS: &str = "
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[],
                         $11::bigint[], $12::bigint[], $13::text[])
        WITH ORDINALITY AS i(id, email, first_name, last_name, first_name_lower,
                             last_name_lower, language, status, password_hash, create_time,
                             update_time, revision, payload, position)
),
written AS (
    INSERT INTO users (id, email, first_name, last_name, first_name_lower, last_name_lower,
                       language, status, password_hash, last_login_time, create_time,
                       update_time, revision)
    SELECT id, email, first_name, last_name, first_name_lower, last_name_lower, language,
           status, NULLIF(password_hash, ''), NULL, create_time, update_time, revision
    FROM input ORDER BY email
    ON CONFLICT DO NOTHING
    RETURNING id
),
recorded AS (
    INSERT INTO pending_events (kind, resource_id, customer_id, time, payload)
    SELECT 'user.created', i.id, NULL, $14, i.payload
    FROM input i JOIN written w ON w.id = i.id
    WHERE (SELECT count(*) FROM written) >= 0
    ORDER BY i.position
)
SELECT id FROM written";

/// The calls waiting to be written, the flusher slots, and their connections.
pub(super) struct UserBatches {
    queue: Mutex<VecDeque<Waiting>>,
    /// Calls that may wait in `queue` at once.
    capacity: usize,
    flushers: Arc<Semaphore>,
    /// `FLUSHERS` connections of the batches' own, with PostgreSQL's default plan
    /// cache: the pool's connections plan each statement for its values (see
    /// `Store::connect`), which costs this statement more than writing its rows.
    /// `None` when the connection budget has none to spare; the pool's are used then.
    connections: Option<PgPool>,
}

/// One CreateUser call's row and its event's payload, with where its answer goes:
/// `Ok(true)` written, `Ok(false)` its email is taken.
struct Waiting {
    row: user::Model,
    payload: String,
    answer: oneshot::Sender<Result<bool>>,
    /// The RPC's deadline, when the call is one.
    deadline: Option<Deadline>,
}

impl UserBatches {
    /// Connections the batches take from the budget when it has them to spare.
    pub(super) const CONNECTIONS: u32 = FLUSHERS as u32;

    /// `options`: the batches' own connections, or `None` to use the pool's.
    pub(super) fn new(
        options: Option<(PgConnectOptions, &DatabaseSettings)>,
        capacity: usize,
    ) -> UserBatches {
        let timeout = BATCH_STATEMENT_TIMEOUT.as_millis().to_string();
        let connections = options.map(|(options, settings)| {
            PgPoolOptions::new()
                .max_connections(Self::CONNECTIONS)
                .min_connections(0)
                .acquire_timeout(settings.acquire_timeout)
                .idle_timeout(settings.limits.max_idle)
                .max_lifetime(settings.limits.max_age)
                // As for the pool: a dead connection is found by the statement itself,
                // and a batch it broke under is settled by ids.
                .test_before_acquire(false)
                .connect_lazy_with(
                    options
                        .application_name("tenancy-batches")
                        .options([("statement_timeout", timeout.as_str())]),
                )
        });
        UserBatches {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            flushers: Arc::new(Semaphore::new(FLUSHERS)),
            connections,
        }
    }

    pub(super) async fn close(&self) {
        if let Some(connections) = &self.connections {
            connections.close().await;
        }
    }
}

impl Store {
    /// Writes `row` (a new user, `last_login_time` unset) and its `user.created` event
    /// with `payload`, batched with the calls waiting beside it. Answers whether it was
    /// written (false: another user holds the email); `WriteQueueFull` when too many
    /// calls wait already, `DeadlineExceeded` when the RPC's deadline passed before its
    /// statement (nothing written either way).
    pub(super) async fn insert_user_batched(
        &self,
        row: user::Model,
        payload: String,
    ) -> Result<bool> {
        debug_assert!(
            row.last_login_time.is_none(),
            "a new user has not signed in"
        );
        let batches = self
            .user_batches
            .as_ref()
            .ok_or_else(|| Error::internal("user batches are PostgreSQL's"))?;
        let (answer, answered) = oneshot::channel();
        {
            let mut queue = batches.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.len() >= batches.capacity {
                return Err(Error::WriteQueueFull {
                    capacity: batches.capacity,
                });
            }
            queue.push_back(Waiting {
                row,
                payload,
                answer,
                deadline: Deadline::current(),
            });
            // Taken under the queue's lock, where a flusher gives its slot back only
            // after finding the queue empty: the row is written by a running flusher
            // or by the one started here.
            if let Ok(slot) = batches.flushers.clone().try_acquire_owned() {
                tokio::spawn(self.clone().flush_user_batches(slot));
            }
        }
        answered
            .await
            .map_err(|_| Error::internal("the batch writing a user ended without an answer"))?
    }

    async fn flush_user_batches(self, slot: OwnedSemaphorePermit) {
        let Some(batches) = self.user_batches.clone() else {
            return;
        };
        loop {
            let batch: Vec<Waiting> = {
                let mut queue = batches.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.is_empty() {
                    drop(slot);
                    return;
                }
                let take = queue.len().min(MAX_BATCH);
                queue.drain(..take).collect()
            };
            self.write_user_batch(batch).await;
        }
    }

    /// Writes `batch` and answers each of its calls.
    async fn write_user_batch(&self, batch: Vec<Waiting>) {
        let batch = admit(batch);
        if batch.is_empty() {
            return;
        }
        let err = match self.insert_users(&batch).await {
            Ok(written) => {
                self.answer_written(batch, &written);
                return;
            }
            Err(err) => err,
        };
        let outcome_unknown = is_broken_connection(&err);
        let unsettled = if outcome_unknown {
            // Each row is there, with its event, or not at all (the ids are made here).
            tracing::debug!(%err, "a connection broke under a batch of CreateUser; settling it");
            self.drop_idle_connections();
            let ids: Vec<Uuid> = batch.iter().map(|waiting| waiting.row.id).collect();
            let existing = match self.existing_users(ids).await {
                Ok(existing) => existing,
                Err(err) => {
                    answer_all(batch, err);
                    return;
                }
            };
            let (settled, missing): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .partition(|waiting| existing.contains(&waiting.row.id));
            self.answer_written(settled, &existing);
            missing
        } else if batch.len() == 1 && !is_statement_timeout(&err) {
            answer_all(batch, db_error(err));
            return;
        } else {
            // Refused by the database for some row, or held past the statement timeout
            // by some row: each call alone learns whether it was its own.
            batch
        };
        for waiting in unsettled {
            tokio::spawn(self.clone().write_alone(waiting, outcome_unknown));
        }
    }

    /// Writes one call's user in a statement of its own, bounded by the call's deadline
    /// (at least `ORPHAN_BOUND` after a broken connection), and answers it.
    async fn write_alone(self, waiting: Waiting, after_broken_connection: bool) {
        let deadline = waiting.deadline.clone();
        let mut bound = deadline
            .as_ref()
            .map_or(ALONE_TIMEOUT, |deadline| deadline.remaining());
        if after_broken_connection {
            bound = bound.max(ORPHAN_BOUND);
        }
        let timed_out = || Error::DeadlineExceeded {
            timeout: deadline
                .as_ref()
                .map_or(ALONE_TIMEOUT, |deadline| deadline.budget()),
        };
        if bound.is_zero() {
            let _ = waiting.answer.send(Err(timed_out()));
            return;
        }
        let id = waiting.row.id;
        let answer = match self
            .insert_users_within(std::slice::from_ref(&waiting), bound)
            .await
        {
            Ok(written) if written.contains(&id) => Ok(true),
            // Left out for its email: by another user, or by this very row, which a
            // statement whose connection broke may have written after all.
            Ok(_) => self
                .existing_users(vec![id])
                .await
                .map(|existing| existing.contains(&id)),
            Err(err) if is_statement_timeout(&err) => Err(timed_out()),
            Err(err) => Err(db_error(err)),
        };
        if matches!(answer, Ok(true)) {
            self.committed(&[Id::from_uuid(id)], true, None);
        }
        let _ = waiting.answer.send(answer);
    }

    /// The batch statement, on the batches' connection (bounded by its
    /// `statement_timeout`), or in a transaction of the pool bounded the same way:
    /// answers the ids of the users it wrote.
    async fn insert_users(&self, batch: &[Waiting]) -> std::result::Result<HashSet<Uuid>, DbErr> {
        let Some(connections) = self
            .user_batches
            .as_ref()
            .and_then(|batches| batches.connections.as_ref())
        else {
            return self
                .insert_users_within(batch, BATCH_STATEMENT_TIMEOUT)
                .await;
        };
        let columns = Columns::of(batch);
        let mut query = sqlx::query_scalar::<_, Uuid>(INSERT_USERS).bind(columns.ids);
        for column in columns.texts {
            query = query.bind(column);
        }
        for column in columns.numbers {
            query = query.bind(column);
        }
        self.statements.fetch_add(1, Ordering::Relaxed);
        let written = query
            .bind(columns.payloads)
            .bind(columns.time)
            .fetch_all(connections)
            .await
            .map_err(|err| DbErr::Query(RuntimeErr::SqlxError(Arc::new(err))))?;
        Ok(written.into_iter().collect())
    }

    /// The batch statement in a transaction of the pool whose statements PostgreSQL
    /// cancels after `bound`.
    async fn insert_users_within(
        &self,
        batch: &[Waiting],
        bound: Duration,
    ) -> std::result::Result<HashSet<Uuid>, DbErr> {
        let columns = Columns::of(batch);
        let mut values: Vec<Value> = vec![columns.ids.into()];
        values.extend(columns.texts.into_iter().map(Value::from));
        values.extend(columns.numbers.into_iter().map(Value::from));
        values.extend([columns.payloads.into(), columns.time.into()]);
        let txn = self.db.begin().await?;
        let written = async {
            txn.execute_unprepared(&format!(
                "SET LOCAL statement_timeout = {}",
                bound.as_millis().max(1)
            ))
            .await?;
            txn.query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                INSERT_USERS,
                values,
            ))
            .await
        }
        .await;
        let written = match written {
            Ok(written) => written,
            Err(err) => {
                let _ = txn.rollback().await;
                return Err(err);
            }
        };
        txn.commit().await?;
        written
            .iter()
            .map(|row| row.try_get::<Uuid>("", "id"))
            .collect()
    }

    async fn existing_users(&self, ids: Vec<Uuid>) -> Result<HashSet<Uuid>> {
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id FROM users WHERE id = ANY($1)",
            [Value::from(ids)],
        );
        let rows = self
            .read(|| self.db.query_all_raw(statement.clone()))
            .await?;
        rows.iter()
            .map(|row| row.try_get::<Uuid>("", "id").map_err(db_error))
            .collect()
    }

    /// Answers the calls of a statement that committed: written or email taken.
    fn answer_written(&self, batch: Vec<Waiting>, written: &HashSet<Uuid>) {
        let touched: Vec<Id> = batch
            .iter()
            .filter(|waiting| written.contains(&waiting.row.id))
            .map(|waiting| Id::from_uuid(waiting.row.id))
            .collect();
        if !touched.is_empty() {
            self.committed(&touched, true, None);
        }
        for waiting in batch {
            let _ = waiting.answer.send(Ok(written.contains(&waiting.row.id)));
        }
    }
}

/// The calls of `batch` that a statement may write now: a call whose caller went away
/// is dropped, one whose deadline passed is answered `DeadlineExceeded`, both
/// unwritten; the others are marked committing.
fn admit(batch: Vec<Waiting>) -> Vec<Waiting> {
    batch
        .into_iter()
        .filter_map(|waiting| {
            if waiting.answer.is_closed() {
                return None;
            }
            if let Some(deadline) = &waiting.deadline
                && !deadline.begin_commit()
            {
                let timeout = deadline.budget();
                let _ = waiting
                    .answer
                    .send(Err(Error::DeadlineExceeded { timeout }));
                return None;
            }
            Some(waiting)
        })
        .collect()
}

/// PostgreSQL cancelled the statement for running past its `statement_timeout`
/// (SQLSTATE 57014): it wrote nothing.
fn is_statement_timeout(err: &DbErr) -> bool {
    matches!(
        sqlx_cause(err),
        Some(sqlx::Error::Database(db)) if db.code().as_deref() == Some("57014")
    )
}

/// A batch as the statement's parallel arrays.
struct Columns {
    ids: Vec<Uuid>,
    texts: [Vec<String>; 8],
    numbers: [Vec<i64>; 3],
    payloads: Vec<String>,
    time: i64,
}

impl Columns {
    fn of(batch: &[Waiting]) -> Columns {
        let rows = || batch.iter().map(|waiting| &waiting.row);
        let texts = |field: fn(&user::Model) -> &str| -> Vec<String> {
            rows().map(|row| field(row).to_owned()).collect()
        };
        let numbers = |field: fn(&user::Model) -> i64| -> Vec<i64> { rows().map(field).collect() };
        Columns {
            ids: rows().map(|row| row.id).collect(),
            texts: [
                texts(|row| &row.email),
                texts(|row| &row.first_name),
                texts(|row| &row.last_name),
                texts(|row| &row.first_name_lower),
                texts(|row| &row.last_name_lower),
                texts(|row| &row.language),
                texts(|row| &row.status),
                texts(|row| row.password_hash.as_deref().unwrap_or("")),
            ],
            numbers: [
                numbers(|row| row.create_time),
                numbers(|row| row.update_time),
                numbers(|row| row.revision),
            ],
            payloads: batch
                .iter()
                .map(|waiting| waiting.payload.clone())
                .collect(),
            time: to_micros(now()),
        }
    }
}

/// Gives every call of `batch` the failure `err`: the first call the error itself,
/// the others the same kind of error (errors are not `Clone`; their causes go to the
/// log as text).
fn answer_all(batch: Vec<Waiting>, err: Error) {
    let mut batch = batch.into_iter();
    let Some(first) = batch.next() else {
        return;
    };
    for waiting in batch {
        let copy = match &err {
            Error::Unavailable(cause) => Error::Unavailable(cause.to_string().into()),
            Error::Contention => Error::Contention,
            other => Error::internal(other.to_string()),
        };
        let _ = waiting.answer.send(Err(copy));
    }
    let _ = first.answer.send(Err(err));
}
