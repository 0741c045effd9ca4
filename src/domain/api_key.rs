//! API keys: how operators and services identify themselves, and the scopes they hold.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use super::id::Id;

/// Every scope a key can hold; `admin` implies all others.
pub const SCOPES: [&str; 17] = [
    "customers.read",
    "customers.write",
    "customers.delete",
    "accounts.read",
    "accounts.write",
    "accounts.delete",
    "users.read",
    "users.write",
    "users.authenticate",
    "users.recover",
    "memberships.write",
    "memberships.transfer",
    "invitations.accept",
    "events.read",
    "sessions.create",
    "sessions.manage",
    "admin",
];

pub const ADMIN_SCOPE: &str = "admin";
/// Prefix of generated keys, so a leaked key is recognisable in a secret scanner.
const KEY_PREFIX: &str = "tny_";
/// A key given through `TENANCY_ADMIN_KEY` must be at least this long.
pub const MIN_KEY_LEN: usize = 20;

/// Checks a scope name against the catalogue.
pub fn parse_scope(text: &str) -> Result<String, String> {
    let scope = text.trim();
    if SCOPES.contains(&scope) {
        Ok(scope.to_string())
    } else {
        Err(format!(
            "unknown scope `{scope}`; known scopes: {}",
            SCOPES.join(", ")
        ))
    }
}

/// A new random key: 32 bytes from the OS CSPRNG, URL-safe.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a key: hex SHA-256. Keys are long random strings, so a fast
/// unsalted digest is enough to make a stolen table useless.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// An API key as listed (never the secret).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: Id,
    pub name: String,
    pub scopes: Vec<String>,
    pub create_time: DateTime<Utc>,
    pub revoke_time: Option<DateTime<Utc>>,
}

/// The authenticated caller of an RPC.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub key_id: Id,
    pub scopes: Vec<String>,
}

impl Caller {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope || s == ADMIN_SCOPE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_every_scope() {
        let caller = Caller {
            key_id: Id::generate(),
            scopes: vec!["admin".into()],
        };
        assert!(SCOPES.iter().all(|s| caller.has_scope(s)));
        let reader = Caller {
            key_id: Id::generate(),
            scopes: vec!["users.read".into()],
        };
        assert!(reader.has_scope("users.read"));
        assert!(!reader.has_scope("users.write"));
    }

    #[test]
    fn secrets_are_random_and_digests_stable() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("tny_") && a.len() > 40);
        assert_eq!(digest(&a), digest(&a));
        assert_eq!(digest(&a).len(), 64);
        assert!(parse_scope("users.read").is_ok());
        assert!(parse_scope("users.delete").is_err());
    }
}
