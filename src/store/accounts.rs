//! Accounts: creation under a customer's quota, reads, lists, updates, the lifecycle,
//! and the effective limits that other services read on their hot path.

use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, EntityTrait as _, PaginatorTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _, sea_query::Expr,
};

use super::{
    Store, WriteTx, db_error,
    entities::{account, customer, membership, user},
    from_micros, is_unique_violation, now, rows, to_micros,
};
use crate::domain::{
    Error, Result,
    account::{Account, AccountFilter, AccountStatus, NewAccount, ServiceType},
    customer::{Customer, CustomerStatus},
    event::{EventResource, NewEvent},
    id::Id,
    idempotency::RequestKey,
    limits::{EffectiveLimit, Limits, effective},
    membership::{Membership, MembershipStatus, MembershipTarget, PERMISSIONS},
    page::{Page, PageRequest},
    refusals,
    user::{NewUser, User},
};

/// Who owns an account being created.
pub enum AccountOwner {
    /// An existing user.
    User(Id),
    /// A new user made now.
    NewUser {
        new_user: NewUser,
        password_hash: String,
    },
    /// The owner of the account's customer.
    CustomerOwner,
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::internal(format!("stored account JSON: {e}")))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(Error::internal)
}

fn account_from_row(row: &account::Model) -> Result<Account> {
    Ok(Account {
        id: Id::from_uuid(row.id),
        customer_id: Id::from_uuid(row.customer_id),
        external_id: row.external_id.clone(),
        name: row.name.clone(),
        service_type: ServiceType::from_db(&row.service_type)
            .ok_or_else(|| Error::internal("unknown stored service type"))?,
        status: AccountStatus::from_db(&row.status)
            .ok_or_else(|| Error::internal("unknown stored account status"))?,
        settings: from_json(&row.settings)?,
        metadata: from_json(&row.metadata)?,
        owner_user_id: Id::from_uuid(row.owner_user_id),
        create_time: from_micros(row.create_time),
        update_time: from_micros(row.update_time),
        revision: row.revision,
    })
}

fn account_to_row(account: &Account) -> Result<account::ActiveModel> {
    Ok(account::ActiveModel {
        id: Set(account.id.uuid()),
        customer_id: Set(account.customer_id.uuid()),
        external_id: Set(account.external_id.clone()),
        name: Set(account.name.clone()),
        service_type: Set(account.service_type.as_str().to_string()),
        status: Set(account.status.as_str().to_string()),
        settings: Set(json(&account.settings)?),
        metadata: Set(json(&account.metadata)?),
        owner_user_id: Set(account.owner_user_id.uuid()),
        create_time: Set(to_micros(account.create_time)),
        update_time: Set(to_micros(account.update_time)),
        revision: Set(account.revision),
    })
}

fn not_found() -> Error {
    Error::NotFound {
        resource: "account",
    }
}

impl Store {
    /// Creates an account under an ACTIVE customer within its `max_accounts`, with its
    /// owner (new, existing, or the customer's owner) and the owner membership, in one
    /// transaction. The customer's row is held meanwhile, so creates that race for the
    /// last free slot run one after the other, also across instances.
    pub async fn create_account(
        &self,
        customer_id: Id,
        new: &NewAccount,
        owner: &AccountOwner,
        key: Option<&RequestKey>,
    ) -> Result<Account> {
        match self.try_create_account(customer_id, new, owner, key).await {
            Err(error @ Error::AlreadyExists { .. }) if key.is_some() => {
                match self.replay::<Account>(key.expect("checked")).await? {
                    Some(first) => Ok(first),
                    None => Err(error),
                }
            }
            other => other,
        }
    }

    async fn try_create_account(
        &self,
        customer_id: Id,
        new: &NewAccount,
        owner: &AccountOwner,
        key: Option<&RequestKey>,
    ) -> Result<Account> {
        let mut tx = self.begin().await?;
        if let Some(key) = key
            && let Some(first) = self.replay_in::<Account>(&tx, key).await?
        {
            return Ok(first);
        }
        let customer = self.locked_customer(&tx, customer_id, None).await?;
        if customer.status != CustomerStatus::Active {
            return Err(refusals::customer_not_active(&customer));
        }
        if let Some(max) = customer.limits.get("max_accounts") {
            let count = account::Entity::find()
                .filter(account::Column::CustomerId.eq(customer_id.uuid()))
                .count(tx.txn())
                .await
                .map_err(db_error)?;
            if count >= max {
                return Err(Error::QuotaExceeded {
                    subject: format!("customers/{customer_id}"),
                    description: format!(
                        "the customer has {count} accounts and its max_accounts is {max}"
                    ),
                });
            }
        }
        let now = now();
        let (owner_user, created_user) = match owner {
            AccountOwner::User(id) => (self.user_in(&tx, *id).await?, false),
            AccountOwner::CustomerOwner => {
                (self.user_in(&tx, customer.owner_user_id).await?, false)
            }
            AccountOwner::NewUser {
                new_user,
                password_hash,
            } => {
                if !customer.admits_email(&new_user.email) {
                    return Err(refusals::email_not_admitted(&new_user.email, None));
                }
                let user = self
                    .insert_user_in(&tx, new_user, Some(password_hash.clone()), now)
                    .await
                    .map_err(|err| {
                        if is_unique_violation(&err) {
                            Error::AlreadyExists {
                                resource: "user",
                                field: "new_owner.email",
                                reason: "EMAIL_TAKEN",
                            }
                        } else {
                            db_error(err)
                        }
                    })?;
                (user, true)
            }
        };
        if !customer.admits_email(&owner_user.email) {
            return Err(refusals::user_not_admitted(&owner_user));
        }
        let account = Account {
            id: Id::generate(),
            customer_id,
            external_id: new.external_id.clone(),
            name: new.name.clone(),
            service_type: new.service_type,
            status: new.status,
            settings: new.settings.clone(),
            metadata: new.metadata.clone(),
            owner_user_id: owner_user.id,
            create_time: now,
            update_time: now,
            revision: 1,
        };
        account::Entity::insert(account_to_row(&account)?)
            .exec_without_returning(tx.txn())
            .await
            .map_err(db_error)?;
        let membership = Membership {
            user_id: owner_user.id,
            target: MembershipTarget::Account(account.id),
            owner: true,
            permissions: PERMISSIONS.iter().map(|p| p.to_string()).collect(),
            roles: Vec::new(),
            // Created TERMINATED: born into the state the termination cascade leaves.
            status: if account.status == AccountStatus::Terminated {
                MembershipStatus::Inactive
            } else {
                MembershipStatus::Active
            },
            create_time: now,
            revision: 1,
        };
        self.insert_membership(&tx, &membership)
            .await
            .map_err(db_error)?;
        if let Some(key) = key {
            self.remember(&tx, key, &account).await?;
        }
        if created_user {
            self.append_event(
                &mut tx,
                NewEvent {
                    kind: "user.created",
                    resource_id: owner_user.id,
                    customer_id: None,
                    resource: EventResource::User(owner_user.clone()),
                },
            )
            .await?;
        }
        self.account_event(&mut tx, "account.created", &account)
            .await?;
        self.membership_event(&mut tx, "membership.created", &membership, customer_id)
            .await?;
        self.commit(tx).await?;
        Ok(account)
    }

    async fn user_in(&self, tx: &WriteTx, id: Id) -> Result<User> {
        let row = user::Entity::find_by_id(id.uuid())
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .ok_or(Error::NotFound { resource: "user" })?;
        rows::user_from_row(&row)
    }

    pub(crate) async fn account_event(
        &self,
        tx: &mut WriteTx,
        kind: &'static str,
        account: &Account,
    ) -> Result<()> {
        self.append_event(
            tx,
            NewEvent {
                kind,
                resource_id: account.id,
                customer_id: Some(account.customer_id),
                resource: EventResource::Account(Box::new(account.clone())),
            },
        )
        .await
    }

    pub async fn get_account(&self, id: Id) -> Result<Account> {
        let query = account::Entity::find_by_id(id.uuid());
        let row = self.find_one(query).await?.ok_or_else(not_found)?;
        account_from_row(&row)
    }

    /// One keyset page of accounts in creation order.
    pub async fn list_accounts(
        &self,
        filter: &AccountFilter,
        page: PageRequest,
    ) -> Result<Page<Account>> {
        let mut query = account::Entity::find()
            .order_by_asc(account::Column::Id)
            .limit(page.size + 1);
        if let Some(after) = page.after {
            query = query.filter(account::Column::Id.gt(after.uuid()));
        }
        if let Some(customer_id) = filter.customer_id {
            query = query.filter(account::Column::CustomerId.eq(customer_id.uuid()));
        }
        if let Some(status) = filter.status {
            query = query.filter(account::Column::Status.eq(status.as_str()));
        }
        if let Some(service_type) = filter.service_type {
            query = query.filter(account::Column::ServiceType.eq(service_type.as_str()));
        }
        let rows = self.read(|| query.clone().all(&self.db)).await?;
        super::keyset_page(rows, page.size, |row| row.id, |row| account_from_row(&row))
    }

    pub(crate) async fn locked_account(
        &self,
        tx: &WriteTx,
        id: Id,
        expected_revision: Option<i64>,
    ) -> Result<Account> {
        let mut query = account::Entity::find_by_id(id.uuid());
        if self.sqlite_writer.is_none() {
            query = query.lock_exclusive();
        }
        let row = query
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .ok_or_else(not_found)?;
        if expected_revision.is_some_and(|expected| expected != row.revision) {
            return Err(Error::Aborted {
                resource: "account",
            });
        }
        account_from_row(&row)
    }

    /// Writes `updated` over the account if it is still at `updated.revision` (else
    /// `ABORTED`). An account of a TERMINATED customer stays out of ACTIVE; entering
    /// TERMINATED makes the account's memberships inactive, with an event each.
    /// Applies `change` to the account as it is under its row lock (after checking
    /// `expected_revision`, when given), so that concurrent updates without an etag
    /// queue up instead of failing each other.
    pub async fn update_account(
        &self,
        id: Id,
        expected_revision: Option<i64>,
        change: impl Fn(&Account) -> Result<Account>,
    ) -> Result<Account> {
        let mut tx = self.begin().await?;
        let current = self.locked_account(&tx, id, expected_revision).await?;
        let updated = &change(&current)?;
        if updated.status != current.status && updated.status != AccountStatus::Terminated {
            let customer = self.customer_in(&tx, current.customer_id).await?;
            if customer.status == CustomerStatus::Terminated {
                return Err(Error::FailedPrecondition {
                    kind: "CUSTOMER_TERMINATED",
                    subject: format!("customers/{}", customer.id),
                    description:
                        "the account's customer is TERMINATED: its accounts cannot change status"
                            .into(),
                });
            }
        }
        let mut next = updated.clone();
        next.customer_id = current.customer_id;
        next.owner_user_id = current.owner_user_id;
        next.create_time = current.create_time;
        next.update_time = now();
        next.revision = current.revision + 1;
        let result = account::Entity::update_many()
            .set(account_to_row(&next)?)
            .filter(account::Column::Id.eq(next.id.uuid()))
            .filter(account::Column::Revision.eq(current.revision))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        if result.rows_affected != 1 {
            return Err(Error::Aborted {
                resource: "account",
            });
        }
        if current.status != AccountStatus::Terminated && next.status == AccountStatus::Terminated {
            let rows = membership::Entity::find()
                .filter(membership::Column::AccountId.eq(next.id.uuid()))
                .order_by_asc(membership::Column::Id)
                .all(tx.txn())
                .await
                .map_err(db_error)?;
            self.deactivate_memberships(&mut tx, rows, next.customer_id)
                .await?;
        }
        let kind = if current.status != next.status {
            "account.status_changed"
        } else {
            "account.updated"
        };
        self.account_event(&mut tx, kind, &next).await?;
        self.commit(tx).await?;
        Ok(next)
    }

    pub(crate) async fn customer_in(&self, tx: &WriteTx, id: Id) -> Result<Customer> {
        let row = customer::Entity::find_by_id(id.uuid())
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .ok_or(Error::NotFound {
                resource: "customer",
            })?;
        rows::customer_from_row(&row)
    }

    /// Deletes a TERMINATED account with its memberships and invitations, with an
    /// event each.
    pub async fn delete_account(&self, id: Id, expected_revision: Option<i64>) -> Result<()> {
        let mut tx = self.begin().await?;
        let current = self.locked_account(&tx, id, expected_revision).await?;
        if current.status != AccountStatus::Terminated {
            return Err(Error::FailedPrecondition {
                kind: "ACCOUNT_NOT_TERMINATED",
                subject: format!("accounts/{id}"),
                description: format!(
                    "only a TERMINATED account can be deleted; this one is {}",
                    current.status.as_str().to_uppercase()
                ),
            });
        }
        self.delete_accounts_in(&mut tx, vec![current]).await?;
        self.commit(tx).await
    }

    /// Deletes `accounts` with their memberships and invitations, writing
    /// `membership.deleted`, `invitation.deleted` and `account.deleted` events.
    pub(crate) async fn delete_accounts_in(
        &self,
        tx: &mut WriteTx,
        accounts: Vec<Account>,
    ) -> Result<()> {
        for account in accounts {
            let memberships = membership::Entity::find()
                .filter(membership::Column::AccountId.eq(account.id.uuid()))
                .order_by_asc(membership::Column::Id)
                .all(tx.txn())
                .await
                .map_err(db_error)?;
            membership::Entity::delete_many()
                .filter(membership::Column::AccountId.eq(account.id.uuid()))
                .exec(tx.txn())
                .await
                .map_err(db_error)?;
            self.delete_invitations_in(
                tx,
                MembershipTarget::Account(account.id),
                account.customer_id,
            )
            .await?;
            account::Entity::delete_many()
                .filter(account::Column::Id.eq(account.id.uuid()))
                .exec(tx.txn())
                .await
                .map_err(db_error)?;
            for row in memberships {
                let membership = rows::membership_from_row(row)?;
                self.membership_event(tx, "membership.deleted", &membership, account.customer_id)
                    .await?;
            }
            self.account_event(tx, "account.deleted", &account).await?;
        }
        Ok(())
    }

    /// Every account of a customer, oldest first, locked in that order (the lock order
    /// of `write_pending_events`: the customer, then its accounts by id, then their
    /// memberships and invitations), so that a cascade writes each from its current
    /// revision and waits for, rather than deadlocks with, a write to one account.
    pub(crate) async fn accounts_of_customer_in(
        &self,
        tx: &WriteTx,
        customer_id: Id,
    ) -> Result<Vec<Account>> {
        let mut query = account::Entity::find()
            .filter(account::Column::CustomerId.eq(customer_id.uuid()))
            .order_by_asc(account::Column::Id);
        if self.sqlite_writer.is_none() {
            query = query.lock_exclusive();
        }
        let rows = query.all(tx.txn()).await.map_err(db_error)?;
        rows.iter().map(account_from_row).collect()
    }

    /// Makes every account of a terminated customer INACTIVE (a TERMINATED one stays
    /// so), with an `account.status_changed` event each, and their memberships
    /// inactive.
    pub(crate) async fn deactivate_accounts_in(
        &self,
        tx: &mut WriteTx,
        customer_id: Id,
    ) -> Result<()> {
        let time = now();
        for mut account in self.accounts_of_customer_in(tx, customer_id).await? {
            let memberships = membership::Entity::find()
                .filter(membership::Column::AccountId.eq(account.id.uuid()))
                .order_by_asc(membership::Column::Id)
                .all(tx.txn())
                .await
                .map_err(db_error)?;
            self.deactivate_memberships(tx, memberships, customer_id)
                .await?;
            if matches!(
                account.status,
                AccountStatus::Inactive | AccountStatus::Terminated
            ) {
                continue;
            }
            account.status = AccountStatus::Inactive;
            account.update_time = time;
            account.revision += 1;
            account::Entity::update_many()
                .col_expr(
                    account::Column::Status,
                    Expr::value(AccountStatus::Inactive.as_str()),
                )
                .col_expr(account::Column::UpdateTime, Expr::value(to_micros(time)))
                .col_expr(account::Column::Revision, Expr::value(account.revision))
                .filter(account::Column::Id.eq(account.id.uuid()))
                .exec(tx.txn())
                .await
                .map_err(db_error)?;
            self.account_event(tx, "account.status_changed", &account)
                .await?;
        }
        Ok(())
    }

    /// The limits that apply to an account, and the account's customer (which a cache
    /// needs to drop them when the customer changes): one indexed read of the account
    /// joined with its customer.
    pub async fn effective_limits(&self, account_id: Id) -> Result<(Id, Vec<EffectiveLimit>)> {
        let query = account::Entity::find_by_id(account_id.uuid())
            .select_only()
            .column(account::Column::CustomerId)
            .column(account::Column::Settings)
            .column_as(
                Expr::col((customer::Entity, customer::Column::Limits)),
                "customer_limits",
            )
            .join(
                sea_orm::JoinType::InnerJoin,
                account::Entity::belongs_to(customer::Entity)
                    .from(account::Column::CustomerId)
                    .to(customer::Column::Id)
                    .into(),
            );
        let row: Option<(sea_orm::prelude::Uuid, String, String)> =
            self.select_one(query.limit(1).into_tuple()).await?;
        let (customer_id, settings, limits) = row.ok_or_else(not_found)?;
        let settings: Limits = from_json(&settings)?;
        let limits: Limits = from_json(&limits)?;
        Ok((Id::from_uuid(customer_id), effective(&settings, &limits)))
    }
}
