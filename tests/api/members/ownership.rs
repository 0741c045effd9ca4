//! Ownership: exactly one owner at every moment, moved only with `memberships.transfer`,
//! also under concurrent transfers and removals, on one or two instances.

use futures::future::join_all;
use tenancy_client::pb::{self, add_customer_user_request::Member};
use tonic::Code;

use super::{add, add_account_member, members_of, perms};
use crate::customers::{self, events, get, kinds, personal};
use crate::helpers::{Backend, TestApp, spawn_app, spawn_app_on, test_serve_args, unique_email};

fn transfer(customer_id: &str, user_id: &str) -> pb::UpdateCustomerUserRequest {
    pb::UpdateCustomerUserRequest {
        roles: Vec::new(),
        customer_id: customer_id.into(),
        user_id: user_id.into(),
        permissions: vec![],
        owner: true,
        etag: String::new(),
    }
}

async fn owners(app: &TestApp, customer_id: &str) -> Vec<String> {
    members_of(app, customer_id)
        .await
        .into_iter()
        .filter(|m| m.owner)
        .map(|m| m.user_id)
        .collect()
}

async fn customer_with_members(app: &TestApp, count: usize) -> (pb::Customer, Vec<String>) {
    let customer = customers::create(app, personal(&unique_email("owned"))).await;
    let mut members = Vec::new();
    for i in 0..count {
        let user = crate::users::create(app, &unique_email(&format!("m{i}")), "").await;
        add(
            app,
            &customer.uuid,
            Member::UserId(user.uuid.clone()),
            &["rooms.read"],
        )
        .await
        .unwrap();
        members.push(user.uuid);
    }
    (customer, members)
}

async fn moving_ownership_keeps_the_old_owner_as_a_member_with_every_permission(backend: Backend) {
    let app = spawn_app(backend).await;
    let (customer, members) = customer_with_members(&app, 1).await;
    let before = events(&app).await.len();
    let moved = app
        .customers
        .clone()
        .update_customer_user(transfer(&customer.uuid, &members[0]))
        .await
        .unwrap()
        .into_inner()
        .membership
        .unwrap();
    assert!(moved.owner);
    assert_eq!(
        moved.permissions.len(),
        13,
        "an owner is shown with every permission"
    );
    assert_eq!(owners(&app, &customer.uuid).await, [members[0].clone()]);
    let after = get(&app, &customer.uuid).await.unwrap();
    assert_eq!(after.owner_user_id, members[0]);
    assert_ne!(after.etag, customer.etag);
    let old = members_of(&app, &customer.uuid)
        .await
        .into_iter()
        .find(|m| m.user_id == customer.owner_user_id)
        .unwrap();
    assert!(!old.owner);
    assert_eq!(
        old.permissions.len(),
        13,
        "every permission of the catalogue"
    );
    assert_eq!(
        kinds(&events(&app).await.split_off(before)),
        [
            "membership.updated", // its permissions: an owner holds every one
            "membership.updated", // the old owner: a member with every permission
            "membership.updated", // the new owner
            "customer.updated",   // owner_user_id
        ]
    );
    // The old owner can be removed now; the new one cannot.
    let remove = |user_id: &str| pb::RemoveCustomerUserRequest {
        customer_id: customer.uuid.clone(),
        user_id: user_id.into(),
        etag: String::new(),
    };
    assert_eq!(
        app.customers
            .clone()
            .remove_customer_user(remove(&members[0]))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    app.customers
        .clone()
        .remove_customer_user(remove(&customer.owner_user_id))
        .await
        .unwrap();
    // Adding with `owner` makes the new member the owner at once.
    let newcomer = crate::users::create(&app, &unique_email("newboss"), "").await;
    let added = app
        .customers
        .clone()
        .add_customer_user(pb::AddCustomerUserRequest {
            roles: Vec::new(),
            customer_id: customer.uuid.clone(),
            member: Some(Member::UserId(newcomer.uuid.clone())),
            permissions: perms(&[]),
            owner: true,
        })
        .await
        .unwrap()
        .into_inner()
        .membership
        .unwrap();
    assert!(added.owner);
    assert_eq!(
        owners(&app, &customer.uuid).await,
        std::slice::from_ref(&newcomer.uuid)
    );
}

async fn moving_ownership_needs_the_transfer_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let (customer, members) = customer_with_members(&app, 1).await;
    let writer = app.key_with(&["memberships.write"]).await;
    let denied = app
        .customers_with_key(Some(&writer))
        .update_customer_user(transfer(&customer.uuid, &members[0]))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(
        owners(&app, &customer.uuid).await,
        std::slice::from_ref(&customer.owner_user_id)
    );
    // The same key may change permissions.
    let mut change = transfer(&customer.uuid, &members[0]);
    change.owner = false;
    change.permissions = perms(&["billing.read"]);
    app.customers_with_key(Some(&writer))
        .update_customer_user(change)
        .await
        .unwrap();
    let transferer = app
        .key_with(&["memberships.write", "memberships.transfer"])
        .await;
    app.customers_with_key(Some(&transferer))
        .update_customer_user(transfer(&customer.uuid, &members[0]))
        .await
        .unwrap();
    assert_eq!(owners(&app, &customer.uuid).await, [members[0].clone()]);
}

async fn six_concurrent_transfers_leave_exactly_one_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let (customer, members) = customer_with_members(&app, 6).await;
    let results = join_all(members.iter().map(|user_id| {
        let mut client = app.customers.clone();
        let request = transfer(&customer.uuid, user_id);
        async move { client.update_customer_user(request).await }
    }))
    .await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let owners = owners(&app, &customer.uuid).await;
    assert_eq!(owners.len(), 1);
    assert_eq!(
        get(&app, &customer.uuid).await.unwrap().owner_user_id,
        owners[0]
    );
}

async fn a_transfer_racing_a_removal_leaves_one_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    for _ in 0..3 {
        let (customer, members) = customer_with_members(&app, 1).await;
        let target = members[0].clone();
        let mut a = app.customers.clone();
        let mut b = app.customers.clone();
        let move_it = transfer(&customer.uuid, &target);
        let remove_it = pb::RemoveCustomerUserRequest {
            customer_id: customer.uuid.clone(),
            user_id: target.clone(),
            etag: String::new(),
        };
        let (moved, removed) = tokio::join!(
            async move { a.update_customer_user(move_it).await },
            async move { b.remove_customer_user(remove_it).await }
        );
        let owners = owners(&app, &customer.uuid).await;
        assert_eq!(owners.len(), 1, "{moved:?} {removed:?}");
        assert_eq!(
            get(&app, &customer.uuid).await.unwrap().owner_user_id,
            owners[0]
        );
        // Exactly one of the two won: moved then the removal was refused, or removed
        // then the transfer found no member.
        assert!(moved.is_ok() != removed.is_ok(), "{moved:?} {removed:?}");
    }
}

async fn two_instances_transferring_at_once_leave_one_owner(backend: Backend) {
    let first = spawn_app(backend).await;
    let second = spawn_app_on(first.database.clone(), test_serve_args()).await;
    let (customer, members) = customer_with_members(&first, 6).await;
    let apps = [&first, &second];
    let results = join_all(members.iter().enumerate().map(|(i, user_id)| {
        let mut client = apps[i % 2].customers.clone();
        let request = transfer(&customer.uuid, user_id);
        async move { client.update_customer_user(request).await }
    }))
    .await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let owners = owners(&first, &customer.uuid).await;
    assert_eq!(owners.len(), 1);
    assert_eq!(
        get(&second, &customer.uuid).await.unwrap().owner_user_id,
        owners[0]
    );
}

async fn account_ownership_moves_the_same_way(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("accown"))).await;
    let account = crate::accounts::create(&app, &customer.uuid, "Acc").await;
    let user = crate::users::create(&app, &unique_email("accmember"), "").await;
    add_account_member(&app, &account.uuid, &user.uuid, &["rooms.read"])
        .await
        .unwrap();
    let moved = app
        .accounts
        .clone()
        .update_account_user(pb::UpdateAccountUserRequest {
            roles: Vec::new(),
            account_id: account.uuid.clone(),
            user_id: user.uuid.clone(),
            permissions: vec![],
            owner: true,
            etag: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .membership
        .unwrap();
    assert!(moved.owner);
    let after = crate::accounts::get(&app, &account.uuid).await.unwrap();
    assert_eq!(after.owner_user_id, user.uuid);
    let members = app
        .accounts
        .clone()
        .list_account_users(pb::ListAccountUsersRequest {
            account_id: account.uuid.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .memberships;
    assert_eq!(members.iter().filter(|m| m.owner).count(), 1);
    // Its customer's owner is untouched.
    assert_eq!(
        get(&app, &customer.uuid).await.unwrap().owner_user_id,
        customer.owner_user_id
    );
}

crate::on_both_backends!(
    moving_ownership_keeps_the_old_owner_as_a_member_with_every_permission,
    moving_ownership_needs_the_transfer_scope,
    six_concurrent_transfers_leave_exactly_one_owner,
    a_transfer_racing_a_removal_leaves_one_owner,
    two_instances_transferring_at_once_leave_one_owner,
    account_ownership_moves_the_same_way,
);
