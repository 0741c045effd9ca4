//! Server-wide bounds on RPCs: how many may be in flight at once (more are shed with
//! UNAVAILABLE, before any work is done for them), and how long one may take to answer
//! (DEADLINE_EXCEEDED past it).
//!
//! Both apply to the time until an RPC's response begins: all of a unary RPC, only the
//! setup of a stream. The deadline is the server's timeout or the caller's
//! `grpc-timeout`, whichever is sooner; a call whose write began to commit before it is
//! answered with the commit's outcome instead (see `crate::deadline`). An open `StreamEvents` (or health `Watch`) stream holds no
//! in-flight slot and is never cut by the timeout; the number of streams is bounded per
//! connection (`--max-concurrent-streams`) and per key (`--max-streams-per-key`).

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tonic::Status;
use tower::{Layer, Service};

use crate::{
    deadline::{Deadline, parse_grpc_timeout},
    domain::Error,
};

#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// RPCs this process works on at once; more are shed.
    pub max_in_flight: usize,
    /// How long an RPC may take to answer (to begin answering, for a stream).
    pub timeout: Duration,
}

#[derive(Clone)]
pub struct RequestLimitsLayer {
    limits: RequestLimits,
    in_flight: Arc<Semaphore>,
}

impl RequestLimitsLayer {
    pub fn new(limits: RequestLimits) -> Self {
        let max = limits.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            limits: RequestLimits {
                max_in_flight: max,
                ..limits
            },
            in_flight: Arc::new(Semaphore::new(max)),
        }
    }
}

impl<S> Layer<S> for RequestLimitsLayer {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Limited {
            inner,
            limits: self.limits,
            in_flight: self.in_flight.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Limited<S> {
    inner: S,
    limits: RequestLimits,
    in_flight: Arc<Semaphore>,
}

/// Health probes are never shed: an overloaded server is still alive, and a probe that
/// failed for load would have it restarted, which sheds everything.
fn exempt_from_shedding(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Limited<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limits = self.limits;
        let permit = if exempt_from_shedding(request.uri().path()) {
            None
        } else {
            match self.in_flight.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let status = Status::from(Error::Overloaded {
                        max_in_flight: limits.max_in_flight,
                    });
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            }
        };
        // The caller's own deadline (`grpc-timeout`) counts when it is the sooner.
        let budget = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map_or(limits.timeout, |asked| asked.min(limits.timeout));
        Box::pin(async move {
            let deadline = Deadline::after(budget);
            let call = deadline.clone().scope(inner.call(request));
            tokio::pin!(call);
            let answered = tokio::select! {
                answered = &mut call => answered,
                _ = tokio::time::sleep_until(deadline.at()) => {
                    if deadline.expire() {
                        // Dropping the RPC's future rolls back what it began, and no
                        // commit can begin any more (see `crate::deadline`).
                        drop(permit);
                        return Ok(Status::from(Error::DeadlineExceeded { timeout: budget })
                            .into_http());
                    }
                    // A commit began before the deadline: its outcome is the answer.
                    call.await
                }
            };
            drop(permit);
            answered
        })
    }
}
