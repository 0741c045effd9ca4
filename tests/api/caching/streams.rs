//! Revocation ends streams: `StreamEvents` checks its key when the call starts, so the
//! key watch ends an open stream of a key revoked since, on every instance, within the
//! key cache's bound.

use std::time::{Duration, Instant};

use tenancy::app::api_keys::{issue_key, revoke_key};
use tenancy_client::pb::{self, StreamEventsResponse};
use tonic::{Code, Streaming};

use super::{TestApps, keys::keys_command};
use crate::helpers::{Backend, TestApp, test_serve_args, unique_email};

/// What the issue promises: the bound (1 s) with room for a loaded machine.
const ENDS_WITHIN: Duration = Duration::from_secs(2);

async fn open_stream(app: &TestApp, key: &str) -> Streaming<StreamEventsResponse> {
    let mut stream = app
        .events_with_key(Some(key))
        .stream_events(pb::StreamEventsRequest { after_sequence: 0 })
        .await
        .unwrap_or_else(|status| panic!("open a stream: {status:?}"))
        .into_inner();
    // The stream is live: an event written now reaches it.
    let email = unique_email("streamed");
    crate::users::create(app, &email, "correct horse battery").await;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("an event within 5 s")
            .unwrap_or_else(|status| panic!("the stream failed before the revocation: {status:?}"))
            .expect("the stream is open");
        if let Some(pb::event::Resource::User(user)) = message.event.and_then(|e| e.resource)
            && user.email == email
        {
            return stream;
        }
    }
}

/// Reads `stream` until it ends; asserts it ends with UNAUTHENTICATED within
/// `ENDS_WITHIN` of `revoked`.
async fn assert_ended_unauthenticated(
    what: &str,
    stream: &mut Streaming<StreamEventsResponse>,
    revoked: Instant,
) {
    let deadline = revoked + ENDS_WITHIN;
    loop {
        let next = tokio::time::timeout_at(deadline.into(), stream.message()).await;
        match next {
            Err(_) => panic!("{what}: still open {ENDS_WITHIN:?} after the revocation"),
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => panic!("{what}: ended without a status"),
            Ok(Err(status)) => {
                assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
                eprintln!("{what}: ended {:?} after the revocation", revoked.elapsed());
                return;
            }
        }
    }
}

async fn a_stream_of_a_key_revoked_by_the_cli_ends_on_every_instance(backend: Backend) {
    let TestApps { a, b } = TestApps::start(backend, test_serve_args()).await;
    let url = a.database.url.clone();
    let created = keys_command(
        &url,
        &["create", "--name", "streamer", "--scope", "events.read"],
    )
    .await;
    let key = created.last().cloned().unwrap_or_default();
    let id = created
        .iter()
        .find_map(|line| line.strip_prefix("created key "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the key's id is printed: {created:?}"))
        .to_string();
    let mut on_a = open_stream(&a, &key).await;
    let mut on_b = open_stream(&b, &key).await;

    keys_command(&url, &["revoke", &id]).await;
    let revoked = Instant::now();

    assert_ended_unauthenticated("A's stream", &mut on_a, revoked).await;
    assert_ended_unauthenticated("B's stream", &mut on_b, revoked).await;
}

async fn a_stream_of_a_key_revoked_by_this_process_ends_here_and_elsewhere(backend: Backend) {
    let TestApps { a, b } = TestApps::start(backend, test_serve_args()).await;
    let issued = issue_key(&a.store, "streamer", &["events.read".to_string()])
        .await
        .expect("issue a key");
    let mut on_a = open_stream(&a, &issued.secret).await;
    let mut on_b = open_stream(&b, &issued.secret).await;
    // Another key's stream is not ended by this revocation.
    let other = a.key_with(&["events.read"]).await;
    let mut bystander = open_stream(&b, &other).await;

    revoke_key(&a.store, &issued.key.id.to_string())
        .await
        .expect("revoke");
    let revoked = Instant::now();

    assert_ended_unauthenticated("A's stream", &mut on_a, revoked).await;
    assert_ended_unauthenticated("B's stream", &mut on_b, revoked).await;
    let email = unique_email("after");
    crate::users::create(&a, &email, "correct horse battery").await;
    let still = tokio::time::timeout(Duration::from_secs(5), bystander.message()).await;
    assert!(
        matches!(still, Ok(Ok(Some(_)))),
        "the other key's stream keeps receiving: {still:?}"
    );
}

crate::on_both_backends!(
    a_stream_of_a_key_revoked_by_the_cli_ends_on_every_instance,
    a_stream_of_a_key_revoked_by_this_process_ends_here_and_elsewhere,
);
