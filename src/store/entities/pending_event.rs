//! PostgreSQL only: an event its transaction wrote, not yet numbered by the sequencer
//! (`store::sequencer`). `txid` is filled by the column's default and not mapped.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pending_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub kind: String,
    pub resource_id: Uuid,
    pub customer_id: Option<Uuid>,
    pub time: i64,
    /// JSON of the resource after the change.
    pub payload: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
