//! `--otlp-endpoint`: one server span per RPC reaches an OTLP collector, named by the
//! method, carrying the request id and the gRPC code, and child of the caller's W3C
//! `traceparent` when one was sent.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
    trace::v1::Span,
};
use tenancy_client::pb;
use tonic::{Code, Request, Response, Status};

use crate::helpers::{Backend, spawn_app_with, unique_email};

/// A stand-in collector that keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn start_collector() -> (String, Collector) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let collector = Collector::default();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{address}"), collector)
}

fn attribute(span: &Span, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

async fn every_rpc_is_a_span_child_of_the_callers_traceparent(backend: Backend) {
    let (endpoint, collector) = start_collector().await;
    let app = spawn_app_with(backend, |serve| serve.otlp_endpoint = Some(endpoint)).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let mut lookup = Request::new(pb::GetUserRequest {
        lookup: Some(pb::get_user_request::Lookup::UserId(
            uuid::Uuid::new_v4().to_string(),
        )),
    });
    lookup.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01").parse().unwrap(),
    );
    let missing = app.users.clone().get_user(lookup).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    crate::users::create(&app, &unique_email("traced"), "").await;

    let named = |spans: &[Span], name: &str| spans.iter().find(|s| s.name == name).cloned();
    let mut found = None;
    for _ in 0..100 {
        {
            let spans = collector.spans.lock().unwrap();
            if let (Some(get), Some(create)) = (
                named(&spans, "tenancy.v1.UserService/GetUser"),
                named(&spans, "tenancy.v1.UserService/CreateUser"),
            ) {
                found = Some((get, create));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (get, create) = found.expect("both RPCs' spans reach the collector within 10 s");

    assert_eq!(hex::encode(&get.trace_id), trace_id, "the caller's trace");
    assert_eq!(
        hex::encode(&get.parent_span_id),
        parent_id,
        "the caller's span is the parent"
    );
    assert_eq!(get.kind, 2, "a server span");
    assert_eq!(
        attribute(&get, "rpc.grpc.status_code"),
        Some(Value::IntValue(5))
    );
    assert_eq!(
        attribute(&get, "rpc.service"),
        Some(Value::StringValue("tenancy.v1.UserService".into()))
    );
    let Some(Value::StringValue(request_id)) = attribute(&get, "tenancy.request_id") else {
        panic!("no request id on {get:?}");
    };
    assert!(ulid::Ulid::from_string(&request_id).is_ok(), "{request_id}");

    // Without a traceparent the RPC starts its own trace.
    assert_ne!(hex::encode(&create.trace_id), trace_id);
    assert!(create.parent_span_id.is_empty(), "a root span");
    assert_eq!(
        attribute(&create, "rpc.grpc.status_code"),
        Some(Value::IntValue(0))
    );
    let Some(Value::StringValue(other_id)) = attribute(&create, "tenancy.request_id") else {
        panic!("no request id on {create:?}");
    };
    assert_ne!(other_id, request_id, "each RPC its own request id");
}

crate::on_both_backends!(every_rpc_is_a_span_child_of_the_callers_traceparent);
