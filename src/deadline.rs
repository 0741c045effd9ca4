//! The deadline of the RPC being served, and whether its write began to commit.
//!
//! A caller told DEADLINE_EXCEEDED must be able to trust that nothing of its call is
//! committed later (SPEC §8). So the server's timeout (`grpc::request_limits`) and the
//! store's commit decide together, through one atomic state per call: the timeout may
//! drop the call only while no commit has begun; a commit may begin only while the call
//! has not timed out. Once a commit began, the call is answered with its outcome, even
//! past the deadline, and the statements that commit are bounded by the database's own
//! timeouts instead.
//!
//! The deadline travels with the call as a task-local value, so the store reads it
//! without every signature carrying it; work handed to another task (the batched
//! CreateUser) takes a clone along.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

/// Neither timed out nor committing.
const RUNNING: u8 = 0;
/// A commit began: the call is answered with its outcome.
const COMMITTING: u8 = 1;
/// Timed out before any commit began: nothing of the call may commit.
const EXPIRED: u8 = 2;

tokio::task_local! {
    static CURRENT: Deadline;
}

/// One call's deadline and commit state; clones share the state.
#[derive(Debug, Clone)]
pub struct Deadline {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    at: Instant,
    budget: Duration,
    state: AtomicU8,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        Deadline {
            inner: Arc::new(Inner {
                at: Instant::now() + budget,
                budget,
                state: AtomicU8::new(RUNNING),
            }),
        }
    }

    /// The deadline of the call this task serves, if it serves one.
    pub fn current() -> Option<Deadline> {
        CURRENT.try_with(Deadline::clone).ok()
    }

    /// Runs `work` as the call this deadline belongs to.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    /// When the call's time is up.
    pub fn at(&self) -> Instant {
        self.inner.at
    }

    /// The whole time the call was given.
    pub fn budget(&self) -> Duration {
        self.inner.budget
    }

    /// The time left (zero once past).
    pub fn remaining(&self) -> Duration {
        self.inner.at.saturating_duration_since(Instant::now())
    }

    /// Called right before a statement that may commit: true when it may run (the call
    /// is then answered with its outcome, however long it takes), false when the call
    /// timed out or its deadline passed (the write must roll back instead).
    pub fn begin_commit(&self) -> bool {
        if Instant::now() >= self.inner.at {
            let _ = self.transition(RUNNING, EXPIRED);
        }
        match self.transition(RUNNING, COMMITTING) {
            Ok(()) => true,
            Err(state) => state == COMMITTING,
        }
    }

    /// The commit that `begin_commit` allowed failed and certainly wrote nothing (the
    /// database rolled it back): the call may time out again, as before it.
    pub fn commit_rolled_back(&self) {
        let _ = self.transition(COMMITTING, RUNNING);
    }

    /// The server's timeout gives up on the call: true when nothing of it will commit
    /// (it may be dropped and answered DEADLINE_EXCEEDED), false when a commit began
    /// (its outcome is the answer: keep waiting for it).
    pub fn expire(&self) -> bool {
        match self.transition(RUNNING, EXPIRED) {
            Ok(()) => true,
            Err(state) => state == EXPIRED,
        }
    }

    fn transition(&self, from: u8, to: u8) -> Result<(), u8> {
        self.inner
            .state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }
}

/// The time a caller allows, from its `grpc-timeout` header ("<digits><unit>", at most
/// eight digits; units H, M, S, m, u, n). `None` when absent or malformed, as gRPC
/// servers treat a malformed one.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_that_timed_out_never_begins_to_commit() {
        let deadline = Deadline::after(Duration::from_secs(60));
        assert!(deadline.expire());
        assert!(!deadline.begin_commit());
        assert!(deadline.expire(), "expiring twice is still expired");
    }

    #[tokio::test]
    async fn a_committing_call_is_not_expired_and_is_answered_with_its_outcome() {
        let deadline = Deadline::after(Duration::from_secs(60));
        assert!(deadline.begin_commit());
        assert!(deadline.begin_commit(), "a second commit in the same call");
        assert!(!deadline.expire());
        deadline.commit_rolled_back();
        assert!(deadline.expire(), "after a rollback the call may time out");
    }

    #[tokio::test]
    async fn past_its_deadline_a_call_may_not_begin_to_commit() {
        let deadline = Deadline::after(Duration::ZERO);
        assert!(!deadline.begin_commit());
        assert!(deadline.expire());
    }

    #[tokio::test]
    async fn the_current_deadline_is_the_scope_s() {
        assert!(Deadline::current().is_none());
        let deadline = Deadline::after(Duration::from_millis(1500));
        let seen = deadline
            .clone()
            .scope(async { Deadline::current().map(|d| d.budget()) })
            .await;
        assert_eq!(seen, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn grpc_timeouts_parse_by_unit_and_malformed_ones_are_ignored() {
        assert_eq!(parse_grpc_timeout("50m"), Some(Duration::from_millis(50)));
        assert_eq!(parse_grpc_timeout("1S"), Some(Duration::from_secs(1)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_grpc_timeout("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_grpc_timeout("7n"), Some(Duration::from_nanos(7)));
        for bad in ["", "m", "5", "123456789m", "5x", "-5m", "5 m", "+5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
