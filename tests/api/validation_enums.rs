//! A number outside its enum is a field violation like any other: it is reported in the
//! same `BadRequest` as the request's other violations, once, and never also as
//! "required" (the enum reads as unspecified once refused).

use tenancy_client::pb;
use tonic::{Code, Status};

use crate::customers::validation::{number, object, string};
use crate::customers::{self, business, events, personal, try_create};
use crate::helpers::{Backend, spawn_app, unique_email, violated_fields};

/// The violated fields of an `INVALID_ARGUMENT`, sorted, duplicates kept.
fn sorted_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let mut fields = violated_fields(status);
    fields.sort();
    fields
}

async fn create_customer_reports_out_of_range_enums_with_the_other_violations(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = business("not-an-email", "Acme");
    customer.customer_type = 99;
    customer.status = 42;
    customer.customer_metadata = Some(object(&[("x", number(f64::NAN))]));
    customer.addresses = vec![pb::Address {
        address_type: 7,
        country: "BR".into(),
        ..Default::default()
    }];
    customer.telephones = vec![pb::Telephone {
        telephone_type: 9,
        number: "+55 11 91234-5678".into(),
        ..Default::default()
    }];
    let status = try_create(&app, customer).await.unwrap_err();
    assert_eq!(
        sorted_fields(&status),
        [
            "customer.addresses[0].address_type",
            "customer.customer_metadata.x",
            "customer.customer_type",
            "customer.email",
            "customer.status",
            "customer.telephones[0].telephone_type",
        ]
    );
    assert!(events(&app).await.is_empty(), "nothing was written");
}

async fn create_customer_reports_an_out_of_range_enum_with_a_request_level_violation(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let mut customer = personal(&unique_email("enum-owner"));
    customer.customer_type = 99;
    let status = app
        .customers
        .clone()
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(customer),
            owner_user_id: "not-an-id".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        sorted_fields(&status),
        ["customer.customer_type", "owner_user_id"]
    );
}

async fn update_customer_reports_out_of_range_enums_with_the_other_violations(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = customers::create(&app, personal(&unique_email("enum-update"))).await;
    let changes = pb::Customer {
        status: 99,
        customer_type: 99,
        email: "not-an-email".into(),
        first_name: "Still".into(),
        ..Default::default()
    };
    let status = customers::update(
        &app,
        &created.uuid,
        changes,
        &["status", "customer_type", "email", "first_name"],
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(
        sorted_fields(&status),
        [
            "customer.customer_type",
            "customer.email",
            "customer.status"
        ]
    );
    let after = customers::get(&app, &created.uuid).await.unwrap();
    assert_eq!(after.etag, created.etag, "nothing was changed");
}

async fn update_customer_refuses_an_out_of_range_enum_that_is_the_only_violation(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = customers::create(&app, personal(&unique_email("enum-alone"))).await;
    let changes = pb::Customer {
        status: 99,
        first_name: "Renamed".into(),
        ..Default::default()
    };
    let status = customers::update(&app, &created.uuid, changes, &["first_name"], "")
        .await
        .unwrap_err();
    assert_eq!(sorted_fields(&status), ["customer.status"]);
    let after = customers::get(&app, &created.uuid).await.unwrap();
    assert_eq!(after.etag, created.etag, "nothing was changed");
}

async fn create_account_reports_out_of_range_enums_with_the_other_violations(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = pb::Account {
        name: " ".into(),
        service_type: 99,
        status: 42,
        account_metadata: Some(object(&[("x", number(f64::INFINITY))])),
        ..Default::default()
    };
    let status = crate::accounts::try_create_with(&app, crate::accounts::request("nope", account))
        .await
        .unwrap_err();
    assert_eq!(
        sorted_fields(&status),
        [
            "account.account_metadata.x",
            "account.name",
            "account.service_type",
            "account.status",
            "customer_id",
        ]
    );
    assert!(events(&app).await.is_empty(), "nothing was written");
}

async fn update_account_reports_out_of_range_enums_with_the_other_violations(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, business(&unique_email("enum-accu"), "Acc Co")).await;
    let created = crate::accounts::create(&app, &customer.uuid, "Meetings").await;
    let changes = pb::Account {
        name: " ".into(),
        service_type: 99,
        status: 42,
        ..Default::default()
    };
    let status = crate::accounts::lifecycle::update(
        &app,
        &created.uuid,
        changes,
        &["name", "service_type", "status"],
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(
        sorted_fields(&status),
        ["account.name", "account.service_type", "account.status"]
    );
    let after = crate::accounts::get(&app, &created.uuid).await.unwrap();
    assert_eq!(after.etag, created.etag, "nothing was changed");
}

async fn list_filters_report_every_out_of_range_enum(backend: Backend) {
    let app = spawn_app(backend).await;
    let status = app
        .customers
        .clone()
        .list_customers(pb::ListCustomersRequest {
            status: 99,
            customer_type: 99,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(sorted_fields(&status), ["customer_type", "status"]);
    let status = app
        .accounts
        .clone()
        .list_accounts(pb::ListAccountsRequest {
            status: 99,
            service_type: 99,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(sorted_fields(&status), ["service_type", "status"]);
}

async fn valid_enums_still_round_trip(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = business(&unique_email("enum-ok"), "Enum Ok");
    customer.status = pb::CustomerStatus::Suspended as i32;
    customer.customer_settings = Some(object(&[("locale", string("pt_BR"))]));
    customer.addresses = vec![pb::Address {
        address_type: pb::AddressType::Billing as i32,
        country: "BR".into(),
        ..Default::default()
    }];
    customer.telephones = vec![pb::Telephone {
        telephone_type: pb::TelephoneType::Mobile as i32,
        number: "+55 11 91234-5678".into(),
        ..Default::default()
    }];
    let created = customers::create(&app, customer).await;
    assert_eq!(created.status, pb::CustomerStatus::Suspended as i32);
    assert_eq!(created.customer_type, pb::CustomerType::Business as i32);
    assert_eq!(
        created.addresses[0].address_type,
        pb::AddressType::Billing as i32
    );
    assert_eq!(
        created.telephones[0].telephone_type,
        pb::TelephoneType::Mobile as i32
    );
}

async fn create_user_reports_an_out_of_range_status_with_the_other_violations(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = pb::User {
        email: "not-an-email".into(),
        first_name: " ".into(),
        last_name: "Silva".into(),
        language: "not a tag".into(),
        status: 99,
        ..Default::default()
    };
    let status = app
        .users
        .clone()
        .create_user(crate::users::create_request(user, "", ""))
        .await
        .unwrap_err();
    assert_eq!(
        sorted_fields(&status),
        [
            "user.email",
            "user.first_name",
            "user.language",
            "user.status"
        ]
    );
    assert!(events(&app).await.is_empty(), "nothing was written");
}

async fn update_user_reports_an_out_of_range_status_with_the_other_violations(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = crate::users::create(&app, &unique_email("enum-user"), "").await;
    let changes = pb::User {
        email: "not-an-email".into(),
        status: 99,
        ..Default::default()
    };
    let status = crate::users::update(
        &app,
        &created.uuid,
        "not-an-etag",
        &["email", "status"],
        changes,
    )
    .await
    .unwrap_err();
    assert_eq!(
        sorted_fields(&status),
        ["etag", "user.email", "user.status"]
    );
    // A refused status is a violation even when the mask does not name it.
    let changes = pb::User {
        first_name: " ".into(),
        status: 99,
        ..Default::default()
    };
    let status = crate::users::update(&app, &created.uuid, "", &["first_name"], changes)
        .await
        .unwrap_err();
    assert_eq!(sorted_fields(&status), ["user.first_name", "user.status"]);
    let after = crate::users::get(&app, &created.uuid).await.unwrap();
    assert_eq!(after.etag, created.etag, "nothing was changed");
}

async fn list_customers_reports_out_of_range_filters_with_the_other_violations(backend: Backend) {
    let app = spawn_app(backend).await;
    let status = app
        .customers
        .clone()
        .list_customers(pb::ListCustomersRequest {
            status: 99,
            customer_type: 99,
            country: "Brazil".into(),
            page_size: -1,
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        sorted_fields(&status),
        [
            "country",
            "customer_type",
            "page_size",
            "page_token",
            "status"
        ]
    );
}

async fn list_accounts_reports_out_of_range_filters_with_the_other_violations(backend: Backend) {
    let app = spawn_app(backend).await;
    let status = app
        .accounts
        .clone()
        .list_accounts(pb::ListAccountsRequest {
            customer_id: "not-an-id".into(),
            status: 99,
            service_type: 99,
            page_size: -1,
            page_token: "not-a-token".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        sorted_fields(&status),
        [
            "customer_id",
            "page_size",
            "page_token",
            "service_type",
            "status"
        ]
    );
}

async fn list_invitations_report_an_out_of_range_status_with_the_other_violations(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let status = app
        .customers
        .clone()
        .list_customer_invitations(pb::ListCustomerInvitationsRequest {
            customer_id: "not-an-id".into(),
            status: 99,
            page_size: -1,
            page_token: "not-a-token".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        sorted_fields(&status),
        ["customer_id", "page_size", "page_token", "status"]
    );
    let status = app
        .accounts
        .clone()
        .list_account_invitations(pb::ListAccountInvitationsRequest {
            account_id: "not-an-id".into(),
            status: 99,
            page_size: -1,
            page_token: "not-a-token".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        sorted_fields(&status),
        ["account_id", "page_size", "page_token", "status"]
    );
    // Alone, the refused filter is still the one violation.
    let customer = customers::create(&app, business(&unique_email("enum-inv"), "Inv Co")).await;
    let status = app
        .customers
        .clone()
        .list_customer_invitations(pb::ListCustomerInvitationsRequest {
            customer_id: customer.uuid.clone(),
            status: 99,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(sorted_fields(&status), ["status"]);
}

async fn valid_enum_filters_still_list(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, business(&unique_email("enum-list"), "List Co")).await;
    let account = crate::accounts::create(&app, &customer.uuid, "Meetings").await;
    let listed = app
        .customers
        .clone()
        .list_customers(pb::ListCustomersRequest {
            status: pb::CustomerStatus::Active as i32,
            customer_type: pb::CustomerType::Business as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.customers.iter().map(|c| &c.uuid).collect::<Vec<_>>(),
        [&customer.uuid]
    );
    let listed = app
        .accounts
        .clone()
        .list_accounts(pb::ListAccountsRequest {
            customer_id: customer.uuid.clone(),
            status: pb::AccountStatus::Active as i32,
            service_type: account.service_type,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.accounts.iter().map(|a| &a.uuid).collect::<Vec<_>>(),
        [&account.uuid]
    );
    let listed = app
        .customers
        .clone()
        .list_customer_invitations(pb::ListCustomerInvitationsRequest {
            customer_id: customer.uuid.clone(),
            status: pb::InvitationStatus::Pending as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.invitations.is_empty());
}

async fn updates_report_out_of_range_enums_with_a_bad_id_or_etag(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("enum-ids"))).await;
    let status = app
        .customers
        .clone()
        .update_customer(pb::UpdateCustomerRequest {
            customer_id: "not-an-id".into(),
            customer: Some(pb::Customer {
                status: 99,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
            etag: "not-an-etag".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        sorted_fields(&status),
        ["customer.status", "customer_id", "etag"]
    );
    let account = crate::accounts::create(&app, &customer.uuid, "Meetings").await;
    let status = app
        .accounts
        .clone()
        .update_account(pb::UpdateAccountRequest {
            account_id: account.uuid.clone(),
            account: Some(pb::Account {
                service_type: 99,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["service_type".into()],
            }),
            etag: "not-an-etag".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(sorted_fields(&status), ["account.service_type", "etag"]);
}

crate::on_both_backends!(
    create_customer_reports_out_of_range_enums_with_the_other_violations,
    create_customer_reports_an_out_of_range_enum_with_a_request_level_violation,
    update_customer_reports_out_of_range_enums_with_the_other_violations,
    update_customer_refuses_an_out_of_range_enum_that_is_the_only_violation,
    create_account_reports_out_of_range_enums_with_the_other_violations,
    update_account_reports_out_of_range_enums_with_the_other_violations,
    list_filters_report_every_out_of_range_enum,
    valid_enums_still_round_trip,
    create_user_reports_an_out_of_range_status_with_the_other_violations,
    update_user_reports_an_out_of_range_status_with_the_other_violations,
    list_customers_reports_out_of_range_filters_with_the_other_violations,
    list_accounts_reports_out_of_range_filters_with_the_other_violations,
    list_invitations_report_an_out_of_range_status_with_the_other_violations,
    valid_enum_filters_still_list,
    updates_report_out_of_range_enums_with_a_bad_id_or_etag,
);
