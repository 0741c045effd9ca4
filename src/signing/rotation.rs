//! The rotation planner: from the stored key records and the clock, what the store must
//! change. Pure and deterministic, so the store can run it under a lock on any instance.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::{
    keys::{SigningKeyRecord, signing_order},
    master_key::MasterKey,
};

/// How keys rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// How long a key signs before a successor is made (default 30 days).
    pub rotation_period: Duration,
    /// The longest lifetime of any access token an instance may issue (default: the
    /// flag's upper bound, 60 min, right whatever each instance is configured with). A
    /// successor is published this long before it signs; a retired key stays published
    /// this long after it stopped signing.
    pub max_access_token_lifetime: Duration,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            rotation_period: Duration::from_secs(30 * 24 * 60 * 60),
            max_access_token_lifetime: Duration::from_secs(60 * 60),
        }
    }
}

/// What the store must do, in one transaction: insert the new key, record the
/// retirements, delete the dropped keys. Empty when nothing is due.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RotationPlan {
    /// Make a key that signs from this instant (see [`RotationPlan::new_key`]).
    pub add_key_signing_from: Option<DateTime<Utc>>,
    /// Keys a newer key took over from, in signing order.
    pub retire: Vec<Retirement>,
    /// Keys whose last token has expired: delete them (they leave the JWKS), in
    /// signing order.
    pub drop: Vec<String>,
}

/// Set `retired_at` and `published_until` of the key `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    pub kid: String,
    /// When the newer key started signing.
    pub retired_at: DateTime<Utc>,
    /// `retired_at` plus the longest access-token lifetime.
    pub published_until: DateTime<Utc>,
}

impl RotationPlan {
    pub fn is_empty(&self) -> bool {
        self.add_key_signing_from.is_none() && self.retire.is_empty() && self.drop.is_empty()
    }

    /// The record to insert when the plan adds a key (a fresh random key, created `now`).
    pub fn new_key(&self, master: &MasterKey, now: DateTime<Utc>) -> Option<SigningKeyRecord> {
        self.add_key_signing_from
            .map(|signs_from| SigningKeyRecord::generate(master, now, signs_from))
    }
}

/// Plans the scheduled rotation at `now`:
///
/// - no key that signs now or later (first start): add one that signs at once;
/// - the signing key has signed for `rotation_period` and no successor is pending: add
///   one that signs `max_access_token_lifetime` from now (published before it signs);
/// - a key a newer one took over from: retire it from the instant the newer one
///   started signing, published until its last token expired;
/// - a retired key past `published_until`: drop it.
///
/// The same records (in any order) and `now` give the same plan.
pub fn plan_rotation(
    records: &[SigningKeyRecord],
    now: DateTime<Utc>,
    policy: &RotationPolicy,
) -> RotationPlan {
    plan(records, now, policy, false)
}

/// Like [`plan_rotation`], but adds a successor now whatever the signing key's age
/// (`tenancy signing-keys rotate`), unless one is already pending. It still signs only
/// after `max_access_token_lifetime`.
pub fn plan_forced_rotation(
    records: &[SigningKeyRecord],
    now: DateTime<Utc>,
    policy: &RotationPolicy,
) -> RotationPlan {
    plan(records, now, policy, true)
}

fn plan(
    records: &[SigningKeyRecord],
    now: DateTime<Utc>,
    policy: &RotationPolicy,
    force: bool,
) -> RotationPlan {
    let lifetime = delta(policy.max_access_token_lifetime);
    let mut keys: Vec<&SigningKeyRecord> = records.iter().collect();
    keys.sort_by(|a, b| {
        signing_order(&a.kid, &a.schedule).cmp(&signing_order(&b.kid, &b.schedule))
    });

    let mut plan = RotationPlan::default();
    for (i, key) in keys.iter().enumerate() {
        let schedule = &key.schedule;
        let retirement = match schedule.retired_at {
            Some(retired_at) => Some((retired_at, schedule.published_until)),
            None if schedule.signs_from <= now => keys[i + 1..]
                .iter()
                .find(|newer| newer.schedule.can_sign_at(now))
                .map(|newer| (newer.schedule.signs_from, None)),
            None => None,
        };
        let Some((retired_at, published_until)) = retirement else {
            continue;
        };
        let published_until = published_until.unwrap_or(retired_at + lifetime);
        if published_until <= now {
            plan.drop.push(key.kid.clone());
        } else if schedule.retired_at.is_none() {
            plan.retire.push(Retirement {
                kid: key.kid.clone(),
                retired_at,
                published_until,
            });
        }
    }

    let signing = keys.iter().rev().find(|key| key.schedule.can_sign_at(now));
    let pending = keys
        .iter()
        .any(|key| key.schedule.retired_at.is_none() && now < key.schedule.signs_from);
    plan.add_key_signing_from = match signing {
        None if !pending => Some(now),
        Some(key)
            if !pending
                && (force || now - key.schedule.signs_from >= delta(policy.rotation_period)) =>
        {
            Some(now + lifetime)
        }
        _ => None,
    };
    plan
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::{
        super::keys::{
            KeyRing,
            tests::{at, master},
        },
        *,
    };

    const DAY: i64 = 24 * 60;

    fn policy() -> RotationPolicy {
        RotationPolicy::default()
    }

    /// Does what the store does with a plan.
    fn apply(records: &mut Vec<SigningKeyRecord>, plan: &RotationPlan, now: DateTime<Utc>) {
        records.retain(|record| !plan.drop.contains(&record.kid));
        for retirement in &plan.retire {
            let record = records
                .iter_mut()
                .find(|r| r.kid == retirement.kid)
                .unwrap();
            record.schedule.retired_at = Some(retirement.retired_at);
            record.schedule.published_until = Some(retirement.published_until);
        }
        records.extend(plan.new_key(&master(), now));
    }

    fn planned(records: &mut Vec<SigningKeyRecord>, now: DateTime<Utc>) -> RotationPlan {
        let plan = plan_rotation(records, now, &policy());
        apply(records, &plan, now);
        plan
    }

    /// The first key, made at `at(0)`, and its successor, made at `at(30 * DAY)`.
    fn rotated_once() -> (Vec<SigningKeyRecord>, String) {
        let mut records = Vec::new();
        planned(&mut records, at(0));
        let first = records[0].kid.clone();
        planned(&mut records, at(30 * DAY));
        assert_eq!(records.len(), 2);
        (records, first)
    }

    fn kids(ring: &KeyRing, now: DateTime<Utc>) -> Vec<String> {
        ring.published(now)
            .map(|key| key.kid().to_owned())
            .collect()
    }

    #[test]
    fn the_first_start_adds_a_key_that_signs_at_once() {
        let plan = plan_rotation(&[], at(0), &policy());
        assert_eq!(plan.add_key_signing_from, Some(at(0)));
        assert!(plan.retire.is_empty() && plan.drop.is_empty());

        let mut records = Vec::new();
        apply(&mut records, &plan, at(0));
        assert!(
            KeyRing::open(&records, &master())
                .unwrap()
                .signing_key(at(0))
                .is_some()
        );
        assert!(plan_rotation(&records, at(0), &policy()).is_empty());
    }

    #[test]
    fn nothing_rotates_before_the_period() {
        let mut records = Vec::new();
        planned(&mut records, at(0));
        assert!(plan_rotation(&records, at(30 * DAY - 1), &policy()).is_empty());
        let plan = plan_rotation(&records, at(30 * DAY), &policy());
        assert_eq!(plan.add_key_signing_from, Some(at(30 * DAY + 60)));
    }

    #[test]
    fn a_successor_is_published_a_token_lifetime_before_it_signs() {
        let (records, first) = rotated_once();
        let second = records[1].kid.clone();

        let ring = KeyRing::open(&records, &master()).unwrap();
        assert_eq!(kids(&ring, at(30 * DAY)), [first.clone(), second.clone()]);
        assert_eq!(ring.signing_key(at(30 * DAY + 59)).unwrap().kid(), first);
        assert_eq!(ring.signing_key(at(30 * DAY + 60)).unwrap().kid(), second);
        // While it is pending, no other successor is made.
        assert!(plan_rotation(&records, at(30 * DAY + 59), &policy()).is_empty());
    }

    #[test]
    fn a_retired_key_stays_published_until_its_last_token_expired() {
        let (mut records, first) = rotated_once();
        let takeover = at(30 * DAY + 60);

        // The planner runs a little after the successor took over.
        let plan = planned(&mut records, takeover + TimeDelta::minutes(5));
        let retired = Retirement {
            kid: first.clone(),
            retired_at: takeover,
            published_until: takeover + TimeDelta::minutes(60),
        };
        assert_eq!(plan.retire, [retired]);
        assert!(plan.drop.is_empty() && plan.add_key_signing_from.is_none());

        let ring = KeyRing::open(&records, &master()).unwrap();
        assert!(kids(&ring, takeover + TimeDelta::minutes(59)).contains(&first));
        assert!(!kids(&ring, takeover + TimeDelta::minutes(60)).contains(&first));

        assert!(plan_rotation(&records, takeover + TimeDelta::minutes(59), &policy()).is_empty());
        let plan = planned(&mut records, takeover + TimeDelta::minutes(60));
        assert_eq!(plan.drop, [first]);
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn a_key_superseded_long_ago_is_dropped_at_once() {
        let (records, first) = rotated_once();
        let plan = plan_rotation(&records, at(40 * DAY), &policy());
        assert_eq!(plan.drop, [first]);
        assert!(plan.retire.is_empty());
    }

    #[test]
    fn a_forced_rotation_publishes_a_successor_before_it_signs() {
        let mut records = Vec::new();
        planned(&mut records, at(0));
        let plan = plan_forced_rotation(&records, at(DAY), &policy());
        assert_eq!(plan.add_key_signing_from, Some(at(DAY + 60)));
        apply(&mut records, &plan, at(DAY));
        assert!(plan_forced_rotation(&records, at(DAY), &policy()).is_empty());
    }

    #[test]
    fn the_plan_depends_on_the_records_not_their_order() {
        let (mut records, _) = rotated_once();
        planned(&mut records, at(30 * DAY + 61));
        planned(&mut records, at(60 * DAY + 61));
        assert_eq!(records.len(), 2);
        let now = at(60 * DAY + 150);
        let plan = plan_rotation(&records, now, &policy());
        assert_eq!(plan.retire.len(), 1, "{plan:?}");
        records.reverse();
        assert_eq!(plan_rotation(&records, now, &policy()), plan);
        assert_eq!(plan_rotation(&records, now, &policy()), plan);
    }
}
