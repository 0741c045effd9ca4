//! One instance: cached answers cost no SQL statement (key check included), a local
//! write drops what it touched before it returns, and the caches are size-bounded.

use tenancy_client::pb::{self, check_access_request::Target};

use super::{allowed, customer_by, fixture, max_rooms, set_max_rooms, set_user_status};
use crate::helpers::{Backend, TestApp, spawn_observed_app};

/// Pollers that never run during a test and a bound no test outlives: whatever SQL runs
/// is the reads' own.
fn quiet(serve: &mut tenancy::config::ServeArgs) {
    serve.event_poll_interval_ms = 600_000;
    serve.cache_staleness_ms = 600_000;
}

/// Lets the event feed finish the polls the fixture's writes woke it for.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
}

/// Every hot read of `fixture`: each `GetCustomer` lookup, the limits, and `CheckAccess`
/// on the customer and on its account.
async fn read_everything(app: &TestApp, fixture: &super::Fixture) {
    for lookup in fixture.lookups() {
        customer_by(app, lookup).await;
    }
    max_rooms(app, &fixture.account.uuid).await;
    let owner = &fixture.customer.owner_user_id;
    assert!(
        allowed(
            app,
            owner,
            Target::CustomerId(fixture.customer.uuid.clone()),
            "rooms.read"
        )
        .await
    );
    assert!(
        allowed(
            app,
            owner,
            Target::AccountId(fixture.account.uuid.clone()),
            "rooms.read"
        )
        .await
    );
}

async fn cached_reads_run_no_statement_and_a_local_write_drops_them_at_once(backend: Backend) {
    let app = spawn_observed_app(backend, quiet).await;
    let fixture = fixture(&app).await;
    settle().await;
    read_everything(&app, &fixture).await;

    let before = app.store.statements_executed();
    for _ in 0..3 {
        read_everything(&app, &fixture).await;
    }
    let cached = app.store.statements_executed() - before;

    set_max_rooms(&app, &fixture.customer.uuid, 7.0).await;
    let limits_now = max_rooms(&app, &fixture.account.uuid).await;
    crate::customers::update(
        &app,
        &fixture.customer.uuid,
        pb::Customer {
            first_name: "Renamed".into(),
            ..Default::default()
        },
        &["first_name"],
        "",
    )
    .await
    .expect("rename");
    let mut names = Vec::new();
    for lookup in fixture.lookups() {
        names.push(customer_by(&app, lookup).await.first_name);
    }
    let owner = fixture.customer.owner_user_id.clone();
    set_user_status(&app, &owner, pb::UserStatus::Inactive).await;
    let on_customer = allowed(
        &app,
        &owner,
        Target::CustomerId(fixture.customer.uuid.clone()),
        "rooms.read",
    )
    .await;
    let on_account = allowed(
        &app,
        &owner,
        Target::AccountId(fixture.account.uuid.clone()),
        "rooms.read",
    )
    .await;

    assert_eq!(cached, 0, "21 cached reads (and their key checks) ran SQL");
    assert_eq!(limits_now, 7, "the limits change shows at once");
    assert!(
        names.iter().all(|n| n == "Renamed"),
        "every lookup at once: {names:?}"
    );
    assert!(
        !on_customer && !on_account,
        "an inactive user is denied at once"
    );
}

async fn with_the_cache_off_every_read_reaches_the_database(backend: Backend) {
    let app = spawn_observed_app(backend, |serve| {
        quiet(serve);
        serve.cache_capacity = 0;
    })
    .await;
    let fixture = fixture(&app).await;
    settle().await;
    read_everything(&app, &fixture).await;

    let before = app.store.statements_executed();
    read_everything(&app, &fixture).await;
    let uncached = app.store.statements_executed() - before;

    // 10 reads, each with its key check: one statement apiece.
    assert_eq!(uncached, 20, "one round trip per read and per key check");
}

async fn the_caches_hold_at_most_their_capacity(backend: Backend) {
    let app = spawn_observed_app(backend, |serve| {
        quiet(serve);
        serve.cache_capacity = 2;
    })
    .await;
    let fixture = fixture(&app).await;
    settle().await;
    let lookups = &fixture.lookups()[4..7];
    for lookup in lookups {
        customer_by(&app, lookup.clone()).await;
    }

    let before = app.store.statements_executed();
    let first_two = lookups[1..].to_vec();
    for lookup in &first_two {
        customer_by(&app, lookup.clone()).await;
    }
    let recent = app.store.statements_executed() - before;
    customer_by(&app, lookups[0].clone()).await;
    let evicted = app.store.statements_executed() - before - recent;

    assert_eq!(recent, 0, "the two most recent entries are kept");
    assert_eq!(evicted, 1, "the oldest of three was evicted");
}

crate::on_both_backends!(
    cached_reads_run_no_statement_and_a_local_write_drops_them_at_once,
    with_the_cache_off_every_read_reaches_the_database,
    the_caches_hold_at_most_their_capacity,
);
