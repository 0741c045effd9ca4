//! Each relay also records where in its stream its last acknowledged event sits, so it
//! can resume exactly when the stream's newest messages were purged or expired.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RelayState {
    Table,
    /// The stream sequence the broker gave the event `last_sequence`; NULL when not
    /// known (no publish yet, or a row older than this column).
    StreamSequence,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RelayState::Table)
                    .add_column(big_integer_null(RelayState::StreamSequence))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RelayState::Table)
                    .drop_column(RelayState::StreamSequence)
                    .to_owned(),
            )
            .await
    }
}
