//! Quotas: `customer_limits` and `account_settings` hold non-negative integers per
//! known key, 0 meaning unlimited; `GetEffectiveLimits` caps one by the other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Result, metadata::JsonObject, violations::Violations};

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

/// The largest limit accepted: every integer up to 2^53 is exact in the `f64` a protobuf
/// `Struct` carries numbers in, so nothing larger can be told apart reliably.
pub const MAX_LIMIT: u64 = 1 << 53;

/// Validates a limits object: only `keys` are kept (others are dropped), each a
/// non-negative integer ≤ 2^53 (`5` or `5.0`; `null` = unset). A known key with another
/// value is a violation at `{field}.{key}`. `None` is no limits.
pub fn parse_limits(field: &str, keys: &[&str], object: Option<&JsonObject>) -> Result<Limits> {
    let mut limits = BTreeMap::new();
    let Some(object) = object else {
        return Ok(Limits(limits));
    };
    let mut violations = Violations::new();
    for (key, value) in object {
        if !keys.contains(&key.as_str()) || value.is_null() {
            continue;
        }
        if let Some(value) = violations.check(&format!("{field}.{key}"), limit_value(value)) {
            limits.insert(key.clone(), value);
        }
    }
    violations.finish()?;
    Ok(Limits(limits))
}

fn limit_value(value: &Value) -> Result<u64, String> {
    let bad = || format!("must be a whole number from 0 to {MAX_LIMIT} (0 = unlimited)");
    let Value::Number(number) = value else {
        return Err(bad());
    };
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(whole), _) => whole,
        // The bound check comes first so that the cast below is exact.
        (None, Some(float))
            if float.fract() == 0.0 && (0.0..=MAX_LIMIT as f64).contains(&float) =>
        {
            float as u64
        }
        _ => return Err(bad()),
    };
    if whole > MAX_LIMIT {
        return Err(bad());
    }
    Ok(whole)
}

/// Who set the limit that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LimitSource {
    /// Neither set one: unlimited.
    None,
    Account,
    Customer,
}

/// The limit that applies to an account for one key: 0 = unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectiveLimit {
    pub key: String,
    pub value: u64,
    pub source: LimitSource,
}

/// The limits that apply to an account, one per `ACCOUNT_LIMIT_KEYS` in that order: the
/// smaller of the account's and the customer's (unset or 0 = unlimited). On a tie the
/// source is `Customer`: the customer's limit is the ceiling, and an account setting
/// equal to it does not tighten anything.
pub fn effective(account: &Limits, customer: &Limits) -> Vec<EffectiveLimit> {
    ACCOUNT_LIMIT_KEYS
        .iter()
        .map(|key| {
            let (value, source) = match (account.get(key), customer.get(key)) {
                (None, None) => (0, LimitSource::None),
                (Some(a), None) => (a, LimitSource::Account),
                (Some(a), Some(c)) if a < c => (a, LimitSource::Account),
                (_, Some(c)) => (c, LimitSource::Customer),
            };
            EffectiveLimit {
                key: key.to_string(),
                value,
                source,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::Error;

    fn object(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => panic!("test input must be an object"),
        }
    }

    fn limits(pairs: &[(&str, u64)]) -> Limits {
        Limits(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect())
    }

    #[test]
    fn known_keys_are_kept_unknown_ones_dropped_and_floats_must_be_whole() {
        let input = object(json!({
            "max_accounts": 5.0, "max_rooms": 0, "max_storage": 9007199254740992.0,
            "max_duration": null, "colour": "blue"
        }));
        let parsed = parse_limits("c.l", &CUSTOMER_LIMIT_KEYS, Some(&input)).ok();
        assert_eq!(
            parsed,
            Some(limits(&[
                ("max_accounts", 5),
                ("max_rooms", 0),
                ("max_storage", MAX_LIMIT)
            ]))
        );
        assert_eq!(parsed.and_then(|l| l.get("max_rooms")), None);
        assert_eq!(
            parse_limits("c.l", &CUSTOMER_LIMIT_KEYS, None).ok(),
            Some(Limits::default())
        );
    }

    #[test]
    fn a_bad_value_for_a_known_key_is_a_violation_at_that_key() {
        let input = object(json!({
            "max_accounts": -1, "max_rooms": 1.5, "max_participants": "10",
            "max_duration": 9007199254740994.0, "max_storage": true, "max_recordings": 3,
            "unknown": -1
        }));
        let Err(Error::InvalidArgument(list)) =
            parse_limits("c.l", &CUSTOMER_LIMIT_KEYS, Some(&input))
        else {
            panic!("expected violations");
        };
        let mut fields: Vec<_> = list.into_iter().map(|v| v.field).collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "c.l.max_accounts",
                "c.l.max_duration",
                "c.l.max_participants",
                "c.l.max_rooms",
                "c.l.max_storage"
            ]
        );
    }

    #[test]
    fn account_keys_exclude_max_accounts() {
        let input = object(json!({"max_accounts": 3, "max_rooms": 2}));
        let parsed = parse_limits("a", &ACCOUNT_LIMIT_KEYS, Some(&input)).ok();
        assert_eq!(parsed, Some(limits(&[("max_rooms", 2)])));
    }

    #[test]
    fn the_effective_limit_is_the_smaller_with_its_source() {
        let account = limits(&[
            ("max_rooms", 5),
            ("max_participants", 50),
            ("max_duration", 0),
            ("max_storage", 7),
        ]);
        let customer = limits(&[
            ("max_rooms", 10),
            ("max_participants", 20),
            ("max_duration", 60),
            ("max_storage", 7),
        ]);
        let got: Vec<_> = effective(&account, &customer)
            .into_iter()
            .map(|e| (e.key, e.value, e.source))
            .collect();
        let want = [
            ("max_rooms", 5, LimitSource::Account),
            ("max_participants", 20, LimitSource::Customer),
            ("max_duration", 60, LimitSource::Customer),
            ("max_storage", 7, LimitSource::Customer),
            ("max_recordings", 0, LimitSource::None),
            ("record_expiration", 0, LimitSource::None),
        ];
        assert_eq!(got, want.map(|(k, v, s)| (k.to_string(), v, s)));
        let only_account = effective(&limits(&[("record_expiration", 30)]), &Limits::default());
        assert_eq!(only_account[5].value, 30);
        assert_eq!(only_account[5].source, LimitSource::Account);
    }
}
