//! The event log: appended inside each write transaction, read by `StreamEvents`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait as _, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _, Statement,
};
use tokio::sync::watch;

use super::{Store, WriteTx, db_error, entities::event, from_micros, now, to_micros};
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

    /// Numbers and inserts the events recorded in `tx`, returning the last sequence.
    ///
    /// Lock order: every write transaction locks its own rows first (a customer before
    /// its accounts, accounts in id order, then memberships and invitations) and the
    /// counter row `event_log_state` last, here, right before COMMIT. Holding the
    /// counter row is what makes sequences gap-free and visible in commit order; taking
    /// it last means no writer waits for it while holding a row another one needs
    /// first, and it is held for one round trip instead of the whole transaction.
    pub(crate) async fn write_pending_events(&self, tx: &mut WriteTx) -> Result<Option<i64>> {
        let events = std::mem::take(&mut tx.pending_events);
        if events.is_empty() {
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

    /// Deletes events older than `cutoff`; returns how many went.
    pub async fn prune_events(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let tx = self.begin().await?;
        let newest_old = event::Entity::find()
            .filter(event::Column::Time.lt(to_micros(cutoff)))
            .order_by_desc(event::Column::Sequence)
            .one(tx.txn())
            .await
            .map_err(db_error)?;
        let Some(newest_old) = newest_old else {
            return Ok(0);
        };
        let deleted = event::Entity::delete_many()
            .filter(event::Column::Sequence.lte(newest_old.sequence))
            .exec(tx.txn())
            .await
            .map_err(db_error)?
            .rows_affected;
        tx.txn()
            .execute_raw(Statement::from_sql_and_values(
                self.backend(),
                "UPDATE event_log_state SET pruned_through = $1 WHERE id = 1 AND pruned_through < $1",
                [newest_old.sequence.into()],
            ))
            .await
            .map_err(db_error)?;
        self.commit(tx).await?;
        Ok(deleted)
    }

    /// Changes whenever this process commits an event; other instances' events are
    /// found by polling.
    pub fn subscribe_events(&self) -> watch::Receiver<i64> {
        self.last_event.subscribe()
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
