//! Ed25519 signing keys: the record the store keeps (private half sealed under the master
//! key) and the ring built from those records, which picks the key that signs and the
//! keys the JWKS publishes at a given instant.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::master_key::{Fingerprint, MasterKey, Sealed};

/// When a key signs and is published. Every instance decides from these instants and
/// its clock alone, so all agree given the same records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySchedule {
    pub created_at: DateTime<Utc>,
    /// The key signs from here on (publish-before-sign: a successor's is at least one
    /// access-token lifetime after its `created_at`).
    pub signs_from: DateTime<Utc>,
    /// Set when a newer key took over signing: the instant it did.
    pub retired_at: Option<DateTime<Utc>>,
    /// Set with `retired_at`: the last token this key signed has expired by then, and
    /// the key leaves the JWKS.
    pub published_until: Option<DateTime<Utc>>,
}

impl KeySchedule {
    /// Whether the key may sign at `now` (the ring signs with the newest such key).
    pub fn can_sign_at(&self, now: DateTime<Utc>) -> bool {
        self.signs_from <= now && self.retired_at.is_none_or(|retired| now < retired)
    }

    /// Whether the JWKS lists the key at `now`: from its creation until `published_until`.
    pub fn is_published_at(&self, now: DateTime<Utc>) -> bool {
        self.published_until.is_none_or(|until| now < until)
    }
}

/// The order in which keys take over signing: by `signs_from`, then `created_at`, then
/// `kid`, so that ties resolve the same way on every instance.
pub(super) fn signing_order<'a>(
    kid: &'a str,
    schedule: &KeySchedule,
) -> (DateTime<Utc>, DateTime<Utc>, &'a str) {
    (schedule.signs_from, schedule.created_at, kid)
}

/// One signing key as the store keeps it. Only the public half is in the clear.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// The RFC 7638 thumbprint of the public key (base64url of a SHA-256 digest).
    pub kid: String,
    pub public_key: [u8; 32],
    /// The 32-byte Ed25519 seed sealed under the master key, bound to `kid`.
    pub private_key: Sealed,
    /// The master key `private_key` was sealed under.
    pub sealed_under: Fingerprint,
    pub schedule: KeySchedule,
}

impl fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("sealed_under", &self.sealed_under)
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl SigningKeyRecord {
    /// A new random Ed25519 key, sealed under `master`, that signs from `signs_from`
    /// (see [`super::RotationPlan::new_key`] for when).
    pub fn generate(
        master: &MasterKey,
        created_at: DateTime<Utc>,
        signs_from: DateTime<Utc>,
    ) -> Self {
        let mut seed = Zeroizing::new([0; 32]);
        rand::rngs::OsRng.fill_bytes(seed.as_mut());
        let public_key = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let kid = thumbprint(&public_key);
        Self {
            private_key: master.seal(seed.as_ref(), &private_key_binding(&kid)),
            sealed_under: master.fingerprint(),
            kid,
            public_key,
            schedule: KeySchedule {
                created_at,
                signs_from,
                retired_at: None,
                published_until: None,
            },
        }
    }
}

/// The RFC 7638 JWK thumbprint (SHA-256) of an Ed25519 public key, base64url: the `kid`.
pub fn thumbprint(public_key: &[u8; 32]) -> String {
    // RFC 7638 §3: the required members in lexicographic order, no white space.
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public_key)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The associated data that binds a sealed private key to its row.
pub(super) fn private_key_binding(kid: &str) -> Vec<u8> {
    [b"tenancy signing key ".as_slice(), kid.as_bytes()].concat()
}

/// A key of the ring, opened: it can sign.
pub struct RingKey {
    kid: String,
    public_key: [u8; 32],
    schedule: KeySchedule,
    /// Zeroed on drop.
    pub(super) signer: SigningKey,
}

impl fmt::Debug for RingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingKey")
            .field("kid", &self.kid)
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl RingKey {
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    pub fn schedule(&self) -> &KeySchedule {
        &self.schedule
    }
}

/// The stored keys, opened with the master key. Immutable: after a rotation the app
/// builds a new ring from the store's records. Reload it more often than the
/// access-token lifetime so every instance knows a successor before it signs.
#[derive(Debug)]
pub struct KeyRing {
    /// In [`signing_order`].
    keys: Vec<RingKey>,
}

/// The stored keys cannot be used with this master key; the start must stop.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(
        "the master key does not open the signing keys stored in this database: key {kid} was \
         sealed under master key {sealed_under}, this master key is {given}; start with the \
         master key the keys were made with"
    )]
    WrongMasterKey {
        kid: String,
        sealed_under: Fingerprint,
        given: Fingerprint,
    },
    #[error(
        "the master key does not open the signing keys stored in this database: key {kid} does \
         not decrypt although its master key fingerprint matches (the row was altered or copied \
         from another row or database)"
    )]
    Unreadable { kid: String },
    #[error("signing key {kid} is corrupt: {problem}")]
    Corrupt { kid: String, problem: &'static str },
}

impl KeyRing {
    /// Opens every record's private key with `master`, checking the fingerprint first
    /// (so the wrong master key is named as such), then that each key decrypts and
    /// matches its public key and `kid`.
    pub fn open(records: &[SigningKeyRecord], master: &MasterKey) -> Result<Self, KeyRingError> {
        let given = master.fingerprint();
        let mut keys = records
            .iter()
            .map(|record| open_key(record, master, given))
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by(|a, b| {
            signing_order(&a.kid, &a.schedule).cmp(&signing_order(&b.kid, &b.schedule))
        });
        Ok(Self { keys })
    }

    /// The key that signs at `now`: the newest (in signing order) that may sign then.
    /// `None` before the first key signs: the app must not issue tokens.
    pub fn signing_key(&self, now: DateTime<Utc>) -> Option<&RingKey> {
        self.keys
            .iter()
            .rev()
            .find(|key| key.schedule.can_sign_at(now))
    }

    /// The keys the JWKS lists at `now`, in signing order: pending successors, the
    /// signing key, and retired keys until their last token expired.
    pub fn published(&self, now: DateTime<Utc>) -> impl Iterator<Item = &RingKey> {
        self.keys
            .iter()
            .filter(move |key| key.schedule.is_published_at(now))
    }
}

fn open_key(
    record: &SigningKeyRecord,
    master: &MasterKey,
    given: Fingerprint,
) -> Result<RingKey, KeyRingError> {
    let kid = &record.kid;
    if record.sealed_under != given {
        return Err(KeyRingError::WrongMasterKey {
            kid: kid.clone(),
            sealed_under: record.sealed_under,
            given,
        });
    }
    let corrupt = |problem| KeyRingError::Corrupt {
        kid: kid.clone(),
        problem,
    };
    if *kid != thumbprint(&record.public_key) {
        return Err(corrupt("its kid is not the thumbprint of its public key"));
    }
    let seed = master
        .open(&record.private_key, &private_key_binding(kid))
        .map_err(|_| KeyRingError::Unreadable { kid: kid.clone() })?;
    let seed: &[u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| corrupt("its private key is not 32 bytes"))?;
    let signer = SigningKey::from_bytes(seed);
    if signer.verifying_key().to_bytes() != record.public_key {
        return Err(corrupt("its private key does not match its public key"));
    }
    Ok(RingKey {
        kid: kid.clone(),
        public_key: record.public_key,
        schedule: record.schedule,
        signer,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use chrono::TimeDelta;

    use super::*;

    pub(in super::super) fn master() -> MasterKey {
        MasterKey::from_bytes([42; 32])
    }

    pub(in super::super) fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    /// A ring of one key that signs from `at(0)`.
    pub(in super::super) fn one_key_ring() -> KeyRing {
        let record = SigningKeyRecord::generate(&master(), at(0), at(0));
        KeyRing::open(&[record], &master()).unwrap()
    }

    #[test]
    fn a_generated_key_opens_and_its_kid_is_the_rfc_7638_thumbprint() {
        let record = SigningKeyRecord::generate(&master(), at(0), at(60));
        assert_eq!(record.kid, thumbprint(&record.public_key));
        assert_eq!(record.kid.len(), 43);
        let ring = KeyRing::open(std::slice::from_ref(&record), &master()).unwrap();
        assert_eq!(ring.published(at(0)).next().unwrap().kid(), record.kid);
    }

    #[test]
    fn the_rfc_8037_example_key_has_the_rfc_8037_thumbprint() {
        // RFC 8037 appendix A.3.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        assert_eq!(
            thumbprint(&x.try_into().unwrap()),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn another_master_key_is_named_before_any_key_is_used() {
        let record = SigningKeyRecord::generate(&master(), at(0), at(0));
        let other = MasterKey::from_bytes([1; 32]);
        let error = KeyRing::open(&[record], &other).unwrap_err();
        assert!(
            matches!(error, KeyRingError::WrongMasterKey { .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().starts_with(
                "the master key does not open the signing keys stored in this database: "
            ),
            "{error}"
        );
        assert!(error.to_string().contains(&other.fingerprint().to_string()));
    }

    #[test]
    fn a_private_key_copied_into_another_row_does_not_open() {
        let first = SigningKeyRecord::generate(&master(), at(0), at(0));
        let mut second = SigningKeyRecord::generate(&master(), at(1), at(61));
        second.private_key = first.private_key.clone();
        let error = KeyRing::open(&[first, second], &master()).unwrap_err();
        assert!(
            matches!(error, KeyRingError::Unreadable { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn a_public_key_swapped_for_another_is_corrupt() {
        let first = SigningKeyRecord::generate(&master(), at(0), at(0));
        let mut second = SigningKeyRecord::generate(&master(), at(1), at(61));
        second.public_key = first.public_key;
        let error = KeyRing::open(&[second], &master()).unwrap_err();
        assert!(matches!(error, KeyRingError::Corrupt { .. }), "{error:?}");
    }

    #[test]
    fn the_newest_key_that_may_sign_signs_and_every_instance_picks_the_same() {
        let old = SigningKeyRecord::generate(&master(), at(0), at(0));
        let new = SigningKeyRecord::generate(&master(), at(100), at(160));
        let ring = KeyRing::open(&[old.clone(), new.clone()], &master()).unwrap();
        let reversed = KeyRing::open(&[new.clone(), old.clone()], &master()).unwrap();
        for (minute, signer) in [(0, &old), (159, &old), (160, &new), (10_000, &new)] {
            assert_eq!(ring.signing_key(at(minute)).unwrap().kid(), signer.kid);
            assert_eq!(reversed.signing_key(at(minute)).unwrap().kid(), signer.kid);
        }
        assert!(ring.signing_key(at(-1)).is_none());
    }

    #[test]
    fn a_retired_key_stops_signing_at_its_retirement_and_leaves_the_jwks_after() {
        let mut old = SigningKeyRecord::generate(&master(), at(0), at(0));
        old.schedule.retired_at = Some(at(50));
        old.schedule.published_until = Some(at(110));
        let ring = KeyRing::open(&[old], &master()).unwrap();
        assert!(ring.signing_key(at(49)).is_some());
        assert!(ring.signing_key(at(50)).is_none());
        assert_eq!(ring.published(at(109)).count(), 1);
        assert_eq!(ring.published(at(110)).count(), 0);
    }
}
