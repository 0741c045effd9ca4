//! Server settings, API keys, the event log and idempotency records.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Settings {
    Table,
    Name,
    Value,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    Digest,
    Scopes,
    CreateTime,
    RevokeTime,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Sequence,
    Kind,
    ResourceId,
    CustomerId,
    Time,
    Payload,
}

#[derive(DeriveIden)]
enum EventLogState {
    Table,
    Id,
    LastSequence,
    PrunedThrough,
}

#[derive(DeriveIden)]
enum RequestIds {
    Table,
    RequestId,
    Fingerprint,
    Response,
    CreateTime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Settings::Table)
                    .col(string(Settings::Name).primary_key())
                    .col(text(Settings::Value))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(pk_uuid(ApiKeys::Id))
                    .col(string(ApiKeys::Name))
                    .col(string(ApiKeys::Digest))
                    .col(text(ApiKeys::Scopes))
                    .col(big_integer(ApiKeys::CreateTime))
                    .col(big_integer_null(ApiKeys::RevokeTime))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("api_keys_digest_key")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::Digest)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(big_integer(Events::Sequence).primary_key())
                    .col(string(Events::Kind))
                    .col(uuid(Events::ResourceId))
                    .col(uuid_null(Events::CustomerId))
                    .col(big_integer(Events::Time))
                    .col(text(Events::Payload))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("events_time_idx")
                    .table(Events::Table)
                    .col(Events::Time)
                    .to_owned(),
            )
            .await?;

        // One row: the last sequence handed out. Updating it takes a row lock held to
        // commit, so sequences are handed out, and become visible, in commit order.
        manager
            .create_table(
                Table::create()
                    .table(EventLogState::Table)
                    .col(integer(EventLogState::Id).primary_key())
                    .col(big_integer(EventLogState::LastSequence))
                    .col(big_integer(EventLogState::PrunedThrough))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(EventLogState::Table)
                    .columns([
                        EventLogState::Id,
                        EventLogState::LastSequence,
                        EventLogState::PrunedThrough,
                    ])
                    .values_panic([1.into(), 0i64.into(), 0i64.into()])
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RequestIds::Table)
                    .col(pk_uuid(RequestIds::RequestId))
                    .col(string(RequestIds::Fingerprint))
                    .col(text(RequestIds::Response))
                    .col(big_integer(RequestIds::CreateTime))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("request_ids_create_time_idx")
                    .table(RequestIds::Table)
                    .col(RequestIds::CreateTime)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RequestIds::Table.into_iden(),
            EventLogState::Table.into_iden(),
            Events::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Settings::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
