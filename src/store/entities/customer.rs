use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "customers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub external_id: Option<String>,
    pub tenant_id: String,
    pub customer_key: String,
    pub customer_prefix: String,
    pub status: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub company_name: String,
    /// Lower-cased copies for case-insensitive prefix search.
    pub first_name_lower: String,
    pub last_name_lower: String,
    pub company_name_lower: String,
    pub customer_type: String,
    pub hostname: Option<String>,
    pub subdomain: String,
    pub country: Option<String>,
    pub currency: Option<String>,
    pub language: String,
    pub delinquent: bool,
    /// JSON: arrays of strings.
    pub allowed_domains_origins: String,
    pub allowed_domains_registration: String,
    /// JSON objects.
    pub settings: String,
    pub metadata: String,
    pub limits: String,
    /// JSON arrays of the domain's address, telephone and legal document values.
    pub addresses: String,
    pub telephones: String,
    pub legal_documents: String,
    pub owner_user_id: Uuid,
    pub create_time: i64,
    pub update_time: i64,
    pub revision: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
