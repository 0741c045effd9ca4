use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub customer_id: Option<Uuid>,
    pub create_time: i64,
    pub last_refresh_time: i64,
    pub expire_time: i64,
    pub absolute_expire_time: i64,
    pub revoke_time: Option<i64>,
    pub revoke_reason: Option<String>,
    /// The generation of the refresh token that works now.
    pub generation: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
