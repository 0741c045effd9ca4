use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invitations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub email: String,
    /// JSON array of permission names.
    pub permissions: String,
    /// JSON array of role names (roles of the customer), sorted.
    pub roles: String,
    pub inviter_user_id: Option<Uuid>,
    /// `pending`, `accepted` or `revoked` (expiry is read from `expire_time`).
    pub status: String,
    /// Hex SHA-256 of the token; the token itself is never stored.
    pub token_digest: String,
    pub expire_time: i64,
    pub create_time: i64,
    pub update_time: i64,
    pub revision: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
