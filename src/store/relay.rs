//! The event relays' positions and leases (`relay_state`): one row per relay name.
//!
//! A lease is a time in the row, on the database's clock (the one clock all instances
//! share), renewed by its holder with each step; another process takes the row only
//! once the lease ran out. The lease keeps one relay publishing; the stream's order does
//! not rest on it (the relay's publishes carry the broker's expected-last-sequence
//! guard, see `relay`).

use std::time::Duration;

use sea_orm::{ConnectionTrait as _, QueryResult, Statement};

use super::{Store, db_error};
use crate::domain::{Error, Result};

/// Where a relay stands: the newest event its broker acknowledged, and where the broker
/// put it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayPosition {
    /// The event's sequence (0: none yet).
    pub event: i64,
    /// The stream sequence of that event's message; `None` when not known (nothing
    /// published yet, or a position recorded before this was kept).
    pub stream_sequence: Option<u64>,
}

fn lease_micros(lease: Duration) -> i64 {
    i64::try_from(lease.as_micros()).unwrap_or(i64::MAX)
}

fn position_from_row(row: &QueryResult) -> Result<RelayPosition> {
    let event = row.try_get::<i64>("", "last_sequence").map_err(db_error)?;
    let stream_sequence = row
        .try_get::<Option<i64>>("", "stream_sequence")
        .map_err(db_error)?
        .map(u64::try_from)
        .transpose()
        .map_err(Error::internal)?;
    Ok(RelayPosition {
        event,
        stream_sequence,
    })
}

impl Store {
    /// Takes (or keeps) the lease of relay `name` for `holder` until `lease` from now on
    /// the database's clock; returns the last acknowledged position, or `None` while
    /// another holder's lease runs.
    pub async fn claim_relay(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<RelayPosition>> {
        let now = self.database_now();
        let tx = self.begin().await?;
        let row = tx
            .txn()
            .query_one_raw(Statement::from_sql_and_values(
                self.backend(),
                format!(
                    "INSERT INTO relay_state (name, holder, lease_until, last_sequence) \
                     VALUES ($1, $2, {now} + $3, 0) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                       lease_until = excluded.lease_until \
                     WHERE relay_state.holder = excluded.holder OR relay_state.lease_until < {now} \
                     RETURNING last_sequence, stream_sequence"
                ),
                [name.into(), holder.into(), lease_micros(lease).into()],
            ))
            .await
            .map_err(db_error)?;
        let position = row.as_ref().map(position_from_row).transpose()?;
        self.commit(tx).await?;
        Ok(position)
    }

    /// Records `position` as acknowledged and renews the lease until `lease` from now on
    /// the database's clock, in one statement; false when `holder` no longer holds it
    /// (it must stop publishing).
    pub async fn advance_relay(
        &self,
        name: &str,
        holder: &str,
        position: RelayPosition,
        lease: Duration,
    ) -> Result<bool> {
        let now = self.database_now();
        let stream_sequence = position
            .stream_sequence
            .map(i64::try_from)
            .transpose()
            .map_err(Error::internal)?;
        let tx = self.begin().await?;
        let updated = tx
            .txn()
            .execute_raw(Statement::from_sql_and_values(
                self.backend(),
                format!(
                    "UPDATE relay_state SET last_sequence = $3, stream_sequence = $4, \
                       lease_until = {now} + $5 \
                     WHERE name = $1 AND holder = $2 AND last_sequence <= $3"
                ),
                [
                    name.into(),
                    holder.into(),
                    position.event.into(),
                    stream_sequence.into(),
                    lease_micros(lease).into(),
                ],
            ))
            .await
            .map_err(db_error)?
            .rows_affected();
        self.commit(tx).await?;
        Ok(updated == 1)
    }

    /// Gives the lease up (the process is stopping, or cannot publish), so another takes
    /// over at once.
    pub async fn release_relay(&self, name: &str, holder: &str) -> Result<()> {
        let tx = self.begin().await?;
        tx.txn()
            .execute_raw(Statement::from_sql_and_values(
                self.backend(),
                "UPDATE relay_state SET lease_until = 0 WHERE name = $1 AND holder = $2",
                [name.into(), holder.into()],
            ))
            .await
            .map_err(db_error)?;
        self.commit(tx).await
    }

    /// The last acknowledged sequence of relay `name` (0 when it never ran).
    pub async fn relay_position(&self, name: &str) -> Result<i64> {
        let row = self
            .query_one(Statement::from_sql_and_values(
                self.backend(),
                "SELECT last_sequence FROM relay_state WHERE name = $1",
                [name.into()],
            ))
            .await?;
        match row {
            Some(row) => row.try_get::<i64>("", "last_sequence").map_err(db_error),
            None => Ok(0),
        }
    }
}
