//! Concurrent retries of one request: 16 copies with one `request_id`, sent at once,
//! make one change and all answer with its result, for every RPC that takes one.

use std::collections::HashSet;

use futures::future::join_all;
use tenancy_client::pb::{self, accept_invitation_request::Acceptor};

use crate::customers::{self, events, kinds, personal};
use crate::helpers::{Backend, GOOD_PASSWORD, spawn_app, unique_email};

const COPIES: usize = 16;

fn one_result<T: std::fmt::Debug>(results: Vec<Result<String, tonic::Status>>, what: T) -> String {
    let ids: HashSet<String> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|s| panic!("{what:?}: a retry failed: {s:?}")))
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "{what:?}: every retry answers the first result"
    );
    ids.into_iter().next().unwrap()
}

async fn concurrent_retries_of_creates_and_accepts_get_the_first_result(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("retried"))).await;

    // CreateAccount.
    let mut request = crate::accounts::request(&customer.uuid, crate::accounts::meeting("Once"));
    request.request_id = uuid::Uuid::new_v4().to_string();
    let results = join_all((0..COPIES).map(|_| {
        let mut client = app.accounts.clone();
        let request = request.clone();
        async move {
            client
                .create_account(request)
                .await
                .map(|r| r.into_inner().account.unwrap().uuid)
        }
    }))
    .await;
    let account = one_result(results, "CreateAccount");

    // CreateCustomerInvitation: one invitation; each retry rotates its token.
    let invitation = pb::CreateCustomerInvitationRequest {
        roles: Vec::new(),
        customer_id: customer.uuid.clone(),
        email: unique_email("invited"),
        permissions: vec!["rooms.read".into()],
        inviter_user_id: String::new(),
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    let results = join_all((0..COPIES).map(|_| {
        let mut client = app.customers.clone();
        let request = invitation.clone();
        async move {
            client
                .create_customer_invitation(request)
                .await
                .map(|r| r.into_inner().invitation.unwrap().uuid)
        }
    }))
    .await;
    one_result(results, "CreateCustomerInvitation");

    // CreateAccountInvitation.
    let account_invitation = pb::CreateAccountInvitationRequest {
        roles: Vec::new(),
        account_id: account.clone(),
        email: unique_email("accinvited"),
        permissions: vec!["recordings.read".into()],
        inviter_user_id: String::new(),
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    let results = join_all((0..COPIES).map(|_| {
        let mut client = app.accounts.clone();
        let request = account_invitation.clone();
        async move {
            client
                .create_account_invitation(request)
                .await
                .map(|r| r.into_inner().invitation.unwrap().uuid)
        }
    }))
    .await;
    one_result(results, "CreateAccountInvitation");

    // AcceptInvitation of a fresh token, as a new user.
    let token = app
        .customers
        .clone()
        .create_customer_invitation(pb::CreateCustomerInvitationRequest {
            roles: Vec::new(),
            customer_id: customer.uuid.clone(),
            email: unique_email("acceptor"),
            permissions: vec!["rooms.read".into()],
            inviter_user_id: String::new(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let accept = pb::AcceptInvitationRequest {
        token,
        acceptor: Some(Acceptor::NewUser(pb::NewUser {
            first_name: "Nova".into(),
            last_name: "Pessoa".into(),
            password: GOOD_PASSWORD.into(),
        })),
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    let results = join_all((0..COPIES).map(|_| {
        let mut client = app.users.clone();
        let request = accept.clone();
        async move {
            client
                .accept_invitation(request)
                .await
                .map(|r| r.into_inner().membership.unwrap().user_id)
        }
    }))
    .await;
    one_result(results, "AcceptInvitation");

    let all = kinds(&events(&app).await);
    let count = |kind: &str| all.iter().filter(|k| *k == kind).count();
    assert_eq!(count("account.created"), 1, "{all:?}");
    assert_eq!(count("invitation.created"), 3, "{all:?}");
    assert_eq!(count("invitation.accepted"), 1, "{all:?}");
}

async fn a_retried_accept_with_another_token_is_another_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("tokens"))).await;
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let created = app
            .customers
            .clone()
            .create_customer_invitation(pb::CreateCustomerInvitationRequest {
                roles: Vec::new(),
                customer_id: customer.uuid.clone(),
                email: unique_email("twotokens"),
                permissions: vec!["rooms.read".into()],
                inviter_user_id: String::new(),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        tokens.push(created.token);
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let accept = |token: &str| pb::AcceptInvitationRequest {
        token: token.into(),
        acceptor: Some(Acceptor::NewUser(pb::NewUser {
            first_name: "Nova".into(),
            last_name: "Pessoa".into(),
            password: GOOD_PASSWORD.into(),
        })),
        request_id: request_id.clone(),
    };
    app.users
        .clone()
        .accept_invitation(accept(&tokens[0]))
        .await
        .unwrap();
    let reused = app
        .users
        .clone()
        .accept_invitation(accept(&tokens[1]))
        .await
        .expect_err("the same request id with another token is another body");
    assert_eq!(reused.code(), tonic::Code::InvalidArgument, "{reused:?}");
}

crate::on_both_backends!(
    concurrent_retries_of_creates_and_accepts_get_the_first_result,
    a_retried_accept_with_another_token_is_another_request,
);
