//! TLS and mutual TLS (`--tls-cert`, `--tls-key`, `--tls-client-ca`), with certificates
//! made for the test by a throwaway CA.

use std::{path::PathBuf, time::Duration};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;
use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::{create_user, get_by_email};
use crate::helpers::{Backend, TestApp, spawn_tls_app, tls_channel, unique_email};
use tenancy::config::ServeArgs;

/// A CA, a server certificate it signed (for 127.0.0.1 and localhost), a client
/// certificate it signed, and a client certificate it did not sign.
pub struct Pki {
    _dir: TempDir,
    pub ca_pem: String,
    pub ca_path: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client: (String, String),
    pub stranger: (String, String),
}

fn leaf(names: &[&str], usage: ExtendedKeyUsagePurpose) -> (CertificateParams, KeyPair) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("names");
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].to_string());
    params.extended_key_usages = vec![usage];
    (params, KeyPair::generate().expect("key"))
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("key");
    (params.self_signed(&key).expect("CA"), key)
}

pub fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca_cert, ca_key) = ca("tenancy test CA");
    let (params, server_key) = leaf(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let server = params
        .signed_by(&server_key, &ca_cert, &ca_key)
        .expect("server cert");
    let (params, client_key) = leaf(&["billing-service"], ExtendedKeyUsagePurpose::ClientAuth);
    let client = params
        .signed_by(&client_key, &ca_cert, &ca_key)
        .expect("client cert");
    let (other_ca, other_key) = ca("someone else's CA");
    let (params, stranger_key) = leaf(&["intruder"], ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = params
        .signed_by(&stranger_key, &other_ca, &other_key)
        .expect("stranger cert");
    let write = |name: &str, pem: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path
    };
    Pki {
        ca_pem: ca_cert.pem(),
        ca_path: write("ca.pem", ca_cert.pem()),
        server_cert: write("server.pem", server.pem()),
        server_key: write("server.key", server_key.serialize_pem()),
        client: (client.pem(), client_key.serialize_pem()),
        stranger: (stranger.pem(), stranger_key.serialize_pem()),
        _dir: dir,
    }
}

/// Serves TLS with the server certificate of `pki`.
pub fn serve_tls(pki: &Pki, serve: &mut ServeArgs) {
    serve.tls_cert = Some(pki.server_cert.clone());
    serve.tls_key = Some(pki.server_key.clone());
}

/// Client settings that trust the test CA and present `identity`, if any.
pub fn trusting(pki: &Pki, identity: Option<&(String, String)>) -> ClientTlsConfig {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    match identity {
        Some((cert, key)) => tls.identity(Identity::from_pem(cert, key)),
        None => tls,
    }
}

/// Whether a health check over `channel` succeeds (within a few seconds).
async fn health_answers(channel: Channel) -> bool {
    let mut health = HealthClient::new(channel);
    let check = health.check(HealthCheckRequest::default());
    matches!(
        tokio::time::timeout(Duration::from_secs(5), check).await,
        Ok(Ok(_))
    )
}

fn plaintext(app: &TestApp) -> Channel {
    Endpoint::from_shared(format!("http://{}", app.address))
        .expect("endpoint")
        .connect_lazy()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_clients_that_trust_the_certificate_and_no_one_else() {
    let pki = pki();
    let app = spawn_tls_app(
        Backend::Sqlite,
        |serve| serve_tls(&pki, serve),
        trusting(&pki, None),
    )
    .await;

    let user = create_user(&app, &unique_email("tls")).await;
    let found = app.users.clone().get_user(get_by_email(&user.email)).await;
    let over_plaintext = health_answers(plaintext(&app)).await;
    let untrusting = health_answers(tls_channel(
        app.address,
        ClientTlsConfig::new().domain_name("localhost"),
    ))
    .await;
    let wrong_name = health_answers(tls_channel(
        app.address,
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&pki.ca_pem))
            .domain_name("tenancy.example.com"),
    ))
    .await;

    assert_eq!(
        found
            .expect("an RPC over TLS")
            .into_inner()
            .user
            .unwrap()
            .uuid,
        user.uuid
    );
    assert!(!over_plaintext, "a plaintext client is refused");
    assert!(!untrusting, "a client that does not trust the CA fails");
    assert!(!wrong_name, "a client expecting another name fails");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate_from_the_client_ca() {
    let pki = pki();
    let app = spawn_tls_app(
        Backend::Sqlite,
        |serve| {
            serve_tls(&pki, serve);
            serve.tls_client_ca = Some(pki.ca_path.clone());
        },
        trusting(&pki, Some(&pki.client)),
    )
    .await;

    let user = create_user(&app, &unique_email("mtls")).await;
    let missing = app
        .users
        .clone()
        .get_user(get_by_email(&unique_email("nobody")))
        .await
        .unwrap_err();
    let without_certificate = health_answers(tls_channel(app.address, trusting(&pki, None))).await;
    let with_a_stranger = health_answers(tls_channel(
        app.address,
        trusting(&pki, Some(&pki.stranger)),
    ))
    .await;
    let over_plaintext = health_answers(plaintext(&app)).await;

    assert!(!user.uuid.is_empty());
    // A client certificate does not replace the API key; with both, the RPC runs.
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert!(
        !without_certificate,
        "a client without a certificate is refused"
    );
    assert!(!with_a_stranger, "a certificate from another CA is refused");
    assert!(!over_plaintext, "a plaintext client is refused");
}

async fn a_client_that_never_completes_the_tls_handshake_is_dropped(backend: Backend) {
    let pki = pki();
    let app = spawn_tls_app(
        backend,
        |serve| {
            serve_tls(&pki, serve);
            serve.tls_handshake_timeout = 1;
        },
        trusting(&pki, None),
    )
    .await;

    // Connects and sends nothing, as a stalled or hostile client does.
    let mut socket = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        use tokio::io::AsyncReadExt as _;
        socket.read(&mut buffer).await
    })
    .await;
    let took = started.elapsed();
    let served = health_answers(app.channel.clone()).await;

    eprintln!("a silent TLS client was dropped after {took:?}");
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the server closed the connection: {read:?}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "after the 1 s handshake timeout: {took:?}"
    );
    assert!(served, "clients that complete the handshake are served");
}

crate::on_both_backends!(a_client_that_never_completes_the_tls_handshake_is_dropped);
