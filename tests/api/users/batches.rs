//! CreateUser calls without a request id that arrive together: on PostgreSQL they are
//! written by one statement per batch (`store/user_batches.rs`). Whatever the batch,
//! each call gets its own row's answer: one of several calls with the same email is
//! created and the others hear EMAIL_TAKEN; a row the database refuses fails only its
//! own call; every created user has exactly one `user.created` event. The contract is
//! the same on SQLite, which writes one user at a time.

use std::collections::{HashMap, HashSet};

use futures::future::join_all;
use sea_orm::{ConnectionTrait as _, Database, DbBackend};
use tonic::Code;

use super::{create_request, new_user};
use tenancy_client::pb;

use crate::helpers::{Backend, TestApp, error_reason, spawn_app, unique_email, violated_fields};

/// Sends every request at once; answers (email sent, created user's id or the error).
async fn create_all(
    app: &TestApp,
    emails: &[String],
) -> Vec<(String, Result<String, tonic::Status>)> {
    join_all(emails.iter().map(|email| {
        let mut users = app.users.clone();
        let email = email.clone();
        async move {
            let answer = users
                .create_user(create_request(new_user(&email), "", ""))
                .await
                .map(|response| response.into_inner().user.expect("a created user").uuid);
            (email, answer)
        }
    }))
    .await
}

/// `user.created` events by user id, after the log caught up.
async fn created_events(app: &TestApp) -> HashMap<String, usize> {
    app.sequenced().await;
    let events = app.log_after(0, 10_000).await.expect("the log");
    let sequences: Vec<i64> = events.iter().map(|event| event.sequence).collect();
    let expected: Vec<i64> = (1..=events.len() as i64).collect();
    assert_eq!(sequences, expected, "the log is gap-free from 1");
    let mut counts = HashMap::new();
    for event in events {
        assert_eq!(event.kind, "user.created");
        *counts
            .entry(event.resource_id.uuid().to_string())
            .or_default() += 1;
    }
    counts
}

/// Counts the statements that insert into `users` (PostgreSQL), so the test knows the
/// calls were batched and not merely run one by one.
async fn count_user_statements(app: &TestApp) {
    let db = Database::connect(&app.database.url).await.expect("connect");
    for sql in [
        "CREATE TABLE user_statements (n BIGINT NOT NULL)",
        "INSERT INTO user_statements VALUES (0)",
        "CREATE FUNCTION count_user_statement() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN UPDATE user_statements SET n = n + 1; RETURN NULL; END $$",
        "CREATE TRIGGER count_user_statement AFTER INSERT ON users \
         FOR EACH STATEMENT EXECUTE FUNCTION count_user_statement()",
    ] {
        db.execute_unprepared(sql).await.expect(sql);
    }
    let _ = db.close().await;
}

async fn user_statements(app: &TestApp) -> i64 {
    let db = Database::connect(&app.database.url).await.expect("connect");
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::Postgres,
            "SELECT n FROM user_statements",
        ))
        .await
        .expect("read the count")
        .expect("a row");
    let _ = db.close().await;
    row.try_get_by_index(0).expect("n")
}

async fn calls_with_one_email_create_one_user_and_the_others_hear_email_taken(backend: Backend) {
    let postgres = matches!(backend, Backend::Postgres(_));
    let app = spawn_app(backend).await;
    if postgres {
        count_user_statements(&app).await;
    }
    // 24 addresses, each sent three times (in three spellings of its case), all at once.
    let addresses: Vec<String> = (0..24).map(|i| unique_email(&format!("same{i}"))).collect();
    let mut emails = Vec::new();
    for address in &addresses {
        emails.push(address.clone());
        emails.push(address.to_uppercase());
        let (local, domain) = address.split_once('@').expect("an address");
        emails.push(format!("{}@{}", local, domain.to_uppercase()));
    }
    let answers = create_all(&app, &emails).await;

    let mut created = HashMap::new();
    for (email, answer) in &answers {
        match answer {
            Ok(id) => {
                let first = created.insert(email.to_lowercase(), id.clone());
                assert!(first.is_none(), "{email} was created twice");
            }
            Err(status) => {
                assert_eq!(status.code(), Code::AlreadyExists, "{email}: {status:?}");
                assert_eq!(error_reason(status).as_deref(), Some("EMAIL_TAKEN"));
            }
        }
    }
    let wanted: HashSet<String> = addresses.iter().map(|a| a.to_lowercase()).collect();
    assert_eq!(
        created.keys().cloned().collect::<HashSet<_>>(),
        wanted,
        "each address created exactly once"
    );
    for (email, id) in &created {
        let stored = super::get(&app, id)
            .await
            .expect("the created user reads back");
        assert_eq!(&stored.email.to_lowercase(), email);
    }
    let events = created_events(&app).await;
    assert_eq!(
        events.len(),
        created.len(),
        "one event per created user, no other"
    );
    for id in created.values() {
        assert_eq!(
            events.get(id),
            Some(&1),
            "user {id} has one user.created event"
        );
    }
    if postgres {
        let statements = user_statements(&app).await;
        assert!(
            statements < emails.len() as i64,
            "{} calls were written by {statements} statements: batched",
            emails.len()
        );
    }
}

async fn a_row_the_database_refuses_fails_only_its_own_call(backend: Backend) {
    let Backend::Postgres(_) = backend else {
        // SQLite writes each user alone: nothing is shared to refuse.
        return;
    };
    let app = spawn_app(backend).await;
    let db = Database::connect(&app.database.url).await.expect("connect");
    for sql in [
        "CREATE FUNCTION refuse_some_users() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF NEW.email LIKE 'refused%' THEN \
         RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_some_users BEFORE INSERT ON users \
         FOR EACH ROW EXECUTE FUNCTION refuse_some_users()",
    ] {
        db.execute_unprepared(sql).await.expect(sql);
    }
    let _ = db.close().await;

    // 40 calls at once, every tenth refused by the database.
    let emails: Vec<String> = (0..40)
        .map(|i| {
            let prefix = if i % 10 == 3 { "refused" } else { "accepted" };
            unique_email(&format!("{prefix}{i}"))
        })
        .collect();
    let answers = create_all(&app, &emails).await;
    let mut created = Vec::new();
    for (email, answer) in &answers {
        match (email.starts_with("refused"), answer) {
            (false, Ok(id)) => created.push(id.clone()),
            (true, Err(status)) => {
                assert_eq!(status.code(), Code::Internal, "{email}: {status:?}");
            }
            (refused, answer) => panic!("{email} (refused: {refused}) answered {answer:?}"),
        }
    }
    assert_eq!(created.len(), 36);
    let events = created_events(&app).await;
    assert_eq!(events.len(), 36, "an event for each accepted user only");
    for id in &created {
        assert_eq!(events.get(id), Some(&1));
    }
    for (email, _) in answers
        .iter()
        .filter(|(email, _)| email.starts_with("refused"))
    {
        let lookup = super::get_by(
            &app,
            tenancy_client::pb::get_user_request::Lookup::Email(email.clone()),
        )
        .await;
        assert_eq!(
            lookup.expect_err("refused users are not stored").code(),
            Code::NotFound
        );
    }
}

async fn names_at_their_limit_in_emoji_go_through_a_batch_and_one_past_it_is_named(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    // Sixteen calls at once: fifteen with 100-character names made of emoji (four
    // bytes each in UTF-8) and a family emoji, one with a first name of 101.
    let at_limit = "😀".repeat(100);
    let family = format!("{}👨‍👩‍👧", "é".repeat(95));
    let answers = join_all((0..16).map(|i| {
        let mut users = app.users.clone();
        let email = unique_email(&format!("emoji{i}"));
        let first_name = if i == 7 {
            "😀".repeat(101)
        } else {
            at_limit.clone()
        };
        let last_name = family.clone();
        async move {
            let user = pb::User {
                email: email.clone(),
                first_name: first_name.clone(),
                last_name: last_name.clone(),
                ..Default::default()
            };
            let answer = users.create_user(create_request(user, "", "")).await;
            (
                i,
                first_name,
                last_name,
                answer.map(|r| r.into_inner().user.expect("a user")),
            )
        }
    }))
    .await;
    for (i, first_name, last_name, answer) in answers {
        if i == 7 {
            let status = answer.expect_err("a 101-character first name");
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert_eq!(violated_fields(&status), vec!["user.first_name"]);
            continue;
        }
        let created = answer.unwrap_or_else(|status| panic!("call {i}: {status:?}"));
        let stored = super::get(&app, &created.uuid).await.expect("reads back");
        assert_eq!(stored.first_name, first_name, "stored exactly");
        assert_eq!(stored.last_name, last_name, "stored exactly");
    }
    let events = created_events(&app).await;
    assert_eq!(events.len(), 15, "no event for the refused call");
}

crate::on_both_backends!(
    calls_with_one_email_create_one_user_and_the_others_hear_email_taken,
    a_row_the_database_refuses_fails_only_its_own_call,
    names_at_their_limit_in_emoji_go_through_a_batch_and_one_past_it_is_named,
);
