//! Two instances on one database: a write on one reaches the other's caches within the
//! staleness bound, through the event feed, or (when the feed is late) because the
//! cache stops serving.

use std::time::Instant;

use tenancy_client::pb::{self, check_access_request::Target, get_customer_request::Lookup};

use super::{
    TestApps, allowed, customer_by, fixture, max_rooms, seen_within_bound, set_max_rooms,
    set_user_status,
};
use crate::helpers::{Backend, test_serve_args};

async fn a_terminated_customer_is_denied_on_every_instance_within_the_bound(backend: Backend) {
    let TestApps { a, b } = TestApps::start(backend, test_serve_args()).await;
    let fixture = fixture(&a).await;
    let owner = fixture.customer.owner_user_id.clone();
    let on_customer = || Target::CustomerId(fixture.customer.uuid.clone());
    let on_account = || Target::AccountId(fixture.account.uuid.clone());
    let hostname = || Lookup::Hostname(fixture.customer.hostname.clone());
    // Fill B's caches, and see that B answers from them.
    assert!(allowed(&b, &owner, on_customer(), "rooms.write").await);
    assert!(allowed(&b, &owner, on_account(), "rooms.write").await);
    let before = b.store.statements_executed();
    for _ in 0..20 {
        assert!(allowed(&b, &owner, on_customer(), "rooms.write").await);
        assert!(allowed(&b, &owner, on_account(), "rooms.write").await);
        customer_by(&b, hostname()).await;
    }
    let warm = b.store.statements_executed() - before;

    crate::customers::set_status(&a, &fixture.customer.uuid, pb::CustomerStatus::Terminated).await;
    let written = Instant::now();

    assert!(
        warm < 20,
        "60 reads on B ran {warm} statements: B did not cache"
    );
    seen_within_bound("B denies on the customer", written, || async {
        !allowed(&b, &owner, on_customer(), "rooms.write").await
    })
    .await;
    seen_within_bound("B denies on the account", written, || async {
        !allowed(&b, &owner, on_account(), "rooms.read").await
    })
    .await;
    seen_within_bound("B's GetCustomer shows TERMINATED", written, || async {
        customer_by(&b, hostname()).await.status == pb::CustomerStatus::Terminated as i32
    })
    .await;
}

async fn a_limit_update_reaches_the_other_instance_within_the_bound(backend: Backend) {
    let TestApps { a, b } = TestApps::start(backend, test_serve_args()).await;
    let fixture = fixture(&a).await;
    assert_eq!(max_rooms(&b, &fixture.account.uuid).await, 10);
    assert_eq!(max_rooms(&b, &fixture.account.uuid).await, 10);

    set_max_rooms(&a, &fixture.customer.uuid, 4.0).await;
    let written = Instant::now();

    seen_within_bound("B's effective limits", written, || async {
        max_rooms(&b, &fixture.account.uuid).await == 4
    })
    .await;
}

async fn a_user_made_inactive_is_denied_at_once_here_and_within_the_bound_elsewhere(
    backend: Backend,
) {
    let TestApps { a, b } = TestApps::start(backend, test_serve_args()).await;
    let fixture = fixture(&a).await;
    let owner = fixture.customer.owner_user_id.clone();
    let target = || Target::AccountId(fixture.account.uuid.clone());
    assert!(allowed(&a, &owner, target(), "rooms.read").await);
    assert!(allowed(&b, &owner, target(), "rooms.read").await);
    assert!(allowed(&b, &owner, target(), "rooms.read").await);

    set_user_status(&a, &owner, pb::UserStatus::Inactive).await;
    let written = Instant::now();
    let here = allowed(&a, &owner, target(), "rooms.read").await;

    assert!(!here, "the writing instance denies at once");
    seen_within_bound("B denies the inactive user", written, || async {
        !allowed(&b, &owner, target(), "rooms.read").await
    })
    .await;
}

async fn a_late_event_feed_stops_the_cache_serving_after_the_bound(backend: Backend) {
    let mut late = test_serve_args();
    // B's feed polls once at start and then not for ten minutes: only the bound can
    // make B see A's write.
    late.event_poll_interval_ms = 600_000;
    let TestApps { a, b } = TestApps::start(backend, late).await;
    let fixture = fixture(&a).await;
    let hostname = || Lookup::Hostname(fixture.customer.hostname.clone());
    assert_eq!(customer_by(&b, hostname()).await.first_name, "João");
    assert_eq!(max_rooms(&b, &fixture.account.uuid).await, 10);

    set_max_rooms(&a, &fixture.customer.uuid, 3.0).await;
    crate::customers::update(
        &a,
        &fixture.customer.uuid,
        pb::Customer {
            first_name: "Late".into(),
            ..Default::default()
        },
        &["first_name"],
        "",
    )
    .await
    .expect("rename");
    let written = Instant::now();

    seen_within_bound("B's limits, its feed stalled", written, || async {
        max_rooms(&b, &fixture.account.uuid).await == 3
    })
    .await;
    seen_within_bound("B's GetCustomer, its feed stalled", written, || async {
        customer_by(&b, hostname()).await.first_name == "Late"
    })
    .await;
}

crate::on_both_backends!(
    a_terminated_customer_is_denied_on_every_instance_within_the_bound,
    a_limit_update_reaches_the_other_instance_within_the_bound,
    a_user_made_inactive_is_denied_at_once_here_and_within_the_bound_elsewhere,
    a_late_event_feed_stops_the_cache_serving_after_the_bound,
);
