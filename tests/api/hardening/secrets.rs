//! Secrets at rest: a request fingerprint never holds a password, a request id belongs
//! to the API key that used it, and the SQLite file is readable by its owner only.

use hmac::{Hmac, Mac as _};
use prost::Message as _;
use sha2::Sha256;
use tenancy::app::api_keys::issue_key;
use tonic::Code;

use super::rows;
use crate::{
    helpers::{Backend, GOOD_PASSWORD, error_reason, spawn_app, unique_email},
    users::{create_request, new_user},
};

const OTHER_PASSWORD: &str = "another good passphrase 77";

fn hmac_hex(secret: &[u8], method: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(method.as_bytes());
    mac.update(&[0]);
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn a_fingerprint_does_not_depend_on_the_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("fingerprint");
    let request_id = uuid::Uuid::new_v4().to_string();
    let first = app
        .users
        .clone()
        .create_user(create_request(new_user(&email), GOOD_PASSWORD, &request_id))
        .await
        .expect("create")
        .into_inner()
        .user
        .expect("user");

    let stored = rows(&app, "SELECT fingerprint FROM request_ids").await;
    assert_eq!(stored.len(), 1);
    let fingerprint: String = stored[0].try_get("", "fingerprint").expect("fingerprint");
    let secret: String = rows(
        &app,
        "SELECT value FROM settings WHERE name = 'server_secret'",
    )
    .await[0]
        .try_get("", "value")
        .expect("secret");
    let secret = hex::decode(secret).expect("hex");

    // What someone holding a copy of the database would try: the fingerprint of the
    // body with a guessed password. It must not match, whatever the guess.
    let with_password = create_request(new_user(&email), GOOD_PASSWORD, "").encode_to_vec();
    assert_ne!(fingerprint, hmac_hex(&secret, "CreateUser", &with_password));
    let without = create_request(new_user(&email), "", "").encode_to_vec();
    assert_eq!(fingerprint, hmac_hex(&secret, "CreateUser", &without));

    // So a retry that differs only in its password replays the first result.
    let retry = app
        .users
        .clone()
        .create_user(create_request(
            new_user(&email),
            OTHER_PASSWORD,
            &request_id,
        ))
        .await
        .expect("the retry replays")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(retry.uuid, first.uuid);
    assert_eq!(
        rows(&app, "SELECT fingerprint FROM request_ids")
            .await
            .len(),
        1
    );
}

async fn a_request_id_belongs_to_the_key_that_used_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let other_key = issue_key(&app.store, "another service", &["users.write".into()])
        .await
        .expect("a second key")
        .secret;
    let mut other = app.users_with_key(Some(&other_key));
    let request_id = uuid::Uuid::new_v4().to_string();
    let email = unique_email("first");
    let first = app
        .users
        .clone()
        .create_user(create_request(new_user(&email), "", &request_id))
        .await
        .expect("create")
        .into_inner()
        .user
        .expect("user");

    // The same id and body from another key is a new request: no replay of the first
    // user (the email is taken, so it is refused as any create would be).
    let status = other
        .create_user(create_request(new_user(&email), "", &request_id))
        .await
        .expect_err("not a replay");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert_eq!(error_reason(&status).as_deref(), Some("EMAIL_TAKEN"));

    // The same id with another body is not "already used" for the other key.
    let second = other
        .create_user(create_request(
            new_user(&unique_email("second")),
            "",
            &request_id,
        ))
        .await
        .expect("another key's request id is its own")
        .into_inner()
        .user
        .expect("user");
    assert_ne!(second.uuid, first.uuid);

    // Each key still replays its own first result.
    let replay = app
        .users
        .clone()
        .create_user(create_request(new_user(&email), "", &request_id))
        .await
        .expect("replay")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(replay.uuid, first.uuid);
    let status = app
        .users
        .clone()
        .create_user(create_request(
            new_user(&unique_email("third")),
            "",
            &request_id,
        ))
        .await
        .expect_err("a reused id with another body");
    assert_eq!(status.code(), Code::InvalidArgument);
}

async fn the_sqlite_file_and_its_directory_are_private(backend: Backend) {
    use std::os::unix::fs::PermissionsExt as _;
    if !matches!(backend, Backend::Sqlite) {
        // PostgreSQL keeps its files itself.
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let data = dir.join("data");
    let mut database = backend.fresh_database().await;
    database.url = format!("sqlite://{}/tenancy.db?mode=rwc", data.display());
    let serve = crate::helpers::test_serve_args();
    let app = crate::helpers::spawn_app_on(database, serve).await;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700, "the directory");
    assert_eq!(mode(&data.join("tenancy.db")), 0o600, "the database file");
    let _ = app.stop().await;
}

crate::on_both_backends!(
    a_fingerprint_does_not_depend_on_the_password,
    a_request_id_belongs_to_the_key_that_used_it,
    the_sqlite_file_and_its_directory_are_private,
);
