//! Access tokens: JWTs in the RFC 9068 profile (`typ: at+jwt`), signed `EdDSA`
//! (Ed25519, RFC 8037) as compact JWS.
//!
//! The compact JWS is written here rather than with `jsonwebtoken`: since 10.0 that
//! crate has no ring backend, and its pure-Rust one brings RSA and ECDSA along with
//! Ed25519; it re-derives the Ed25519 key on every token signed and re-parses the
//! public key on every token verified; and it does not check `typ`. One algorithm and
//! one header are a few lines; `jsonwebtoken` still checks them in the tests.
//!
//! [`verify`] uses nothing from the server (serde, base64, ed25519-dalek, chrono), so a
//! client verifier can copy it with `jwks.rs`.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::IgnoredAny};
use uuid::Uuid;

use super::{jwks::VerifyingKeys, keys::KeyRing};

/// The largest token [`sign`] makes and [`verify`] reads (SPEC §11).
pub const MAX_TOKEN_BYTES: usize = 4096;
/// The `typ` header of an access token (RFC 9068 §2.1).
pub const TOKEN_TYPE: &str = "at+jwt";
const ALGORITHM: &str = "EdDSA";
const SIGNATURE_CHARS: usize = 86;

/// The claims of an access token, exactly those of SPEC §11.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// `--token-issuer`.
    pub iss: String,
    /// `--token-audience` (one or more).
    pub aud: Audience,
    /// The user.
    pub sub: Uuid,
    /// The session.
    pub sid: Uuid,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    pub jti: Uuid,
    pub email: String,
    pub email_verified: bool,
    /// The session's active customer; absent (never empty) for a user-level session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<Uuid>,
    /// The effective permissions in the active customer (all of them for the owner).
    pub permissions: Vec<String>,
    pub owner: bool,
    pub roles: Vec<String>,
}

/// `aud`: written as a string when there is one audience, an array when several; read
/// from either.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audience(Vec<String>);

impl Audience {
    pub fn new(audiences: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self(audiences.into_iter().map(Into::into).collect())
    }

    pub fn contains(&self, audience: &str) -> bool {
        self.0.iter().any(|a| a == audience)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(one) => Self(vec![one]),
            OneOrMany::Many(many) => Self(many),
        })
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Why no token was made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("no signing key signs at this instant (none stored yet, or the first one is not due)")]
    NoSigningKey,
    #[error("the access token would be {bytes} bytes, over the {MAX_TOKEN_BYTES}-byte limit")]
    TooLarge { bytes: usize },
}

/// Signs `claims` with the ring's signing key at `now` (header `alg: EdDSA`,
/// `typ: at+jwt`, `kid`). The claims are taken as given: the caller sets `iat`/`exp`.
///
/// Errors: [`SignError::NoSigningKey`]; [`SignError::TooLarge`] past
/// [`MAX_TOKEN_BYTES`] (checked before signing).
pub fn sign(
    ring: &KeyRing,
    claims: &AccessClaims,
    now: DateTime<Utc>,
) -> Result<String, SignError> {
    let key = ring.signing_key(now).ok_or(SignError::NoSigningKey)?;
    let header = Header {
        alg: ALGORITHM,
        typ: TOKEN_TYPE,
        kid: key.kid(),
    };
    // Header and claims in one buffer. Neither holds a map with non-string keys, the
    // only way writing them to memory can fail.
    let mut json = Vec::with_capacity(1024);
    let written = serde_json::to_writer(&mut json, &header).map(|()| json.len());
    let header_len = written
        .and_then(|len| serde_json::to_writer(&mut json, claims).map(|()| len))
        .unwrap_or_else(|e| unreachable!("serializing an access token failed: {e}"));
    let (header, payload) = json.split_at(header_len);
    let bytes = encoded_len(header.len()) + 1 + encoded_len(payload.len()) + 1 + SIGNATURE_CHARS;
    if bytes > MAX_TOKEN_BYTES {
        return Err(SignError::TooLarge { bytes });
    }
    Ok(compact(&key.signer, header, payload, bytes))
}

/// `base64url(header) . base64url(payload) . base64url(signature)` in one allocation.
fn compact(signer: &SigningKey, header: &[u8], payload: &[u8], capacity: usize) -> String {
    let mut token = String::with_capacity(capacity);
    URL_SAFE_NO_PAD.encode_string(header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = signer.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
    debug_assert_eq!(
        token.len(),
        capacity,
        "the length was computed before signing"
    );
    token
}

fn encoded_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4 - (3 - bytes % 3) % 3
}

/// What [`verify`] requires of a token besides its signature.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// `iss` must equal this.
    pub issuer: &'a str,
    /// `aud` must contain this (the verifying service's own name).
    pub audience: &'a str,
    /// Clock skew tolerated on `exp`.
    pub leeway: Duration,
}

/// Why a token was refused, naming what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the access token is malformed: {0}")]
    Malformed(String),
    #[error("the access token's typ is not at+jwt")]
    WrongType,
    #[error("the access token names signing key {kid:?}, which is not in the JWKS")]
    UnknownKey { kid: String },
    #[error("the access token's signature does not verify")]
    BadSignature,
    #[error("the access token expired at {exp} (seconds since the epoch)")]
    Expired { exp: i64 },
    #[error("the access token was issued by {found:?}, not the expected issuer")]
    WrongIssuer { found: String },
    #[error("the access token is not meant for this audience")]
    WrongAudience,
}

#[derive(Deserialize)]
struct ReceivedHeader {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    crit: Option<IgnoredAny>,
}

/// Verifies an access token offline against `keys` at `now`: its form, `alg: EdDSA`,
/// `typ: at+jwt` (or `application/at+jwt`), no `crit`, a known `kid`, the Ed25519
/// signature (RFC 8032, canonical `S` only), the claims' types, then
/// `exp` (with `expected.leeway`), `iss` and `aud`. Returns the claims.
pub fn verify(
    token: &str,
    keys: &VerifyingKeys,
    expected: &Expected<'_>,
    now: DateTime<Utc>,
) -> Result<AccessClaims, VerifyError> {
    let malformed = |what: &str| VerifyError::Malformed(what.to_owned());
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed("longer than 4 KiB"));
    }
    let (signed, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| malformed("not three dot-separated parts"))?;
    let (header, payload) = signed
        .split_once('.')
        .filter(|(_, payload)| !payload.contains('.'))
        .ok_or_else(|| malformed("not three dot-separated parts"))?;

    let header: ReceivedHeader = decode_json(header, "header")?;
    if header.alg != ALGORITHM {
        return Err(malformed("alg is not EdDSA"));
    }
    let typ = header.typ.as_deref().unwrap_or_default();
    let typ = typ.strip_prefix("application/").unwrap_or(typ);
    if !typ.eq_ignore_ascii_case(TOKEN_TYPE) {
        return Err(VerifyError::WrongType);
    }
    if header.crit.is_some() {
        return Err(malformed(
            "crit names an extension this verifier does not understand",
        ));
    }
    let kid = header
        .kid
        .ok_or_else(|| malformed("no kid in the header"))?;
    let key = keys.get(&kid).ok_or(VerifyError::UnknownKey { kid })?;

    let mut signature_bytes = [0; 64];
    if signature.len() != SIGNATURE_CHARS
        || URL_SAFE_NO_PAD.decode_slice(signature, &mut signature_bytes) != Ok(64)
    {
        return Err(malformed("the signature is not 64 bytes of base64url"));
    }
    // Not verify_strict: it costs a fifth more per token, and what it adds (refusing a
    // weak key) `VerifyingKeys::from_jwks` already did once per key.
    key.verify(signed.as_bytes(), &Signature::from_bytes(&signature_bytes))
        .map_err(|_| VerifyError::BadSignature)?;

    let claims: AccessClaims = decode_json(payload, "claims")?;
    let leeway = i64::try_from(expected.leeway.as_secs()).unwrap_or(i64::MAX);
    if now.timestamp().saturating_sub(leeway) >= claims.exp {
        return Err(VerifyError::Expired { exp: claims.exp });
    }
    if claims.iss != expected.issuer {
        return Err(VerifyError::WrongIssuer { found: claims.iss });
    }
    if !claims.aud.contains(expected.audience) {
        return Err(VerifyError::WrongAudience);
    }
    Ok(claims)
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str, name: &str) -> Result<T, VerifyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| VerifyError::Malformed(format!("the {name} is not base64url: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| VerifyError::Malformed(format!("the {name} is not what it should be: {e}")))
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;
