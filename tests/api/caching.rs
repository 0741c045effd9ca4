//! The in-process caches: what a hit costs (nothing), what a local write drops (at
//! once), and how other instances' writes and key revocations reach a cache (within the
//! staleness bound, 1 s by default, even when the event feed is late).

mod instances;
mod keys;
mod reads;
mod round_trips;
mod streams;

use std::{
    future::Future,
    time::{Duration, Instant},
};

use tenancy_client::pb::{self, check_access_request::Target, get_customer_request::Lookup};

use crate::customers::validation::{number, object};
use crate::helpers::{TestApp, unique_email};

/// The default `--cache-staleness-ms`.
pub const BOUND: Duration = Duration::from_millis(1000);

/// Probes until `check` holds, asserting the bound itself: a probe begun `BOUND` or more
/// after `written` (when the write had returned) must see the write, however long the
/// probes take on a loaded machine. Returns when the first probe that saw it began.
pub async fn seen_within_bound<F, Fut>(what: &str, written: Instant, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        let began = written.elapsed();
        let seen = check().await;
        assert!(
            seen || began < BOUND,
            "{what}: a probe begun {began:?} after the write, past the {BOUND:?} bound, \
             did not see it"
        );
        if seen {
            eprintln!("{what}: seen by a probe begun {began:?} after the write");
            assert!(check().await, "{what}: and it stays seen");
            return began;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A customer with a hostname, an external id and `max_rooms` 10, and one account.
pub struct Fixture {
    pub customer: pb::Customer,
    pub account: pb::Account,
}

pub async fn fixture(app: &TestApp) -> Fixture {
    let email = unique_email("cached");
    let mut customer = crate::customers::personal(&email);
    let tag = email
        .split('@')
        .next()
        .unwrap_or("x")
        .replace(['.', '+', '_'], "-");
    customer.hostname = format!("{tag}.hosts.example");
    customer.external_id = format!("crm-{tag}");
    customer.customer_limits = Some(object(&[("max_rooms", number(10.0))]));
    let customer = crate::customers::create(app, customer).await;
    let account = crate::accounts::create(app, &customer.uuid, "Main").await;
    Fixture { customer, account }
}

impl Fixture {
    /// Every way `GetCustomer` can name this customer.
    pub fn lookups(&self) -> Vec<Lookup> {
        let c = &self.customer;
        vec![
            Lookup::CustomerId(c.uuid.clone()),
            Lookup::CustomerId(c.ulid.clone()),
            Lookup::Email(c.email.clone()),
            Lookup::ExternalId(c.external_id.clone()),
            Lookup::CustomerKey(c.customer_key.clone()),
            Lookup::Subdomain(c.subdomain.clone()),
            Lookup::Hostname(c.hostname.clone()),
        ]
    }
}

pub async fn customer_by(app: &TestApp, lookup: Lookup) -> pb::Customer {
    crate::customers::get_by(app, lookup.clone())
        .await
        .unwrap_or_else(|s| panic!("GetCustomer {lookup:?}: {s:?}"))
}

pub async fn max_rooms(app: &TestApp, account_id: &str) -> i64 {
    app.accounts
        .clone()
        .get_effective_limits(pb::GetEffectiveLimitsRequest {
            account_id: account_id.into(),
        })
        .await
        .expect("GetEffectiveLimits")
        .into_inner()
        .limits
        .into_iter()
        .find(|l| l.key == "max_rooms")
        .map(|l| l.value)
        .expect("max_rooms is reported")
}

pub async fn allowed(app: &TestApp, user_id: &str, target: Target, permission: &str) -> bool {
    app.users
        .clone()
        .check_access(pb::CheckAccessRequest {
            user_id: user_id.into(),
            target: Some(target),
            permission: permission.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("CheckAccess: {s:?}"))
        .into_inner()
        .allowed
}

pub async fn set_max_rooms(app: &TestApp, customer_id: &str, value: f64) {
    crate::customers::update(
        app,
        customer_id,
        pb::Customer {
            customer_limits: Some(object(&[("max_rooms", number(value))])),
            ..Default::default()
        },
        &["customer_limits"],
        "",
    )
    .await
    .expect("update the limits");
}

pub async fn set_user_status(app: &TestApp, user_id: &str, status: pb::UserStatus) {
    crate::users::update(
        app,
        user_id,
        "",
        &["status"],
        pb::User {
            status: status as i32,
            ..Default::default()
        },
    )
    .await
    .expect("update the user's status");
}

/// Two instances on one fresh database; `b` (started with `b_serve`) is observed, so
/// its store counts the statements it runs.
pub struct TestApps {
    pub a: TestApp,
    pub b: TestApp,
}

impl TestApps {
    pub async fn start(
        backend: crate::helpers::Backend,
        b_serve: tenancy::config::ServeArgs,
    ) -> TestApps {
        let a = crate::helpers::spawn_app(backend).await;
        let b = crate::helpers::spawn_observed_app_on(a.database.clone(), b_serve).await;
        TestApps { a, b }
    }
}
