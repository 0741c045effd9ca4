//! Customers: the billable tenants, their profile rules and their lifecycle.
//!
//! `NewCustomer::parse` and `Customer::changed` validate a whole request at once and
//! report every violated field; the field rules live in the submodules.

pub mod contact;
pub mod documents;
pub mod domains;
pub mod names;
mod profile;
pub mod settings;
pub mod tax_ids;
mod update;

#[cfg(test)]
mod tests;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Result,
    id::Id,
    limits::Limits,
    user::Email,
    violations::{Refused, Violations},
};
use profile::required;

pub use contact::{Address, AddressFields, AddressType, Telephone, TelephoneFields, TelephoneType};
pub use documents::{LegalDocument, LegalDocumentFields};

pub use super::geo::parse_country;
pub use super::metadata::JsonObject;
pub use domains::parse_hostname;
pub use names::{collision_subdomain, generate_customer_key, parse_customer_key, parse_subdomain};
pub use profile::parse_external_id;

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
/// unspecified are `None`, and so are enums holding a number outside the enum: those are
/// in `refused`, which validation reports with every other violation.
#[derive(Debug, Clone, Default)]
pub struct CustomerFields<'a> {
    /// The fields that could not be read: a number outside an enum (the enum is `None`
    /// here), a non-finite number in a Struct (the object is `None`).
    pub refused: Refused,
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    ///
    /// Empty optional text (external_id, hostname, country, currency) is `None`; status
    /// defaults to ACTIVE and language to `en`. `customer_prefix` is upper-cased, or
    /// derived from the initials of the company (BUSINESS) or of the names; without a
    /// subdomain one is generated from the same name (`SubdomainChoice::Generated`).
    /// Telephones are parsed with the customer's country as the default region.
    pub fn parse(
        prefix: &str,
        fields: &CustomerFields<'_>,
        today: NaiveDate,
    ) -> Result<NewCustomer> {
        fields.refused.over(Self::parse_read(prefix, fields, today))
    }

    /// `parse` of the fields that could be read.
    fn parse_read(
        prefix: &str,
        fields: &CustomerFields<'_>,
        today: NaiveDate,
    ) -> Result<NewCustomer> {
        let mut violations = Violations::new();
        let parsed = profile::parse_named(prefix, fields, today, &|_| true, &mut violations)?;
        let company_name = parsed.company_name.clone().unwrap_or_default();
        if parsed.company_name.is_some() {
            profile::check_company(prefix, parsed.customer_type, &company_name, &mut violations);
        }
        let country = parsed.country.clone().flatten();
        let telephones = contact::parse_telephones(
            &mut violations,
            &format!("{prefix}.telephones"),
            &fields.telephones,
            country.as_deref(),
        );
        violations.finish()?;

        let first_name = required(parsed.first_name, "first_name")?;
        let last_name = required(parsed.last_name, "last_name")?;
        let customer_type = required(parsed.customer_type, "customer_type")?;
        let name =
            profile::display_name(Some(customer_type), &company_name, &first_name, &last_name);
        let customer_prefix = match required(parsed.customer_prefix, "customer_prefix")? {
            Some(given) => given,
            None => names::derived_prefix(&name),
        };
        let subdomain = match required(parsed.subdomain, "subdomain")? {
            Some(given) => SubdomainChoice::Given(given),
            None => SubdomainChoice::Generated(names::generated_subdomain(&name)),
        };
        Ok(NewCustomer {
            external_id: required(parsed.external_id, "external_id")?,
            tenant_id: required(parsed.tenant_id, "tenant_id")?,
            customer_prefix,
            status: fields.status.unwrap_or(CustomerStatus::Active),
            email: required(parsed.email, "email")?,
            first_name,
            last_name,
            company_name,
            customer_type,
            hostname: required(parsed.hostname, "hostname")?,
            subdomain,
            country,
            currency: required(parsed.currency, "currency")?,
            language: required(parsed.language, "language")?,
            delinquent: fields.delinquent,
            allowed_domains_origins: required(
                parsed.allowed_domains_origins,
                "allowed_domains_origins",
            )?,
            allowed_domains_registration: required(
                parsed.allowed_domains_registration,
                "allowed_domains_registration",
            )?,
            settings: required(parsed.settings, "customer_settings")?,
            metadata: required(parsed.metadata, "customer_metadata")?,
            limits: required(parsed.limits, "customer_limits")?,
            addresses: required(parsed.addresses, "addresses")?,
            telephones,
            legal_documents: required(parsed.legal_documents, "legal_documents")?,
        })
    }
}

impl Customer {
    /// The customer after an update: `paths` is the update mask (`*` = every writable
    /// field; output-only paths are ignored; unknown paths are `update_mask`
    /// violations). Validates the named fields and the rules that span fields
    /// (`company_name` for BUSINESS, telephones parsed with the resulting country, no
    /// way out of TERMINATED as a `FailedPrecondition`). Refused fields are violations
    /// whatever the mask names. Does not bump the revision or the times: the store does.
    pub fn changed(
        &self,
        paths: &[String],
        fields: &CustomerFields<'_>,
        today: NaiveDate,
    ) -> Result<Customer> {
        fields
            .refused
            .over(update::changed(self, paths, fields, today))
    }
}
