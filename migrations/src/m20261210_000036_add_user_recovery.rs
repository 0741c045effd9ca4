//! Account recovery, email verification and a second factor (SPEC §12): the users'
//! `email_verified` and `totp_enabled` flags (false for existing users), one-time
//! tokens (reset and verification, as SHA-256 digests), each user's TOTP secret (sealed
//! under the master key) with the last time step it accepted, and recovery codes (as
//! digests).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    EmailVerified,
    TotpEnabled,
}

#[derive(DeriveIden)]
enum UserTokens {
    Table,
    /// Hex SHA-256 of the token.
    Digest,
    UserId,
    /// `password_reset` or `email_verification`.
    Purpose,
    /// The email the token was issued for: a verification token verifies only that one.
    Email,
    /// Microseconds since the epoch.
    ExpireTime,
    UsedTime,
}

#[derive(DeriveIden)]
enum UserTotp {
    Table,
    UserId,
    /// base64 of the secret sealed under the master key, bound to the user.
    Secret,
    /// Set once `ConfirmTotp` proved the user holds the secret.
    Confirmed,
    /// The last time step (unix time / 30) a code was accepted for: a code is accepted
    /// only for a later step, so none is accepted twice.
    LastStep,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    UserId,
    Digest,
    UsedTime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Users::EmailVerified, Users::TotpEnabled] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(boolean(column).default(false))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(UserTokens::Table)
                    .if_not_exists()
                    .col(string(UserTokens::Digest).primary_key())
                    .col(uuid(UserTokens::UserId))
                    .col(string(UserTokens::Purpose))
                    .col(string(UserTokens::Email))
                    .col(big_integer(UserTokens::ExpireTime))
                    .col(big_integer_null(UserTokens::UsedTime))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("user_tokens_user_purpose")
                    .table(UserTokens::Table)
                    .col(UserTokens::UserId)
                    .col(UserTokens::Purpose)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserTotp::Table)
                    .if_not_exists()
                    .col(uuid(UserTotp::UserId).primary_key())
                    .col(text(UserTotp::Secret))
                    .col(boolean(UserTotp::Confirmed).default(false))
                    .col(big_integer(UserTotp::LastStep).default(-1))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .if_not_exists()
                    .col(uuid(RecoveryCodes::UserId))
                    .col(string(RecoveryCodes::Digest))
                    .col(big_integer_null(RecoveryCodes::UsedTime))
                    .primary_key(
                        Index::create()
                            .col(RecoveryCodes::UserId)
                            .col(RecoveryCodes::Digest),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RecoveryCodes::Table.into_iden(),
            UserTotp::Table.into_iden(),
            UserTokens::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for column in [Users::EmailVerified, Users::TotpEnabled] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
