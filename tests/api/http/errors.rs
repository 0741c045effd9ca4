//! Errors over HTTP/JSON (SPEC §14): the HTTP status mapped from the gRPC code with the
//! same `google.rpc` details, and the transport-level refusals (malformed JSON, a wrong
//! type, an unknown field, NUL, a body over the limit, a huge header, a bad id, a wrong
//! method, an unknown path, a missing or bad key, a body that never ends): each a 4xx
//! naming what is wrong, never a 500, and nothing written.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Http, create_customer};
use crate::helpers::{Backend, GOOD_PASSWORD, TestApp, spawn_app, unique_email};

/// How many customers exist (over gRPC), to see that a refused request wrote nothing.
async fn customer_count(app: &TestApp) -> usize {
    app.customers
        .clone()
        .list_customers(tenancy_client::pb::ListCustomersRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .customers
        .len()
}

fn create_body(customer: serde_json::Value) -> serde_json::Value {
    json!({"customer": customer, "password": GOOD_PASSWORD})
}

async fn bad_input_is_a_4xx_naming_what_is_wrong_and_writes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let http = Http::new(&app);
    let post = |body: String| {
        http.request(reqwest::Method::POST, "/v1/customers")
            .header("content-type", "application/json")
            .body(body)
    };

    let malformed = http.send(post("{\"customer\": {".into())).await;
    assert_eq!(malformed.status, 400, "{malformed:?}");
    assert_eq!(malformed.error_status(), "INVALID_ARGUMENT");
    assert!(
        malformed.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JSON"),
        "{malformed:?}"
    );

    let not_an_object = http.send(post("[1, 2]".into())).await;
    assert_eq!(not_an_object.status, 400, "{not_an_object:?}");

    let wrong_type = http
        .post(
            "/v1/customers",
            create_body(json!({"email": 5, "customerType": "CUSTOMER_TYPE_PERSONAL"})),
        )
        .await;
    assert_eq!(wrong_type.status, 400, "{wrong_type:?}");
    let message = wrong_type.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("customer.email"),
        "names the field: {message}"
    );

    let unknown_field = http
        .post(
            "/v1/customers",
            create_body(json!({"email": unique_email("x"), "favouriteColour": "red"})),
        )
        .await;
    assert_eq!(unknown_field.status, 400, "{unknown_field:?}");
    let message = unknown_field.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("favouriteColour"),
        "names the field: {message}"
    );
    assert!(message.contains("customer"), "names where: {message}");

    let bad_enum = http
        .post(
            "/v1/customers",
            create_body(json!({"email": unique_email("x"), "customerType": "CUSTOMER_TYPE_ALIEN"})),
        )
        .await;
    assert_eq!(bad_enum.status, 400, "{bad_enum:?}");

    // NUL in a string: the same edge check as gRPC refuses it, naming the field.
    let nul = http
        .post(
            "/v1/customers",
            create_body(json!({
                "email": unique_email("nul"),
                "firstName": "Jo\u{0}ão",
                "customerType": "CUSTOMER_TYPE_PERSONAL"
            })),
        )
        .await;
    assert_eq!(nul.status, 400, "{nul:?}");
    assert_eq!(nul.error_status(), "INVALID_ARGUMENT");
    assert!(
        nul.violated_fields()
            .iter()
            .any(|f| f.contains("first_name")),
        "{nul:?}"
    );

    // A 5 MiB body: 413, refused on its declared length before a byte is read...
    let mut stream = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/customers HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        crate::helpers::ADMIN_KEY,
        5 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut answer))
        .await
        .expect("an answer before the body")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("RESOURCE_EXHAUSTED"), "{answer}");
    drop(stream);
    // ...and, sent whole (a fresh connection: the server closes it rather than read
    // the rest), refused the same way unless the server hung up while it was sent.
    let huge = format!(
        "{{\"customer\": {{\"email\": \"{}\"}}}}",
        "a".repeat(5 * 1024 * 1024)
    );
    let fresh = Http::new(&app);
    let sent = fresh
        .request(reqwest::Method::POST, "/v1/customers")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await;
    if let Ok(response) = sent {
        assert_eq!(response.status(), 413, "{response:?}");
    }

    // A query parameter that names no field.
    let unknown_query = http.get("/v1/customers?colour=red").await;
    assert_eq!(unknown_query.status, 400, "{unknown_query:?}");
    assert!(
        unknown_query.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour")
    );
    let bad_page_size = http.get("/v1/customers?pageSize=many").await;
    assert_eq!(bad_page_size.status, 400, "{bad_page_size:?}");

    // A bad id in the path: the service's own INVALID_ARGUMENT naming the field.
    let bad_id = http.get("/v1/customers/not-an-id").await;
    assert_eq!(bad_id.status, 400, "{bad_id:?}");
    assert_eq!(bad_id.violated_fields(), ["customer_id"], "{bad_id:?}");

    // A wrong method on a known path: 405 with Allow; an unknown path: 404.
    let wrong_method = http
        .send(http.request(reqwest::Method::PUT, "/v1/customers"))
        .await;
    assert_eq!(wrong_method.status, 405, "{wrong_method:?}");
    let allow = wrong_method.headers["allow"].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let unknown_path = http.get("/v1/nothing/here").await;
    assert_eq!(unknown_path.status, 404, "{unknown_path:?}");
    assert_eq!(unknown_path.error_status(), "NOT_FOUND");

    // A huge header: refused by the listener before any route.
    let huge_header = http
        .client
        .get(format!("{}/v1/customers", http.base))
        .header("x-padding", "a".repeat(1024 * 1024))
        .send()
        .await;
    match huge_header {
        Ok(response) => assert_eq!(response.status(), 431, "{response:?}"),
        Err(error) => assert!(!error.is_timeout(), "{error}"),
    }

    assert_eq!(
        customer_count(&app).await,
        0,
        "a refused request wrote nothing"
    );
}

async fn keys_and_scopes_are_checked_as_for_grpc(backend: Backend) {
    let app = spawn_app(backend).await;
    let http = Http::new(&app);
    let body = create_body(json!({
        "email": unique_email("keys"),
        "customerType": "CUSTOMER_TYPE_PERSONAL"
    }));

    let missing = http
        .with_key(None)
        .post("/v1/customers", body.clone())
        .await;
    assert_eq!(missing.status, 401, "{missing:?}");
    assert_eq!(missing.error_status(), "UNAUTHENTICATED");
    let bad = http
        .with_key(Some("not-a-key"))
        .post("/v1/customers", body.clone())
        .await;
    assert_eq!(bad.status, 401, "{bad:?}");
    let reader = app.key_with(&["customers.read"]).await;
    let denied = http
        .with_key(Some(&reader))
        .post("/v1/customers", body.clone())
        .await;
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(denied.error_status(), "PERMISSION_DENIED");
    assert_eq!(customer_count(&app).await, 0, "nothing written");
    // The reader's scope is enough to list.
    let listed = http.with_key(Some(&reader)).get("/v1/customers").await;
    assert_eq!(listed.status, 200, "{listed:?}");
}

async fn grpc_codes_map_to_http_statuses_with_their_details(backend: Backend) {
    let app = spawn_app(backend).await;
    let http = Http::new(&app);
    let email = unique_email("codes");
    create_customer(&http, &email).await;

    // 409 ALREADY_EXISTS with the ErrorInfo reason.
    let taken = http
        .post(
            "/v1/customers",
            create_body(json!({"email": email, "firstName": "A", "lastName": "B",
                               "customerType": "CUSTOMER_TYPE_PERSONAL"})),
        )
        .await;
    assert_eq!(taken.status, 409, "{taken:?}");
    assert_eq!(taken.error_status(), "ALREADY_EXISTS");
    assert_eq!(taken.reason().as_deref(), Some("EMAIL_TAKEN"));
    let detail_type = taken.body["error"]["details"][0]["@type"].as_str().unwrap();
    assert!(
        detail_type.starts_with("type.googleapis.com/google.rpc."),
        "{detail_type}"
    );
    assert_eq!(taken.body["error"]["code"], 409);

    // 404 NOT_FOUND.
    let missing = http
        .get("/v1/customers/0190f5a6-0000-7000-8000-000000000000")
        .await;
    assert_eq!(missing.status, 404, "{missing:?}");
    assert_eq!(missing.error_status(), "NOT_FOUND");

    // 400 INVALID_ARGUMENT with every violated field.
    let invalid = http
        .post(
            "/v1/customers",
            create_body(json!({"email": "not an email", "country": "XX"})),
        )
        .await;
    assert_eq!(invalid.status, 400, "{invalid:?}");
    let fields = invalid.violated_fields();
    assert!(fields.iter().any(|f| f.contains("email")), "{fields:?}");
    assert!(fields.iter().any(|f| f.contains("country")), "{fields:?}");
    // 504: a deadline the caller gave (grpc-timeout passes through) that cannot be met.
    let hurried = http
        .send(
            http.request(reqwest::Method::POST, "/v1/users")
                .header("grpc-timeout", "1n")
                .json(&json!({"user": {"email": unique_email("hurried"), "firstName": "A", "lastName": "B"},
                              "password": GOOD_PASSWORD})),
        )
        .await;
    assert!(
        hurried.status == 504 || hurried.status == 200,
        "{hurried:?}"
    );
}

async fn a_body_that_never_ends_is_dropped_with_408(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut stream = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    let request = format!(
        "POST /v1/customers HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"customer\":",
        crate::helpers::ADMIN_KEY
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "the server held the connection: {answer}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(customer_count(&app).await, 0);
}

crate::on_both_backends!(
    bad_input_is_a_4xx_naming_what_is_wrong_and_writes_nothing,
    keys_and_scopes_are_checked_as_for_grpc,
    grpc_codes_map_to_http_statuses_with_their_details,
    a_body_that_never_ends_is_dropped_with_408,
);
