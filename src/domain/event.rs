//! The change log: every change writes one event in its own transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    account::Account, customer::Customer, id::Id, invitation::Invitation, membership::Membership,
    role::Role, session::Session, user::User,
};

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
    /// Never carries a token.
    Session(Session),
    Role(Role),
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

impl EventResource {
    /// The ids whose cached reads a change of this resource can alter, besides the
    /// event's own `resource_id` and `customer_id`: a membership's user and target.
    fn related_ids(&self) -> Vec<Id> {
        use super::membership::MembershipTarget;
        match self {
            EventResource::Membership(membership) => {
                let target = match membership.target {
                    MembershipTarget::Customer(id) | MembershipTarget::Account(id) => id,
                };
                vec![membership.user_id, target]
            }
            EventResource::Account(account) => vec![account.customer_id],
            EventResource::Customer(_)
            | EventResource::Role(_)
            | EventResource::Invitation(_)
            | EventResource::User(_)
            | EventResource::Session(_) => Vec::new(),
        }
    }
}

/// Every id a change touches: its resource, its customer, and for a membership its user
/// and target. A cached read that depends on none of them is unaffected by the change.
pub fn touched_ids(resource_id: Id, customer_id: Option<Id>, resource: &EventResource) -> Vec<Id> {
    // A role's change alters only what depends on the role itself (the access answers
    // of its holders), not every cached read of its customer.
    if let EventResource::Role(_) = resource {
        return vec![resource_id];
    }
    let mut ids = vec![resource_id];
    ids.extend(customer_id);
    ids.extend(resource.related_ids());
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl NewEvent {
    pub fn touched_ids(&self) -> Vec<Id> {
        touched_ids(self.resource_id, self.customer_id, &self.resource)
    }
}

impl Event {
    pub fn touched_ids(&self) -> Vec<Id> {
        touched_ids(self.resource_id, self.customer_id, &self.resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::membership::{MembershipStatus, MembershipTarget};

    #[test]
    fn a_membership_change_touches_its_user_target_and_customer() {
        let (membership_id, user, account, customer) = (
            Id::generate(),
            Id::generate(),
            Id::generate(),
            Id::generate(),
        );
        let event = NewEvent {
            kind: "membership.updated",
            resource_id: membership_id,
            customer_id: Some(customer),
            resource: EventResource::Membership(Membership {
                user_id: user,
                target: MembershipTarget::Account(account),
                owner: false,
                permissions: Vec::new(),
                roles: Vec::new(),
                status: MembershipStatus::Active,
                create_time: Utc::now(),
                revision: 1,
            }),
        };
        let mut expected = vec![membership_id, user, account, customer];
        expected.sort_unstable();
        assert_eq!(event.touched_ids(), expected);
    }
}
