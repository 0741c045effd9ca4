//! gRPC, gRPC-Web and HTTP/1.1 JSON served at once on one port under load, and
//! `--http-listen` moving HTTP/JSON to a listener of its own.

use std::sync::{Arc, OnceLock};

use bytes::{Buf as _, BufMut as _, BytesMut};
use prost::Message as _;
use tenancy_client::pb;

use super::{Http, create_customer};
use crate::helpers::{ADMIN_KEY, Backend, spawn_app, spawn_app_with, unique_email};

/// GetCustomer over gRPC-Web (binary), as a browser tool sends it: the customer's email.
async fn get_over_grpc_web(client: &reqwest::Client, base: &str, id: &str) -> String {
    let message = pb::GetCustomerRequest {
        lookup: Some(pb::get_customer_request::Lookup::CustomerId(id.to_string())),
    }
    .encode_to_vec();
    let mut frame = BytesMut::new();
    frame.put_u8(0);
    frame.put_u32(message.len() as u32);
    frame.extend_from_slice(&message);
    let response = client
        .post(format!("{base}/tenancy.v1.CustomerService/GetCustomer"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .body(frame.freeze())
        .send()
        .await
        .expect("a gRPC-Web answer");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/grpc-web"),
        "{response:?}"
    );
    let mut body = response.bytes().await.expect("a body");
    let mut email = None;
    let mut trailers = String::new();
    while body.remaining() >= 5 {
        let flag = body.get_u8();
        let length = body.get_u32() as usize;
        let payload = body.split_to(length);
        if flag & 0x80 == 0 {
            let answer = pb::GetCustomerResponse::decode(payload).expect("a GetCustomerResponse");
            email = answer.customer.map(|c| c.email);
        } else {
            trailers = String::from_utf8_lossy(&payload).to_string();
        }
    }
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    email.expect("a customer")
}

async fn grpc_grpc_web_and_http_json_are_served_at_once_on_one_port(backend: Backend) {
    let app = spawn_app(backend).await;
    let http = Http::new(&app);
    let email = unique_email("three-protocols");
    let id = create_customer(&http, &email).await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let base = http.base.clone();
    let web = reqwest::Client::builder().http1_only().build().unwrap();

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, web, base, id, email) = (
            http.clone(),
            web.clone(),
            base.clone(),
            id.clone(),
            email.clone(),
        );
        let mut customers = app.customers.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!("/v1/customers/{id}");
            for _ in 0..25 {
                let (over_grpc, over_web, over_json) = tokio::join!(
                    customers.get_customer(pb::GetCustomerRequest {
                        lookup: Some(pb::get_customer_request::Lookup::CustomerId(id.clone())),
                    }),
                    get_over_grpc_web(&web, &base, &id),
                    http.get(&path),
                );
                assert_eq!(
                    over_grpc
                        .expect("gRPC")
                        .into_inner()
                        .customer
                        .unwrap()
                        .email,
                    email
                );
                assert_eq!(over_web, email);
                assert_eq!(over_json.ok("JSON")["customer"]["email"], email.as_str());
            }
        }));
    }
    for task in tasks {
        task.await.expect("no task failed");
    }
}

async fn http_listen_moves_http_json_to_its_own_listener(backend: Backend) {
    let bound = Arc::new(OnceLock::new());
    let app = spawn_app_with(backend, |serve| {
        serve.http_listen = Some("127.0.0.1:0".parse().unwrap());
        serve.http_bound = Some(bound.clone());
    })
    .await;
    let address = *bound.get().expect("the HTTP listener is bound");
    assert_ne!(address, app.address);
    let http = Http::at(&format!("http://{address}"));
    let email = unique_email("own-listener");
    let id = create_customer(&http, &email).await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        http.get(&format!("/v1/customers/{id}")).await.ok("get")["customer"]["email"],
        email.as_str()
    );
    assert_eq!(http.get("/openapi.json").await.status, 200);
    // The gRPC port serves it still.
    assert_eq!(
        Http::new(&app)
            .get(&format!("/v1/customers/{id}"))
            .await
            .status,
        200
    );
}

async fn rpcs_are_counted_by_the_protocol_they_came_in_by(backend: Backend) {
    let (app, metrics) = crate::foundation::metrics::spawn_with_metrics(backend, |_| {}).await;
    let http = Http::new(&app);
    let id = create_customer(&http, &unique_email("by-protocol")).await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    http.get(&format!("/v1/customers/{id}")).await.ok("get");
    let web = reqwest::Client::builder().http1_only().build().unwrap();
    get_over_grpc_web(&web, &http.base, &id).await;
    app.customers
        .clone()
        .get_customer(pb::GetCustomerRequest {
            lookup: Some(pb::get_customer_request::Lookup::CustomerId(id.clone())),
        })
        .await
        .expect("gRPC");
    let samples = crate::foundation::metrics::scrape(metrics).await;
    let count = |protocol: &str| {
        samples
            .get(&format!(
                "tenancy_rpc_requests_by_protocol_total{{protocol=\"{protocol}\"}}"
            ))
            .copied()
            .unwrap_or_default()
    };
    assert_eq!(count("http"), 2.0, "{samples:?}");
    assert_eq!(count("grpc-web"), 1.0, "{samples:?}");
    assert!(count("grpc") >= 1.0, "{samples:?}");
}

crate::on_both_backends!(
    rpcs_are_counted_by_the_protocol_they_came_in_by,
    grpc_grpc_web_and_http_json_are_served_at_once_on_one_port,
    http_listen_moves_http_json_to_its_own_listener,
);
