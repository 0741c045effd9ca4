//! Members, invitations and access checks of customers and accounts. Both services
//! share these use cases; a request names its target as a customer or an account.

use std::sync::Arc;

use chrono::Utc;

use super::{App, once_more_on_contention};
use crate::{
    domain::{
        Error, Result, etag,
        id::Id,
        idempotency::RequestKey,
        invitation::{self, Invitation, InvitationStatus},
        membership::{
            Decision, Membership, MembershipTarget, ResourceKind, parse_permission,
            parse_permissions,
        },
        password::Password,
        role::parse_role_names,
        user::{Email, NewUser, User, UserStatus, parse_language, parse_name},
        violations::Violations,
    },
    store::{Acceptor, MemberRef},
};

/// A request's target id, as sent, with the field that carried it.
#[derive(Debug, Clone, Copy)]
pub enum TargetRef<'a> {
    Customer(&'a str),
    Account(&'a str),
}

impl TargetRef<'_> {
    fn field(&self) -> &'static str {
        match self {
            TargetRef::Customer(_) => "customer_id",
            TargetRef::Account(_) => "account_id",
        }
    }

    fn parse(&self) -> Result<MembershipTarget, String> {
        match self {
            TargetRef::Customer(id) => Id::parse(id).map(MembershipTarget::Customer),
            TargetRef::Account(id) => Id::parse(id).map(MembershipTarget::Account),
        }
    }
}

/// At most this many checks in one `BatchCheckAccess`.
pub const MAX_BATCH_CHECKS: usize = 100;

/// A user's `ListAccessibleResources` candidates are cached up to this many (160 KB of
/// ids); a user with more is paged from the database.
const MAX_CACHED_CANDIDATES: usize = 10_000;

/// One check of a `BatchCheckAccess`, as sent.
#[derive(Debug, Clone, Copy)]
pub struct AccessCheck<'a> {
    pub target: Option<TargetRef<'a>>,
    pub permission: &'a str,
}

/// How an add request names the user.
pub enum MemberLookup<'a> {
    UserId(&'a str),
    Email(&'a str),
}

/// Who accepts an invitation, as sent.
pub enum AcceptorRequest<'a> {
    UserId(&'a str),
    NewUser {
        first_name: &'a str,
        last_name: &'a str,
        password: Password,
    },
}

/// Moving ownership needs the `memberships.transfer` scope on top of the RPC's own.
fn transfer_allowed(owner: bool, may_transfer: bool) -> Result<()> {
    if owner && !may_transfer {
        return Err(Error::PermissionDenied(
            "moving ownership needs the `memberships.transfer` scope".into(),
        ));
    }
    Ok(())
}

impl App {
    pub async fn add_member(
        &self,
        target: TargetRef<'_>,
        member: Option<MemberLookup<'_>>,
        permissions: &[String],
        roles: &[String],
        owner: bool,
        may_transfer: bool,
    ) -> Result<Membership> {
        let mut violations = Violations::new();
        let target_id = violations.check(target.field(), target.parse());
        let member = match member {
            None => {
                violations.add("member", "is required: set user_id or email");
                None
            }
            Some(MemberLookup::UserId(id)) => violations
                .check("user_id", Id::parse(id))
                .map(MemberRef::Id),
            Some(MemberLookup::Email(email)) => violations
                .check("email", Email::parse(email))
                .map(MemberRef::Email),
        };
        let permissions = match parse_permissions("permissions", permissions) {
            Ok(permissions) => Some(permissions),
            Err(error) => {
                violations.absorb(error)?;
                None
            }
        };
        let roles = parse_role_names(&mut violations, "roles", roles);
        violations.finish()?;
        transfer_allowed(owner, may_transfer)?;
        let (target_id, member, permissions, roles) = (
            target_id.expect("validated above"),
            member.expect("validated above"),
            permissions.expect("validated above"),
            roles.expect("validated above"),
        );
        once_more_on_contention(|| {
            self.store.add_member(
                target_id,
                &member,
                permissions.clone(),
                roles.clone(),
                owner,
            )
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn update_member(
        &self,
        target: TargetRef<'_>,
        user_id: &str,
        permissions: &[String],
        roles: &[String],
        owner: bool,
        etag_text: &str,
        may_transfer: bool,
    ) -> Result<Membership> {
        let mut violations = Violations::new();
        let target_id = violations.check(target.field(), target.parse());
        let user_id = violations.check("user_id", Id::parse(user_id));
        let permissions = match parse_permissions("permissions", permissions) {
            Ok(permissions) => Some(permissions),
            Err(error) => {
                violations.absorb(error)?;
                None
            }
        };
        let expected = match etag::parse("etag", etag_text) {
            Ok(expected) => expected,
            Err(error) => {
                violations.absorb(error)?;
                None
            }
        };
        let roles = parse_role_names(&mut violations, "roles", roles);
        violations.finish()?;
        transfer_allowed(owner, may_transfer)?;
        let (target_id, user_id, permissions, roles) = (
            target_id.expect("validated above"),
            user_id.expect("validated above"),
            permissions.expect("validated above"),
            roles.expect("validated above"),
        );
        once_more_on_contention(|| {
            self.store.update_member(
                target_id,
                user_id,
                permissions.clone(),
                roles.clone(),
                owner,
                expected,
            )
        })
        .await
    }

    pub async fn remove_member(
        &self,
        target: TargetRef<'_>,
        user_id: &str,
        etag_text: &str,
    ) -> Result<()> {
        let mut violations = Violations::new();
        let target_id = violations.check(target.field(), target.parse());
        let user_id = violations.check("user_id", Id::parse(user_id));
        let expected = match etag::parse("etag", etag_text) {
            Ok(expected) => expected,
            Err(error) => {
                violations.absorb(error)?;
                None
            }
        };
        violations.finish()?;
        let (target_id, user_id) = (
            target_id.expect("validated above"),
            user_id.expect("validated above"),
        );
        once_more_on_contention(|| self.store.remove_member(target_id, user_id, expected)).await
    }

    pub async fn list_members(
        &self,
        target: TargetRef<'_>,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Membership>, String)> {
        let mut violations = Violations::new();
        let target_id = violations.check(target.field(), target.parse());
        let canonical = format!(
            "ListMembers|{}",
            target_id.map(canonical_target).unwrap_or_default()
        );
        let page = self.page_request(&mut violations, &canonical, page_size, page_token)?;
        violations.finish()?;
        let page = self
            .store
            .list_members(
                target_id.expect("validated above"),
                page.expect("validated above"),
            )
            .await?;
        Ok(self.page_answer(&canonical, page))
    }

    /// Invites `email`; returns the invitation and its token (the only time it is
    /// shown). A retry with the same `request_id` gets the first invitation with a new
    /// token, since the first one is not kept: the old token stops working.
    pub async fn create_invitation(
        &self,
        target: TargetRef<'_>,
        email: &str,
        permissions: &[String],
        roles: &[String],
        inviter_user_id: &str,
        key: Option<RequestKey>,
    ) -> Result<(Invitation, String)> {
        let mut violations = Violations::new();
        let target_id = violations.check(target.field(), target.parse());
        let email = violations.check("email", Email::parse(email));
        let permissions = match parse_permissions("permissions", permissions) {
            Ok(permissions) => Some(permissions),
            Err(error) => {
                violations.absorb(error)?;
                None
            }
        };
        let inviter = if inviter_user_id.trim().is_empty() {
            None
        } else {
            violations.check("inviter_user_id", Id::parse(inviter_user_id))
        };
        let roles = parse_role_names(&mut violations, "roles", roles);
        violations.finish()?;
        let roles = roles.expect("validated above");
        let target_id = target_id.expect("validated above");
        let (token, digest) = invitation::new_token();
        let (email, permissions) = (
            email.expect("validated above"),
            permissions.expect("validated above"),
        );
        let expire_time = self.invitation_expiry();
        let created = once_more_on_contention(|| {
            self.store.create_invitation(
                target_id,
                &email,
                permissions.clone(),
                roles.clone(),
                inviter,
                &digest,
                expire_time,
                key.as_ref(),
            )
        })
        .await?;
        match created {
            crate::store::CreatedInvitation::New(invitation) => Ok((invitation, token)),
            crate::store::CreatedInvitation::Replayed(first) => match first.status_at(Utc::now()) {
                InvitationStatus::Accepted | InvitationStatus::Revoked => {
                    Ok((first, String::new()))
                }
                _ => {
                    let resent = once_more_on_contention(|| {
                        self.store
                            .resend_invitation(target_id, first.id, &digest, expire_time)
                    })
                    .await?;
                    Ok((resent, token))
                }
            },
        }
    }

    fn invitation_expiry(&self) -> chrono::DateTime<Utc> {
        let ttl = chrono::Duration::from_std(self.invitation_ttl)
            .unwrap_or_else(|_| chrono::Duration::days(7));
        crate::store::now() + ttl
    }

    /// `status` is the status filter read; if it could not be read, that is reported
    /// with the request's other violations.
    pub async fn list_invitations(
        &self,
        target: TargetRef<'_>,
        status: crate::domain::violations::Read<Option<InvitationStatus>>,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Invitation>, String)> {
        let crate::domain::violations::Read {
            value: status,
            refused,
        } = status;
        let mut violations = Violations::new();
        let target_id = violations.check(target.field(), target.parse());
        let canonical = format!(
            "ListInvitations|{}|s={}",
            target_id.map(canonical_target).unwrap_or_default(),
            status.map(|s| s.as_str()).unwrap_or("")
        );
        let page = self.page_request(&mut violations, &canonical, page_size, page_token)?;
        refused.over(violations.finish())?;
        let page = self
            .store
            .list_invitations(
                target_id.expect("validated above"),
                status,
                page.expect("validated above"),
            )
            .await?;
        Ok(self.page_answer(&canonical, page))
    }

    pub async fn revoke_invitation(
        &self,
        target: TargetRef<'_>,
        invitation_id: &str,
    ) -> Result<Invitation> {
        let mut violations = Violations::new();
        let target_id = violations.check(target.field(), target.parse());
        let id = violations.check("invitation_id", Id::parse(invitation_id));
        violations.finish()?;
        let (target_id, id) = (
            target_id.expect("validated above"),
            id.expect("validated above"),
        );
        once_more_on_contention(|| self.store.revoke_invitation(target_id, id)).await
    }

    pub async fn resend_invitation(
        &self,
        target: TargetRef<'_>,
        invitation_id: &str,
    ) -> Result<(Invitation, String)> {
        let mut violations = Violations::new();
        let target_id = violations.check(target.field(), target.parse());
        let id = violations.check("invitation_id", Id::parse(invitation_id));
        violations.finish()?;
        let (token, digest) = invitation::new_token();
        let (target_id, id) = (
            target_id.expect("validated above"),
            id.expect("validated above"),
        );
        let expire_time = self.invitation_expiry();
        let invitation = once_more_on_contention(|| {
            self.store
                .resend_invitation(target_id, id, &digest, expire_time)
        })
        .await?;
        Ok((invitation, token))
    }

    pub async fn accept_invitation(
        &self,
        token: &str,
        acceptor: Option<AcceptorRequest<'_>>,
        key: Option<RequestKey>,
    ) -> Result<(Membership, User)> {
        let mut violations = Violations::new();
        if token.trim().is_empty() {
            violations.add("token", "is required");
        }
        let acceptor = match acceptor {
            None => {
                violations.add("acceptor", "is required: set user_id or new_user");
                None
            }
            Some(AcceptorRequest::UserId(id)) => violations
                .check("user_id", Id::parse(id))
                .map(AcceptorChoice::Existing),
            Some(AcceptorRequest::NewUser {
                first_name,
                last_name,
                password,
            }) => {
                let first = violations.check("new_user.first_name", parse_name(first_name));
                let last = violations.check("new_user.last_name", parse_name(last_name));
                if password.is_empty() {
                    violations.add("new_user.password", "is required");
                } else {
                    // The invited email is not known before the token is looked up; the
                    // policy's email rule is checked against it below.
                    violations.check("new_user.password", password.check_policy(""));
                }
                match (first, last) {
                    (Some(first), Some(last)) => Some(AcceptorChoice::New(first, last, password)),
                    _ => None,
                }
            }
        };
        violations.finish()?;
        let digest = invitation::token_digest(token);
        if let Some(key) = &key
            && let Some(first) = self.store.replay::<(Membership, User)>(key).await?
        {
            return Ok(first);
        }
        let acceptor = match acceptor.expect("validated above") {
            AcceptorChoice::Existing(id) => Acceptor::Existing(id),
            AcceptorChoice::New(first_name, last_name, password) => {
                let invited = self.store.invited_email(&digest).await?;
                if let Some(email) = &invited {
                    password
                        .check_policy(email.as_str())
                        .map_err(|e| Error::invalid("new_user.password", e))?;
                }
                let placeholder = invited.ok_or_else(|| Error::FailedPrecondition {
                    kind: "INVITATION_TOKEN_INVALID",
                    subject: "invitations".into(),
                    description:
                        "the token matches no pending invitation (a resend replaces the token)"
                            .into(),
                })?;
                Acceptor::New {
                    new_user: NewUser {
                        email: placeholder,
                        first_name,
                        last_name,
                        language: parse_language("").unwrap_or_else(|_| "en".into()),
                        status: UserStatus::Active,
                    },
                    password_hash: self.hasher.hash(&password).await?,
                }
            }
        };
        once_more_on_contention(|| {
            self.store
                .accept_invitation(&digest, &acceptor, key.as_ref())
        })
        .await
    }

    /// Whether `user_id` may use `permission` on the target (SPEC section 4).
    pub async fn check_access(
        &self,
        user_id: &str,
        target: Option<TargetRef<'_>>,
        permission: &str,
    ) -> Result<Decision> {
        let mut violations = Violations::new();
        let user_id = violations.check("user_id", Id::parse(user_id));
        let target_id = match target {
            None => {
                violations.add("target", "is required: set customer_id or account_id");
                None
            }
            Some(target) => violations.check(target.field(), target.parse()),
        };
        let permission = violations.check("permission", parse_permission(permission));
        violations.finish()?;
        let (user_id, target) = (
            user_id.expect("validated above"),
            target_id.expect("validated above"),
        );
        self.decide(user_id, target, permission.expect("validated above"))
            .await
    }

    /// `CheckAccess`'s answer from the cached facts of `(user_id, target)`, read from
    /// the database on a miss. Every access answer (single, batch, list) comes here, so
    /// they cannot disagree.
    async fn decide(
        &self,
        user_id: Id,
        target: MembershipTarget,
        permission: &'static str,
    ) -> Result<Decision> {
        let cache = &self.caches.access;
        let key = (user_id, target);
        if let Some(decision) = cache.read(&key, self.caches.changes.is_fresh(), |facts| {
            facts.decide(permission)
        }) {
            return Ok(decision);
        }
        let ticket = cache.ticket();
        let (customer_id, facts) = self.store.access_facts(user_id, target).await?;
        let target_id = match target {
            MembershipTarget::Customer(id) | MembershipTarget::Account(id) => id,
        };
        let decision = facts.decide(permission);
        let mut depends_on = vec![user_id, target_id, customer_id];
        depends_on.extend(facts.role_ids.iter().copied());
        cache.insert(ticket, key, facts, depends_on);
        Ok(decision)
    }

    /// `decide`'s answer as a yes or no; a target deleted since its id was read is no.
    async fn allowed(
        &self,
        user_id: Id,
        target: MembershipTarget,
        permission: &'static str,
    ) -> Result<bool> {
        match self.decide(user_id, target, permission).await {
            Err(Error::NotFound { .. }) => Ok(false),
            other => Ok(other?.allowed),
        }
    }

    /// Every candidate of `ListAccessibleResources` for the user, in id order, from the
    /// cache or read whole; `None` when there are more than a cache entry holds, or the
    /// cache is off (the caller then reads them a chunk at a time). The entry depends on the user (every
    /// membership change touches its user) and, for accounts, on each customer the user
    /// owns (a new account of one touches its customer).
    async fn all_candidates(
        &self,
        user_id: Id,
        kind: ResourceKind,
    ) -> Result<Option<Arc<Vec<Id>>>> {
        let cache = &self.caches.candidates;
        if !cache.is_enabled() {
            return Ok(None);
        }
        let key = (user_id, kind);
        if let Some(all) = cache.get(&key, self.caches.changes.is_fresh()) {
            return Ok(Some(all));
        }
        let ticket = cache.ticket();
        let limit = MAX_CACHED_CANDIDATES as u64 + 1;
        let all = self
            .store
            .access_candidates(user_id, kind, None, limit)
            .await?;
        if all.len() > MAX_CACHED_CANDIDATES {
            return Ok(None);
        }
        let mut depends_on = vec![user_id];
        if kind == ResourceKind::Account {
            depends_on.extend(self.store.owned_customer_ids(user_id).await?);
        }
        let all = Arc::new(all);
        cache.insert(ticket, key, all.clone(), depends_on);
        Ok(Some(all))
    }

    /// Up to 100 checks about one user, answered in order as `CheckAccess` answers each;
    /// a check naming a customer or account that does not exist is denied.
    pub async fn batch_check_access(
        &self,
        user_id: &str,
        checks: &[AccessCheck<'_>],
    ) -> Result<Vec<Decision>> {
        let mut violations = Violations::new();
        let user_id = violations.check("user_id", Id::parse(user_id));
        if checks.is_empty() {
            violations.add("checks", "is required: 1 to 100 checks");
        } else if checks.len() > MAX_BATCH_CHECKS {
            violations.add(
                "checks",
                format!("holds {} checks; at most {MAX_BATCH_CHECKS}", checks.len()),
            );
        }
        let mut parsed = Vec::with_capacity(checks.len());
        for (i, check) in checks.iter().enumerate() {
            let target = match check.target {
                None => {
                    violations.add(
                        format!("checks[{i}].target"),
                        "is required: set customer_id or account_id",
                    );
                    None
                }
                // Field names are formatted only for a violation: a batch of valid
                // checks allocates none.
                Some(target) => target
                    .parse()
                    .map_err(|e| violations.add(format!("checks[{i}].{}", target.field()), e))
                    .ok(),
            };
            let permission = parse_permission(check.permission)
                .map_err(|e| violations.add(format!("checks[{i}].permission"), e))
                .ok();
            parsed.push((target, permission));
        }
        violations.finish()?;
        let user_id = user_id.expect("validated above");
        let mut decisions = Vec::with_capacity(parsed.len());
        for (target, permission) in parsed {
            let (target, permission) = (
                target.expect("validated above"),
                permission.expect("validated above"),
            );
            decisions.push(match self.decide(user_id, target, permission).await {
                Err(Error::NotFound {
                    resource: resource @ ("customer" | "account"),
                }) => Decision {
                    allowed: false,
                    reason: if resource == "customer" {
                        "the customer does not exist"
                    } else {
                        "the account does not exist"
                    },
                },
                other => other?,
            });
        }
        Ok(decisions)
    }

    /// The customers or accounts on which `CheckAccess` allows `permission` to the user,
    /// keyset-paged in id order. Candidates (the user's memberships, and the accounts of
    /// customers the user owns) are read in id order and each is decided as
    /// `CheckAccess` decides it.
    pub async fn list_accessible_resources(
        &self,
        user_id: &str,
        permission: &str,
        kind: crate::domain::violations::Read<Option<ResourceKind>>,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<MembershipTarget>, String)> {
        let crate::domain::violations::Read {
            value: kind,
            refused,
        } = kind;
        let mut violations = Violations::new();
        let user_id = violations.check("user_id", Id::parse(user_id));
        let permission = violations.check("permission", parse_permission(permission));
        if refused.is_empty() && kind.is_none() {
            violations.add("resource_type", "is required: CUSTOMER or ACCOUNT");
        }
        let canonical = format!(
            "ListAccessibleResources|{}|{}|{:?}",
            user_id.map(|id| id.to_string()).unwrap_or_default(),
            permission.unwrap_or(""),
            kind
        );
        let page = self.page_request(&mut violations, &canonical, page_size, page_token)?;
        refused.over(violations.finish())?;
        let (user_id, permission, kind, page) = (
            user_id.expect("validated above"),
            permission.expect("validated above"),
            kind.expect("validated above"),
            page.expect("validated above"),
        );
        let wanted = usize::try_from(page.size)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let mut found = Vec::new();
        match self.all_candidates(user_id, kind).await? {
            Some(all) => {
                let first = page
                    .after
                    .map_or(0, |after| all.partition_point(|id| *id <= after));
                for id in &all[first..] {
                    let target = kind.target(*id);
                    if self.allowed(user_id, target, permission).await? {
                        found.push(target);
                        if found.len() == wanted {
                            break;
                        }
                    }
                }
            }
            None => {
                // Too many to hold: read in id order, a chunk at a time. The first read
                // fetches exactly what a page needs when every candidate is allowed;
                // each further one doubles, up to 1,000 rows.
                let mut chunk = page.size.saturating_add(1);
                let mut after = page.after;
                'scan: loop {
                    let candidates = self
                        .store
                        .access_candidates(user_id, kind, after, chunk)
                        .await?;
                    let exhausted = (candidates.len() as u64) < chunk;
                    for id in candidates {
                        after = Some(id);
                        let target = kind.target(id);
                        if self.allowed(user_id, target, permission).await? {
                            found.push(target);
                            if found.len() == wanted {
                                break 'scan;
                            }
                        }
                    }
                    if exhausted {
                        break;
                    }
                    chunk = chunk.saturating_mul(2).clamp(1, 1000).max(chunk);
                }
            }
        }
        if found.is_empty() {
            // Nothing to list: tell an unknown user apart from one without access. A
            // user with candidates exists (memberships go with their user).
            self.store.get_user(user_id).await?;
        }
        let more = found.len() == wanted;
        found.truncate(wanted - 1);
        let next_after = if more {
            found.last().map(|target| match target {
                MembershipTarget::Customer(id) | MembershipTarget::Account(id) => *id,
            })
        } else {
            None
        };
        Ok(self.page_answer(
            &canonical,
            crate::domain::page::Page {
                items: found,
                next_after,
            },
        ))
    }
}

enum AcceptorChoice {
    Existing(Id),
    New(String, String, Password),
}

fn canonical_target(target: MembershipTarget) -> String {
    match target {
        MembershipTarget::Customer(id) => format!("c={id}"),
        MembershipTarget::Account(id) => format!("a={id}"),
    }
}
