//! Where each event relay stands: the last event sequence its broker acknowledged, and
//! which process holds the lease to publish (so one relay runs across instances).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RelayState {
    Table,
    /// The relay's name (its JetStream stream), so relays to two streams keep apart.
    Name,
    /// The process holding the lease; NULL when none ever did.
    Holder,
    /// Microseconds since the epoch until which the holder's lease runs.
    LeaseUntil,
    /// The newest sequence the broker acknowledged; the relay resumes after it.
    LastSequence,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RelayState::Table)
                    .if_not_exists()
                    .col(string(RelayState::Name).primary_key())
                    .col(string_null(RelayState::Holder))
                    .col(big_integer(RelayState::LeaseUntil).default(0))
                    .col(big_integer(RelayState::LastSequence).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RelayState::Table).to_owned())
            .await
    }
}
