//! Users, their sign-in throttle, and memberships.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    FirstName,
    LastName,
    FirstNameLower,
    LastNameLower,
    Language,
    Status,
    PasswordHash,
    LastLoginTime,
    CreateTime,
    UpdateTime,
    Revision,
}

#[derive(DeriveIden)]
enum LoginThrottle {
    Table,
    Email,
    Attempts,
    WindowStart,
    LockedUntil,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    Id,
    UserId,
    CustomerId,
    AccountId,
    Owner,
    Permissions,
    Status,
    CreateTime,
    UpdateTime,
    Revision,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(pk_uuid(Users::Id))
                    .col(string(Users::Email))
                    .col(string(Users::FirstName))
                    .col(string(Users::LastName))
                    .col(string(Users::FirstNameLower))
                    .col(string(Users::LastNameLower))
                    .col(string(Users::Language))
                    .col(string(Users::Status))
                    .col(text_null(Users::PasswordHash))
                    .col(big_integer_null(Users::LastLoginTime))
                    .col(big_integer(Users::CreateTime))
                    .col(big_integer(Users::UpdateTime))
                    .col(big_integer(Users::Revision))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("users_email_key")
                    .table(Users::Table)
                    .col(Users::Email)
                    .unique()
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("users_first_name_lower_idx", Users::FirstNameLower),
            ("users_last_name_lower_idx", Users::LastNameLower),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Users::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }

        // Keyed by the attempted email, known user or not, so guessing at unknown
        // addresses is throttled the same way.
        manager
            .create_table(
                Table::create()
                    .table(LoginThrottle::Table)
                    .col(string(LoginThrottle::Email).primary_key())
                    .col(integer(LoginThrottle::Attempts))
                    .col(big_integer(LoginThrottle::WindowStart))
                    .col(big_integer_null(LoginThrottle::LockedUntil))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Memberships::Table)
                    .col(pk_uuid(Memberships::Id))
                    .col(uuid(Memberships::UserId))
                    .col(uuid_null(Memberships::CustomerId))
                    .col(uuid_null(Memberships::AccountId))
                    .col(boolean(Memberships::Owner))
                    .col(text(Memberships::Permissions))
                    .col(string(Memberships::Status))
                    .col(big_integer(Memberships::CreateTime))
                    .col(big_integer(Memberships::UpdateTime))
                    .col(big_integer(Memberships::Revision))
                    .foreign_key(
                        ForeignKey::create()
                            .name("memberships_user_id_fkey")
                            .from(Memberships::Table, Memberships::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("memberships_user_id_idx", Memberships::UserId),
            ("memberships_customer_id_idx", Memberships::CustomerId),
            ("memberships_account_id_idx", Memberships::AccountId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Memberships::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Memberships::Table.into_iden(),
            LoginThrottle::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
