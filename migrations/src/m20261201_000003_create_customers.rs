//! Customers. Lists and objects (domains, settings, metadata, limits, addresses,
//! telephones, legal documents) are JSON text columns: they are always read and
//! written whole with their customer, so a lookup stays one row read.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
    ExternalId,
    TenantId,
    CustomerKey,
    CustomerPrefix,
    Status,
    Email,
    FirstName,
    LastName,
    CompanyName,
    FirstNameLower,
    LastNameLower,
    CompanyNameLower,
    CustomerType,
    Hostname,
    Subdomain,
    Country,
    Currency,
    Language,
    Delinquent,
    AllowedDomainsOrigins,
    AllowedDomainsRegistration,
    Settings,
    Metadata,
    Limits,
    Addresses,
    Telephones,
    LegalDocuments,
    OwnerUserId,
    CreateTime,
    UpdateTime,
    Revision,
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
                    .table(Customers::Table)
                    .col(pk_uuid(Customers::Id))
                    .col(text_null(Customers::ExternalId))
                    .col(text(Customers::TenantId))
                    .col(string(Customers::CustomerKey))
                    .col(string(Customers::CustomerPrefix))
                    .col(string(Customers::Status))
                    .col(string(Customers::Email))
                    .col(text(Customers::FirstName))
                    .col(text(Customers::LastName))
                    .col(text(Customers::CompanyName))
                    .col(text(Customers::FirstNameLower))
                    .col(text(Customers::LastNameLower))
                    .col(text(Customers::CompanyNameLower))
                    .col(string(Customers::CustomerType))
                    .col(string_null(Customers::Hostname))
                    .col(string(Customers::Subdomain))
                    .col(string_null(Customers::Country))
                    .col(string_null(Customers::Currency))
                    .col(string(Customers::Language))
                    .col(boolean(Customers::Delinquent))
                    .col(text(Customers::AllowedDomainsOrigins))
                    .col(text(Customers::AllowedDomainsRegistration))
                    .col(text(Customers::Settings))
                    .col(text(Customers::Metadata))
                    .col(text(Customers::Limits))
                    .col(text(Customers::Addresses))
                    .col(text(Customers::Telephones))
                    .col(text(Customers::LegalDocuments))
                    .col(uuid(Customers::OwnerUserId))
                    .col(big_integer(Customers::CreateTime))
                    .col(big_integer(Customers::UpdateTime))
                    .col(big_integer(Customers::Revision))
                    // A user who owns a customer cannot be deleted (the store says why
                    // first; this keeps it true whatever the code does).
                    .foreign_key(
                        ForeignKey::create()
                            .name("customers_owner_user_id_fkey")
                            .from(Customers::Table, Customers::OwnerUserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // Unique keys; NULLs (no hostname, no external id) never collide on either backend.
        for (name, column) in [
            ("customers_email_key", Customers::Email),
            ("customers_customer_key_key", Customers::CustomerKey),
            ("customers_subdomain_key", Customers::Subdomain),
            ("customers_hostname_key", Customers::Hostname),
            ("customers_external_id_key", Customers::ExternalId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Customers::Table)
                        .col(column)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        for (name, column) in [
            ("customers_owner_user_id_idx", Customers::OwnerUserId),
            ("customers_status_idx", Customers::Status),
            ("customers_country_idx", Customers::Country),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Customers::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }

        // `query` is a prefix match with LIKE 'abc%'. PostgreSQL uses a btree for that
        // only with the pattern operator class (the default one follows the locale's
        // collation); SQLite's LIKE cannot use a plain index either way and scans.
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            let db = manager.get_connection();
            for (table, column) in [
                ("customers", "email"),
                ("customers", "first_name_lower"),
                ("customers", "last_name_lower"),
                ("customers", "company_name_lower"),
                ("users", "email"),
                ("users", "first_name_lower"),
                ("users", "last_name_lower"),
            ] {
                db.execute_unprepared(&format!(
                    "CREATE INDEX {table}_{column}_pattern_idx ON {table} ({column} text_pattern_ops)"
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            let db = manager.get_connection();
            for name in [
                "users_email_pattern_idx",
                "users_first_name_lower_pattern_idx",
                "users_last_name_lower_pattern_idx",
            ] {
                db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                    .await?;
            }
        }
        manager
            .drop_table(Table::drop().table(Customers::Table).to_owned())
            .await
    }
}
