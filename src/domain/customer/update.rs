//! `UpdateCustomer` (AIP-134): the update mask, whole-value replacement of the named
//! fields, and the rules that span fields on the result.

use chrono::NaiveDate;

use super::{
    Customer, CustomerFields,
    contact::parse_telephones,
    names::derived_prefix,
    profile::{check_company, display_name, parse_named},
};
use crate::domain::{Error, Result, violations::Violations};

const PREFIX: &str = "customer";

/// Fields a caller may name in an update mask; `*` is all of them.
pub const WRITABLE_FIELDS: [&str; 23] = [
    "external_id",
    "tenant_id",
    "customer_prefix",
    "status",
    "email",
    "first_name",
    "last_name",
    "company_name",
    "customer_type",
    "hostname",
    "subdomain",
    "country",
    "currency",
    "language",
    "delinquent",
    "allowed_domains_origins",
    "allowed_domains_registration",
    "customer_settings",
    "customer_metadata",
    "customer_limits",
    "addresses",
    "telephones",
    "legal_documents",
];

/// Fields the service computes: a mask may name them, and they are ignored (AIP-203).
pub const OUTPUT_ONLY_FIELDS: [&str; 7] = [
    "uuid",
    "ulid",
    "customer_key",
    "owner_user_id",
    "create_time",
    "update_time",
    "etag",
];

/// See `Customer::changed`. Decisions beyond SPEC: an empty `customer_prefix` in the mask
/// is derived again from the resulting names; an empty `subdomain` is a violation, as a
/// customer always has one and a new one could collide, which only the store can
/// resolve; empty `hostname`, `external_id`, `country`, `currency` clear them. Stored
/// telephones are already E.164, so a new country re-parses only telephones in the mask.
pub(super) fn changed(
    customer: &Customer,
    paths: &[String],
    fields: &CustomerFields<'_>,
    today: NaiveDate,
) -> Result<Customer> {
    let mut violations = Violations::new();
    let all = check_mask(paths, &mut violations);
    // Which fields to validate depends on the mask: a broken one is reported alone.
    violations.finish()?;
    let mut violations = Violations::new();
    let wants = |name: &str| all || paths.iter().any(|path| path == name);
    let parsed = parse_named(PREFIX, fields, today, &wants, &mut violations)?;
    let company_failed = wants("company_name") && parsed.company_name.is_none();

    let mut next = customer.clone();
    if wants("status") {
        match fields.status {
            Some(status) => next.status = status,
            None => violations.add(
                format!("{PREFIX}.status"),
                "is required when `status` is in the update mask",
            ),
        }
    }
    if let Some(subdomain) = parsed.subdomain {
        match subdomain {
            Some(subdomain) => next.subdomain = subdomain,
            None => violations.add(
                format!("{PREFIX}.subdomain"),
                "is required: a customer always has a subdomain",
            ),
        }
    }
    replace(&mut next.external_id, parsed.external_id);
    replace(&mut next.tenant_id, parsed.tenant_id);
    replace(&mut next.email, parsed.email);
    replace(&mut next.first_name, parsed.first_name);
    replace(&mut next.last_name, parsed.last_name);
    replace(&mut next.company_name, parsed.company_name);
    replace(&mut next.customer_type, parsed.customer_type);
    replace(&mut next.hostname, parsed.hostname);
    replace(&mut next.country, parsed.country);
    replace(&mut next.currency, parsed.currency);
    replace(&mut next.language, parsed.language);
    replace(&mut next.delinquent, parsed.delinquent);
    replace(
        &mut next.allowed_domains_origins,
        parsed.allowed_domains_origins,
    );
    replace(
        &mut next.allowed_domains_registration,
        parsed.allowed_domains_registration,
    );
    replace(&mut next.settings, parsed.settings);
    replace(&mut next.metadata, parsed.metadata);
    replace(&mut next.limits, parsed.limits);
    replace(&mut next.addresses, parsed.addresses);
    replace(&mut next.legal_documents, parsed.legal_documents);
    if let Some(prefix) = parsed.customer_prefix {
        next.customer_prefix = prefix.unwrap_or_else(|| {
            derived_prefix(&display_name(
                Some(next.customer_type),
                &next.company_name,
                &next.first_name,
                &next.last_name,
            ))
        });
    }

    if (wants("customer_type") || wants("company_name")) && !company_failed {
        check_company(
            PREFIX,
            Some(next.customer_type),
            &next.company_name,
            &mut violations,
        );
    }
    if wants("telephones") {
        next.telephones = parse_telephones(
            &mut violations,
            &format!("{PREFIX}.telephones"),
            &fields.telephones,
            next.country.as_deref(),
        );
    }
    violations.finish()?;

    if !customer.status.may_become(next.status) {
        return Err(Error::FailedPrecondition {
            kind: "CUSTOMER_TERMINATED",
            subject: format!("customers/{}", customer.id),
            description: "a TERMINATED customer cannot change status: termination is final".into(),
        });
    }
    Ok(next)
}

/// Records the mask's violations; whether it is `*`.
fn check_mask(paths: &[String], violations: &mut Violations) -> bool {
    if paths.is_empty() {
        violations.add(
            "update_mask",
            "is required: name the fields to change, or `*`",
        );
    }
    let all = paths.iter().any(|path| path == "*");
    if all && paths.len() > 1 {
        violations.add("update_mask", "`*` cannot be combined with other paths");
    }
    for path in paths {
        let known = path == "*"
            || WRITABLE_FIELDS.contains(&path.as_str())
            || OUTPUT_ONLY_FIELDS.contains(&path.as_str());
        if !known {
            violations.add(
                "update_mask",
                format!(
                    "`{path}` is not a field of Customer (lists and objects are replaced whole)"
                ),
            );
        }
    }
    all
}

fn replace<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}
