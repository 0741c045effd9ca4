//! The event relays' positions and leases (`relay_state`): one row per relay name.
//!
//! A lease is a time in the row, renewed by its holder with each step; another process
//! takes the row only once the lease ran out, so at most one relay publishes while
//! clocks agree within the lease. Even when two overlap (a holder paused past its
//! lease), each publishes in sequence order and the broker drops repeated ids, so the
//! stream's order holds.

use std::time::Duration;

use sea_orm::{ConnectionTrait as _, Statement};

use super::{Store, db_error, now, to_micros};
use crate::domain::Result;

fn lease_end(lease: Duration) -> (i64, i64) {
    let now = to_micros(now());
    let micros = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
    (now, now.saturating_add(micros))
}

impl Store {
    /// Takes (or keeps) the lease of relay `name` for `holder` until `lease` from now;
    /// returns the last acknowledged sequence, or `None` while another holder's lease
    /// runs.
    pub async fn claim_relay(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<i64>> {
        let (now, until) = lease_end(lease);
        let tx = self.begin().await?;
        let row = tx
            .txn()
            .query_one_raw(Statement::from_sql_and_values(
                self.backend(),
                "INSERT INTO relay_state (name, holder, lease_until, last_sequence) \
                 VALUES ($1, $2, $3, 0) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                   lease_until = excluded.lease_until \
                 WHERE relay_state.holder = excluded.holder OR relay_state.lease_until < $4 \
                 RETURNING last_sequence",
                [name.into(), holder.into(), until.into(), now.into()],
            ))
            .await
            .map_err(db_error)?;
        let position = match row {
            Some(row) => Some(row.try_get::<i64>("", "last_sequence").map_err(db_error)?),
            None => None,
        };
        self.commit(tx).await?;
        Ok(position)
    }

    /// Records `sequence` as acknowledged and renews the lease, in one statement;
    /// false when `holder` no longer holds it (it must stop publishing).
    pub async fn advance_relay(
        &self,
        name: &str,
        holder: &str,
        sequence: i64,
        lease: Duration,
    ) -> Result<bool> {
        let (_, until) = lease_end(lease);
        let tx = self.begin().await?;
        let updated = tx
            .txn()
            .execute_raw(Statement::from_sql_and_values(
                self.backend(),
                "UPDATE relay_state SET last_sequence = $3, lease_until = $4 \
                 WHERE name = $1 AND holder = $2 AND last_sequence <= $3",
                [name.into(), holder.into(), sequence.into(), until.into()],
            ))
            .await
            .map_err(db_error)?
            .rows_affected();
        self.commit(tx).await?;
        Ok(updated == 1)
    }

    /// Gives the lease up (the process is stopping), so another takes over at once.
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
