use chrono::Utc;
use serde_json::{Value, json};

use super::*;
use crate::domain::Error;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default()
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => panic!("test input must be an object"),
    }
}

fn business<'a>() -> CustomerFields<'a> {
    CustomerFields {
        customer_type: Some(CustomerType::Business),
        email: "Owner@Acme.example",
        first_name: " Ana ",
        last_name: "Souza",
        company_name: "São Paulo Ltda",
        ..Default::default()
    }
}

fn violated(error: Error) -> Vec<String> {
    match error {
        Error::InvalidArgument(list) => list.into_iter().map(|v| v.field).collect(),
        other => panic!("expected violations, got {other:?}"),
    }
}

fn create(fields: &CustomerFields<'_>) -> NewCustomer {
    match NewCustomer::parse("customer", fields, today()) {
        Ok(customer) => customer,
        Err(error) => panic!("create refused: {error}"),
    }
}

fn create_err(fields: &CustomerFields<'_>) -> Vec<String> {
    match NewCustomer::parse("customer", fields, today()) {
        Ok(customer) => panic!("create accepted: {customer:?}"),
        Err(error) => violated(error),
    }
}

/// A stored customer made from a create, as the store would.
fn stored(fields: &CustomerFields<'_>) -> Customer {
    let new = create(fields);
    let now = Utc::now();
    Customer {
        id: Id::generate(),
        external_id: new.external_id,
        tenant_id: new.tenant_id,
        customer_key: "abc123xyz0".into(),
        customer_prefix: new.customer_prefix,
        status: new.status,
        email: new.email,
        first_name: new.first_name,
        last_name: new.last_name,
        company_name: new.company_name,
        customer_type: new.customer_type,
        hostname: new.hostname,
        subdomain: match new.subdomain {
            SubdomainChoice::Given(s) | SubdomainChoice::Generated(s) => s,
        },
        country: new.country,
        currency: new.currency,
        language: new.language,
        delinquent: new.delinquent,
        allowed_domains_origins: new.allowed_domains_origins,
        allowed_domains_registration: new.allowed_domains_registration,
        settings: new.settings,
        metadata: new.metadata,
        limits: new.limits,
        addresses: new.addresses,
        telephones: new.telephones,
        legal_documents: new.legal_documents,
        owner_user_id: Id::generate(),
        create_time: now,
        update_time: now,
        revision: 3,
    }
}

fn mask(paths: &[&str]) -> Vec<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

fn update(customer: &Customer, paths: &[&str], fields: &CustomerFields<'_>) -> Result<Customer> {
    customer.changed(&mask(paths), fields, today())
}

#[test]
fn a_minimal_business_gets_defaults_and_names_derived_from_the_company() {
    let customer = create(&business());
    assert_eq!(customer.status, CustomerStatus::Active);
    assert_eq!(customer.email.as_str(), "owner@acme.example");
    assert_eq!(customer.first_name, "Ana");
    assert_eq!(customer.language, "en");
    assert_eq!(customer.customer_prefix, "SPL");
    assert_eq!(
        customer.subdomain,
        SubdomainChoice::Generated("sao-paulo-ltda".into())
    );
    assert_eq!(
        (
            customer.country,
            customer.currency,
            customer.hostname,
            customer.external_id
        ),
        (None, None, None, None)
    );
    assert!(
        customer.settings.is_empty()
            && customer.metadata.is_empty()
            && customer.limits.0.is_empty()
    );
}

#[test]
fn a_person_gets_names_derived_from_first_and_last_name() {
    let fields = CustomerFields {
        customer_type: Some(CustomerType::Personal),
        company_name: "",
        first_name: "José",
        last_name: "da Silva",
        ..business()
    };
    let customer = create(&fields);
    assert_eq!(customer.customer_prefix, "JDS");
    assert_eq!(
        customer.subdomain,
        SubdomainChoice::Generated("jose-da-silva".into())
    );
}

#[test]
fn given_values_are_validated_and_normalised() {
    let origins = [
        "HTTPS://App.Acme.example:443".to_string(),
        "https://app.acme.example".into(),
    ];
    let registration = ["Acme.Example".to_string()];
    let fields = CustomerFields {
        external_id: " crm-42 ",
        tenant_id: "456",
        customer_prefix: "ac1",
        status: Some(CustomerStatus::Suspended),
        subdomain: "Acme",
        hostname: "Bücher.example.",
        country: "br",
        currency: "brl",
        language: "pt-br",
        delinquent: true,
        allowed_domains_origins: &origins,
        allowed_domains_registration: &registration,
        settings: Some(object(
            json!({"timezone": "America/Sao_Paulo", "theme": "dark"}),
        )),
        metadata: Some(object(json!({"crm": {"id": 1}}))),
        limits: Some(object(json!({"max_accounts": 3.0, "colour": 1}))),
        telephones: vec![TelephoneFields {
            telephone_type: Some(TelephoneType::Mobile),
            default: true,
            number: "(11) 98765-4321",
            telephone_extension: "",
        }],
        legal_documents: vec![LegalDocumentFields {
            kind: "br_cnpj",
            country: "",
            value: "11.222.333/0001-81",
            issued_date: "2020-01-31",
        }],
        ..business()
    };
    let customer = create(&fields);
    assert_eq!(customer.external_id.as_deref(), Some("crm-42"));
    assert_eq!(customer.tenant_id, "456");
    assert_eq!(customer.customer_prefix, "AC1");
    assert_eq!(customer.status, CustomerStatus::Suspended);
    assert_eq!(customer.subdomain, SubdomainChoice::Given("acme".into()));
    assert_eq!(customer.hostname.as_deref(), Some("xn--bcher-kva.example"));
    assert_eq!(
        (customer.country.as_deref(), customer.currency.as_deref()),
        (Some("BR"), Some("BRL"))
    );
    assert_eq!(customer.language, "pt-BR");
    assert!(customer.delinquent);
    assert_eq!(
        customer.allowed_domains_origins,
        ["https://app.acme.example"]
    );
    assert_eq!(customer.allowed_domains_registration, ["acme.example"]);
    assert_eq!(
        customer.settings,
        object(json!({"timezone": "America/Sao_Paulo"}))
    );
    assert_eq!(customer.limits.get("max_accounts"), Some(3));
    assert_eq!(customer.limits.0.len(), 1);
    assert_eq!(customer.telephones[0].number, "+5511987654321");
    assert_eq!(customer.legal_documents[0].value, "11222333000181");
    assert!(
        customer.admits_email(&Email::parse("x@acme.example").unwrap_or_else(|e| panic!("{e}")))
    );
    assert!(
        !customer.admits_email(&Email::parse("x@other.example").unwrap_or_else(|e| panic!("{e}")))
    );
}

#[test]
fn one_bad_request_reports_every_violation_at_once() {
    let long = "x".repeat(251);
    let origins = ["ftp://acme.example".to_string()];
    let registration = ["not a domain".to_string()];
    let fields = CustomerFields {
        external_id: &long,
        tenant_id: &long,
        customer_prefix: "TOO-LONG-PREFIX",
        customer_type: None,
        email: "not-an-email",
        first_name: "  ",
        language: "not a tag!",
        subdomain: "www",
        hostname: "192.168.0.1",
        country: "XX",
        currency: "ABC",
        allowed_domains_origins: &origins,
        allowed_domains_registration: &registration,
        settings: Some(object(json!({"timezone": "Mars/Base"}))),
        metadata: Some(object(json!({"foo": {"deep": {"x": 1}}}))),
        limits: Some(object(json!({"max_rooms": -1}))),
        addresses: vec![
            AddressFields {
                address_type: Some(AddressType::Postal),
                country: "US",
                ..Default::default()
            },
            AddressFields {
                address_type: Some(AddressType::Postal),
                country: "ZZ",
                ..Default::default()
            },
        ],
        telephones: vec![TelephoneFields {
            telephone_type: Some(TelephoneType::Landline),
            number: "12",
            ..Default::default()
        }],
        legal_documents: vec![LegalDocumentFields {
            kind: "br_cpf",
            value: "123.456.789-87",
            ..Default::default()
        }],
        ..business()
    };
    let mut fields = create_err(&fields);
    fields.sort();
    let mut want = [
        "customer.external_id",
        "customer.tenant_id",
        "customer.customer_prefix",
        "customer.customer_type",
        "customer.email",
        "customer.first_name",
        "customer.language",
        "customer.subdomain",
        "customer.hostname",
        "customer.country",
        "customer.currency",
        "customer.allowed_domains_origins[0]",
        "customer.allowed_domains_registration[0]",
        "customer.customer_settings.timezone",
        "customer.customer_metadata.foo",
        "customer.customer_limits.max_rooms",
        "customer.addresses[1].country",
        "customer.telephones[0].number",
        "customer.legal_documents[0].value",
    ];
    want.sort();
    assert_eq!(fields, want);
}

#[test]
fn a_business_needs_a_company_name_and_a_person_does_not() {
    assert_eq!(
        create_err(&CustomerFields {
            company_name: "  ",
            ..business()
        }),
        ["customer.company_name"]
    );
    let long = "x".repeat(201);
    assert_eq!(
        create_err(&CustomerFields {
            company_name: &long,
            ..business()
        }),
        ["customer.company_name"]
    );
    let person = CustomerFields {
        customer_type: Some(CustomerType::Personal),
        company_name: "",
        ..business()
    };
    assert_eq!(create(&person).company_name, "");
}

#[test]
fn a_national_telephone_needs_the_customers_country() {
    let phone = || TelephoneFields {
        telephone_type: Some(TelephoneType::Mobile),
        number: "912 345 678",
        ..Default::default()
    };
    let without = CustomerFields {
        telephones: vec![phone()],
        ..business()
    };
    assert_eq!(create_err(&without), ["customer.telephones[0].number"]);
    let with = CustomerFields {
        country: "PT",
        telephones: vec![phone()],
        ..business()
    };
    assert_eq!(create(&with).telephones[0].number, "+351912345678");
}

#[test]
fn the_update_mask_is_checked() {
    let customer = stored(&business());
    let bad = |paths: &[&str]| match update(&customer, paths, &business()) {
        Err(error) => violated(error),
        Ok(_) => panic!("{paths:?} accepted"),
    };
    assert_eq!(bad(&[]), ["update_mask"]);
    assert_eq!(bad(&["*", "email"]), ["update_mask"]);
    assert_eq!(bad(&["nickname"]), ["update_mask"]);
    assert_eq!(bad(&["customer_metadata.foo"]), ["update_mask"]);
}

#[test]
fn only_named_fields_change_and_output_only_ones_are_ignored() {
    let customer = stored(&business());
    let fields = CustomerFields {
        email: "new@acme.example",
        first_name: "Bia",
        country: "PT",
        ..business()
    };
    let next = update(
        &customer,
        &["email", "customer_key", "uuid", "etag"],
        &fields,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next.email.as_str(), "new@acme.example");
    assert_eq!(
        (next.first_name.as_str(), next.country.as_deref()),
        ("Ana", None)
    );
    assert_eq!(
        (
            next.id,
            &next.customer_key,
            next.owner_user_id,
            next.create_time,
            next.update_time,
            next.revision
        ),
        (
            customer.id,
            &customer.customer_key,
            customer.owner_user_id,
            customer.create_time,
            customer.update_time,
            customer.revision
        )
    );
}

#[test]
fn objects_and_lists_are_replaced_whole() {
    let original = CustomerFields {
        metadata: Some(object(json!({"a": 1, "b": 2}))),
        settings: Some(object(json!({"locale": "en_US", "timezone": "UTC"}))),
        addresses: vec![AddressFields {
            address_type: Some(AddressType::Billing),
            country: "US",
            ..Default::default()
        }],
        ..business()
    };
    let customer = stored(&original);
    let fields = CustomerFields {
        metadata: Some(object(json!({"c": 3}))),
        settings: Some(object(json!({"timezone": "Europe/Lisbon"}))),
        addresses: Vec::new(),
        ..business()
    };
    let next = update(
        &customer,
        &["customer_metadata", "customer_settings", "addresses"],
        &fields,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next.metadata, object(json!({"c": 3})));
    assert_eq!(next.settings, object(json!({"timezone": "Europe/Lisbon"})));
    assert!(next.addresses.is_empty());
}

#[test]
fn the_star_mask_writes_every_field_and_empty_optionals_clear() {
    let customer = stored(&CustomerFields {
        hostname: "app.acme.example",
        external_id: "crm-1",
        country: "BR",
        metadata: Some(object(json!({"a": 1}))),
        ..business()
    });
    let fields = CustomerFields {
        status: Some(CustomerStatus::Inactive),
        subdomain: "acme",
        ..business()
    };
    let next = update(&customer, &["*"], &fields).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (next.hostname, next.external_id, next.country),
        (None, None, None)
    );
    assert!(next.metadata.is_empty());
    assert_eq!(
        (next.status, next.subdomain.as_str()),
        (CustomerStatus::Inactive, "acme")
    );
}

#[test]
fn an_update_keeps_the_cross_field_rules() {
    let person = stored(&CustomerFields {
        customer_type: Some(CustomerType::Personal),
        company_name: "",
        ..business()
    });
    let to_business = CustomerFields {
        customer_type: Some(CustomerType::Business),
        company_name: "",
        ..business()
    };
    let err = update(&person, &["customer_type"], &to_business)
        .err()
        .map(violated);
    assert_eq!(err, Some(vec!["customer.company_name".to_string()]));

    let company = stored(&business());
    let cleared = CustomerFields {
        company_name: "",
        ..business()
    };
    let err = update(&company, &["company_name"], &cleared)
        .err()
        .map(violated);
    assert_eq!(err, Some(vec!["customer.company_name".to_string()]));

    let err = update(
        &company,
        &["subdomain"],
        &CustomerFields {
            subdomain: "",
            ..business()
        },
    )
    .err()
    .map(violated);
    assert_eq!(err, Some(vec!["customer.subdomain".to_string()]));
    let err = update(
        &company,
        &["status"],
        &CustomerFields {
            status: None,
            ..business()
        },
    )
    .err()
    .map(violated);
    assert_eq!(err, Some(vec!["customer.status".to_string()]));
    let err = update(
        &company,
        &["customer_type"],
        &CustomerFields {
            customer_type: None,
            ..business()
        },
    )
    .err()
    .map(violated);
    assert_eq!(err, Some(vec!["customer.customer_type".to_string()]));
}

#[test]
fn telephones_are_parsed_with_the_resulting_country() {
    let customer = stored(&CustomerFields {
        country: "BR",
        ..business()
    });
    let phone = TelephoneFields {
        telephone_type: Some(TelephoneType::Mobile),
        number: "912 345 678",
        ..Default::default()
    };
    let fields = CustomerFields {
        country: "PT",
        telephones: vec![phone.clone()],
        ..business()
    };
    let next =
        update(&customer, &["country", "telephones"], &fields).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next.telephones[0].number, "+351912345678");

    let brazilian = TelephoneFields {
        number: "(11) 98765-4321",
        ..phone
    };
    let fields = CustomerFields {
        telephones: vec![brazilian],
        ..business()
    };
    let next = update(&customer, &["telephones"], &fields).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next.telephones[0].number, "+5511987654321");
}

#[test]
fn an_empty_prefix_in_the_mask_is_derived_from_the_resulting_names() {
    let customer = stored(&CustomerFields {
        customer_prefix: "OLD",
        ..business()
    });
    assert_eq!(customer.customer_prefix, "OLD");
    let fields = CustomerFields {
        customer_prefix: "",
        company_name: "Nova Empresa",
        ..business()
    };
    let next = update(&customer, &["customer_prefix", "company_name"], &fields)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next.customer_prefix, "NE");
}

#[test]
fn no_status_leads_out_of_terminated() {
    let mut customer = stored(&business());
    let to = |status| CustomerFields {
        status: Some(status),
        ..business()
    };
    let terminated = update(&customer, &["status"], &to(CustomerStatus::Terminated))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(terminated.status, CustomerStatus::Terminated);
    customer.status = CustomerStatus::Terminated;
    for status in [
        CustomerStatus::Active,
        CustomerStatus::Inactive,
        CustomerStatus::Suspended,
    ] {
        match update(&customer, &["status"], &to(status)) {
            Err(Error::FailedPrecondition { kind, subject, .. }) => {
                assert_eq!(kind, "CUSTOMER_TERMINATED");
                assert_eq!(subject, format!("customers/{}", customer.id));
            }
            other => panic!("{status:?}: {other:?}"),
        }
    }
    assert!(
        update(
            &customer,
            &["status", "first_name"],
            &to(CustomerStatus::Terminated)
        )
        .is_ok()
    );
}
