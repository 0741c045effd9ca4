use sea_orm::entity::prelude::*;

/// A one-time token of a user (password reset, email verification), by its digest.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub digest: String,
    pub user_id: Uuid,
    pub purpose: String,
    /// The email it was issued for.
    pub email: String,
    pub expire_time: i64,
    pub used_time: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
