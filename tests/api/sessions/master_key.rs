//! The master key that seals the signing keys (SPEC §11): a wrong one stops the start
//! before any token is issued and changes no key, PostgreSQL without one does not start,
//! the embedded default makes a private file once and reuses it; and
//! `tenancy signing-keys list|rotate`, which refuse a wrong master key too.

use std::{fs::File, os::unix::fs::PermissionsExt as _, path::Path, process::Stdio};

use chrono::TimeDelta;
use tenancy::{
    signing::{GENERATED_FILE_NAME, MasterKey, RotationPlan, SigningKeyRecord},
    store::Store,
};

use super::{
    jwks, jwks_through, kid_of, master_key, sign_in, sign_in_through, user_with_password,
    user_with_password_through, verify_now,
};
use crate::helpers::{
    ADMIN_KEY, Backend, GOOD_PASSWORD, MASTER_KEY, eventually, spawn_app_on, spawn_app_with,
    test_serve_args,
};
use crate::serve_child::{ServeChild, lines, run_command, run_command_with};

/// Another valid master key (base64 of 32 bytes).
const OTHER_MASTER_KEY: &str = "b3RoZXItbWFzdGVyLWtleS0wMTIzNDU2Nzg5YWJjZGU=";

/// What a start or a command says when the master key does not open the stored keys.
const NOT_OPENED: &str = "the master key does not open the signing keys stored in this database";

fn other_master_key() -> MasterKey {
    MasterKey::from_base64(OTHER_MASTER_KEY, "the other master key").expect("a master key")
}

async fn records(store: &Store) -> Vec<SigningKeyRecord> {
    store.signing_key_records().await.expect("signing keys")
}

/// `tenancy serve` on `database_url` with `env`, expected to stop by itself: its output.
async fn failed_start(database_url: &str, env: &[(&str, &str)]) -> (String, String) {
    let output = run_command_with(database_url, &["serve", "--listen", "127.0.0.1:0"], env).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(!output.status.success(), "it started: {stderr}");
    assert!(!stderr.contains("serving gRPC"), "it served: {stderr}");
    (stdout, stderr)
}

async fn a_wrong_master_key_stops_the_start_and_changes_no_key(backend: Backend) {
    let database = backend.fresh_database().await;
    let store = tenancy::startup::prepare_store(&database, Some(ADMIN_KEY))
        .await
        .expect("migrate");
    // A key that has signed for 31 days, written with past instants: a start must
    // rotate it, and with the wrong master key must not.
    let long_ago = store.database_clock().await.expect("clock") - TimeDelta::days(31);
    store
        .rotate_signing_keys(|_| {
            let plan = RotationPlan {
                add_key_signing_from: Some(long_ago),
                ..RotationPlan::default()
            };
            let key = plan.new_key(&master_key(), long_ago);
            (plan, key)
        })
        .await
        .expect("an old key");
    let before = records(&store).await;

    let (_, stderr) = failed_start(
        &database.url,
        &[
            ("TENANCY_MASTER_KEY", OTHER_MASTER_KEY),
            ("TENANCY_ADMIN_KEY", ADMIN_KEY),
        ],
    )
    .await;

    assert!(stderr.contains(NOT_OPENED), "{stderr}");
    for fingerprint in [master_key().fingerprint(), other_master_key().fingerprint()] {
        assert!(stderr.contains(&fingerprint.to_string()), "{stderr}");
    }
    assert!(
        !stderr.contains(OTHER_MASTER_KEY),
        "the key itself is never shown"
    );
    assert_eq!(
        records(&store).await,
        before,
        "no key added, retired or dropped"
    );
    // The right master key still opens them (and rotates the old key).
    let app = spawn_app_on(database, test_serve_args()).await;
    let user = user_with_password(&app, "right").await;
    let token = sign_in(&app, &user.email, "").await.expect("sign in");
    assert!(verify_now(&jwks(&app).await, &token.access_token).is_ok());
    assert_eq!(
        records(&app.store).await.len(),
        2,
        "a successor of the old key"
    );
}

async fn postgres_without_a_master_key_does_not_start(backend: Backend) {
    if matches!(backend, Backend::Sqlite) {
        return; // The embedded default makes a master key (see below).
    }
    let database = backend.fresh_database().await;
    let (stdout, stderr) = failed_start(&database.url, &[]).await;

    assert!(stderr.contains("TENANCY_MASTER_KEY"), "{stderr}");
    // Refused before the database is touched: no first admin key made and printed.
    assert!(!stdout.contains("tny_"), "{stdout}");
    let store = Store::connect(&database).await.expect("connect");
    assert!(
        tenancy::app::api_keys::list_keys(&store)
            .await
            .expect("keys")
            .is_empty()
    );
    assert!(records(&store).await.is_empty());
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `tenancy serve` with no master key, its log (at info) in `log`.
async fn start_without_master_key(database_url: &str, log: &Path) -> ServeChild {
    let file = File::create(log).expect("a log file");
    ServeChild::start(database_url, |command| {
        command
            .env_remove("TENANCY_MASTER_KEY")
            .env("RUST_LOG", "info")
            .stderr(Stdio::from(file));
    })
    .await
}

async fn on_sqlite_without_a_master_key_a_private_file_is_made_once_and_reused(backend: Backend) {
    if !matches!(backend, Backend::Sqlite) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let url = format!("sqlite://{}/tenancy.db?mode=rwc", data.display());
    let key_file = data.join(GENERATED_FILE_NAME);
    let (first_log, second_log) = (dir.path().join("first.log"), dir.path().join("second.log"));

    let first = start_without_master_key(&url, &first_log).await;
    let made = std::fs::read_to_string(&key_file).expect("the key file");
    assert_eq!(mode(&key_file), 0o600, "the key file");
    assert_eq!(mode(&data), 0o700, "its directory");
    let user = user_with_password_through(&first.users, "generated").await;
    let token = sign_in_through(&first.sessions, &user.email, GOOD_PASSWORD, "")
        .await
        .expect("sign in")
        .access_token;
    assert!(first.terminate().await.success());
    let second = start_without_master_key(&url, &second_log).await;
    let published = jwks_through(&second.sessions).await;
    let again = sign_in_through(&second.sessions, &user.email, GOOD_PASSWORD, "")
        .await
        .expect("sign in again")
        .access_token;
    assert!(second.terminate().await.success());

    assert_eq!(
        std::fs::read_to_string(&key_file).expect("the key file"),
        made,
        "reused, not made again"
    );
    let key_text = made.trim();
    assert_eq!(key_text.len(), 44, "base64 of 32 bytes");
    for log in [&first_log, &second_log] {
        let log = std::fs::read_to_string(log).expect("the log");
        assert!(log.contains(&key_file.display().to_string()), "{log}");
        assert!(!log.contains(key_text), "the key is never logged");
    }
    assert!(
        verify_now(&published, &token).is_ok(),
        "a token of the first start verifies"
    );
    assert_eq!(kid_of(&again), kid_of(&token), "the same key signs");
}

/// The data lines (not the header) of `signing-keys list` that name `kid`.
fn listed<'a>(listing: &'a [String], kid: &str) -> Vec<&'a String> {
    listing
        .iter()
        .filter(|line| line.starts_with(kid))
        .collect()
}

async fn the_signing_keys_command_lists_and_rotates_and_refuses_a_wrong_master_key(
    backend: Backend,
) {
    let on_postgres = matches!(backend, Backend::Postgres(_));
    let app = spawn_app_with(backend, |serve| serve.signing_key_refresh_seconds = 1).await;
    let url = app.database.url.clone();
    let right = [("TENANCY_MASTER_KEY", MASTER_KEY)];
    let user = user_with_password(&app, "cli").await;
    let signing = kid_of(
        &sign_in(&app, &user.email, "")
            .await
            .expect("sign in")
            .access_token,
    );

    let list = run_command_with(&url, &["signing-keys", "list"], &right).await;
    assert!(list.status.success(), "{list:?}");
    let listing = lines(&list.stdout);
    assert_eq!(listing.len(), 2, "a header and the one key: {listing:?}");
    assert!(
        listed(&listing, &signing)[0].contains(" signing "),
        "{listing:?}"
    );

    let rotate = run_command_with(&url, &["signing-keys", "rotate"], &right).await;
    assert!(rotate.status.success(), "{rotate:?}");
    let said = lines(&rotate.stdout).join("\n");
    let added = records(&app.store)
        .await
        .into_iter()
        .find(|record| record.kid != signing)
        .expect("a second key");
    assert!(said.contains(&added.kid), "{said}");
    let relisted = lines(
        &run_command_with(&url, &["signing-keys", "list"], &right)
            .await
            .stdout,
    );
    assert!(
        listed(&relisted, &signing)[0].contains(" signing "),
        "{relisted:?}"
    );
    assert!(
        listed(&relisted, &added.kid)[0].contains(" pending "),
        "{relisted:?}"
    );
    assert_eq!(
        added.schedule.signs_from - added.schedule.created_at,
        TimeDelta::minutes(5),
        "published an access-token lifetime before it signs"
    );
    eventually(std::time::Duration::from_secs(10), || async {
        jwks(&app).await.keys.iter().any(|key| key.kid == added.kid)
    })
    .await;
    let token = sign_in(&app, &user.email, "").await.expect("sign in");
    assert_eq!(
        kid_of(&token.access_token),
        signing,
        "the old key still signs"
    );
    let twice = run_command_with(&url, &["signing-keys", "rotate"], &right).await;
    assert!(twice.status.success(), "{twice:?}");
    let before = records(&app.store).await;
    assert_eq!(before.len(), 2, "one successor pending at a time");

    let wrong = [("TENANCY_MASTER_KEY", OTHER_MASTER_KEY)];
    for command in ["list", "rotate"] {
        let refused = run_command_with(&url, &["signing-keys", command], &wrong).await;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{command}: {refused:?}");
        assert!(stderr.contains(NOT_OPENED), "{command}: {stderr}");
        assert!(!String::from_utf8_lossy(&refused.stdout).contains(&signing));
    }
    if on_postgres {
        let no_key = run_command(&url, &["signing-keys", "list"]).await;
        let stderr = String::from_utf8_lossy(&no_key.stderr);
        assert!(!no_key.status.success(), "{stderr}");
        assert!(stderr.contains("TENANCY_MASTER_KEY"), "{stderr}");
    }
    assert_eq!(records(&app.store).await, before, "nothing changed");
}

crate::on_both_backends!(
    a_wrong_master_key_stops_the_start_and_changes_no_key,
    postgres_without_a_master_key_does_not_start,
    on_sqlite_without_a_master_key_a_private_file_is_made_once_and_reused,
    the_signing_keys_command_lists_and_rotates_and_refuses_a_wrong_master_key,
);
