//! The field-by-field validation that create and update share; the rules that span
//! fields (company name, telephones and the country, generated names) sit with each.

use chrono::NaiveDate;

use super::{
    Address, CustomerFields, CustomerType, LegalDocument,
    contact::{bounded_text, parse_addresses},
    documents::parse_legal_documents,
    domains::{parse_domain_list, parse_hostname, parse_origin},
    names::{parse_prefix, parse_subdomain},
    settings::parse_settings,
};
use crate::domain::{
    Error, Result,
    geo::{optional, parse_country, parse_currency},
    limits::{CUSTOMER_LIMIT_KEYS, Limits, parse_limits},
    metadata::{JsonObject, parse_metadata},
    user::{Email, parse_language, parse_name},
    violations::Violations,
};

pub const MAX_EXTERNAL_ID_LEN: usize = 250;
pub const MAX_TENANT_ID_LEN: usize = 250;
pub const MAX_COMPANY_NAME_LEN: usize = 200;

/// Each field that was asked for and is valid; `None` = not asked for, or invalid (then
/// a violation is recorded). For optional fields the inner `None` is "empty".
#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub external_id: Option<Option<String>>,
    pub tenant_id: Option<String>,
    pub customer_prefix: Option<Option<String>>,
    pub email: Option<Email>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company_name: Option<String>,
    pub customer_type: Option<CustomerType>,
    pub hostname: Option<Option<String>>,
    pub subdomain: Option<Option<String>>,
    pub country: Option<Option<String>>,
    pub currency: Option<Option<String>>,
    pub language: Option<String>,
    pub delinquent: Option<bool>,
    pub allowed_domains_origins: Option<Vec<String>>,
    pub allowed_domains_registration: Option<Vec<String>>,
    pub settings: Option<JsonObject>,
    pub metadata: Option<JsonObject>,
    pub limits: Option<Limits>,
    pub addresses: Option<Vec<Address>>,
    pub legal_documents: Option<Vec<LegalDocument>>,
}

/// Validates the fields `wants` names (by their `Customer` field name), recording
/// violations under `prefix`. Status and telephones are left to the caller: their
/// rules differ between create and update, or depend on other fields.
pub(super) fn parse_named(
    prefix: &str,
    fields: &CustomerFields<'_>,
    today: NaiveDate,
    wants: &dyn Fn(&str) -> bool,
    violations: &mut Violations,
) -> Result<Parsed> {
    let at = |name: &str| format!("{prefix}.{name}");
    let mut parsed = Parsed::default();
    let text = |violations: &mut Violations,
                name: &str,
                parse: &dyn Fn(&str) -> Result<String, String>,
                value: &str| {
        if wants(name) {
            violations.check(&at(name), parse(value))
        } else {
            None
        }
    };
    parsed.tenant_id = text(
        violations,
        "tenant_id",
        &|t| bounded_text(t, MAX_TENANT_ID_LEN),
        fields.tenant_id,
    );
    parsed.first_name = text(violations, "first_name", &parse_name, fields.first_name);
    parsed.last_name = text(violations, "last_name", &parse_name, fields.last_name);
    parsed.company_name = text(
        violations,
        "company_name",
        &|t| bounded_text(t, MAX_COMPANY_NAME_LEN),
        fields.company_name,
    );
    parsed.language = text(violations, "language", &parse_language, fields.language);

    let maybe = |violations: &mut Violations,
                 name: &str,
                 parse: &dyn Fn(&str) -> Result<String, String>,
                 value: &str| {
        if wants(name) {
            violations.check(&at(name), optional(value, parse))
        } else {
            None
        }
    };
    parsed.external_id = maybe(
        violations,
        "external_id",
        &parse_external_id,
        fields.external_id,
    );
    parsed.customer_prefix = maybe(
        violations,
        "customer_prefix",
        &parse_prefix,
        fields.customer_prefix,
    );
    parsed.hostname = maybe(violations, "hostname", &parse_hostname, fields.hostname);
    parsed.subdomain = maybe(violations, "subdomain", &parse_subdomain, fields.subdomain);
    parsed.country = maybe(violations, "country", &parse_country, fields.country);
    parsed.currency = maybe(violations, "currency", &parse_currency, fields.currency);

    if wants("email") {
        parsed.email = violations.check(&at("email"), Email::parse(fields.email));
    }
    if wants("customer_type") {
        parsed.customer_type = fields.customer_type;
        if fields.customer_type.is_none() {
            violations.add(at("customer_type"), "is required: BUSINESS or PERSONAL");
        }
    }
    if wants("delinquent") {
        parsed.delinquent = Some(fields.delinquent);
    }
    if wants("allowed_domains_origins") {
        let name = at("allowed_domains_origins");
        let list = parse_domain_list(
            violations,
            &name,
            fields.allowed_domains_origins,
            parse_origin,
        );
        parsed.allowed_domains_origins = Some(list);
    }
    if wants("allowed_domains_registration") {
        let name = at("allowed_domains_registration");
        let list = parse_domain_list(
            violations,
            &name,
            fields.allowed_domains_registration,
            parse_hostname,
        );
        parsed.allowed_domains_registration = Some(list);
    }
    if wants("customer_settings") {
        let result = parse_settings(&at("customer_settings"), fields.settings.as_ref());
        parsed.settings = nested(violations, result)?;
    }
    if wants("customer_metadata") {
        let result = parse_metadata(&at("customer_metadata"), fields.metadata.as_ref());
        parsed.metadata = nested(violations, result)?;
    }
    if wants("customer_limits") {
        let result = parse_limits(
            &at("customer_limits"),
            &CUSTOMER_LIMIT_KEYS,
            fields.limits.as_ref(),
        );
        parsed.limits = nested(violations, result)?;
    }
    if wants("addresses") {
        parsed.addresses = Some(parse_addresses(
            violations,
            &at("addresses"),
            &fields.addresses,
        ));
    }
    if wants("legal_documents") {
        let list = parse_legal_documents(
            violations,
            &at("legal_documents"),
            &fields.legal_documents,
            today,
        );
        parsed.legal_documents = Some(list);
    }
    Ok(parsed)
}

/// The value of a validator that reports its own violations, which join the request's.
fn nested<T>(violations: &mut Violations, result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) => violations.absorb(error).map(|()| None),
    }
}

/// An identifier in the caller's other system: at most 250 characters, no control
/// characters; surrounding spaces are dropped.
pub fn parse_external_id(text: &str) -> Result<String, String> {
    let text = bounded_text(text, MAX_EXTERNAL_ID_LEN)?;
    if text.is_empty() {
        Err("is required".into())
    } else {
        Ok(text)
    }
}

/// A BUSINESS customer needs a company name.
pub(super) fn check_company(
    prefix: &str,
    customer_type: Option<CustomerType>,
    company_name: &str,
    violations: &mut Violations,
) {
    if customer_type == Some(CustomerType::Business) && company_name.is_empty() {
        violations.add(
            format!("{prefix}.company_name"),
            "is required for a BUSINESS customer",
        );
    }
}

/// The name initials and slugs come from: the company's, else the person's.
pub(super) fn display_name(
    customer_type: Option<CustomerType>,
    company: &str,
    first: &str,
    last: &str,
) -> String {
    match customer_type {
        Some(CustomerType::Business) if !company.is_empty() => company.to_string(),
        _ => format!("{first} {last}"),
    }
}

/// For the branch after `Violations::finish` succeeded, where every field is set: a
/// missing one is a bug here, not the caller's fault.
pub(super) fn required<T>(value: Option<T>, name: &str) -> Result<T> {
    value.ok_or_else(|| {
        Error::internal(format!(
            "customer field `{name}` failed without a violation"
        ))
    })
}
