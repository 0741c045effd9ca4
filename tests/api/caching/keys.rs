//! API keys verified from memory: a key revoked by the real binary's `keys revoke` stops
//! working on every instance within the bound; a new key works at once everywhere.

use std::time::{Duration, Instant};

use tenancy_client::pb::{self, user_service_client::UserServiceClient};
use tokio::process::Command;
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};

use super::{TestApps, seen_within_bound};
use crate::helpers::{Backend, BearerKey, TestApp, test_serve_args, unique_email};

/// Runs `tenancy keys ARGS` against `database_url`; its stdout lines.
pub(super) async fn keys_command(database_url: &str, args: &[&str]) -> Vec<String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenancy"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TENANCY_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        command
            .env("DATABASE_URL", database_url)
            .arg("keys")
            .args(args)
            .output(),
    )
    .await
    .expect("the command finished")
    .expect("run tenancy");
    assert!(output.status.success(), "tenancy keys {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The code a `GetUser` for nobody answers with `users`' key: NOT_FOUND while the key
/// works.
async fn probe(users: &UserServiceClient<InterceptedService<Channel, BearerKey>>) -> Code {
    let request = pb::GetUserRequest {
        lookup: Some(pb::get_user_request::Lookup::Email(unique_email("nobody"))),
    };
    match users.clone().get_user(request).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn users_of(app: &TestApp, key: &str) -> UserServiceClient<InterceptedService<Channel, BearerKey>> {
    app.users_with_key(Some(key))
}

async fn a_key_revoked_by_the_cli_stops_working_on_every_instance_within_the_bound(
    backend: Backend,
) {
    let TestApps { a, b } = TestApps::start(backend, test_serve_args()).await;
    let url = a.database.url.clone();
    let created = keys_command(
        &url,
        &["create", "--name", "shared", "--scope", "users.read"],
    )
    .await;
    let key = created.last().cloned().unwrap_or_default();
    let (on_a, on_b) = (users_of(&a, &key), users_of(&b, &key));
    // A new key works at once on both, and is cached there.
    let first = [probe(&on_a).await, probe(&on_b).await];
    let before = b.store.statements_executed();
    for _ in 0..20 {
        assert_eq!(probe(&on_b).await, Code::NotFound);
    }
    // Each GetUser reads once; the key check adds nothing when cached.
    let key_checks = b.store.statements_executed() - before;
    let listed = keys_command(&url, &["list"]).await;
    let id = listed
        .iter()
        .find(|l| l.split_whitespace().any(|w| w == "shared"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("the key is listed: {listed:?}"))
        .to_string();

    keys_command(&url, &["revoke", &id]).await;
    let revoked = Instant::now();

    assert_eq!(
        first,
        [Code::NotFound, Code::NotFound],
        "a new key works at once"
    );
    assert!(
        key_checks < 30,
        "20 calls ran {key_checks} statements: keys not cached"
    );
    for (name, users) in [("A", &on_a), ("B", &on_b)] {
        seen_within_bound(
            &format!("instance {name} refuses the key"),
            revoked,
            || async { probe(users).await == Code::Unauthenticated },
        )
        .await;
    }
}

async fn a_repeated_unknown_key_costs_at_most_one_database_read(backend: Backend) {
    let TestApps { a: _a, b } = TestApps::start(backend, test_serve_args()).await;
    let unknown = users_of(&b, "tny_this-key-was-never-issued-0123456789");
    let before = b.store.statements_executed();
    let started = Instant::now();
    for _ in 0..200 {
        assert_eq!(probe(&unknown).await, Code::Unauthenticated);
    }
    let statements = b.store.statements_executed() - before;
    let took = started.elapsed();

    // One key lookup; the rest are the instance's own polls (the key watch and the
    // event feed, a few each per second).
    eprintln!("200 calls with one unknown key ran {statements} statements in {took:?}");
    let polls = 4 * (took.as_secs() + 1);
    assert!(
        statements <= 1 + polls,
        "200 calls with one unknown key ran {statements} statements in {took:?}: \
         unknown keys not cached"
    );
}

async fn a_key_created_after_it_was_refused_as_unknown_works_within_the_bound(backend: Backend) {
    let TestApps { a, b } = TestApps::start(backend, test_serve_args()).await;
    let secret = format!("tny_{}", ulid::Ulid::new());
    let (on_a, on_b) = (users_of(&a, &secret), users_of(&b, &secret));
    // Refused, and remembered as unknown, on both instances.
    let refused = [probe(&on_a).await, probe(&on_b).await];
    let refused_again = [probe(&on_a).await, probe(&on_b).await];
    // As a second instance started with it as its TENANCY_ADMIN_KEY would.
    a.store
        .create_api_key(
            "created late",
            &["users.read".to_string()],
            &tenancy::domain::api_key::digest(&secret),
        )
        .await
        .expect("create the key");
    let created = Instant::now();

    assert_eq!(refused, [Code::Unauthenticated, Code::Unauthenticated]);
    assert_eq!(
        refused_again,
        [Code::Unauthenticated, Code::Unauthenticated]
    );
    for (name, users) in [("A", &on_a), ("B", &on_b)] {
        seen_within_bound(
            &format!("instance {name} accepts the new key"),
            created,
            || async { probe(users).await == Code::NotFound },
        )
        .await;
    }
}

crate::on_both_backends!(
    a_key_revoked_by_the_cli_stops_working_on_every_instance_within_the_bound,
    a_repeated_unknown_key_costs_at_most_one_database_read,
    a_key_created_after_it_was_refused_as_unknown_works_within_the_bound,
);
