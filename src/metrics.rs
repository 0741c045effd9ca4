//! Prometheus metrics at `/metrics` on a listener of their own (`--metrics-listen`):
//! the RPC families (`grpc::rpc_metrics`, counted by the request-log layer), and
//! gauges read from the running process at each scrape (hashing queue, database
//! connections, event log and streams, caches, sign-in lockouts, memory).
//!
//! The listener serves nothing else and asks for no API key: what it shows is
//! operational counts, never tenant data (stream series name an API key's id, not its
//! secret).

use std::{fmt, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};
use tokio::{net::TcpListener, sync::watch};

use crate::{app::App, grpc::rpc_metrics::RpcMetrics, relay::RelayStatus};

/// The registry a scrape encodes, and the RPC families the request log counts into.
pub struct Metrics {
    registry: Registry,
    rpc: Arc<RpcMetrics>,
}

impl Metrics {
    pub fn new(app: &App, relay: Option<Arc<RelayStatus>>) -> Metrics {
        let mut registry = Registry::default();
        let rpc = Arc::new(RpcMetrics::register(&mut registry));
        registry.register(
            "tenancy_password_hash_queue_wait_seconds",
            "Seconds each password job waited for a hashing worker",
            app.hash_queue_waits(),
        );
        registry.register_collector(Box::new(Vitals {
            app: app.clone(),
            relay,
        }));
        Metrics { registry, rpc }
    }

    pub fn rpc(&self) -> Arc<RpcMetrics> {
        self.rpc.clone()
    }

    /// The exposition (OpenMetrics text, which Prometheus reads).
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(%error, "encoding the metrics failed");
        }
        text
    }
}

/// Read at each scrape from `App::vitals`.
struct Vitals {
    app: App,
    relay: Option<Arc<RelayStatus>>,
}

impl fmt::Debug for Vitals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vitals")
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// This process's resident set size in bytes, from `/proc` (0 where there is none).
fn resident_bytes() -> i64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<i64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages.saturating_mul(page.max(0))
}

impl Collector for Vitals {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let vitals = self.app.vitals();
        let e = &mut encoder;
        gauge(
            e,
            "tenancy_password_hash_queue_depth",
            "Password jobs waiting for a hashing worker",
            count(vitals.hash_queue_depth),
        )?;
        {
            let mut family = e.encode_descriptor(
                "tenancy_db_connections",
                "Pooled database connections by state",
                None,
                MetricType::Gauge,
            )?;
            for (state, n) in [("in_use", vitals.pool.in_use), ("idle", vitals.pool.idle)] {
                ConstGauge::new(count(n)).encode(family.encode_family(&[("state", state)])?)?;
            }
        }
        gauge(
            e,
            "tenancy_db_waiting_writers",
            "Write transactions waiting for a database connection (or SQLite's writer lock)",
            count(vitals.pool.waiting),
        )?;
        gauge(
            e,
            "tenancy_db_point_read_connections_in_use",
            "PostgreSQL point-read connections running a statement, or cancelling one whose caller went away",
            count(vitals.pool.point_reads_in_use),
        )?;
        gauge(
            e,
            "tenancy_event_log_head_sequence",
            "Newest event sequence this process's event feed has read",
            vitals.event_head,
        )?;
        gauge(
            e,
            "tenancy_event_streams_open",
            "Open StreamEvents streams on this process",
            count(vitals.streams.len()),
        )?;
        if !vitals.streams.is_empty() {
            let stream_labels = |lag: &crate::app::StreamLag| {
                [
                    ("key_id", lag.key.to_string()),
                    ("stream", lag.stream.to_string()),
                ]
            };
            let mut family = e.encode_descriptor(
                "tenancy_event_stream_lag_events",
                "Events an open stream is behind this process's event feed",
                None,
                MetricType::Gauge,
            )?;
            for lag in &vitals.streams {
                let labels = stream_labels(lag);
                ConstGauge::new(lag.events_behind).encode(family.encode_family(&labels)?)?;
            }
            let mut family = e.encode_descriptor(
                "tenancy_event_stream_buffered_bytes",
                "Estimated bytes of events an open stream holds that its client has not taken \
                 yet (at most --stream-buffer-bytes)",
                None,
                MetricType::Gauge,
            )?;
            for lag in &vitals.streams {
                let labels = stream_labels(lag);
                ConstGauge::new(count(lag.buffered_bytes))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        type Read = fn(&crate::cache::CacheStats) -> u64;
        let per_cache: [(&str, &str, Read); 4] = [
            ("tenancy_cache_hits", "Reads answered from the cache", |s| {
                s.hits
            }),
            (
                "tenancy_cache_misses",
                "Reads the cache did not hold",
                |s| s.misses,
            ),
            (
                "tenancy_cache_evictions",
                "Entries dropped to make room",
                |s| s.evictions,
            ),
            (
                "tenancy_cache_stale_reads",
                "Reads sent to the database because the cache's freshness was not confirmed",
                |s| s.stale,
            ),
        ];
        for (name, help, read) in per_cache {
            let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (cache, stats) in &vitals.caches {
                ConstCounter::new(read(stats))
                    .encode(family.encode_family(&[("cache", *cache)])?)?;
            }
        }
        {
            let mut family = e.encode_descriptor(
                "tenancy_cache_entries",
                "Entries each cache holds",
                None,
                MetricType::Gauge,
            )?;
            for (cache, stats) in &vitals.caches {
                ConstGauge::new(count(stats.entries))
                    .encode(family.encode_family(&[("cache", *cache)])?)?;
            }
        }
        {
            let mut family = e.encode_descriptor(
                "tenancy_cache_bytes",
                "Estimated bytes of the entries each cache holds (at most --cache-max-bytes)",
                None,
                MetricType::Gauge,
            )?;
            for (cache, stats) in &vitals.caches {
                ConstGauge::new(count(stats.bytes))
                    .encode(family.encode_family(&[("cache", *cache)])?)?;
            }
        }
        counter(
            e,
            "tenancy_sign_in_lockouts",
            "Emails locked by failed sign-ins",
            vitals.lockouts,
        )?;
        counter(
            e,
            "tenancy_sign_in_locked_refusals",
            "Sign-ins (and password checks) refused because their email was locked",
            vitals.refused_locked,
        )?;
        if let Some(relay) = &self.relay {
            use std::sync::atomic::Ordering::Relaxed;
            let active = relay.active.load(Relaxed);
            let acknowledged = relay.acknowledged.load(Relaxed);
            gauge(
                e,
                "tenancy_relay_active",
                "1 while this process holds the NATS relay's lease and publishes",
                i64::from(active),
            )?;
            gauge(
                e,
                "tenancy_relay_acknowledged_sequence",
                "Newest event sequence the broker acknowledged to this process's relay",
                acknowledged,
            )?;
            if active {
                gauge(
                    e,
                    "tenancy_relay_lag_events",
                    "Events the feed has read that the relay has not yet had acknowledged",
                    (vitals.event_head - acknowledged).max(0),
                )?;
            }
        }
        gauge(
            e,
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            resident_bytes(),
        )?;
        Ok(())
    }
}

/// A metrics request whose headers take longer than this is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

fn respond(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String, content_type: &str| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = http::HeaderValue::from_str(content_type) {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, value);
        }
        response
    };
    if request.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "not found: only /metrics is served here\n".into(),
            "text/plain",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET\n".into(),
            "text/plain",
        );
    }
    reply(
        StatusCode::OK,
        metrics.render(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    )
}

/// Serves `/metrics` on `listener` until `shutting_down` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutting_down: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutting_down.wait_for(|down| *down) => return,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "the metrics listener could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = respond(&metrics, &request);
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds the metrics listener of `address`; a failure names the setting.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(address).await.map_err(|error| {
        format!("cannot listen for metrics on {address} (--metrics-listen, TENANCY_METRICS_LISTEN): {error}")
    })
}
