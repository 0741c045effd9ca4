//! Sign-in sessions (SPEC §11): what a session is, when it ends, and its refresh
//! tokens.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::id::Id;

/// Whether a session can still be refreshed, as seen at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionStatus {
    Active,
    Revoked,
    /// Past its idle or absolute lifetime.
    Expired,
}

/// Why a session was revoked; the `session.revoked` event carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevokeReason {
    SignedOut,
    UserSessionsRevoked,
    RefreshTokenReused,
    UserInactive,
    UserDeleted,
    PasswordChanged,
    MembershipRemoved,
    MembershipInactive,
    CustomerInactive,
    CustomerTerminated,
    PasswordReset,
}

impl RevokeReason {
    pub const ALL: [RevokeReason; 11] = [
        RevokeReason::SignedOut,
        RevokeReason::UserSessionsRevoked,
        RevokeReason::RefreshTokenReused,
        RevokeReason::UserInactive,
        RevokeReason::UserDeleted,
        RevokeReason::PasswordChanged,
        RevokeReason::MembershipRemoved,
        RevokeReason::MembershipInactive,
        RevokeReason::CustomerInactive,
        RevokeReason::CustomerTerminated,
        RevokeReason::PasswordReset,
    ];

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::SignedOut => "signed_out",
            RevokeReason::UserSessionsRevoked => "user_sessions_revoked",
            RevokeReason::RefreshTokenReused => "refresh_token_reused",
            RevokeReason::UserInactive => "user_inactive",
            RevokeReason::UserDeleted => "user_deleted",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::MembershipRemoved => "membership_removed",
            RevokeReason::MembershipInactive => "membership_inactive",
            RevokeReason::CustomerInactive => "customer_inactive",
            RevokeReason::CustomerTerminated => "customer_terminated",
            RevokeReason::PasswordReset => "password_reset",
        }
    }

    pub fn parse(text: &str) -> Option<RevokeReason> {
        RevokeReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == text)
    }
}

/// A session as stored. Holds no token: refresh tokens are kept as digests, apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: Id,
    pub user_id: Id,
    /// The active customer, whose permissions the access tokens carry.
    pub customer_id: Option<Id>,
    pub create_time: DateTime<Utc>,
    pub last_refresh_time: DateTime<Utc>,
    /// The idle lifetime after the last refresh, capped by `absolute_expire_time`.
    pub expire_time: DateTime<Utc>,
    /// The absolute lifetime after the sign-in: no refresh reaches past it.
    pub absolute_expire_time: DateTime<Utc>,
    pub revoke_time: Option<DateTime<Utc>>,
    pub revoke_reason: Option<RevokeReason>,
}

impl Session {
    /// The status at `now`: revoked, else expired once past `expire_time`.
    pub fn status(&self, now: DateTime<Utc>) -> SessionStatus {
        if self.revoke_time.is_some() {
            SessionStatus::Revoked
        } else if now >= self.expire_time {
            SessionStatus::Expired
        } else {
            SessionStatus::Active
        }
    }
}

/// How long sessions and their tokens live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// An access token's (`exp - iat`): 1 to 60 minutes.
    pub access_token: std::time::Duration,
    /// A session unused (not refreshed) this long ends.
    pub idle: std::time::Duration,
    /// A session ends this long after its sign-in, whatever its use.
    pub absolute: std::time::Duration,
}

impl Lifetimes {
    /// When a session refreshed (or created) at `now`, begun at `created`, ends:
    /// `(expire_time, absolute_expire_time)`.
    pub fn expiry(
        &self,
        created: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        let absolute = created + chrono::Duration::from_std(self.absolute).unwrap_or_default();
        let idle = now + chrono::Duration::from_std(self.idle).unwrap_or_default();
        (idle.min(absolute), absolute)
    }
}

/// A refresh token: 32 random bytes, URL-safe base64 (43 characters). Only its
/// SHA-256 digest is stored.
pub use super::secret_token::{SecretToken as RefreshToken, presented_digest};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_expires_when_idle_and_never_past_its_absolute_lifetime() {
        let lifetimes = Lifetimes {
            access_token: std::time::Duration::from_secs(300),
            idle: std::time::Duration::from_secs(3600),
            absolute: std::time::Duration::from_secs(7200),
        };
        let start = Utc::now();
        let (idle, absolute) = lifetimes.expiry(start, start);
        assert_eq!(idle, start + chrono::Duration::hours(1));
        assert_eq!(absolute, start + chrono::Duration::hours(2));
        let later = start + chrono::Duration::minutes(90);
        let (capped, _) = lifetimes.expiry(start, later);
        assert_eq!(
            capped, absolute,
            "a refresh never reaches past the absolute end"
        );
    }

    #[test]
    fn revoke_reasons_round_trip_through_their_stored_form() {
        for reason in RevokeReason::ALL {
            assert_eq!(RevokeReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(RevokeReason::parse("whatever"), None);
    }
}
