//! Account updates, statuses and deletion, and how the customer's lifecycle reaches
//! its accounts.

use tenancy_client::pb;
use tonic::Code;

use super::{create, get};
use crate::customers::validation::{number, object, string};
use crate::customers::{self, events, kinds, personal, set_status};
use crate::helpers::{Backend, TestApp, spawn_app, unique_email, violated_fields};

pub(crate) async fn update(
    app: &TestApp,
    id: &str,
    account: pb::Account,
    paths: &[&str],
    etag: &str,
) -> Result<pb::Account, tonic::Status> {
    app.accounts
        .clone()
        .update_account(pb::UpdateAccountRequest {
            account_id: id.into(),
            account: Some(account),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
            etag: etag.into(),
        })
        .await
        .map(|r| r.into_inner().account.unwrap())
}

async fn delete(app: &TestApp, id: &str, etag: &str) -> Result<(), tonic::Status> {
    app.accounts
        .clone()
        .delete_account(pb::DeleteAccountRequest {
            account_id: id.into(),
            etag: etag.into(),
        })
        .await
        .map(|_| ())
}

async fn status(
    app: &TestApp,
    id: &str,
    status: pb::AccountStatus,
) -> Result<pb::Account, tonic::Status> {
    update(
        app,
        id,
        pb::Account {
            status: status as i32,
            ..Default::default()
        },
        &["status"],
        "",
    )
    .await
}

async fn updates_replace_settings_and_metadata_whole_and_check_etags(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("upd"))).await;
    let mut account = super::meeting("Upd");
    account.account_settings = Some(object(&[
        ("max_rooms", number(4.0)),
        ("max_storage", number(9.0)),
    ]));
    account.account_metadata = Some(object(&[("crm", string("x")), ("b", string("y"))]));
    let created = super::try_create_with(&app, super::request(&customer.uuid, account))
        .await
        .unwrap();
    let updated = update(
        &app,
        &created.uuid,
        pb::Account {
            name: "Renamed".into(),
            account_settings: Some(object(&[
                ("max_duration", number(30.0)),
                ("junk", number(1.0)),
            ])),
            account_metadata: Some(object(&[("c", string("z"))])),
            ..Default::default()
        },
        &["name", "account_settings", "account_metadata"],
        &created.etag,
    )
    .await
    .unwrap();
    assert_eq!(updated.name, "Renamed");
    let keys = |s: Option<prost_types::Struct>| -> Vec<String> {
        let mut k: Vec<_> = s.unwrap_or_default().fields.into_keys().collect();
        k.sort();
        k
    };
    assert_eq!(keys(updated.account_settings.clone()), ["max_duration"]);
    assert_eq!(keys(updated.account_metadata.clone()), ["c"]);
    assert_eq!(get(&app, &created.uuid).await.unwrap(), updated);
    let stale = update(
        &app,
        &created.uuid,
        pb::Account {
            name: "Late".into(),
            ..Default::default()
        },
        &["name"],
        &created.etag,
    )
    .await
    .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let bad = update(
        &app,
        &created.uuid,
        pb::Account::default(),
        &["name", "colour"],
        "",
    )
    .await
    .unwrap_err();
    let fields = violated_fields(&bad);
    assert!(
        fields.contains(&"update_mask".to_string()) && fields.contains(&"account.name".to_string()),
        "{fields:?}"
    );
    assert_eq!(
        kinds(&events(&app).await).last().unwrap(),
        "account.updated"
    );
}

async fn a_terminated_account_is_final_and_only_it_can_be_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("accdel"))).await;
    let account = create(&app, &customer.uuid, "Doomed").await;
    assert_eq!(
        delete(&app, &account.uuid, "").await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    use pb::AccountStatus::*;
    for s in [Suspended, Inactive, Active, Terminated] {
        assert_eq!(
            status(&app, &account.uuid, s).await.unwrap().status,
            s as i32
        );
    }
    assert_eq!(
        status(&app, &account.uuid, Active)
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    let memberships = app
        .users
        .clone()
        .list_user_memberships(pb::ListUserMembershipsRequest {
            user_id: customer.owner_user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .memberships;
    let of_account = memberships
        .iter()
        .find(|m| m.target == Some(pb::membership::Target::AccountId(account.uuid.clone())))
        .unwrap();
    assert_eq!(of_account.status, pb::MembershipStatus::Inactive as i32);
    let before = events(&app).await.len();
    delete(&app, &account.uuid, "").await.unwrap();
    assert_eq!(
        get(&app, &account.uuid).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        kinds(&events(&app).await.split_off(before)),
        ["membership.deleted", "account.deleted"]
    );
}

async fn terminating_a_customer_makes_its_accounts_and_their_members_inactive(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("cascade"))).await;
    let a = create(&app, &customer.uuid, "A").await;
    let b = create(&app, &customer.uuid, "B").await;
    status(&app, &b.uuid, pb::AccountStatus::Terminated)
        .await
        .unwrap();
    let before = events(&app).await.len();
    set_status(&app, &customer.uuid, pb::CustomerStatus::Terminated).await;
    assert_eq!(
        get(&app, &a.uuid).await.unwrap().status,
        pb::AccountStatus::Inactive as i32
    );
    assert_eq!(
        get(&app, &b.uuid).await.unwrap().status,
        pb::AccountStatus::Terminated as i32,
        "a terminated account stays so"
    );
    let new_kinds = kinds(&events(&app).await.split_off(before));
    assert_eq!(
        new_kinds,
        [
            "membership.updated",
            "membership.updated",
            "account.status_changed",
            "customer.status_changed"
        ],
        "customer membership, account A's membership, account A, the customer"
    );
    let memberships = app
        .users
        .clone()
        .list_user_memberships(pb::ListUserMembershipsRequest {
            user_id: customer.owner_user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .memberships;
    assert!(
        memberships
            .iter()
            .all(|m| m.status == pb::MembershipStatus::Inactive as i32)
    );
    // The accounts of a terminated customer cannot come back.
    assert_eq!(
        status(&app, &a.uuid, pb::AccountStatus::Active)
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
}

async fn deleting_a_customer_deletes_its_accounts_and_their_memberships(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("delall"))).await;
    let a = create(&app, &customer.uuid, "A").await;
    let terminated = set_status(&app, &customer.uuid, pb::CustomerStatus::Terminated).await;
    let before = events(&app).await.len();
    app.customers
        .clone()
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: customer.uuid.clone(),
            etag: terminated.etag,
        })
        .await
        .unwrap();
    assert_eq!(get(&app, &a.uuid).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        kinds(&events(&app).await.split_off(before)),
        [
            "membership.deleted",
            "account.deleted",
            "membership.deleted",
            "customer.deleted"
        ]
    );
    let memberships = app
        .users
        .clone()
        .list_user_memberships(pb::ListUserMembershipsRequest {
            user_id: customer.owner_user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .memberships;
    assert!(memberships.is_empty());
    assert!(
        crate::users::get(&app, &customer.owner_user_id)
            .await
            .is_ok()
    );
}

crate::on_both_backends!(
    updates_replace_settings_and_metadata_whole_and_check_etags,
    a_terminated_account_is_final_and_only_it_can_be_deleted,
    terminating_a_customer_makes_its_accounts_and_their_members_inactive,
    deleting_a_customer_deletes_its_accounts_and_their_memberships,
);
