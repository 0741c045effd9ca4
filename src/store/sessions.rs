//! Sign-in sessions and the digests of their refresh tokens (SPEC §11).
//!
//! Every write here is one transaction with its `session.*` events. Revocation by the
//! rules of §11 runs inside the transaction of the change that causes it
//! (`revoke_sessions_in`, called by the user, member and customer stores), after that
//! change's own row locks, so a session ends exactly when its cause commits.

use std::sync::OnceLock;

use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait as _, DbBackend, EntityTrait as _,
    FromQueryResult as _, IdenStatic, QueryFilter as _, QueryOrder as _, QueryResult,
    QuerySelect as _, Statement, sea_query::Expr,
};

use super::{
    Store, WriteTx, db_error,
    entities::{customer, membership, session, session_token, user},
    from_micros, keyset_page, now, rows, to_micros,
};
use crate::domain::{
    Error, Result,
    customer::CustomerStatus,
    event::{EventResource, NewEvent},
    id::Id,
    membership::{Membership, MembershipStatus},
    page::{Page, PageRequest},
    session::{Lifetimes, RevokeReason, Session, SessionStatus},
    user::{User, UserStatus},
};

/// The one answer for a refresh token that cannot be redeemed: unknown, malformed,
/// revoked or expired alike.
pub const REFRESH_REFUSED: &str = "the refresh token is not valid, or its session has ended";

/// Which active sessions a change ends.
#[derive(Debug, Clone, Copy)]
pub enum SessionsOf {
    /// Every session of the user.
    User(Id),
    /// Every session whose active customer is this one.
    Customer(Id),
    /// The user's sessions whose active customer is this one.
    Member { user: Id, customer: Id },
}

/// A session as a sign-in or a refresh leaves it, with what its access token says.
#[derive(Debug, Clone)]
pub struct SessionGrant {
    pub session: Session,
    pub user: User,
    /// The user's membership of the active customer (none for a user-level session).
    pub membership: Option<Membership>,
}

fn session_from_row(row: &session::Model) -> Result<Session> {
    Ok(Session {
        id: Id::from_uuid(row.id),
        user_id: Id::from_uuid(row.user_id),
        customer_id: row.customer_id.map(Id::from_uuid),
        create_time: from_micros(row.create_time),
        last_refresh_time: from_micros(row.last_refresh_time),
        expire_time: from_micros(row.expire_time),
        absolute_expire_time: from_micros(row.absolute_expire_time),
        revoke_time: row.revoke_time.map(from_micros),
        revoke_reason: match &row.revoke_reason {
            Some(text) => Some(
                RevokeReason::parse(text)
                    .ok_or_else(|| Error::internal("unknown stored revoke reason"))?,
            ),
            None => None,
        },
    })
}

impl Store {
    /// Starts a session for `user` (signed in just now) with the refresh token of
    /// digest `token_digest`, and writes `session.created`. With `customer`, the user
    /// must be able to act in it (`membership_to_act_in`), else `PermissionDenied` and
    /// nothing is written.
    pub async fn create_session(
        &self,
        user: User,
        customer: Option<Id>,
        token_digest: String,
        lifetimes: &Lifetimes,
    ) -> Result<SessionGrant> {
        let time = now();
        let (expire_time, absolute_expire_time) = lifetimes.expiry(time, time);
        let created = Session {
            id: Id::generate(),
            user_id: user.id,
            customer_id: customer,
            create_time: time,
            last_refresh_time: time,
            expire_time,
            absolute_expire_time,
            revoke_time: None,
            revoke_reason: None,
        };
        let mut tx = self.begin().await?;
        let membership = match customer {
            Some(customer) => Some(
                self.membership_to_act_in(&tx, user.id, customer)
                    .await?
                    .ok_or_else(not_a_member)?,
            ),
            None => None,
        };
        session::Entity::insert(session::ActiveModel {
            id: Set(created.id.uuid()),
            user_id: Set(user.id.uuid()),
            customer_id: Set(customer.map(|id| id.uuid())),
            create_time: Set(to_micros(time)),
            last_refresh_time: Set(to_micros(time)),
            expire_time: Set(to_micros(expire_time)),
            absolute_expire_time: Set(to_micros(absolute_expire_time)),
            revoke_time: Set(None),
            revoke_reason: Set(None),
            generation: Set(0),
        })
        .exec_without_returning(tx.txn())
        .await
        .map_err(db_error)?;
        self.issue_token_in(&tx, token_digest, created.id, 0)
            .await?;
        self.session_event(&mut tx, "session.created", &created)
            .await?;
        self.commit(tx).await?;
        Ok(SessionGrant {
            session: created,
            user,
            membership,
        })
    }

    /// Redeems the refresh token of digest `presented` for one of digest `issued`,
    /// moving the session to `switch_to` when given. A token redeemed before revokes its
    /// session (`RefreshTokenReused`); an unknown, revoked or expired one is refused
    /// with `REFRESH_REFUSED`; a customer the user may not act in is `PermissionDenied`
    /// (nothing changes then).
    pub async fn refresh_session(
        &self,
        presented: &str,
        issued: String,
        switch_to: Option<Id>,
        lifetimes: &Lifetimes,
    ) -> Result<SessionGrant> {
        let time = now();
        let statement = refresh_statement(presented, &issued, switch_to, time, lifetimes);
        match self.write_one(&statement).await {
            // The session's row is locked (a concurrent refresh or revocation): the
            // transaction waits for it within the call's deadline, where the one
            // statement, past its commit gate, could only wait past it.
            None | Some(Err(Error::Contention)) => {
                self.refresh_in_transaction(presented, issued, switch_to, time, lifetimes)
                    .await
            }
            Some(answer) => {
                self.refreshed_in_one_statement(answer?, switch_to, time, lifetimes)
                    .await
            }
        }
    }

    /// The outcome of `refresh_statement`: the new state when it refreshed, else the
    /// reason it did not, read from the same locked row (a reused token's session is
    /// then revoked, in a transaction of its own).
    async fn refreshed_in_one_statement(
        &self,
        row: Option<QueryResult>,
        switch_to: Option<Id>,
        time: chrono::DateTime<chrono::Utc>,
        lifetimes: &Lifetimes,
    ) -> Result<SessionGrant> {
        let refused = || Error::Unauthenticated(REFRESH_REFUSED);
        let row = row.ok_or_else(refused)?;
        let token_generation: i64 = row.try_get("", "token_generation").map_err(db_error)?;
        let refreshed: i64 = row.try_get("", "refreshed").map_err(db_error)?;
        let session_row = session::Model::from_query_result(&row, "s_").map_err(db_error)?;
        let user =
            rows::user_from_row(&user::Model::from_query_result(&row, "u_").map_err(db_error)?)?;
        let member_id: Option<sea_orm::prelude::Uuid> =
            row.try_get("", "m_id").map_err(db_error)?;
        let membership = match member_id {
            Some(_) => Some(rows::membership_from_row(
                membership::Model::from_query_result(&row, "m_").map_err(db_error)?,
            )?),
            None => None,
        };
        let session = session_from_row(&session_row)?;
        let customer = switch_to.or(session.customer_id);
        if refreshed == 0 {
            // The statement's conditions, in the order the transaction path checks them.
            if session.status(time) != SessionStatus::Active {
                return Err(refused());
            }
            if token_generation < session_row.generation {
                match self
                    .revoke_session(session.id, RevokeReason::RefreshTokenReused)
                    .await
                {
                    Ok(()) | Err(Error::NotFound { .. }) => {}
                    Err(error) => return Err(error),
                }
                return Err(Error::RefreshTokenReused);
            }
            if user.status != UserStatus::Active {
                return Err(refused());
            }
            if customer.is_some() && membership.is_none() {
                return Err(not_a_member());
            }
            return Err(Error::internal(
                "a refresh met every condition yet changed no session",
            ));
        }
        Ok(refreshed_grant(
            session,
            customer,
            time,
            lifetimes,
            user,
            customer.and(membership),
        ))
    }

    /// `refresh_session` as a transaction: locks the session, checks, then writes.
    async fn refresh_in_transaction(
        &self,
        presented: &str,
        issued: String,
        switch_to: Option<Id>,
        time: chrono::DateTime<chrono::Utc>,
        lifetimes: &Lifetimes,
    ) -> Result<SessionGrant> {
        let refused = || Error::Unauthenticated(REFRESH_REFUSED);
        let mut tx = self.begin().await?;
        let (token_generation, row, user) = self
            .locked_session_of_token(&tx, presented)
            .await?
            .ok_or_else(refused)?;
        let session = session_from_row(&row)?;
        if session.status(time) != SessionStatus::Active {
            return Err(refused());
        }
        if token_generation < row.generation {
            self.revoke_rows_in(&mut tx, vec![row], RevokeReason::RefreshTokenReused)
                .await?;
            self.commit(tx).await?;
            return Err(Error::RefreshTokenReused);
        }
        let user = rows::user_from_row(&user)?;
        if user.status != UserStatus::Active {
            return Err(refused());
        }
        let customer = switch_to.or(session.customer_id);
        let membership = match customer {
            Some(customer) => Some(
                self.membership_to_act_in(&tx, user.id, customer)
                    .await?
                    .ok_or_else(not_a_member)?,
            ),
            None => None,
        };
        let (expire_time, _) = lifetimes.expiry(session.create_time, time);
        let generation = row.generation + 1;
        session::Entity::update_many()
            .col_expr(session::Column::Generation, Expr::value(generation))
            .col_expr(
                session::Column::LastRefreshTime,
                Expr::value(to_micros(time)),
            )
            .col_expr(
                session::Column::ExpireTime,
                Expr::value(to_micros(expire_time)),
            )
            .col_expr(
                session::Column::CustomerId,
                Expr::value(customer.map(|id| id.uuid())),
            )
            .filter(session::Column::Id.eq(row.id))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        self.issue_token_in(&tx, issued, session.id, generation)
            .await?;
        self.commit(tx).await?;
        Ok(refreshed_grant(
            session, customer, time, lifetimes, user, membership,
        ))
    }

    /// The user's membership of `customer` if it lets the user sign in to it: active,
    /// of a customer that is ACTIVE or SUSPENDED.
    async fn membership_to_act_in(
        &self,
        tx: &WriteTx,
        user_id: Id,
        customer_id: Id,
    ) -> Result<Option<Membership>> {
        let Some(customer) = customer::Entity::find_by_id(customer_id.uuid())
            .select_only()
            .column(customer::Column::Status)
            .into_tuple::<String>()
            .one(tx.txn())
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        if !matches!(
            CustomerStatus::from_db(&customer),
            Some(CustomerStatus::Active | CustomerStatus::Suspended)
        ) {
            return Ok(None);
        }
        let row = membership::Entity::find()
            .filter(membership::Column::UserId.eq(user_id.uuid()))
            .filter(membership::Column::CustomerId.eq(customer_id.uuid()))
            .filter(membership::Column::Status.eq(MembershipStatus::Active.as_str()))
            .one(tx.txn())
            .await
            .map_err(db_error)?;
        row.map(rows::membership_from_row).transpose()
    }

    /// Ends session `id` for `reason`; `NotFound` when no session has the id. A session
    /// that already ended is left as it is.
    pub async fn revoke_session(&self, id: Id, reason: RevokeReason) -> Result<()> {
        let mut tx = self.begin().await?;
        let row = self.locked_session(&tx, id).await?.ok_or(Error::NotFound {
            resource: "session",
        })?;
        if session_from_row(&row)?.status(now()) == SessionStatus::Active {
            self.revoke_rows_in(&mut tx, vec![row], reason).await?;
        }
        self.commit(tx).await
    }

    /// Ends the active sessions that `which` names, for `reason`, inside `tx`, with a
    /// `session.revoked` event each; answers how many ended.
    pub(crate) async fn revoke_sessions_in(
        &self,
        tx: &mut WriteTx,
        which: SessionsOf,
        reason: RevokeReason,
    ) -> Result<u64> {
        let mut query = session::Entity::find()
            .filter(session::Column::RevokeTime.is_null())
            .filter(session::Column::ExpireTime.gt(to_micros(now())));
        query = match which {
            SessionsOf::User(user) => query.filter(session::Column::UserId.eq(user.uuid())),
            SessionsOf::Customer(customer) => {
                query.filter(session::Column::CustomerId.eq(customer.uuid()))
            }
            SessionsOf::Member { user, customer } => query
                .filter(session::Column::UserId.eq(user.uuid()))
                .filter(session::Column::CustomerId.eq(customer.uuid())),
        };
        if self.sqlite_writer.is_none() {
            query = query.lock_exclusive();
        }
        let rows = query
            .order_by_asc(session::Column::Id)
            .all(tx.txn())
            .await
            .map_err(db_error)?;
        let count = rows.len() as u64;
        self.revoke_rows_in(tx, rows, reason).await?;
        Ok(count)
    }

    /// Ends every active session of `user`; answers how many.
    pub async fn revoke_user_sessions(&self, user: Id, reason: RevokeReason) -> Result<u64> {
        let mut tx = self.begin().await?;
        user::Entity::find_by_id(user.uuid())
            .select_only()
            .column(user::Column::Id)
            .into_tuple::<sea_orm::prelude::Uuid>()
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .ok_or(Error::NotFound { resource: "user" })?;
        let count = self
            .revoke_sessions_in(&mut tx, SessionsOf::User(user), reason)
            .await?;
        self.commit(tx).await?;
        Ok(count)
    }

    /// A page of `user`'s sessions, newest first.
    pub async fn list_sessions(&self, user: Id, page: PageRequest) -> Result<Page<Session>> {
        let mut query = session::Entity::find()
            .filter(session::Column::UserId.eq(user.uuid()))
            .order_by_desc(session::Column::Id)
            .limit(page.size + 1);
        if let Some(after) = page.after {
            query = query.filter(session::Column::Id.lt(after.uuid()));
        }
        let rows = self.read(|| query.clone().all(&self.db)).await?;
        keyset_page(rows, page.size, |row| row.id, |row| session_from_row(&row))
    }

    /// Deletes sessions (and their tokens' digests) that ended by `cutoff` at the
    /// latest: past their absolute lifetime, or revoked, before it.
    pub async fn prune_sessions(&self, cutoff: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        let cutoff = to_micros(cutoff);
        let ended = sea_orm::Condition::any()
            .add(session::Column::AbsoluteExpireTime.lt(cutoff))
            .add(session::Column::RevokeTime.lt(cutoff));
        let tx = self.begin().await?;
        session_token::Entity::delete_many()
            .filter(
                session_token::Column::SessionId.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(session::Column::Id)
                        .from(session::Entity)
                        .cond_where(ended.clone())
                        .to_owned(),
                ),
            )
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        let deleted = session::Entity::delete_many()
            .filter(ended)
            .exec(tx.txn())
            .await
            .map_err(db_error)?
            .rows_affected;
        self.commit(tx).await?;
        Ok(deleted)
    }

    /// The session a refresh token of digest `digest` belongs to, locked, with the
    /// token's generation and the session's user: one statement, since a refresh is
    /// a hot path and each statement is a round trip.
    async fn locked_session_of_token(
        &self,
        tx: &WriteTx,
        digest: &str,
    ) -> Result<Option<(i64, session::Model, user::Model)>> {
        let backend = self.backend();
        let sql = token_session_user_sql(backend);
        let Some(row) = tx
            .txn()
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [digest.to_string().into()],
            ))
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        let generation: i64 = row.try_get("", "token_generation").map_err(db_error)?;
        let session = session::Model::from_query_result(&row, "s_").map_err(db_error)?;
        let user = user::Model::from_query_result(&row, "u_").map_err(db_error)?;
        Ok(Some((generation, session, user)))
    }

    async fn locked_session(&self, tx: &WriteTx, id: Id) -> Result<Option<session::Model>> {
        let mut query = session::Entity::find_by_id(id.uuid());
        if self.sqlite_writer.is_none() {
            query = query.lock_exclusive();
        }
        query.one(tx.txn()).await.map_err(db_error)
    }

    async fn issue_token_in(
        &self,
        tx: &WriteTx,
        digest: String,
        session: Id,
        generation: i64,
    ) -> Result<()> {
        session_token::Entity::insert(session_token::ActiveModel {
            digest: Set(digest),
            session_id: Set(session.uuid()),
            generation: Set(generation),
        })
        .exec_without_returning(tx.txn())
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// Marks `rows` (active sessions, locked by the caller) revoked for `reason`, with
    /// a `session.revoked` event each.
    async fn revoke_rows_in(
        &self,
        tx: &mut WriteTx,
        rows: Vec<session::Model>,
        reason: RevokeReason,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let time = now();
        let ids: Vec<_> = rows.iter().map(|row| row.id).collect();
        session::Entity::update_many()
            .col_expr(session::Column::RevokeTime, Expr::value(to_micros(time)))
            .col_expr(session::Column::RevokeReason, Expr::value(reason.as_str()))
            .filter(session::Column::Id.is_in(ids))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        for row in rows {
            let mut revoked = session_from_row(&row)?;
            revoked.revoke_time = Some(time);
            revoked.revoke_reason = Some(reason);
            self.session_event(tx, "session.revoked", &revoked).await?;
        }
        Ok(())
    }

    async fn session_event(
        &self,
        tx: &mut WriteTx,
        kind: &'static str,
        session: &Session,
    ) -> Result<()> {
        self.append_event(
            tx,
            NewEvent {
                kind,
                resource_id: session.id,
                customer_id: session.customer_id,
                resource: EventResource::Session(session.clone()),
            },
        )
        .await
    }
}

/// The grant a refresh at `time` leaves: the session moved to `customer`, its expiry
/// pushed out.
fn refreshed_grant(
    session: Session,
    customer: Option<Id>,
    time: chrono::DateTime<chrono::Utc>,
    lifetimes: &Lifetimes,
    user: User,
    membership: Option<Membership>,
) -> SessionGrant {
    let (expire_time, absolute_expire_time) = lifetimes.expiry(session.create_time, time);
    SessionGrant {
        session: Session {
            customer_id: customer,
            last_refresh_time: time,
            expire_time,
            absolute_expire_time,
            ..session
        },
        user,
        membership,
    }
}

fn not_a_member() -> Error {
    Error::PermissionDenied(
        "the user is not an active member of that customer, or the customer is not ACTIVE or SUSPENDED"
            .into(),
    )
}

/// `"alias"."column" AS "alias_column"` for every column of an entity.
fn prefixed_columns<C: sea_orm::Iterable + IdenStatic>(alias: &str) -> String {
    C::iter()
        .map(|c| {
            format!(
                "\"{alias}\".\"{}\" AS \"{alias}_{}\"",
                c.as_str(),
                c.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SELECT` of a refresh token's generation, its session (columns prefixed `s_`,
/// locked on PostgreSQL; SQLite's writer lock serialises writes) and the session's
/// user (prefixed `u_`), by the token's digest.
fn token_session_user_sql(backend: DbBackend) -> &'static str {
    static POSTGRES: OnceLock<String> = OnceLock::new();
    static SQLITE: OnceLock<String> = OnceLock::new();
    let build = |postgres: bool| {
        let (placeholder, lock) = if postgres {
            ("$1", " FOR UPDATE OF s")
        } else {
            ("?", "")
        };
        format!(
            "SELECT t.generation AS token_generation, {}, {} \
             FROM session_tokens t JOIN sessions s ON s.id = t.session_id \
             JOIN users u ON u.id = s.user_id WHERE t.digest = {placeholder}{lock}",
            prefixed_columns::<session::Column>("s"),
            prefixed_columns::<user::Column>("u"),
        )
    };
    match backend {
        DbBackend::Postgres => POSTGRES.get_or_init(|| build(true)),
        _ => SQLITE.get_or_init(|| build(false)),
    }
}

/// A whole refresh as one PostgreSQL statement (its own implicit transaction, one
/// round trip). `found` locks the session of the presented token without waiting: a
/// row locked by another transaction fails the statement whole (55P03, `Contention`)
/// and the caller takes the transaction path, whose wait the call's deadline bounds.
/// `refreshed` rotates only when every condition holds: the token is the
/// session's current one, the session is active at `time`, the user is active, and the
/// active customer (the one switched to, or the session's) is one the user may act in
/// (`member`, the rule of `membership_to_act_in`); `issued` stores the new token. The
/// answer has the locked row, the membership and whether it refreshed, from which the
/// caller tells which condition failed.
fn refresh_statement(
    presented: &str,
    issued: &str,
    switch_to: Option<Id>,
    time: chrono::DateTime<chrono::Utc>,
    lifetimes: &Lifetimes,
) -> Statement {
    static SQL: OnceLock<String> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "WITH found AS ({found} NOWAIT), \
             member AS (SELECT {members} FROM found f \
               JOIN memberships m ON m.user_id = f.s_user_id \
                 AND m.customer_id = COALESCE($2::uuid, f.s_customer_id) AND m.status = $3 \
               JOIN customers c ON c.id = m.customer_id AND c.status IN ($4, $5)), \
             refreshed AS (UPDATE sessions s SET generation = f.s_generation + 1, \
                 last_refresh_time = $6, expire_time = LEAST($6 + $7, f.s_create_time + $8), \
                 customer_id = COALESCE($2::uuid, f.s_customer_id) \
               FROM found f \
               WHERE s.id = f.s_id AND f.token_generation = f.s_generation \
                 AND f.s_revoke_time IS NULL AND $6 < f.s_expire_time AND f.u_status = $9 \
                 AND (COALESCE($2::uuid, f.s_customer_id) IS NULL OR EXISTS (SELECT 1 FROM member)) \
               RETURNING s.id, s.generation), \
             issued AS (INSERT INTO session_tokens (digest, session_id, generation) \
               SELECT $10, id, generation FROM refreshed) \
             SELECT f.*, m.*, (SELECT count(*) FROM refreshed) AS refreshed \
             FROM found f LEFT JOIN member m ON true",
            found = token_session_user_sql(DbBackend::Postgres),
            members = prefixed_columns::<membership::Column>("m"),
        )
    });
    let micros =
        |duration: std::time::Duration| i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
    Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql.as_str(),
        [
            presented.to_string().into(),
            switch_to.map(|id| id.uuid()).into(),
            MembershipStatus::Active.as_str().into(),
            CustomerStatus::Active.as_str().into(),
            CustomerStatus::Suspended.as_str().into(),
            to_micros(time).into(),
            micros(lifetimes.idle).into(),
            micros(lifetimes.absolute).into(),
            UserStatus::Active.as_str().into(),
            issued.to_string().into(),
        ],
    )
}
