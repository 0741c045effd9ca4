//! `ListUsers`: keyset pages, page sizes, tokens bound to their filter, and `query`.

use futures::{StreamExt as _, stream};
use tenancy::domain::user::{NewUser, UserFields};
use tenancy_client::pb;
use tonic::{Code, Status};

use super::{create, delete, new_user};
use crate::helpers::{Backend, TestApp, spawn_app, unique_email, violated_fields};

fn list_request(query: &str, page_size: i32, page_token: &str) -> pb::ListUsersRequest {
    pb::ListUsersRequest {
        query: query.into(),
        page_size,
        page_token: page_token.into(),
        ..Default::default()
    }
}

async fn list(
    app: &TestApp,
    request: pb::ListUsersRequest,
) -> Result<pb::ListUsersResponse, Status> {
    Ok(app.users.clone().list_users(request).await?.into_inner())
}

/// Every page of `query` with `page_size`, as the pages came.
async fn pages(app: &TestApp, query: &str, page_size: i32) -> Vec<Vec<pb::User>> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(app, list_request(query, page_size, &token))
            .await
            .expect("list page");
        pages.push(page.users);
        if page.next_page_token.is_empty() {
            return pages;
        }
        assert!(pages.len() < 1000, "paging does not end");
        token = page.next_page_token;
    }
}

fn uuids(users: &[pb::User]) -> Vec<String> {
    users.iter().map(|u| u.uuid.clone()).collect()
}

/// Creates `count` users without passwords, one after the other (creation order).
async fn create_in_order(app: &TestApp, prefix: &str, count: usize) -> Vec<pb::User> {
    let mut users = Vec::with_capacity(count);
    for n in 0..count {
        users.push(create(app, &unique_email(&format!("{prefix}{n:03}")), "").await);
    }
    users
}

/// A user with the given names.
async fn create_named(app: &TestApp, email: &str, first: &str, last: &str) -> pb::User {
    let user = pb::User {
        first_name: first.into(),
        last_name: last.into(),
        ..new_user(email)
    };
    app.users
        .clone()
        .create_user(super::create_request(user, "", ""))
        .await
        .unwrap_or_else(|status| panic!("create {email}: {status:?}"))
        .into_inner()
        .user
        .unwrap()
}

async fn paging_through_66_users_returns_each_once_in_creation_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create_in_order(&app, "page", 66).await;
    let all = pages(&app, "", 7).await;
    let sizes: Vec<usize> = all.iter().map(Vec::len).collect();
    assert_eq!(sizes, [7, 7, 7, 7, 7, 7, 7, 7, 7, 3]);
    let listed: Vec<pb::User> = all.into_iter().flatten().collect();
    assert_eq!(listed, created, "every user once, in creation order");

    // An exact multiple of the page size ends without an empty page.
    let all = pages(&app, "", 11).await;
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|p| p.len() == 11));
}

async fn users_deleted_or_created_while_paging_cause_no_gap_or_duplicate(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create_in_order(&app, "live", 30).await;
    let first = list(&app, list_request("", 7, "")).await.unwrap();
    assert_eq!(uuids(&first.users), uuids(&created[..7]));
    // Deleting users already seen would shift an offset; keyset pages do not care.
    for gone in &created[..3] {
        delete(&app, &gone.uuid, "").await.unwrap();
    }
    let late = create(&app, &unique_email("late"), "").await;
    let mut token = first.next_page_token;
    let mut rest = Vec::new();
    while !token.is_empty() {
        let page = list(&app, list_request("", 7, &token)).await.unwrap();
        rest.extend(page.users);
        token = page.next_page_token;
    }
    let mut expected = uuids(&created[7..]);
    expected.push(late.uuid);
    assert_eq!(uuids(&rest), expected);
}

async fn the_page_size_defaults_to_50(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create_in_order(&app, "default", 60).await;
    let first = list(&app, list_request("", 0, "")).await.unwrap();
    assert_eq!(uuids(&first.users), uuids(&created[..50]));
    assert!(!first.next_page_token.is_empty());
    let second = list(&app, list_request("", 0, &first.next_page_token))
        .await
        .unwrap();
    assert_eq!(uuids(&second.users), uuids(&created[50..]));
    assert!(second.next_page_token.is_empty());
}

async fn a_page_size_above_1000_is_clamped(backend: Backend) {
    let app = spawn_app(backend).await;
    let count = 1003;
    // Straight into the store: a thousand RPCs would only make the test slow.
    let created: Vec<_> = stream::iter(0..count)
        .map(|n| {
            let store = &app.store;
            async move {
                let new = NewUser::parse(
                    "user",
                    &UserFields {
                        email: &unique_email(&format!("clamp{n}")),
                        first_name: "Ana",
                        last_name: "Silva",
                        ..Default::default()
                    },
                )
                .expect("a valid user");
                store.create_user(new, None, None).await.expect("create")
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    assert_eq!(created.len(), count);
    for size in [1001, i32::MAX] {
        let first = list(&app, list_request("", size, "")).await.unwrap();
        assert_eq!(first.users.len(), 1000, "page_size {size}");
        let second = list(&app, list_request("", size, &first.next_page_token))
            .await
            .unwrap();
        assert_eq!(second.users.len(), count - 1000);
        assert!(second.next_page_token.is_empty());
    }
}

async fn a_negative_page_size_is_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    create(&app, &unique_email("neg"), "").await;
    for size in [-1, i32::MIN] {
        let status = list(&app, list_request("", size, "")).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["page_size"]);
    }
}

async fn a_forged_page_token_or_one_from_another_filter_is_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    for n in 0..5 {
        create(&app, &format!("ana{n}-{}", unique_email("x")), "").await;
    }
    let first = list(&app, list_request("ana", 2, "")).await.unwrap();
    let token = first.next_page_token;
    assert!(!token.is_empty());
    // The token works for its own filter (the query is case-insensitive, so `ANA` is it).
    for query in ["ana", "ANA", " ana "] {
        let next = list(&app, list_request(query, 2, &token)).await;
        assert_eq!(next.expect(query).users.len(), 2);
    }
    // A page token can be read but not made: every byte flip is refused.
    let mut tampered = Vec::new();
    for position in [0, token.len() / 2, token.len() - 1] {
        let mut bytes = token.clone().into_bytes();
        bytes[position] = if bytes[position] == b'A' { b'B' } else { b'A' };
        tampered.push(String::from_utf8(bytes).unwrap());
    }
    let foreign = [
        "garbage".to_string(),
        format!("{token}A"),
        token[..token.len() - 2].to_string(),
    ];
    for bad in tampered.iter().chain(&foreign) {
        let status = list(&app, list_request("ana", 2, bad)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(violated_fields(&status), ["page_token"], "{bad}");
    }
    for other_filter in [
        list_request("an", 2, &token),
        list_request("", 2, &token),
        pb::ListUsersRequest {
            customer_id: uuid::Uuid::now_v7().to_string(),
            ..list_request("ana", 2, &token)
        },
    ] {
        let status = list(&app, other_filter).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["page_token"]);
    }
}

async fn malformed_filter_ids_are_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    create(&app, &unique_email("filtered"), "").await;
    let status = list(
        &app,
        pb::ListUsersRequest {
            customer_id: "nope".into(),
            account_id: "nope".into(),
            page_size: -1,
            page_token: "forged".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        ["account_id", "customer_id", "page_size", "page_token"]
    );
    // A customer nobody belongs to has no users.
    for request in [
        pb::ListUsersRequest {
            customer_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        },
        pb::ListUsersRequest {
            account_id: ulid::Ulid::new().to_string(),
            ..Default::default()
        },
    ] {
        assert!(list(&app, request).await.unwrap().users.is_empty());
    }
}

async fn the_query_is_a_case_insensitive_prefix_of_the_email_or_a_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let by_email = create_named(&app, "anabela@example.com", "Zoe", "Brown").await;
    let by_first = create_named(&app, "z1@example.com", "ANDREIA", "Costa").await;
    let by_last = create_named(&app, "z2@example.com", "Bruno", "Anand").await;
    let accented = create_named(&app, "z3@example.com", "Élodie", "Ângelo").await;
    // "an" inside a name or the email, but at no start, is not a prefix match.
    create_named(&app, "joana@example.com", "Joana", "Santos").await;
    create_named(&app, "z4@andes.example.com", "Mariana", "Fran").await;

    let matched = |users: Vec<pb::User>| uuids(&users);
    for query in ["an", "AN", "  aN "] {
        let page = list(&app, list_request(query, 0, "")).await.unwrap();
        assert_eq!(
            matched(page.users),
            uuids(&[by_email.clone(), by_first.clone(), by_last.clone()]),
            "{query:?}"
        );
        assert!(page.next_page_token.is_empty());
    }
    for (query, expected) in [
        ("anabela@example.com", vec![by_email.clone()]),
        ("ANDREIA", vec![by_first.clone()]),
        ("anand", vec![by_last.clone()]),
        ("élo", vec![accented.clone()]),
        ("ÂNG", vec![accented.clone()]),
        ("nobody", vec![]),
    ] {
        let page = list(&app, list_request(query, 0, "")).await.unwrap();
        assert_eq!(matched(page.users), uuids(&expected), "{query:?}");
    }
    // A query filter pages like any other, and its pages hold only matches.
    let all = pages(&app, "an", 2).await;
    assert_eq!(all.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
}

async fn percent_and_underscore_in_a_query_are_literal(backend: Backend) {
    let app = spawn_app(backend).await;
    let underscore = create_named(&app, "u1@example.com", "a_c", "Lima").await;
    let percent = create_named(&app, "u2@example.com", "a%c", "Lima").await;
    let backslash = create_named(&app, "u3@example.com", "a\\c", "Lima").await;
    let plain = create_named(&app, "u4@example.com", "abc", "Lima").await;
    let email_underscore = create_named(&app, "x_y@example.com", "Rui", "Lima").await;
    create_named(&app, "xzy@example.com", "Rui", "Lima").await;
    for (query, expected) in [
        ("a_", vec![underscore.clone()]),
        ("a%", vec![percent.clone()]),
        ("a\\", vec![backslash.clone()]),
        ("%", vec![]),
        ("_", vec![]),
        ("a", vec![underscore, percent, backslash, plain]),
        ("x_", vec![email_underscore]),
    ] {
        let page = list(&app, list_request(query, 0, "")).await.unwrap();
        assert_eq!(uuids(&page.users), uuids(&expected), "{query:?}");
    }
}

crate::on_both_backends!(
    paging_through_66_users_returns_each_once_in_creation_order,
    users_deleted_or_created_while_paging_cause_no_gap_or_duplicate,
    the_page_size_defaults_to_50,
    a_page_size_above_1000_is_clamped,
    a_negative_page_size_is_invalid_argument,
    a_forged_page_token_or_one_from_another_filter_is_invalid_argument,
    malformed_filter_ids_are_invalid_argument,
    the_query_is_a_case_insensitive_prefix_of_the_email_or_a_name,
    percent_and_underscore_in_a_query_are_literal,
);
