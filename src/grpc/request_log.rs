//! One log line per RPC (method, gRPC code, latency) and a request id that internal
//! errors quote, so an operator can find the cause in the log; and, when metrics are
//! on, the same outcome counted (see `rpc_metrics`).
//!
//! An RPC is over when its last response frame is sent: its trailers (or a
//! trailers-only error) carry the code. One whose caller went away first (the response
//! future or body dropped unfinished) is `Cancelled`.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};

use super::rpc_metrics::{MethodMetrics, RpcMetrics};
use super::traces::{RpcSpan, Traces};

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the RPC being served, or a fresh one outside an RPC.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| ulid::Ulid::new().to_string())
}

#[derive(Debug, Clone, Default)]
pub struct RequestLogLayer {
    metrics: Option<Arc<RpcMetrics>>,
    traces: Option<Traces>,
}

impl RequestLogLayer {
    /// Logs every RPC, and counts it in `metrics` when given.
    pub fn new(metrics: Option<Arc<RpcMetrics>>) -> Self {
        Self {
            metrics,
            traces: None,
        }
    }

    /// Also gives every RPC a span exported through `traces`.
    pub fn with_traces(mut self, traces: Option<Traces>) -> Self {
        self.traces = traces;
        self
    }
}

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLog {
            inner,
            metrics: self.metrics.clone(),
            traces: self.traces.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RequestLog<S> {
    inner: S,
    metrics: Option<Arc<RpcMetrics>>,
    traces: Option<Traces>,
}

/// One RPC from its start until its code is known; logged and counted exactly once.
struct Call {
    method: String,
    /// grpc, grpc-web or http (the HTTP/JSON API).
    protocol: &'static str,
    request_id: String,
    started: Instant,
    quiet: bool,
    metrics: Option<Arc<MethodMetrics>>,
    span: Option<RpcSpan>,
    finished: bool,
}

impl Call {
    fn finish(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        if let Some(metrics) = &self.metrics {
            metrics.handled(code, elapsed);
        }
        if let Some(span) = self.span.take() {
            span.finish(code);
        }
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        let latency_ms = format_args!("{latency_ms:.3}");
        let (method, request_id, protocol) = (&self.method, &self.request_id, self.protocol);
        // The request id is a field of this line, not a span around the call: a span
        // per RPC (created, entered on every poll, formatted into the line) cost a
        // fifth of a cached read's CPU. Lines logged during an RPC that an operator
        // must match to it (internal and unavailable errors) carry the id themselves.
        if self.quiet {
            tracing::debug!(%method, %protocol, ?code, %latency_ms, %request_id, "rpc");
        } else {
            tracing::info!(%method, %protocol, ?code, %latency_ms, %request_id, "rpc");
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Dropped before its code was sent: the caller went away (or the connection).
        self.finish(tonic::Code::Cancelled);
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RequestLog<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body + Unpin + Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        // The clone is not ready; the ready one is taken for this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let method = request.uri().path().to_string();
        let request_id = ulid::Ulid::new().to_string();
        let quiet = method.starts_with("/grpc.health.") || method.starts_with("/grpc.reflection.");
        let protocol = super::server::Protocol::of(&request);
        if let Some(metrics) = &self.metrics {
            metrics.came_in_by(protocol);
        }
        let metrics = self.metrics.as_ref().map(|metrics| metrics.method(&method));
        if let Some(metrics) = &metrics {
            metrics.started();
        }
        let span = self.traces.as_ref().map(|traces| {
            traces.rpc_span(&method, request.headers(), &request_id, protocol.as_str())
        });
        let mut call = Call {
            method,
            protocol: protocol.as_str(),
            request_id: request_id.clone(),
            started: Instant::now(),
            quiet,
            metrics,
            span,
            finished: false,
        };
        Box::pin(REQUEST_ID.scope(request_id, async move {
            match inner.call(request).await {
                Ok(response) => {
                    // Errors come as trailers-only responses: the code is a header.
                    // Otherwise it comes in the body's trailers.
                    let call = match grpc_status(response.headers()) {
                        Some(code) => {
                            call.finish(code);
                            None
                        }
                        None => Some(call),
                    };
                    Ok(response.map(|inner| ObservedBody { inner, call }))
                }
                Err(error) => {
                    call.finish(tonic::Code::Unknown);
                    Err(error)
                }
            }
        }))
    }
}

/// A response body that finishes its RPC's `Call` when the trailers go out.
pub struct ObservedBody<B> {
    inner: B,
    call: Option<Call>,
}

impl<B: Body + Unpin> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some(call) = &mut this.call {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        call.finish(grpc_status(trailers).unwrap_or(tonic::Code::Unknown));
                    }
                }
                Poll::Ready(Some(Err(_))) | Poll::Ready(None) => call.finish(tonic::Code::Unknown),
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
