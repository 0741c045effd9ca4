//! Callers (SPEC section 7): every RPC but health and reflection needs a live bearer key
//! holding the RPC's scope.

use tenancy::app::api_keys::{issue_key, revoke_key};
use tenancy_client::pb::{
    self, customer_service_client::CustomerServiceClient, user_service_client::UserServiceClient,
};
use tonic::{
    Code, Request, Status,
    codegen::http::uri::PathAndQuery,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

use super::{create_request, create_user, get_by_email};
use std::time::Duration;

use crate::helpers::{ADMIN_KEY, Backend, BearerKey, eventually, spawn_app, unique_email};

/// Issues a key with `scopes` straight into the store, as `tenancy keys create` does.
async fn key_with(app: &crate::helpers::TestApp, scopes: &[&str]) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    issue_key(&app.store, "test key", &scopes)
        .await
        .expect("issue key")
        .secret
}

/// Sends `authorization: <value>` verbatim.
#[derive(Clone)]
struct RawAuthorization(&'static str);

impl Interceptor for RawAuthorization {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.parse().expect("ascii"));
        Ok(request)
    }
}

fn users_with_header(
    channel: Channel,
    value: &'static str,
) -> UserServiceClient<InterceptedService<Channel, RawAuthorization>> {
    UserServiceClient::with_interceptor(channel, RawAuthorization(value))
}

/// Calls a method path no service declares, with `key`.
async fn call_undeclared_method(channel: Channel, key: Option<&str>) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut request = Request::new(());
    if let Some(key) = key {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {key}").parse().expect("ascii"),
        );
    }
    grpc.unary::<(), (), _>(
        request,
        PathAndQuery::from_static("/tenancy.v1.UserService/NoSuchMethod"),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .expect_err("no such method")
}

async fn a_call_without_a_key_is_unauthenticated(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut anonymous = app.users_with_key(None);

    let get = anonymous
        .get_user(get_by_email(&unique_email("nobody")))
        .await
        .unwrap_err();
    let create = anonymous
        .create_user(create_request(&unique_email("nobody")))
        .await
        .unwrap_err();
    let stream = app
        .events_with_key(None)
        .stream_events(pb::StreamEventsRequest { after_sequence: 0 })
        .await
        .unwrap_err();

    assert_eq!(get.code(), Code::Unauthenticated, "{get:?}");
    assert_eq!(create.code(), Code::Unauthenticated, "{create:?}");
    assert_eq!(stream.code(), Code::Unauthenticated, "{stream:?}");
    assert!(
        app.log_after(0, 10).await.unwrap().is_empty(),
        "a refused call changed nothing"
    );
}

async fn a_wrong_key_is_unauthenticated(backend: Backend) {
    let app = spawn_app(backend).await;

    let wrong = app
        .users_with_key(Some("tny_this-key-was-never-issued-0123456789"))
        .get_user(get_by_email(&unique_email("nobody")))
        .await
        .unwrap_err();
    let almost = app
        .users_with_key(Some(&format!("{ADMIN_KEY}x")))
        .get_user(get_by_email(&unique_email("nobody")))
        .await
        .unwrap_err();

    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
    assert_eq!(almost.code(), Code::Unauthenticated, "{almost:?}");
}

async fn only_the_bearer_scheme_is_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("nobody");

    // The admin key itself, but not as a bearer token.
    let basic = users_with_header(app.channel.clone(), "Basic test-admin-key-0123456789abcdef")
        .get_user(get_by_email(&email))
        .await
        .unwrap_err();
    let bare = users_with_header(app.channel.clone(), "test-admin-key-0123456789abcdef")
        .get_user(get_by_email(&email))
        .await
        .unwrap_err();
    let empty = users_with_header(app.channel.clone(), "Bearer ")
        .get_user(get_by_email(&email))
        .await
        .unwrap_err();
    // The same key as a bearer token is accepted (NOT_FOUND: the caller got through).
    let bearer = users_with_header(
        app.channel.clone(),
        "Bearer test-admin-key-0123456789abcdef",
    )
    .get_user(get_by_email(&email))
    .await
    .unwrap_err();

    assert_eq!(basic.code(), Code::Unauthenticated, "{basic:?}");
    assert_eq!(bare.code(), Code::Unauthenticated, "{bare:?}");
    assert_eq!(empty.code(), Code::Unauthenticated, "{empty:?}");
    assert_eq!(bearer.code(), Code::NotFound, "{bearer:?}");
}

async fn a_key_without_the_scope_is_permission_denied(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = key_with(&app, &["users.read"]).await;
    let mut users = app.users_with_key(Some(&reader));
    let email = unique_email("reader");

    let create = users.create_user(create_request(&email)).await.unwrap_err();
    let stream = app
        .events_with_key(Some(&reader))
        .stream_events(pb::StreamEventsRequest { after_sequence: 0 })
        .await
        .unwrap_err();
    let customer = CustomerServiceClient::with_interceptor(
        app.channel.clone(),
        BearerKey(Some(reader.clone())),
    )
    .get_customer(pb::GetCustomerRequest::default())
    .await
    .unwrap_err();
    // GetUser needs users.read, which the key holds: NOT_FOUND means it was let through.
    let missing = users.get_user(get_by_email(&email)).await.unwrap_err();
    create_user(&app, &email).await;
    let found = users.get_user(get_by_email(&email)).await;

    assert_eq!(create.code(), Code::PermissionDenied, "{create:?}");
    assert_eq!(stream.code(), Code::PermissionDenied, "{stream:?}");
    assert_eq!(customer.code(), Code::PermissionDenied, "{customer:?}");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert_eq!(
        found
            .expect("users.read may read")
            .into_inner()
            .user
            .unwrap()
            .email,
        email
    );
    let events = app.log_after(0, 10).await.unwrap();
    assert_eq!(events.len(), 1, "only the admin's create wrote: {events:?}");
}

async fn a_writer_key_may_write_but_not_stream(backend: Backend) {
    let app = spawn_app(backend).await;
    let writer = key_with(&app, &["users.write", "events.read"]).await;
    let mut users = app.users_with_key(Some(&writer));

    let created = users.create_user(create_request(&unique_email("w"))).await;
    let read = users
        .get_user(get_by_email(&unique_email("w")))
        .await
        .unwrap_err();
    let stream = app
        .events_with_key(Some(&writer))
        .stream_events(pb::StreamEventsRequest { after_sequence: 0 })
        .await;

    assert!(created.is_ok(), "{created:?}");
    assert_eq!(read.code(), Code::PermissionDenied, "{read:?}");
    assert!(stream.is_ok(), "events.read may stream: {:?}", stream.err());
}

async fn a_revoked_key_is_unauthenticated(backend: Backend) {
    let app = spawn_app(backend).await;
    let issued = issue_key(&app.store, "soon revoked", &["users.read".into()])
        .await
        .unwrap();
    let mut users = app.users_with_key(Some(&issued.secret));
    let email = unique_email("revoked");
    let before = users.get_user(get_by_email(&email)).await.unwrap_err();

    revoke_key(&app.store, &issued.key.id.to_string())
        .await
        .expect("revoke");
    // The server verifies keys from memory; a revocation reaches it within the cache's
    // staleness bound (1 s by default;
    // the test allows more for a loaded machine: `caching::keys` asserts the bound).
    eventually(Duration::from_secs(5), || {
        let mut users = users.clone();
        let email = email.clone();
        async move {
            users
                .get_user(get_by_email(&email))
                .await
                .unwrap_err()
                .code()
                == Code::Unauthenticated
        }
    })
    .await;
    let after = users.get_user(get_by_email(&email)).await.unwrap_err();

    assert_eq!(before.code(), Code::NotFound, "live before: {before:?}");
    assert_eq!(after.code(), Code::Unauthenticated, "{after:?}");
}

async fn the_admin_key_can_call_everything(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut users = app.users.clone();
    let email = unique_email("admin");

    let created = create_user(&app, &email).await;
    let got = users.get_user(get_by_email(&email)).await;
    let listed = users.list_users(pb::ListUsersRequest::default()).await;
    let stream = app
        .events
        .clone()
        .stream_events(pb::StreamEventsRequest { after_sequence: 0 })
        .await;
    // Not implemented yet, but the key is let through to say so.
    let customer = app
        .customers
        .clone()
        .get_customer(pb::GetCustomerRequest::default())
        .await
        .unwrap_err();
    let account = app
        .accounts
        .clone()
        .get_account(pb::GetAccountRequest::default())
        .await
        .unwrap_err();

    assert_eq!(got.unwrap().into_inner().user.unwrap().uuid, created.uuid);
    assert!(
        listed
            .unwrap()
            .into_inner()
            .users
            .iter()
            .any(|u| u.uuid == created.uuid)
    );
    let first = stream
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.event.unwrap().sequence, 1);
    // Past authentication and scope checks: the empty requests are refused on content.
    assert_eq!(customer.code(), Code::InvalidArgument, "{customer:?}");
    assert_eq!(account.code(), Code::InvalidArgument, "{account:?}");
}

async fn undeclared_methods_answer_unimplemented_to_a_valid_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let undeclared = call_undeclared_method(app.channel.clone(), Some(ADMIN_KEY)).await;
    let undeclared_anonymous = call_undeclared_method(app.channel.clone(), None).await;
    let anonymous_customer =
        CustomerServiceClient::with_interceptor(app.channel.clone(), BearerKey(None))
            .get_customer(pb::GetCustomerRequest::default())
            .await
            .unwrap_err();

    assert_eq!(undeclared.code(), Code::Unimplemented, "{undeclared:?}");
    // Authentication comes first, so probing paths without a key reveals nothing.
    assert_eq!(
        undeclared_anonymous.code(),
        Code::Unauthenticated,
        "{undeclared_anonymous:?}"
    );
    assert_eq!(
        anonymous_customer.code(),
        Code::Unauthenticated,
        "{anonymous_customer:?}"
    );
}

crate::on_both_backends!(
    a_call_without_a_key_is_unauthenticated,
    a_wrong_key_is_unauthenticated,
    only_the_bearer_scheme_is_accepted,
    a_key_without_the_scope_is_permission_denied,
    a_writer_key_may_write_but_not_stream,
    a_revoked_key_is_unauthenticated,
    the_admin_key_can_call_everything,
    undeclared_methods_answer_unimplemented_to_a_valid_key,
);
