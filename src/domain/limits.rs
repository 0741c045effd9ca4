//! Quotas: `customer_limits` and `account_settings` hold non-negative integers per
//! known key, 0 meaning unlimited; `GetEffectiveLimits` caps one by the other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The keys of `customer_limits`.
pub const CUSTOMER_LIMIT_KEYS: [&str; 7] = [
    "max_accounts",
    "max_rooms",
    "max_participants",
    "max_duration",
    "max_storage",
    "max_recordings",
    "record_expiration",
];

/// The keys of `account_settings` (the customer's keys but `max_accounts`).
pub const ACCOUNT_LIMIT_KEYS: [&str; 6] = [
    "max_rooms",
    "max_participants",
    "max_duration",
    "max_storage",
    "max_recordings",
    "record_expiration",
];

/// Known keys with the values a caller set (0 = unlimited, as is an absent key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits(pub BTreeMap<String, u64>);

impl Limits {
    /// The limit of `key`, `None` when unlimited (absent or 0).
    pub fn get(&self, key: &str) -> Option<u64> {
        self.0.get(key).copied().filter(|value| *value > 0)
    }
}
