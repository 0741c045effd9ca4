//! Customers: creation with their owner, lookups, lists, updates and the lifecycle.

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait as _, Condition, DbErr, EntityTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _,
    sea_query::{Expr, LikeExpr},
};
use serde::Serialize;

use super::sessions::SessionsOf;
use super::{
    Store, WriteTx, db_error,
    entities::{customer, membership, user},
    is_unique_violation, now, rows, to_micros,
};
use crate::domain::session::RevokeReason;
use crate::domain::{
    Error, Result,
    customer::{
        Customer, CustomerFilter, CustomerKey, CustomerStatus, NewCustomer, SubdomainChoice,
        names::collision_subdomain, names::generate_customer_key,
    },
    event::{EventResource, NewEvent},
    id::Id,
    idempotency::RequestKey,
    membership::{Membership, MembershipStatus, MembershipTarget, PERMISSIONS},
    page::{Page, PageRequest},
    refusals,
    user::{NewUser, User},
};

/// Who owns a customer being created.
pub enum CustomerOwner {
    /// An existing user.
    User(Id),
    /// The user with the customer's email if one exists (their password untouched),
    /// else a new user from `new_user` with `password_hash`.
    ByEmail {
        new_user: NewUser,
        password_hash: Option<String>,
    },
}

/// How often a write that lost a uniqueness race to a concurrent one is tried again;
/// the next try sees the winner's committed row and answers precisely.
const RACE_RETRIES: usize = 5;

/// A write that hit a unique index another transaction filled after our checks.
enum Attempt<T> {
    Done(T),
    LostRace,
}

fn json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(Error::internal)
}

fn customer_to_row(customer: &Customer) -> Result<customer::ActiveModel> {
    Ok(customer::ActiveModel {
        id: Set(customer.id.uuid()),
        external_id: Set(customer.external_id.clone()),
        tenant_id: Set(customer.tenant_id.clone()),
        customer_key: Set(customer.customer_key.clone()),
        customer_prefix: Set(customer.customer_prefix.clone()),
        status: Set(customer.status.as_str().to_string()),
        email: Set(customer.email.as_str().to_string()),
        first_name: Set(customer.first_name.clone()),
        last_name: Set(customer.last_name.clone()),
        company_name: Set(customer.company_name.clone()),
        first_name_lower: Set(customer.first_name.to_lowercase()),
        last_name_lower: Set(customer.last_name.to_lowercase()),
        company_name_lower: Set(customer.company_name.to_lowercase()),
        customer_type: Set(customer.customer_type.as_str().to_string()),
        hostname: Set(customer.hostname.clone()),
        subdomain: Set(customer.subdomain.clone()),
        country: Set(customer.country.clone()),
        currency: Set(customer.currency.clone()),
        language: Set(customer.language.clone()),
        delinquent: Set(customer.delinquent),
        allowed_domains_origins: Set(json(&customer.allowed_domains_origins)?),
        allowed_domains_registration: Set(json(&customer.allowed_domains_registration)?),
        settings: Set(json(&customer.settings)?),
        metadata: Set(json(&customer.metadata)?),
        limits: Set(json(&customer.limits)?),
        addresses: Set(json(&customer.addresses)?),
        telephones: Set(json(&customer.telephones)?),
        legal_documents: Set(json(&customer.legal_documents)?),
        owner_user_id: Set(customer.owner_user_id.uuid()),
        create_time: Set(to_micros(customer.create_time)),
        update_time: Set(to_micros(customer.update_time)),
        revision: Set(customer.revision),
    })
}

/// The unique values of a customer, for the checks before a write.
struct UniqueValues<'a> {
    email: &'a str,
    subdomain: &'a str,
    hostname: Option<&'a str>,
    external_id: Option<&'a str>,
}

impl Store {
    /// Creates a customer, its owner (an existing user or a new one) and the owner
    /// membership, with their events and the idempotency record, in one transaction.
    /// A generated subdomain that is taken, also by a concurrent create, becomes
    /// `<slug>-<customer_key>`.
    pub async fn create_customer(
        &self,
        new: &NewCustomer,
        owner: &CustomerOwner,
        key: Option<&RequestKey>,
    ) -> Result<Customer> {
        for _ in 0..RACE_RETRIES {
            match self.try_create_customer(new, owner, key).await {
                Ok(Attempt::Done(customer)) => return Ok(customer),
                Ok(Attempt::LostRace) => continue,
                // A retry of this very request may have committed since our first look:
                // its result is the answer, not a conflict with ourselves.
                Err(error @ Error::AlreadyExists { .. }) if key.is_some() => {
                    return match self.replay::<Customer>(key.expect("checked")).await? {
                        Some(first) => Ok(first),
                        None => Err(error),
                    };
                }
                Err(error) => return Err(error),
            }
        }
        // Still losing after several tries: report it as a conflict, never as INTERNAL.
        match key {
            Some(key) => self
                .replay::<Customer>(key)
                .await?
                .ok_or_else(|| conflict_error("email")),
            None => Err(conflict_error("email")),
        }
    }

    async fn try_create_customer(
        &self,
        new: &NewCustomer,
        owner: &CustomerOwner,
        key: Option<&RequestKey>,
    ) -> Result<Attempt<Customer>> {
        let mut tx = self.begin().await?;
        if let Some(key) = key
            && let Some(first) = self.replay_in::<Customer>(&tx, key).await?
        {
            return Ok(Attempt::Done(first));
        }
        let now = now();

        let (owner_user, created_user) = match self.customer_owner(&tx, new, owner, now).await? {
            Attempt::Done(found) => found,
            Attempt::LostRace => return Ok(Attempt::LostRace),
        };
        if !new.admits_email(&owner_user.email) {
            return Err(refusals::user_not_admitted(&owner_user));
        }

        let mut customer_key = generate_customer_key();
        let subdomain = match &new.subdomain {
            SubdomainChoice::Given(subdomain) => subdomain.clone(),
            SubdomainChoice::Generated(slug) => {
                if self.subdomain_taken(&tx, slug, None).await? {
                    // The key is unique; so is the subdomain built from it, unless a
                    // caller chose that exact name: then draw another key.
                    let mut candidate = collision_subdomain(slug, &customer_key);
                    while self.subdomain_taken(&tx, &candidate, None).await? {
                        customer_key = generate_customer_key();
                        candidate = collision_subdomain(slug, &customer_key);
                    }
                    candidate
                } else {
                    slug.clone()
                }
            }
        };
        let checked = self
            .check_unique(
                &tx,
                None,
                &UniqueValues {
                    email: new.email.as_str(),
                    subdomain: &subdomain,
                    hostname: new.hostname.as_deref(),
                    external_id: new.external_id.as_deref(),
                },
            )
            .await;
        match checked {
            // A concurrent create took the generated slug since we looked: the next try
            // sees it and takes the collision form.
            Err(Error::AlreadyExists {
                field: "subdomain", ..
            }) if matches!(new.subdomain, SubdomainChoice::Generated(_)) => {
                return Ok(Attempt::LostRace);
            }
            other => other?,
        }

        let customer = Customer {
            id: Id::generate(),
            external_id: new.external_id.clone(),
            tenant_id: new.tenant_id.clone(),
            customer_key,
            customer_prefix: new.customer_prefix.clone(),
            status: new.status,
            email: new.email.clone(),
            first_name: new.first_name.clone(),
            last_name: new.last_name.clone(),
            company_name: new.company_name.clone(),
            customer_type: new.customer_type,
            hostname: new.hostname.clone(),
            subdomain,
            country: new.country.clone(),
            currency: new.currency.clone(),
            language: new.language.clone(),
            delinquent: new.delinquent,
            allowed_domains_origins: new.allowed_domains_origins.clone(),
            allowed_domains_registration: new.allowed_domains_registration.clone(),
            settings: new.settings.clone(),
            metadata: new.metadata.clone(),
            limits: new.limits.clone(),
            addresses: new.addresses.clone(),
            telephones: new.telephones.clone(),
            legal_documents: new.legal_documents.clone(),
            owner_user_id: owner_user.id,
            create_time: now,
            update_time: now,
            revision: 1,
        };
        match customer::Entity::insert(customer_to_row(&customer)?)
            .exec_without_returning(tx.txn())
            .await
        {
            Ok(_) => {}
            Err(err) if is_unique_violation(&err) => return Ok(Attempt::LostRace),
            Err(err) => return Err(db_error(err)),
        }
        let membership = Membership {
            user_id: owner_user.id,
            target: MembershipTarget::Customer(customer.id),
            owner: true,
            permissions: PERMISSIONS.iter().map(|p| p.to_string()).collect(),
            roles: Vec::new(),
            // Created TERMINATED: born into the state the termination cascade leaves.
            status: if customer.status == CustomerStatus::Terminated {
                MembershipStatus::Inactive
            } else {
                MembershipStatus::Active
            },
            create_time: now,
            revision: 1,
        };
        match self.insert_membership(&tx, &membership).await {
            Ok(()) => {}
            Err(err) if is_unique_violation(&err) => return Ok(Attempt::LostRace),
            Err(err) => return Err(db_error(err)),
        }
        if let Some(key) = key {
            self.remember(&tx, key, &customer).await?;
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
        self.customer_event(&mut tx, "customer.created", &customer)
            .await?;
        self.membership_event(&mut tx, "membership.created", &membership, customer.id)
            .await?;
        self.commit(tx).await?;
        Ok(Attempt::Done(customer))
    }

    /// The owner of a customer being created, and whether it was created now.
    async fn customer_owner(
        &self,
        tx: &WriteTx,
        new: &NewCustomer,
        owner: &CustomerOwner,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Attempt<(User, bool)>> {
        match owner {
            CustomerOwner::User(id) => {
                let row = user::Entity::find_by_id(id.uuid())
                    .one(tx.txn())
                    .await
                    .map_err(db_error)?
                    .ok_or(Error::NotFound { resource: "user" })?;
                Ok(Attempt::Done((rows::user_from_row(&row)?, false)))
            }
            CustomerOwner::ByEmail {
                new_user,
                password_hash,
            } => {
                let existing = user::Entity::find()
                    .filter(user::Column::Email.eq(new.email.as_str()))
                    .one(tx.txn())
                    .await
                    .map_err(db_error)?;
                if let Some(row) = existing {
                    return Ok(Attempt::Done((rows::user_from_row(&row)?, false)));
                }
                if !new.admits_email(&new.email) {
                    return Err(refusals::email_not_admitted(&new.email, None));
                }
                let Some(hash) = password_hash else {
                    return Err(Error::invalid(
                        "password",
                        "is required: no user has the customer's email, so a new owner is created",
                    ));
                };
                match self
                    .insert_user_in(tx, new_user, Some(hash.clone()), now)
                    .await
                {
                    Ok(user) => Ok(Attempt::Done((user, true))),
                    // Someone created that user meanwhile: the next try finds them.
                    Err(err) if is_unique_violation(&err) => Ok(Attempt::LostRace),
                    Err(err) => Err(db_error(err)),
                }
            }
        }
    }

    async fn subdomain_taken(
        &self,
        tx: &WriteTx,
        subdomain: &str,
        except: Option<Id>,
    ) -> Result<bool> {
        let mut query = customer::Entity::find()
            .select_only()
            .column(customer::Column::Id)
            .filter(customer::Column::Subdomain.eq(subdomain));
        if let Some(except) = except {
            query = query.filter(customer::Column::Id.ne(except.uuid()));
        }
        Ok(query
            .into_tuple::<sea_orm::prelude::Uuid>()
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .is_some())
    }

    /// `ALREADY_EXISTS` naming the first unique value another customer holds.
    async fn check_unique(
        &self,
        tx: &WriteTx,
        except: Option<Id>,
        values: &UniqueValues<'_>,
    ) -> Result<()> {
        let mut any = Condition::any()
            .add(customer::Column::Email.eq(values.email))
            .add(customer::Column::Subdomain.eq(values.subdomain));
        if let Some(hostname) = values.hostname {
            any = any.add(customer::Column::Hostname.eq(hostname));
        }
        if let Some(external_id) = values.external_id {
            any = any.add(customer::Column::ExternalId.eq(external_id));
        }
        let mut query = customer::Entity::find().filter(any).limit(5);
        if let Some(except) = except {
            query = query.filter(customer::Column::Id.ne(except.uuid()));
        }
        let rows = query.all(tx.txn()).await.map_err(db_error)?;
        let taken = |check: &dyn Fn(&customer::Model) -> bool| rows.iter().any(check);
        if taken(&|r| r.email == values.email) {
            return Err(conflict_error("email"));
        }
        if taken(&|r| r.subdomain == values.subdomain) {
            return Err(conflict_error("subdomain"));
        }
        if taken(&|r| r.hostname.is_some() && r.hostname.as_deref() == values.hostname) {
            return Err(conflict_error("hostname"));
        }
        if taken(&|r| r.external_id.is_some() && r.external_id.as_deref() == values.external_id) {
            return Err(conflict_error("external_id"));
        }
        Ok(())
    }

    pub(crate) async fn insert_membership(
        &self,
        tx: &WriteTx,
        membership: &Membership,
    ) -> std::result::Result<(), DbErr> {
        let (customer_id, account_id) = match membership.target {
            MembershipTarget::Customer(id) => (Some(id.uuid()), None),
            MembershipTarget::Account(id) => (None, Some(id.uuid())),
        };
        let permissions = serde_json::to_string(&membership.permissions)
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        let roles =
            serde_json::to_string(&membership.roles).map_err(|e| DbErr::Custom(e.to_string()))?;
        membership::Entity::insert(membership::ActiveModel {
            id: Set(Id::generate().uuid()),
            user_id: Set(membership.user_id.uuid()),
            customer_id: Set(customer_id),
            account_id: Set(account_id),
            owner: Set(membership.owner),
            permissions: Set(permissions),
            roles: Set(roles),
            status: Set(membership.status.as_str().to_string()),
            create_time: Set(to_micros(membership.create_time)),
            update_time: Set(to_micros(membership.create_time)),
            revision: Set(membership.revision),
        })
        .exec_without_returning(tx.txn())
        .await
        .map(|_| ())
    }

    pub(crate) async fn customer_event(
        &self,
        tx: &mut WriteTx,
        kind: &'static str,
        customer: &Customer,
    ) -> Result<()> {
        self.append_event(
            tx,
            NewEvent {
                kind,
                resource_id: customer.id,
                customer_id: Some(customer.id),
                resource: EventResource::Customer(Box::new(customer.clone())),
            },
        )
        .await
    }

    pub(crate) async fn membership_event(
        &self,
        tx: &mut WriteTx,
        kind: &'static str,
        membership: &Membership,
        customer_id: Id,
    ) -> Result<()> {
        let resource_id = match membership.target {
            MembershipTarget::Customer(id) | MembershipTarget::Account(id) => id,
        };
        self.append_event(
            tx,
            NewEvent {
                kind,
                resource_id,
                customer_id: Some(customer_id),
                resource: EventResource::Membership(membership.clone()),
            },
        )
        .await
    }

    /// One customer by any of its unique keys.
    pub async fn get_customer_by(&self, key: &CustomerKey) -> Result<Customer> {
        let query = customer::Entity::find();
        let query = match key {
            CustomerKey::Id(id) => query.filter(customer::Column::Id.eq(id.uuid())),
            CustomerKey::Email(email) => query.filter(customer::Column::Email.eq(email.as_str())),
            CustomerKey::ExternalId(external_id) => {
                query.filter(customer::Column::ExternalId.eq(external_id.as_str()))
            }
            CustomerKey::CustomerKey(customer_key) => {
                query.filter(customer::Column::CustomerKey.eq(customer_key.as_str()))
            }
            CustomerKey::Subdomain(subdomain) => {
                query.filter(customer::Column::Subdomain.eq(subdomain.as_str()))
            }
            CustomerKey::Hostname(hostname) => {
                query.filter(customer::Column::Hostname.eq(hostname.as_str()))
            }
        };
        let row = self.find_one(query).await?;
        rows::customer_from_row(&row.ok_or(Error::NotFound {
            resource: "customer",
        })?)
    }

    pub async fn get_customer(&self, id: Id) -> Result<Customer> {
        self.get_customer_by(&CustomerKey::Id(id)).await
    }

    /// One keyset page of customers in creation order.
    pub async fn list_customers(
        &self,
        filter: &CustomerFilter,
        page: PageRequest,
    ) -> Result<Page<Customer>> {
        let mut query = customer::Entity::find()
            .order_by_asc(customer::Column::Id)
            .limit(page.size + 1);
        if let Some(after) = page.after {
            query = query.filter(customer::Column::Id.gt(after.uuid()));
        }
        if let Some(status) = filter.status {
            query = query.filter(customer::Column::Status.eq(status.as_str()));
        }
        if let Some(customer_type) = filter.customer_type {
            query = query.filter(customer::Column::CustomerType.eq(customer_type.as_str()));
        }
        if let Some(country) = &filter.country {
            query = query.filter(customer::Column::Country.eq(country.as_str()));
        }
        if let Some(prefix) = &filter.query {
            let pattern = super::like_prefix(prefix);
            let like = || LikeExpr::new(pattern.clone()).escape('\\');
            query = query.filter(
                Condition::any()
                    .add(customer::Column::Email.like(like()))
                    .add(customer::Column::CompanyNameLower.like(like()))
                    .add(customer::Column::FirstNameLower.like(like()))
                    .add(customer::Column::LastNameLower.like(like())),
            );
        }
        let rows = self.read(|| query.clone().all(&self.db)).await?;
        super::keyset_page(
            rows,
            page.size,
            |row| row.id,
            |row| rows::customer_from_row(&row),
        )
    }

    /// Reads a customer inside `tx`, holding its row on PostgreSQL, and checks that it
    /// is still at `expected_revision` (when given).
    pub(crate) async fn locked_customer(
        &self,
        tx: &WriteTx,
        id: Id,
        expected_revision: Option<i64>,
    ) -> Result<Customer> {
        let mut query = customer::Entity::find_by_id(id.uuid());
        if self.sqlite_writer.is_none() {
            query = query.lock_exclusive();
        }
        let row = query
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .ok_or(Error::NotFound {
                resource: "customer",
            })?;
        if expected_revision.is_some_and(|expected| expected != row.revision) {
            return Err(Error::Aborted {
                resource: "customer",
            });
        }
        rows::customer_from_row(&row)
    }

    /// Writes `updated` over the customer if it is still at `updated.revision - 1`
    /// (else `ABORTED`). Entering TERMINATED makes every membership of the customer
    /// inactive in the same transaction, with an event each.
    pub async fn update_customer(&self, updated: &Customer) -> Result<Customer> {
        for _ in 0..RACE_RETRIES {
            if let Attempt::Done(customer) = self.try_update_customer(updated).await? {
                return Ok(customer);
            }
        }
        Err(Error::Aborted {
            resource: "customer",
        })
    }

    async fn try_update_customer(&self, updated: &Customer) -> Result<Attempt<Customer>> {
        let mut tx = self.begin().await?;
        let current = self
            .locked_customer(&tx, updated.id, Some(updated.revision))
            .await?;
        self.check_unique(
            &tx,
            Some(updated.id),
            &UniqueValues {
                email: updated.email.as_str(),
                subdomain: &updated.subdomain,
                hostname: updated.hostname.as_deref(),
                external_id: updated.external_id.as_deref(),
            },
        )
        .await?;
        let mut next = updated.clone();
        // What never changes through an update, whatever the caller's copy says.
        next.customer_key = current.customer_key.clone();
        next.owner_user_id = current.owner_user_id;
        next.create_time = current.create_time;
        next.update_time = now();
        next.revision = current.revision + 1;
        let result = customer::Entity::update_many()
            .set(customer_to_row(&next)?)
            .filter(customer::Column::Id.eq(next.id.uuid()))
            .filter(customer::Column::Revision.eq(current.revision))
            .exec(tx.txn())
            .await;
        match result {
            Ok(result) if result.rows_affected == 1 => {}
            Ok(_) => {
                return Err(Error::Aborted {
                    resource: "customer",
                });
            }
            Err(err) if is_unique_violation(&err) => return Ok(Attempt::LostRace),
            Err(err) => return Err(db_error(err)),
        }
        let entered_termination = current.status != CustomerStatus::Terminated
            && next.status == CustomerStatus::Terminated;
        let kind = if current.status != next.status {
            "customer.status_changed"
        } else {
            "customer.updated"
        };
        // Sessions acting in the customer end with it, before the cascade, so they
        // carry the customer's reason rather than their memberships'.
        let ends_sessions = match next.status {
            _ if current.status == next.status => None,
            CustomerStatus::Inactive => Some(RevokeReason::CustomerInactive),
            CustomerStatus::Terminated => Some(RevokeReason::CustomerTerminated),
            _ => None,
        };
        if let Some(reason) = ends_sessions {
            self.revoke_sessions_in(&mut tx, SessionsOf::Customer(next.id), reason)
                .await?;
        }
        if entered_termination {
            self.deactivate_customer_members(&mut tx, next.id).await?;
        }
        self.customer_event(&mut tx, kind, &next).await?;
        self.commit(tx).await?;
        Ok(Attempt::Done(next))
    }

    /// The memberships of the customer itself (not of its accounts), oldest first.
    async fn customer_memberships(
        &self,
        tx: &WriteTx,
        customer_id: Id,
    ) -> Result<Vec<membership::Model>> {
        membership::Entity::find()
            .filter(membership::Column::CustomerId.eq(customer_id.uuid()))
            .order_by_asc(membership::Column::Id)
            .all(tx.txn())
            .await
            .map_err(db_error)
    }

    /// The termination cascade: every account of the customer INACTIVE and every
    /// membership of the customer and its accounts inactive, with an event each.
    async fn deactivate_customer_members(&self, tx: &mut WriteTx, customer_id: Id) -> Result<()> {
        let rows = self.customer_memberships(tx, customer_id).await?;
        self.deactivate_memberships(tx, rows, customer_id).await?;
        self.deactivate_accounts_in(tx, customer_id).await
    }

    /// Makes the active memberships among `rows` inactive, with a `membership.updated`
    /// event each.
    pub(crate) async fn deactivate_memberships(
        &self,
        tx: &mut WriteTx,
        rows: Vec<membership::Model>,
        customer_id: Id,
    ) -> Result<()> {
        let update_time = to_micros(now());
        for row in rows {
            if row.status == MembershipStatus::Inactive.as_str() {
                continue;
            }
            membership::Entity::update_many()
                .col_expr(
                    membership::Column::Status,
                    Expr::value(MembershipStatus::Inactive.as_str()),
                )
                .col_expr(membership::Column::UpdateTime, Expr::value(update_time))
                .col_expr(membership::Column::Revision, Expr::value(row.revision + 1))
                .filter(membership::Column::Id.eq(row.id))
                .exec(tx.txn())
                .await
                .map_err(db_error)?;
            let mut membership = rows::membership_from_row(row)?;
            membership.status = MembershipStatus::Inactive;
            membership.revision += 1;
            self.membership_event(tx, "membership.updated", &membership, customer_id)
                .await?;
            if let MembershipTarget::Customer(customer) = membership.target {
                self.revoke_sessions_in(
                    tx,
                    SessionsOf::Member {
                        user: membership.user_id,
                        customer,
                    },
                    RevokeReason::MembershipInactive,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Deletes a TERMINATED customer with everything it owns (its accounts, their and
    /// its memberships and invitations, and the lists stored in its row), with an event each; its
    /// users stay.
    pub async fn delete_customer(&self, id: Id, expected_revision: Option<i64>) -> Result<()> {
        let mut tx = self.begin().await?;
        let current = self.locked_customer(&tx, id, expected_revision).await?;
        if current.status != CustomerStatus::Terminated {
            return Err(Error::FailedPrecondition {
                kind: "CUSTOMER_NOT_TERMINATED",
                subject: format!("customers/{id}"),
                description: format!(
                    "only a TERMINATED customer can be deleted; this one is {}",
                    current.status.as_str().to_uppercase()
                ),
            });
        }
        let accounts = self.accounts_of_customer_in(&tx, id).await?;
        self.delete_accounts_in(&mut tx, accounts).await?;
        let memberships = self.customer_memberships(&tx, id).await?;
        membership::Entity::delete_many()
            .filter(membership::Column::CustomerId.eq(id.uuid()))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        self.delete_invitations_in(&mut tx, MembershipTarget::Customer(id), id)
            .await?;
        self.delete_roles_of(&mut tx, id).await?;
        let deleted = customer::Entity::delete_many()
            .filter(customer::Column::Id.eq(id.uuid()))
            .filter(customer::Column::Revision.eq(current.revision))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        if deleted.rows_affected != 1 {
            return Err(Error::Aborted {
                resource: "customer",
            });
        }
        for row in memberships {
            let membership = rows::membership_from_row(row)?;
            self.membership_event(&mut tx, "membership.deleted", &membership, id)
                .await?;
        }
        self.customer_event(&mut tx, "customer.deleted", &current)
            .await?;
        self.commit(tx).await
    }
}

fn conflict_error(field: &'static str) -> Error {
    Error::AlreadyExists {
        resource: "customer",
        field,
        reason: match field {
            "email" => "EMAIL_TAKEN",
            "subdomain" => "SUBDOMAIN_TAKEN",
            "hostname" => "HOSTNAME_TAKEN",
            "external_id" => "EXTERNAL_ID_TAKEN",
            _ => "ALREADY_EXISTS",
        },
    }
}
