//! The event log: appended inside each write transaction, read by `StreamEvents`.

use std::time::Duration;

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait as _, ConnectionTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _, Statement,
};
use tokio::sync::watch;

use super::{
    Store, WriteTx, db_error,
    entities::{event, pending_event},
    from_micros, now, to_micros,
};
use crate::domain::{
    Error, Result,
    event::{Event, NewEvent},
    id::Id,
};

impl Store {
    /// Records `event` in `tx`; it is written to the log when `tx` commits (see
    /// `write_pending_events`), so a writer takes the log's counter row only as its
    /// last statement before COMMIT, whatever order it changed rows in.
    pub(crate) async fn append_event(&self, tx: &mut WriteTx, event: NewEvent) -> Result<()> {
        let payload = serde_json::to_string(&event.resource).map_err(Error::internal)?;
        tx.touched.extend(event.touched_ids());
        tx.pending_events.push(event::ActiveModel {
            sequence: Set(0),
            kind: Set(event.kind.to_string()),
            resource_id: Set(event.resource_id.uuid()),
            customer_id: Set(event.customer_id.map(|id| id.uuid())),
            time: Set(to_micros(now())),
            payload: Set(payload),
        });
        Ok(())
    }

    /// Writes the events recorded in `tx`. On PostgreSQL they go to `pending_events`,
    /// unnumbered, for the sequencer (see `sequencer`): the transaction touches no row
    /// that another writer touches, and `None` is returned. On SQLite, whose one writer
    /// at a time already serialises commits, they are numbered here and the last
    /// sequence is returned.
    ///
    /// Lock order (both backends): every write transaction locks its own rows first (a
    /// customer before its accounts, accounts in id order, then memberships and
    /// invitations). On SQLite the counter row `event_log_state` comes last, here, right
    /// before COMMIT, so no writer waits for it while holding a row another one needs.
    pub(crate) async fn write_pending_events(&self, tx: &mut WriteTx) -> Result<Option<i64>> {
        let events = std::mem::take(&mut tx.pending_events);
        if events.is_empty() {
            return Ok(None);
        }
        if self.sequencer.is_some() {
            let mut pending = events
                .into_iter()
                .map(|event| pending_event::ActiveModel {
                    id: NotSet,
                    kind: event.kind,
                    resource_id: event.resource_id,
                    customer_id: event.customer_id,
                    time: event.time,
                    payload: event.payload,
                })
                .peekable();
            while pending.peek().is_some() {
                let chunk: Vec<_> = pending.by_ref().take(500).collect();
                pending_event::Entity::insert_many(chunk)
                    .exec_without_returning(tx.txn())
                    .await
                    .map_err(db_error)?;
            }
            tx.pending_written = true;
            return Ok(None);
        }
        let count = i64::try_from(events.len()).map_err(Error::internal)?;
        let row = tx
            .txn()
            .query_one_raw(Statement::from_sql_and_values(
                self.backend(),
                match self.backend() {
                    sea_orm::DbBackend::Postgres => {
                        "UPDATE event_log_state SET last_sequence = last_sequence + $1 WHERE id = 1 RETURNING last_sequence"
                    }
                    _ => {
                        "UPDATE event_log_state SET last_sequence = last_sequence + ? WHERE id = 1 RETURNING last_sequence"
                    }
                },
                [count.into()],
            ))
            .await
            .map_err(db_error)?
            .ok_or_else(|| Error::internal("event_log_state has no row"))?;
        let last: i64 = row.try_get("", "last_sequence").map_err(db_error)?;
        let first = last - count + 1;
        let mut numbered = events
            .into_iter()
            .zip(first..)
            .map(|(mut event, sequence)| {
                event.sequence = Set(sequence);
                event
            })
            .peekable();
        // Six bound values a row: chunks stay far below SQLite's and PostgreSQL's
        // limits on parameters in one statement.
        while numbered.peek().is_some() {
            let chunk: Vec<_> = numbered.by_ref().take(500).collect();
            event::Entity::insert_many(chunk)
                .exec_without_returning(tx.txn())
                .await
                .map_err(db_error)?;
        }
        Ok(Some(last))
    }

    /// Up to `limit` events after `after`, in sequence order.
    pub async fn events_after(&self, after: i64, limit: u64) -> Result<Vec<Event>> {
        let query = event::Entity::find()
            .filter(event::Column::Sequence.gt(after))
            .order_by_asc(event::Column::Sequence)
            .limit(limit);
        let rows = self.read(|| query.clone().all(&self.db)).await?;
        rows.into_iter().map(event_from_row).collect()
    }

    /// Up to `limit` events after `after`, and how old the log's completeness is: every
    /// write committed more than that before this call began has its events in the log
    /// (the caches' freshness, see `app::events`). On SQLite, zero: a commit numbers its
    /// events. On PostgreSQL, from the sequencer's `complete_as_of`, read in the same
    /// statement (one snapshot) as the events, and measured on the database's clock.
    pub async fn feed_after(&self, after: i64, limit: u64) -> Result<(Vec<Event>, Duration)> {
        if self.sequencer.is_none() {
            return Ok((self.events_after(after, limit).await?, Duration::ZERO));
        }
        let limit = i64::try_from(limit).map_err(Error::internal)?;
        let statement = Statement::from_sql_and_values(
            self.backend(),
            "SELECT s.complete_as_of, \
                    (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS database_now, \
                    e.sequence, e.kind, e.resource_id, e.customer_id, e.time, e.payload \
             FROM event_log_state s \
             LEFT JOIN LATERAL (SELECT * FROM events WHERE sequence > $1 \
                                ORDER BY sequence LIMIT $2) e ON true \
             WHERE s.id = 1 ORDER BY e.sequence",
            [after.into(), limit.into()],
        );
        let rows = self
            .read(|| self.db.query_all_raw(statement.clone()))
            .await?;
        let mut age = Duration::MAX;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let complete: i64 = row.try_get("", "complete_as_of").map_err(db_error)?;
            let database_now: i64 = row.try_get("", "database_now").map_err(db_error)?;
            if complete > 0 {
                age = Duration::from_micros(database_now.saturating_sub(complete).max(0) as u64);
            }
            let Some(sequence) = row
                .try_get::<Option<i64>>("", "sequence")
                .map_err(db_error)?
            else {
                continue;
            };
            events.push(event_from_row(event::Model {
                sequence,
                kind: row.try_get("", "kind").map_err(db_error)?,
                resource_id: row.try_get("", "resource_id").map_err(db_error)?,
                customer_id: row.try_get("", "customer_id").map_err(db_error)?,
                time: row.try_get("", "time").map_err(db_error)?,
                payload: row.try_get("", "payload").map_err(db_error)?,
            })?);
        }
        Ok((events, age))
    }

    /// Waits until no committed event waits for its sequence (at once on SQLite), or
    /// `within` passed; false then. For tests and tools that read the log right after
    /// writing.
    pub async fn wait_until_sequenced(&self, within: Duration) -> Result<bool> {
        if self.sequencer.is_none() {
            return Ok(true);
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let statement = Statement::from_string(
                self.backend(),
                "SELECT EXISTS (SELECT 1 FROM pending_events) AS pending",
            );
            let row = self
                .query_one(statement)
                .await?
                .ok_or_else(|| Error::internal("EXISTS answered no row"))?;
            let pending: bool = row.try_get("", "pending").map_err(db_error)?;
            if !pending {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `(pruned_through, last_sequence)`: events up to the first were deleted by
    /// retention; the second is the newest committed sequence.
    pub async fn event_bounds(&self) -> Result<(i64, i64)> {
        let statement = Statement::from_string(
            self.backend(),
            "SELECT pruned_through, last_sequence FROM event_log_state WHERE id = 1",
        );
        let row = self
            .query_one(statement)
            .await?
            .ok_or_else(|| Error::internal("event_log_state has no row"))?;
        let pruned: i64 = row.try_get("", "pruned_through").map_err(db_error)?;
        let last: i64 = row.try_get("", "last_sequence").map_err(db_error)?;
        Ok((pruned, last))
    }

    /// Deletes the events older than `retention` by the database's clock (the one
    /// clock every instance shares, which also stamped the events' times on
    /// PostgreSQL), up to the newest such sequence, so what is kept is always a
    /// suffix of the log; returns how many went.
    pub async fn prune_events(&self, retention: Duration) -> Result<u64> {
        let retention = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
        let tx = self.begin().await?;
        let database_now = self.database_now();
        let newest_old = tx
            .txn()
            .query_one_raw(Statement::from_sql_and_values(
                self.backend(),
                format!(
                    "SELECT max(sequence) AS newest FROM events WHERE time < {database_now} - $1"
                ),
                [retention.into()],
            ))
            .await
            .map_err(db_error)?
            .map(|row| row.try_get::<Option<i64>>("", "newest"))
            .transpose()
            .map_err(db_error)?
            .flatten();
        let Some(newest_old) = newest_old else {
            return Ok(0);
        };
        let deleted = event::Entity::delete_many()
            .filter(event::Column::Sequence.lte(newest_old))
            .exec(tx.txn())
            .await
            .map_err(db_error)?
            .rows_affected;
        tx.txn()
            .execute_raw(Statement::from_sql_and_values(
                self.backend(),
                "UPDATE event_log_state SET pruned_through = $1 WHERE id = 1 AND pruned_through < $1",
                [newest_old.into()],
            ))
            .await
            .map_err(db_error)?;
        self.commit(tx).await?;
        Ok(deleted)
    }

    /// Changes whenever this process commits an event (SQLite) or numbers events (the
    /// PostgreSQL sequencer); other instances' events are found by polling.
    pub fn subscribe_events(&self) -> watch::Receiver<i64> {
        self.last_event.subscribe()
    }

    /// Changes whenever this process commits events that wait for the sequencer
    /// (PostgreSQL); `None` on SQLite.
    pub fn subscribe_written(&self) -> Option<watch::Receiver<u64>> {
        self.sequencer
            .as_ref()
            .map(|sequencer| sequencer.subscribe_written())
    }
}

fn event_from_row(row: event::Model) -> Result<Event> {
    Ok(Event {
        sequence: row.sequence,
        kind: row.kind,
        resource_id: Id::from_uuid(row.resource_id),
        customer_id: row.customer_id.map(Id::from_uuid),
        time: from_micros(row.time),
        resource: serde_json::from_str(&row.payload).map_err(Error::internal)?,
    })
}
