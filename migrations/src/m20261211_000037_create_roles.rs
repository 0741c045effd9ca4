//! Roles (SPEC §13): a customer's named sets of permissions, unique by name within the
//! customer, and the role names each membership and invitation holds (a JSON array, like
//! its permissions; `[]` for existing rows).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Roles {
    Table,
    Id,
    CustomerId,
    /// 1–64 characters of `[a-z0-9_.-]`; fixed at creation.
    Name,
    Description,
    /// JSON array of permission names.
    Permissions,
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
enum Memberships {
    Table,
    Roles,
}

#[derive(DeriveIden)]
enum Invitations {
    Table,
    Roles,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Roles::Table)
                    .if_not_exists()
                    .col(uuid(Roles::Id).primary_key())
                    .col(uuid(Roles::CustomerId))
                    .col(string(Roles::Name))
                    .col(text(Roles::Description))
                    .col(text(Roles::Permissions))
                    .col(big_integer(Roles::CreateTime))
                    .col(big_integer(Roles::UpdateTime))
                    .col(big_integer(Roles::Revision))
                    // The customer's deletion removes its roles first; this keeps a
                    // role from outliving its customer whatever the code does.
                    .foreign_key(
                        ForeignKey::create()
                            .name("roles_customer_id_fkey")
                            .from(Roles::Table, Roles::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // One name per customer; also the index of a customer's roles by name.
        manager
            .create_index(
                Index::create()
                    .name("roles_customer_id_name_key")
                    .table(Roles::Table)
                    .col(Roles::CustomerId)
                    .col(Roles::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Memberships::Table)
                    .add_column(text(Memberships::Roles).default("[]"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Invitations::Table)
                    .add_column(text(Invitations::Roles).default("[]"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Invitations::Table)
                    .drop_column(Invitations::Roles)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Memberships::Table)
                    .drop_column(Memberships::Roles)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Roles::Table).to_owned())
            .await
    }
}
