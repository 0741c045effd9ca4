//! Memberships tie a user to a customer or an account, with permissions and one owner.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Result, id::Id, violations::Violations};

/// The permission catalogue; anything else is refused.
pub const PERMISSIONS: [&str; 13] = [
    "customer.read",
    "customer.write",
    "accounts.read",
    "accounts.write",
    "users.read",
    "users.invite",
    "billing.read",
    "billing.write",
    "rooms.read",
    "rooms.write",
    "recordings.read",
    "recordings.write",
    "reports.read",
];

/// What a membership is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MembershipTarget {
    Customer(Id),
    Account(Id),
}

/// What `ListAccessibleResources` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    Customer,
    Account,
}

impl ResourceKind {
    /// The target of this kind with id `id`.
    pub fn target(self, id: Id) -> MembershipTarget {
        match self {
            ResourceKind::Customer => MembershipTarget::Customer(id),
            ResourceKind::Account => MembershipTarget::Account(id),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipStatus {
    Active,
    Inactive,
}

impl MembershipStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            MembershipStatus::Active => "active",
            MembershipStatus::Inactive => "inactive",
        }
    }

    pub fn from_db(text: &str) -> Option<Self> {
        match text {
            "active" => Some(MembershipStatus::Active),
            "inactive" => Some(MembershipStatus::Inactive),
            _ => None,
        }
    }
}

/// A user's membership of a customer or an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    pub user_id: Id,
    pub target: MembershipTarget,
    pub owner: bool,
    /// Granted permissions; an owner holds every permission whatever this says.
    pub permissions: Vec<String>,
    /// Names of roles of the membership's customer, sorted; their permissions add to
    /// `permissions`.
    #[serde(default)]
    pub roles: Vec<String>,
    pub status: MembershipStatus,
    pub create_time: DateTime<Utc>,
    pub revision: i64,
}

/// Validates a permission list against the catalogue: each unknown entry is a violation
/// at `{field}[i]`; duplicates are dropped and the rest kept in catalogue order.
pub fn parse_permissions(field: &str, permissions: &[String]) -> Result<Vec<String>> {
    let mut violations = Violations::new();
    for (i, permission) in permissions.iter().enumerate() {
        if !PERMISSIONS.contains(&permission.trim()) {
            violations.add(
                format!("{field}[{i}]"),
                format!(
                    "`{permission}` is not a permission; known: {}",
                    PERMISSIONS.join(", ")
                ),
            );
        }
    }
    violations.finish()?;
    Ok(PERMISSIONS
        .iter()
        .filter(|known| permissions.iter().any(|p| p.trim() == **known))
        .map(|p| p.to_string())
        .collect())
}

/// One permission of the catalogue, as `CheckAccess` asks about it.
pub fn parse_permission(text: &str) -> Result<&'static str, String> {
    PERMISSIONS
        .iter()
        .find(|known| **known == text.trim())
        .copied()
        .ok_or_else(|| format!("`{text}` is not a permission of the catalogue"))
}

/// Read permissions are the ones a SUSPENDED customer or account still grants.
pub fn is_read_permission(permission: &str) -> bool {
    permission.ends_with(".read")
}

/// What a member holds, as far as an access decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub active: bool,
    pub owner: bool,
    pub permissions: Vec<String>,
}

/// Whether a customer or an account lets its members act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Active,
    /// Reads only.
    Suspended,
    /// Nothing: INACTIVE or TERMINATED.
    Closed,
}

/// Everything one access decision depends on, read in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessFacts {
    pub user_active: bool,
    pub customer: Standing,
    /// For an account target: the account's standing.
    pub account: Option<Standing>,
    /// The user's membership of the target itself.
    pub member: Option<Grant>,
    /// For an account target: the user's membership of the account's customer, whose
    /// owner may act on every account of it.
    pub customer_member: Option<Grant>,
    /// The roles whose permissions `member` holds: a change of one changes the facts.
    pub role_ids: Vec<Id>,
}

/// An access decision and why, for `CheckAccess`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: &'static str,
}

fn deny(reason: &'static str) -> Decision {
    Decision {
        allowed: false,
        reason,
    }
}

impl AccessFacts {
    /// SPEC section 4: an active user and an active membership (for an account, of the
    /// account or as owner of its customer); ACTIVE customer and account, SUSPENDED for
    /// read permissions only; the permission granted or the user the owner.
    pub fn decide(&self, permission: &str) -> Decision {
        if !self.user_active {
            return deny("the user is inactive");
        }
        let standing =
            |standing: Standing, closed: &'static str, suspended: &'static str| match standing {
                Standing::Active => None,
                Standing::Suspended if is_read_permission(permission) => None,
                Standing::Suspended => Some(deny(suspended)),
                Standing::Closed => Some(deny(closed)),
            };
        if let Some(denied) = standing(
            self.customer,
            "the customer is inactive or terminated",
            "the customer is suspended: only read permissions are granted",
        ) {
            return denied;
        }
        if let Some(account) = self.account
            && let Some(denied) = standing(
                account,
                "the account is inactive or terminated",
                "the account is suspended: only read permissions are granted",
            )
        {
            return denied;
        }
        let customer_owner = self
            .customer_member
            .as_ref()
            .is_some_and(|grant| grant.active && grant.owner);
        let grant = match &self.member {
            Some(grant) if grant.active => grant,
            _ if customer_owner => {
                return Decision {
                    allowed: true,
                    reason: "the user owns the account's customer",
                };
            }
            Some(_) => return deny("the membership is inactive"),
            None => return deny("the user is not a member"),
        };
        if grant.owner {
            Decision {
                allowed: true,
                reason: "the user is the owner",
            }
        } else if grant.permissions.iter().any(|p| p == permission) {
            Decision {
                allowed: true,
                reason: "the permission is granted",
            }
        } else if customer_owner {
            Decision {
                allowed: true,
                reason: "the user owns the account's customer",
            }
        } else {
            deny("the permission is not granted")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(owner: bool, permissions: &[&str]) -> Option<Grant> {
        Some(Grant {
            active: true,
            owner,
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
        })
    }

    fn facts() -> AccessFacts {
        AccessFacts {
            user_active: true,
            customer: Standing::Active,
            account: None,
            member: member(false, &["rooms.read"]),
            customer_member: None,
            role_ids: Vec::new(),
        }
    }

    #[test]
    fn every_branch_of_the_access_rule() {
        assert!(facts().decide("rooms.read").allowed);
        assert!(!facts().decide("rooms.write").allowed);
        let mut f = facts();
        f.user_active = false;
        assert!(!f.decide("rooms.read").allowed);
        let mut f = facts();
        f.customer = Standing::Suspended;
        assert!(f.decide("rooms.read").allowed);
        f.member = member(true, &[]);
        assert!(
            !f.decide("rooms.write").allowed,
            "suspended: even the owner only reads"
        );
        f.customer = Standing::Closed;
        assert!(!f.decide("rooms.read").allowed);
        let mut f = facts();
        f.member.as_mut().unwrap().active = false;
        assert!(!f.decide("rooms.read").allowed);
        f.member = None;
        assert!(!f.decide("rooms.read").allowed);
        let mut f = facts();
        f.member = member(true, &[]);
        assert!(f.decide("billing.write").allowed, "owners hold everything");
        // Accounts: the account's own standing, and the customer's owner.
        let mut f = facts();
        f.account = Some(Standing::Suspended);
        assert!(f.decide("rooms.read").allowed);
        assert!(!f.decide("rooms.write").allowed);
        f.account = Some(Standing::Closed);
        assert!(!f.decide("rooms.read").allowed);
        let mut f = facts();
        f.account = Some(Standing::Active);
        f.member = None;
        f.customer_member = member(true, &[]);
        assert!(f.decide("recordings.write").allowed);
        f.customer_member = member(false, &["recordings.write"]);
        assert!(
            !f.decide("recordings.write").allowed,
            "a customer member who is not its owner gets nothing on its accounts"
        );
    }

    #[test]
    fn permissions_are_checked_against_the_catalogue() {
        let parsed = parse_permissions(
            "permissions",
            &[
                "rooms.write".into(),
                "customer.read".into(),
                "rooms.write".into(),
            ],
        )
        .unwrap();
        assert_eq!(parsed, ["customer.read", "rooms.write"]);
        let Err(super::super::Error::InvalidArgument(list)) =
            parse_permissions("permissions", &["rooms.read".into(), "rooms.fly".into()])
        else {
            panic!("expected invalid argument");
        };
        assert_eq!(list[0].field, "permissions[1]");
    }
}
