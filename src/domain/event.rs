//! The change log: every change writes one event in its own transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{account::Account, customer::Customer, id::Id, membership::Membership, user::User};

/// The resource as it is after the change. Holds no secret, token or hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventResource {
    /// Boxed: a customer is far larger than the other resources.
    Customer(Box<Customer>),
    Account(Box<Account>),
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
