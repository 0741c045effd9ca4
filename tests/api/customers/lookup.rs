//! `GetCustomer` by each of its keys, and `ListCustomers` filters and pages.

use std::collections::HashSet;

use tenancy_client::pb::{self, get_customer_request::Lookup};
use tonic::Code;

use super::{business, create, get, get_by, personal, set_status};
use crate::helpers::{Backend, TestApp, spawn_app, unique_email, violated_fields};

async fn a_customer_is_found_by_each_of_its_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = business(&unique_email("keys"), "Keys Inc");
    customer.external_id = "crm-77".into();
    customer.hostname = "portal.keys.example".into();
    let created = create(&app, customer).await;
    for lookup in [
        Lookup::CustomerId(created.uuid.clone()),
        Lookup::CustomerId(created.ulid.clone()),
        Lookup::Email(created.email.to_uppercase()),
        Lookup::ExternalId("crm-77".into()),
        Lookup::CustomerKey(created.customer_key.clone()),
        Lookup::Subdomain("KEYS-INC".into()),
        Lookup::Hostname("Portal.Keys.Example".into()),
    ] {
        let found = get_by(&app, lookup.clone())
            .await
            .unwrap_or_else(|s| panic!("{lookup:?}: {s:?}"));
        assert_eq!(found, created, "{lookup:?}");
    }
    for lookup in [
        Lookup::CustomerId(tenancy::domain::id::Id::generate().to_string()),
        Lookup::Email(unique_email("nobody")),
        Lookup::ExternalId("crm-78".into()),
        Lookup::CustomerKey("0000000000".into()),
        Lookup::Subdomain("nobody".into()),
        Lookup::Hostname("nobody.example".into()),
    ] {
        let status = get_by(&app, lookup.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{lookup:?}");
    }
}

async fn a_unicode_hostname_and_its_punycode_find_the_same_customer(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = personal(&unique_email("idna"));
    customer.hostname = "bücher.example".into();
    let created = create(&app, customer).await;
    assert_eq!(created.hostname, "xn--bcher-kva.example");
    for host in ["bücher.example", "BÜCHER.example", "xn--bcher-kva.example"] {
        let found = get_by(&app, Lookup::Hostname(host.into())).await.unwrap();
        assert_eq!(found.uuid, created.uuid, "{host}");
    }
    let mut clash = personal(&unique_email("idna"));
    clash.hostname = "xn--bcher-kva.EXAMPLE".into();
    let status = super::try_create(&app, clash).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
}

async fn a_lookup_needs_exactly_one_valid_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let status = app
        .customers
        .clone()
        .get_customer(pb::GetCustomerRequest { lookup: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["lookup"]);
    let status = get(&app, "not-an-id").await.unwrap_err();
    assert_eq!(violated_fields(&status), ["customer_id"]);
    let status = get_by(&app, Lookup::Email("nope".into()))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["email"]);
}

async fn list(
    app: &TestApp,
    request: pb::ListCustomersRequest,
) -> Result<pb::ListCustomersResponse, tonic::Status> {
    app.customers
        .clone()
        .list_customers(request)
        .await
        .map(|r| r.into_inner())
}

async fn list_all(app: &TestApp, mut request: pb::ListCustomersRequest) -> Vec<pb::Customer> {
    let mut all = Vec::new();
    loop {
        let page = list(app, request.clone()).await.expect("list");
        all.extend(page.customers);
        if page.next_page_token.is_empty() {
            return all;
        }
        request.page_token = page.next_page_token;
    }
}

async fn lists_filter_by_status_type_country_and_query(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut acme = business(&unique_email("zed"), "Acme Widgets");
    acme.country = "US".into();
    let acme = create(&app, acme).await;
    let mut bob = personal(&format!(
        "bob-{}@example.com",
        ulid::Ulid::new().to_string().to_lowercase()
    ));
    bob.first_name = "Robert".into();
    bob.last_name = "O'Hara_%".into();
    bob.country = "BR".into();
    let bob = create(&app, bob).await;
    let carol = create(&app, business(&unique_email("carol"), "Carol & Co")).await;
    set_status(&app, &carol.uuid, pb::CustomerStatus::Suspended).await;

    let ids = |customers: Vec<pb::Customer>| -> Vec<String> {
        customers.into_iter().map(|c| c.uuid).collect()
    };
    let all = pb::ListCustomersRequest::default;
    assert_eq!(
        ids(list_all(&app, all()).await),
        [acme.uuid.clone(), bob.uuid.clone(), carol.uuid.clone()],
        "creation order"
    );
    let filtered = [
        (
            pb::ListCustomersRequest {
                status: pb::CustomerStatus::Suspended as i32,
                ..all()
            },
            &carol.uuid,
        ),
        (
            pb::ListCustomersRequest {
                customer_type: pb::CustomerType::Personal as i32,
                ..all()
            },
            &bob.uuid,
        ),
        (
            pb::ListCustomersRequest {
                country: "us".into(),
                ..all()
            },
            &acme.uuid,
        ),
        // Prefixes of the company name, the email, a first and a last name, any case.
        (query("ACME w"), &acme.uuid),
        (query("bob-"), &bob.uuid),
        (query("rob"), &bob.uuid),
        (query("o'hara_"), &bob.uuid),
    ];
    for (request, expected) in filtered {
        let described = format!("{request:?}");
        assert_eq!(
            ids(list_all(&app, request).await),
            std::slice::from_ref(expected),
            "{described}"
        );
    }
    // `%` and `_` are literal, not wildcards.
    assert!(list_all(&app, query("%")).await.is_empty());
    assert!(list_all(&app, query("o_hara")).await.is_empty());

    let narnia = pb::ListCustomersRequest {
        country: "Narnia".into(),
        ..all()
    };
    let status = list(&app, narnia).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["country"]);
}

fn query(text: &str) -> pb::ListCustomersRequest {
    pb::ListCustomersRequest {
        query: text.into(),
        ..Default::default()
    }
}

async fn pages_cover_every_customer_once_and_tokens_are_bound_to_their_filter(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut created = Vec::new();
    for i in 0..23 {
        created.push(
            create(&app, personal(&unique_email(&format!("page{i}"))))
                .await
                .uuid,
        );
    }
    let mut request = pb::ListCustomersRequest {
        page_size: 5,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = list(&app, request.clone()).await.unwrap();
        assert!(page.customers.len() <= 5);
        pages += 1;
        seen.extend(page.customers.into_iter().map(|c| c.uuid));
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(pages, 5);
    assert_eq!(seen, created);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 23);

    let first = list(
        &app,
        pb::ListCustomersRequest {
            page_size: 5,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let other_filter = pb::ListCustomersRequest {
        page_size: 5,
        status: pb::CustomerStatus::Active as i32,
        page_token: first.next_page_token.clone(),
        ..Default::default()
    };
    let status = list(&app, other_filter).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["page_token"]);
    let forged = pb::ListCustomersRequest {
        page_token: "AAAA".into(),
        ..Default::default()
    };
    assert_eq!(
        list(&app, forged).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let negative = pb::ListCustomersRequest {
        page_size: -1,
        ..Default::default()
    };
    assert_eq!(
        violated_fields(&list(&app, negative).await.unwrap_err()),
        ["page_size"]
    );
}

crate::on_both_backends!(
    a_customer_is_found_by_each_of_its_keys,
    a_unicode_hostname_and_its_punycode_find_the_same_customer,
    a_lookup_needs_exactly_one_valid_key,
    lists_filter_by_status_type_country_and_query,
    pages_cover_every_customer_once_and_tokens_are_bound_to_their_filter,
);
