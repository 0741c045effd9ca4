//! The change log: every change writes one event in its own transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{account::Account, customer::Customer, invitation::Invitation, id::Id, membership::Membership, user::User};

/// The resource as it is after the change. Holds no secret, token or hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventResource {
    /// Boxed: a customer is far larger than the other resources.
    Customer(Box<Customer>),
    Account(Box<Account>),
    /// Never carries the token: it is not part of an `Invitation`.
    Invitation(Invitation),
    User(User),
    Membership(Membership),
}

/// An event to append; the store assigns the sequence and the time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// `user.created`, `user.updated`, ...
    pub kind: &'static str,
    pub resource_id: Id,
    pub customer_id: Option<Id>,
    pub resource: EventResource,
}

/// An event as stored and streamed.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Gap-free, increasing in commit order.
    pub sequence: i64,
    pub kind: String,
    pub resource_id: Id,
    pub customer_id: Option<Id>,
    pub time: DateTime<Utc>,
    pub resource: EventResource,
}

/// The kept part of the log: events `oldest_sequence..=latest_sequence`. When nothing is
/// kept, `oldest_sequence` is `latest_sequence + 1` (the sequence the next event gets),
/// so `latest_sequence - oldest_sequence + 1` is always the number of kept events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLog {
    pub oldest_sequence: i64,
    /// The newest sequence ever written, kept or pruned; 0 before the first event.
    pub latest_sequence: i64,
    pub retention_days: u64,
}

impl EventLog {
    /// From the store's bounds: events up to `pruned_through` are gone, and events are
    /// pruned oldest first, so the oldest kept one is the next.
    pub fn from_bounds(pruned_through: i64, latest_sequence: i64, retention_days: u64) -> Self {
        EventLog {
            oldest_sequence: pruned_through + 1,
            latest_sequence,
            retention_days,
        }
    }
}
