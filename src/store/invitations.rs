//! Invitations: created, listed, revoked and resent under their target's row lock, and
//! accepted in one transaction that also creates the membership (and the user).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, Condition, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _, sea_query::Expr,
};

use super::{
    Store, WriteTx, db_error,
    entities::{account, customer, invitation, user},
    from_micros, is_unique_violation,
    members::LockedTarget,
    now, rows, to_micros,
};
use crate::domain::{
    Error, Result,
    event::{EventResource, NewEvent},
    id::Id,
    idempotency::RequestKey,
    invitation::{Invitation, InvitationStatus},
    membership::{Membership, MembershipTarget},
    page::{Page, PageRequest},
    user::{Email, NewUser, User},
};

/// Who accepts an invitation.
pub enum Acceptor {
    Existing(Id),
    /// A new user with the invited email; `new_user.email` is replaced by it.
    New {
        new_user: NewUser,
        password_hash: String,
    },
}

/// What `create_invitation` did.
pub enum Created {
    New(Invitation),
    /// A retry of an earlier create: the first invitation, whose token is not kept.
    Replayed(Invitation),
}

fn invitation_from_row(row: &invitation::Model) -> Result<Invitation> {
    let target = match (row.customer_id, row.account_id) {
        (Some(customer), None) => MembershipTarget::Customer(Id::from_uuid(customer)),
        (None, Some(account)) => MembershipTarget::Account(Id::from_uuid(account)),
        _ => return Err(Error::internal("invitation names neither or both targets")),
    };
    Ok(Invitation {
        id: Id::from_uuid(row.id),
        target,
        email: Email::from_stored(row.email.clone()),
        permissions: serde_json::from_str(&row.permissions).map_err(Error::internal)?,
        roles: serde_json::from_str(&row.roles).map_err(Error::internal)?,
        inviter_user_id: row.inviter_user_id.map(Id::from_uuid),
        status: InvitationStatus::from_db(&row.status)
            .ok_or_else(|| Error::internal("unknown stored invitation status"))?,
        expire_time: from_micros(row.expire_time),
        create_time: from_micros(row.create_time),
        update_time: from_micros(row.update_time),
        revision: row.revision,
    })
}

fn target_filter(target: MembershipTarget) -> Condition {
    match target {
        MembershipTarget::Customer(id) => {
            Condition::all().add(invitation::Column::CustomerId.eq(id.uuid()))
        }
        MembershipTarget::Account(id) => {
            Condition::all().add(invitation::Column::AccountId.eq(id.uuid()))
        }
    }
}

fn not_found() -> Error {
    Error::NotFound {
        resource: "invitation",
    }
}

/// The `FAILED_PRECONDITION` of a token that cannot be used (any more).
fn unusable(status: Option<InvitationStatus>) -> Error {
    let (kind, description) = match status {
        Some(InvitationStatus::Accepted) => {
            ("INVITATION_ACCEPTED", "the invitation was already accepted")
        }
        Some(InvitationStatus::Revoked) => ("INVITATION_REVOKED", "the invitation was revoked"),
        Some(InvitationStatus::Expired) => ("INVITATION_EXPIRED", "the invitation has expired"),
        _ => (
            "INVITATION_TOKEN_INVALID",
            "the token matches no pending invitation (a resend replaces the token)",
        ),
    };
    Error::FailedPrecondition {
        kind,
        subject: "invitations".into(),
        description: description.into(),
    }
}

impl Store {
    async fn invitation_event(
        &self,
        tx: &mut WriteTx,
        kind: &'static str,
        invitation: &Invitation,
        customer_id: Id,
    ) -> Result<()> {
        self.append_event(
            tx,
            NewEvent {
                kind,
                resource_id: invitation.id,
                customer_id: Some(customer_id),
                resource: EventResource::Invitation(invitation.clone()),
            },
        )
        .await
    }

    /// Deletes every invitation of `target`, whatever its status, with an
    /// `invitation.deleted` event each (the invitation as it was): the part of a
    /// customer's or account's delete that would otherwise trip the foreign keys.
    pub(crate) async fn delete_invitations_in(
        &self,
        tx: &mut WriteTx,
        target: MembershipTarget,
        customer_id: Id,
    ) -> Result<()> {
        let rows = invitation::Entity::find()
            .filter(target_filter(target))
            .order_by_asc(invitation::Column::Id)
            .all(tx.txn())
            .await
            .map_err(db_error)?;
        if rows.is_empty() {
            return Ok(());
        }
        invitation::Entity::delete_many()
            .filter(target_filter(target))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        for row in &rows {
            let invitation = invitation_from_row(row)?;
            self.invitation_event(tx, "invitation.deleted", &invitation, customer_id)
                .await?;
        }
        Ok(())
    }

    async fn locked_invitation(
        &self,
        tx: &WriteTx,
        target: MembershipTarget,
        id: Id,
    ) -> Result<invitation::Model> {
        let mut query = invitation::Entity::find_by_id(id.uuid()).filter(target_filter(target));
        if self.sqlite_writer.is_none() {
            query = query.lock_exclusive();
        }
        query
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .ok_or_else(not_found)
    }

    /// Creates a PENDING invitation of `email` to an open target. `inviter`, when given,
    /// must be the target's owner. The email must be allowed by the customer, not be a
    /// member yet, and have no other pending invitation to the target.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_invitation(
        &self,
        target: MembershipTarget,
        email: &Email,
        permissions: Vec<String>,
        roles: Vec<String>,
        inviter: Option<Id>,
        token_digest: &str,
        expire_time: DateTime<Utc>,
        key: Option<&RequestKey>,
    ) -> Result<Created> {
        let mut tx = self.begin().await?;
        if let Some(key) = key
            && let Some(first) = self.replay_in::<Invitation>(&tx, key).await?
        {
            return Ok(Created::Replayed(first));
        }
        let locked = self.lock_target(&tx, target).await?;
        locked.require_open()?;
        if let Some(inviter) = inviter
            && inviter != locked.owner_user_id()
        {
            return Err(Error::PermissionDenied(
                "only the owner of the customer or account (or an operator) may invite".into(),
            ));
        }
        locked.admit_email(email, None)?;
        self.assignable_roles(&tx, locked.customer.id, &roles, "roles")
            .await?;
        let mut roles = roles;
        roles.sort_unstable();
        self.refuse_member_or_pending(&tx, &locked, email).await?;
        let now = now();
        let invitation = Invitation {
            id: Id::generate(),
            target,
            email: email.clone(),
            permissions,
            roles,
            inviter_user_id: inviter,
            status: InvitationStatus::Pending,
            expire_time,
            create_time: now,
            update_time: now,
            revision: 1,
        };
        let (customer_id, account_id) = match target {
            MembershipTarget::Customer(id) => (Some(id.uuid()), None),
            MembershipTarget::Account(id) => (None, Some(id.uuid())),
        };
        invitation::Entity::insert(invitation::ActiveModel {
            id: Set(invitation.id.uuid()),
            customer_id: Set(customer_id),
            account_id: Set(account_id),
            email: Set(email.as_str().to_string()),
            permissions: Set(
                serde_json::to_string(&invitation.permissions).map_err(Error::internal)?
            ),
            roles: Set(serde_json::to_string(&invitation.roles).map_err(Error::internal)?),
            inviter_user_id: Set(inviter.map(|id| id.uuid())),
            status: Set(InvitationStatus::Pending.as_str().to_string()),
            token_digest: Set(token_digest.to_string()),
            expire_time: Set(to_micros(expire_time)),
            create_time: Set(to_micros(now)),
            update_time: Set(to_micros(now)),
            revision: Set(1),
        })
        .exec_without_returning(tx.txn())
        .await
        .map_err(db_error)?;
        self.invitation_event(
            &mut tx,
            "invitation.created",
            &invitation,
            locked.customer.id,
        )
        .await?;
        if let Some(key) = key {
            self.remember(&tx, key, &invitation).await?;
        }
        self.commit(tx).await?;
        Ok(Created::New(invitation))
    }

    async fn refuse_member_or_pending(
        &self,
        tx: &WriteTx,
        locked: &LockedTarget,
        email: &Email,
    ) -> Result<()> {
        let existing = user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(tx.txn())
            .await
            .map_err(db_error)?;
        if let Some(existing) = existing
            && self
                .memberships_of_user_in(tx, Id::from_uuid(existing.id))
                .await?
                .iter()
                .any(|m| m.target == locked.target)
        {
            return Err(Error::AlreadyExists {
                resource: "membership",
                field: "email",
                reason: "MEMBERSHIP_EXISTS",
            });
        }
        let pending = invitation::Entity::find()
            .filter(target_filter(locked.target))
            .filter(invitation::Column::Email.eq(email.as_str()))
            .filter(invitation::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .filter(invitation::Column::ExpireTime.gt(to_micros(now())))
            .one(tx.txn())
            .await
            .map_err(db_error)?;
        if pending.is_some() {
            return Err(Error::AlreadyExists {
                resource: "invitation",
                field: "email",
                reason: "INVITATION_PENDING",
            });
        }
        Ok(())
    }

    async fn memberships_of_user_in(&self, tx: &WriteTx, user_id: Id) -> Result<Vec<Membership>> {
        use super::entities::membership;
        let rows = membership::Entity::find()
            .filter(membership::Column::UserId.eq(user_id.uuid()))
            .all(tx.txn())
            .await
            .map_err(db_error)?;
        rows.into_iter().map(rows::membership_from_row).collect()
    }

    /// One keyset page of a target's invitations; EXPIRED means PENDING past its expiry.
    pub async fn list_invitations(
        &self,
        target: MembershipTarget,
        status: Option<InvitationStatus>,
        page: PageRequest,
    ) -> Result<Page<Invitation>> {
        self.target_exists(target).await?;
        let now = to_micros(now());
        let mut query = invitation::Entity::find()
            .filter(target_filter(target))
            .order_by_asc(invitation::Column::Id)
            .limit(page.size + 1);
        if let Some(after) = page.after {
            query = query.filter(invitation::Column::Id.gt(after.uuid()));
        }
        query = match status {
            None => query,
            Some(InvitationStatus::Pending) => query
                .filter(invitation::Column::Status.eq("pending"))
                .filter(invitation::Column::ExpireTime.gt(now)),
            Some(InvitationStatus::Expired) => query
                .filter(invitation::Column::Status.eq("pending"))
                .filter(invitation::Column::ExpireTime.lte(now)),
            Some(other) => query.filter(invitation::Column::Status.eq(other.as_str())),
        };
        let rows = self.read(|| query.clone().all(&self.db)).await?;
        super::keyset_page(
            rows,
            page.size,
            |row| row.id,
            |row| invitation_from_row(&row),
        )
    }

    async fn target_exists(&self, target: MembershipTarget) -> Result<()> {
        let found = match target {
            MembershipTarget::Customer(id) => customer::Entity::find_by_id(id.uuid())
                .select_only()
                .column(customer::Column::Id)
                .into_tuple::<sea_orm::prelude::Uuid>()
                .one(&self.db)
                .await
                .map_err(db_error)?,
            MembershipTarget::Account(id) => account::Entity::find_by_id(id.uuid())
                .select_only()
                .column(account::Column::Id)
                .into_tuple::<sea_orm::prelude::Uuid>()
                .one(&self.db)
                .await
                .map_err(db_error)?,
        };
        found.map(|_| ()).ok_or(Error::NotFound {
            resource: match target {
                MembershipTarget::Customer(_) => "customer",
                MembershipTarget::Account(_) => "account",
            },
        })
    }

    /// Revokes a PENDING invitation; its token stops working.
    pub async fn revoke_invitation(&self, target: MembershipTarget, id: Id) -> Result<Invitation> {
        let mut tx = self.begin().await?;
        let locked = self.lock_target(&tx, target).await?;
        let row = self.locked_invitation(&tx, target, id).await?;
        let mut invitation = invitation_from_row(&row)?;
        let status = invitation.status_at(now());
        if status != InvitationStatus::Pending {
            return Err(Error::FailedPrecondition {
                kind: "INVITATION_NOT_PENDING",
                subject: format!("invitations/{id}"),
                description: format!("the invitation is {}", status.as_str().to_uppercase()),
            });
        }
        invitation.status = InvitationStatus::Revoked;
        invitation.update_time = now();
        invitation.revision += 1;
        self.write_invitation_state(&tx, &invitation, None).await?;
        self.invitation_event(
            &mut tx,
            "invitation.revoked",
            &invitation,
            locked.customer.id,
        )
        .await?;
        self.commit(tx).await?;
        Ok(invitation)
    }

    /// Gives an invitation that was neither accepted nor revoked a new token and a new
    /// expiry (also an expired one); the old token stops working.
    pub async fn resend_invitation(
        &self,
        target: MembershipTarget,
        id: Id,
        token_digest: &str,
        expire_time: DateTime<Utc>,
    ) -> Result<Invitation> {
        let mut tx = self.begin().await?;
        let locked = self.lock_target(&tx, target).await?;
        locked.require_open()?;
        let row = self.locked_invitation(&tx, target, id).await?;
        let mut invitation = invitation_from_row(&row)?;
        if matches!(
            invitation.status,
            InvitationStatus::Accepted | InvitationStatus::Revoked
        ) {
            return Err(Error::FailedPrecondition {
                kind: "INVITATION_NOT_PENDING",
                subject: format!("invitations/{id}"),
                description: format!(
                    "the invitation is {}: it cannot be resent",
                    invitation.status.as_str().to_uppercase()
                ),
            });
        }
        invitation.expire_time = expire_time;
        invitation.update_time = now();
        invitation.revision += 1;
        self.write_invitation_state(&tx, &invitation, Some(token_digest))
            .await?;
        self.invitation_event(
            &mut tx,
            "invitation.resent",
            &invitation,
            locked.customer.id,
        )
        .await?;
        self.commit(tx).await?;
        Ok(invitation)
    }

    async fn write_invitation_state(
        &self,
        tx: &WriteTx,
        invitation: &Invitation,
        token_digest: Option<&str>,
    ) -> Result<()> {
        let mut update = invitation::Entity::update_many()
            .col_expr(
                invitation::Column::Status,
                Expr::value(invitation.status.as_str()),
            )
            .col_expr(
                invitation::Column::ExpireTime,
                Expr::value(to_micros(invitation.expire_time)),
            )
            .col_expr(
                invitation::Column::UpdateTime,
                Expr::value(to_micros(invitation.update_time)),
            )
            .col_expr(
                invitation::Column::Revision,
                Expr::value(invitation.revision),
            )
            .filter(invitation::Column::Id.eq(invitation.id.uuid()));
        if let Some(digest) = token_digest {
            update = update.col_expr(invitation::Column::TokenDigest, Expr::value(digest));
        }
        update.exec(tx.txn()).await.map_err(db_error)?;
        Ok(())
    }

    /// The invited email of the invitation whose token has `token_digest`, if any.
    pub async fn invited_email(&self, token_digest: &str) -> Result<Option<Email>> {
        let query =
            invitation::Entity::find().filter(invitation::Column::TokenDigest.eq(token_digest));
        let row = self.find_one(query).await?;
        row.map(|row| invitation_from_row(&row).map(|i| i.email))
            .transpose()
    }

    /// Accepts the pending invitation whose token has `token_digest`: the acceptor (an
    /// existing user with the invited email, or a new user given that email) becomes a
    /// member, in one transaction. Parallel accepts of one token make one membership.
    pub async fn accept_invitation(
        &self,
        token_digest: &str,
        acceptor: &Acceptor,
        key: Option<&RequestKey>,
    ) -> Result<(Membership, User)> {
        let mut tx = self.begin().await?;
        if let Some(key) = key
            && let Some(first) = self.replay_in::<(Membership, User)>(&tx, key).await?
        {
            return Ok(first);
        }
        let found = invitation::Entity::find()
            .filter(invitation::Column::TokenDigest.eq(token_digest))
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .ok_or_else(|| unusable(None))?;
        let target = invitation_from_row(&found)?.target;
        // The target first, then the invitation: every invitation change locks in this
        // order, so two of them never wait on each other.
        let locked = self.lock_target(&tx, target).await?;
        let row = self
            .locked_invitation(&tx, target, Id::from_uuid(found.id))
            .await?;
        if row.token_digest != token_digest {
            return Err(unusable(None));
        }
        let mut invitation = invitation_from_row(&row)?;
        let time = now();
        match invitation.status_at(time) {
            InvitationStatus::Pending => {}
            other => return Err(unusable(Some(other))),
        }
        locked.require_open()?;
        let (user, created_user) = match acceptor {
            Acceptor::Existing(id) => {
                let user = self.user_by_ref(&tx, &super::MemberRef::Id(*id)).await?;
                if user.email != invitation.email {
                    return Err(Error::FailedPrecondition {
                        kind: "INVITED_EMAIL_MISMATCH",
                        subject: format!("users/{id}"),
                        description: "the user's email is not the invited email".into(),
                    });
                }
                (user, false)
            }
            Acceptor::New {
                new_user,
                password_hash,
            } => {
                let mut new_user = new_user.clone();
                new_user.email = invitation.email.clone();
                let user = self
                    .insert_user_in(&tx, &new_user, Some(password_hash.clone()), time)
                    .await
                    .map_err(|err| {
                        if is_unique_violation(&err) {
                            Error::AlreadyExists {
                                resource: "user",
                                field: "email",
                                reason: "EMAIL_TAKEN",
                            }
                        } else {
                            db_error(err)
                        }
                    })?;
                (user, true)
            }
        };
        locked.admit(&user)?;
        // Held like any assignment: a role cannot be deleted under an accept.
        self.assignable_roles(&tx, locked.customer.id, &invitation.roles, "roles")
            .await?;
        let (_, membership) = self
            .insert_member(
                &tx,
                &locked,
                &user,
                invitation.permissions.clone(),
                invitation.roles.clone(),
            )
            .await?;
        invitation.status = InvitationStatus::Accepted;
        invitation.update_time = time;
        invitation.revision += 1;
        self.write_invitation_state(&tx, &invitation, None).await?;
        let customer_id = locked.customer.id;
        if created_user {
            self.append_event(
                &mut tx,
                NewEvent {
                    kind: "user.created",
                    resource_id: user.id,
                    customer_id: None,
                    resource: EventResource::User(user.clone()),
                },
            )
            .await?;
        }
        self.membership_event(&mut tx, "membership.created", &membership, customer_id)
            .await?;
        self.invitation_event(&mut tx, "invitation.accepted", &invitation, customer_id)
            .await?;
        let result = (membership, user);
        if let Some(key) = key {
            self.remember(&tx, key, &result).await?;
        }
        self.commit(tx).await?;
        Ok(result)
    }
}
