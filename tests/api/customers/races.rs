//! Uniqueness under races: parallel creates, retries, and two instances on one database.

use std::collections::HashSet;

use futures::future::join_all;
use tenancy_client::pb;
use tonic::Code;

use super::{business, create_request, events, kinds, personal, try_create};
use crate::helpers::{
    Backend, TestApp, error_reason, spawn_app, spawn_app_on, test_serve_args, unique_email,
};

async fn sixteen_parallel_creates_with_one_email_give_one_customer(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("race");
    let attempts = (0..16).map(|i| {
        let mut customer = business(&email, &format!("Racer {i}"));
        customer.first_name = format!("Racer{i}");
        try_create(&app, customer)
    });
    let results = join_all(attempts).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    for result in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(result.code(), Code::AlreadyExists, "{result:?}");
        assert_eq!(error_reason(result).as_deref(), Some("EMAIL_TAKEN"));
    }
    let all = kinds(&events(&app).await);
    assert_eq!(all.iter().filter(|k| *k == "customer.created").count(), 1);
    assert_eq!(
        all.iter().filter(|k| *k == "user.created").count(),
        1,
        "one owner user"
    );
}

async fn sixteen_parallel_creates_with_one_company_get_unique_subdomains(backend: Backend) {
    let app = spawn_app(backend).await;
    let attempts = (0..16).map(|i| {
        try_create(
            &app,
            business(&unique_email(&format!("co{i}")), "Same Name GmbH"),
        )
    });
    let customers: Vec<pb::Customer> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("every create succeeds"))
        .collect();
    let subdomains: HashSet<_> = customers.iter().map(|c| c.subdomain.clone()).collect();
    assert_eq!(subdomains.len(), 16, "{subdomains:?}");
    assert!(subdomains.contains("same-name-gmbh"));
    for customer in customers.iter().filter(|c| c.subdomain != "same-name-gmbh") {
        assert_eq!(
            customer.subdomain,
            format!("same-name-gmbh-{}", customer.customer_key)
        );
    }
}

async fn parallel_retries_with_one_request_id_create_one_customer(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut request = create_request(personal(&unique_email("retries")));
    request.request_id = uuid::Uuid::new_v4().to_string();
    let results = join_all((0..8).map(|_| {
        let mut client = app.customers.clone();
        let request = request.clone();
        async move { client.create_customer(request).await }
    }))
    .await;
    let customers: HashSet<String> = results
        .into_iter()
        .map(|r| {
            r.expect("each retry answers the first result")
                .into_inner()
                .customer
                .unwrap()
                .uuid
        })
        .collect();
    assert_eq!(customers.len(), 1);
    let all = kinds(&events(&app).await);
    assert_eq!(all.iter().filter(|k| *k == "customer.created").count(), 1);
}

async fn two_instances_racing_on_one_database_keep_values_unique(backend: Backend) {
    if matches!(backend, Backend::Sqlite) {
        // Two processes on one SQLite file are covered by the foundation tests; the
        // interesting race is PostgreSQL's, where writers run truly in parallel.
        return;
    }
    let first = spawn_app(backend).await;
    let second = spawn_app_on(first.database.clone(), test_serve_args()).await;
    let email = unique_email("twin");
    let apps: [&TestApp; 2] = [&first, &second];
    let results = join_all((0..12).map(|i| {
        let mut customer = business(&email, "Twin Instances");
        customer.hostname = "twin.example".into();
        try_create(apps[i % 2], customer)
    }))
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for error in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(error.code(), Code::AlreadyExists, "{error:?}");
    }
    let companies = join_all((0..12).map(|i| {
        try_create(
            apps[i % 2],
            business(&unique_email(&format!("t{i}")), "Twin Instances"),
        )
    }))
    .await;
    let subdomains: HashSet<_> = companies
        .into_iter()
        .map(|r| r.expect("every create succeeds").subdomain)
        .collect();
    assert_eq!(subdomains.len(), 12);
}

/// Terminating a customer walks its accounts while callers write to them: every
/// write is done or refused with a precondition, never INTERNAL (a deadlock between
/// the cascade and an account write would be).
async fn terminating_a_customer_while_its_accounts_are_written_never_fails_inside(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let customer = super::create(&app, personal(&unique_email("terminate-race"))).await;
    let mut accounts = Vec::new();
    for i in 0..4 {
        accounts.push(crate::accounts::create(&app, &customer.uuid, &format!("Busy {i}")).await);
    }
    let writers = (0..8).map(|writer| {
        let mut client = app.accounts.clone();
        let account = accounts[writer % accounts.len()].uuid.clone();
        async move {
            let mut codes = Vec::new();
            for round in 0..15 {
                let result = client
                    .update_account(pb::UpdateAccountRequest {
                        account_id: account.clone(),
                        account: Some(pb::Account {
                            name: format!("Writer {writer} round {round}"),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["name".into()],
                        }),
                        etag: String::new(),
                    })
                    .await;
                codes.push(result.map(|_| Code::Ok).unwrap_or_else(|s| s.code()));
            }
            codes
        }
    });
    let terminate = async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        super::set_status(&app, &customer.uuid, pb::CustomerStatus::Terminated).await
    };
    let (codes, terminated) = tokio::join!(join_all(writers), terminate);
    assert_eq!(terminated.status, pb::CustomerStatus::Terminated as i32);
    for code in codes.into_iter().flatten() {
        assert!(
            matches!(code, Code::Ok | Code::FailedPrecondition),
            "an account write answered {code:?}"
        );
    }
    for account in &accounts {
        let stored = crate::accounts::get(&app, &account.uuid).await.unwrap();
        assert_eq!(stored.status, pb::AccountStatus::Inactive as i32);
    }
}

crate::on_both_backends!(
    sixteen_parallel_creates_with_one_email_give_one_customer,
    sixteen_parallel_creates_with_one_company_get_unique_subdomains,
    parallel_retries_with_one_request_id_create_one_customer,
    two_instances_racing_on_one_database_keep_values_unique,
    terminating_a_customer_while_its_accounts_are_written_never_fails_inside,
);
