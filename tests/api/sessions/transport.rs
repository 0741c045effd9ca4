//! The JWKS over HTTP on the service's port (SPEC §11, §14): HTTP/1.1 and HTTP/2 (prior
//! knowledge) on the plain port; over TLS, HTTP/1.1 and HTTP/2 chosen by ALPN while gRPC
//! is served on the same port.

use tenancy::signing::Jwks;

use super::{jwks, sign_in, user_with_password, verify_now};
use crate::foundation::tls::{pki, serve_tls, trusting};
use crate::helpers::{Backend, spawn_app, spawn_tls_app};

/// GETs the JWKS at `url` with `client`, checking that it answered in `version`.
async fn fetched(client: reqwest::Client, url: &str, version: reqwest::Version) -> Jwks {
    let response = client.get(url).send().await.expect("GET the JWKS");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), version);
    response.json().await.expect("a JWKS")
}

async fn the_jwks_answers_http1_and_http2_on_the_plain_port(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = format!("http://{}/.well-known/jwks.json", app.address);
    let expected = jwks(&app).await;

    let http1 = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client");
    let http2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    assert_eq!(
        fetched(http1, &url, reqwest::Version::HTTP_11).await,
        expected
    );
    assert_eq!(
        fetched(http2, &url, reqwest::Version::HTTP_2).await,
        expected
    );
}

async fn the_jwks_answers_over_tls_on_the_port_that_serves_grpc_over_tls(backend: Backend) {
    let pki = pki();
    let app = spawn_tls_app(
        backend,
        |serve| serve_tls(&pki, serve),
        trusting(&pki, None),
    )
    .await;
    let url = format!(
        "https://localhost:{}/.well-known/jwks.json",
        app.address.port()
    );
    let client = || {
        reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("the CA"),
            )
            .resolve("localhost", app.address)
    };

    // gRPC over TLS on the port: a sign-in and the JWKS.
    let user = user_with_password(&app, "tls").await;
    let token = sign_in(&app, &user.email, "")
        .await
        .expect("sign in")
        .access_token;
    let over_grpc = jwks(&app).await;
    let http1 = client().http1_only().build().expect("client");
    let http2 = client().build().expect("client");
    let over_http1 = fetched(http1, &url, reqwest::Version::HTTP_11).await;
    let over_http2 = fetched(http2, &url, reqwest::Version::HTTP_2).await;

    assert_eq!(over_http1, over_grpc);
    assert_eq!(over_http2, over_grpc);
    assert!(verify_now(&over_http2, &token).is_ok());
    let plain = reqwest::Client::new()
        .get(format!("http://{}/.well-known/jwks.json", app.address))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP on the TLS port is refused: {plain:?}"
    );
}

crate::on_both_backends!(
    the_jwks_answers_http1_and_http2_on_the_plain_port,
    the_jwks_answers_over_tls_on_the_port_that_serves_grpc_over_tls,
);
