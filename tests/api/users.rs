//! UserService tests.

use tenancy::pb;
use tonic::Code;

use crate::helpers::{
    Backend, GOOD_PASSWORD, error_reason, spawn_app, unique_email, violated_fields,
};

fn new_user(email: &str) -> pb::User {
    pb::User {
        email: email.into(),
        first_name: "Ana".into(),
        last_name: "Silva".into(),
        ..Default::default()
    }
}

async fn creating_a_user_returns_both_ids_and_hides_the_password(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let email = unique_email("Ana");
    let created = app
        .users
        .create_user(pb::CreateUserRequest {
            user: Some(new_user(&email)),
            password: GOOD_PASSWORD.into(),
            request_id: String::new(),
        })
        .await
        .expect("create")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(created.email, email.to_lowercase());
    assert!(created.has_password);
    assert_eq!(created.language, "en");
    let by_ulid = app
        .users
        .get_user(pb::GetUserRequest {
            lookup: Some(pb::get_user_request::Lookup::UserId(created.ulid.clone())),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(by_ulid.uuid, created.uuid);
}

async fn a_duplicate_email_is_already_exists(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let email = unique_email("dup");
    let request = pb::CreateUserRequest {
        user: Some(new_user(&email)),
        password: String::new(),
        request_id: String::new(),
    };
    app.users.create_user(request.clone()).await.unwrap();
    let mut upper = request.clone();
    upper.user.as_mut().unwrap().email = email.to_uppercase();
    let status = app.users.create_user(upper).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(error_reason(&status).as_deref(), Some("EMAIL_TAKEN"));
}

async fn every_invalid_field_is_reported(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let status = app
        .users
        .create_user(pb::CreateUserRequest {
            user: Some(pb::User {
                email: "nope".into(),
                language: "not a tag".into(),
                ..Default::default()
            }),
            password: "password".into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "password",
            "user.email",
            "user.first_name",
            "user.language",
            "user.last_name"
        ]
    );
}

crate::on_both_backends!(
    creating_a_user_returns_both_ids_and_hides_the_password,
    a_duplicate_email_is_already_exists,
    every_invalid_field_is_reported,
);
