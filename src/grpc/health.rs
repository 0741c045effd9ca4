//! `grpc.health.v1.Health`: tonic-health's service, except that a `Watch` ends once the
//! server has reported NOT_SERVING on shutdown. tonic-health's watches never end on
//! their own, so each open one would hold the drain for the whole grace period.

use std::sync::Arc;

use futures::StreamExt as _;
use tokio::sync::watch;
use tonic::{Request, Response, Status, codegen::BoxStream};
use tonic_health::{
    pb::{HealthCheckRequest, HealthCheckResponse, health_server},
    server::{HealthReporter, HealthService},
};

pub struct Health {
    inner: Arc<HealthService>,
    /// Turns true once the final (NOT_SERVING) statuses are set.
    stopped: watch::Receiver<bool>,
}

impl Health {
    pub fn new(reporter: HealthReporter, stopped: watch::Receiver<bool>) -> Self {
        Self {
            inner: Arc::new(HealthService::from_health_reporter(reporter)),
            stopped,
        }
    }
}

/// Where a watch stands: what it sent last, and whether it sent its final status.
struct Watching {
    updates: BoxStream<HealthCheckResponse>,
    stopped: watch::Receiver<bool>,
    inner: Arc<HealthService>,
    service: String,
    last: Option<i32>,
    finished: bool,
}

#[tonic::async_trait]
impl health_server::Health for Health {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = BoxStream<HealthCheckResponse>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.get_ref().service.clone();
        let updates = self.inner.watch(request).await?.into_inner();
        let state = Watching {
            updates: Box::pin(updates),
            stopped: self.stopped.clone(),
            inner: self.inner.clone(),
            service,
            last: None,
            finished: false,
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            if state.finished {
                return None;
            }
            let update = tokio::select! {
                // A status change already queued goes out before the stream ends.
                biased;
                update = state.updates.next() => Some(update?),
                _ = state.stopped.wait_for(|stopped| *stopped) => None,
            };
            if let Some(update) = update {
                if let Ok(response) = &update {
                    state.last = Some(response.status);
                }
                return Some((update, state));
            }
            state.finished = true;
            let request = Request::new(HealthCheckRequest {
                service: state.service.clone(),
            });
            let last = state.inner.check(request).await.ok()?.into_inner();
            (Some(last.status) != state.last).then_some((Ok(last), state))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
