//! Memberships indexed by user and then target, so a user's customers or accounts are
//! read in id order as a range (ListAccessibleResources' keyset pages): with the user
//! index alone, a page of a user with many memberships read and sorted all of them.
//! The two composite indexes also serve every lookup by user alone, so they replace it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "CREATE INDEX memberships_user_customer_idx ON memberships (user_id, customer_id)",
            "CREATE INDEX memberships_user_account_idx ON memberships (user_id, account_id)",
            "DROP INDEX memberships_user_id_idx",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "CREATE INDEX memberships_user_id_idx ON memberships (user_id)",
            "DROP INDEX memberships_user_customer_idx",
            "DROP INDEX memberships_user_account_idx",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}
