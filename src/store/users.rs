//! Users and their memberships.

use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, Condition, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _,
    sea_query::{Expr, ExprTrait as _, LikeExpr, Query},
};

use super::sessions::SessionsOf;
use super::{
    FixedSql, Store, WriteTx, db_error,
    entities::{membership, user},
    is_unique_violation, now, rows, to_micros,
};
use crate::domain::session::RevokeReason;
use crate::domain::{
    Error, Result,
    event::{EventResource, NewEvent},
    id::Id,
    idempotency::RequestKey,
    membership::{Membership, MembershipStatus},
    page::{Page, PageRequest},
    user::{Email, NewUser, User, UserChanges, UserFilter, UserStatus},
};

/// A user with the stored password hash, for sign-in and password changes only.
pub struct Credentials {
    pub user: User,
    pub password_hash: Option<String>,
}

fn user_is_owner(id: Id) -> Error {
    Error::FailedPrecondition {
        kind: "USER_IS_OWNER",
        subject: format!("users/{id}"),
        description: "the user owns a customer or an account; move the ownership first".into(),
    }
}

/// The row of a user about to be created, with a new id.
fn new_user_row(
    new: &NewUser,
    password_hash: Option<String>,
    time: chrono::DateTime<chrono::Utc>,
) -> user::Model {
    let time = to_micros(time);
    user::Model {
        id: Id::generate().uuid(),
        email: new.email.as_str().to_string(),
        first_name: new.first_name.clone(),
        last_name: new.last_name.clone(),
        first_name_lower: new.first_name.to_lowercase(),
        last_name_lower: new.last_name.to_lowercase(),
        language: new.language.clone(),
        status: new.status.as_str().to_string(),
        password_hash,
        last_login_time: None,
        create_time: time,
        update_time: time,
        revision: 1,
        email_verified: false,
        totp_enabled: false,
    }
}

fn email_is_taken() -> Error {
    Error::AlreadyExists {
        resource: "user",
        field: "email",
        reason: "EMAIL_TAKEN",
    }
}

fn email_taken(err: sea_orm::DbErr) -> Error {
    if is_unique_violation(&err) {
        email_is_taken()
    } else {
        db_error(err)
    }
}

impl Store {
    /// Creates a user, its `user.created` event and, with a key, its idempotency record,
    /// in one transaction. A retry of the same request returns the first user.
    pub async fn create_user(
        &self,
        new: NewUser,
        password_hash: Option<String>,
        key: Option<&RequestKey>,
    ) -> Result<User> {
        match self.try_create_user(&new, password_hash, key).await {
            // Lost a race with the same request id: the winner's result is the answer.
            Err(error @ (Error::AlreadyExists { .. } | Error::Internal(_))) if key.is_some() => {
                match self.replay::<User>(key.expect("checked")).await? {
                    Some(user) => Ok(user),
                    None => Err(error),
                }
            }
            other => other,
        }
    }

    async fn try_create_user(
        &self,
        new: &NewUser,
        password_hash: Option<String>,
        key: Option<&RequestKey>,
    ) -> Result<User> {
        if key.is_none() && self.sequencer.is_some() {
            return self.create_user_in_batch(new, password_hash).await;
        }
        let mut tx = self.begin().await?;
        if let Some(key) = key
            && let Some(first) = self.replay_in::<User>(&tx, key).await?
        {
            return Ok(first);
        }
        let created = self
            .insert_user_in(&tx, new, password_hash, now())
            .await
            .map_err(email_taken)?;
        // The event first: a failure after it (the request-id record) must take it back.
        self.user_event(&mut tx, "user.created", &created).await?;
        if let Some(key) = key {
            self.remember(&tx, key, &created).await?;
        }
        self.commit(tx).await?;
        Ok(created)
    }

    /// CreateUser without a request id on PostgreSQL: the user and its `user.created`
    /// event in one statement, batched with the calls beside it (see `user_batches`).
    async fn create_user_in_batch(
        &self,
        new: &NewUser,
        password_hash: Option<String>,
    ) -> Result<User> {
        let row = new_user_row(new, password_hash, now());
        let created = rows::user_from_row(&row)?;
        let payload = serde_json::to_string(&EventResource::User(created.clone()))
            .map_err(Error::internal)?;
        if self.insert_user_batched(row, payload).await? {
            Ok(created)
        } else {
            Err(email_is_taken())
        }
    }

    /// Inserts a user inside `tx`; the caller classifies a unique violation (email).
    pub(crate) async fn insert_user_in(
        &self,
        tx: &WriteTx,
        new: &NewUser,
        password_hash: Option<String>,
        time: chrono::DateTime<chrono::Utc>,
    ) -> std::result::Result<User, sea_orm::DbErr> {
        // Every column is `Set`, so the INSERT names them all.
        let row = user::ActiveModel::from(new_user_row(new, password_hash, time)).reset_all();
        let inserted = user::Entity::insert(row)
            .exec_with_returning(tx.txn())
            .await?;
        rows::user_from_row(&inserted).map_err(|e| sea_orm::DbErr::Custom(e.to_string()))
    }

    pub(crate) async fn user_event(
        &self,
        tx: &mut WriteTx,
        kind: &'static str,
        user: &User,
    ) -> Result<()> {
        self.append_event(
            tx,
            NewEvent {
                kind,
                resource_id: user.id,
                customer_id: None,
                resource: EventResource::User(user.clone()),
            },
        )
        .await
    }

    pub async fn get_user(&self, id: Id) -> Result<User> {
        let row = self.user_row_by(user::Column::Id, id.uuid().into()).await?;
        rows::user_from_row(&row.ok_or(Error::NotFound { resource: "user" })?)
    }

    /// The user whose unique `column` (id or email) holds `value`: the hottest
    /// uncached read, so its SQL is built once (see `FixedSql`).
    async fn user_row_by(
        &self,
        column: user::Column,
        value: sea_orm::Value,
    ) -> Result<Option<user::Model>> {
        use sea_orm::{FromQueryResult as _, QueryTrait as _};
        static BY_ID: FixedSql = FixedSql::new();
        static BY_EMAIL: FixedSql = FixedSql::new();
        let fixed = match column {
            user::Column::Id => &BY_ID,
            user::Column::Email => &BY_EMAIL,
            _ => return Err(Error::internal("users are looked up by id or email only")),
        };
        let backend = self.backend();
        let statement = fixed.statement(
            backend,
            || {
                user::Entity::find()
                    .filter(column.eq(value.clone()))
                    .build(backend)
            },
            vec![value.clone()],
        )?;
        match self.query_one(statement).await? {
            Some(row) => user::Model::from_query_result(&row, "")
                .map(Some)
                .map_err(db_error),
            None => Ok(None),
        }
    }

    pub async fn user_exists_by_email(&self, email: &Email) -> Result<bool> {
        let query = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::Email.eq(email.as_str()));
        let found = self
            .select_one(query.limit(1).into_tuple::<sea_orm::prelude::Uuid>())
            .await?;
        Ok(found.is_some())
    }

    pub async fn get_user_by_email(&self, email: &Email) -> Result<User> {
        let row = self
            .user_row_by(user::Column::Email, email.as_str().into())
            .await?;
        rows::user_from_row(&row.ok_or(Error::NotFound { resource: "user" })?)
    }

    /// One keyset page of users in creation order.
    pub async fn list_users(&self, filter: &UserFilter, page: PageRequest) -> Result<Page<User>> {
        let mut query = user::Entity::find()
            .order_by_asc(user::Column::Id)
            .limit(page.size + 1);
        if let Some(after) = page.after {
            query = query.filter(user::Column::Id.gt(after.uuid()));
        }
        if let Some(prefix) = &filter.query {
            let pattern = super::like_prefix(prefix);
            let like = || LikeExpr::new(pattern.clone()).escape('\\');
            query = query.filter(
                Condition::any()
                    .add(user::Column::Email.like(like()))
                    .add(user::Column::FirstNameLower.like(like()))
                    .add(user::Column::LastNameLower.like(like())),
            );
        }
        for (column, target) in [
            (membership::Column::CustomerId, filter.customer_id),
            (membership::Column::AccountId, filter.account_id),
        ] {
            if let Some(target) = target {
                query = query.filter(
                    user::Column::Id.in_subquery(
                        Query::select()
                            .column(membership::Column::UserId)
                            .from(membership::Entity)
                            .and_where(Expr::col(column).eq(target.uuid()))
                            .to_owned(),
                    ),
                );
            }
        }
        let rows = self.read(|| query.clone().all(&self.db)).await?;
        super::keyset_page(
            rows,
            page.size,
            |row| row.id,
            |row| rows::user_from_row(&row),
        )
    }

    /// Applies `changes` if the user is still at `expected_revision` (when given).
    pub async fn update_user(
        &self,
        id: Id,
        expected_revision: Option<i64>,
        changes: &UserChanges,
    ) -> Result<User> {
        let mut tx = self.begin().await?;
        let current = self.locked_user(&tx, id, expected_revision).await?;
        let mut updated = rows::user_from_row(&current)?;
        changes.apply(&mut updated);
        // A new address is not proven by the old one's verification.
        if updated.email.as_str() != current.email {
            updated.email_verified = false;
        }
        updated.update_time = now();
        updated.revision = current.revision + 1;
        let result = user::Entity::update_many()
            .col_expr(user::Column::Email, Expr::value(updated.email.as_str()))
            .col_expr(
                user::Column::EmailVerified,
                Expr::value(updated.email_verified),
            )
            .col_expr(
                user::Column::FirstName,
                Expr::value(updated.first_name.clone()),
            )
            .col_expr(
                user::Column::LastName,
                Expr::value(updated.last_name.clone()),
            )
            .col_expr(
                user::Column::FirstNameLower,
                Expr::value(updated.first_name.to_lowercase()),
            )
            .col_expr(
                user::Column::LastNameLower,
                Expr::value(updated.last_name.to_lowercase()),
            )
            .col_expr(
                user::Column::Language,
                Expr::value(updated.language.clone()),
            )
            .col_expr(user::Column::Status, Expr::value(updated.status.as_str()))
            .col_expr(
                user::Column::UpdateTime,
                Expr::value(to_micros(updated.update_time)),
            )
            .col_expr(user::Column::Revision, Expr::value(updated.revision))
            .filter(user::Column::Id.eq(id.uuid()))
            .filter(user::Column::Revision.eq(current.revision))
            .exec(tx.txn())
            .await
            .map_err(email_taken)?;
        if result.rows_affected != 1 {
            return Err(Error::Aborted { resource: "user" });
        }
        self.user_event(&mut tx, "user.updated", &updated).await?;
        if updated.status == UserStatus::Inactive && current.status != updated.status.as_str() {
            self.revoke_sessions_in(&mut tx, SessionsOf::User(id), RevokeReason::UserInactive)
                .await?;
        }
        self.commit(tx).await?;
        Ok(updated)
    }

    /// Reads a user inside `tx` and checks the caller's etag against it.
    pub(crate) async fn locked_user(
        &self,
        tx: &WriteTx,
        id: Id,
        expected_revision: Option<i64>,
    ) -> Result<user::Model> {
        let mut query = user::Entity::find_by_id(id.uuid());
        // PostgreSQL: hold the row so a concurrent writer waits instead of racing the
        // revision check. SQLite has one writer at a time already.
        if self.sqlite_writer.is_none() {
            query = query.lock_exclusive();
        }
        let row = query
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .ok_or(Error::NotFound { resource: "user" })?;
        if expected_revision.is_some_and(|expected| expected != row.revision) {
            return Err(Error::Aborted { resource: "user" });
        }
        Ok(row)
    }

    /// Deletes a user and their memberships, unless they own a customer or account.
    pub async fn delete_user(&self, id: Id, expected_revision: Option<i64>) -> Result<()> {
        let mut tx = self.begin().await?;
        let current = self.locked_user(&tx, id, expected_revision).await?;
        let owned = membership::Entity::find()
            .filter(membership::Column::UserId.eq(id.uuid()))
            .filter(membership::Column::Owner.eq(true))
            .one(tx.txn())
            .await
            .map_err(db_error)?;
        if owned.is_some() {
            return Err(user_is_owner(id));
        }
        let last = rows::user_from_row(&current)?;
        let memberships = membership::Entity::find()
            .filter(membership::Column::UserId.eq(id.uuid()))
            .order_by_asc(membership::Column::Id)
            .all(tx.txn())
            .await
            .map_err(db_error)?;
        membership::Entity::delete_many()
            .filter(membership::Column::UserId.eq(id.uuid()))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        let deleted = user::Entity::delete_many()
            .filter(user::Column::Id.eq(id.uuid()))
            .filter(user::Column::Revision.eq(current.revision))
            .exec(tx.txn())
            .await
            // Ownership can move to this user after the check above; the foreign keys of
            // customers and accounts then refuse the delete.
            .map_err(|err| match err.sql_err() {
                Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => user_is_owner(id),
                _ => db_error(err),
            })?;
        if deleted.rows_affected != 1 {
            return Err(Error::Aborted { resource: "user" });
        }
        for row in memberships {
            let customer_id = match (row.customer_id, row.account_id) {
                (Some(customer), _) => Id::from_uuid(customer),
                (None, Some(account)) => {
                    let account = super::entities::account::Entity::find_by_id(account)
                        .one(tx.txn())
                        .await
                        .map_err(db_error)?
                        .ok_or_else(|| Error::internal("membership of a missing account"))?;
                    Id::from_uuid(account.customer_id)
                }
                (None, None) => return Err(Error::internal("membership without a target")),
            };
            let membership = rows::membership_from_row(row)?;
            self.membership_event(&mut tx, "membership.deleted", &membership, customer_id)
                .await?;
        }
        self.user_event(&mut tx, "user.deleted", &last).await?;
        self.revoke_sessions_in(&mut tx, SessionsOf::User(id), RevokeReason::UserDeleted)
            .await?;
        self.commit(tx).await
    }

    pub async fn credentials_by_email(&self, email: &str) -> Result<Option<Credentials>> {
        let row = self.user_row_by(user::Column::Email, email.into()).await?;
        row.map(|row| {
            Ok(Credentials {
                user: rows::user_from_row(&row)?,
                password_hash: row.password_hash,
            })
        })
        .transpose()
    }

    /// `credentials_by_email` inside a transaction (a sign-in's reservation).
    pub(crate) async fn credentials_by_email_in(
        &self,
        tx: &WriteTx,
        email: &str,
    ) -> Result<Option<Credentials>> {
        let row = user::Entity::find()
            .filter(user::Column::Email.eq(email))
            .one(tx.txn())
            .await
            .map_err(db_error)?;
        row.map(|row| {
            Ok(Credentials {
                user: rows::user_from_row(&row)?,
                password_hash: row.password_hash,
            })
        })
        .transpose()
    }

    pub async fn credentials_by_id(&self, id: Id) -> Result<Credentials> {
        let row = self
            .user_row_by(user::Column::Id, id.uuid().into())
            .await?
            .ok_or(Error::NotFound { resource: "user" })?;
        Ok(Credentials {
            user: rows::user_from_row(&row)?,
            password_hash: row.password_hash,
        })
    }

    /// Replaces the password hash; the user's etag moves and `user.password_changed`
    /// is written (without the hash). Every session of the user ends.
    pub async fn set_password_hash(&self, id: Id, password_hash: String) -> Result<User> {
        let mut tx = self.begin().await?;
        let current = self.locked_user(&tx, id, None).await?;
        let updated = self
            .replace_password_in(
                &mut tx,
                &current,
                password_hash,
                RevokeReason::PasswordChanged,
            )
            .await?;
        self.commit(tx).await?;
        Ok(updated)
    }

    /// The password change inside `tx`, on the user row `current` (locked by the
    /// caller): the new hash, the sign-in count cleared (its failures were against the
    /// old password), `user.password_changed`, and every session of the user ended for
    /// `reason`.
    pub(crate) async fn replace_password_in(
        &self,
        tx: &mut WriteTx,
        current: &user::Model,
        password_hash: String,
        reason: RevokeReason,
    ) -> Result<User> {
        self.clear_sign_in_failures(tx, &current.email).await?;
        let mut updated = rows::user_from_row(current)?;
        updated.has_password = true;
        updated.update_time = now();
        updated.revision = current.revision + 1;
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(
                user::Column::UpdateTime,
                Expr::value(to_micros(updated.update_time)),
            )
            .col_expr(user::Column::Revision, Expr::value(updated.revision))
            .filter(user::Column::Id.eq(current.id))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        self.user_event(tx, "user.password_changed", &updated)
            .await?;
        self.revoke_sessions_in(tx, SessionsOf::User(updated.id), reason)
            .await?;
        Ok(updated)
    }

    /// Records a successful sign-in: clears the email's failure count, stamps
    /// `last_login_time` and stores a re-hash made with current parameters. This moves
    /// neither the etag nor the event log: it is not an edit of the user, and bumping
    /// the etag would make every sign-in abort concurrent edits.
    ///
    /// It applies only while the user is still active and still has `verified_hash`:
    /// `None` when either changed during the verification (a concurrent SetPassword is
    /// then not overwritten with a re-hash of the old password), and nothing is written.
    /// Otherwise the user and their active memberships, read in the same transaction.
    pub async fn record_sign_in(
        &self,
        id: Id,
        email: &str,
        verified_hash: &str,
        rehashed: Option<String>,
    ) -> Result<Option<(User, Vec<Membership>)>> {
        let tx = self.begin().await?;
        let mut update = user::Entity::update_many()
            .col_expr(user::Column::LastLoginTime, Expr::value(to_micros(now())))
            .filter(user::Column::Id.eq(id.uuid()))
            .filter(user::Column::PasswordHash.eq(verified_hash))
            .filter(user::Column::Status.eq(UserStatus::Active.as_str()));
        if let Some(hash) = rehashed {
            update = update.col_expr(user::Column::PasswordHash, Expr::value(hash));
        }
        let applied = update.exec(tx.txn()).await.map_err(db_error)?.rows_affected;
        if applied == 0 {
            // The password or the status changed while the password was verified.
            return Ok(None);
        }
        self.clear_sign_in_failures(&tx, email).await?;
        let row = user::Entity::find_by_id(id.uuid())
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .ok_or(Error::NotFound { resource: "user" })?;
        let memberships = membership::Entity::find()
            .filter(membership::Column::UserId.eq(id.uuid()))
            .filter(membership::Column::Status.eq(MembershipStatus::Active.as_str()))
            .order_by_asc(membership::Column::Id)
            .all(tx.txn())
            .await
            .map_err(db_error)?;
        self.commit(tx).await?;
        let memberships = memberships
            .into_iter()
            .map(rows::membership_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((rows::user_from_row(&row)?, memberships)))
    }

    /// The user's memberships, oldest first; `active_only` drops inactive ones.
    pub async fn memberships_of_user(
        &self,
        user_id: Id,
        active_only: bool,
    ) -> Result<Vec<Membership>> {
        let mut query = membership::Entity::find()
            .filter(membership::Column::UserId.eq(user_id.uuid()))
            .order_by_asc(membership::Column::Id);
        if active_only {
            query = query.filter(membership::Column::Status.eq(MembershipStatus::Active.as_str()));
        }
        let rows = self.read(|| query.clone().all(&self.db)).await?;
        rows.into_iter().map(rows::membership_from_row).collect()
    }
}
