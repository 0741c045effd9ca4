//! `spawn_app()`: a real server on `127.0.0.1:0` over a fresh database, with typed
//! clients that carry an admin key, and the store for assertions on rows.
//!
//! SQLite gets a fresh file per test. PostgreSQL (`TENANCY_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) is migrated once into a template
//! database; each test gets `CREATE DATABASE … TEMPLATE` of it. When PostgreSQL is
//! unreachable its runs are skipped with a notice, unless `TENANCY_REQUIRE_POSTGRES=1`.
#![allow(dead_code)]

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use sea_orm::{ConnectionTrait as _, Database};
use tenancy::{
    config::ServeArgs,
    store::{DatabaseSettings, Store},
};
use tenancy_client::pb::{
    account_service_client::AccountServiceClient, customer_service_client::CustomerServiceClient,
    event_service_client::EventServiceClient, session_service_client::SessionServiceClient,
    user_service_client::UserServiceClient,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{
    Request, Status,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef";
/// The master key of every test server (base64 of 32 bytes), so a second instance on
/// the same database opens the first one's signing keys.
pub const MASTER_KEY: &str = "dGVuYW5jeS10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXM=";

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// The URL of PostgreSQL's maintenance database.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL if reachable; otherwise `None` after a notice, or a panic when
    /// `TENANCY_REQUIRE_POSTGRES=1`.
    pub async fn postgres() -> Option<Backend> {
        let url = std::env::var("TENANCY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
        let reachable =
            match tokio::time::timeout(Duration::from_secs(5), Database::connect(&url)).await {
                Ok(Ok(db)) => {
                    let _ = db.close().await;
                    Ok(())
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_string()),
            };
        match reachable {
            Ok(()) => Some(Backend::Postgres(url)),
            Err(error) if std::env::var("TENANCY_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
                panic!(
                    "PostgreSQL is required (TENANCY_REQUIRE_POSTGRES=1) but {url} is unreachable: {error}"
                )
            }
            Err(error) => {
                static NOTICE: OnceLock<()> = OnceLock::new();
                NOTICE.get_or_init(|| {
                    eprintln!(
                        "NOTICE: skipping the PostgreSQL runs: {url} is unreachable ({error})"
                    );
                });
                None
            }
        }
    }

    /// A fresh, migrated database for one test.
    pub async fn fresh_database(&self) -> DatabaseSettings {
        let url = match self {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir").keep();
                format!("sqlite://{}/tenancy.db?mode=rwc", dir.display())
            }
            Backend::Postgres(admin_url) => postgres_database(admin_url).await,
        };
        DatabaseSettings {
            url,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            limits: Default::default(),
        }
    }
}

/// Runs each named `async fn name(backend: Backend)` once per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::helpers::within_time_limit(super::$name($crate::helpers::Backend::Sqlite)).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = $crate::helpers::Backend::postgres().await {
                        $crate::helpers::within_time_limit(super::$name(backend)).await
                    }
                }
            )*
        }
    };
}

/// How long one API test may run: a deadlock then fails the test instead of hanging CI.
/// `TENANCY_TEST_TIMEOUT_SECS` overrides it (a slow machine, a debugger).
pub fn test_time_limit() -> Duration {
    std::env::var("TENANCY_TEST_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(180))
}

/// Calls `check` every 10 ms until it holds; returns how long after the call it first
/// held *began*, so the answering RPC's own latency is not counted. Fails the test when
/// it has not held within `within`.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = std::time::Instant::now();
    loop {
        let probe = started.elapsed();
        if check().await {
            return probe;
        }
        assert!(
            probe < within,
            "the condition did not hold within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs one test body, failing it when it outlives `test_time_limit`.
pub async fn within_time_limit(test: impl Future<Output = ()>) {
    let limit = test_time_limit();
    if tokio::time::timeout(limit, test).await.is_err() {
        panic!("the test did not finish within {limit:?} (a deadlock?)");
    }
}

fn with_database(admin_url: &str, name: &str) -> String {
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("a database URL has a path");
    format!("{base}/{name}")
}

/// Drops the databases of earlier runs over an hour old (by the ULID in their name, so a
/// test process running beside this one keeps its own), so they do not pile up. On a
/// thread of its own, several at a time: each drop takes a checkpoint, and a few
/// thousand left by earlier runs would otherwise hold up the first tests for minutes.
fn drop_stale_databases_in_background(admin_url: String) {
    use futures::StreamExt as _;
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let Ok(admin) = Database::connect(&admin_url).await else {
                return;
            };
            let Ok(rows) = admin
                .query_all_raw(sea_orm::Statement::from_string(
                    admin.get_database_backend(),
                    "SELECT datname FROM pg_database WHERE datname LIKE 'tenancy_t%'",
                ))
                .await
            else {
                return;
            };
            let stale: Vec<String> = rows
                .into_iter()
                .filter_map(|row| row.try_get::<String>("", "datname").ok())
                .filter(|name| {
                    let created = name
                        .rsplit('_')
                        .next()
                        .and_then(|suffix| ulid::Ulid::from_string(&suffix.to_uppercase()).ok())
                        .map(|ulid| ulid.datetime());
                    created.is_none_or(|created| {
                        created.elapsed().unwrap_or_default() > Duration::from_secs(3600)
                    })
                })
                .collect();
            let connection = &admin;
            futures::stream::iter(stale)
                .for_each_concurrent(8, |name| async move {
                    let _ = connection
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                })
                .await;
            let _ = admin.close().await;
        });
    });
}

/// Creates (once per process) a migrated template database, then a copy of it.
async fn postgres_database(admin_url: &str) -> String {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let template = TEMPLATE
        .get_or_init(|| async {
            let name = format!(
                "tenancy_template_{}",
                ulid::Ulid::new().to_string().to_lowercase()
            );
            let admin = Database::connect(admin_url)
                .await
                .expect("connect to PostgreSQL");
            drop_stale_databases_in_background(admin_url.to_string());
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create template");
            let _ = admin.close().await;
            let settings = DatabaseSettings {
                url: with_database(admin_url, &name),
                max_connections: 2,
                acquire_timeout: Duration::from_secs(5),
                limits: Default::default(),
            };
            let store = Store::connect(&settings)
                .await
                .expect("connect to template");
            store.migrate().await.expect("migrate template");
            store.close().await;
            name
        })
        .await;
    let name = format!(
        "tenancy_test_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let admin = Database::connect(admin_url)
        .await
        .expect("connect to PostgreSQL");
    let mut attempts = 0;
    loop {
        match admin
            .execute_unprepared(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
            ))
            .await
        {
            Ok(_) => break,
            // Concurrent copies of one template can collide; they succeed on a retry.
            Err(error) if attempts < 20 => {
                attempts += 1;
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50 * attempts)).await;
            }
            Err(error) => panic!("create test database: {error}"),
        }
    }
    let _ = admin.close().await;
    with_database(admin_url, &name)
}

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct BearerKey(pub Option<String>);

impl Interceptor for BearerKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(key) = &self.0 {
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {key}").parse().expect("ascii key"),
            );
        }
        Ok(request)
    }
}

pub type Svc = InterceptedService<Channel, BearerKey>;

/// A running server and clients for it.
pub struct TestApp {
    pub address: SocketAddr,
    pub database: DatabaseSettings,
    pub store: Store,
    pub channel: Channel,
    pub customers: CustomerServiceClient<Svc>,
    pub accounts: AccountServiceClient<Svc>,
    pub users: UserServiceClient<Svc>,
    pub events: EventServiceClient<Svc>,
    pub sessions: SessionServiceClient<Svc>,
    pub health: HealthClient<Channel>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), String>>>,
}

/// Server settings for tests: cheap argon2 so suites stay fast, an admin key.
pub fn test_serve_args() -> ServeArgs {
    let mut serve = ServeArgs::defaults();
    serve.admin_key = Some(ADMIN_KEY.to_string());
    serve.master_key.key = Some(MASTER_KEY.to_string());
    serve.argon2_memory_kib = 256;
    serve.argon2_iterations = 1;
    serve.hash_workers = Some(2);
    serve.shutdown_grace = 5;
    serve
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let database = backend.fresh_database().await;
    let mut serve = test_serve_args();
    configure(&mut serve);
    spawn_app_on(database, serve).await
}

/// Runs `startup::run` on a loopback port; the sender stops it.
async fn start_server(
    database: DatabaseSettings,
    serve: ServeArgs,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<Result<(), String>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (shutdown, signal) = oneshot::channel::<()>();
    let server = tokio::spawn({
        let database = database.clone();
        async move {
            tenancy::startup::run(database, serve, listener, async {
                let _ = signal.await;
            })
            .await
            .map_err(|e| e.to_string())
        }
    });
    (address, shutdown, server)
}

/// Like `spawn_app_with`, but `store` is the server's own (not a second connection), so
/// `store.statements_executed()` counts every statement the server ran.
pub async fn spawn_observed_app(
    backend: Backend,
    configure: impl FnOnce(&mut ServeArgs),
) -> TestApp {
    let database = backend.fresh_database().await;
    let mut serve = test_serve_args();
    configure(&mut serve);
    spawn_observed_app_on(database, serve).await
}

/// `spawn_observed_app` on an existing database (an observed second instance).
pub async fn spawn_observed_app_on(database: DatabaseSettings, serve: ServeArgs) -> TestApp {
    let store = tenancy::startup::prepare_store(&database, serve.admin_key.as_deref())
        .await
        .expect("prepare the store");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (shutdown, signal) = oneshot::channel::<()>();
    let server = tokio::spawn({
        let store = store.clone();
        async move {
            tenancy::startup::run_on(store, serve, listener, async {
                let _ = signal.await;
            })
            .await
            .map_err(|e| e.to_string())
        }
    });
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect_lazy();
    let mut app = TestApp::new(
        address,
        database,
        channel,
        shutdown,
        server,
        Some(ADMIN_KEY.into()),
    )
    .await;
    app.store = store;
    app.wait_until_serving().await;
    app
}

/// Starts a server on an existing database (a second instance shares the first's).
pub async fn spawn_app_on(database: DatabaseSettings, serve: ServeArgs) -> TestApp {
    if std::env::var("TEST_LOG").as_deref() == Ok("1") {
        // Kept for the whole test process: its writer thread then writes every line.
        std::mem::forget(tenancy::telemetry::init(
            tenancy::config::LogFormat::Text,
            tenancy::telemetry::DEFAULT_MAX_BUFFERED_BYTES,
        ));
    }
    let (address, shutdown, server) = start_server(database.clone(), serve).await;
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect_lazy();
    let app = TestApp::new(
        address,
        database,
        channel,
        shutdown,
        server,
        Some(ADMIN_KEY.into()),
    )
    .await;
    app.wait_until_serving().await;
    app
}

impl TestApp {
    async fn new(
        address: SocketAddr,
        database: DatabaseSettings,
        channel: Channel,
        shutdown: oneshot::Sender<()>,
        server: JoinHandle<Result<(), String>>,
        key: Option<String>,
    ) -> TestApp {
        let key = BearerKey(key);
        let mut app = TestApp {
            address,
            store: connect_store_when_ready(&database).await,
            database,
            customers: CustomerServiceClient::with_interceptor(channel.clone(), key.clone()),
            accounts: AccountServiceClient::with_interceptor(channel.clone(), key.clone()),
            users: UserServiceClient::with_interceptor(channel.clone(), key.clone()),
            events: EventServiceClient::with_interceptor(channel.clone(), key.clone()),
            sessions: SessionServiceClient::with_interceptor(channel.clone(), key),
            health: HealthClient::new(channel.clone()),
            channel,
            shutdown: Some(shutdown),
            server: Some(server),
        };
        app.health = HealthClient::new(app.channel.clone());
        app
    }

    /// Clients that send `key` (or none) instead of the admin key.
    pub fn users_with_key(&self, key: Option<&str>) -> UserServiceClient<Svc> {
        UserServiceClient::with_interceptor(
            self.channel.clone(),
            BearerKey(key.map(str::to_string)),
        )
    }

    pub fn customers_with_key(&self, key: Option<&str>) -> CustomerServiceClient<Svc> {
        CustomerServiceClient::with_interceptor(
            self.channel.clone(),
            BearerKey(key.map(str::to_string)),
        )
    }

    pub fn accounts_with_key(&self, key: Option<&str>) -> AccountServiceClient<Svc> {
        AccountServiceClient::with_interceptor(
            self.channel.clone(),
            BearerKey(key.map(str::to_string)),
        )
    }

    /// Issues a key with `scopes` straight into the store, as `tenancy keys create` does.
    pub async fn key_with(&self, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        tenancy::app::api_keys::issue_key(&self.store, "test key", &scopes)
            .await
            .expect("issue key")
            .secret
    }

    pub fn events_with_key(&self, key: Option<&str>) -> EventServiceClient<Svc> {
        EventServiceClient::with_interceptor(
            self.channel.clone(),
            BearerKey(key.map(str::to_string)),
        )
    }

    /// The health status the server reports for `service` ("" = overall).
    pub async fn health_of(&self, service: &str) -> Result<ServingStatus, Status> {
        let response = self
            .health
            .clone()
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await?;
        Ok(response.into_inner().status())
    }

    /// Waits until no committed event waits for its sequence: on PostgreSQL the
    /// sequencer numbers events just after their commit.
    pub async fn sequenced(&self) {
        let done = self
            .store
            .wait_until_sequenced(Duration::from_secs(10))
            .await
            .expect("look for unnumbered events");
        assert!(done, "events still without a sequence after 10 s");
    }

    /// The log after `after` once every committed event is numbered.
    pub async fn log_after(
        &self,
        after: i64,
        limit: u64,
    ) -> tenancy::domain::Result<Vec<tenancy::domain::event::Event>> {
        self.sequenced().await;
        self.store.events_after(after, limit).await
    }

    /// `(pruned_through, last_sequence)` once every committed event is numbered.
    pub async fn log_bounds(&self) -> tenancy::domain::Result<(i64, i64)> {
        self.sequenced().await;
        self.store.event_bounds().await
    }

    async fn wait_until_serving(&self) {
        for _ in 0..300 {
            if let Some(server) = &self.server
                && server.is_finished()
            {
                panic!("the server stopped while starting");
            }
            if matches!(self.health_of("").await, Ok(ServingStatus::Serving)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the server did not become SERVING");
    }

    /// Asks the server to stop and waits for it, returning how `run` ended.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match self.server.take() {
            Some(server) => server.await.map_err(|e| e.to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

async fn connect_store_when_ready(database: &DatabaseSettings) -> Store {
    // The server migrates on start; the store for assertions connects beside it.
    let settings = DatabaseSettings {
        max_connections: 4,
        ..database.clone()
    };
    Store::connect(&settings)
        .await
        .expect("connect the assertion store")
}

/// A unique email for a test.
pub fn unique_email(prefix: &str) -> String {
    format!(
        "{prefix}-{}@example.com",
        ulid::Ulid::new().to_string().to_lowercase()
    )
}

/// A password that passes the policy.
pub const GOOD_PASSWORD: &str = "correct horse battery staple 42";

/// The `BadRequest` field names of an INVALID_ARGUMENT status.
pub fn violated_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The `ErrorInfo` reason of a status, if any.
pub fn error_reason(status: &Status) -> Option<String> {
    use tonic_types::StatusExt as _;
    status.get_details_error_info().map(|info| info.reason)
}

/// Like `spawn_app_with`, for a server that `configure` sets up for TLS: the clients
/// connect over TLS with `client_tls` (server name, trusted CA, client identity).
pub async fn spawn_tls_app(
    backend: Backend,
    configure: impl FnOnce(&mut ServeArgs),
    client_tls: tonic::transport::ClientTlsConfig,
) -> TestApp {
    let database = backend.fresh_database().await;
    let mut serve = test_serve_args();
    configure(&mut serve);
    let (address, shutdown, server) = start_server(database.clone(), serve).await;
    let channel = tls_channel(address, client_tls);
    let app = TestApp::new(
        address,
        database,
        channel,
        shutdown,
        server,
        Some(ADMIN_KEY.into()),
    )
    .await;
    app.wait_until_serving().await;
    app
}

/// A lazy TLS channel to `address`.
pub fn tls_channel(address: SocketAddr, client_tls: tonic::transport::ClientTlsConfig) -> Channel {
    Endpoint::from_shared(format!("https://{address}"))
        .expect("endpoint")
        .tls_config(client_tls)
        .expect("client TLS settings")
        .connect_lazy()
}

/// PostgreSQL: the backend pid of the session holding the sequencer's lock on `db`'s
/// database, if one does.
pub async fn sequencer_holder(db: &sea_orm::DatabaseConnection) -> Option<i32> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND objid = ({}::bigint & 4294967295)::oid",
                tenancy::store::advisory_lock::SEQUENCER
            ),
        ))
        .await
        .expect("pg_locks")?;
    row.try_get("", "pid").ok()
}

/// Asserts that `log` (read from sequence 0) is gap-free, that no resource has two
/// events in it (each write of the caller created one resource) and that it holds
/// every id in `answered`; returns the resource ids it holds.
pub fn assert_each_write_once(
    log: &[tenancy::domain::event::Event],
    answered: &std::collections::HashSet<String>,
) -> std::collections::HashSet<String> {
    let sequences: Vec<i64> = log.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=log.len() as i64).collect::<Vec<_>>(),
        "gap-free"
    );
    let logged: std::collections::HashSet<String> = log
        .iter()
        .map(|e| e.resource_id.uuid().to_string())
        .collect();
    assert_eq!(logged.len(), log.len(), "no event twice");
    assert!(
        answered.iter().all(|id| logged.contains(id)),
        "every answered write is in the log"
    );
    logged
}
