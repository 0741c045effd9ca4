//! Foundation tests (issue 2): API keys, health, reflection, the database going away and
//! coming back, graceful shutdown, first start and `tenancy keys`, the event log, TLS.

mod binary;
mod cache_bytes;
pub mod database;
mod event_limits;
mod events;
mod frozen_instance;
mod keys;
pub mod metrics;
mod point_reads;
mod probes;
mod readme;
mod restart;
mod retention_clock;
mod sequencer;
mod serial_log;
mod startup;
pub mod tls;
mod traces;

use tenancy_client::pb;

use crate::helpers::{Svc, TestApp};
use tenancy_client::pb::{
    event_service_client::EventServiceClient, user_service_client::UserServiceClient,
};

/// A valid user to create.
fn new_user(email: &str) -> pb::User {
    pb::User {
        email: email.into(),
        first_name: "Ana".into(),
        last_name: "Silva".into(),
        ..Default::default()
    }
}

fn create_request(email: &str) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        user: Some(new_user(email)),
        password: String::new(),
        request_id: String::new(),
    }
}

fn get_by_email(email: &str) -> pb::GetUserRequest {
    pb::GetUserRequest {
        lookup: Some(pb::get_user_request::Lookup::Email(email.into())),
    }
}

/// Creates a user with the admin key and returns it.
async fn create_user(app: &TestApp, email: &str) -> pb::User {
    create_user_with(&mut app.users.clone(), email).await
}

async fn create_user_with(users: &mut UserServiceClient<Svc>, email: &str) -> pb::User {
    users
        .create_user(create_request(email))
        .await
        .unwrap_or_else(|status| panic!("create {email}: {status:?}"))
        .into_inner()
        .user
        .expect("a user")
}

/// The log's bounds as `GetEventLog` answers them through `events`.
async fn event_log_through(events: &EventServiceClient<Svc>) -> pb::EventLog {
    events
        .clone()
        .get_event_log(pb::GetEventLogRequest {})
        .await
        .expect("GetEventLog")
        .into_inner()
        .event_log
        .expect("an event log")
}
