//! Retention by the database's clock (issue 26, SPEC §8): "pruning decides by the
//! database's clock and sequence, never the application's clock". An instance whose
//! clock runs 40 days ahead (a `tenancy serve` child under libfaketime) prunes on
//! start and must keep every event within retention. Skipped with a notice where
//! libfaketime is missing, unless `TENANCY_REQUIRE_POSTGRES=1` (as CI sets).

use std::{
    path::PathBuf,
    sync::OnceLock,
    time::{Duration, SystemTime},
};

use sea_orm::{ConnectionTrait as _, Database, DbBackend, Statement};

use super::{create_user_with, event_log_through};
use crate::{
    helpers::{Backend, eventually, spawn_app, unique_email},
    serve_child::ServeChild,
};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Debian's libfaketime, as `dpkg -L libfaketime` lists it; `None` (after a notice)
/// where it is not installed, or a panic when `TENANCY_REQUIRE_POSTGRES=1`.
fn libfaketime() -> Option<PathBuf> {
    let library = std::process::Command::new("dpkg")
        .args(["-L", "libfaketime"])
        .output()
        .ok()
        .filter(|listed| listed.status.success())
        .and_then(|listed| {
            String::from_utf8_lossy(&listed.stdout)
                .lines()
                .find(|path| path.ends_with("/libfaketime.so.1"))
                .map(PathBuf::from)
        })
        .filter(|path| path.exists());
    if library.is_none() {
        if std::env::var("TENANCY_REQUIRE_POSTGRES").as_deref() == Ok("1") {
            panic!(
                "libfaketime is required (TENANCY_REQUIRE_POSTGRES=1) but `dpkg -L libfaketime` \
                 lists no libfaketime.so.1 (apt-get install faketime)"
            );
        }
        static NOTICE: OnceLock<()> = OnceLock::new();
        NOTICE.get_or_init(|| {
            eprintln!(
                "NOTICE: skipping the retention test under a skewed clock: libfaketime is \
                 not installed (apt-get install faketime)"
            )
        });
    }
    library
}

/// PostgreSQL: five events, the first two 31 days old by the database's clock. An
/// instance started with its clock 40 days ahead prunes those two on start and keeps
/// the three within the 30 days' retention (by its own clock all five are past it).
///
/// Not on SQLite: there the database's clock is the clock of the process that runs
/// it, so the skewed process is the database's clock, and pruning by it is the rule
/// followed. Processes sharing one SQLite file share one host and its clock; a
/// process with a clock of its own cannot happen there outside a test.
async fn an_instance_with_its_clock_40_days_ahead_prunes_nothing_within_retention(
    backend: Backend,
) {
    if matches!(backend, Backend::Sqlite) {
        return;
    }
    let Some(libfaketime) = libfaketime() else {
        return;
    };
    let writer = spawn_app(backend).await;
    for i in 0..5 {
        create_user_with(
            &mut writer.users.clone(),
            &unique_email(&format!("kept{i}")),
        )
        .await;
    }
    writer.sequenced().await;
    let db = Database::connect(&writer.database.url)
        .await
        .expect("connect");
    db.execute_raw(Statement::from_string(
        DbBackend::Postgres,
        format!(
            "UPDATE events SET time = time - {} WHERE sequence <= 2",
            (31 * DAY).as_micros()
        ),
    ))
    .await
    .expect("age the first two events");

    let ahead = ServeChild::start(&writer.database.url, |command| {
        command
            .env("LD_PRELOAD", &libfaketime)
            .env("FAKETIME", "+40d")
            // tokio's timers run on the monotonic clock.
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("TENANCY_EVENT_RETENTION_DAYS", "30");
    })
    .await;
    eventually(Duration::from_secs(30), || async {
        writer.store.event_bounds().await.expect("bounds").0 >= 2
    })
    .await;
    let log = event_log_through(&ahead.events).await;
    let kept = writer.store.events_after(0, 100).await.expect("the events");

    assert_eq!(
        (log.oldest_sequence, log.latest_sequence),
        (3, 5),
        "only what is past retention by the database's clock is pruned"
    );
    assert_eq!(
        kept.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    // The instance's clock does run 40 days ahead: a user it creates says so.
    let created = create_user_with(&mut ahead.users.clone(), &unique_email("ahead"))
        .await
        .create_time
        .expect("a create time");
    let ahead_by = Duration::from_secs(created.seconds as u64)
        .saturating_sub(SystemTime::UNIX_EPOCH.elapsed().expect("after 1970"));
    assert!(
        ahead_by > 39 * DAY,
        "the child's clock is ahead by {ahead_by:?}"
    );
}

crate::on_both_backends!(an_instance_with_its_clock_40_days_ahead_prunes_nothing_within_retention);
