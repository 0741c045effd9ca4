//! `EventService`.

use futures::StreamExt as _;
use tonic::{Request, Response, Status};

use super::pb;
use crate::{
    app::App,
    domain::{Error, api_key::Caller},
};

pub struct EventApi {
    app: App,
}

impl EventApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// The key the auth layer identified; every `EventService` path needs one.
fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Error::Unauthenticated("missing API key").into())
}

#[tonic::async_trait]
impl pb::event_service_server::EventService for EventApi {
    async fn stream_events(
        &self,
        request: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::StreamEventsResponse>>, Status> {
        let caller = caller(&request)?;
        let events = self
            .app
            .stream_events(&caller, request.into_inner().after_sequence)
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

    async fn get_event_log(
        &self,
        _request: Request<pb::GetEventLogRequest>,
    ) -> Result<Response<pb::GetEventLogResponse>, Status> {
        let log = self.app.event_log().await?;
        Ok(Response::new(pb::GetEventLogResponse {
            event_log: Some(pb::EventLog {
                oldest_sequence: log.oldest_sequence,
                latest_sequence: log.latest_sequence,
                retention_days: i64::try_from(log.retention_days).unwrap_or(i64::MAX),
            }),
        }))
    }
}

/// An event encoded exactly as `StreamEvents` sends it (a `tenancy.v1.Event`
/// message), for consumers that read it elsewhere (the NATS relay).
pub fn encode_event(event: &crate::domain::event::Event) -> Vec<u8> {
    use prost::Message as _;
    pb::Event::from(event).encode_to_vec()
}
