//! The sign-in throttle: an atomic per-email attempt counter in the database, so
//! parallel guesses and several instances share one count.

use std::time::Duration;

use sea_orm::{ConnectionTrait as _, Statement};

use super::{Store, WriteTx, db_error, now, to_micros};
use crate::domain::{Error, Result};

/// How many failures within a window lock an email, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub threshold: u32,
    pub window: Duration,
    pub lock: Duration,
}

/// Whether a sign-in attempt may verify the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Allowed,
    Locked,
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

impl Store {
    /// Counts an attempt *before* the password is checked, so that N parallel guesses
    /// take N slots and at most `threshold` of them are ever verified per window.
    pub async fn reserve_sign_in_attempt(
        &self,
        email: &str,
        policy: ThrottlePolicy,
    ) -> Result<Attempt> {
        let now = to_micros(now());
        let window_start_cutoff = now - micros(policy.window);
        let tx = self.begin().await?;
        let row = tx
            .txn
            .query_one_raw(Statement::from_sql_and_values(
                self.backend(),
                "INSERT INTO login_throttle (email, attempts, window_start, locked_until) \
                 VALUES ($1, 1, $2, NULL) \
                 ON CONFLICT (email) DO UPDATE SET \
                   attempts = CASE WHEN login_throttle.window_start <= $3 OR login_throttle.locked_until <= $2 \
                              THEN 1 ELSE login_throttle.attempts + 1 END, \
                   window_start = CASE WHEN login_throttle.window_start <= $3 OR login_throttle.locked_until <= $2 \
                              THEN $2 ELSE login_throttle.window_start END, \
                   locked_until = CASE WHEN login_throttle.locked_until <= $2 \
                              THEN NULL ELSE login_throttle.locked_until END \
                 RETURNING attempts, locked_until",
                [email.into(), now.into(), window_start_cutoff.into()],
            ))
            .await
            .map_err(db_error)?
            .ok_or_else(|| Error::internal("upsert returned no row"))?;
        let attempts: i32 = row.try_get("", "attempts").map_err(db_error)?;
        let locked_until: Option<i64> = row.try_get("", "locked_until").map_err(db_error)?;
        self.commit(tx).await?;
        let locked = locked_until.is_some_and(|until| until > now)
            || attempts as i64 > policy.threshold as i64;
        Ok(if locked {
            Attempt::Locked
        } else {
            Attempt::Allowed
        })
    }

    /// Records a failed verification: reaching the threshold locks the email.
    pub async fn record_sign_in_failure(&self, email: &str, policy: ThrottlePolicy) -> Result<()> {
        let now = to_micros(now());
        let tx = self.begin().await?;
        tx.txn
            .execute_raw(Statement::from_sql_and_values(
                self.backend(),
                "UPDATE login_throttle SET locked_until = $2 \
                 WHERE email = $1 AND attempts >= $3 AND (locked_until IS NULL OR locked_until <= $4)",
                [
                    email.into(),
                    (now + micros(policy.lock)).into(),
                    (policy.threshold as i32).into(),
                    now.into(),
                ],
            ))
            .await
            .map_err(db_error)?;
        self.commit(tx).await
    }

    /// Gives back an attempt that was reserved but never verified (the hashing pool
    /// turned it away), so load alone cannot lock anyone out.
    pub async fn release_sign_in_attempt(&self, email: &str) -> Result<()> {
        let tx = self.begin().await?;
        tx.txn
            .execute_raw(Statement::from_sql_and_values(
                self.backend(),
                "UPDATE login_throttle SET attempts = attempts - 1 WHERE email = $1 AND attempts > 0",
                [email.into()],
            ))
            .await
            .map_err(db_error)?;
        self.commit(tx).await
    }

    /// A successful sign-in clears the count (inside the sign-in's transaction).
    pub(crate) async fn clear_sign_in_failures(&self, tx: &WriteTx, email: &str) -> Result<()> {
        tx.txn
            .execute_raw(Statement::from_sql_and_values(
                self.backend(),
                "DELETE FROM login_throttle WHERE email = $1",
                [email.into()],
            ))
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
