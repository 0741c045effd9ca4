//! Members of customers and accounts: adding, changing permissions, moving ownership,
//! removing, listing, and the reads behind `CheckAccess`.
//!
//! Every change locks its target's row first (the customer or the account), so changes
//! to one target's members run one at a time, also across instances; the schema's
//! partial unique index keeps a second owner out whatever the code does.

use sea_orm::{
    ColumnTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _, QuerySelect as _,
    Statement, sea_query::Expr,
};

use super::sessions::SessionsOf;
use super::{
    Store, WriteTx, db_error,
    entities::{account, customer, membership, user},
    is_unique_violation, now, rows, to_micros,
};
use crate::domain::session::RevokeReason;
use crate::domain::{
    Error, Result,
    account::{Account, AccountStatus},
    customer::{Customer, CustomerStatus},
    id::Id,
    membership::{
        AccessFacts, Grant, Membership, MembershipStatus, MembershipTarget, PERMISSIONS,
        ResourceKind, Standing,
    },
    page::{Page, PageRequest},
    refusals,
    role::effective_permissions,
    user::{Email, User, UserStatus},
};

/// How a request names the user to add.
#[derive(Debug, Clone)]
pub enum MemberRef {
    Id(Id),
    Email(Email),
}

/// A membership target, locked for the length of a transaction.
pub(crate) struct LockedTarget {
    pub target: MembershipTarget,
    /// The customer itself, or the account's customer.
    pub customer: Customer,
    pub account: Option<Account>,
}

impl LockedTarget {
    pub fn owner_user_id(&self) -> Id {
        match &self.account {
            Some(account) => account.owner_user_id,
            None => self.customer.owner_user_id,
        }
    }

    /// New members and invitations need an ACTIVE target (and an ACTIVE customer).
    pub fn require_open(&self) -> Result<()> {
        if self.customer.status != CustomerStatus::Active {
            return Err(refusals::customer_not_active(&self.customer));
        }
        if let Some(account) = &self.account
            && account.status != AccountStatus::Active
        {
            return Err(Error::FailedPrecondition {
                kind: "ACCOUNT_NOT_ACTIVE",
                subject: format!("accounts/{}", account.id),
                description: format!(
                    "the account is {}: nothing new can be created under it",
                    account.status.as_str().to_uppercase()
                ),
            });
        }
        Ok(())
    }

    /// The email rule of the customer's `allowed_domains_registration`.
    pub fn admit(&self, user: &User) -> Result<()> {
        self.admit_email(&user.email, Some(user.id))
    }

    pub fn admit_email(&self, email: &Email, user_id: Option<Id>) -> Result<()> {
        if self.customer.admits_email(email) {
            return Ok(());
        }
        Err(refusals::email_not_admitted(email, user_id))
    }
}

fn target_filter(target: MembershipTarget) -> sea_orm::Condition {
    match target {
        MembershipTarget::Customer(id) => {
            sea_orm::Condition::all().add(membership::Column::CustomerId.eq(id.uuid()))
        }
        MembershipTarget::Account(id) => {
            sea_orm::Condition::all().add(membership::Column::AccountId.eq(id.uuid()))
        }
    }
}

fn membership_not_found() -> Error {
    Error::NotFound {
        resource: "membership",
    }
}

fn all_permissions() -> Vec<String> {
    PERMISSIONS.iter().map(|p| p.to_string()).collect()
}

impl Store {
    /// Locks `target`'s row (and reads its customer) inside `tx`.
    pub(crate) async fn lock_target(
        &self,
        tx: &WriteTx,
        target: MembershipTarget,
    ) -> Result<LockedTarget> {
        match target {
            MembershipTarget::Customer(id) => Ok(LockedTarget {
                target,
                customer: self.locked_customer(tx, id, None).await?,
                account: None,
            }),
            MembershipTarget::Account(id) => {
                let account = self.locked_account(tx, id, None).await?;
                let customer = self.customer_in(tx, account.customer_id).await?;
                Ok(LockedTarget {
                    target,
                    customer,
                    account: Some(account),
                })
            }
        }
    }

    async fn member_row(
        &self,
        tx: &WriteTx,
        target: MembershipTarget,
        user_id: Id,
    ) -> Result<Option<membership::Model>> {
        membership::Entity::find()
            .filter(target_filter(target))
            .filter(membership::Column::UserId.eq(user_id.uuid()))
            .one(tx.txn())
            .await
            .map_err(db_error)
    }

    pub(crate) async fn user_by_ref(&self, tx: &WriteTx, member: &MemberRef) -> Result<User> {
        let query = match member {
            MemberRef::Id(id) => user::Entity::find_by_id(id.uuid()),
            MemberRef::Email(email) => {
                user::Entity::find().filter(user::Column::Email.eq(email.as_str()))
            }
        };
        let row = query
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .ok_or(Error::NotFound { resource: "user" })?;
        rows::user_from_row(&row)
    }

    /// Inserts a new active membership of `user` in a locked, open target; a second
    /// membership of the same user is `ALREADY_EXISTS`.
    pub(crate) async fn insert_member(
        &self,
        tx: &WriteTx,
        locked: &LockedTarget,
        user: &User,
        permissions: Vec<String>,
        roles: Vec<String>,
    ) -> Result<(membership::Model, Membership)> {
        if self.member_row(tx, locked.target, user.id).await?.is_some() {
            return Err(member_exists());
        }
        let now = now();
        let membership = Membership {
            user_id: user.id,
            target: locked.target,
            owner: false,
            permissions,
            roles,
            status: MembershipStatus::Active,
            create_time: now,
            revision: 1,
        };
        self.insert_membership(tx, &membership)
            .await
            .map_err(|err| {
                if is_unique_violation(&err) {
                    member_exists()
                } else {
                    db_error(err)
                }
            })?;
        let row = self
            .member_row(tx, locked.target, user.id)
            .await?
            .ok_or_else(|| Error::internal("membership missing after insert"))?;
        Ok((row, membership))
    }

    /// Makes `user_id` a member of `target` (ACTIVE target and customer, allowed email
    /// domain); with `owner`, ownership moves to them in the same transaction.
    pub async fn add_member(
        &self,
        target: MembershipTarget,
        member: &MemberRef,
        permissions: Vec<String>,
        roles: Vec<String>,
        owner: bool,
    ) -> Result<Membership> {
        let mut tx = self.begin().await?;
        let mut locked = self.lock_target(&tx, target).await?;
        locked.require_open()?;
        let user = self.user_by_ref(&tx, member).await?;
        locked.admit(&user)?;
        self.assignable_roles(&tx, locked.customer.id, &roles, "roles")
            .await?;
        let mut roles = roles;
        roles.sort_unstable();
        let (row, membership) = self
            .insert_member(&tx, &locked, &user, permissions, roles)
            .await?;
        self.membership_event(
            &mut tx,
            "membership.created",
            &membership,
            locked.customer.id,
        )
        .await?;
        let result = if owner {
            self.transfer_ownership(&mut tx, &mut locked, row).await?
        } else {
            membership
        };
        self.commit(tx).await?;
        Ok(result)
    }

    /// Moves the ownership of a locked target to the member of `row`: the old owner
    /// keeps every permission as a plain member; the target's `owner_user_id` follows.
    /// Writes the events of every change.
    async fn transfer_ownership(
        &self,
        tx: &mut WriteTx,
        locked: &mut LockedTarget,
        row: membership::Model,
    ) -> Result<Membership> {
        let customer_id = locked.customer.id;
        if row.owner {
            return rows::membership_from_row(row);
        }
        let time = now();
        let micros = to_micros(time);
        let old = membership::Entity::find()
            .filter(target_filter(locked.target))
            .filter(membership::Column::Owner.eq(true))
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .ok_or_else(|| Error::internal("a target without an owner"))?;
        // The old owner first: the partial unique index allows one owner at a time.
        membership::Entity::update_many()
            .col_expr(membership::Column::Owner, Expr::value(false))
            .col_expr(
                membership::Column::Permissions,
                Expr::value(serde_json::to_string(&all_permissions()).map_err(Error::internal)?),
            )
            .col_expr(membership::Column::UpdateTime, Expr::value(micros))
            .col_expr(membership::Column::Revision, Expr::value(old.revision + 1))
            .filter(membership::Column::Id.eq(old.id))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        membership::Entity::update_many()
            .col_expr(membership::Column::Owner, Expr::value(true))
            .col_expr(
                membership::Column::Permissions,
                Expr::value(serde_json::to_string(&all_permissions()).map_err(Error::internal)?),
            )
            .col_expr(membership::Column::UpdateTime, Expr::value(micros))
            .col_expr(membership::Column::Revision, Expr::value(row.revision + 1))
            .filter(membership::Column::Id.eq(row.id))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        let mut previous = rows::membership_from_row(old)?;
        previous.owner = false;
        previous.permissions = all_permissions();
        previous.revision += 1;
        let mut next = rows::membership_from_row(row)?;
        next.owner = true;
        next.permissions = all_permissions();
        next.revision += 1;

        let new_owner = next.user_id;
        match &mut locked.account {
            Some(account) => {
                account.owner_user_id = new_owner;
                account.update_time = time;
                account.revision += 1;
                account::Entity::update_many()
                    .col_expr(account::Column::OwnerUserId, Expr::value(new_owner.uuid()))
                    .col_expr(account::Column::UpdateTime, Expr::value(micros))
                    .col_expr(account::Column::Revision, Expr::value(account.revision))
                    .filter(account::Column::Id.eq(account.id.uuid()))
                    .exec(tx.txn())
                    .await
                    .map_err(db_error)?;
            }
            None => {
                let customer = &mut locked.customer;
                customer.owner_user_id = new_owner;
                customer.update_time = time;
                customer.revision += 1;
                customer::Entity::update_many()
                    .col_expr(customer::Column::OwnerUserId, Expr::value(new_owner.uuid()))
                    .col_expr(customer::Column::UpdateTime, Expr::value(micros))
                    .col_expr(customer::Column::Revision, Expr::value(customer.revision))
                    .filter(customer::Column::Id.eq(customer.id.uuid()))
                    .exec(tx.txn())
                    .await
                    .map_err(db_error)?;
            }
        }
        self.membership_event(tx, "membership.updated", &previous, customer_id)
            .await?;
        self.membership_event(tx, "membership.updated", &next, customer_id)
            .await?;
        match &locked.account {
            Some(account) => {
                self.account_event(tx, "account.updated", account).await?;
            }
            None => {
                let customer = locked.customer.clone();
                self.customer_event(tx, "customer.updated", &customer)
                    .await?;
            }
        }
        Ok(next)
    }

    /// Replaces a member's permissions and, with `make_owner`, moves ownership to them.
    pub async fn update_member(
        &self,
        target: MembershipTarget,
        user_id: Id,
        permissions: Vec<String>,
        roles: Vec<String>,
        make_owner: bool,
        expected_revision: Option<i64>,
    ) -> Result<Membership> {
        let mut tx = self.begin().await?;
        let mut locked = self.lock_target(&tx, target).await?;
        self.assignable_roles(&tx, locked.customer.id, &roles, "roles")
            .await?;
        let mut roles = roles;
        roles.sort_unstable();
        let row = self
            .member_row(&tx, target, user_id)
            .await?
            .ok_or_else(membership_not_found)?;
        if expected_revision.is_some_and(|expected| expected != row.revision) {
            return Err(Error::Aborted {
                resource: "membership",
            });
        }
        let customer_id = locked.customer.id;
        // An owner holds, and is shown with, every permission.
        let permissions = if row.owner || make_owner {
            all_permissions()
        } else {
            permissions
        };
        let permissions_json = serde_json::to_string(&permissions).map_err(Error::internal)?;
        let roles_json = serde_json::to_string(&roles).map_err(Error::internal)?;
        let mut membership = rows::membership_from_row(row.clone())?;
        if membership.permissions != permissions || membership.roles != roles {
            membership::Entity::update_many()
                .col_expr(
                    membership::Column::Permissions,
                    Expr::value(permissions_json),
                )
                .col_expr(membership::Column::Roles, Expr::value(roles_json))
                .col_expr(
                    membership::Column::UpdateTime,
                    Expr::value(to_micros(now())),
                )
                .col_expr(membership::Column::Revision, Expr::value(row.revision + 1))
                .filter(membership::Column::Id.eq(row.id))
                .exec(tx.txn())
                .await
                .map_err(db_error)?;
            membership.permissions = permissions;
            membership.roles = roles;
            membership.revision += 1;
            self.membership_event(&mut tx, "membership.updated", &membership, customer_id)
                .await?;
        }
        if make_owner && !membership.owner {
            if membership.status != MembershipStatus::Active {
                return Err(Error::FailedPrecondition {
                    kind: "MEMBERSHIP_INACTIVE",
                    subject: format!("users/{user_id}"),
                    description: "an inactive member cannot become the owner".into(),
                });
            }
            let row = self
                .member_row(&tx, target, user_id)
                .await?
                .ok_or_else(membership_not_found)?;
            membership = self.transfer_ownership(&mut tx, &mut locked, row).await?;
        }
        self.commit(tx).await?;
        Ok(membership)
    }

    /// Removes a member; the owner cannot be removed.
    pub async fn remove_member(
        &self,
        target: MembershipTarget,
        user_id: Id,
        expected_revision: Option<i64>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let locked = self.lock_target(&tx, target).await?;
        let row = self
            .member_row(&tx, target, user_id)
            .await?
            .ok_or_else(membership_not_found)?;
        if expected_revision.is_some_and(|expected| expected != row.revision) {
            return Err(Error::Aborted {
                resource: "membership",
            });
        }
        if row.owner {
            return Err(Error::FailedPrecondition {
                kind: "OWNER_CANNOT_BE_REMOVED",
                subject: format!("users/{user_id}"),
                description:
                    "the owner cannot be removed; move the ownership to another member first".into(),
            });
        }
        membership::Entity::delete_many()
            .filter(membership::Column::Id.eq(row.id))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        let membership = rows::membership_from_row(row)?;
        self.membership_event(
            &mut tx,
            "membership.deleted",
            &membership,
            locked.customer.id,
        )
        .await?;
        if let MembershipTarget::Customer(customer) = target {
            self.revoke_sessions_in(
                &mut tx,
                SessionsOf::Member {
                    user: user_id,
                    customer,
                },
                RevokeReason::MembershipRemoved,
            )
            .await?;
        }
        self.commit(tx).await
    }

    /// One keyset page of a target's memberships in creation order. NOT_FOUND when the
    /// target does not exist.
    pub async fn list_members(
        &self,
        target: MembershipTarget,
        page: PageRequest,
    ) -> Result<Page<Membership>> {
        let exists = match target {
            MembershipTarget::Customer(id) => {
                let query = customer::Entity::find_by_id(id.uuid())
                    .select_only()
                    .column(customer::Column::Id);
                self.select_one(query.limit(1).into_tuple::<sea_orm::prelude::Uuid>())
                    .await?
                    .is_some()
            }
            MembershipTarget::Account(id) => account::Entity::find_by_id(id.uuid())
                .select_only()
                .column(account::Column::Id)
                .into_tuple::<sea_orm::prelude::Uuid>()
                .one(&self.db)
                .await
                .map_err(db_error)?
                .is_some(),
        };
        if !exists {
            return Err(Error::NotFound {
                resource: match target {
                    MembershipTarget::Customer(_) => "customer",
                    MembershipTarget::Account(_) => "account",
                },
            });
        }
        let mut query = membership::Entity::find()
            .filter(target_filter(target))
            .order_by_asc(membership::Column::Id)
            .limit(page.size + 1);
        if let Some(after) = page.after {
            query = query.filter(membership::Column::Id.gt(after.uuid()));
        }
        let rows = self.read(|| query.clone().all(&self.db)).await?;
        super::keyset_page(rows, page.size, |row| row.id, rows::membership_from_row)
    }

    /// What `CheckAccess` decides on, in one read: the user, the target and its
    /// customer, and the user's memberships of both, joined on their indexes. Also the
    /// target's customer, which a cache of the facts depends on.
    pub async fn access_facts(
        &self,
        user_id: Id,
        target: MembershipTarget,
    ) -> Result<(Id, AccessFacts)> {
        let backend = self.backend();
        let (sql, values): (&str, Vec<sea_orm::Value>) = match target {
            MembershipTarget::Customer(id) => (
                "SELECT c.id AS customer_id, u.status AS user_status, c.status AS customer_status, \
                        NULL AS account_status, \
                        m.owner AS m_owner, m.permissions AS m_permissions, m.roles AS m_roles, \
                        m.status AS m_status, \
                        NULL AS cm_owner, NULL AS cm_status \
                 FROM customers c \
                 JOIN users u ON u.id = $1 \
                 LEFT JOIN memberships m ON m.customer_id = c.id AND m.user_id = u.id \
                 WHERE c.id = $2",
                vec![user_id.uuid().into(), id.uuid().into()],
            ),
            MembershipTarget::Account(id) => (
                "SELECT c.id AS customer_id, u.status AS user_status, c.status AS customer_status, \
                        a.status AS account_status, \
                        m.owner AS m_owner, m.permissions AS m_permissions, m.roles AS m_roles, \
                        m.status AS m_status, \
                        cm.owner AS cm_owner, cm.status AS cm_status \
                 FROM accounts a \
                 JOIN customers c ON c.id = a.customer_id \
                 JOIN users u ON u.id = $1 \
                 LEFT JOIN memberships m ON m.account_id = a.id AND m.user_id = u.id \
                 LEFT JOIN memberships cm ON cm.customer_id = c.id AND cm.user_id = u.id \
                 WHERE a.id = $2",
                vec![user_id.uuid().into(), id.uuid().into()],
            ),
        };
        let statement = Statement::from_sql_and_values(backend, sql, values);
        let row = self.query_one(statement).await?;
        let Some(row) = row else {
            return Err(self.missing_of_access(user_id, target).await);
        };
        let text = |column: &str| -> Result<Option<String>> {
            row.try_get::<Option<String>>("", column).map_err(db_error)
        };
        let flag = |column: &str| -> Result<Option<bool>> {
            row.try_get::<Option<bool>>("", column).map_err(db_error)
        };
        let standing = |status: &str| match CustomerStatus::from_db(status) {
            Some(CustomerStatus::Active) => Standing::Active,
            Some(CustomerStatus::Suspended) => Standing::Suspended,
            _ => Standing::Closed,
        };
        let grant = |owner: Option<bool>, permissions: Option<String>, status: Option<String>| {
            let owner = owner?;
            Some(Grant {
                active: status.as_deref() == Some(MembershipStatus::Active.as_str()),
                owner,
                permissions: permissions
                    .and_then(|p| serde_json::from_str(&p).ok())
                    .unwrap_or_default(),
            })
        };
        let user_status = text("user_status")?.unwrap_or_default();
        let customer_id: sea_orm::prelude::Uuid =
            row.try_get("", "customer_id").map_err(db_error)?;
        let customer_id = Id::from_uuid(customer_id);
        let role_names: Vec<String> = text("m_roles")?
            .and_then(|names| serde_json::from_str(&names).ok())
            .unwrap_or_default();
        let mut member = grant(flag("m_owner")?, text("m_permissions")?, text("m_status")?);
        let mut role_ids = Vec::new();
        if let Some(member) = &mut member
            && !role_names.is_empty()
        {
            let roles = self.role_grants(customer_id, &role_names).await?;
            member.permissions = effective_permissions(
                &member.permissions,
                roles.iter().map(|role| role.permissions.as_slice()),
            );
            role_ids = roles.iter().map(|role| role.id).collect();
        }
        let facts = AccessFacts {
            user_active: UserStatus::from_db(&user_status) == Some(UserStatus::Active),
            customer: standing(&text("customer_status")?.unwrap_or_default()),
            account: text("account_status")?.map(|status| standing(&status)),
            member,
            customer_member: grant(flag("cm_owner")?, None, text("cm_status")?),
            role_ids,
        };
        Ok((customer_id, facts))
    }

    /// Up to `limit` ids after `after`, in id order, of the customers (the user's
    /// customer memberships) or accounts (the user's account memberships, and every
    /// account of a customer the user is a member of, whose owner may act on it) that an
    /// access decision may allow. A superset: each is then decided like `CheckAccess`.
    pub async fn access_candidates(
        &self,
        user_id: Id,
        kind: ResourceKind,
        after: Option<Id>,
        limit: u64,
    ) -> Result<Vec<Id>> {
        let after = after.map(|id| id.uuid()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = match kind {
            ResourceKind::Customer => {
                "SELECT m.customer_id AS id FROM memberships m \
                 WHERE m.user_id = $1 AND m.customer_id IS NOT NULL AND m.customer_id > $2 \
                 ORDER BY m.customer_id LIMIT $3"
            }
            ResourceKind::Account => {
                "SELECT id FROM ( \
                   SELECT m.account_id AS id FROM memberships m \
                   WHERE m.user_id = $1 AND m.account_id IS NOT NULL AND m.account_id > $2 \
                   UNION \
                   SELECT a.id AS id FROM memberships cm JOIN accounts a ON a.customer_id = cm.customer_id \
                   WHERE cm.user_id = $1 AND cm.owner AND a.id > $2 \
                 ) candidates ORDER BY id LIMIT $3"
            }
        };
        let statement = Statement::from_sql_and_values(
            self.backend(),
            sql,
            vec![user_id.uuid().into(), after.into(), limit.into()],
        );
        self.ids(statement).await
    }

    /// The customers of which the user holds the owner membership (of any status):
    /// their accounts are the user's account candidates.
    pub async fn owned_customer_ids(&self, user_id: Id) -> Result<Vec<Id>> {
        let statement = Statement::from_sql_and_values(
            self.backend(),
            "SELECT customer_id AS id FROM memberships \
             WHERE user_id = $1 AND owner AND customer_id IS NOT NULL",
            vec![user_id.uuid().into()],
        );
        self.ids(statement).await
    }

    /// The `id` column of every row `statement` reads.
    async fn ids(&self, statement: Statement) -> Result<Vec<Id>> {
        let rows = self
            .read(|| sea_orm::ConnectionTrait::query_all_raw(&self.db, statement.clone()))
            .await?;
        rows.iter()
            .map(|row| {
                row.try_get::<sea_orm::prelude::Uuid>("", "id")
                    .map(Id::from_uuid)
                    .map_err(db_error)
            })
            .collect()
    }

    /// Which of a `CheckAccess`'s user and target is missing.
    async fn missing_of_access(&self, user_id: Id, target: MembershipTarget) -> Error {
        match self.get_user(user_id).await {
            Err(error) => error,
            Ok(_) => Error::NotFound {
                resource: match target {
                    MembershipTarget::Customer(_) => "customer",
                    MembershipTarget::Account(_) => "account",
                },
            },
        }
    }
}

fn member_exists() -> Error {
    Error::AlreadyExists {
        resource: "membership",
        field: "user_id",
        reason: "MEMBERSHIP_EXISTS",
    }
}
