//! AccountService tests: creation and its owner (this file), quotas and effective
//! limits (`accounts/limits.rs`), updates and the lifecycle (`accounts/lifecycle.rs`).

pub(crate) mod lifecycle;
mod limits;

use tenancy_client::pb::{self, account_service_client::AccountServiceClient};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::customers::{self, business, events, kinds, personal, set_status};
use crate::helpers::{
    Backend, GOOD_PASSWORD, Svc, TestApp, error_reason, spawn_app, unique_email, violated_fields,
};

pub fn meeting(name: &str) -> pb::Account {
    pb::Account {
        name: name.into(),
        service_type: pb::ServiceType::WebMeeting as i32,
        ..Default::default()
    }
}

pub fn request(customer_id: &str, account: pb::Account) -> pb::CreateAccountRequest {
    pb::CreateAccountRequest {
        customer_id: customer_id.into(),
        account: Some(account),
        ..Default::default()
    }
}

pub async fn try_create_with(
    app: &TestApp,
    request: pb::CreateAccountRequest,
) -> Result<pb::Account, Status> {
    app.accounts
        .clone()
        .create_account(request)
        .await
        .map(|r| r.into_inner().account.expect("an account"))
}

pub async fn create(app: &TestApp, customer_id: &str, name: &str) -> pb::Account {
    try_create_with(app, request(customer_id, meeting(name)))
        .await
        .unwrap_or_else(|s| panic!("create account {name}: {s:?}"))
}

/// Renames an account through `accounts` (UpdateAccount without an etag).
pub async fn rename(
    mut accounts: AccountServiceClient<Svc>,
    account_id: String,
    name: &str,
) -> Result<pb::Account, Status> {
    accounts
        .update_account(pb::UpdateAccountRequest {
            account_id,
            account: Some(pb::Account {
                name: name.into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".into()],
            }),
            etag: String::new(),
        })
        .await
        .map(|r| r.into_inner().account.expect("an account"))
}

pub async fn get(app: &TestApp, id: &str) -> Result<pb::Account, Status> {
    app.accounts
        .clone()
        .get_account(pb::GetAccountRequest {
            account_id: id.into(),
        })
        .await
        .map(|r| r.into_inner().account.expect("an account"))
}

async fn an_account_belongs_to_its_customer_and_its_owner_by_default(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, business(&unique_email("acc"), "Acc Co")).await;
    let before = events(&app).await.len();
    let account = create(&app, &customer.ulid, "Meetings").await;
    assert_eq!(account.customer_id, customer.uuid);
    assert_eq!(account.owner_user_id, customer.owner_user_id);
    assert_eq!(account.status, pb::AccountStatus::Active as i32);
    assert_eq!(account.service_type, pb::ServiceType::WebMeeting as i32);
    assert_eq!(get(&app, &account.ulid).await.unwrap(), account);
    assert_eq!(
        kinds(&events(&app).await.split_off(before)),
        ["account.created", "membership.created"]
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
        memberships.iter().any(|m| m.owner
            && m.target == Some(pb::membership::Target::AccountId(account.uuid.clone())))
    );
}

async fn an_account_owner_may_be_an_existing_or_a_new_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("own"))).await;
    let user = crate::users::create(&app, &unique_email("member"), "").await;
    let mut by_id = request(&customer.uuid, meeting("By id"));
    by_id.owner = Some(pb::create_account_request::Owner::OwnerUserId(
        user.uuid.clone(),
    ));
    assert_eq!(
        try_create_with(&app, by_id).await.unwrap().owner_user_id,
        user.uuid
    );

    let new_email = unique_email("newowner");
    let mut new_owner = request(&customer.uuid, meeting("New owner"));
    new_owner.owner = Some(pb::create_account_request::Owner::NewOwner(pb::NewOwner {
        email: new_email.clone(),
        first_name: "Nova".into(),
        last_name: "Dona".into(),
        password: GOOD_PASSWORD.into(),
    }));
    let account = try_create_with(&app, new_owner.clone()).await.unwrap();
    let owner = crate::users::get(&app, &account.owner_user_id)
        .await
        .unwrap();
    assert_eq!(owner.email, new_email);
    assert!(owner.has_password);

    // The same new owner again: that email is taken now.
    let status = try_create_with(&app, new_owner).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(error_reason(&status).as_deref(), Some("EMAIL_TAKEN"));

    let mut weak = request(&customer.uuid, meeting("Weak"));
    weak.owner = Some(pb::create_account_request::Owner::NewOwner(pb::NewOwner {
        email: "bad".into(),
        first_name: "".into(),
        last_name: "Dona".into(),
        password: "".into(),
    }));
    let status = try_create_with(&app, weak).await.unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "new_owner.email",
            "new_owner.first_name",
            "new_owner.password"
        ]
    );
}

async fn the_registration_domains_bind_account_owners_too(backend: Backend) {
    let app = spawn_app(backend).await;
    let boss = format!(
        "boss-{}@corp.example",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let mut customer = personal(&boss);
    customer.allowed_domains_registration = vec!["corp.example".into()];
    let customer = customers::create(&app, customer).await;
    let outsider = crate::users::create(&app, &unique_email("outsider"), "").await;
    let mut by_id = request(&customer.uuid, meeting("Outsider"));
    by_id.owner = Some(pb::create_account_request::Owner::OwnerUserId(
        outsider.uuid.clone(),
    ));
    let status = try_create_with(&app, by_id).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let mut new_owner = request(&customer.uuid, meeting("New outsider"));
    new_owner.owner = Some(pb::create_account_request::Owner::NewOwner(pb::NewOwner {
        email: unique_email("newoutsider"),
        first_name: "Out".into(),
        last_name: "Sider".into(),
        password: GOOD_PASSWORD.into(),
    }));
    let before = events(&app).await.len();
    let status = try_create_with(&app, new_owner).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(events(&app).await.len(), before, "no user was created");
    create(&app, &customer.uuid, "Insider").await;
}

async fn only_an_active_customer_takes_new_accounts(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("inactive"))).await;
    use pb::CustomerStatus::*;
    for status in [Suspended, Inactive, Terminated] {
        set_status(&app, &customer.uuid, status).await;
        let error = try_create_with(&app, request(&customer.uuid, meeting("No")))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::FailedPrecondition, "{status:?}");
        let failure = error.get_details_precondition_failure().expect("details");
        assert_eq!(failure.violations[0].r#type, "CUSTOMER_NOT_ACTIVE");
        assert!(
            failure.violations[0]
                .description
                .contains(&format!("{status:?}").to_uppercase()),
            "{:?}",
            failure.violations[0]
        );
    }
    let missing = try_create_with(
        &app,
        request(
            &tenancy::domain::id::Id::generate().to_string(),
            meeting("x"),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

async fn bad_accounts_report_every_violation(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("badacc"))).await;
    let account = pb::Account {
        name: "".into(),
        service_type: pb::ServiceType::Unspecified as i32,
        account_settings: Some(crate::customers::validation::object(&[(
            "max_rooms",
            crate::customers::validation::number(-3.0),
        )])),
        ..Default::default()
    };
    let status = try_create_with(&app, request("nope", account))
        .await
        .unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "account.account_settings.max_rooms",
            "account.name",
            "account.service_type",
            "customer_id",
        ]
    );
    let _ = customer;
}

async fn a_retry_with_the_same_request_id_returns_the_first_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("retryacc"))).await;
    let mut first = request(&customer.uuid, meeting("Once"));
    first.request_id = uuid::Uuid::new_v4().to_string();
    let a = try_create_with(&app, first.clone()).await.unwrap();
    let count = events(&app).await.len();
    let b = try_create_with(&app, first.clone()).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(events(&app).await.len(), count);
    first.account.as_mut().unwrap().name = "Twice".into();
    assert_eq!(
        try_create_with(&app, first).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

async fn accounts_are_listed_by_customer_status_and_type_in_pages(backend: Backend) {
    let app = spawn_app(backend).await;
    let one = customers::create(&app, personal(&unique_email("one"))).await;
    let two = customers::create(&app, personal(&unique_email("two"))).await;
    let mut mine = Vec::new();
    for i in 0..7 {
        mine.push(create(&app, &one.uuid, &format!("A{i}")).await.uuid);
    }
    let mut streaming = meeting("Stream");
    streaming.service_type = pb::ServiceType::VideoStreaming as i32;
    let stream = try_create_with(&app, request(&two.uuid, streaming))
        .await
        .unwrap();
    create(&app, &two.uuid, "Other").await;

    let mut listed = Vec::new();
    let mut req = pb::ListAccountsRequest {
        customer_id: one.uuid.clone(),
        page_size: 3,
        ..Default::default()
    };
    loop {
        let page = app
            .accounts
            .clone()
            .list_accounts(req.clone())
            .await
            .unwrap()
            .into_inner();
        listed.extend(page.accounts.into_iter().map(|a| a.uuid));
        if page.next_page_token.is_empty() {
            break;
        }
        req.page_token = page.next_page_token;
    }
    assert_eq!(listed, mine);
    let by_type = app
        .accounts
        .clone()
        .list_accounts(pb::ListAccountsRequest {
            service_type: pb::ServiceType::VideoStreaming as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        by_type
            .accounts
            .iter()
            .map(|a| a.uuid.clone())
            .collect::<Vec<_>>(),
        [stream.uuid]
    );
    let first_page = app
        .accounts
        .clone()
        .list_accounts(pb::ListAccountsRequest {
            customer_id: one.uuid.clone(),
            page_size: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let status = app
        .accounts
        .clone()
        .list_accounts(pb::ListAccountsRequest {
            customer_id: two.uuid.clone(),
            page_size: 3,
            page_token: first_page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["page_token"]);
}

crate::on_both_backends!(
    an_account_belongs_to_its_customer_and_its_owner_by_default,
    an_account_owner_may_be_an_existing_or_a_new_user,
    the_registration_domains_bind_account_owners_too,
    only_an_active_customer_takes_new_accounts,
    bad_accounts_report_every_violation,
    a_retry_with_the_same_request_id_returns_the_first_account,
    accounts_are_listed_by_customer_status_and_type_in_pages,
);
