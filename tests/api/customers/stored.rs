//! Fields the service stores but does not use (`tenant_id`, `delinquent`): what a caller
//! writes comes back unchanged from every read.

use tenancy_client::pb;

use super::{create, get, personal, update};
use crate::helpers::{Backend, TestApp, spawn_app, unique_email};

/// The customer as `ListCustomers` returns it.
async fn listed(app: &TestApp, uuid: &str) -> pb::Customer {
    let page = app
        .customers
        .clone()
        .list_customers(pb::ListCustomersRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    page.customers
        .into_iter()
        .find(|c| c.uuid == uuid)
        .expect("the customer is listed")
}

async fn tenant_id_and_delinquent_round_trip_through_every_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = personal(&unique_email("stored"));
    customer.tenant_id = "tenant-Ω-42".into();
    customer.delinquent = true;
    let created = create(&app, customer).await;
    assert_eq!(
        (created.tenant_id.as_str(), created.delinquent),
        ("tenant-Ω-42", true)
    );
    assert_eq!(get(&app, &created.uuid).await.unwrap(), created);
    assert_eq!(listed(&app, &created.uuid).await, created);

    let changes = pb::Customer {
        tenant_id: "tenant-7".into(),
        delinquent: false,
        ..Default::default()
    };
    let updated = update(
        &app,
        &created.uuid,
        changes,
        &["tenant_id", "delinquent"],
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        (updated.tenant_id.as_str(), updated.delinquent),
        ("tenant-7", false)
    );
    assert_eq!(get(&app, &created.uuid).await.unwrap(), updated);
    assert_eq!(listed(&app, &created.uuid).await, updated);

    // Outside the mask, neither changes.
    let ignored = pb::Customer {
        tenant_id: "ignored".into(),
        delinquent: true,
        first_name: "Beatriz".into(),
        ..Default::default()
    };
    let renamed = update(&app, &created.uuid, ignored, &["first_name"], "")
        .await
        .unwrap();
    assert_eq!(
        (renamed.tenant_id.as_str(), renamed.delinquent),
        ("tenant-7", false)
    );
}

crate::on_both_backends!(tenant_id_and_delinquent_round_trip_through_every_read);
