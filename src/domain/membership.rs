//! Memberships tie a user to a customer or an account, with permissions and one owner.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::id::Id;

/// The permission catalogue; anything else is refused.
pub const PERMISSIONS: [&str; 13] = [
    "customer.read",
    "customer.write",
    "accounts.read",
    "accounts.write",
    "users.read",
    "users.invite",
    "billing.read",
    "billing.write",
    "rooms.read",
    "rooms.write",
    "recordings.read",
    "recordings.write",
    "reports.read",
];

/// What a membership is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipTarget {
    Customer(Id),
    Account(Id),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipStatus {
    Active,
    Inactive,
}

impl MembershipStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            MembershipStatus::Active => "active",
            MembershipStatus::Inactive => "inactive",
        }
    }

    pub fn from_db(text: &str) -> Option<Self> {
        match text {
            "active" => Some(MembershipStatus::Active),
            "inactive" => Some(MembershipStatus::Inactive),
            _ => None,
        }
    }
}

/// A user's membership of a customer or an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    pub user_id: Id,
    pub target: MembershipTarget,
    pub owner: bool,
    /// Granted permissions; an owner holds every permission whatever this says.
    pub permissions: Vec<String>,
    pub status: MembershipStatus,
    pub create_time: DateTime<Utc>,
    pub revision: i64,
}
