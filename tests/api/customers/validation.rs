//! Field rules of a customer as the API applies them: every violation in one answer,
//! normalisation of what is stored, objects whose unknown keys are dropped.

use prost_types::{ListValue, Struct, Value, value::Kind};
use tenancy_client::pb;
use tonic::Code;

use super::{business, create, events, personal, try_create};
use crate::helpers::{Backend, spawn_app, unique_email, violated_fields};

pub fn string(text: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(text.into())),
    }
}

pub fn number(n: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

pub fn object(fields: &[(&str, Value)]) -> Struct {
    Struct {
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

async fn one_bad_request_lists_every_violation(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = pb::Customer {
        email: "not-an-email".into(),
        first_name: "".into(),
        // Over-long strings are refused at the edge, before these rules run (see
        // hardening::input); a control character is a rule of the domain.
        last_name: "Sil\u{7}va".into(),
        customer_type: pb::CustomerType::Business as i32,
        company_name: "".into(),
        country: "XX".into(),
        currency: "ABC".into(),
        language: "not a tag".into(),
        subdomain: "www".into(),
        hostname: "not a host".into(),
        customer_prefix: "toolongprefix".into(),
        addresses: vec![
            pb::Address {
                address_type: pb::AddressType::Postal as i32,
                country: "US".into(),
                ..Default::default()
            },
            pb::Address {
                address_type: pb::AddressType::Postal as i32,
                country: "ZZ".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let status = try_create(&app, customer).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields = violated_fields(&status);
    for expected in [
        "customer.email",
        "customer.first_name",
        "customer.last_name",
        "customer.company_name",
        "customer.country",
        "customer.currency",
        "customer.language",
        "customer.subdomain",
        "customer.hostname",
        "customer.customer_prefix",
        "customer.addresses[1].country",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} missing in {fields:?}"
        );
    }
    assert!(
        !fields
            .iter()
            .any(|f| f.starts_with("customer.addresses[0]")),
        "the good address is not blamed: {fields:?}"
    );
    assert!(events(&app).await.is_empty());
}

async fn the_customer_type_is_required(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = personal(&unique_email("type"));
    customer.customer_type = pb::CustomerType::Unspecified as i32;
    let status = try_create(&app, customer.clone()).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["customer.customer_type"]);
    customer.customer_type = 99;
    let status = try_create(&app, customer).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["customer.customer_type"]);
}

async fn codes_are_normalised_and_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = business(&unique_email("codes"), "Acme");
    customer.country = "br".into();
    customer.currency = "brl".into();
    customer.language = "pt-br".into();
    customer.hostname = "Café.Example.COM.".into();
    let created = create(&app, customer).await;
    assert_eq!(created.country, "BR");
    assert_eq!(created.currency, "BRL");
    assert_eq!(created.language, "pt-BR");
    assert_eq!(created.hostname, "xn--caf-dma.example.com");
}

async fn settings_keep_only_recognised_keys_and_check_their_values(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = personal(&unique_email("settings"));
    customer.customer_settings = Some(object(&[
        ("url", string("https://acme.example/home")),
        ("timezone", string("America/Sao_Paulo")),
        ("locale", string("pt_BR")),
        ("color", string("blue")),
    ]));
    let created = create(&app, customer).await;
    let settings = created.customer_settings.unwrap().fields;
    let mut keys: Vec<_> = settings.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["locale", "timezone", "url"],
        "unknown keys are dropped"
    );

    let mut bad = personal(&unique_email("settings"));
    bad.customer_settings = Some(object(&[
        ("url", string("ftp://acme.example")),
        ("logo", string("/relative.png")),
        ("timezone", string("Mars/Olympus")),
    ]));
    let status = try_create(&app, bad).await.unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "customer.customer_settings.logo",
            "customer.customer_settings.timezone",
            "customer.customer_settings.url",
        ]
    );
}

async fn metadata_is_bounded_and_at_most_one_level_deep(backend: Backend) {
    let app = spawn_app(backend).await;
    let nested = Value {
        kind: Some(Kind::StructValue(object(&[("inner", string("ok"))]))),
    };
    let list = Value {
        kind: Some(Kind::ListValue(ListValue {
            values: vec![number(1.0), string("two")],
        })),
    };
    let mut customer = personal(&unique_email("meta"));
    customer.customer_metadata = Some(object(&[
        ("crm", string("hubspot")),
        ("nested", nested.clone()),
        ("list", list),
    ]));
    let created = create(&app, customer).await;
    assert_eq!(created.customer_metadata.unwrap().fields.len(), 3);

    let too_deep = Value {
        kind: Some(Kind::StructValue(object(&[("inner", nested)]))),
    };
    let mut bad = personal(&unique_email("meta"));
    bad.customer_metadata = Some(object(&[
        ("deep", too_deep),
        ("long", string(&"x".repeat(501))),
        (&"k".repeat(41), string("v")),
    ]));
    let status = try_create(&app, bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields = violated_fields(&status);
    assert!(
        fields
            .iter()
            .any(|f| f == "customer.customer_metadata.deep"),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|f| f == "customer.customer_metadata.long"),
        "{fields:?}"
    );
    assert_eq!(fields.len(), 3, "{fields:?}");

    let mut many = personal(&unique_email("meta"));
    let entries: Vec<(String, Value)> = (0..51).map(|i| (format!("k{i}"), string("v"))).collect();
    many.customer_metadata = Some(Struct {
        fields: entries.into_iter().collect(),
    });
    let status = try_create(&app, many).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["customer.customer_metadata"]);

    // 40 keys of 500 two-byte characters: each within its bounds, 40 KB in all
    // (over 16 KiB), with a bad email in the same request.
    let mut heavy = personal("not an email");
    let entries: Vec<(String, Value)> = (0..40)
        .map(|i| (format!("k{i}"), string(&"ü".repeat(500))))
        .collect();
    heavy.customer_metadata = Some(Struct {
        fields: entries.into_iter().collect(),
    });
    let status = try_create(&app, heavy).await.unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["customer.customer_metadata", "customer.email"]);
    let mut light = personal(&unique_email("meta"));
    let entries: Vec<(String, Value)> = (0..15)
        .map(|i| (format!("k{i}"), string(&"ü".repeat(500))))
        .collect();
    light.customer_metadata = Some(Struct {
        fields: entries.into_iter().collect(),
    });
    create(&app, light).await;
}

async fn limits_are_non_negative_integers(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = personal(&unique_email("limits"));
    customer.customer_limits = Some(object(&[
        ("max_accounts", number(3.0)),
        ("max_rooms", number(0.0)),
        ("unknown", number(5.0)),
    ]));
    let created = create(&app, customer).await;
    let limits = created.customer_limits.unwrap().fields;
    assert_eq!(limits.get("max_accounts"), Some(&number(3.0)));
    assert!(!limits.contains_key("unknown"));

    let mut bad = personal(&unique_email("limits"));
    bad.customer_limits = Some(object(&[
        ("max_accounts", number(-1.0)),
        ("max_rooms", number(2.5)),
        ("max_storage", string("10")),
    ]));
    let status = try_create(&app, bad).await.unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "customer.customer_limits.max_accounts",
            "customer.customer_limits.max_rooms",
            "customer.customer_limits.max_storage",
        ]
    );
}

async fn telephones_are_stored_in_e164_with_the_country_as_region(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = business(&unique_email("phone"), "Fone");
    customer.country = "BR".into();
    customer.telephones = vec![
        pb::Telephone {
            telephone_type: pb::TelephoneType::Mobile as i32,
            default: true,
            number: "(11) 98765-4321".into(),
            telephone_extension: "".into(),
        },
        pb::Telephone {
            telephone_type: pb::TelephoneType::Landline as i32,
            default: false,
            number: "+1 415 555 2671".into(),
            telephone_extension: "123".into(),
        },
    ];
    let created = create(&app, customer).await;
    let numbers: Vec<_> = created
        .telephones
        .iter()
        .map(|t| t.number.as_str())
        .collect();
    assert_eq!(numbers, ["+5511987654321", "+14155552671"]);

    let mut bad = business(&unique_email("phone"), "Fone");
    bad.telephones = vec![
        pb::Telephone {
            telephone_type: pb::TelephoneType::Mobile as i32,
            default: true,
            number: "12".into(),
            telephone_extension: "abc".into(),
        },
        pb::Telephone {
            telephone_type: pb::TelephoneType::Unspecified as i32,
            default: true,
            number: "+14155552671".into(),
            telephone_extension: "".into(),
        },
    ];
    let status = try_create(&app, bad).await.unwrap_err();
    let fields = violated_fields(&status);
    for expected in [
        "customer.telephones[0].number",
        "customer.telephones[0].telephone_extension",
        "customer.telephones[1].telephone_type",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} missing in {fields:?}"
        );
    }
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("customer.telephones") && status.message().contains("default")),
        "two defaults are refused: {fields:?} {}",
        status.message()
    );
}

async fn addresses_allow_one_default_per_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let address = |kind: pb::AddressType, default: bool| pb::Address {
        address_type: kind as i32,
        default,
        country: "US".into(),
        city: "San Francisco".into(),
        address_line1: "123 Market St".into(),
        ..Default::default()
    };
    let mut customer = personal(&unique_email("addr"));
    customer.addresses = vec![
        address(pb::AddressType::Postal, true),
        address(pb::AddressType::Billing, true),
        address(pb::AddressType::Postal, false),
    ];
    let created = create(&app, customer).await;
    assert_eq!(created.addresses.len(), 3);

    let mut bad = personal(&unique_email("addr"));
    bad.addresses = vec![
        address(pb::AddressType::Billing, true),
        address(pb::AddressType::Billing, true),
    ];
    let status = try_create(&app, bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(!violated_fields(&status).is_empty());
}

async fn legal_documents_are_checked_by_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = |kind: &str, country: &str, value: &str, issued: &str| pb::LegalDocument {
        r#type: kind.into(),
        country: country.into(),
        value: value.into(),
        issued_date: issued.into(),
    };
    let mut customer = business(&unique_email("docs"), "Docs");
    customer.legal_documents = vec![
        doc("br_cpf", "BR", "529.982.247-25", "2020-01-31"),
        doc("br_cnpj", "BR", "11.222.333/0001-81", ""),
        doc("eu_vat", "GR", "EL094259216", ""),
        doc("eu_vat", "DE", "DE136695976", ""),
        doc("other", "BR", "contract #42", ""),
    ];
    let created = create(&app, customer).await;
    assert_eq!(created.legal_documents.len(), 5);

    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(2))
        .date_naive()
        .to_string();
    let mut bad = business(&unique_email("docs"), "Docs");
    bad.legal_documents = vec![
        doc("br_cpf", "BR", "529.982.247-26", ""),
        doc("br_cnpj", "BR", "11.222.333/0001-82", ""),
        doc("eu_vat", "DE", "FR40303265045", ""),
        doc("eu_vat", "GR", "GR094259216", ""),
        doc("passport", "BR", "X", ""),
        doc("other", "BR", "ok", &tomorrow),
    ];
    let status = try_create(&app, bad).await.unwrap_err();
    let fields = violated_fields(&status);
    for expected in [
        "customer.legal_documents[0].value",
        "customer.legal_documents[1].value",
        "customer.legal_documents[2].value",
        "customer.legal_documents[3].value",
        "customer.legal_documents[4].type",
        "customer.legal_documents[5].issued_date",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} missing in {fields:?}"
        );
    }
}

async fn domain_lists_are_normalised_and_bounded(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = personal(&unique_email("domains"));
    customer.allowed_domains_origins = vec![
        "HTTPS://App.Example.com:443".into(),
        "http://localhost.example:8080".into(),
        "example.org".into(),
    ];
    let created = create(&app, customer).await;
    assert_eq!(
        created.allowed_domains_origins,
        [
            "https://app.example.com",
            "http://localhost.example:8080",
            "example.org"
        ]
    );

    let mut bad = personal(&unique_email("domains"));
    bad.allowed_domains_origins = vec!["https://ok.example/path".into()];
    bad.allowed_domains_registration = (0..51).map(|i| format!("d{i}.example")).collect();
    let status = try_create(&app, bad).await.unwrap_err();
    let fields = violated_fields(&status);
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("customer.allowed_domains_origins")),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("customer.allowed_domains_registration")),
        "{fields:?}"
    );
}

crate::on_both_backends!(
    one_bad_request_lists_every_violation,
    the_customer_type_is_required,
    codes_are_normalised_and_stored,
    settings_keep_only_recognised_keys_and_check_their_values,
    metadata_is_bounded_and_at_most_one_level_deep,
    limits_are_non_negative_integers,
    telephones_are_stored_in_e164_with_the_country_as_region,
    addresses_allow_one_default_per_type,
    legal_documents_are_checked_by_type,
    domain_lists_are_normalised_and_bounded,
);
