//! Optional OpenTelemetry traces (`--otlp-endpoint`): one span per RPC, exported over
//! OTLP/gRPC by a batch processor. When the flag is unset nothing here exists and the
//! request log checks one `Option` per RPC.

use std::sync::Arc;

use opentelemetry::{
    KeyValue,
    propagation::{Extractor, TextMapPropagator as _},
    trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _},
};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, Span},
};

/// The exporter and the tracer RPC spans come from; cheap to clone.
#[derive(Clone)]
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: Arc<SdkTracer>,
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Traces")
    }
}

impl Traces {
    /// Starts exporting to `endpoint` (e.g. `http://127.0.0.1:4317`). Must run inside
    /// the tokio runtime: the exporter's channel lives on it.
    pub fn start(endpoint: &str) -> Result<Self, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| format!("--otlp-endpoint {endpoint}: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_resource(Resource::builder().with_service_name("tenancy").build())
            // Spans leave within a second (the default waits five).
            .with_span_processor(
                BatchSpanProcessor::builder(exporter)
                    .with_batch_config(
                        BatchConfigBuilder::default()
                            .with_scheduled_delay(std::time::Duration::from_secs(1))
                            .build(),
                    )
                    .build(),
            )
            .build();
        let tracer = Arc::new(provider.tracer("tenancy"));
        Ok(Self { provider, tracer })
    }

    /// A server span for the RPC at `path` (`/tenancy.v1.UserService/GetUser`), child
    /// of the caller's W3C `traceparent` when it sent one.
    pub fn rpc_span(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        request_id: &str,
        protocol: &'static str,
    ) -> RpcSpan {
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((path, ""));
        let span = self
            .tracer
            .span_builder(path.trim_start_matches('/').to_string())
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", service.to_string()),
                KeyValue::new("rpc.method", method.to_string()),
                KeyValue::new("tenancy.request_id", request_id.to_string()),
                // grpc, grpc-web or http (the HTTP/JSON API).
                KeyValue::new("tenancy.protocol", protocol),
            ])
            .start_with_context(&*self.tracer, &parent);
        RpcSpan(span)
    }

    /// Exports what is still buffered; called once at shutdown.
    pub fn shutdown(&self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "traces: the last spans could not be exported");
        }
    }
}

/// One RPC's span; ended with its gRPC code.
pub struct RpcSpan(Span);

impl RpcSpan {
    pub fn finish(mut self, code: tonic::Code) {
        self.0
            .set_attribute(KeyValue::new("rpc.grpc.status_code", code as i64));
        // OpenTelemetry's gRPC conventions: server spans are errors for these codes.
        if matches!(
            code,
            tonic::Code::Unknown
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Unimplemented
                | tonic::Code::Internal
                | tonic::Code::Unavailable
                | tonic::Code::DataLoss
        ) {
            self.0.set_status(Status::error(format!("{code:?}")));
        }
        self.0.end();
    }
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
