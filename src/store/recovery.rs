//! Account recovery, email verification and the second factor (SPEC §12): one-time
//! tokens by digest, the TOTP secret (sealed by the caller) with the last step it
//! accepted, and recovery codes by digest. Each redemption is one conditional write, so
//! of concurrent redemptions of one token or code exactly one succeeds.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait as _, EntityTrait as _, QueryFilter as _, QuerySelect as _,
    sea_query::{Expr, OnConflict},
};

use super::{
    Store, WriteTx, db_error,
    entities::{recovery_code, user, user_token, user_totp},
    now, rows, to_micros,
};
use crate::domain::{
    Error, Result,
    id::Id,
    session::RevokeReason,
    user::{User, UserStatus},
};

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    PasswordReset,
    EmailVerification,
}

impl TokenPurpose {
    fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::PasswordReset => "password_reset",
            TokenPurpose::EmailVerification => "email_verification",
        }
    }
}

/// A user's TOTP secret as stored: sealed (base64) by the caller.
#[derive(Debug, Clone)]
pub struct StoredTotp {
    pub sealed_secret: String,
    pub confirmed: bool,
}

/// The one refusal of a token that does not redeem: used, replaced, expired, issued
/// for another email, or never issued.
fn token_refused(purpose: TokenPurpose) -> Error {
    let (kind, description) = match purpose {
        TokenPurpose::PasswordReset => (
            "RESET_TOKEN_INVALID",
            "the reset token was already used, replaced by a newer one, has expired, or was never issued",
        ),
        TokenPurpose::EmailVerification => (
            "VERIFICATION_TOKEN_INVALID",
            "the verification token was already used, replaced by a newer one, has expired, or was issued for an email the user no longer has",
        ),
    };
    Error::FailedPrecondition {
        kind,
        subject: "token".into(),
        description: description.into(),
    }
}

impl Store {
    /// Stores the token of digest `digest` for `user` (replacing the user's previous
    /// token of this purpose), valid until `expire_time`, issued for `email`.
    pub async fn issue_user_token(
        &self,
        user: Id,
        purpose: TokenPurpose,
        email: &str,
        digest: String,
        expire_time: DateTime<Utc>,
    ) -> Result<()> {
        let tx = self.begin().await?;
        user_token::Entity::delete_many()
            .filter(user_token::Column::UserId.eq(user.uuid()))
            .filter(user_token::Column::Purpose.eq(purpose.as_str()))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        user_token::Entity::insert(user_token::ActiveModel {
            digest: Set(digest),
            user_id: Set(user.uuid()),
            purpose: Set(purpose.as_str().into()),
            email: Set(email.into()),
            expire_time: Set(to_micros(expire_time)),
            used_time: Set(None),
        })
        .exec_without_returning(tx.txn())
        .await
        .map_err(db_error)?;
        self.commit(tx).await
    }

    /// What `issue_user_token` costs, writing nothing: a request for an unknown email
    /// answers in about the time a known one takes.
    pub async fn issue_no_user_token(&self, digest: String) -> Result<()> {
        let tx = self.begin().await?;
        user_token::Entity::delete_many()
            .filter(user_token::Column::Digest.eq(digest))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        self.commit(tx).await
    }

    /// Uses up the unused, unexpired token of digest `digest` inside `tx`: answers the
    /// user it was issued to and the email it was issued for, or the one refusal.
    async fn redeem_token_in(
        &self,
        tx: &WriteTx,
        digest: &str,
        purpose: TokenPurpose,
    ) -> Result<(user::Model, String)> {
        let time = to_micros(now());
        let mut query = user_token::Entity::find_by_id(digest.to_string())
            .filter(user_token::Column::Purpose.eq(purpose.as_str()));
        if self.sqlite_writer.is_none() {
            query = query.lock_exclusive();
        }
        let token = query
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .filter(|token| token.used_time.is_none() && token.expire_time > time)
            .ok_or_else(|| token_refused(purpose))?;
        let used = user_token::Entity::update_many()
            .col_expr(user_token::Column::UsedTime, Expr::value(time))
            .filter(user_token::Column::Digest.eq(digest))
            .filter(user_token::Column::UsedTime.is_null())
            .exec(tx.txn())
            .await
            .map_err(db_error)?
            .rows_affected;
        if used != 1 {
            return Err(token_refused(purpose));
        }
        let user = self
            .locked_user(tx, Id::from_uuid(token.user_id), None)
            .await
            .map_err(|_| token_refused(purpose))?;
        Ok((user, token.email))
    }

    /// `ResetPassword`: uses up the reset token and sets `password_hash` (made by the
    /// caller, who checked the policy against `email_of_token`'s user): the lockout is
    /// cleared and every session ends (`PasswordReset`).
    pub async fn reset_password(&self, digest: &str, password_hash: String) -> Result<User> {
        let mut tx = self.begin().await?;
        let (user, _) = self
            .redeem_token_in(&tx, digest, TokenPurpose::PasswordReset)
            .await?;
        if user.status != UserStatus::Active.as_str() {
            return Err(token_refused(TokenPurpose::PasswordReset));
        }
        let updated = self
            .replace_password_in(&mut tx, &user, password_hash, RevokeReason::PasswordReset)
            .await?;
        self.commit(tx).await?;
        Ok(updated)
    }

    /// The user a still-redeemable token of digest `digest` was issued to (to check a
    /// new password against before hashing it); the one refusal otherwise.
    pub async fn user_of_token(&self, digest: &str, purpose: TokenPurpose) -> Result<User> {
        let time = to_micros(now());
        let token = self
            .find_one(
                user_token::Entity::find_by_id(digest.to_string())
                    .filter(user_token::Column::Purpose.eq(purpose.as_str())),
            )
            .await?
            .filter(|token| token.used_time.is_none() && token.expire_time > time)
            .ok_or_else(|| token_refused(purpose))?;
        self.get_user(Id::from_uuid(token.user_id))
            .await
            .map_err(|_| token_refused(purpose))
    }

    /// `VerifyEmail`: uses up the verification token and marks the email verified, if
    /// the user still has the email it was issued for.
    pub async fn verify_email(&self, digest: &str) -> Result<User> {
        let mut tx = self.begin().await?;
        let (row, email) = self
            .redeem_token_in(&tx, digest, TokenPurpose::EmailVerification)
            .await?;
        if row.email != email {
            return Err(token_refused(TokenPurpose::EmailVerification));
        }
        let mut updated = rows::user_from_row(&row)?;
        if !updated.email_verified {
            updated.email_verified = true;
            updated.update_time = now();
            updated.revision += 1;
            self.write_flags_in(&tx, &updated).await?;
            self.user_event(&mut tx, "user.updated", &updated).await?;
        }
        self.commit(tx).await?;
        Ok(updated)
    }

    /// `EnrollTotp`: stores a new, unconfirmed secret (sealed by the caller) for `user`,
    /// replacing one not confirmed. `FailedPrecondition` once a second factor is on.
    pub async fn enroll_totp(&self, user: Id, sealed_secret: String) -> Result<User> {
        let tx = self.begin().await?;
        let row = self.locked_user(&tx, user, None).await?;
        if row.totp_enabled {
            return Err(Error::FailedPrecondition {
                kind: "SECOND_FACTOR_ENABLED",
                subject: format!("users/{user}"),
                description: "the user already has a second factor; disable it first".into(),
            });
        }
        user_totp::Entity::insert(user_totp::ActiveModel {
            user_id: Set(user.uuid()),
            secret: Set(sealed_secret),
            confirmed: Set(false),
            last_step: Set(-1),
        })
        .on_conflict(
            OnConflict::column(user_totp::Column::UserId)
                .update_columns([
                    user_totp::Column::Secret,
                    user_totp::Column::Confirmed,
                    user_totp::Column::LastStep,
                ])
                .to_owned(),
        )
        .exec_without_returning(tx.txn())
        .await
        .map_err(db_error)?;
        self.commit(tx).await?;
        rows::user_from_row(&row)
    }

    /// The user's stored TOTP secret, if any.
    pub async fn totp_of(&self, user: Id) -> Result<Option<StoredTotp>> {
        Ok(self
            .find_one(user_totp::Entity::find_by_id(user.uuid()))
            .await?
            .map(|row| StoredTotp {
                sealed_secret: row.secret,
                confirmed: row.confirmed,
            }))
    }

    /// `ConfirmTotp`: the enrolled secret proved by a code of `step`: the second factor
    /// is on, that step is used, and the recovery codes are these digests (replacing
    /// any earlier ones).
    pub async fn confirm_totp(
        &self,
        user: Id,
        step: i64,
        recovery_digests: Vec<String>,
    ) -> Result<User> {
        let mut tx = self.begin().await?;
        let row = self.locked_user(&tx, user, None).await?;
        let confirmed = user_totp::Entity::update_many()
            .col_expr(user_totp::Column::Confirmed, Expr::value(true))
            .col_expr(user_totp::Column::LastStep, Expr::value(step))
            .filter(user_totp::Column::UserId.eq(user.uuid()))
            .filter(user_totp::Column::Confirmed.eq(false))
            .exec(tx.txn())
            .await
            .map_err(db_error)?
            .rows_affected;
        if confirmed != 1 {
            return Err(no_enrollment(user));
        }
        recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(user.uuid()))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        recovery_code::Entity::insert_many(recovery_digests.into_iter().map(|digest| {
            recovery_code::ActiveModel {
                user_id: Set(user.uuid()),
                digest: Set(digest),
                used_time: Set(None),
            }
        }))
        .exec_without_returning(tx.txn())
        .await
        .map_err(db_error)?;
        let mut updated = rows::user_from_row(&row)?;
        updated.totp_enabled = true;
        updated.update_time = now();
        updated.revision += 1;
        self.write_flags_in(&tx, &updated).await?;
        self.user_event(&mut tx, "user.updated", &updated).await?;
        self.commit(tx).await?;
        Ok(updated)
    }

    /// `DisableTotp`: forgets the secret and the recovery codes; the second factor is
    /// off.
    pub async fn disable_totp(&self, user: Id) -> Result<User> {
        let mut tx = self.begin().await?;
        let row = self.locked_user(&tx, user, None).await?;
        user_totp::Entity::delete_many()
            .filter(user_totp::Column::UserId.eq(user.uuid()))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(user.uuid()))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        let mut updated = rows::user_from_row(&row)?;
        if updated.totp_enabled {
            updated.totp_enabled = false;
            updated.update_time = now();
            updated.revision += 1;
            self.write_flags_in(&tx, &updated).await?;
            self.user_event(&mut tx, "user.updated", &updated).await?;
        }
        self.commit(tx).await?;
        Ok(updated)
    }

    /// Accepts a TOTP code of `step` for `user` unless a code of that step or a later
    /// one was already accepted (by any instance): true at most once per step.
    pub async fn accept_totp_step(&self, user: Id, step: i64) -> Result<bool> {
        let tx = self.begin().await?;
        let accepted = user_totp::Entity::update_many()
            .col_expr(user_totp::Column::LastStep, Expr::value(step))
            .filter(user_totp::Column::UserId.eq(user.uuid()))
            .filter(user_totp::Column::Confirmed.eq(true))
            .filter(user_totp::Column::LastStep.lt(step))
            .exec(tx.txn())
            .await
            .map_err(db_error)?
            .rows_affected;
        self.commit(tx).await?;
        Ok(accepted == 1)
    }

    /// Uses up `user`'s unused recovery code of digest `digest`: true at most once.
    pub async fn use_recovery_code(&self, user: Id, digest: &str) -> Result<bool> {
        let tx = self.begin().await?;
        let used = recovery_code::Entity::update_many()
            .col_expr(
                recovery_code::Column::UsedTime,
                Expr::value(to_micros(now())),
            )
            .filter(recovery_code::Column::UserId.eq(user.uuid()))
            .filter(recovery_code::Column::Digest.eq(digest))
            .filter(recovery_code::Column::UsedTime.is_null())
            .exec(tx.txn())
            .await
            .map_err(db_error)?
            .rows_affected;
        self.commit(tx).await?;
        Ok(used == 1)
    }

    /// How many of `user`'s recovery codes are still unused.
    pub async fn unused_recovery_codes(&self, user: Id) -> Result<u64> {
        let codes = self
            .read(|| {
                recovery_code::Entity::find()
                    .select_only()
                    .column(recovery_code::Column::Digest)
                    .filter(recovery_code::Column::UserId.eq(user.uuid()))
                    .filter(recovery_code::Column::UsedTime.is_null())
                    .into_tuple::<String>()
                    .all(&self.db)
            })
            .await?;
        Ok(codes.len() as u64)
    }

    /// Writes `updated`'s flags, time and revision over its row (locked by the caller).
    async fn write_flags_in(&self, tx: &WriteTx, updated: &User) -> Result<()> {
        user::Entity::update_many()
            .col_expr(
                user::Column::EmailVerified,
                Expr::value(updated.email_verified),
            )
            .col_expr(user::Column::TotpEnabled, Expr::value(updated.totp_enabled))
            .col_expr(
                user::Column::UpdateTime,
                Expr::value(to_micros(updated.update_time)),
            )
            .col_expr(user::Column::Revision, Expr::value(updated.revision))
            .filter(user::Column::Id.eq(updated.id.uuid()))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

fn no_enrollment(user: Id) -> Error {
    Error::FailedPrecondition {
        kind: "NO_TOTP_ENROLLMENT",
        subject: format!("users/{user}"),
        description: "no second factor is being enrolled for this user: call EnrollTotp first"
            .into(),
    }
}
