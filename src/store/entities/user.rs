use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Lower-cased copies for case-insensitive prefix search.
    pub first_name_lower: String,
    pub last_name_lower: String,
    pub language: String,
    pub status: String,
    pub password_hash: Option<String>,
    pub last_login_time: Option<i64>,
    pub create_time: i64,
    pub update_time: i64,
    pub revision: i64,
    pub email_verified: bool,
    pub totp_enabled: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
