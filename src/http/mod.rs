//! Plain HTTP on the service's port, beside gRPC (`grpc::server` tells them apart by
//! content type): the JWKS document that verifiers fetch, the OpenAPI document, and the
//! HTTP/JSON API under `/v1/` (`gateway`, on routes generated from `proto/`). Routes
//! answer JSON; an unknown path is 404 and a known path with another method 405, both
//! with a JSON error body.

mod error;
mod gateway;
mod json;
pub mod routes;

pub use gateway::Gateway;

use std::convert::Infallible;

use axum::{
    Router,
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tower::ServiceExt as _;

use crate::{app::App, grpc::server::HttpService};

/// How long verifiers may cache the JWKS. A new key is published an access-token
/// lifetime (at least a minute) before it signs, and verifiers refetch on an unknown
/// `kid` anyway.
const JWKS_MAX_AGE_SECONDS: u32 = 60;

/// The HTTP routes, as the listener's service.
pub fn routes(app: App, gateway: Gateway) -> HttpService {
    let router = Router::new()
        .route(
            "/.well-known/jwks.json",
            get(jwks).fallback(method_not_allowed),
        )
        .route("/openapi.json", get(openapi).fallback(method_not_allowed))
        .fallback(move |request: axum::extract::Request| {
            let gateway = gateway.clone();
            async move {
                if Gateway::serves(request.uri().path()) {
                    gateway
                        .handle(request.map(tonic::body::Body::new))
                        .await
                        .into_response()
                } else {
                    not_found().await
                }
            }
        })
        .with_state(app);
    tower::util::BoxCloneService::new(tower::service_fn(
        move |request: axum::http::Request<tonic::body::Body>| {
            let router = router.clone();
            async move {
                let response = router
                    .oneshot(request)
                    .await
                    .unwrap_or_else(|never: Infallible| match never {});
                Ok::<_, Infallible>(response.map(tonic::body::Body::new))
            }
        },
    ))
}

async fn jwks(axum::extract::State(app): axum::extract::State<App>) -> Response {
    let body = match serde_json::to_vec(&app.jwks()) {
        Ok(body) => body,
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "the key set could not be written",
            );
        }
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_SECONDS}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

async fn openapi() -> Response {
    let mut response = (StatusCode::OK, routes::OPENAPI_JSON).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
}

async fn method_not_allowed(method: Method) -> Response {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        &format!("{method} is not allowed here"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// An error in the JSON shape of the HTTP API (`{"error": {"code", "message", "status"}}`).
fn error(code: StatusCode, status: &str, message: &str) -> Response {
    error::error_response(
        code,
        serde_json::json!({
            "error": { "code": code.as_u16(), "message": message, "status": status }
        }),
    )
    .into_response()
}
