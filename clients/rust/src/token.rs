//! An access token read offline: the compact JWS (`alg: EdDSA`, `typ: at+jwt`), its
//! Ed25519 signature, and the claims of SPEC §11 checked against what the caller expects.
//!
//! Written on `ed25519-dalek` rather than `jsonwebtoken`: jsonwebtoken 12's EdDSA needs
//! its `rust_crypto` backend, which brings RSA, ECDSA and HMAC into every consumer's
//! tree for one algorithm; it re-parses the public key on every token (a point
//! decompression, a tenth of a verify) where we parse each JWKS key once; and it does
//! not check `typ`. One algorithm and one header take a page; the unit tests check
//! every rule, and `examples/verify_bench.rs` measures the cost over a bare verify.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use serde::{Deserialize, de::IgnoredAny};
use uuid::Uuid;

/// The largest token tenancy signs (SPEC §11); anything longer is malformed.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The claims of a tenancy access token, grouped by what a service does with them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccessClaims {
    // Who: the signed-in user and the session (`Session.uuid`).
    pub sub: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub sid: Uuid,
    // What they may do: in the session's active customer (`None` for a user-level
    // session), its effective permissions, ownership and roles.
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    pub permissions: Vec<String>,
    pub roles: Vec<String>,
    pub owner: bool,
    // The token itself: issuer, audiences, this token's id, issued-at and expiry
    // (seconds since the epoch).
    pub iss: String,
    pub aud: Audience,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
}

/// `aud` as the token carries it: a string for one audience, an array for several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Several(Vec<String>),
}

impl Audience {
    pub fn as_slice(&self) -> &[String] {
        match self {
            Self::One(audience) => std::slice::from_ref(audience),
            Self::Several(audiences) => audiences,
        }
    }

    pub fn contains(&self, audience: &str) -> bool {
        self.as_slice().iter().any(|a| a == audience)
    }
}

/// Why a token was refused; each variant names the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed access token: {0}")]
    Malformed(String),
    #[error("wrong token type: typ is not at+jwt")]
    WrongType,
    #[error("unknown signing key {kid:?}: not in the JWKS")]
    UnknownKey { kid: String },
    #[error("bad signature")]
    BadSignature,
    #[error("expired at {exp} (seconds since the epoch)")]
    Expired { exp: i64 },
    #[error("wrong issuer {found:?}")]
    WrongIssuer { found: String },
    #[error("wrong audience: the token is not meant for {expected:?}")]
    WrongAudience { expected: String },
    /// The JWKS could not be fetched, and no cached key has the token's `kid`.
    #[error("the JWKS is unavailable: {0}")]
    JwksUnavailable(String),
}

/// What a token must say besides being signed by a published key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// `iss` must equal this (the server's `--token-issuer`, `tenancy` by default).
    pub issuer: String,
    /// `aud` must contain this: the verifying service's own name.
    pub audience: String,
    /// Clock skew tolerated past `exp` (30 s by default).
    pub leeway: Duration,
}

impl Expected {
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

    /// Expects `issuer` and `audience`, with [`Expected::DEFAULT_LEEWAY`].
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Self::DEFAULT_LEEWAY,
        }
    }

    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }
}

/// A token whose form and header passed: what remains needs the key its `kid` names.
#[derive(Debug)]
pub struct Unverified<'t> {
    /// The `kid` header: which JWKS key must verify the signature.
    pub kid: String,
    signing_input: &'t str,
    payload: &'t str,
    signature: Signature,
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    typ: String,
    kid: Option<String>,
    crit: Option<IgnoredAny>,
}

impl JoseHeader {
    /// The `kid`, if this is the header of an access token.
    fn into_kid(self) -> Result<String, VerifyError> {
        let typ = self.typ.to_ascii_lowercase();
        let typ = typ.strip_prefix("application/").unwrap_or(&typ);
        match (self.alg.as_str(), typ, self.crit, self.kid) {
            (alg, ..) if alg != "EdDSA" => Err(malformed("alg is not EdDSA")),
            (_, typ, ..) if typ != "at+jwt" => Err(VerifyError::WrongType),
            (_, _, Some(_), _) => Err(malformed("crit names an extension not handled here")),
            (_, _, None, None) => Err(malformed("the header has no kid")),
            (_, _, None, Some(kid)) => Ok(kid),
        }
    }
}

impl<'t> Unverified<'t> {
    /// Reads the three parts and checks the header: `alg: EdDSA`, `typ: at+jwt`
    /// (`application/at+jwt` and any case too, RFC 9068 §4), no `crit`, a `kid`.
    ///
    /// Errors: [`VerifyError::Malformed`], [`VerifyError::WrongType`].
    pub fn parse(token: &'t str) -> Result<Self, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(malformed("over 4 KiB"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("not header.payload.signature"));
        };
        let kid = from_base64_json::<JoseHeader>(header, "header")?.into_kid()?;
        let mut bytes = [0u8; 64];
        // 86 characters decode to exactly 64 bytes; a longer signature must not be cut.
        if signature.len() != 86 || URL_SAFE_NO_PAD.decode_slice(signature, &mut bytes) != Ok(64) {
            return Err(malformed("the signature is not 64 bytes of base64url"));
        }
        Ok(Self {
            kid,
            signing_input: &token[..header_and_payload_len(token, signature)],
            payload,
            signature: Signature::from_bytes(&bytes),
        })
    }

    /// Checks the signature with `key`, then `exp` (at `now`, seconds since the epoch,
    /// with the leeway), `iss` and `aud`, and returns the claims.
    pub fn verify(
        self,
        key: &VerifyingKey,
        expected: &Expected,
        now: i64,
    ) -> Result<AccessClaims, VerifyError> {
        // `verify`, not `verify_strict`: the latter only adds a weak-key check, which
        // `KeySet` made once per key.
        key.verify(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| VerifyError::BadSignature)?;
        let claims: AccessClaims = from_base64_json(self.payload, "payload")?;
        let leeway = i64::try_from(expected.leeway.as_secs()).unwrap_or(i64::MAX);
        if claims.exp <= now.saturating_sub(leeway) {
            return Err(VerifyError::Expired { exp: claims.exp });
        }
        if claims.iss != expected.issuer {
            return Err(VerifyError::WrongIssuer { found: claims.iss });
        }
        if !claims.aud.contains(&expected.audience) {
            return Err(VerifyError::WrongAudience {
                expected: expected.audience.clone(),
            });
        }
        Ok(claims)
    }
}

/// Seconds since the epoch by the system clock.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn header_and_payload_len(token: &str, signature: &str) -> usize {
    token.len() - signature.len() - 1
}

fn malformed(what: &str) -> VerifyError {
    VerifyError::Malformed(what.to_owned())
}

fn from_base64_json<T: for<'de> Deserialize<'de>>(
    part: &str,
    what: &str,
) -> Result<T, VerifyError> {
    let json = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| VerifyError::Malformed(format!("the {what} is not base64url ({e})")))?;
    serde_json::from_slice(&json).map_err(|e| {
        VerifyError::Malformed(format!(
            "the {what} is not what an access token holds ({e})"
        ))
    })
}
