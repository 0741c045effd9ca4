//! Invitations: an email invited to become a member of a customer or an account, with a
//! token that is returned once and stored only as its SHA-256 digest.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{id::Id, membership::MembershipTarget, user::Email};

/// The stored lifecycle; EXPIRED is derived from `expire_time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

impl InvitationStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Revoked => "revoked",
            InvitationStatus::Expired => "expired",
        }
    }

    pub fn from_db(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(InvitationStatus::Pending),
            "accepted" => Some(InvitationStatus::Accepted),
            "revoked" => Some(InvitationStatus::Revoked),
            "expired" => Some(InvitationStatus::Expired),
            _ => None,
        }
    }
}

/// An invitation as stored; its token is never part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: Id,
    pub target: MembershipTarget,
    pub email: Email,
    pub permissions: Vec<String>,
    /// Names of roles of the target's customer, sorted.
    #[serde(default)]
    pub roles: Vec<String>,
    /// `None` when an operator invited.
    pub inviter_user_id: Option<Id>,
    /// As stored: PENDING, ACCEPTED or REVOKED (see `status_at`).
    pub status: InvitationStatus,
    pub expire_time: DateTime<Utc>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub revision: i64,
}

impl Invitation {
    /// The status at `now`: a PENDING invitation past its expiry is EXPIRED.
    pub fn status_at(&self, now: DateTime<Utc>) -> InvitationStatus {
        if self.status == InvitationStatus::Pending && now >= self.expire_time {
            InvitationStatus::Expired
        } else {
            self.status
        }
    }
}

/// A fresh invitation token (32 random bytes, URL-safe) and its stored digest.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let digest = token_digest(&token);
    (token, digest)
}

/// The stored form of a token: hex SHA-256. The token is 256 random bits, so a fast
/// digest cannot be reversed by guessing.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_url_safe_and_stored_as_digests() {
        let (a, digest_a) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(token_digest(&a), digest_a);
        assert_ne!(digest_a, a);
    }
}
