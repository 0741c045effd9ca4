//! `UpdateCustomer`: masks, whole-value writes, etags and uniqueness.

use tenancy_client::pb;
use tonic::Code;

use super::validation::{number, object, string};
use super::{business, create, events, get, kinds, personal, update};
use crate::helpers::{Backend, error_reason, spawn_app, unique_email, violated_fields};

async fn only_the_fields_in_the_mask_change(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, business(&unique_email("mask"), "Mask Co")).await;
    let changes = pb::Customer {
        first_name: "Beatriz".into(),
        last_name: "ignored".into(),
        company_name: "ignored".into(),
        ..Default::default()
    };
    let updated = update(&app, &created.uuid, changes, &["first_name"], "")
        .await
        .unwrap();
    assert_eq!(updated.first_name, "Beatriz");
    assert_eq!(updated.last_name, created.last_name);
    assert_eq!(updated.company_name, created.company_name);
    assert_ne!(updated.etag, created.etag);
    assert_eq!(updated.customer_key, created.customer_key);
    assert_eq!(updated.create_time, created.create_time);
    assert_eq!(get(&app, &created.uuid).await.unwrap(), updated);
    assert_eq!(
        kinds(&events(&app).await).last().unwrap(),
        "customer.updated"
    );
}

async fn settings_metadata_limits_and_lists_are_replaced_whole(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = business(&unique_email("whole"), "Whole Co");
    customer.customer_settings = Some(object(&[
        ("url", string("https://a.example")),
        ("timezone", string("Europe/Lisbon")),
    ]));
    customer.customer_metadata = Some(object(&[("a", string("1")), ("b", string("2"))]));
    customer.customer_limits = Some(object(&[
        ("max_accounts", number(5.0)),
        ("max_rooms", number(9.0)),
    ]));
    customer.allowed_domains_origins = vec!["a.example".into(), "b.example".into()];
    customer.allowed_domains_registration = vec!["a.example".into()];
    customer.addresses = vec![pb::Address {
        address_type: pb::AddressType::Postal as i32,
        country: "PT".into(),
        city: "Lisboa".into(),
        ..Default::default()
    }];
    customer.telephones = vec![pb::Telephone {
        telephone_type: pb::TelephoneType::Mobile as i32,
        number: "+351912345678".into(),
        ..Default::default()
    }];
    customer.legal_documents = vec![pb::LegalDocument {
        r#type: "other".into(),
        country: "PT".into(),
        value: "contract 1".into(),
        issued_date: "".into(),
    }];
    let email = "boss@a.example".to_string();
    let mut request = super::create_request(customer);
    request.customer.as_mut().unwrap().email = email;
    let created = app
        .customers
        .clone()
        .create_customer(request)
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();

    let replacement = pb::Customer {
        customer_settings: Some(object(&[("locale", string("pt_PT"))])),
        customer_metadata: Some(object(&[("c", string("3"))])),
        customer_limits: Some(object(&[("max_rooms", number(1.0))])),
        allowed_domains_origins: vec!["c.example".into()],
        allowed_domains_registration: vec![],
        addresses: vec![],
        telephones: vec![pb::Telephone {
            telephone_type: pb::TelephoneType::Landline as i32,
            number: "+351213456789".into(),
            ..Default::default()
        }],
        legal_documents: vec![],
        ..Default::default()
    };
    let updated = update(
        &app,
        &created.uuid,
        replacement,
        &[
            "customer_settings",
            "customer_metadata",
            "customer_limits",
            "allowed_domains_origins",
            "allowed_domains_registration",
            "addresses",
            "telephones",
            "legal_documents",
        ],
        &created.etag,
    )
    .await
    .unwrap();
    let keys = |s: Option<prost_types::Struct>| -> Vec<String> {
        let mut k: Vec<_> = s.unwrap_or_default().fields.into_keys().collect();
        k.sort();
        k
    };
    assert_eq!(keys(updated.customer_settings.clone()), ["locale"]);
    assert_eq!(keys(updated.customer_metadata.clone()), ["c"]);
    assert_eq!(keys(updated.customer_limits.clone()), ["max_rooms"]);
    assert_eq!(updated.allowed_domains_origins, ["c.example"]);
    assert!(updated.allowed_domains_registration.is_empty());
    assert!(updated.addresses.is_empty());
    assert_eq!(updated.telephones.len(), 1);
    assert_eq!(updated.telephones[0].number, "+351213456789");
    assert!(updated.legal_documents.is_empty());
    assert_eq!(get(&app, &created.uuid).await.unwrap(), updated);
}

async fn a_stale_etag_is_aborted_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, personal(&unique_email("etag"))).await;
    let changes = pb::Customer {
        first_name: "First".into(),
        ..Default::default()
    };
    let first = update(
        &app,
        &created.uuid,
        changes.clone(),
        &["first_name"],
        &created.etag,
    )
    .await
    .unwrap();
    let status = update(
        &app,
        &created.uuid,
        pb::Customer {
            first_name: "Second".into(),
            ..Default::default()
        },
        &["first_name"],
        &created.etag,
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(get(&app, &created.uuid).await.unwrap(), first);
    let status = app
        .customers
        .clone()
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: created.uuid.clone(),
            etag: created.etag.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
}

async fn masks_are_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, personal(&unique_email("masks"))).await;
    for paths in [&[][..], &["nickname"][..], &["*", "email"][..]] {
        let status = update(&app, &created.uuid, pb::Customer::default(), paths, "")
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{paths:?}");
        assert!(
            violated_fields(&status).contains(&"update_mask".to_string()),
            "{paths:?}"
        );
    }
    // Output-only fields are ignored, not errors; the customer key never changes.
    let same = update(
        &app,
        &created.uuid,
        pb::Customer {
            customer_key: "zzzzzzzzzz".into(),
            ..Default::default()
        },
        &["customer_key", "uuid"],
        "",
    )
    .await
    .unwrap();
    assert_eq!(same.customer_key, created.customer_key);

    // `*` replaces every writable field: a bare customer is invalid.
    let status = update(&app, &created.uuid, pb::Customer::default(), &["*"], "")
        .await
        .unwrap_err();
    assert!(violated_fields(&status).contains(&"customer.email".to_string()));
    let missing = update(
        &app,
        &tenancy::domain::id::Id::generate().to_string(),
        pb::Customer::default(),
        &["first_name"],
        "",
    )
    .await
    .unwrap_err();
    assert!(matches!(
        missing.code(),
        Code::NotFound | Code::InvalidArgument
    ));
}

async fn business_customers_keep_a_company_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, personal(&unique_email("tobiz"))).await;
    let status = update(
        &app,
        &created.uuid,
        pb::Customer {
            customer_type: pb::CustomerType::Business as i32,
            ..Default::default()
        },
        &["customer_type"],
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&status), ["customer.company_name"]);
    let updated = update(
        &app,
        &created.uuid,
        pb::Customer {
            customer_type: pb::CustomerType::Business as i32,
            company_name: "Now Inc".into(),
            ..Default::default()
        },
        &["customer_type", "company_name"],
        "",
    )
    .await
    .unwrap();
    assert_eq!(updated.customer_type, pb::CustomerType::Business as i32);
}

async fn an_update_to_a_taken_unique_value_is_already_exists(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = create(&app, business(&unique_email("one"), "One Co")).await;
    let second = create(&app, business(&unique_email("two"), "Two Co")).await;
    for (path, value, reason) in [
        (
            "email",
            pb::Customer {
                email: first.email.clone(),
                ..Default::default()
            },
            "EMAIL_TAKEN",
        ),
        (
            "subdomain",
            pb::Customer {
                subdomain: first.subdomain.clone(),
                ..Default::default()
            },
            "SUBDOMAIN_TAKEN",
        ),
    ] {
        let status = update(&app, &second.uuid, value, &[path], "")
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{path}");
        assert_eq!(error_reason(&status).as_deref(), Some(reason));
    }
    // A customer's own values are not a conflict with itself.
    let same = update(
        &app,
        &first.uuid,
        pb::Customer {
            email: first.email.to_uppercase(),
            subdomain: first.subdomain.clone(),
            ..Default::default()
        },
        &["email", "subdomain"],
        "",
    )
    .await
    .unwrap();
    assert_eq!(same.email, first.email);
}

crate::on_both_backends!(
    only_the_fields_in_the_mask_change,
    settings_metadata_limits_and_lists_are_replaced_whole,
    a_stale_etag_is_aborted_and_changes_nothing,
    masks_are_checked,
    business_customers_keep_a_company_name,
    an_update_to_a_taken_unique_value_is_already_exists,
);
