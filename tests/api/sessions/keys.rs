//! Signing keys as they rotate (SPEC §11): a new key is in the JWKS before it signs, a
//! retired one stays there until its last token expired, instances sharing a database
//! sign with one key and publish one JWKS, and concurrent first starts make one key.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tenancy::{
    app::sessions::{Signing, rotate_signing_keys},
    config::ServeArgs,
    signing::SigningKeyRecord,
    store::Store,
};

use super::{jwks, kid_of, master_key, refresh, sign_in, user_with_password, verified, verify_now};
use crate::helpers::{
    ADMIN_KEY, Backend, TestApp, eventually, spawn_app, spawn_app_on, spawn_app_with,
    test_serve_args,
};

/// Instances that pick up rotations within a second (`--signing-key-refresh-seconds 1`).
fn refreshing_every_second(serve: &mut ServeArgs) {
    serve.signing_key_refresh_seconds = 1;
}

/// The stored key `kid`.
async fn stored(store: &Store, kid: &str) -> SigningKeyRecord {
    store
        .signing_key_records()
        .await
        .expect("signing keys")
        .into_iter()
        .find(|record| record.kid == kid)
        .unwrap_or_else(|| panic!("key {kid} is stored"))
}

async fn published_kids(app: &TestApp) -> Vec<String> {
    jwks(app)
        .await
        .keys
        .into_iter()
        .map(|key| key.kid)
        .collect()
}

/// What one refresh answered: the JWKS fetched just before it, and its token's key.
struct Observed {
    published_before: Vec<String>,
    kid: String,
    issued_at: i64,
}

async fn a_new_key_is_published_before_it_signs(backend: Backend) {
    let app = spawn_app_with(backend, refreshing_every_second).await;
    let user = user_with_password(&app, "rotation").await;
    let signed_in = sign_in(&app, &user.email, "").await.expect("sign in");
    let old = kid_of(&signed_in.access_token);
    let mut refresh_token = signed_in.refresh_token;

    // As `tenancy signing-keys rotate` does, with a publication of seconds, not minutes.
    let publish_ahead = Duration::from_secs(4);
    let new = rotate_signing_keys(&app.store, &master_key(), publish_ahead)
        .await
        .expect("rotate")
        .expect("a successor is made");
    let signs_from = stored(&app.store, &new).await.schedule.signs_from;

    // Access tokens from the server, each with the JWKS it published just before.
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        let published_before = published_kids(&app).await;
        let answer = refresh(&app, &refresh_token, "").await.expect("refresh");
        refresh_token = answer.refresh_token;
        let claims = verified(&app, &answer.access_token).await;
        seen.push(Observed {
            published_before,
            kid: kid_of(&answer.access_token),
            issued_at: claims.iat,
        });
        if seen.last().is_some_and(|last| last.kid == new) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the new key never signed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let first_signed = seen.last().expect("a token of the new key");
    assert!(
        first_signed.published_before.contains(&new),
        "the new key signed before the JWKS listed it"
    );
    let old_signed_while_new_published = seen
        .iter()
        .filter(|seen| seen.kid == old && seen.published_before.contains(&new))
        .count();
    assert!(
        old_signed_while_new_published > 0,
        "the new key signed as soon as it was published"
    );
    for earlier in &seen[..seen.len() - 1] {
        assert_eq!(earlier.kid, old, "only the old key signs until the new one");
        assert!(
            earlier.issued_at <= signs_from.timestamp(),
            "the old key signed late"
        );
    }
    assert!(
        first_signed.issued_at >= signs_from.timestamp() - 1,
        "the new key signed at {} before its time {signs_from}",
        first_signed.issued_at
    );
}

async fn a_token_of_the_previous_key_verifies_until_it_expires(backend: Backend) {
    let first = spawn_app(backend).await;
    let user = user_with_password(&first, "retired").await;
    let token = sign_in(&first, &user.email, "")
        .await
        .expect("sign in")
        .access_token;
    let previous = kid_of(&token);
    let (database, store) = (first.database.clone(), first.store.clone());
    first.stop().await.expect("the first instance stops");

    // An operator rotates; once the successor signs (no instance ran a pass since),
    // rotates again, saying the tokens last a minute: they last five.
    let successor = rotate_signing_keys(&store, &master_key(), Duration::from_secs(1))
        .await
        .expect("rotate")
        .expect("a successor");
    let took_over = stored(&store, &successor).await.schedule.signs_from;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    rotate_signing_keys(&store, &master_key(), Duration::from_secs(60))
        .await
        .expect("rotate again")
        .expect("a third key, pending");

    let app = spawn_app_on(database, test_serve_args()).await;
    assert!(
        published_kids(&app).await.contains(&previous),
        "the retired key is still published"
    );
    let claims = verified(&app, &token).await;
    let fresh = sign_in(&app, &user.email, "").await.expect("sign in");
    assert_eq!(
        kid_of(&fresh.access_token),
        successor,
        "the successor signs"
    );
    let retired = stored(&store, &previous).await.schedule;
    assert_eq!(retired.retired_at, Some(took_over));
    let published_until = retired.published_until.expect("published until a time");
    assert!(
        published_until.timestamp() >= claims.exp,
        "published until {published_until}, the token expires at {}",
        claims.exp
    );
}

async fn two_instances_on_one_database_sign_with_one_key_and_publish_one_jwks(backend: Backend) {
    if matches!(backend, Backend::Sqlite) {
        return; // Instances share a PostgreSQL database.
    }
    let first = spawn_app_with(backend, refreshing_every_second).await;
    let mut serve = test_serve_args();
    refreshing_every_second(&mut serve);
    let second = spawn_app_on(first.database.clone(), serve).await;
    let user = user_with_password(&first, "twice").await;
    let kids = || async {
        let mut kids = Vec::new();
        for app in [&first, &second] {
            let token = sign_in(app, &user.email, "").await.expect("sign in");
            kids.push(kid_of(&token.access_token));
        }
        kids
    };

    let records = first.store.signing_key_records().await.expect("keys");
    assert_eq!(records.len(), 1, "one key for the database: {records:?}");
    assert_eq!(
        kids().await,
        [records[0].kid.clone(), records[0].kid.clone()]
    );
    let published = jwks(&first).await;
    assert_eq!(published, jwks(&second).await);
    let from_first = sign_in(&first, &user.email, "").await.expect("sign in");
    assert!(verify_now(&jwks(&second).await, &from_first.access_token).is_ok());

    let new = rotate_signing_keys(&first.store, &master_key(), Duration::from_secs(3))
        .await
        .expect("rotate")
        .expect("a successor");
    eventually(Duration::from_secs(10), || async {
        let (a, b) = (jwks(&first).await, jwks(&second).await);
        a == b && a.keys.iter().any(|key| key.kid == new)
    })
    .await;
    eventually(Duration::from_secs(15), || async {
        kids().await == [new.clone(), new.clone()]
    })
    .await;
    assert_eq!(jwks(&first).await, jwks(&second).await);
}

async fn concurrent_first_starts_make_one_key(backend: Backend) {
    const STARTS: usize = 8;
    let database = backend.fresh_database().await;
    tenancy::startup::prepare_store(&database, Some(ADMIN_KEY))
        .await
        .expect("migrate")
        .close()
        .await;
    let mut stores = Vec::new();
    for _ in 0..STARTS {
        stores.push(Store::connect(&database).await.expect("connect"));
    }
    // What each instance does on start once it has its master key, all at once.
    let together = Arc::new(tokio::sync::Barrier::new(STARTS));
    let starts: Vec<_> = stores
        .iter()
        .map(|store| {
            let (store, together) = (store.clone(), together.clone());
            tokio::spawn(async move {
                together.wait().await;
                let signing =
                    Signing::start(&store, master_key(), test_serve_args().token_settings())
                        .await?;
                Ok::<_, String>(signing.jwks(chrono::Utc::now()))
            })
        })
        .collect();
    let mut published = Vec::new();
    for start in starts {
        published.push(start.await.expect("the start ran").expect("it started"));
    }

    let records = stores[0].signing_key_records().await.expect("keys");
    assert_eq!(
        records.len(),
        1,
        "one key, not {}: {records:?}",
        records.len()
    );
    for jwks in &published {
        let kids: Vec<&str> = jwks.keys.iter().map(|key| key.kid.as_str()).collect();
        assert_eq!(kids, [records[0].kid.as_str()]);
    }
    for store in stores {
        store.close().await;
    }
    let app = spawn_app_on(database, test_serve_args()).await;
    let user = user_with_password(&app, "first").await;
    let token = sign_in(&app, &user.email, "").await.expect("sign in");
    assert_eq!(kid_of(&token.access_token), records[0].kid);
}

crate::on_both_backends!(
    a_new_key_is_published_before_it_signs,
    a_token_of_the_previous_key_verifies_until_it_expires,
    two_instances_on_one_database_sign_with_one_key_and_publish_one_jwks,
    concurrent_first_starts_make_one_key,
);
