//! `EventService`.

use futures::StreamExt as _;
use tonic::{Request, Response, Status};

use super::pb;
use crate::app::App;

pub struct EventApi {
    app: App,
}

impl EventApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::event_service_server::EventService for EventApi {
    async fn stream_events(
        &self,
        request: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::StreamEventsResponse>>, Status> {
        let events = self
            .app
            .stream_events(request.into_inner().after_sequence)
            .await?;
        let stream = events.map(|event| {
            event
                .map(|event| pb::StreamEventsResponse {
                    event: Some((&event).into()),
                })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
