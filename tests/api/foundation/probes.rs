//! Health and reflection: served without a key; reflection in both versions grpcurl
//! speaks, including the `google.rpc` error detail types.

use std::time::{Duration, Instant};

use prost::Message as _;
use prost_types::FileDescriptorProto;
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{Backend, spawn_app, spawn_app_with};

const TENANCY_SERVICES: [&str; 4] = [
    "tenancy.v1.CustomerService",
    "tenancy.v1.AccountService",
    "tenancy.v1.UserService",
    "tenancy.v1.EventService",
];

/// What one reflection session answered: the listed services, and the files that
/// declare each asked-for symbol.
struct Reflected {
    services: Vec<String>,
    files_by_symbol: Vec<(String, Vec<FileDescriptorProto>)>,
}

/// A function asking one reflection version to list services and resolve `symbols`.
macro_rules! reflection_session {
    ($name:ident, $($version:ident)::+) => {
        async fn $name(channel: Channel, symbols: &[&str]) -> Reflected {
            use $($version)::+::{
                ServerReflectionRequest,
                server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse,
            };
            let mut requests = vec![MessageRequest::ListServices(String::new())];
            requests.extend(
                symbols
                    .iter()
                    .map(|s| MessageRequest::FileContainingSymbol(s.to_string())),
            );
            let requests: Vec<_> = requests
                .into_iter()
                .map(|message| ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(message),
                })
                .collect();
            let mut answers = ServerReflectionClient::new(channel)
                .server_reflection_info(tokio_stream::iter(requests))
                .await
                .expect("reflection without a key")
                .into_inner();
            let mut reflected = Reflected {
                services: Vec::new(),
                files_by_symbol: Vec::new(),
            };
            let mut symbols = symbols.iter();
            while let Some(answer) = answers.message().await.expect("reflection answer") {
                match answer.message_response.expect("an answer") {
                    MessageResponse::ListServicesResponse(list) => {
                        reflected.services = list.service.into_iter().map(|s| s.name).collect();
                    }
                    MessageResponse::FileDescriptorResponse(files) => {
                        let symbol = symbols.next().expect("one answer per symbol");
                        let files = files
                            .file_descriptor_proto
                            .iter()
                            .map(|bytes| {
                                FileDescriptorProto::decode(bytes.as_slice()).expect("a file")
                            })
                            .collect();
                        reflected.files_by_symbol.push((symbol.to_string(), files));
                    }
                    MessageResponse::ErrorResponse(error) => {
                        panic!("reflection error: {error:?}")
                    }
                    other => panic!("unexpected reflection answer: {other:?}"),
                }
            }
            reflected
        }
    };
}

reflection_session!(reflect_v1, tonic_reflection::pb::v1);
reflection_session!(reflect_v1alpha, tonic_reflection::pb::v1alpha);

/// Whether `files` declare the message or service `symbol` (`package.Name`).
fn declares(files: &[FileDescriptorProto], symbol: &str) -> bool {
    let (package, name) = symbol.rsplit_once('.').expect("a qualified symbol");
    files.iter().any(|file| {
        file.package() == package
            && (file.message_type.iter().any(|m| m.name() == name)
                || file.service.iter().any(|s| s.name() == name))
    })
}

fn check_reflection(version: &str, reflected: &Reflected) {
    for service in TENANCY_SERVICES.iter().chain(&["grpc.health.v1.Health"]) {
        assert!(
            reflected.services.iter().any(|s| s == service),
            "{version} lists {service}: {:?}",
            reflected.services
        );
    }
    assert_eq!(reflected.files_by_symbol.len(), 3, "{version}");
    for (symbol, files) in &reflected.files_by_symbol {
        assert!(declares(files, symbol), "{version} resolves {symbol}");
    }
}

async fn health_serves_every_service_without_a_key(backend: Backend) {
    let app = spawn_app(backend).await;

    for service in std::iter::once("").chain(TENANCY_SERVICES) {
        let status = app.health_of(service).await;
        assert!(
            matches!(status, Ok(ServingStatus::Serving)),
            "health of {service:?}: {status:?}"
        );
    }
    let unknown = app.health_of("tenancy.v1.NoSuchService").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
}

async fn health_watch_reports_serving_without_a_key(backend: Backend) {
    let app = spawn_app(backend).await;

    let mut watch = HealthClient::new(app.channel.clone())
        .watch(HealthCheckRequest {
            service: "tenancy.v1.UserService".into(),
        })
        .await
        .expect("watch without a key")
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();

    assert_eq!(first.status(), ServingStatus::Serving);
}

async fn an_open_health_watch_does_not_hold_shutdown(backend: Backend) {
    let grace = Duration::from_secs(30);
    let app = spawn_app_with(backend, |serve| serve.shutdown_grace = grace.as_secs()).await;
    let mut watch = HealthClient::new(app.channel.clone())
        .watch(HealthCheckRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();

    // The watcher keeps its stream open and does not read while the server stops.
    let started = Instant::now();
    let stopped = tokio::time::timeout(grace, app.stop()).await;
    let took = started.elapsed();
    let last = tokio::time::timeout(Duration::from_secs(5), watch.message()).await;
    let end = tokio::time::timeout(Duration::from_secs(5), watch.message()).await;

    eprintln!("shutdown with an open health watch took {took:?} (grace {grace:?})");
    assert_eq!(first.status(), ServingStatus::Serving);
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "the server stopped cleanly: {stopped:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "well within the grace: {took:?}"
    );
    let last = last
        .expect("a final update")
        .expect("the watch")
        .expect("an update");
    assert_eq!(
        last.status(),
        ServingStatus::NotServing,
        "it says why it ends"
    );
    assert!(
        matches!(end, Ok(Ok(None))),
        "then the watch ends cleanly: {end:?}"
    );
}

async fn reflection_v1_and_v1alpha_describe_the_contract_without_a_key(backend: Backend) {
    let app = spawn_app(backend).await;
    // grpcurl resolves an error detail's type by name to print it.
    let symbols = [
        "tenancy.v1.UserService",
        "google.rpc.BadRequest",
        "google.rpc.ErrorInfo",
    ];

    let v1 = reflect_v1(app.channel.clone(), &symbols).await;
    let v1alpha = reflect_v1alpha(app.channel.clone(), &symbols).await;

    check_reflection("v1", &v1);
    check_reflection("v1alpha", &v1alpha);
}

crate::on_both_backends!(
    health_serves_every_service_without_a_key,
    health_watch_reports_serving_without_a_key,
    an_open_health_watch_does_not_hold_shutdown,
    reflection_v1_and_v1alpha_describe_the_contract_without_a_key,
);
