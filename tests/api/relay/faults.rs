//! The relay under faults between it and the broker, and in the stream itself: the
//! stream must still end equal to the log (message id = sequence, in order, each
//! once, no gap). Every relay here runs with a 1 s duplicate window, outlived where it
//! matters, so the broker's deduplication cannot hide a repeated or late publish.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use futures::future::join_all;
use sea_orm::{ConnectionTrait as _, Database, Statement};
use tenancy::config::ServeArgs;

use super::{
    Nats, STREAM, assert_stream_equals_log, assert_stream_holds_log_from, log_head, proxy::Proxy,
    relay_args_to,
};
use crate::{
    helpers::{Backend, TestApp, eventually, spawn_app_on, unique_email},
    users::create,
};

const PAST_THE_DUPLICATE_WINDOW: Duration = Duration::from_millis(1_500);

fn relaying_to(url: String) -> ServeArgs {
    let mut serve = relay_args_to(url);
    serve.events_nats_duplicate_window = 1;
    serve
}

/// Creates users through `apps`, eight at a time, until `stop` turns true.
async fn write_until(apps: &[&TestApp], stop: &AtomicBool) {
    join_all((0..8).map(|writer| async move {
        let app = apps[writer % apps.len()];
        while !stop.load(Ordering::Relaxed) {
            create(app, &unique_email("fault"), "").await;
        }
    }))
    .await;
}

async fn write(app: &TestApp, count: usize) {
    for _ in 0..count {
        create(app, &unique_email("relayed"), "").await;
    }
}

/// An instance on a fresh database whose relay has published 10 events.
async fn relayed_ten_events(backend: Backend, nats: &Nats) -> TestApp {
    let app = spawn_app_on(backend.fresh_database().await, relaying_to(nats.url())).await;
    write(&app, 10).await;
    assert_stream_equals_log(nats, &app, Duration::from_secs(10)).await;
    app
}

/// Another instance on `app`'s database, once `app` stopped: a relay that starts over.
async fn restart(app: TestApp, nats: &Nats) -> TestApp {
    let database = app.database.clone();
    app.stop().await.expect("stopped");
    spawn_app_on(database, relaying_to(nats.url())).await
}

/// Five times under a writer load: the relay's connection is cut while at least 100
/// publishes are in flight (the broker took them, their acks never came back, and
/// more were still on their way).
async fn five_cuts_with_a_hundred_publishes_in_flight_lose_and_repeat_nothing(backend: Backend) {
    let Some(nats) = Nats::start().await else {
        return;
    };
    let proxy = Proxy::start(nats.port).await;
    let app = spawn_app_on(backend.fresh_database().await, relaying_to(proxy.url())).await;
    write(&app, 1).await;
    assert_stream_equals_log(&nats, &app, Duration::from_secs(10)).await;
    let stop = AtomicBool::new(false);
    let faults = async {
        for _ in 0..5 {
            // The relay's batch waits in the black hole while the log runs ahead, so
            // its next batch, on a new connection, holds at least 150 events.
            proxy.black_hole();
            let relayed = nats.state().await.expect("the stream").last_sequence as i64;
            eventually(Duration::from_secs(20), || async {
                log_head(&app).await >= relayed + 150
            })
            .await;
            let cuts = proxy.cuts();
            proxy.arm_cut_after(100);
            proxy.cut();
            proxy.restore();
            eventually(Duration::from_secs(20), || async {
                proxy.cuts() >= cuts + 2
            })
            .await;
        }
        stop.store(true, Ordering::Relaxed);
    };
    let writers = [&app];
    tokio::join!(write_until(&writers, &stop), faults);
    assert_stream_equals_log(&nats, &app, Duration::from_secs(30)).await;
}

/// The first instance's link to the broker is black-holed with a batch in it past
/// its lease, while writes go on; a second instance takes over and relays. When the
/// link comes back, the held publishes reach the broker, after the duplicate window:
/// none of them may land.
async fn a_relay_that_lost_its_lease_with_publishes_queued_never_publishes_them(backend: Backend) {
    let Some(nats) = Nats::start().await else {
        return;
    };
    let proxy = Proxy::start(nats.port).await;
    let database = backend.fresh_database().await;
    let first = spawn_app_on(database.clone(), relaying_to(proxy.url())).await;
    write(&first, 1).await;
    assert_stream_equals_log(&nats, &first, Duration::from_secs(10)).await;
    let stop = AtomicBool::new(false);
    let fault = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The acks of what the broker already took come back, so the relay's next
        // batch is the one the black hole holds.
        proxy.black_hole_towards_server();
        let relayed = nats.state().await.expect("the stream").last_sequence;
        // The first instance holds the lease: its batch is in the black hole.
        eventually(Duration::from_secs(10), || async {
            proxy.held_publishes() > 0
        })
        .await;
        let second = spawn_app_on(database, relaying_to(nats.url())).await;
        // Only the second instance can move the stream on.
        eventually(Duration::from_secs(15), || async {
            nats.state().await.expect("the stream").last_sequence > relayed + proxy.held_publishes()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        second
    };
    let writers = [&first];
    let (_, second) = tokio::join!(write_until(&writers, &stop), fault);
    assert_stream_equals_log(&nats, &second, Duration::from_secs(20)).await;
    let held = proxy.held_publishes();
    tokio::time::sleep(PAST_THE_DUPLICATE_WINDOW).await;
    proxy.restore();
    eventually(Duration::from_secs(10), || async {
        proxy.held_bytes() == 0
    })
    .await;
    // Time for the broker to take or refuse what it was just handed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    eprintln!("{held} publishes of the relay that lost its lease reached the broker late");
    assert_stream_equals_log(&nats, &second, Duration::from_secs(10)).await;
}

/// Purged while the relay runs, the stream keeps its last sequence and takes the later
/// events after it, also from a relay that starts over and finds its newest message
/// gone.
async fn a_relay_resumes_after_its_stream_was_purged(backend: Backend) {
    let Some(nats) = Nats::start().await else {
        return;
    };
    let app = relayed_ten_events(backend, &nats).await;
    nats.stream().await.purge().await.expect("purge");
    write(&app, 5).await;
    assert_stream_holds_log_from(&nats, &app, 11, Duration::from_secs(10)).await;
    nats.stream().await.purge().await.expect("purge");
    let app = restart(app, &nats).await;
    write(&app, 5).await;
    assert_stream_holds_log_from(&nats, &app, 16, Duration::from_secs(10)).await;
}

/// The relay died after the broker acknowledged events 3 to 10 but before it stored
/// that, and the stream was purged meanwhile: the stored position is behind and the
/// stream's newest message is gone. Resuming at the stored position would publish
/// 3 to 10 again (the duplicate window is long past).
async fn a_relay_behind_a_purged_stream_publishes_nothing_twice(backend: Backend) {
    let Some(nats) = Nats::start().await else {
        return;
    };
    let app = relayed_ten_events(backend, &nats).await;
    let database = app.database.clone();
    app.stop().await.expect("stopped");
    nats.stream().await.purge().await.expect("purge");
    let db = Database::connect(&database.url).await.expect("connect");
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        "UPDATE relay_state SET last_sequence = 2, stream_sequence = 2, lease_until = 0"
            .to_string(),
    ))
    .await
    .expect("rewind");
    tokio::time::sleep(PAST_THE_DUPLICATE_WINDOW).await;
    let app = spawn_app_on(database, relaying_to(nats.url())).await;
    write(&app, 1).await;
    assert_stream_holds_log_from(&nats, &app, 11, Duration::from_secs(10)).await;
}

/// A stream whose messages expire after 3 s (and so a 1 s duplicate window): once all
/// expired, a relay that starts over finds its newest message gone and resumes.
async fn a_relay_resumes_after_its_streams_messages_expired(backend: Backend) {
    let Some(nats) = Nats::start().await else {
        return;
    };
    nats.jetstream()
        .await
        .create_stream(async_nats::jetstream::stream::Config {
            name: STREAM.to_string(),
            subjects: vec!["tenancy.events.>".to_string()],
            max_age: Duration::from_secs(3),
            duplicate_window: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .expect("a stream with a short max_age");
    let app = relayed_ten_events(backend, &nats).await;
    eventually(Duration::from_secs(10), || async {
        nats.state().await.is_some_and(|state| state.messages == 0)
    })
    .await;
    let app = restart(app, &nats).await;
    write(&app, 10).await;
    assert_stream_holds_log_from(&nats, &app, 11, Duration::from_secs(10)).await;
}

crate::on_both_backends!(
    five_cuts_with_a_hundred_publishes_in_flight_lose_and_repeat_nothing,
    a_relay_that_lost_its_lease_with_publishes_queued_never_publishes_them,
    a_relay_resumes_after_its_stream_was_purged,
    a_relay_behind_a_purged_stream_publishes_nothing_twice,
    a_relay_resumes_after_its_streams_messages_expired,
);
