//! Roles of customers: create, read, list, update, delete, and the look-ups that
//! assign them to memberships and invitations.
//!
//! A role is locked whenever it is assigned (shared) or changed or deleted (exclusive),
//! on PostgreSQL with `FOR SHARE` / `FOR UPDATE`; SQLite runs one writer at a time. So
//! a delete that counted no holder cannot race an assignment: the assignment waits for
//! the delete and then finds no role, or the delete waits for the assignment and then
//! counts it.

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait as _, Condition, EntityTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _,
    sea_query::{Expr, ExprTrait as _, LikeExpr},
};

use super::{
    Store, WriteTx, db_error,
    entities::{account, invitation, membership, role},
    from_micros, is_unique_violation, now, to_micros,
};
use crate::domain::{
    Error, Result,
    event::{EventResource, NewEvent},
    id::Id,
    idempotency::RequestKey,
    invitation::InvitationStatus,
    page::{Page, PageRequest},
    role::Role,
    violations::Violations,
};

/// A role to create, validated.
#[derive(Debug, Clone)]
pub struct NewRole {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
}

/// What an update changes; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct RoleChanges {
    pub description: Option<String>,
    pub permissions: Option<Vec<String>>,
}

pub(super) fn role_from_row(row: &role::Model) -> Result<Role> {
    Ok(Role {
        id: Id::from_uuid(row.id),
        customer_id: Id::from_uuid(row.customer_id),
        name: row.name.clone(),
        description: row.description.clone(),
        permissions: serde_json::from_str(&row.permissions).map_err(Error::internal)?,
        create_time: from_micros(row.create_time),
        update_time: from_micros(row.update_time),
        revision: row.revision,
    })
}

fn role_not_found() -> Error {
    Error::NotFound { resource: "role" }
}

fn name_taken() -> Error {
    Error::AlreadyExists {
        resource: "role",
        field: "role.name",
        reason: "ROLE_NAME_TAKEN",
    }
}

/// Whether a stored JSON array of role names holds `name`.
fn holds(stored: &str, name: &str) -> bool {
    serde_json::from_str::<Vec<String>>(stored).is_ok_and(|names| names.iter().any(|n| n == name))
}

impl Store {
    async fn role_event(&self, tx: &mut WriteTx, kind: &'static str, role: &Role) -> Result<()> {
        self.append_event(
            tx,
            NewEvent {
                kind,
                resource_id: role.id,
                customer_id: Some(role.customer_id),
                resource: EventResource::Role(role.clone()),
            },
        )
        .await
    }

    /// Creates a role of `customer_id`, with its event and idempotency record, in one
    /// transaction; a taken name is `ALREADY_EXISTS` (also when a concurrent create
    /// took it first).
    pub async fn create_role(
        &self,
        customer_id: Id,
        new: &NewRole,
        key: Option<&RequestKey>,
    ) -> Result<Role> {
        match self.try_create_role(customer_id, new, key).await {
            Err(error @ Error::AlreadyExists { .. }) if key.is_some() => {
                match self.replay::<Role>(key.expect("checked")).await? {
                    Some(first) => Ok(first),
                    None => Err(error),
                }
            }
            other => other,
        }
    }

    async fn try_create_role(
        &self,
        customer_id: Id,
        new: &NewRole,
        key: Option<&RequestKey>,
    ) -> Result<Role> {
        let mut tx = self.begin().await?;
        if let Some(key) = key
            && let Some(first) = self.replay_in::<Role>(&tx, key).await?
        {
            return Ok(first);
        }
        // Creates of one customer's roles run one at a time.
        self.locked_customer(&tx, customer_id, None).await?;
        let taken = role::Entity::find()
            .filter(role::Column::CustomerId.eq(customer_id.uuid()))
            .filter(role::Column::Name.eq(new.name.as_str()))
            .one(tx.txn())
            .await
            .map_err(db_error)?;
        if taken.is_some() {
            return Err(name_taken());
        }
        let time = now();
        let role = Role {
            id: Id::generate(),
            customer_id,
            name: new.name.clone(),
            description: new.description.clone(),
            permissions: new.permissions.clone(),
            create_time: time,
            update_time: time,
            revision: 1,
        };
        role::Entity::insert(role::ActiveModel {
            id: Set(role.id.uuid()),
            customer_id: Set(customer_id.uuid()),
            name: Set(role.name.clone()),
            description: Set(role.description.clone()),
            permissions: Set(serde_json::to_string(&role.permissions).map_err(Error::internal)?),
            create_time: Set(to_micros(time)),
            update_time: Set(to_micros(time)),
            revision: Set(1),
        })
        .exec_without_returning(tx.txn())
        .await
        .map_err(|err| {
            if is_unique_violation(&err) {
                name_taken()
            } else {
                db_error(err)
            }
        })?;
        self.role_event(&mut tx, "role.created", &role).await?;
        if let Some(key) = key {
            self.remember(&tx, key, &role).await?;
        }
        self.commit(tx).await?;
        Ok(role)
    }

    pub async fn get_role(&self, id: Id) -> Result<Role> {
        let row = self
            .find_one(role::Entity::find_by_id(id.uuid()))
            .await?
            .ok_or_else(role_not_found)?;
        role_from_row(&row)
    }

    /// One keyset page of a customer's roles in creation order; NOT_FOUND for an
    /// unknown customer.
    pub async fn list_roles(&self, customer_id: Id, page: PageRequest) -> Result<Page<Role>> {
        self.get_customer(customer_id).await?;
        let mut query = role::Entity::find()
            .filter(role::Column::CustomerId.eq(customer_id.uuid()))
            .order_by_asc(role::Column::Id)
            .limit(page.size + 1);
        if let Some(after) = page.after {
            query = query.filter(role::Column::Id.gt(after.uuid()));
        }
        let rows = self.read(|| query.clone().all(&self.db)).await?;
        super::keyset_page(rows, page.size, |row| row.id, |row| role_from_row(&row))
    }

    async fn locked_role(
        &self,
        tx: &WriteTx,
        id: Id,
        expected_revision: Option<i64>,
    ) -> Result<role::Model> {
        let mut query = role::Entity::find_by_id(id.uuid());
        if self.sqlite_writer.is_none() {
            query = query.lock_exclusive();
        }
        let row = query
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .ok_or_else(role_not_found)?;
        if expected_revision.is_some_and(|expected| expected != row.revision) {
            return Err(Error::Aborted { resource: "role" });
        }
        Ok(row)
    }

    /// Changes a role's description or permissions, with its event.
    pub async fn update_role(
        &self,
        id: Id,
        changes: &RoleChanges,
        expected_revision: Option<i64>,
    ) -> Result<Role> {
        let mut tx = self.begin().await?;
        let row = self.locked_role(&tx, id, expected_revision).await?;
        let mut role = role_from_row(&row)?;
        if let Some(description) = &changes.description {
            role.description = description.clone();
        }
        if let Some(permissions) = &changes.permissions {
            role.permissions = permissions.clone();
        }
        role.update_time = now();
        role.revision += 1;
        role::Entity::update_many()
            .col_expr(
                role::Column::Description,
                Expr::value(role.description.clone()),
            )
            .col_expr(
                role::Column::Permissions,
                Expr::value(serde_json::to_string(&role.permissions).map_err(Error::internal)?),
            )
            .col_expr(
                role::Column::UpdateTime,
                Expr::value(to_micros(role.update_time)),
            )
            .col_expr(role::Column::Revision, Expr::value(role.revision))
            .filter(role::Column::Id.eq(row.id))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        self.role_event(&mut tx, "role.updated", &role).await?;
        self.commit(tx).await?;
        Ok(role)
    }

    /// Deletes a role that no membership and no pending invitation holds; else
    /// FAILED_PRECONDITION naming how many do.
    pub async fn delete_role(&self, id: Id, expected_revision: Option<i64>) -> Result<()> {
        let mut tx = self.begin().await?;
        let row = self.locked_role(&tx, id, expected_revision).await?;
        let role = role_from_row(&row)?;
        let (memberships, invitations) = self.role_holders(&tx, &role).await?;
        if memberships + invitations > 0 {
            return Err(Error::FailedPrecondition {
                kind: "ROLE_IN_USE",
                subject: format!("roles/{id}"),
                description: format!(
                    "the role is held by {memberships} membership(s) and {invitations} pending \
                     invitation(s); take it from them first"
                ),
            });
        }
        role::Entity::delete_many()
            .filter(role::Column::Id.eq(row.id))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        self.role_event(&mut tx, "role.deleted", &role).await?;
        self.commit(tx).await
    }

    /// How many memberships and pending invitations (of the role's customer and of its
    /// accounts) hold `role`.
    async fn role_holders(&self, tx: &WriteTx, role: &Role) -> Result<(usize, usize)> {
        let accounts: Vec<sea_orm::prelude::Uuid> = account::Entity::find()
            .select_only()
            .column(account::Column::Id)
            .filter(account::Column::CustomerId.eq(role.customer_id.uuid()))
            .into_tuple()
            .all(tx.txn())
            .await
            .map_err(db_error)?;
        // A prefilter (`_` escaped, the one LIKE wildcard a name may hold); `holds`
        // decides.
        let pattern = format!("%\"{}\"%", role.name.replace('_', "\\_"));
        let like = |column: Expr| column.like(LikeExpr::new(pattern.clone()).escape('\\'));
        let member_rows: Vec<String> = membership::Entity::find()
            .select_only()
            .column(membership::Column::Roles)
            .filter(
                Condition::any()
                    .add(membership::Column::CustomerId.eq(role.customer_id.uuid()))
                    .add(membership::Column::AccountId.is_in(accounts.clone())),
            )
            .filter(like(Expr::col((
                membership::Entity,
                membership::Column::Roles,
            ))))
            .into_tuple()
            .all(tx.txn())
            .await
            .map_err(db_error)?;
        let invitation_rows: Vec<String> = invitation::Entity::find()
            .select_only()
            .column(invitation::Column::Roles)
            .filter(
                Condition::any()
                    .add(invitation::Column::CustomerId.eq(role.customer_id.uuid()))
                    .add(invitation::Column::AccountId.is_in(accounts)),
            )
            .filter(invitation::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .filter(like(Expr::col((
                invitation::Entity,
                invitation::Column::Roles,
            ))))
            .into_tuple()
            .all(tx.txn())
            .await
            .map_err(db_error)?;
        let count = |rows: &[String]| rows.iter().filter(|r| holds(r, &role.name)).count();
        Ok((count(&member_rows), count(&invitation_rows)))
    }

    /// The roles of `customer_id` named `names`, held (shared) until `tx` ends so none
    /// can be deleted meanwhile; each unknown name is a violation at `{field}[i]`.
    pub(crate) async fn assignable_roles(
        &self,
        tx: &WriteTx,
        customer_id: Id,
        names: &[String],
        field: &str,
    ) -> Result<Vec<Role>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = role::Entity::find()
            .filter(role::Column::CustomerId.eq(customer_id.uuid()))
            .filter(role::Column::Name.is_in(names.iter().cloned()))
            .order_by_asc(role::Column::Id);
        if self.sqlite_writer.is_none() {
            query = query.lock_shared();
        }
        let rows = query.all(tx.txn()).await.map_err(db_error)?;
        let mut violations = Violations::new();
        for (i, name) in names.iter().enumerate() {
            if !rows.iter().any(|row| &row.name == name) {
                violations.add(
                    format!("{field}[{i}]"),
                    format!("`{name}` is not a role of the customer"),
                );
            }
        }
        violations.finish()?;
        rows.iter().map(role_from_row).collect()
    }

    /// The permissions and ids of the roles of `customer_id` named `names` (those that
    /// exist), outside a transaction: what an access decision adds to a membership.
    pub async fn role_grants(&self, customer_id: Id, names: &[String]) -> Result<Vec<Role>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let query = role::Entity::find()
            .filter(role::Column::CustomerId.eq(customer_id.uuid()))
            .filter(role::Column::Name.is_in(names.iter().cloned()));
        let rows = self.read(|| query.clone().all(&self.db)).await?;
        rows.iter().map(role_from_row).collect()
    }

    /// Deletes every role of a customer being deleted, with an event each.
    pub(crate) async fn delete_roles_of(&self, tx: &mut WriteTx, customer_id: Id) -> Result<()> {
        let rows = role::Entity::find()
            .filter(role::Column::CustomerId.eq(customer_id.uuid()))
            .all(tx.txn())
            .await
            .map_err(db_error)?;
        role::Entity::delete_many()
            .filter(role::Column::CustomerId.eq(customer_id.uuid()))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        for row in rows {
            let role = role_from_row(&row)?;
            self.role_event(tx, "role.deleted", &role).await?;
        }
        Ok(())
    }
}
