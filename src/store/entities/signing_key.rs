use sea_orm::entity::prelude::*;

/// A key that signs access tokens; the private half sealed under the master key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    pub public_key: String,
    pub private_key: String,
    pub sealed_under: String,
    pub created_at: i64,
    pub signs_from: i64,
    pub retired_at: Option<i64>,
    pub published_until: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
