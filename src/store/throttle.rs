//! The sign-in throttle: per email, the times of its recent attempts in the database, so
//! parallel guesses and several instances share one count. It is a sliding window: an
//! attempt is allowed only while fewer than `threshold` attempts fall inside the last
//! `window`, so no span of `window` ever holds more than `threshold` failures.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait as _, Statement};

use super::{Credentials, Store, WriteTx, db_error, now, to_micros};
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
    /// Reserved at this time (microseconds); `release_sign_in_attempt` gives it back.
    Allowed(i64),
    Locked,
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// One email's row, read under its row lock.
struct Recent {
    times: Vec<i64>,
    locked_until: Option<i64>,
}

impl Store {
    /// Reads `email`'s row inside `tx`, creating it first, and holds it until `tx` ends:
    /// PostgreSQL locks the row (`FOR UPDATE`); SQLite's IMMEDIATE transaction already
    /// holds the database's write lock.
    async fn lock_throttle_row(&self, tx: &WriteTx, email: &str, now: i64) -> Result<Recent> {
        // One statement creates the row if needed and returns it locked: a conflicting
        // `DO UPDATE` locks the row on PostgreSQL like `FOR UPDATE`; SQLite's
        // IMMEDIATE transaction already holds the database's write lock.
        let row = tx
            .txn()
            .query_one_raw(Statement::from_sql_and_values(
                self.backend(),
                "INSERT INTO login_throttle \
                   (email, attempts, window_start, locked_until, recent_attempts, last_attempt_time) \
                 VALUES ($1, 0, $2, NULL, '', $2) \
                 ON CONFLICT (email) DO UPDATE SET email = excluded.email \
                 RETURNING recent_attempts, locked_until",
                [email.into(), now.into()],
            ))
            .await
            .map_err(db_error)?
            .ok_or_else(|| Error::internal("the throttle upsert returned no row"))?;
        let text: String = row.try_get("", "recent_attempts").map_err(db_error)?;
        let locked_until: Option<i64> = row.try_get("", "locked_until").map_err(db_error)?;
        Ok(Recent {
            times: text
                .split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect(),
            locked_until,
        })
    }

    async fn save_throttle_row(
        &self,
        tx: &WriteTx,
        email: &str,
        recent: &Recent,
        now: i64,
    ) -> Result<()> {
        let text = recent
            .times
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        let oldest = recent.times.iter().min().copied().unwrap_or(now);
        let newest = recent.times.iter().max().copied().unwrap_or(now);
        tx.txn()
            .execute_raw(Statement::from_sql_and_values(
                self.backend(),
                "UPDATE login_throttle SET attempts = $2, window_start = $3, locked_until = $4, \
                   recent_attempts = $5, last_attempt_time = $6 WHERE email = $1",
                [
                    email.into(),
                    (recent.times.len() as i32).into(),
                    oldest.into(),
                    recent.locked_until.into(),
                    text.into(),
                    newest.into(),
                ],
            ))
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Counts an attempt *before* the password is checked, so that N parallel guesses
    /// take N slots and at most `threshold` of them are ever verified per window.
    pub async fn reserve_sign_in_attempt(
        &self,
        email: &str,
        policy: ThrottlePolicy,
    ) -> Result<Attempt> {
        let tx = self.begin().await?;
        let attempt = self.reserve_in(&tx, email, policy).await?;
        self.commit(tx).await?;
        Ok(attempt)
    }

    /// A sign-in's first step in one transaction: reserves an attempt like
    /// `reserve_sign_in_attempt` and, when it is allowed, reads the email's user and
    /// password hash (a locked email reads nothing).
    pub async fn reserve_sign_in(
        &self,
        email: &str,
        policy: ThrottlePolicy,
    ) -> Result<(Attempt, Option<Credentials>)> {
        let tx = self.begin().await?;
        let attempt = self.reserve_in(&tx, email, policy).await?;
        let credentials = match attempt {
            Attempt::Allowed(_) => self.credentials_by_email_in(&tx, email).await?,
            Attempt::Locked => None,
        };
        self.commit(tx).await?;
        Ok((attempt, credentials))
    }

    async fn reserve_in(
        &self,
        tx: &WriteTx,
        email: &str,
        policy: ThrottlePolicy,
    ) -> Result<Attempt> {
        let now = to_micros(now());
        let mut recent = self.lock_throttle_row(tx, email, now).await?;
        let cutoff = now.saturating_sub(micros(policy.window));
        recent.times.retain(|t| *t > cutoff);
        recent.locked_until = recent.locked_until.filter(|until| *until > now);
        let attempt =
            if recent.locked_until.is_some() || recent.times.len() >= policy.threshold as usize {
                Attempt::Locked
            } else {
                recent.times.push(now);
                Attempt::Allowed(now)
            };
        self.save_throttle_row(tx, email, &recent, now).await?;
        Ok(attempt)
    }

    /// Records a failed verification: once `threshold` attempts are inside the window,
    /// the email is also locked for `policy.lock`. True when this failure locked it.
    pub async fn record_sign_in_failure(
        &self,
        email: &str,
        policy: ThrottlePolicy,
    ) -> Result<bool> {
        let now = to_micros(now());
        let tx = self.begin().await?;
        let mut recent = self.lock_throttle_row(&tx, email, now).await?;
        let cutoff = now.saturating_sub(micros(policy.window));
        let inside = recent.times.iter().filter(|t| **t > cutoff).count();
        let locks =
            inside >= policy.threshold as usize && recent.locked_until.is_none_or(|u| u <= now);
        if locks {
            recent.locked_until = Some(now.saturating_add(micros(policy.lock)));
            self.save_throttle_row(&tx, email, &recent, now).await?;
        }
        self.commit(tx).await?;
        Ok(locks)
    }

    /// Gives back an attempt that was reserved but never verified (the hashing pool
    /// turned it away), so load alone cannot lock anyone out.
    pub async fn release_sign_in_attempt(&self, email: &str, attempt: Attempt) -> Result<()> {
        let Attempt::Allowed(at) = attempt else {
            return Ok(());
        };
        let now = to_micros(now());
        let tx = self.begin().await?;
        let mut recent = self.lock_throttle_row(&tx, email, now).await?;
        if let Some(index) = recent.times.iter().position(|t| *t == at) {
            recent.times.remove(index);
            self.save_throttle_row(&tx, email, &recent, now).await?;
        }
        self.commit(tx).await
    }

    /// A successful sign-in or password change clears the count (inside its transaction).
    pub(crate) async fn clear_sign_in_failures(&self, tx: &WriteTx, email: &str) -> Result<()> {
        tx.txn()
            .execute_raw(Statement::from_sql_and_values(
                self.backend(),
                "DELETE FROM login_throttle WHERE email = $1",
                [email.into()],
            ))
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Deletes the rows that no longer hold anything: not locked, and no attempt inside
    /// the window ending at `now`.
    pub async fn prune_sign_in_throttle(
        &self,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<u64> {
        let now = to_micros(now);
        let cutoff = now.saturating_sub(micros(window));
        let tx = self.begin().await?;
        let deleted = tx
            .txn()
            .execute_raw(Statement::from_sql_and_values(
                self.backend(),
                "DELETE FROM login_throttle WHERE (locked_until IS NULL OR locked_until <= $1) \
                 AND (last_attempt_time <= $2 OR attempts = 0)",
                [now.into(), cutoff.into()],
            ))
            .await
            .map_err(db_error)?
            .rows_affected();
        self.commit(tx).await?;
        Ok(deleted)
    }
}
