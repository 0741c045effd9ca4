//! Hostile input never answers INTERNAL: every string field has a limit and refuses NUL
//! (INVALID_ARGUMENT naming the field path), a body that is not the RPC's protobuf
//! message is INVALID_ARGUMENT, and a request over the size limit RESOURCE_EXHAUSTED.

use tenancy::app::users::SIGN_IN_FAILED;
use tenancy_client::pb;
use tonic::{Code, Request, Status};

use super::count;
use crate::{
    helpers::{
        ADMIN_KEY, Backend, GOOD_PASSWORD, TestApp, spawn_app, unique_email, violated_fields,
    },
    users::{create, create_request, new_user},
};

async fn sign_in(app: &TestApp, email: &str) -> Status {
    app.users
        .clone()
        .authenticate_user(pb::AuthenticateUserRequest {
            email: email.into(),
            password: GOOD_PASSWORD.into(),
            totp_code: String::new(),
        })
        .await
        .expect_err("the sign-in must fail")
}

async fn a_nul_or_an_overlong_string_is_an_invalid_argument_naming_its_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut users = app.users.clone();

    let status = users
        .list_users(pb::ListUsersRequest {
            query: "ana\0".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_fields(&status), ["query"]);

    let status = users
        .get_user(pb::GetUserRequest {
            lookup: Some(pb::get_user_request::Lookup::Email(
                "a\0@example.com".into(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_fields(&status), ["email"]);

    // Every violated string is named at once, wherever it sits.
    let mut user = new_user(&unique_email("hostile"));
    user.first_name = "x".repeat(300_000);
    user.last_name = "Silva\0".into();
    let status = users
        .create_user(create_request(user, GOOD_PASSWORD, ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        violated_fields(&status),
        ["user.first_name", "user.last_name"]
    );

    // Services whose handlers are not written yet are covered by the same rule.
    let address = |city: &str| pb::Address {
        city: city.into(),
        ..Default::default()
    };
    let status = app
        .customers
        .clone()
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(pb::Customer {
                addresses: vec![address("Lisboa"), address("Por\0to")],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_fields(&status), ["customer.addresses[1].city"]);
}

async fn a_sign_in_email_that_can_never_be_valid_is_a_failed_sign_in_without_a_throttle_row(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let unknown = sign_in(&app, &unique_email("nobody")).await;
    assert_eq!(unknown.code(), Code::Unauthenticated);
    assert_eq!(unknown.message(), SIGN_IN_FAILED);
    let rows_before = count(&app, "SELECT COUNT(*) FROM login_throttle").await;

    for email in [
        "ana\0@example.com".to_string(),
        format!("{}@example.com", "a".repeat(300_000)),
        format!("{}@example.com", "b".repeat(250)),
        "not an address".to_string(),
    ] {
        let status = sign_in(&app, &email).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert_eq!(status.message(), unknown.message(), "one uniform answer");
        assert!(status.details().is_empty());
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM login_throttle").await,
        rows_before,
        "emails that cannot be valid leave no throttle row"
    );
}

/// A message of the wrong shape: field 1 of GetUserRequest is a string, sent here as a
/// fixed32; field 2 is sent as bytes that are not UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongWireType {
    #[prost(fixed32, tag = "1")]
    user_id: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BytesForEmail {
    #[prost(bytes = "vec", tag = "2")]
    email: Vec<u8>,
}

async fn raw_call<M: prost::Message + Default + Send + Sync + 'static>(
    app: &TestApp,
    path: &'static str,
    message: M,
) -> Status {
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("ready");
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {ADMIN_KEY}").parse().expect("ascii"),
    );
    grpc.unary::<M, pb::GetUserResponse, _>(
        request,
        http::uri::PathAndQuery::from_static(path),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .expect_err("a malformed request must fail")
}

async fn a_body_that_is_not_the_rpcs_message_is_an_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    let status = raw_call(
        &app,
        "/tenancy.v1.UserService/GetUser",
        WrongWireType { user_id: 7 },
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let status = raw_call(
        &app,
        "/tenancy.v1.UserService/GetUser",
        BytesForEmail {
            email: vec![b'a', 0xff, 0xfe, b'@'],
        },
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // The sign-in email too: invalid UTF-8 is a malformed body, not a sign-in.
    let status = raw_call(
        &app,
        "/tenancy.v1.UserService/AuthenticateUser",
        WrongWireType { user_id: 7 },
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

async fn a_request_over_the_size_limit_is_resource_exhausted(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = create(&app, &unique_email("big"), "").await;
    // 2 MiB of query: over the default 1 MiB.
    let status = app
        .users
        .clone()
        .list_users(pb::ListUsersRequest {
            query: "q".repeat(2 << 20),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // The connection stays usable.
    let found = app
        .users
        .clone()
        .get_user(pb::GetUserRequest {
            lookup: Some(pb::get_user_request::Lookup::UserId(user.uuid.clone())),
        })
        .await
        .expect("a normal request after a refused one");
    assert_eq!(found.into_inner().user.expect("user").uuid, user.uuid);
}

crate::on_both_backends!(
    a_nul_or_an_overlong_string_is_an_invalid_argument_naming_its_field,
    a_sign_in_email_that_can_never_be_valid_is_a_failed_sign_in_without_a_throttle_row,
    a_body_that_is_not_the_rpcs_message_is_an_invalid_argument,
    a_request_over_the_size_limit_is_resource_exhausted,
);
