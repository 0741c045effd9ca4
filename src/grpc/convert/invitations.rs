//! `Invitation` between protobuf and the domain.

use super::{keep, pb, timestamp};
use crate::domain::{
    Error, Result, etag,
    invitation::{Invitation, InvitationStatus},
    membership::MembershipTarget,
    violations::{Read, Violations},
};

/// The status filter of a list of invitations (`status`); a number outside the enum is
/// refused, for validation to report with the request's other violations.
pub fn invitation_filter(value: i32) -> Read<Option<InvitationStatus>> {
    let mut violations = Violations::new();
    let status = keep(&mut violations, invitation_status("status", value)).flatten();
    Read {
        value: status,
        refused: violations.into_refused(),
    }
}

/// A request's invitation status: unspecified is `None`.
fn invitation_status(field: &str, value: i32) -> Result<Option<InvitationStatus>> {
    match pb::InvitationStatus::try_from(value) {
        Ok(pb::InvitationStatus::Unspecified) => Ok(None),
        Ok(pb::InvitationStatus::Pending) => Ok(Some(InvitationStatus::Pending)),
        Ok(pb::InvitationStatus::Accepted) => Ok(Some(InvitationStatus::Accepted)),
        Ok(pb::InvitationStatus::Revoked) => Ok(Some(InvitationStatus::Revoked)),
        Ok(pb::InvitationStatus::Expired) => Ok(Some(InvitationStatus::Expired)),
        Err(_) => Err(Error::invalid(
            field,
            format!("{value} is not an InvitationStatus"),
        )),
    }
}

impl From<&Invitation> for pb::Invitation {
    fn from(invitation: &Invitation) -> Self {
        pb::Invitation {
            uuid: invitation.id.to_string(),
            ulid: invitation.id.ulid(),
            target: Some(match invitation.target {
                MembershipTarget::Customer(id) => {
                    pb::invitation::Target::CustomerId(id.to_string())
                }
                MembershipTarget::Account(id) => pb::invitation::Target::AccountId(id.to_string()),
            }),
            email: invitation.email.as_str().to_string(),
            permissions: invitation.permissions.clone(),
            roles: invitation.roles.clone(),
            inviter_user_id: invitation
                .inviter_user_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            status: match invitation.status_at(chrono::Utc::now()) {
                InvitationStatus::Pending => pb::InvitationStatus::Pending,
                InvitationStatus::Accepted => pb::InvitationStatus::Accepted,
                InvitationStatus::Revoked => pb::InvitationStatus::Revoked,
                InvitationStatus::Expired => pb::InvitationStatus::Expired,
            } as i32,
            expire_time: Some(timestamp(invitation.expire_time)),
            create_time: Some(timestamp(invitation.create_time)),
            etag: etag::format(invitation.revision),
        }
    }
}
