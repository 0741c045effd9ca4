//! Starting up: processes that start together on a new database (two instances, or
//! `tenancy keys` beside a starting server) migrate it once and all come up.

use std::time::Duration;

use sea_orm::{ConnectionTrait as _, Database};
use tenancy::{
    app::api_keys::list_keys,
    startup::prepare_store,
    store::{DatabaseSettings, Store},
};

use crate::helpers::{ADMIN_KEY, Backend};

/// A database nothing has touched: no file yet, or an empty PostgreSQL database.
async fn untouched_database(backend: &Backend) -> DatabaseSettings {
    let url = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir").keep();
            format!("sqlite://{}/new.db?mode=rwc", dir.display())
        }
        Backend::Postgres(admin_url) => {
            // Named like the harness's databases, so its clean-up drops it next run.
            let name = format!(
                "tenancy_test_new_{}",
                ulid::Ulid::new().to_string().to_lowercase()
            );
            let admin = Database::connect(admin_url).await.expect("connect");
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create database");
            let _ = admin.close().await;
            let (base, _) = admin_url.rsplit_once('/').expect("a database path");
            format!("{base}/{name}")
        }
    };
    DatabaseSettings {
        url,
        max_connections: 4,
        acquire_timeout: Duration::from_secs(3),
        limits: Default::default(),
    }
}

async fn instances_starting_together_on_a_new_database_all_come_up(backend: Backend) {
    let database = untouched_database(&backend).await;

    let starts: Vec<_> = (0..3)
        .map(|_| {
            let database = database.clone();
            tokio::spawn(async move {
                prepare_store(&database, Some(ADMIN_KEY))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut stores: Vec<Store> = Vec::new();
    for start in starts {
        stores.push(start.await.expect("task").expect("start"));
    }

    let keys = list_keys(&stores[0]).await.expect("keys");
    assert_eq!(keys.len(), 1, "the admin key installed once: {keys:?}");
    assert_eq!(stores[1].event_bounds().await.expect("migrated"), (0, 0));
    for store in stores {
        store.close().await;
    }
}

crate::on_both_backends!(instances_starting_together_on_a_new_database_all_come_up);
