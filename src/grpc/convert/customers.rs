//! `Customer` and its parts, between protobuf and the domain.

use super::{
    keep, pb, structs::limits_struct, structs::to_json_object, structs::to_struct, timestamp,
};
use crate::domain::{
    Error, Result,
    customer::{
        Address, AddressFields, AddressType, Customer, CustomerFields, CustomerStatus,
        CustomerType, LegalDocument, LegalDocumentFields, Telephone, TelephoneFields,
        TelephoneType,
    },
    etag,
    violations::{Read, Violations},
};

/// A request's customer status: unspecified is `None`; a number outside the enum is an
/// error at `field`.
pub fn customer_status(field: &str, value: i32) -> Result<Option<CustomerStatus>> {
    match pb::CustomerStatus::try_from(value) {
        Ok(pb::CustomerStatus::Unspecified) => Ok(None),
        Ok(pb::CustomerStatus::Active) => Ok(Some(CustomerStatus::Active)),
        Ok(pb::CustomerStatus::Inactive) => Ok(Some(CustomerStatus::Inactive)),
        Ok(pb::CustomerStatus::Suspended) => Ok(Some(CustomerStatus::Suspended)),
        Ok(pb::CustomerStatus::Terminated) => Ok(Some(CustomerStatus::Terminated)),
        Err(_) => Err(not_in_enum(field, value, "CustomerStatus")),
    }
}

pub fn customer_type(field: &str, value: i32) -> Result<Option<CustomerType>> {
    match pb::CustomerType::try_from(value) {
        Ok(pb::CustomerType::Unspecified) => Ok(None),
        Ok(pb::CustomerType::Business) => Ok(Some(CustomerType::Business)),
        Ok(pb::CustomerType::Personal) => Ok(Some(CustomerType::Personal)),
        Err(_) => Err(not_in_enum(field, value, "CustomerType")),
    }
}

fn address_type(field: &str, value: i32) -> Result<Option<AddressType>> {
    match pb::AddressType::try_from(value) {
        Ok(pb::AddressType::Unspecified) => Ok(None),
        Ok(pb::AddressType::Postal) => Ok(Some(AddressType::Postal)),
        Ok(pb::AddressType::Billing) => Ok(Some(AddressType::Billing)),
        Err(_) => Err(not_in_enum(field, value, "AddressType")),
    }
}

fn telephone_type(field: &str, value: i32) -> Result<Option<TelephoneType>> {
    match pb::TelephoneType::try_from(value) {
        Ok(pb::TelephoneType::Unspecified) => Ok(None),
        Ok(pb::TelephoneType::Landline) => Ok(Some(TelephoneType::Landline)),
        Ok(pb::TelephoneType::Mobile) => Ok(Some(TelephoneType::Mobile)),
        Err(_) => Err(not_in_enum(field, value, "TelephoneType")),
    }
}

fn not_in_enum(field: &str, value: i32, name: &str) -> Error {
    Error::invalid(field, format!("{value} is not a value of {name}"))
}

/// The enum filters of `ListCustomers`; a number outside its enum is refused, for
/// validation to report with the request's other violations.
pub fn customer_filters(
    r: &pb::ListCustomersRequest,
) -> Read<(Option<CustomerStatus>, Option<CustomerType>)> {
    let mut violations = Violations::new();
    let status = keep(&mut violations, customer_status("status", r.status)).flatten();
    let kind = keep(
        &mut violations,
        customer_type("customer_type", r.customer_type),
    )
    .flatten();
    Read {
        value: (status, kind),
        refused: violations.into_refused(),
    }
}

/// The writable fields of a request's `Customer`; a missing message reads as empty.
/// Numbers outside an enum and non-finite numbers in a Struct are not errors here: they
/// are the fields' `refused`, which validation reports with the request's other
/// violations.
pub fn customer_fields(customer: Option<&pb::Customer>) -> CustomerFields<'_> {
    let Some(c) = customer else {
        return CustomerFields::default();
    };
    let mut violations = Violations::new();
    let status = keep(
        &mut violations,
        customer_status("customer.status", c.status),
    )
    .flatten();
    let kind = keep(
        &mut violations,
        customer_type("customer.customer_type", c.customer_type),
    )
    .flatten();
    let settings = keep(
        &mut violations,
        to_json_object("customer.customer_settings", c.customer_settings.as_ref()),
    )
    .flatten();
    let metadata = keep(
        &mut violations,
        to_json_object("customer.customer_metadata", c.customer_metadata.as_ref()),
    )
    .flatten();
    let limits = keep(
        &mut violations,
        to_json_object("customer.customer_limits", c.customer_limits.as_ref()),
    )
    .flatten();
    let addresses = c
        .addresses
        .iter()
        .enumerate()
        .map(|(i, a)| AddressFields {
            address_type: keep(
                &mut violations,
                address_type(
                    &format!("customer.addresses[{i}].address_type"),
                    a.address_type,
                ),
            )
            .flatten(),
            default: a.default,
            country: &a.country,
            state: &a.state,
            postal_code: &a.postal_code,
            city: &a.city,
            address_line1: &a.address_line1,
            address_line2: &a.address_line2,
            po_box: &a.po_box,
            building_number: &a.building_number,
            complement: &a.complement,
        })
        .collect();
    let telephones = c
        .telephones
        .iter()
        .enumerate()
        .map(|(i, t)| TelephoneFields {
            telephone_type: keep(
                &mut violations,
                telephone_type(
                    &format!("customer.telephones[{i}].telephone_type"),
                    t.telephone_type,
                ),
            )
            .flatten(),
            default: t.default,
            number: &t.number,
            telephone_extension: &t.telephone_extension,
        })
        .collect();
    CustomerFields {
        refused: violations.into_refused(),
        external_id: &c.external_id,
        tenant_id: &c.tenant_id,
        customer_prefix: &c.customer_prefix,
        status,
        email: &c.email,
        first_name: &c.first_name,
        last_name: &c.last_name,
        company_name: &c.company_name,
        customer_type: kind,
        hostname: &c.hostname,
        subdomain: &c.subdomain,
        country: &c.country,
        currency: &c.currency,
        language: &c.language,
        delinquent: c.delinquent,
        allowed_domains_origins: &c.allowed_domains_origins,
        allowed_domains_registration: &c.allowed_domains_registration,
        settings,
        metadata,
        limits,
        addresses,
        telephones,
        legal_documents: c
            .legal_documents
            .iter()
            .map(|d| LegalDocumentFields {
                kind: &d.r#type,
                country: &d.country,
                value: &d.value,
                issued_date: &d.issued_date,
            })
            .collect(),
    }
}

impl From<&Customer> for pb::Customer {
    fn from(c: &Customer) -> Self {
        pb::Customer {
            uuid: c.id.to_string(),
            ulid: c.id.ulid(),
            external_id: c.external_id.clone().unwrap_or_default(),
            tenant_id: c.tenant_id.clone(),
            customer_key: c.customer_key.clone(),
            customer_prefix: c.customer_prefix.clone(),
            status: match c.status {
                CustomerStatus::Active => pb::CustomerStatus::Active,
                CustomerStatus::Inactive => pb::CustomerStatus::Inactive,
                CustomerStatus::Suspended => pb::CustomerStatus::Suspended,
                CustomerStatus::Terminated => pb::CustomerStatus::Terminated,
            } as i32,
            email: c.email.as_str().to_string(),
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            company_name: c.company_name.clone(),
            customer_type: match c.customer_type {
                CustomerType::Business => pb::CustomerType::Business,
                CustomerType::Personal => pb::CustomerType::Personal,
            } as i32,
            hostname: c.hostname.clone().unwrap_or_default(),
            subdomain: c.subdomain.clone(),
            country: c.country.clone().unwrap_or_default(),
            currency: c.currency.clone().unwrap_or_default(),
            language: c.language.clone(),
            delinquent: c.delinquent,
            allowed_domains_origins: c.allowed_domains_origins.clone(),
            allowed_domains_registration: c.allowed_domains_registration.clone(),
            customer_settings: Some(to_struct(&c.settings)),
            customer_metadata: Some(to_struct(&c.metadata)),
            customer_limits: Some(limits_struct(&c.limits)),
            addresses: c.addresses.iter().map(Into::into).collect(),
            telephones: c.telephones.iter().map(Into::into).collect(),
            legal_documents: c.legal_documents.iter().map(Into::into).collect(),
            owner_user_id: c.owner_user_id.to_string(),
            create_time: Some(timestamp(c.create_time)),
            update_time: Some(timestamp(c.update_time)),
            etag: etag::format(c.revision),
        }
    }
}

impl From<&Address> for pb::Address {
    fn from(a: &Address) -> Self {
        pb::Address {
            address_type: match a.address_type {
                AddressType::Postal => pb::AddressType::Postal,
                AddressType::Billing => pb::AddressType::Billing,
            } as i32,
            default: a.default,
            country: a.country.clone(),
            state: a.state.clone(),
            postal_code: a.postal_code.clone(),
            city: a.city.clone(),
            address_line1: a.address_line1.clone(),
            address_line2: a.address_line2.clone(),
            po_box: a.po_box.clone(),
            building_number: a.building_number.clone(),
            complement: a.complement.clone(),
        }
    }
}

impl From<&Telephone> for pb::Telephone {
    fn from(t: &Telephone) -> Self {
        pb::Telephone {
            telephone_type: match t.telephone_type {
                TelephoneType::Landline => pb::TelephoneType::Landline,
                TelephoneType::Mobile => pb::TelephoneType::Mobile,
            } as i32,
            default: t.default,
            number: t.number.clone(),
            telephone_extension: t.telephone_extension.clone(),
        }
    }
}

impl From<&LegalDocument> for pb::LegalDocument {
    fn from(d: &LegalDocument) -> Self {
        pb::LegalDocument {
            r#type: d.kind.clone(),
            country: d.country.clone(),
            value: d.value.clone(),
            issued_date: d.issued_date.clone(),
        }
    }
}
