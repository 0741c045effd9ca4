//! Conversions between protobuf messages and domain values.

mod accounts;
mod customers;
mod invitations;
pub mod sessions;
mod structs;

pub use accounts::{account_fields, account_filters};
pub use customers::{customer_fields, customer_filters};
pub use invitations::invitation_filter;

use chrono::{DateTime, Utc};

use super::pb;
use crate::app::roles::RoleFields;
use crate::domain::{
    Error, Result, etag,
    event::{Event, EventResource},
    membership::{Membership, MembershipStatus, MembershipTarget, ResourceKind},
    role::Role,
    user::{User, UserFields, UserStatus},
    violations::{Read, Violations},
};

/// The value of a conversion, or its violations recorded (these conversions fail only
/// with validation errors).
pub(super) fn keep<T>(violations: &mut Violations, result: Result<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            let _ = violations.absorb(error);
            None
        }
    }
}

/// The `resource_type` of `ListAccessibleResources`: unspecified is `None` (required,
/// so reported by the use case); a number outside the enum is refused here.
pub fn resource_kind(value: i32) -> Read<Option<ResourceKind>> {
    let mut violations = Violations::new();
    let kind = match pb::ResourceType::try_from(value) {
        Ok(pb::ResourceType::Unspecified) => None,
        Ok(pb::ResourceType::Customer) => Some(ResourceKind::Customer),
        Ok(pb::ResourceType::Account) => Some(ResourceKind::Account),
        Err(_) => {
            violations.add("resource_type", format!("{value} is not a ResourceType"));
            None
        }
    };
    Read {
        value: kind,
        refused: violations.into_refused(),
    }
}

/// A request's `Role` fields.
pub fn role_fields(role: Option<&pb::Role>) -> Option<RoleFields<'_>> {
    role.map(|role| RoleFields {
        name: &role.name,
        description: &role.description,
        permissions: &role.permissions,
    })
}

pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

impl From<&User> for pb::User {
    fn from(user: &User) -> Self {
        pb::User {
            uuid: user.id.to_string(),
            ulid: user.id.ulid(),
            email: user.email.as_str().to_string(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            language: user.language.clone(),
            status: match user.status {
                UserStatus::Active => pb::UserStatus::Active,
                UserStatus::Inactive => pb::UserStatus::Inactive,
            } as i32,
            has_password: user.has_password,
            last_login_time: user.last_login_time.map(timestamp),
            create_time: Some(timestamp(user.create_time)),
            update_time: Some(timestamp(user.update_time)),
            etag: etag::format(user.revision),
            email_verified: user.email_verified,
            totp_enabled: user.totp_enabled,
        }
    }
}

impl From<&Membership> for pb::Membership {
    fn from(membership: &Membership) -> Self {
        pb::Membership {
            user_id: membership.user_id.to_string(),
            target: Some(match membership.target {
                MembershipTarget::Customer(id) => {
                    pb::membership::Target::CustomerId(id.to_string())
                }
                MembershipTarget::Account(id) => pb::membership::Target::AccountId(id.to_string()),
            }),
            owner: membership.owner,
            permissions: membership.permissions.clone(),
            status: match membership.status {
                MembershipStatus::Active => pb::MembershipStatus::Active,
                MembershipStatus::Inactive => pb::MembershipStatus::Inactive,
            } as i32,
            create_time: Some(timestamp(membership.create_time)),
            etag: etag::format(membership.revision),
            roles: membership.roles.clone(),
        }
    }
}

impl From<&Role> for pb::Role {
    fn from(role: &Role) -> Self {
        pb::Role {
            uuid: role.id.to_string(),
            ulid: role.id.ulid(),
            customer_id: role.customer_id.to_string(),
            name: role.name.clone(),
            description: role.description.clone(),
            permissions: role.permissions.clone(),
            create_time: Some(timestamp(role.create_time)),
            update_time: Some(timestamp(role.update_time)),
            etag: etag::format(role.revision),
        }
    }
}

impl From<&Event> for pb::Event {
    fn from(event: &Event) -> Self {
        pb::Event {
            sequence: event.sequence,
            r#type: event.kind.clone(),
            resource_id: event.resource_id.to_string(),
            customer_id: event
                .customer_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            time: Some(timestamp(event.time)),
            resource: Some(match &event.resource {
                EventResource::User(user) => pb::event::Resource::User(user.into()),
                EventResource::Customer(customer) => {
                    pb::event::Resource::Customer(customer.as_ref().into())
                }
                EventResource::Account(account) => {
                    pb::event::Resource::Account(account.as_ref().into())
                }
                EventResource::Invitation(invitation) => {
                    pb::event::Resource::Invitation(invitation.into())
                }
                EventResource::Membership(membership) => {
                    pb::event::Resource::Membership(membership.into())
                }
                EventResource::Role(role) => pb::event::Resource::Role(role.into()),
                EventResource::Session(session) => {
                    pb::event::Resource::Session(sessions::session_at(session, event.time))
                }
            }),
        }
    }
}

/// A request's user status: unspecified is `None`; a number outside the enum is an error.
fn user_status(field: &str, value: i32) -> Result<Option<UserStatus>> {
    match pb::UserStatus::try_from(value) {
        Ok(pb::UserStatus::Unspecified) => Ok(None),
        Ok(pb::UserStatus::Active) => Ok(Some(UserStatus::Active)),
        Ok(pb::UserStatus::Inactive) => Ok(Some(UserStatus::Inactive)),
        Err(_) => Err(Error::invalid(
            field,
            format!("{value} is not a UserStatus"),
        )),
    }
}

/// The profile fields of a request's `User`; a missing message reads as empty. A number
/// outside `UserStatus` is not an error here: it is the fields' `refused`, which
/// validation reports with the request's other violations.
pub fn user_fields<'a>(user: Option<&'a pb::User>) -> UserFields<'a> {
    let Some(user) = user else {
        return UserFields::default();
    };
    let mut violations = Violations::new();
    let status = keep(&mut violations, user_status("user.status", user.status)).flatten();
    UserFields {
        refused: violations.into_refused(),
        email: &user.email,
        first_name: &user.first_name,
        last_name: &user.last_name,
        language: &user.language,
        status,
    }
}
