//! The HTTP/JSON API beside gRPC (issue 30, SPEC §14), through a real HTTP client:
//! every route group, proto3 JSON round trips, the error mapping, bad input, gRPC-Web
//! and server-sent events on the same port, the route table against the annotations,
//! and the OpenAPI document.
//!
//! Files: the route table and the OpenAPI document (`http/routes.rs`), customers and
//! their members and invitations (`http/customers.rs`), accounts, users and sessions
//! (`http/resources.rs`), errors and bad input (`http/errors.rs`), events as
//! server-sent events (`http/events.rs`), gRPC, gRPC-Web and HTTP/JSON at once and
//! `--http-listen` (`http/protocols.rs`).

mod customers;
mod errors;
mod events;
mod protocols;
mod resources;
mod routes;

use serde_json::Value;

use crate::helpers::{ADMIN_KEY, TestApp};

/// A JSON client for one server, sending a key (the admin key by default).
#[derive(Clone)]
pub struct Http {
    pub base: String,
    pub key: Option<String>,
    pub client: reqwest::Client,
}

/// An answer: status and JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// The body of a 200, or a panic naming `what` with the answer.
    pub fn ok(self, what: &str) -> Value {
        assert_eq!(self.status, 200, "{what}: {self:?}");
        self.body
    }

    /// `error.status` of an error body (`NOT_FOUND`).
    pub fn error_status(&self) -> &str {
        self.body["error"]["status"].as_str().unwrap_or_default()
    }

    /// The fields of the `google.rpc.BadRequest` details.
    pub fn violated_fields(&self) -> Vec<String> {
        self.body["error"]["details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|d| d["fieldViolations"].as_array().cloned().unwrap_or_default())
            .map(|v| v["field"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The `google.rpc.ErrorInfo` reason.
    pub fn reason(&self) -> Option<String> {
        self.body["error"]["details"]
            .as_array()?
            .iter()
            .find_map(|d| d["reason"].as_str().map(str::to_string))
    }
}

impl Http {
    pub fn new(app: &TestApp) -> Http {
        Http::at(&format!("http://{}", app.address))
    }

    pub fn at(base: &str) -> Http {
        Http {
            base: base.to_string(),
            key: Some(ADMIN_KEY.to_string()),
            client: reqwest::Client::builder()
                .http1_only()
                .build()
                .expect("client"),
        }
    }

    pub fn with_key(&self, key: Option<&str>) -> Http {
        Http {
            key: key.map(str::to_string),
            ..self.clone()
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Answer {
        let response = builder.send().await.expect("an HTTP answer");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(self.request(reqwest::Method::POST, path).json(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(self.request(reqwest::Method::PATCH, path).json(&body))
            .await
    }
}

/// A new personal customer over HTTP: its JSON.
pub async fn create_customer(http: &Http, email: &str) -> Value {
    http.post(
        "/v1/customers",
        serde_json::json!({
            "customer": {
                "email": email,
                "firstName": "João",
                "last_name": "Araújo",
                "customerType": "CUSTOMER_TYPE_PERSONAL",
                "customerMetadata": {"plan": "pro", "seats": 3, "tags": ["a", "b"], "nested": {"on": true}}
            },
            "password": crate::helpers::GOOD_PASSWORD,
        }),
    )
    .await
    .ok("create customer")["customer"]
        .clone()
}
