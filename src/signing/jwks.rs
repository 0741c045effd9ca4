//! The JWKS (RFC 7517, Ed25519 keys as RFC 8037 `OKP`) that other services fetch to
//! verify access tokens offline, and the verifying keys read back from one.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::keys::KeyRing;

/// `{"keys": [...]}`, served by `GetJwks` and at `/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// One public key. Written with every member; read leniently (a missing member is
/// empty, unknown members are ignored) so a key of another kind can be skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Jwk {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    pub kid: String,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
    /// `EdDSA`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

impl Jwk {
    pub fn ed25519(kid: &str, public_key: &[u8; 32]) -> Self {
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            kid: kid.into(),
            x: URL_SAFE_NO_PAD.encode(public_key),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        }
    }
}

impl Jwks {
    /// The keys the ring publishes at `now` ([`KeyRing::published`]), in signing order.
    pub fn published(ring: &KeyRing, now: DateTime<Utc>) -> Self {
        Self {
            keys: ring
                .published(now)
                .map(|key| Jwk::ed25519(key.kid(), key.public_key()))
                .collect(),
        }
    }
}

/// The Ed25519 keys of a JWKS, parsed once for [`super::verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyingKeys {
    keys: Vec<(String, VerifyingKey)>,
}

impl VerifyingKeys {
    /// Keeps every Ed25519 signature key with a `kid` and a valid, non-weak public key;
    /// skips the others (a key type this verifier does not know must not make it fail
    /// on the keys it does). Of two keys with one `kid`, the first is kept.
    pub fn from_jwks(jwks: &Jwks) -> Self {
        let mut keys: Vec<(String, VerifyingKey)> = Vec::with_capacity(jwks.keys.len());
        for jwk in &jwks.keys {
            let usable = jwk.kty == "OKP"
                && jwk.crv == "Ed25519"
                && matches!(jwk.alg.as_str(), "" | "EdDSA")
                && matches!(jwk.use_.as_str(), "" | "sig")
                && !jwk.kid.is_empty()
                && keys.iter().all(|(kid, _)| *kid != jwk.kid);
            if let Some(key) = usable.then(|| parse_x(&jwk.x)).flatten() {
                keys.push((jwk.kid.clone(), key));
            }
        }
        Self { keys }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(super) fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }
}

fn parse_x(x: &str) -> Option<VerifyingKey> {
    let mut bytes = [0; 32];
    match URL_SAFE_NO_PAD.decode_slice(x, &mut bytes) {
        Ok(32) => {}
        _ => return None,
    }
    VerifyingKey::from_bytes(&bytes)
        .ok()
        .filter(|key| !key.is_weak())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{
        super::keys::{
            KeyRing, SigningKeyRecord,
            tests::{at, master},
        },
        *,
    };

    #[test]
    fn the_jwks_has_the_rfc_8037_shape() {
        let record = SigningKeyRecord::generate(&master(), at(0), at(0));
        let ring = KeyRing::open(std::slice::from_ref(&record), &master()).unwrap();
        let document = serde_json::to_value(Jwks::published(&ring, at(0))).unwrap();
        let x = URL_SAFE_NO_PAD.encode(record.public_key);
        assert_eq!(
            document,
            json!({"keys": [{
                "kty": "OKP", "crv": "Ed25519", "kid": record.kid, "x": x,
                "alg": "EdDSA", "use": "sig",
            }]})
        );
        assert_eq!(x.len(), 43, "32 bytes, base64url without padding");
    }

    #[test]
    fn the_jwks_lists_what_the_ring_publishes() {
        let mut old = SigningKeyRecord::generate(&master(), at(0), at(0));
        old.schedule.retired_at = Some(at(100));
        old.schedule.published_until = Some(at(160));
        let new = SigningKeyRecord::generate(&master(), at(40), at(100));
        let ring = KeyRing::open(&[new.clone(), old.clone()], &master()).unwrap();
        let kids = |minute| -> Vec<String> {
            Jwks::published(&ring, at(minute))
                .keys
                .into_iter()
                .map(|k| k.kid)
                .collect()
        };
        assert_eq!(kids(50), [old.kid.clone(), new.kid.clone()]);
        assert_eq!(kids(160), [new.kid]);
    }

    #[test]
    fn reading_a_jwks_keeps_only_usable_ed25519_keys() {
        let record = SigningKeyRecord::generate(&master(), at(0), at(0));
        let mut jwks: Jwks = serde_json::from_value(json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB", "alg": "RS256"},
            {"kty": "OKP", "crv": "X25519", "kid": "x", "x": URL_SAFE_NO_PAD.encode([9; 32])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": "AAAA"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "weak", "x": URL_SAFE_NO_PAD.encode([0; 32])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc",
             "x": URL_SAFE_NO_PAD.encode(record.public_key)},
        ]}))
        .unwrap();
        jwks.keys
            .push(Jwk::ed25519(&record.kid, &record.public_key));
        let keys = VerifyingKeys::from_jwks(&jwks);
        assert_eq!(keys.len(), 1);
        assert!(keys.get(&record.kid).is_some());
    }
}
