//! One log line per RPC (method, gRPC code, latency) and a request id that internal
//! errors quote, so an operator can find the cause in the log.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use tower::{Layer, Service};

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
pub struct RequestLogLayer;

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLog { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RequestLog<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RequestLog<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = S::Response;
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
        let started = Instant::now();
        let quiet = method.starts_with("/grpc.health.") || method.starts_with("/grpc.reflection.");
        Box::pin(REQUEST_ID.scope(request_id.clone(), async move {
            let result = inner.call(request).await;
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            let latency_ms = format_args!("{latency_ms:.3}");
            let code = match &result {
                // Errors come as trailers-only responses: the code is a header.
                // A response without it has started normally (OK so far).
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map(tonic::Code::from_i32)
                    .unwrap_or(tonic::Code::Ok),
                Err(_) => tonic::Code::Unknown,
            };
            // The request id is a field of this line, not a span around the
            // call: a span per RPC (created, entered on every poll, formatted
            // into the line) cost a fifth of a cached read's CPU. Lines logged
            // during an RPC that an operator must match to it (internal and
            // unavailable errors) carry the id themselves.
            if quiet {
                tracing::debug!(%method, ?code, %latency_ms, %request_id, "rpc");
            } else {
                tracing::info!(%method, ?code, %latency_ms, %request_id, "rpc");
            }
            result
        }))
    }
}
