//! RPC counters and latencies under the names go-grpc-prometheus gave them, so
//! operators' dashboards and alerts work unchanged: `grpc_server_started_total`,
//! `grpc_server_handled_total` and `grpc_server_handling_seconds`, labelled
//! `grpc_type`, `grpc_service`, `grpc_method` (and `grpc_code` where handled).
//!
//! Every method the server serves is known at start (from the descriptor sets), so a
//! call costs a map lookup by path and a few atomic adds; a path no service has is
//! counted under `unknown` labels, so callers cannot grow the label sets.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    time::Duration,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use prost_reflect::DescriptorPool;

use super::{pb, server::Protocol};

/// go-grpc-prometheus's default buckets, in seconds.
const HANDLING_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// gRPC codes as Go's `codes.Code.String()` spells them (go-grpc-prometheus's labels).
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_type: Arc<str>,
    grpc_service: Arc<str>,
    grpc_method: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    grpc_type: Arc<str>,
    grpc_service: Arc<str>,
    grpc_method: Arc<str>,
    grpc_code: &'static str,
}

type HistogramFamily = Family<MethodLabels, Histogram, fn() -> Histogram>;

fn handling_histogram() -> Histogram {
    Histogram::new(HANDLING_BUCKETS)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

/// The three RPC families, and each known method's handles onto them; and RPCs counted
/// by the protocol they came in by (grpc, grpc-web, http).
#[derive(Debug)]
pub struct RpcMetrics {
    methods: HashMap<String, Arc<MethodMetrics>>,
    unknown: Arc<MethodMetrics>,
    protocols: [Counter; 3],
}

/// One method's series; a code's counter is created the first time it is answered, so
/// the exposition lists only codes that happened.
#[derive(Debug)]
pub struct MethodMetrics {
    labels: MethodLabels,
    started: Counter,
    handling: Histogram,
    handled_family: Family<HandledLabels, Counter>,
    handled: [OnceLock<Counter>; 17],
}

impl MethodMetrics {
    fn new(
        labels: MethodLabels,
        started: &Family<MethodLabels, Counter>,
        handling: &HistogramFamily,
        handled_family: &Family<HandledLabels, Counter>,
    ) -> MethodMetrics {
        MethodMetrics {
            started: started.get_or_create_owned(&labels),
            handling: handling.get_or_create_owned(&labels),
            handled_family: handled_family.clone(),
            handled: Default::default(),
            labels,
        }
    }

    pub fn started(&self) {
        self.started.inc();
    }

    pub fn handled(&self, code: tonic::Code, elapsed: Duration) {
        let index = (code as usize).min(CODE_NAMES.len() - 1);
        self.handled[index]
            .get_or_init(|| {
                self.handled_family.get_or_create_owned(&HandledLabels {
                    grpc_type: self.labels.grpc_type.clone(),
                    grpc_service: self.labels.grpc_service.clone(),
                    grpc_method: self.labels.grpc_method.clone(),
                    grpc_code: CODE_NAMES[index],
                })
            })
            .inc();
        self.handling.observe(elapsed.as_secs_f64());
    }
}

/// The descriptor sets of every service the server registers.
fn served_descriptor_sets() -> [&'static [u8]; 4] {
    [
        pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]
}

fn grpc_type(method: &prost_reflect::MethodDescriptor) -> &'static str {
    match (method.is_client_streaming(), method.is_server_streaming()) {
        (false, false) => "unary",
        (true, false) => "client_stream",
        (false, true) => "server_stream",
        (true, true) => "bidi_stream",
    }
}

impl RpcMetrics {
    /// Registers the families in `registry` and creates every served method's series.
    pub fn register(registry: &mut Registry) -> RpcMetrics {
        let started = Family::<MethodLabels, Counter>::default();
        let handled = Family::<HandledLabels, Counter>::default();
        let handling: HistogramFamily = Family::new_with_constructor(handling_histogram);
        registry.register(
            "grpc_server_started",
            "RPCs started on the server",
            started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "RPCs completed on the server, whatever their code",
            handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Seconds from an RPC's start to its last response byte (a stream's whole life)",
            handling.clone(),
        );
        let by_protocol = Family::<ProtocolLabels, Counter>::default();
        registry.register(
            "tenancy_rpc_requests_by_protocol",
            "RPCs started, by the protocol they came in by: grpc, grpc-web or http (JSON)",
            by_protocol.clone(),
        );
        let protocols = [Protocol::Grpc, Protocol::GrpcWeb, Protocol::Http].map(|protocol| {
            by_protocol.get_or_create_owned(&ProtocolLabels {
                protocol: protocol.as_str(),
            })
        });
        let mut methods = HashMap::new();
        for set in served_descriptor_sets() {
            let pool = match DescriptorPool::decode(set) {
                Ok(pool) => pool,
                Err(error) => {
                    tracing::warn!(%error, "a descriptor set did not decode; its methods are counted as unknown");
                    continue;
                }
            };
            for service in pool.services() {
                for method in service.methods() {
                    let labels = MethodLabels {
                        grpc_type: grpc_type(&method).into(),
                        grpc_service: service.full_name().into(),
                        grpc_method: method.name().into(),
                    };
                    let path = format!("/{}/{}", service.full_name(), method.name());
                    methods.insert(
                        path,
                        Arc::new(MethodMetrics::new(labels, &started, &handling, &handled)),
                    );
                }
            }
        }
        let unknown = MethodLabels {
            grpc_type: "unary".into(),
            grpc_service: "unknown".into(),
            grpc_method: "unknown".into(),
        };
        RpcMetrics {
            methods,
            unknown: Arc::new(MethodMetrics::new(unknown, &started, &handling, &handled)),
            protocols,
        }
    }

    /// Counts an RPC that came in by `protocol`.
    pub fn came_in_by(&self, protocol: Protocol) {
        let index = match protocol {
            Protocol::Grpc => 0,
            Protocol::GrpcWeb => 1,
            Protocol::Http => 2,
        };
        self.protocols[index].inc();
    }

    /// The series of the method at `path` (`/package.Service/Method`).
    pub fn method(&self, path: &str) -> Arc<MethodMetrics> {
        self.methods.get(path).unwrap_or(&self.unknown).clone()
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn methods_are_labelled_by_their_kind_and_codes_by_their_go_names() {
        let mut registry = Registry::default();
        let metrics = RpcMetrics::register(&mut registry);
        let stream = metrics.method("/tenancy.v1.EventService/StreamEvents");
        stream.started();
        stream.handled(tonic::Code::Cancelled, Duration::from_millis(3));
        let get = metrics.method("/tenancy.v1.UserService/GetUser");
        get.started();
        get.handled(tonic::Code::NotFound, Duration::from_millis(1));
        metrics.method("/no.such/Thing").started();
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains(
            "grpc_server_handled_total{grpc_type=\"server_stream\",grpc_service=\"tenancy.v1.EventService\",grpc_method=\"StreamEvents\",grpc_code=\"Canceled\"} 1"
        ), "{text}");
        assert!(text.contains(
            "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"tenancy.v1.UserService\",grpc_method=\"GetUser\",grpc_code=\"NotFound\"} 1"
        ), "{text}");
        assert!(text.contains(
            "grpc_server_started_total{grpc_type=\"unary\",grpc_service=\"unknown\",grpc_method=\"unknown\"} 1"
        ), "{text}");
        assert!(text.contains(
            "grpc_server_started_total{grpc_type=\"bidi_stream\",grpc_service=\"grpc.reflection.v1.ServerReflection\",grpc_method=\"ServerReflectionInfo\"} 0"
        ), "{text}");
    }
}
