//! Accounts: one per service a customer uses. Settings (quotas) and metadata are JSON
//! text, read and written whole with their account.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    CustomerId,
    ExternalId,
    Name,
    ServiceType,
    Status,
    Settings,
    Metadata,
    OwnerUserId,
    CreateTime,
    UpdateTime,
    Revision,
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .col(pk_uuid(Accounts::Id))
                    .col(uuid(Accounts::CustomerId))
                    .col(text_null(Accounts::ExternalId))
                    .col(text(Accounts::Name))
                    .col(string(Accounts::ServiceType))
                    .col(string(Accounts::Status))
                    .col(text(Accounts::Settings))
                    .col(text(Accounts::Metadata))
                    .col(uuid(Accounts::OwnerUserId))
                    .col(big_integer(Accounts::CreateTime))
                    .col(big_integer(Accounts::UpdateTime))
                    .col(big_integer(Accounts::Revision))
                    // Deleting a customer deletes its accounts explicitly, with events;
                    // RESTRICT makes any other path fail instead of orphaning them.
                    .foreign_key(
                        ForeignKey::create()
                            .name("accounts_customer_id_fkey")
                            .from(Accounts::Table, Accounts::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("accounts_owner_user_id_fkey")
                            .from(Accounts::Table, Accounts::OwnerUserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // Lists of one customer's accounts page on (customer_id, id).
        manager
            .create_index(
                Index::create()
                    .name("accounts_customer_id_id_idx")
                    .table(Accounts::Table)
                    .col(Accounts::CustomerId)
                    .col(Accounts::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("accounts_owner_user_id_idx")
                    .table(Accounts::Table)
                    .col(Accounts::OwnerUserId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Accounts::Table).to_owned())
            .await
    }
}
