//! PostgreSQL: events are written by their transaction to `pending_events`, with no
//! sequence, and numbered after they commit by the one sequencer (see
//! `src/store/sequencer.rs`), so no write waits on a row that every write updates.
//! `event_log_state.complete_as_of` says until when the numbered log is complete.
//! SQLite has one writer at a time and keeps numbering events in the transaction.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EventLogState {
    Table,
    /// Microseconds since the epoch (the database's clock): every event of a
    /// transaction that committed before it has its sequence. 0 until first set.
    CompleteAsOf,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(EventLogState::Table)
                    .add_column(big_integer(EventLogState::CompleteAsOf).default(0))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        // `txid` orders one batch by transaction (a transaction's events stay together,
        // and one that began after another committed comes after it); `id` keeps the
        // order within a transaction. Both are set by defaults: writers never see them.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE IF NOT EXISTS pending_events (
                    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    txid XID8 NOT NULL DEFAULT pg_current_xact_id(),
                    kind TEXT NOT NULL,
                    resource_id UUID NOT NULL,
                    customer_id UUID,
                    time BIGINT NOT NULL,
                    payload TEXT NOT NULL
                )",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP TABLE IF EXISTS pending_events")
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(EventLogState::Table)
                    .drop_column(EventLogState::CompleteAsOf)
                    .to_owned(),
            )
            .await
    }
}
