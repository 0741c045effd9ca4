//! Members of customers and accounts (this file), ownership (`members/ownership.rs`),
//! invitations (`members/invitations.rs`) and access checks (`members/access.rs`).

mod access;
mod batch_access;
mod contention;
mod deletes;
mod invitations;
mod ownership;
pub mod roles;

use tenancy_client::pb::{self, add_customer_user_request::Member};
use tonic::{Code, Status};

use crate::customers::{self, business, events, kinds, personal, set_status};
use crate::helpers::{Backend, TestApp, error_reason, spawn_app, unique_email, violated_fields};

pub fn perms(list: &[&str]) -> Vec<String> {
    list.iter().map(|p| p.to_string()).collect()
}

pub async fn add(
    app: &TestApp,
    customer_id: &str,
    member: Member,
    permissions: &[&str],
) -> Result<pb::Membership, Status> {
    app.customers
        .clone()
        .add_customer_user(pb::AddCustomerUserRequest {
            roles: Vec::new(),
            customer_id: customer_id.into(),
            member: Some(member),
            permissions: perms(permissions),
            owner: false,
        })
        .await
        .map(|r| r.into_inner().membership.expect("a membership"))
}

pub async fn add_account_member(
    app: &TestApp,
    account_id: &str,
    user_id: &str,
    permissions: &[&str],
) -> Result<pb::Membership, Status> {
    app.accounts
        .clone()
        .add_account_user(pb::AddAccountUserRequest {
            roles: Vec::new(),
            account_id: account_id.into(),
            member: Some(pb::add_account_user_request::Member::UserId(user_id.into())),
            permissions: perms(permissions),
            owner: false,
        })
        .await
        .map(|r| r.into_inner().membership.expect("a membership"))
}

pub async fn members_of(app: &TestApp, customer_id: &str) -> Vec<pb::Membership> {
    app.customers
        .clone()
        .list_customer_users(pb::ListCustomerUsersRequest {
            customer_id: customer_id.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .memberships
}

async fn members_are_added_by_id_or_email_with_checked_permissions(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, business(&unique_email("team"), "Team")).await;
    let ana = crate::users::create(&app, &unique_email("ana"), "").await;
    let bea = crate::users::create(&app, &unique_email("bea"), "").await;
    let before = events(&app).await.len();
    let by_id = add(
        &app,
        &customer.uuid,
        Member::UserId(ana.ulid.clone()),
        &["rooms.read", "rooms.write"],
    )
    .await
    .unwrap();
    assert_eq!(by_id.user_id, ana.uuid);
    assert!(!by_id.owner);
    assert_eq!(by_id.permissions, ["rooms.read", "rooms.write"]);
    assert_eq!(by_id.status, pb::MembershipStatus::Active as i32);
    let by_email = add(
        &app,
        &customer.uuid,
        Member::Email(bea.email.to_uppercase()),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(by_email.user_id, bea.uuid);
    assert_eq!(
        kinds(&events(&app).await.split_off(before)),
        ["membership.created", "membership.created"]
    );

    let again = add(&app, &customer.uuid, Member::UserId(ana.uuid.clone()), &[])
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    assert_eq!(error_reason(&again).as_deref(), Some("MEMBERSHIP_EXISTS"));
    let unknown = add(
        &app,
        &customer.uuid,
        Member::Email(unique_email("ghost")),
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let carl = crate::users::create(&app, &unique_email("carl"), "").await;
    let bad = add(
        &app,
        &customer.uuid,
        Member::UserId(carl.uuid.clone()),
        &["rooms.read", "rooms.fly", "admin"],
    )
    .await
    .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad), ["permissions[1]", "permissions[2]"]);
    let no_member = app
        .customers
        .clone()
        .add_customer_user(pb::AddCustomerUserRequest {
            customer_id: customer.uuid.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&no_member), ["member"]);
    assert_eq!(
        members_of(&app, &customer.uuid).await.len(),
        3,
        "owner, ana, bea"
    );
}

async fn a_closed_or_suspended_customer_takes_no_new_members(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("closed"))).await;
    let user = crate::users::create(&app, &unique_email("late"), "").await;
    use pb::CustomerStatus::*;
    for status in [Suspended, Inactive, Terminated] {
        set_status(&app, &customer.uuid, status).await;
        let error = add(&app, &customer.uuid, Member::UserId(user.uuid.clone()), &[])
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::FailedPrecondition, "{status:?}");
    }
}

async fn the_registration_domains_bind_new_members(backend: Backend) {
    let app = spawn_app(backend).await;
    let boss = format!(
        "boss-{}@corp.example",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let mut customer = personal(&boss);
    customer.allowed_domains_registration = vec!["corp.example".into()];
    let customer = customers::create(&app, customer).await;
    let outsider = crate::users::create(&app, &unique_email("outsider"), "").await;
    let error = add(
        &app,
        &customer.uuid,
        Member::UserId(outsider.uuid.clone()),
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    let insider = crate::users::create(
        &app,
        &format!(
            "in-{}@corp.example",
            ulid::Ulid::new().to_string().to_lowercase()
        ),
        "",
    )
    .await;
    add(
        &app,
        &customer.uuid,
        Member::UserId(insider.uuid.clone()),
        &[],
    )
    .await
    .unwrap();
    // The customer's list binds its accounts' members too.
    let account = crate::accounts::create(&app, &customer.uuid, "Acc").await;
    let error = add_account_member(&app, &account.uuid, &outsider.uuid, &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    add_account_member(&app, &account.uuid, &insider.uuid, &["rooms.read"])
        .await
        .unwrap();
}

async fn permissions_are_replaced_and_etags_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("perm"))).await;
    let user = crate::users::create(&app, &unique_email("member"), "").await;
    let added = add(
        &app,
        &customer.uuid,
        Member::UserId(user.uuid.clone()),
        &["rooms.read", "billing.read"],
    )
    .await
    .unwrap();
    let update = |permissions: &[&str], etag: &str| pb::UpdateCustomerUserRequest {
        roles: Vec::new(),
        customer_id: customer.uuid.clone(),
        user_id: user.uuid.clone(),
        permissions: perms(permissions),
        owner: false,
        etag: etag.into(),
    };
    let updated = app
        .customers
        .clone()
        .update_customer_user(update(&["reports.read"], &added.etag))
        .await
        .unwrap()
        .into_inner()
        .membership
        .unwrap();
    assert_eq!(updated.permissions, ["reports.read"]);
    assert_ne!(updated.etag, added.etag);
    let stale = app
        .customers
        .clone()
        .update_customer_user(update(&["rooms.read"], &added.etag))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let listed = members_of(&app, &customer.uuid).await;
    assert_eq!(
        listed
            .iter()
            .find(|m| m.user_id == user.uuid)
            .unwrap()
            .permissions,
        ["reports.read"]
    );
    let stranger = crate::users::create(&app, &unique_email("stranger"), "").await;
    let missing = app
        .customers
        .clone()
        .update_customer_user(pb::UpdateCustomerUserRequest {
            customer_id: customer.uuid.clone(),
            user_id: stranger.uuid.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

async fn members_are_removed_but_never_the_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("rm"))).await;
    let user = crate::users::create(&app, &unique_email("leaving"), "").await;
    let added = add(&app, &customer.uuid, Member::UserId(user.uuid.clone()), &[])
        .await
        .unwrap();
    let remove = |user_id: &str, etag: &str| pb::RemoveCustomerUserRequest {
        customer_id: customer.uuid.clone(),
        user_id: user_id.into(),
        etag: etag.into(),
    };
    let owner = app
        .customers
        .clone()
        .remove_customer_user(remove(&customer.owner_user_id, ""))
        .await
        .unwrap_err();
    assert_eq!(owner.code(), Code::FailedPrecondition);
    let stale = app
        .customers
        .clone()
        .remove_customer_user(remove(&user.uuid, "W/\"99\""))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let before = events(&app).await.len();
    app.customers
        .clone()
        .remove_customer_user(remove(&user.uuid, &added.etag))
        .await
        .unwrap();
    assert_eq!(
        kinds(&events(&app).await.split_off(before)),
        ["membership.deleted"]
    );
    assert_eq!(members_of(&app, &customer.uuid).await.len(), 1);
    let gone = app
        .customers
        .clone()
        .remove_customer_user(remove(&user.uuid, ""))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

async fn member_lists_page_in_creation_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("pages"))).await;
    let mut expected = vec![customer.owner_user_id.clone()];
    for i in 0..9 {
        let user = crate::users::create(&app, &unique_email(&format!("m{i}")), "").await;
        add(&app, &customer.uuid, Member::UserId(user.uuid.clone()), &[])
            .await
            .unwrap();
        expected.push(user.uuid);
    }
    let mut seen = Vec::new();
    let mut request = pb::ListCustomerUsersRequest {
        customer_id: customer.uuid.clone(),
        page_size: 4,
        ..Default::default()
    };
    loop {
        let page = app
            .customers
            .clone()
            .list_customer_users(request.clone())
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.memberships.into_iter().map(|m| m.user_id));
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(seen, expected);
    let missing = app
        .customers
        .clone()
        .list_customer_users(pb::ListCustomerUsersRequest {
            customer_id: tenancy::domain::id::Id::generate().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    // ListUsers filters by customer and by account through memberships.
    let account = crate::accounts::create(&app, &customer.uuid, "Acc").await;
    let by_customer = app
        .users
        .clone()
        .list_users(pb::ListUsersRequest {
            customer_id: customer.uuid.clone(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(by_customer.len(), 10);
    let by_account = app
        .users
        .clone()
        .list_users(pb::ListUsersRequest {
            account_id: account.uuid.clone(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(
        by_account
            .iter()
            .map(|u| u.uuid.clone())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&customer.owner_user_id)
    );
}

async fn deleting_a_member_user_removes_its_memberships_with_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("deluser"))).await;
    let account = crate::accounts::create(&app, &customer.uuid, "Acc").await;
    let user = crate::users::create(&app, &unique_email("member"), "").await;
    add(&app, &customer.uuid, Member::UserId(user.uuid.clone()), &[])
        .await
        .unwrap();
    add_account_member(&app, &account.uuid, &user.uuid, &[])
        .await
        .unwrap();
    let before = events(&app).await.len();
    crate::users::delete(&app, &user.uuid, "").await.unwrap();
    let new_events = events(&app).await.split_off(before);
    assert_eq!(
        kinds(&new_events),
        ["membership.deleted", "membership.deleted", "user.deleted"]
    );
    assert!(
        new_events[..2]
            .iter()
            .all(|e| e.customer_id.map(|c| c.to_string()) == Some(customer.uuid.clone()))
    );
    assert_eq!(members_of(&app, &customer.uuid).await.len(), 1);
    // The owner of an account (not of the customer) cannot be deleted either.
    let owner = crate::users::create(&app, &unique_email("accowner"), "").await;
    let mut request = crate::accounts::request(&customer.uuid, crate::accounts::meeting("Owned"));
    request.owner = Some(pb::create_account_request::Owner::OwnerUserId(
        owner.uuid.clone(),
    ));
    crate::accounts::try_create_with(&app, request)
        .await
        .unwrap();
    let refused = crate::users::delete(&app, &owner.uuid, "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
}

async fn the_schema_itself_refuses_a_second_owner_or_two_targets(backend: Backend) {
    use sea_orm::{ConnectionTrait as _, Database};
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("schema"))).await;
    let user = crate::users::create(&app, &unique_email("second"), "").await;
    add(&app, &customer.uuid, Member::UserId(user.uuid.clone()), &[])
        .await
        .unwrap();
    let db = Database::connect(&app.database.url).await.unwrap();
    let backend = db.get_database_backend();
    let uuid = |text: &str| uuid::Uuid::parse_str(text).unwrap();
    let promote = sea_orm::Statement::from_sql_and_values(
        backend,
        "UPDATE memberships SET owner = $1 WHERE user_id = $2",
        [true.into(), uuid(&user.uuid).into()],
    );
    assert!(
        db.execute_raw(promote).await.is_err(),
        "a second owner of one customer"
    );
    let both = sea_orm::Statement::from_sql_and_values(
        backend,
        "UPDATE memberships SET account_id = customer_id WHERE user_id = $1",
        [uuid(&user.uuid).into()],
    );
    assert!(
        db.execute_raw(both).await.is_err(),
        "a membership of two targets"
    );
    let duplicate = sea_orm::Statement::from_sql_and_values(
        backend,
        "INSERT INTO memberships (id, user_id, customer_id, account_id, owner, permissions, status, create_time, update_time, revision) \
         VALUES ($1, $2, $3, NULL, $4, '[]', 'active', 0, 0, 1)",
        [
            uuid::Uuid::now_v7().into(),
            uuid(&user.uuid).into(),
            uuid(&customer.uuid).into(),
            false.into(),
        ],
    );
    assert!(
        db.execute_raw(duplicate).await.is_err(),
        "two memberships of one user and target"
    );
    db.close().await.unwrap();
}

async fn sign_in_returns_the_active_memberships_and_the_user_lists_all(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("signin"))).await;
    let account = crate::accounts::create(&app, &customer.uuid, "Acc").await;
    let other = customers::create(&app, personal(&unique_email("other"))).await;
    let email = unique_email("member");
    let user = crate::users::create(&app, &email, crate::helpers::GOOD_PASSWORD).await;
    add(
        &app,
        &customer.uuid,
        Member::UserId(user.uuid.clone()),
        &["rooms.read"],
    )
    .await
    .unwrap();
    add_account_member(&app, &account.uuid, &user.uuid, &["recordings.read"])
        .await
        .unwrap();
    add(&app, &other.uuid, Member::UserId(user.uuid.clone()), &[])
        .await
        .unwrap();
    set_status(&app, &other.uuid, pb::CustomerStatus::Terminated).await;
    let signed_in = app
        .users
        .clone()
        .authenticate_user(pb::AuthenticateUserRequest {
            email,
            password: crate::helpers::GOOD_PASSWORD.into(),
            totp_code: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let targets: Vec<_> = signed_in
        .memberships
        .iter()
        .map(|m| m.target.clone())
        .collect();
    assert_eq!(
        targets,
        [
            Some(pb::membership::Target::CustomerId(customer.uuid.clone())),
            Some(pb::membership::Target::AccountId(account.uuid.clone())),
        ],
        "the terminated customer's membership is inactive and left out"
    );
    let all = app
        .users
        .clone()
        .list_user_memberships(pb::ListUserMembershipsRequest {
            user_id: user.uuid.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .memberships;
    assert_eq!(all.len(), 3);
    assert_eq!(
        all.iter()
            .filter(|m| m.status == pb::MembershipStatus::Inactive as i32)
            .count(),
        1
    );
}

crate::on_both_backends!(
    sign_in_returns_the_active_memberships_and_the_user_lists_all,
    members_are_added_by_id_or_email_with_checked_permissions,
    a_closed_or_suspended_customer_takes_no_new_members,
    the_registration_domains_bind_new_members,
    permissions_are_replaced_and_etags_checked,
    members_are_removed_but_never_the_owner,
    member_lists_page_in_creation_order,
    deleting_a_member_user_removes_its_memberships_with_events,
    the_schema_itself_refuses_a_second_owner_or_two_targets,
);
