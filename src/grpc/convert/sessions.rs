//! Sessions to their `pb` form.

use chrono::{DateTime, Utc};

use super::{pb, timestamp};
use crate::domain::session::{RevokeReason, Session, SessionStatus};

/// `session` as its status is at `now` (an active one past its end reads EXPIRED).
pub fn session_at(session: &Session, now: DateTime<Utc>) -> pb::Session {
    pb::Session {
        uuid: session.id.to_string(),
        user_id: session.user_id.to_string(),
        customer_id: session
            .customer_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        status: match session.status(now) {
            SessionStatus::Active => pb::SessionStatus::Active,
            SessionStatus::Revoked => pb::SessionStatus::Revoked,
            SessionStatus::Expired => pb::SessionStatus::Expired,
        } as i32,
        create_time: Some(timestamp(session.create_time)),
        last_refresh_time: Some(timestamp(session.last_refresh_time)),
        expire_time: Some(timestamp(session.expire_time)),
        revoke_time: session.revoke_time.map(timestamp),
        revoke_reason: session
            .revoke_reason
            .map_or(pb::SessionRevokeReason::Unspecified, revoke_reason)
            as i32,
    }
}

fn revoke_reason(reason: RevokeReason) -> pb::SessionRevokeReason {
    use pb::SessionRevokeReason as Pb;
    match reason {
        RevokeReason::SignedOut => Pb::SignedOut,
        RevokeReason::UserSessionsRevoked => Pb::UserSessionsRevoked,
        RevokeReason::RefreshTokenReused => Pb::RefreshTokenReused,
        RevokeReason::UserInactive => Pb::UserInactive,
        RevokeReason::UserDeleted => Pb::UserDeleted,
        RevokeReason::PasswordChanged => Pb::PasswordChanged,
        RevokeReason::MembershipRemoved => Pb::MembershipRemoved,
        RevokeReason::MembershipInactive => Pb::MembershipInactive,
        RevokeReason::CustomerInactive => Pb::CustomerInactive,
        RevokeReason::CustomerTerminated => Pb::CustomerTerminated,
        RevokeReason::PasswordReset => Pb::PasswordReset,
    }
}
