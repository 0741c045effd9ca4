//! Memberships under schema rules: exactly one target, one membership per user and
//! target, at most one owner per target (a partial unique index), and foreign keys to
//! the customer or account. Invitations, with their token stored as a SHA-256 digest.
//!
//! SQLite cannot add constraints to a table, so there the table is rebuilt.

use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Invitations {
    Table,
    Id,
    CustomerId,
    AccountId,
    Email,
    Permissions,
    InviterUserId,
    Status,
    TokenDigest,
    ExpireTime,
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
enum Accounts {
    Table,
    Id,
}

const MEMBERSHIP_COLUMNS: &str = "id, user_id, customer_id, account_id, owner, permissions, status, create_time, update_time, revision";

const INDEXES: [&str; 5] = [
    "CREATE INDEX memberships_user_id_idx ON memberships (user_id)",
    "CREATE UNIQUE INDEX memberships_customer_user_key ON memberships (customer_id, user_id)",
    "CREATE UNIQUE INDEX memberships_account_user_key ON memberships (account_id, user_id)",
    "CREATE UNIQUE INDEX memberships_customer_owner_key ON memberships (customer_id) WHERE owner",
    "CREATE UNIQUE INDEX memberships_account_owner_key ON memberships (account_id) WHERE owner",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DatabaseBackend::Postgres;
        if postgres {
            for statement in [
                "DROP INDEX memberships_user_id_idx",
                "DROP INDEX memberships_customer_id_idx",
                "DROP INDEX memberships_account_id_idx",
                "ALTER TABLE memberships ADD CONSTRAINT memberships_one_target_check \
                 CHECK ((customer_id IS NULL) <> (account_id IS NULL))",
                "ALTER TABLE memberships ADD CONSTRAINT memberships_customer_id_fkey \
                 FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE RESTRICT",
                "ALTER TABLE memberships ADD CONSTRAINT memberships_account_id_fkey \
                 FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE RESTRICT",
            ] {
                db.execute_unprepared(statement).await?;
            }
        } else {
            db.execute_unprepared(
                "CREATE TABLE memberships_new (
                    id uuid_text NOT NULL PRIMARY KEY,
                    user_id uuid_text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                    customer_id uuid_text NULL REFERENCES customers (id) ON DELETE RESTRICT,
                    account_id uuid_text NULL REFERENCES accounts (id) ON DELETE RESTRICT,
                    owner boolean NOT NULL,
                    permissions text NOT NULL,
                    status varchar NOT NULL,
                    create_time integer NOT NULL,
                    update_time integer NOT NULL,
                    revision integer NOT NULL,
                    CHECK ((customer_id IS NULL) <> (account_id IS NULL))
                )",
            )
            .await?;
            db.execute_unprepared(&format!(
                "INSERT INTO memberships_new ({MEMBERSHIP_COLUMNS}) SELECT {MEMBERSHIP_COLUMNS} FROM memberships"
            ))
            .await?;
            db.execute_unprepared("DROP TABLE memberships").await?;
            db.execute_unprepared("ALTER TABLE memberships_new RENAME TO memberships")
                .await?;
        }
        for statement in INDEXES {
            db.execute_unprepared(statement).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Invitations::Table)
                    .col(pk_uuid(Invitations::Id))
                    .col(uuid_null(Invitations::CustomerId))
                    .col(uuid_null(Invitations::AccountId))
                    .col(string(Invitations::Email))
                    .col(text(Invitations::Permissions))
                    .col(uuid_null(Invitations::InviterUserId))
                    .col(string(Invitations::Status))
                    .col(string(Invitations::TokenDigest))
                    .col(big_integer(Invitations::ExpireTime))
                    .col(big_integer(Invitations::CreateTime))
                    .col(big_integer(Invitations::UpdateTime))
                    .col(big_integer(Invitations::Revision))
                    .check(
                        Expr::col(Invitations::CustomerId)
                            .is_null()
                            .ne(Expr::col(Invitations::AccountId).is_null()),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("invitations_customer_id_fkey")
                            .from(Invitations::Table, Invitations::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("invitations_account_id_fkey")
                            .from(Invitations::Table, Invitations::AccountId)
                            .to(Accounts::Table, Accounts::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        for statement in [
            "CREATE UNIQUE INDEX invitations_token_digest_key ON invitations (token_digest)",
            "CREATE INDEX invitations_customer_id_idx ON invitations (customer_id, id)",
            "CREATE INDEX invitations_account_id_idx ON invitations (account_id, id)",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Invitations::Table).to_owned())
            .await
    }
}
