//! Sign-in sessions (SPEC §11) and the digests of every refresh token each one issued
//! (a token presented after it was redeemed is recognised as reused, and ends its
//! session). No foreign keys: a session outlives its user's deletion as a revoked row
//! until pruning, and is written in the same transaction as the change that ends it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    /// A UUIDv7: newest-first lists go by it.
    Id,
    UserId,
    /// The active customer; NULL for a user-level session.
    CustomerId,
    /// Times in microseconds since the epoch.
    CreateTime,
    LastRefreshTime,
    /// The idle lifetime after the last refresh, capped by `absolute_expire_time`.
    ExpireTime,
    AbsoluteExpireTime,
    /// NULL while not revoked.
    RevokeTime,
    RevokeReason,
    /// The generation of the refresh token that works now; older ones are reuse.
    Generation,
}

#[derive(DeriveIden)]
enum SessionTokens {
    Table,
    /// Hex SHA-256 of the refresh token.
    Digest,
    SessionId,
    /// Which refresh of its session issued it (0: the sign-in).
    Generation,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(uuid(Sessions::Id).primary_key())
                    .col(uuid(Sessions::UserId))
                    .col(uuid_null(Sessions::CustomerId))
                    .col(big_integer(Sessions::CreateTime))
                    .col(big_integer(Sessions::LastRefreshTime))
                    .col(big_integer(Sessions::ExpireTime))
                    .col(big_integer(Sessions::AbsoluteExpireTime))
                    .col(big_integer_null(Sessions::RevokeTime))
                    .col(string_null(Sessions::RevokeReason))
                    .col(big_integer(Sessions::Generation).default(0))
                    .to_owned(),
            )
            .await?;
        // ListSessions (newest first) and revoking a user's sessions.
        manager
            .create_index(
                Index::create()
                    .name("sessions_user_id")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .col(Sessions::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Revoking the sessions of a customer (INACTIVE, TERMINATED).
        manager
            .create_index(
                Index::create()
                    .name("sessions_customer_id")
                    .table(Sessions::Table)
                    .col(Sessions::CustomerId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Pruning sessions long ended.
        manager
            .create_index(
                Index::create()
                    .name("sessions_absolute_expire_time")
                    .table(Sessions::Table)
                    .col(Sessions::AbsoluteExpireTime)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SessionTokens::Table)
                    .if_not_exists()
                    .col(string(SessionTokens::Digest).primary_key())
                    .col(uuid(SessionTokens::SessionId))
                    .col(big_integer(SessionTokens::Generation))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("session_tokens_session_id")
                    .table(SessionTokens::Table)
                    .col(SessionTokens::SessionId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SessionTokens::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await
    }
}
