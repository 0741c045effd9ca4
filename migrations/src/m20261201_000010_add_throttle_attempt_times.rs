//! The sign-in throttle becomes a sliding window: each email keeps the times of its
//! recent attempts (at most the threshold of them), and the time of the newest, so
//! expired rows can be pruned.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LoginThrottle {
    Table,
    /// Space-separated microsecond times of the attempts inside the window.
    RecentAttempts,
    LastAttemptTime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(LoginThrottle::Table)
                    .add_column(text(LoginThrottle::RecentAttempts).default(""))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(LoginThrottle::Table)
                    .add_column(big_integer(LoginThrottle::LastAttemptTime).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(LoginThrottle::Table)
                    .drop_column(LoginThrottle::LastAttemptTime)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(LoginThrottle::Table)
                    .drop_column(LoginThrottle::RecentAttempts)
                    .to_owned(),
            )
            .await
    }
}
