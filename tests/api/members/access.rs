//! `CheckAccess`: every branch of SPEC section 4's rule.

use tenancy_client::pb::{self, add_customer_user_request::Member, check_access_request::Target};
use tonic::Code;

use super::{add, add_account_member};
use crate::customers::{self, personal, set_status};
use crate::helpers::{Backend, TestApp, spawn_app, unique_email, violated_fields};

async fn check(app: &TestApp, user_id: &str, target: Target, permission: &str) -> (bool, String) {
    let response = app
        .users
        .clone()
        .check_access(pb::CheckAccessRequest {
            user_id: user_id.into(),
            target: Some(target),
            permission: permission.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("check {permission}: {s:?}"))
        .into_inner();
    (response.allowed, response.reason)
}

async fn allowed(app: &TestApp, user_id: &str, target: Target, permission: &str) -> bool {
    check(app, user_id, target, permission).await.0
}

async fn account_status(app: &TestApp, id: &str, status: pb::AccountStatus) {
    app.accounts
        .clone()
        .update_account(pb::UpdateAccountRequest {
            account_id: id.into(),
            account: Some(pb::Account {
                status: status as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
            etag: String::new(),
        })
        .await
        .unwrap();
}

async fn customer_access_follows_membership_permissions_and_status(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("acl"))).await;
    let owner = customer.owner_user_id.clone();
    let member = crate::users::create(&app, &unique_email("member"), "").await;
    let stranger = crate::users::create(&app, &unique_email("stranger"), "").await;
    add(
        &app,
        &customer.uuid,
        Member::UserId(member.uuid.clone()),
        &["rooms.read", "rooms.write"],
    )
    .await
    .unwrap();
    let c = || Target::CustomerId(customer.uuid.clone());

    let (ok, reason) = check(&app, &owner, c(), "billing.write").await;
    assert!(ok, "owners hold every permission: {reason}");
    assert!(allowed(&app, &member.uuid, c(), "rooms.write").await);
    let (ok, reason) = check(&app, &member.uuid, c(), "billing.read").await;
    assert!(!ok && reason.contains("not granted"), "{reason}");
    let (ok, reason) = check(&app, &stranger.uuid, c(), "rooms.read").await;
    assert!(!ok && reason.contains("not a member"), "{reason}");

    set_status(&app, &customer.uuid, pb::CustomerStatus::Suspended).await;
    assert!(
        allowed(&app, &member.uuid, c(), "rooms.read").await,
        "suspended: reads work"
    );
    assert!(!allowed(&app, &member.uuid, c(), "rooms.write").await);
    assert!(
        !allowed(&app, &owner, c(), "rooms.write").await,
        "the owner too only reads"
    );
    set_status(&app, &customer.uuid, pb::CustomerStatus::Inactive).await;
    let (ok, reason) = check(&app, &owner, c(), "rooms.read").await;
    assert!(!ok && reason.contains("inactive"), "{reason}");
    set_status(&app, &customer.uuid, pb::CustomerStatus::Active).await;
    assert!(allowed(&app, &member.uuid, c(), "rooms.write").await);

    // An inactive user is denied whatever they hold.
    app.users
        .clone()
        .update_user(pb::UpdateUserRequest {
            user_id: member.uuid.clone(),
            user: Some(pb::User {
                status: pb::UserStatus::Inactive as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
            etag: String::new(),
        })
        .await
        .unwrap();
    let (ok, reason) = check(&app, &member.uuid, c(), "rooms.read").await;
    assert!(!ok && reason.contains("user"), "{reason}");

    // Terminated: every membership inactive, nothing allowed.
    set_status(&app, &customer.uuid, pb::CustomerStatus::Terminated).await;
    assert!(!allowed(&app, &owner, c(), "rooms.read").await);
}

async fn account_access_comes_from_its_members_or_the_customer_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("accacl"))).await;
    let account_owner = crate::users::create(&app, &unique_email("accowner"), "").await;
    let mut request = crate::accounts::request(&customer.uuid, crate::accounts::meeting("Acc"));
    request.owner = Some(pb::create_account_request::Owner::OwnerUserId(
        account_owner.uuid.clone(),
    ));
    let account = crate::accounts::try_create_with(&app, request)
        .await
        .unwrap();
    let member = crate::users::create(&app, &unique_email("accmember"), "").await;
    let customer_member = crate::users::create(&app, &unique_email("custmember"), "").await;
    add_account_member(&app, &account.uuid, &member.uuid, &["recordings.read"])
        .await
        .unwrap();
    add(
        &app,
        &customer.uuid,
        Member::UserId(customer_member.uuid.clone()),
        &["recordings.write"],
    )
    .await
    .unwrap();
    let a = || Target::AccountId(account.ulid.clone());

    assert!(allowed(&app, &account_owner.uuid, a(), "recordings.write").await);
    assert!(allowed(&app, &member.uuid, a(), "recordings.read").await);
    assert!(!allowed(&app, &member.uuid, a(), "recordings.write").await);
    let (ok, reason) = check(&app, &customer.owner_user_id, a(), "rooms.write").await;
    assert!(ok, "the customer's owner acts on its accounts: {reason}");
    let (ok, reason) = check(&app, &customer_member.uuid, a(), "recordings.write").await;
    assert!(
        !ok,
        "a plain customer member is not an account member: {reason}"
    );

    account_status(&app, &account.uuid, pb::AccountStatus::Suspended).await;
    assert!(allowed(&app, &member.uuid, a(), "recordings.read").await);
    assert!(!allowed(&app, &account_owner.uuid, a(), "recordings.write").await);
    account_status(&app, &account.uuid, pb::AccountStatus::Inactive).await;
    assert!(!allowed(&app, &account_owner.uuid, a(), "recordings.read").await);
    account_status(&app, &account.uuid, pb::AccountStatus::Active).await;
    set_status(&app, &customer.uuid, pb::CustomerStatus::Suspended).await;
    assert!(
        allowed(&app, &member.uuid, a(), "recordings.read").await,
        "a suspended customer allows reads"
    );
    assert!(!allowed(&app, &account_owner.uuid, a(), "rooms.write").await);
}

async fn bad_checks_are_invalid_or_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("badcheck"))).await;
    let status = app
        .users
        .clone()
        .check_access(pb::CheckAccessRequest {
            user_id: "nope".into(),
            target: None,
            permission: "rooms.fly".into(),
        })
        .await
        .unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["permission", "target", "user_id"]);
    let missing = app
        .users
        .clone()
        .check_access(pb::CheckAccessRequest {
            user_id: customer.owner_user_id.clone(),
            target: Some(Target::AccountId(
                tenancy::domain::id::Id::generate().to_string(),
            )),
            permission: "rooms.read".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let no_user = app
        .users
        .clone()
        .check_access(pb::CheckAccessRequest {
            user_id: tenancy::domain::id::Id::generate().to_string(),
            target: Some(Target::CustomerId(customer.uuid.clone())),
            permission: "rooms.read".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(no_user.code(), Code::NotFound);
}

crate::on_both_backends!(
    customer_access_follows_membership_permissions_and_status,
    account_access_comes_from_its_members_or_the_customer_owner,
    bad_checks_are_invalid_or_not_found,
);
