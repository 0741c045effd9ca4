//! Builds and runs the server from a bound listener and a shutdown future.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::{
    net::TcpListener,
    sync::{Notify, watch},
};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    app::{App, AppSettings, api_keys::bootstrap_admin_key, sessions::Signing},
    config::{MasterKeyArgs, ServeArgs},
    grpc::{
        self, auth::AuthLayer, input::InputCheckLayer, pb, request_limits::RequestLimitsLayer,
        request_log::RequestLogLayer,
    },
    hashing::PasswordHasher,
    metrics::{self, Metrics},
    relay::{self, RelayStatus},
    signing::{MasterKey, MasterKeyOrigin, MasterKeySources},
    store::{DatabaseSettings, Store, ThrottlePolicy},
};

pub type StartupError = Box<dyn std::error::Error + Send + Sync>;

/// Names health reports a status for; "" is the server as a whole.
const HEALTH_SERVICES: [&str; 6] = [
    "",
    "tenancy.v1.CustomerService",
    "tenancy.v1.AccountService",
    "tenancy.v1.UserService",
    "tenancy.v1.EventService",
    "tenancy.v1.SessionService",
];

/// The master key (`TENANCY_MASTER_KEY` or `--master-key-file`); on a SQLite database
/// without either, one made on first start in a 0600 file beside the database. Where it
/// came from is logged, never the key.
pub fn load_master_key(
    sqlite_file: Option<&std::path::Path>,
    args: &MasterKeyArgs,
) -> Result<MasterKey, StartupError> {
    let generate_in = sqlite_file.map(|file| match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    });
    let (key, origin) = MasterKey::load(&MasterKeySources {
        env: args.key.as_deref(),
        file: args.file.as_deref(),
        generate_in: generate_in.as_deref(),
    })?;
    match origin {
        MasterKeyOrigin::Environment => tracing::info!("master key from TENANCY_MASTER_KEY"),
        MasterKeyOrigin::File(path) => {
            tracing::info!(path = %path.display(), "master key from its file")
        }
        MasterKeyOrigin::Generated {
            path,
            created: true,
        } => tracing::warn!(
            path = %path.display(),
            "no master key was given: one was made in this file (mode 0600); keep it with \
             the database, which cannot issue tokens without it"
        ),
        MasterKeyOrigin::Generated {
            path,
            created: false,
        } => {
            tracing::info!(path = %path.display(), "master key from the file made on first start")
        }
    }
    Ok(key)
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for service in HEALTH_SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Connects, migrates and installs the first admin key; prints a generated key once.
pub async fn prepare_store(
    database: &DatabaseSettings,
    admin_key: Option<&str>,
) -> Result<Store, StartupError> {
    let store = Store::connect(database).await?;
    store.migrate().await?;
    if let Some(issued) = bootstrap_admin_key(&store, admin_key).await? {
        println!("No API key existed, so an admin key was created. It is shown only this once:");
        println!("{}", issued.secret);
    }
    Ok(store)
}

/// How long an HTTP/1.1 client may take to send a request's headers (a slow-loris
/// client holds a connection no longer).
const HTTP1_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

fn tls_settings(serve: &ServeArgs) -> Result<Option<grpc::server::TlsSettings>, StartupError> {
    let (Some(cert), Some(key)) = (&serve.tls_cert, &serve.tls_key) else {
        return Ok(None);
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    Ok(Some(grpc::server::TlsSettings {
        cert_pem: read(cert)?,
        key_pem: read(key)?,
        client_ca_pem: serve.tls_client_ca.as_deref().map(read).transpose()?,
        // A client that connects and never completes the handshake is dropped.
        handshake_timeout: Duration::from_secs(serve.tls_handshake_timeout.max(1)),
    }))
}

/// Serves until `shutdown` resolves, then reports NOT_SERVING, stops accepting, and
/// gives in-flight RPCs `shutdown_grace` to finish.
pub async fn run(
    database: DatabaseSettings,
    serve: ServeArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    // A bad lockout setting or metrics address is refused before the database is
    // touched.
    serve.throttle()?;
    serve.relay()?;
    // So is a missing or malformed master key: a start that cannot sign must not make
    // (and print) the first admin key, which the next start would not print again.
    let master_key = load_master_key(crate::store::sqlite_file(&database.url), &serve.master_key)?;
    let metrics_listener = bind_metrics(&serve).await?;
    let store = prepare_store(&database, serve.admin_key.as_deref()).await?;
    let prepared = Prepared {
        store,
        master_key,
        metrics_listener,
    };
    serve_on(prepared, serve, listener, shutdown).await
}

/// What a start has before it serves: the database, the master key, the metrics port.
struct Prepared {
    store: Store,
    master_key: MasterKey,
    metrics_listener: Option<TcpListener>,
}

async fn bind_metrics(serve: &ServeArgs) -> Result<Option<TcpListener>, StartupError> {
    Ok(match serve.metrics_listen {
        Some(address) => Some(metrics::bind(address).await?),
        None => None,
    })
}

/// `run` on a store that `prepare_store` returned (tests keep a clone of it to see
/// what the server asks of the database).
pub async fn run_on(
    store: Store,
    serve: ServeArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let prepared = Prepared {
        master_key: load_master_key(store.sqlite_file(), &serve.master_key)?,
        metrics_listener: bind_metrics(&serve).await?,
        store,
    };
    serve_on(prepared, serve, listener, shutdown).await
}

async fn serve_on(
    prepared: Prepared,
    serve: ServeArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let Prepared {
        store,
        master_key,
        metrics_listener,
    } = prepared;
    let throttle = serve.throttle()?;
    let hasher = PasswordHasher::start_gated(
        serve.argon2(),
        serve.hash_workers(),
        serve.hash_queue,
        serve.hashing_gate.clone(),
    )?;
    let (shutting_down, shutting_down_rx) = watch::channel(false);
    // PostgreSQL: one process across the instances numbers the events.
    tokio::spawn(store.clone().run_sequencer(shutting_down_rx.clone()));
    let signing = Signing::start(&store, master_key, serve.token_settings()).await?;
    let app = App::new(
        store.clone(),
        hasher,
        signing,
        AppSettings {
            throttle,
            events: serve.events(),
            invitation_ttl: serve.invitation_ttl(),
            cache: serve.cache(),
            recovery: serve.recovery(),
        },
        shutting_down_rx.clone(),
    )
    .await?;

    let relay = match serve.relay()? {
        Some(settings) => {
            let status = Arc::new(RelayStatus::default());
            tokio::spawn(relay::run(
                store.clone(),
                settings,
                status.clone(),
                shutting_down_rx.clone(),
            ));
            Some(status)
        }
        None => None,
    };
    let rpc_metrics = match metrics_listener {
        Some(listener) => {
            let address = listener.local_addr()?;
            if let Some(bound) = &serve.metrics_bound {
                let _ = bound.set(address);
            }
            tracing::info!(%address, "serving metrics at /metrics");
            let metrics = Arc::new(Metrics::new(&app, relay.clone()));
            let rpc = metrics.rpc();
            tokio::spawn(metrics::serve(listener, metrics, shutting_down_rx.clone()));
            Some(rpc)
        }
        None => None,
    };

    let traces = match &serve.otlp_endpoint {
        Some(endpoint) => {
            let traces = grpc::traces::Traces::start(endpoint)?;
            tracing::info!(%endpoint, "exporting a trace span per RPC over OTLP");
            Some(traces)
        }
        None => None,
    };
    let (reporter, _) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::Serving).await;
    let (health_final, health_final_rx) = watch::channel(false);
    let health_service = tonic_health::pb::health_server::HealthServer::new(
        grpc::health::Health::new(reporter.clone(), health_final_rx),
    );
    tokio::spawn(watch_database(
        store.clone(),
        reporter.clone(),
        Duration::from_secs(serve.health_interval.max(1)),
        shutting_down_rx.clone(),
    ));
    tokio::spawn(prune_periodically(
        store.clone(),
        serve.clone(),
        throttle,
        shutting_down_rx.clone(),
    ));

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let max_request = serve.max_request_bytes();
    let keepalive = Duration::from_secs(serve.http2_keepalive_interval.max(1));
    let listen = grpc::server::ListenSettings {
        http2_keepalive_interval: keepalive,
        // Without these a peer that vanished (no FIN, no RST) keeps its connection, and
        // its streams, until the OS gives up hours later.
        http2_keepalive_timeout: Duration::from_secs(serve.http2_keepalive_timeout.max(1)),
        max_concurrent_streams: serve.max_concurrent_streams.max(1),
        header_read_timeout: HTTP1_HEADER_READ_TIMEOUT,
        tcp_keepalive: keepalive,
    };
    let tls = tls_settings(&serve)?;
    let draining = Arc::new(Notify::new());
    let signal = {
        let (reporter, draining) = (reporter.clone(), draining.clone());
        async move {
            shutdown.await;
            tracing::info!("shutting down: health NOT_SERVING, draining in-flight RPCs");
            let _ = shutting_down.send(true);
            set_health(&reporter, ServingStatus::NotServing).await;
            // Health watches end once they have sent NOT_SERVING.
            let _ = health_final.send(true);
            draining.notify_one();
        }
    };
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "serving gRPC");
    // The input check refuses larger requests first (RESOURCE_EXHAUSTED); tonic's own
    // limit is set to match, so nothing else decodes more.
    let routes = tonic::service::Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            pb::customer_service_server::CustomerServiceServer::new(grpc::CustomerApi::new(
                app.clone(),
            ))
            .max_decoding_message_size(max_request),
        )
        .add_service(
            pb::account_service_server::AccountServiceServer::new(grpc::AccountApi::new(
                app.clone(),
            ))
            .max_decoding_message_size(max_request),
        )
        .add_service(
            pb::user_service_server::UserServiceServer::new(grpc::UserApi::new(app.clone()))
                .max_decoding_message_size(max_request),
        )
        .add_service(
            pb::event_service_server::EventServiceServer::new(grpc::EventApi::new(app.clone()))
                .max_decoding_message_size(max_request),
        )
        .add_service(
            pb::session_service_server::SessionServiceServer::new(grpc::sessions::SessionApi::new(
                app.clone(),
            ))
            .max_decoding_message_size(max_request),
        );
    let grpc_stack = tower::ServiceBuilder::new()
        .map_response(|response: http::Response<_>| response.map(tonic::body::Body::new))
        .layer(RequestLogLayer::new(rpc_metrics).with_traces(traces.clone()))
        // Before the key check, so a shed RPC costs no key lookup; inside the log, so
        // timed-out and shed RPCs are logged with their code.
        .layer(RequestLimitsLayer::new(serve.request_limits()))
        .layer(AuthLayer::new(app.clone()))
        .layer(InputCheckLayer::new(max_request)?)
        .service(routes);
    let grpc_stack = tower::util::BoxCloneSyncService::new(grpc_stack);
    // HTTP/JSON requests go through the same stack, in-process (see `http::gateway`).
    let gateway = crate::http::Gateway::new(grpc_stack.clone(), max_request)?;
    let http_routes = crate::http::routes(app.clone(), gateway);
    // gRPC-Web (a browser tool) is translated to gRPC in front of the same stack.
    let grpc_and_web = tower::util::BoxCloneService::new(
        tower::ServiceBuilder::new()
            .map_response(|response: http::Response<_>| response.map(tonic::body::Body::new))
            .layer(tonic_web::GrpcWebLayer::new())
            .service(grpc_stack),
    );
    let service = grpc::server::by_content_type(grpc_and_web, http_routes.clone());
    let http_server = match serve.http_listen {
        Some(address) => {
            let http_listener = TcpListener::bind(address).await?;
            let bound = http_listener.local_addr()?;
            if let Some(cell) = &serve.http_bound {
                let _ = cell.set(bound);
            }
            tracing::info!(address = %bound, "serving HTTP/JSON on its own listener");
            let mut stopping = shutting_down_rx.clone();
            let stopped = async move {
                let _ = stopping.wait_for(|down| *down).await;
            };
            Some(tokio::spawn(grpc::server::serve(
                http_listener,
                listen.clone(),
                tls_settings(&serve)?,
                http_routes,
                stopped,
            )))
        }
        None => None,
    };
    let server = grpc::server::serve(listener, listen, tls, service, signal);
    let grace = Duration::from_secs(serve.shutdown_grace);
    tokio::select! {
        result = server => {
            result?;
            if let Some(http_server) = http_server {
                let _ = http_server.await;
            }
        }
        _ = async { draining.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_seconds = serve.shutdown_grace, "in-flight RPCs did not finish in time; stopping anyway");
        }
    }
    store.close().await;
    if let Some(traces) = traces {
        // The exporter blocks on its last batch; not on the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Probes the database; health follows it, both ways, until shutdown.
async fn watch_database(
    store: Store,
    reporter: HealthReporter,
    every: Duration,
    mut shutting_down: watch::Receiver<bool>,
) {
    let mut serving = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutting_down.wait_for(|down| *down) => return,
        }
        let reachable = matches!(
            tokio::time::timeout(every.max(Duration::from_secs(2)), store.ping()).await,
            Ok(Ok(()))
        );
        if *shutting_down.borrow() {
            return;
        }
        if reachable != serving {
            serving = reachable;
            if reachable {
                tracing::info!("database reachable again: SERVING");
                set_health(&reporter, ServingStatus::Serving).await;
            } else {
                tracing::warn!("database unreachable: NOT_SERVING");
                set_health(&reporter, ServingStatus::NotServing).await;
            }
        }
    }
}

/// Deletes events past retention, request ids past theirs and sign-in throttle rows
/// that hold nothing any more, on start and hourly.
async fn prune_periodically(
    store: Store,
    serve: ServeArgs,
    throttle: ThrottlePolicy,
    mut shutting_down: watch::Receiver<bool>,
) {
    loop {
        let now = chrono::Utc::now();
        let requests_cutoff =
            now - chrono::Duration::from_std(serve.request_id_retention()).unwrap_or_default();
        match store.prune_events(serve.event_retention()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned events past retention"),
            Err(error) => tracing::warn!(%error, "pruning events failed"),
        }
        if let Err(error) = store.prune_request_ids(requests_cutoff).await {
            tracing::warn!(%error, "pruning request ids failed");
        }
        if let Err(error) = store.prune_sign_in_throttle(now, throttle.window).await {
            tracing::warn!(%error, "pruning the sign-in throttle failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutting_down.wait_for(|down| *down) => return,
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
