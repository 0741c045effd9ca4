//! Customers: the billable tenants, their profile rules and their lifecycle.
//!
//! `NewCustomer::parse` and `Customer::changed` validate a whole request at once and
//! report every violated field; the field rules live in the submodules.

pub mod contact;
pub mod documents;
pub mod names;
pub mod settings;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Result, id::Id, limits::Limits, user::Email};

pub use contact::{Address, AddressFields, AddressType, Telephone, TelephoneFields, TelephoneType};
pub use documents::{LegalDocument, LegalDocumentFields};

/// A JSON object, as `customer_settings` and `customer_metadata` hold.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Where a customer is in its lifecycle. Any status may move to any other, except out
/// of `Terminated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CustomerStatus {
    Active,
    Inactive,
    Suspended,
    Terminated,
}

impl CustomerStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            CustomerStatus::Active => "active",
            CustomerStatus::Inactive => "inactive",
            CustomerStatus::Suspended => "suspended",
            CustomerStatus::Terminated => "terminated",
        }
    }

    pub fn from_db(text: &str) -> Option<Self> {
        match text {
            "active" => Some(CustomerStatus::Active),
            "inactive" => Some(CustomerStatus::Inactive),
            "suspended" => Some(CustomerStatus::Suspended),
            "terminated" => Some(CustomerStatus::Terminated),
            _ => None,
        }
    }

    /// Whether a customer in this status may move to `next` (staying put is allowed).
    pub fn may_become(&self, next: CustomerStatus) -> bool {
        *self != CustomerStatus::Terminated || next == CustomerStatus::Terminated
    }

    /// Whether new things (accounts, memberships, invitations) may be created under it.
    pub fn accepts_new_things(&self) -> bool {
        *self == CustomerStatus::Active
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CustomerType {
    Business,
    Personal,
}

impl CustomerType {
    pub fn as_str(&self) -> &'static str {
        match self {
            CustomerType::Business => "business",
            CustomerType::Personal => "personal",
        }
    }

    pub fn from_db(text: &str) -> Option<Self> {
        match text {
            "business" => Some(CustomerType::Business),
            "personal" => Some(CustomerType::Personal),
            _ => None,
        }
    }
}

/// A customer as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub id: Id,
    pub external_id: Option<String>,
    pub tenant_id: String,
    /// 10 lower-case base36 characters, generated, never changes.
    pub customer_key: String,
    pub customer_prefix: String,
    pub status: CustomerStatus,
    pub email: Email,
    pub first_name: String,
    pub last_name: String,
    pub company_name: String,
    pub customer_type: CustomerType,
    /// ASCII (punycode) form, lower-case.
    pub hostname: Option<String>,
    pub subdomain: String,
    /// ISO 3166-1 alpha-2, upper-case.
    pub country: Option<String>,
    /// ISO 4217 alpha-3, upper-case.
    pub currency: Option<String>,
    pub language: String,
    pub delinquent: bool,
    pub allowed_domains_origins: Vec<String>,
    pub allowed_domains_registration: Vec<String>,
    pub settings: JsonObject,
    pub metadata: JsonObject,
    pub limits: Limits,
    pub addresses: Vec<Address>,
    pub telephones: Vec<Telephone>,
    pub legal_documents: Vec<LegalDocument>,
    pub owner_user_id: Id,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub revision: i64,
}

impl Customer {
    /// Whether a user with `email` may become a member of this customer or of its
    /// accounts: always when `allowed_domains_registration` is empty.
    pub fn admits_email(&self, email: &Email) -> bool {
        self.allowed_domains_registration.is_empty()
            || self
                .allowed_domains_registration
                .iter()
                .any(|domain| domain == email.domain())
    }
}

/// How a new customer's subdomain is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubdomainChoice {
    /// The caller's subdomain, validated; taken = `SUBDOMAIN_TAKEN`.
    Given(String),
    /// A slug generated from the names; if taken, `<slug>-<customer_key>` is used.
    Generated(String),
}

/// A customer to create, validated. The store adds the id, the key and the owner.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCustomer {
    pub external_id: Option<String>,
    pub tenant_id: String,
    pub customer_prefix: String,
    pub status: CustomerStatus,
    pub email: Email,
    pub first_name: String,
    pub last_name: String,
    pub company_name: String,
    pub customer_type: CustomerType,
    pub hostname: Option<String>,
    pub subdomain: SubdomainChoice,
    pub country: Option<String>,
    pub currency: Option<String>,
    pub language: String,
    pub delinquent: bool,
    pub allowed_domains_origins: Vec<String>,
    pub allowed_domains_registration: Vec<String>,
    pub settings: JsonObject,
    pub metadata: JsonObject,
    pub limits: Limits,
    pub addresses: Vec<Address>,
    pub telephones: Vec<Telephone>,
    pub legal_documents: Vec<LegalDocument>,
}

impl NewCustomer {
    /// Whether a user with `email` may own this customer (see `Customer::admits_email`).
    pub fn admits_email(&self, email: &Email) -> bool {
        self.allowed_domains_registration.is_empty()
            || self
                .allowed_domains_registration
                .iter()
                .any(|domain| domain == email.domain())
    }
}

/// The raw fields of a request's `Customer`, before validation. Enums the request left
/// unspecified are `None`; the gRPC layer refuses numbers outside an enum.
#[derive(Debug, Clone, Default)]
pub struct CustomerFields<'a> {
    pub external_id: &'a str,
    pub tenant_id: &'a str,
    pub customer_prefix: &'a str,
    pub status: Option<CustomerStatus>,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub company_name: &'a str,
    pub customer_type: Option<CustomerType>,
    pub hostname: &'a str,
    pub subdomain: &'a str,
    pub country: &'a str,
    pub currency: &'a str,
    pub language: &'a str,
    pub delinquent: bool,
    pub allowed_domains_origins: &'a [String],
    pub allowed_domains_registration: &'a [String],
    /// `None` when the request carried no object (same as an empty one).
    pub settings: Option<JsonObject>,
    pub metadata: Option<JsonObject>,
    pub limits: Option<JsonObject>,
    pub addresses: Vec<AddressFields<'a>>,
    pub telephones: Vec<TelephoneFields<'a>>,
    pub legal_documents: Vec<LegalDocumentFields<'a>>,
}

/// Filters of `ListCustomers`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerFilter {
    pub status: Option<CustomerStatus>,
    pub customer_type: Option<CustomerType>,
    pub country: Option<String>,
    /// Lower-cased prefix of the email, company name, first name or last name.
    pub query: Option<String>,
}

impl CustomerFilter {
    /// The canonical text page tokens are bound to.
    pub fn canonical(&self) -> String {
        format!(
            "ListCustomers|s={}|t={}|c={}|q={}",
            self.status.map(|s| s.as_str()).unwrap_or(""),
            self.customer_type.map(|t| t.as_str()).unwrap_or(""),
            self.country.as_deref().unwrap_or(""),
            self.query.as_deref().unwrap_or("")
        )
    }
}

/// How a request names one customer in `GetCustomer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerKey {
    Id(Id),
    Email(Email),
    ExternalId(String),
    CustomerKey(String),
    Subdomain(String),
    /// ASCII (punycode) form, lower-case.
    Hostname(String),
}

impl NewCustomer {
    /// Validates every field of a create, reporting all violations under `prefix`
    /// (`customer`). `today` bounds `legal_documents[].issued_date`.
    pub fn parse(
        prefix: &str,
        fields: &CustomerFields<'_>,
        today: NaiveDate,
    ) -> Result<NewCustomer> {
        let _ = (prefix, fields, today);
        todo!("customers domain helper")
    }
}

impl Customer {
    /// The customer after an update: `paths` is the update mask (`*` = every writable
    /// field; output-only paths are ignored; unknown paths are `update_mask`
    /// violations). Validates the named fields and the rules that span fields
    /// (`company_name` for BUSINESS, telephones parsed with the resulting country, no
    /// way out of TERMINATED as a `FailedPrecondition`). Does not bump the revision or
    /// the times: the store does.
    pub fn changed(
        &self,
        paths: &[String],
        fields: &CustomerFields<'_>,
        today: NaiveDate,
    ) -> Result<Customer> {
        let _ = (paths, fields, today);
        todo!("customers domain helper")
    }
}
