//! CustomerService tests: creation and its owner (this file), validation, lookups and
//! lists, updates, the lifecycle, and races (one file each under `customers/`).

mod indexes;
mod lifecycle;
mod lookup;
mod races;
mod stored;
mod update;
pub mod validation;

use tenancy::domain::event::Event;
use tenancy_client::pb;
use tonic::{Code, Status};

use crate::helpers::{Backend, GOOD_PASSWORD, TestApp, error_reason, spawn_app, unique_email};

/// A valid BUSINESS customer with `email` and `company`.
pub fn business(email: &str, company: &str) -> pb::Customer {
    pb::Customer {
        email: email.into(),
        first_name: "Ana".into(),
        last_name: "Silva".into(),
        company_name: company.into(),
        customer_type: pb::CustomerType::Business as i32,
        country: "BR".into(),
        ..Default::default()
    }
}

/// A valid PERSONAL customer with `email`.
pub fn personal(email: &str) -> pb::Customer {
    pb::Customer {
        email: email.into(),
        first_name: "João".into(),
        last_name: "Araújo".into(),
        customer_type: pb::CustomerType::Personal as i32,
        ..Default::default()
    }
}

pub fn create_request(customer: pb::Customer) -> pb::CreateCustomerRequest {
    pb::CreateCustomerRequest {
        customer: Some(customer),
        password: GOOD_PASSWORD.into(),
        ..Default::default()
    }
}

pub async fn try_create(app: &TestApp, customer: pb::Customer) -> Result<pb::Customer, Status> {
    app.customers
        .clone()
        .create_customer(create_request(customer))
        .await
        .map(|r| r.into_inner().customer.expect("a created customer"))
}

/// Creates a customer (and its new owner) through the API.
pub async fn create(app: &TestApp, customer: pb::Customer) -> pb::Customer {
    let email = customer.email.clone();
    try_create(app, customer)
        .await
        .unwrap_or_else(|status| panic!("create customer {email}: {status:?}"))
}

pub async fn get_by(
    app: &TestApp,
    lookup: pb::get_customer_request::Lookup,
) -> Result<pb::Customer, Status> {
    app.customers
        .clone()
        .get_customer(pb::GetCustomerRequest {
            lookup: Some(lookup),
        })
        .await
        .map(|r| r.into_inner().customer.expect("a customer"))
}

pub async fn get(app: &TestApp, id: &str) -> Result<pb::Customer, Status> {
    get_by(app, pb::get_customer_request::Lookup::CustomerId(id.into())).await
}

pub async fn update(
    app: &TestApp,
    id: &str,
    customer: pb::Customer,
    paths: &[&str],
    etag: &str,
) -> Result<pb::Customer, Status> {
    app.customers
        .clone()
        .update_customer(pb::UpdateCustomerRequest {
            customer_id: id.into(),
            customer: Some(customer),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
            etag: etag.into(),
        })
        .await
        .map(|r| r.into_inner().customer.expect("an updated customer"))
}

/// Moves a customer to `status` (no etag).
pub async fn set_status(app: &TestApp, id: &str, status: pb::CustomerStatus) -> pb::Customer {
    update(
        app,
        id,
        pb::Customer {
            status: status as i32,
            ..Default::default()
        },
        &["status"],
        "",
    )
    .await
    .unwrap_or_else(|s| panic!("set status {status:?}: {s:?}"))
}

pub async fn events(app: &TestApp) -> Vec<Event> {
    app.log_after(0, 100_000).await.expect("events")
}

pub fn kinds(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.kind.clone()).collect()
}

async fn creating_a_customer_makes_a_new_owner_user_and_membership(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("owner");
    let customer = create(&app, business(&email, "São Paulo Ltda")).await;

    assert_eq!(customer.email, email);
    assert_eq!(customer.status, pb::CustomerStatus::Active as i32);
    assert_eq!(customer.language, "en");
    assert!(!customer.uuid.is_empty() && !customer.ulid.is_empty());
    assert_eq!(customer.customer_key.len(), 10);
    assert!(
        customer
            .customer_key
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    );
    assert_eq!(customer.subdomain, "sao-paulo-ltda");
    assert_eq!(customer.customer_prefix, "SPL");
    assert!(customer.etag.starts_with("W/"));

    let owner = app
        .users
        .clone()
        .get_user(pb::GetUserRequest {
            lookup: Some(pb::get_user_request::Lookup::Email(email.clone())),
        })
        .await
        .expect("the owner user exists")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(customer.owner_user_id, owner.uuid);
    assert!(owner.has_password);
    assert_eq!(
        (owner.first_name.as_str(), owner.last_name.as_str()),
        ("Ana", "Silva")
    );

    let memberships = app
        .users
        .clone()
        .list_user_memberships(pb::ListUserMembershipsRequest {
            user_id: owner.uuid.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .memberships;
    assert_eq!(memberships.len(), 1);
    assert!(memberships[0].owner);
    assert_eq!(
        memberships[0].target,
        Some(pb::membership::Target::CustomerId(customer.uuid.clone()))
    );
    assert_eq!(memberships[0].status, pb::MembershipStatus::Active as i32);

    assert_eq!(
        kinds(&events(&app).await),
        ["user.created", "customer.created", "membership.created"]
    );
}

async fn an_existing_user_with_the_customer_email_becomes_owner_with_password_untouched(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let email = unique_email("existing");
    let user = crate::users::create(&app, &email, GOOD_PASSWORD).await;
    let request = pb::CreateCustomerRequest {
        customer: Some(personal(&email.to_uppercase())),
        // Would fail the policy if it were used: it is ignored for an existing user.
        password: "short".into(),
        ..Default::default()
    };
    let customer = app
        .customers
        .clone()
        .create_customer(request)
        .await
        .expect("create")
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(customer.owner_user_id, user.uuid);
    let after = crate::users::get(&app, &user.uuid).await.unwrap();
    assert_eq!(after.etag, user.etag, "the existing user is not modified");
    let signed_in = app
        .users
        .clone()
        .authenticate_user(pb::AuthenticateUserRequest {
            email: email.clone(),
            password: GOOD_PASSWORD.into(),
            totp_code: String::new(),
        })
        .await;
    assert!(signed_in.is_ok(), "the old password still works");
    assert_eq!(
        kinds(&events(&app).await),
        ["user.created", "customer.created", "membership.created"]
    );
}

async fn owner_user_id_names_the_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = crate::users::create(&app, &unique_email("chosen"), "").await;
    let request = pb::CreateCustomerRequest {
        customer: Some(personal(&unique_email("other"))),
        owner_user_id: user.ulid.clone(),
        ..Default::default()
    };
    let customer = app
        .customers
        .clone()
        .create_customer(request)
        .await
        .expect("no password needed with an owner")
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(customer.owner_user_id, user.uuid);

    let missing = app
        .customers
        .clone()
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(personal(&unique_email("x"))),
            owner_user_id: tenancy::domain::id::Id::generate().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

async fn a_new_owner_needs_a_password_that_passes_the_policy(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("nopass");
    for password in ["", "short", "password123", email.as_str()] {
        let status = app
            .customers
            .clone()
            .create_customer(pb::CreateCustomerRequest {
                customer: Some(personal(&email)),
                password: password.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{password:?}");
        assert_eq!(crate::helpers::violated_fields(&status), ["password"]);
    }
    assert!(events(&app).await.is_empty(), "nothing was written");
}

async fn the_owner_must_have_an_allowed_registration_domain(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = personal(&unique_email("outsider"));
    customer.allowed_domains_registration = vec!["corp.example".into()];
    let status = try_create(&app, customer).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(events(&app).await.is_empty(), "no user and no customer");

    let email = format!(
        "boss-{}@corp.example",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let mut customer = personal(&email);
    customer.allowed_domains_registration = vec!["CORP.example".into()];
    let created = create(&app, customer).await;
    assert_eq!(created.allowed_domains_registration, ["corp.example"]);
}

async fn a_duplicate_email_is_already_exists_email_taken(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("dup");
    create(&app, personal(&email)).await;
    let before = events(&app).await.len();
    let status = try_create(&app, personal(&email.to_uppercase()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(error_reason(&status).as_deref(), Some("EMAIL_TAKEN"));
    assert_eq!(events(&app).await.len(), before);
}

async fn unique_values_are_already_exists_with_their_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut first = personal(&unique_email("a"));
    first.subdomain = "taken-sub".into();
    first.hostname = "portal.taken.example".into();
    first.external_id = "crm-1".into();
    create(&app, first).await;
    for (field, reason) in [
        ("subdomain", "SUBDOMAIN_TAKEN"),
        ("hostname", "HOSTNAME_TAKEN"),
        ("external_id", "EXTERNAL_ID_TAKEN"),
    ] {
        let mut second = personal(&unique_email("b"));
        match field {
            "subdomain" => second.subdomain = "TAKEN-sub".into(),
            "hostname" => second.hostname = "Portal.Taken.Example".into(),
            _ => second.external_id = "crm-1".into(),
        }
        let status = try_create(&app, second).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{field}");
        assert_eq!(error_reason(&status).as_deref(), Some(reason), "{field}");
    }
}

async fn a_customer_key_is_never_accepted_from_a_caller(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = personal(&unique_email("key"));
    customer.customer_key = "aaaaaaaaaa".into();
    customer.uuid = "0190f5a0-0000-7000-8000-000000000000".into();
    customer.owner_user_id = "0190f5a0-0000-7000-8000-000000000001".into();
    let created = create(&app, customer).await;
    assert_ne!(created.customer_key, "aaaaaaaaaa");
    assert_ne!(created.uuid, "0190f5a0-0000-7000-8000-000000000000");
}

async fn a_retry_with_the_same_request_id_returns_the_first_customer(backend: Backend) {
    let app = spawn_app(backend).await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut request = create_request(business(&unique_email("retry"), "Retry Inc"));
    request.request_id = request_id.clone();
    let first = app
        .customers
        .clone()
        .create_customer(request.clone())
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let count = events(&app).await.len();
    let second = app
        .customers
        .clone()
        .create_customer(request.clone())
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(events(&app).await.len(), count, "the retry created nothing");

    request.customer.as_mut().unwrap().company_name = "Other Inc".into();
    let status = app
        .customers
        .clone()
        .create_customer(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(crate::helpers::violated_fields(&status), ["request_id"]);
}

async fn an_email_has_one_spelling_whatever_the_idna_form(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, personal("q@BÜCHER.example")).await;
    assert_eq!(created.email, "q@xn--bcher-kva.example");
    let status = try_create(&app, personal("Q@xn--bcher-kva.example"))
        .await
        .unwrap_err();
    assert_eq!(error_reason(&status).as_deref(), Some("EMAIL_TAKEN"));
    let mut allowed = personal("boss@bücher.example");
    allowed.allowed_domains_registration = vec!["BÜCHER.example".into()];
    allowed.subdomain = "buecher-boss".into();
    create(&app, allowed).await;
}

async fn a_customer_created_terminated_has_an_inactive_owner_membership(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = personal(&unique_email("born-terminated"));
    customer.status = pb::CustomerStatus::Terminated as i32;
    let created = create(&app, customer).await;
    let memberships = app
        .users
        .clone()
        .list_user_memberships(pb::ListUserMembershipsRequest {
            user_id: created.owner_user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .memberships;
    assert_eq!(memberships[0].status, pb::MembershipStatus::Inactive as i32);
}

crate::on_both_backends!(
    an_email_has_one_spelling_whatever_the_idna_form,
    a_customer_created_terminated_has_an_inactive_owner_membership,
    creating_a_customer_makes_a_new_owner_user_and_membership,
    an_existing_user_with_the_customer_email_becomes_owner_with_password_untouched,
    owner_user_id_names_the_owner,
    a_new_owner_needs_a_password_that_passes_the_policy,
    the_owner_must_have_an_allowed_registration_domain,
    a_duplicate_email_is_already_exists_email_taken,
    unique_values_are_already_exists_with_their_reason,
    a_customer_key_is_never_accepted_from_a_caller,
    a_retry_with_the_same_request_id_returns_the_first_customer,
);
