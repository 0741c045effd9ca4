use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "memberships")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub customer_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub owner: bool,
    /// JSON array of permission names.
    pub permissions: String,
    /// JSON array of role names (roles of the customer), sorted.
    pub roles: String,
    pub status: String,
    pub create_time: i64,
    pub update_time: i64,
    pub revision: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
