//! `max_accounts` (also under races) and `GetEffectiveLimits`.

use futures::future::join_all;
use tenancy_client::pb;
use tonic::Code;

use super::{create, meeting, request, try_create_with};
use crate::customers::validation::{number, object};
use crate::customers::{self, personal, update};
use crate::helpers::{Backend, TestApp, spawn_app, spawn_app_on, test_serve_args, unique_email};

async fn customer_with_limits(app: &TestApp, limits: &[(&str, f64)]) -> pb::Customer {
    let mut customer = personal(&unique_email("limits"));
    let fields: Vec<(&str, prost_types::Value)> =
        limits.iter().map(|(k, v)| (*k, number(*v))).collect();
    customer.customer_limits = Some(object(&fields));
    customers::create(app, customer).await
}

async fn count_accounts(app: &TestApp, customer_id: &str) -> usize {
    app.accounts
        .clone()
        .list_accounts(pb::ListAccountsRequest {
            customer_id: customer_id.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .accounts
        .len()
}

async fn max_accounts_is_enforced_and_may_be_lowered_below_the_count(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customer_with_limits(&app, &[("max_accounts", 2.0)]).await;
    create(&app, &customer.uuid, "One").await;
    create(&app, &customer.uuid, "Two").await;
    let status = try_create_with(&app, request(&customer.uuid, meeting("Three")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    {
        use tonic_types::StatusExt as _;
        let quota = status.get_details_quota_failure().expect("a QuotaFailure");
        assert_eq!(
            quota.violations[0].subject,
            format!("customers/{}", customer.uuid)
        );
        assert!(
            status.get_details_retry_info().is_none(),
            "retrying cannot help"
        );
    }

    let lowered = update(
        &app,
        &customer.uuid,
        pb::Customer {
            customer_limits: Some(object(&[("max_accounts", number(1.0))])),
            ..Default::default()
        },
        &["customer_limits"],
        "",
    )
    .await
    .expect("lowering below the current count is allowed");
    assert_eq!(
        count_accounts(&app, &lowered.uuid).await,
        2,
        "existing accounts stay"
    );
    assert_eq!(
        try_create_with(&app, request(&customer.uuid, meeting("Three")))
            .await
            .unwrap_err()
            .code(),
        Code::ResourceExhausted
    );
    update(
        &app,
        &customer.uuid,
        pb::Customer {
            customer_limits: Some(object(&[("max_accounts", number(0.0))])),
            ..Default::default()
        },
        &["customer_limits"],
        "",
    )
    .await
    .unwrap();
    create(&app, &customer.uuid, "Unlimited again").await;
}

async fn ten_parallel_creates_respect_max_accounts(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customer_with_limits(&app, &[("max_accounts", 2.0)]).await;
    let results = join_all(
        (0..10).map(|i| try_create_with(&app, request(&customer.uuid, meeting(&format!("R{i}"))))),
    )
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        2,
        "{results:?}"
    );
    for error in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(error.code(), Code::ResourceExhausted, "{error:?}");
    }
    assert_eq!(count_accounts(&app, &customer.uuid).await, 2);
}

async fn two_instances_respect_max_accounts_together(backend: Backend) {
    let first = spawn_app(backend).await;
    let second = spawn_app_on(first.database.clone(), test_serve_args()).await;
    let customer = customer_with_limits(&first, &[("max_accounts", 2.0)]).await;
    let apps = [&first, &second];
    let results = join_all((0..10).map(|i| {
        try_create_with(
            apps[i % 2],
            request(&customer.uuid, meeting(&format!("T{i}"))),
        )
    }))
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        2,
        "{results:?}"
    );
    assert_eq!(count_accounts(&first, &customer.uuid).await, 2);
}

async fn effective_limits(app: &TestApp, account_id: &str) -> Vec<(String, i64, i32)> {
    app.accounts
        .clone()
        .get_effective_limits(pb::GetEffectiveLimitsRequest {
            account_id: account_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .limits
        .into_iter()
        .map(|l| (l.key, l.value, l.source))
        .collect()
}

async fn effective_limits_cap_the_account_by_the_customer(backend: Backend) {
    let app = spawn_app(backend).await;
    // max_rooms: both set, account smaller; max_participants: both, customer smaller;
    // max_duration: account only; max_storage: customer only; max_recordings: neither;
    // record_expiration: both set to 0, which is unlimited.
    let customer = customer_with_limits(
        &app,
        &[
            ("max_accounts", 5.0),
            ("max_rooms", 10.0),
            ("max_participants", 50.0),
            ("max_storage", 100.0),
            ("record_expiration", 0.0),
        ],
    )
    .await;
    let mut account = meeting("Capped");
    account.account_settings = Some(object(&[
        ("max_rooms", number(3.0)),
        ("max_participants", number(500.0)),
        ("max_duration", number(60.0)),
        ("record_expiration", number(0.0)),
    ]));
    let account = try_create_with(&app, request(&customer.uuid, account))
        .await
        .unwrap();
    use pb::LimitSource::*;
    assert_eq!(
        effective_limits(&app, &account.ulid).await,
        [
            ("max_rooms".to_string(), 3, Account as i32),
            ("max_participants".to_string(), 50, Customer as i32),
            ("max_duration".to_string(), 60, Account as i32),
            ("max_storage".to_string(), 100, Customer as i32),
            ("max_recordings".to_string(), 0, None as i32),
            ("record_expiration".to_string(), 0, None as i32),
        ]
    );
    // A change of the customer's limits shows at once.
    update(
        &app,
        &customer.uuid,
        pb::Customer {
            customer_limits: Some(object(&[("max_rooms", number(2.0))])),
            ..Default::default()
        },
        &["customer_limits"],
        "",
    )
    .await
    .unwrap();
    let limits = effective_limits(&app, &account.uuid).await;
    assert_eq!(limits[0], ("max_rooms".to_string(), 2, Customer as i32));
    assert_eq!(
        limits[1],
        ("max_participants".to_string(), 500, Account as i32)
    );

    let missing = app
        .accounts
        .clone()
        .get_effective_limits(pb::GetEffectiveLimitsRequest {
            account_id: tenancy::domain::id::Id::generate().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

crate::on_both_backends!(
    max_accounts_is_enforced_and_may_be_lowered_below_the_count,
    ten_parallel_creates_respect_max_accounts,
    two_instances_respect_max_accounts_together,
    effective_limits_cap_the_account_by_the_customer,
);
