//! Every setting: a flag, an environment variable and a default (`tenancy --help`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    app::EventSettings,
    cache::CacheSettings,
    domain::session::Lifetimes,
    grpc::request_limits::RequestLimits,
    hashing::{Argon2Settings, HashingGate},
    store::{ConnectionLimits, DatabaseSettings, ThrottlePolicy},
};

/// The default of `--stream-buffer-bytes`: what one slow client's stream may hold.
/// Room for hundreds of events even when each carries a customer with settings and
/// metadata near their 16 KiB limits.
pub const DEFAULT_STREAM_BUFFER_BYTES: u64 = 8 * 1024 * 1024;

/// tenancy: the source of truth for customers, accounts, users and memberships.
#[derive(Debug, Parser)]
#[command(name = "tenancy", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve gRPC (migrating the database first).
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage API keys in the database that DATABASE_URL names.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the keys that sign access tokens, in the database that DATABASE_URL
    /// names (the master key must be the server's).
    SigningKeys(SigningKeysArgs),
}

#[derive(Debug, Args)]
pub struct SigningKeysArgs {
    /// Minutes a password-reset token of `RequestPasswordReset` stays valid.
    #[arg(long, env = "TENANCY_PASSWORD_RESET_MINUTES", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub password_reset_minutes: u64,
    /// Hours an email-verification token of `RequestEmailVerification` stays valid.
    #[arg(long, env = "TENANCY_EMAIL_VERIFICATION_HOURS", default_value_t = 24,
          value_parser = clap::value_parser!(u64).range(1..=720))]
    pub email_verification_hours: u64,
    #[command(flatten)]
    pub master_key: MasterKeyArgs,
    #[command(subcommand)]
    pub command: SigningKeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum SigningKeysCommand {
    /// Add a successor key now: published at once, it signs one access-token lifetime
    /// later, and the current key is retired then (it stays published until the last
    /// token it signed expired).
    Rotate {
        /// Minutes the new key is published before it signs: the longest access-token
        /// lifetime of the servers (`--access-token-minutes`).
        #[arg(long, env = "TENANCY_ACCESS_TOKEN_MINUTES", default_value_t = 5,
              value_parser = clap::value_parser!(u64).range(1..=60))]
        access_token_minutes: u64,
    },
    /// List the keys: id, when each signs, retires and leaves the JWKS.
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; the key itself is printed alone on the last line, once.
    Create {
        /// A name that says who or what uses the key.
        #[arg(long)]
        name: String,
        /// A scope the key holds (repeat for more): customers.read, users.write, admin, ...
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id; it stops working at once.
    Revoke {
        /// The key's id, as `keys list` shows it.
        id: String,
    },
}

/// Where the master key comes from: it encrypts the signing keys (and TOTP secrets)
/// stored in the database.
#[derive(Debug, Clone, Default, Args)]
pub struct MasterKeyArgs {
    /// The master key: base64 of 32 random bytes (`openssl rand -base64 32`). Prefer
    /// the environment variable or a file: flags show in process lists. On the
    /// embedded SQLite default without one, a key is made on first start in a 0600 file
    /// beside the database.
    #[arg(
        long = "master-key",
        env = "TENANCY_MASTER_KEY",
        hide_env_values = true,
        hide = true
    )]
    pub key: Option<String>,
    /// A file holding the master key (base64 of 32 random bytes).
    #[arg(long = "master-key-file", env = "TENANCY_MASTER_KEY_FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings every subcommand shares.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Database URL: a SQLite file (`sqlite://path?mode=rwc`) or `postgres://user@host/db`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/tenancy.db?mode=rwc",
        global = true
    )]
    pub database_url: String,
    /// Most database connections this process opens (on PostgreSQL, half of them serve
    /// single-statement reads).
    #[arg(
        long,
        env = "TENANCY_DB_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub db_max_connections: u32,
    /// Seconds an RPC waits for a database connection before it answers UNAVAILABLE.
    #[arg(
        long,
        env = "TENANCY_DB_ACQUIRE_TIMEOUT",
        default_value_t = 3,
        global = true
    )]
    pub db_acquire_timeout: u64,
    /// Milliseconds a single-statement read (PostgreSQL) may wait for its answer; past
    /// it, UNAVAILABLE and the connection is dropped. Also those connections'
    /// `statement_timeout`.
    #[arg(long, env = "TENANCY_DB_READ_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub db_read_timeout_ms: u64,
    /// Seconds a database connection may stay idle before it is closed instead of
    /// reused.
    #[arg(long, env = "TENANCY_DB_MAX_IDLE", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub db_max_idle: u64,
    /// Seconds a database connection may be used before it is closed and replaced.
    #[arg(long, env = "TENANCY_DB_MAX_AGE", default_value_t = 1800,
          value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub db_max_age: u64,
    /// PostgreSQL: CreateUser calls that may wait at once for the statement that writes
    /// them in a batch; more are answered UNAVAILABLE (WRITE_QUEUE_FULL) at once.
    #[arg(long, env = "TENANCY_DB_WRITE_QUEUE", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub db_write_queue: u64,
    /// Log format: human-readable text or one JSON object per line. RUST_LOG filters.
    #[arg(long, env = "TENANCY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Bytes of log lines held in memory for the writer thread (at least 65536). When
    /// stderr stalls and they are full, new lines are dropped and counted, never
    /// waited for; a warning gives the count once stderr drains.
    #[arg(long, env = "TENANCY_LOG_BUFFER_BYTES",
          default_value_t = crate::telemetry::DEFAULT_MAX_BUFFERED_BYTES, global = true)]
    pub log_buffer_bytes: usize,
}

impl CommonArgs {
    pub fn database(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections.max(1),
            acquire_timeout: Duration::from_secs(self.db_acquire_timeout.max(1)),
            limits: ConnectionLimits {
                read_timeout: Duration::from_millis(self.db_read_timeout_ms.max(1)),
                max_idle: Duration::from_secs(self.db_max_idle.max(1)),
                max_age: Duration::from_secs(self.db_max_age.max(1)),
                write_queue: usize::try_from(self.db_write_queue).unwrap_or(usize::MAX),
            },
        }
    }
}

/// Settings of `tenancy serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TENANCY_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// An admin API key to install on start instead of generating one (at least 20
    /// characters). Prefer the environment variable: flags show in process lists.
    #[arg(long, env = "TENANCY_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// PEM certificate chain: serve TLS (with --tls-key).
    #[arg(long, env = "TENANCY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "TENANCY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates it signed (mutual TLS).
    #[arg(long, env = "TENANCY_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Seconds in-flight RPCs get to finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "TENANCY_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
    /// argon2id memory cost in KiB.
    #[arg(long, env = "TENANCY_ARGON2_MEMORY_KIB", default_value_t = 19 * 1024)]
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    #[arg(long, env = "TENANCY_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// argon2id lanes.
    #[arg(long, env = "TENANCY_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
    /// Password hashing threads (default: the number of cores).
    #[arg(long, env = "TENANCY_HASH_WORKERS")]
    pub hash_workers: Option<usize>,
    /// Hashing jobs that may wait; beyond that RPCs get RESOURCE_EXHAUSTED.
    #[arg(long, env = "TENANCY_HASH_QUEUE", default_value_t = 256)]
    pub hash_queue: usize,
    /// Failed sign-ins for one email within the window that lock it.
    #[arg(long, env = "TENANCY_LOCKOUT_THRESHOLD", default_value_t = 10)]
    pub lockout_threshold: u32,
    /// Seconds over which failures are counted.
    #[arg(long, env = "TENANCY_LOCKOUT_WINDOW", default_value_t = 900)]
    pub lockout_window: u64,
    /// Seconds an email stays locked.
    #[arg(long, env = "TENANCY_LOCKOUT_DURATION", default_value_t = 900)]
    pub lockout_duration: u64,
    /// Days events are kept; resuming before the oldest kept is OUT_OF_RANGE.
    #[arg(long, env = "TENANCY_EVENT_RETENTION_DAYS", default_value_t = 30)]
    pub event_retention_days: u64,
    /// Hours a request_id is remembered for idempotent retries (at least 24).
    #[arg(long, env = "TENANCY_REQUEST_ID_RETENTION_HOURS", default_value_t = 48)]
    pub request_id_retention_hours: u64,
    /// Largest request message accepted, in bytes; a larger one is RESOURCE_EXHAUSTED.
    #[arg(long, env = "TENANCY_MAX_REQUEST_BYTES", default_value_t = 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Seconds between database health probes.
    #[arg(long, env = "TENANCY_HEALTH_INTERVAL", default_value_t = 1)]
    pub health_interval: u64,
    /// Open StreamEvents streams one API key may hold on this process; past it,
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "TENANCY_MAX_STREAMS_PER_KEY", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_key: u32,
    /// Milliseconds between looks for events other instances wrote. One poller per
    /// process serves every open stream; this process's own writes wake it at once.
    #[arg(long, env = "TENANCY_EVENT_POLL_INTERVAL_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub event_poll_interval_ms: u64,
    /// Estimated bytes of events one StreamEvents stream holds in this process for a
    /// client that reads slowly (at least 65536); past it the stream waits, and reads
    /// what it missed from the database once the client catches up.
    #[arg(long, env = "TENANCY_STREAM_BUFFER_BYTES",
          default_value_t = DEFAULT_STREAM_BUFFER_BYTES,
          value_parser = clap::value_parser!(u64).range(65_536..))]
    pub stream_buffer_bytes: u64,
    /// Entries each in-process cache (customers, effective limits, access facts,
    /// accessible-resource candidates, API keys, unknown API keys) holds at most, least recently used evicted first; 0 turns caching off.
    #[arg(long, env = "TENANCY_CACHE_CAPACITY", default_value_t = 10_000)]
    pub cache_capacity: usize,
    /// Estimated bytes each in-process cache holds at most (so six times this in all),
    /// least recently used evicted first until both this and --cache-capacity hold; an
    /// entry larger than this is not cached.
    #[arg(long, env = "TENANCY_CACHE_MAX_BYTES",
          default_value_t = crate::cache::DEFAULT_MAX_BYTES)]
    pub cache_max_bytes: usize,
    /// Milliseconds: no cached answer (and no cached API key) reflects the database as of
    /// longer ago than this. Past it without a successful poll, reads go to the
    /// database. Keep it above the event poll interval.
    #[arg(long, env = "TENANCY_CACHE_STALENESS_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub cache_staleness_ms: u64,
    /// Seconds between HTTP/2 PINGs the server sends on each connection (and the TCP
    /// keepalive time), so connections to vanished peers are found.
    #[arg(long, env = "TENANCY_HTTP2_KEEPALIVE_INTERVAL", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub http2_keepalive_interval: u64,
    /// Seconds a PING may go unanswered before the connection is closed.
    #[arg(long, env = "TENANCY_HTTP2_KEEPALIVE_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub http2_keepalive_timeout: u64,
    /// Streams (RPCs, open event streams included) one HTTP/2 connection may have open
    /// at once; the client queues more until one ends.
    #[arg(long, env = "TENANCY_MAX_CONCURRENT_STREAMS", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_streams: u32,
    /// RPCs this process works on at once, over all connections (open streams do not
    /// count); past it, UNAVAILABLE at once (health checks are never refused).
    #[arg(long, env = "TENANCY_MAX_IN_FLIGHT", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight: u64,
    /// Seconds an RPC may take to answer; past it, DEADLINE_EXCEEDED. A stream's
    /// setup is bounded, the open stream is not.
    #[arg(long, env = "TENANCY_REQUEST_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: u64,
    /// Seconds a client gets to complete the TLS handshake before it is disconnected.
    #[arg(long, env = "TENANCY_TLS_HANDSHAKE_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub tls_handshake_timeout: u64,
    /// Hours an invitation token stays valid after its creation or last resend.
    #[arg(long, env = "TENANCY_INVITATION_TTL_HOURS", default_value_t = 168,
          value_parser = clap::value_parser!(u64).range(1..=8760))]
    pub invitation_ttl_hours: u64,
    /// Minutes a password-reset token of `RequestPasswordReset` stays valid.
    #[arg(long, env = "TENANCY_PASSWORD_RESET_MINUTES", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub password_reset_minutes: u64,
    /// Hours an email-verification token of `RequestEmailVerification` stays valid.
    #[arg(long, env = "TENANCY_EMAIL_VERIFICATION_HOURS", default_value_t = 24,
          value_parser = clap::value_parser!(u64).range(1..=720))]
    pub email_verification_hours: u64,
    #[command(flatten)]
    pub master_key: MasterKeyArgs,
    /// Minutes an access token (a session's JWT) is valid: 1 to 60.
    #[arg(long, env = "TENANCY_ACCESS_TOKEN_MINUTES", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    pub access_token_minutes: u64,
    /// Seconds a session may go unrefreshed before it ends (default 7 days).
    #[arg(long, env = "TENANCY_SESSION_IDLE_SECONDS", default_value_t = 7 * 24 * 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub session_idle_seconds: u64,
    /// Seconds after its sign-in a session ends however it is used (default 30 days).
    #[arg(long, env = "TENANCY_SESSION_LIFETIME_SECONDS", default_value_t = 30 * 24 * 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub session_lifetime_seconds: u64,
    /// The `iss` claim of access tokens; verifiers check it.
    #[arg(long, env = "TENANCY_TOKEN_ISSUER", default_value = "tenancy")]
    pub token_issuer: String,
    /// The `aud` claim of access tokens (repeat the flag, or separate with commas in
    /// the variable, for several); verifiers check theirs is among them.
    #[arg(
        long = "token-audience",
        env = "TENANCY_TOKEN_AUDIENCE",
        value_delimiter = ',',
        default_value = "tenancy"
    )]
    pub token_audiences: Vec<String>,
    /// Days a signing key signs before a successor takes over (published an access-token
    /// lifetime before it signs); 0 turns automatic rotation off.
    #[arg(long, env = "TENANCY_SIGNING_KEY_ROTATION_DAYS", default_value_t = 30)]
    pub signing_key_rotation_days: u64,
    /// Seconds between two passes over the stored signing keys: each rotates what is due
    /// and picks up keys that `signing-keys rotate` or another instance made. At most 30,
    /// so every instance publishes a successor well within the minute (at least) that it
    /// is published before it signs.
    #[arg(long, env = "TENANCY_SIGNING_KEY_REFRESH_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=30))]
    pub signing_key_refresh_seconds: u64,
    /// Address to serve Prometheus metrics on, at `/metrics` (no API key; nothing else
    /// is served there), e.g. `0.0.0.0:9090`. Off when unset.
    #[arg(long, env = "TENANCY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Address to serve the HTTP/JSON API (and the JWKS and OpenAPI documents) on a
    /// listener of its own, e.g. `0.0.0.0:8081`. Unset: they share the gRPC port
    /// (requests are told apart by content type), where they are served either way.
    #[arg(long, env = "TENANCY_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// OTLP/gRPC collector (e.g. `http://127.0.0.1:4317`): export one span per RPC
    /// (with its request id, child of the caller's W3C `traceparent`). Off when unset.
    #[arg(long, env = "TENANCY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// NATS URL (e.g. `nats://127.0.0.1:4222`): relay every event to a JetStream stream,
    /// in sequence order, once (one relay runs across instances). Off when unset.
    #[arg(long, env = "TENANCY_EVENTS_NATS_URL")]
    pub events_nats_url: Option<String>,
    /// The JetStream stream the relay publishes to (created when missing).
    #[arg(
        long,
        env = "TENANCY_EVENTS_NATS_STREAM",
        default_value = "TENANCY_EVENTS"
    )]
    pub events_nats_stream: String,
    /// Subject prefix: events go to `<prefix>.<event type>`, e.g. `tenancy.events.customer.created`.
    #[arg(
        long,
        env = "TENANCY_EVENTS_NATS_SUBJECT_PREFIX",
        default_value = "tenancy.events"
    )]
    pub events_nats_subject_prefix: String,
    /// Seconds of the stream's duplicate window when the relay creates it.
    #[arg(long, env = "TENANCY_EVENTS_NATS_DUPLICATE_WINDOW", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub events_nats_duplicate_window: u64,
    /// Not a setting: told the metrics listener's bound address (a test binds port 0).
    #[arg(skip)]
    pub metrics_bound: Option<std::sync::Arc<std::sync::OnceLock<SocketAddr>>>,
    /// Not a setting: told the HTTP/JSON listener's bound address (a test binds port 0).
    #[arg(skip)]
    pub http_bound: Option<std::sync::Arc<std::sync::OnceLock<SocketAddr>>>,
    /// Not a setting: lets a test hold the hashing workers (see `HashingGate`).
    #[arg(skip)]
    pub hashing_gate: Option<HashingGate>,
}

impl ServeArgs {
    /// Defaults for everything: what `tenancy serve` does with no flags.
    pub fn defaults() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            serve: ServeArgs,
        }
        Only::parse_from(["tenancy"]).serve
    }

    pub fn argon2(&self) -> Argon2Settings {
        Argon2Settings {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }

    pub fn hash_workers(&self) -> usize {
        self.hash_workers
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            })
            .max(1)
    }

    /// The sign-in lockout; a zero threshold or window would disable it silently, so
    /// either is refused.
    pub fn throttle(&self) -> Result<ThrottlePolicy, String> {
        if self.lockout_threshold == 0 {
            return Err(
                "--lockout-threshold (TENANCY_LOCKOUT_THRESHOLD) must be at least 1".into(),
            );
        }
        if self.lockout_window == 0 {
            return Err(
                "--lockout-window (TENANCY_LOCKOUT_WINDOW) must be at least 1 second".into(),
            );
        }
        Ok(ThrottlePolicy {
            threshold: self.lockout_threshold,
            window: Duration::from_secs(self.lockout_window),
            lock: Duration::from_secs(self.lockout_duration),
        })
    }

    pub fn max_request_bytes(&self) -> usize {
        self.max_request_bytes.max(1024)
    }

    pub fn events(&self) -> EventSettings {
        EventSettings {
            poll_interval: Duration::from_millis(self.event_poll_interval_ms.max(10)),
            max_streams_per_key: usize::try_from(self.max_streams_per_key.max(1))
                .unwrap_or(usize::MAX),
            retention_days: self.event_retention_days,
            stream_buffer_bytes: usize::try_from(self.stream_buffer_bytes.max(65_536))
                .unwrap_or(usize::MAX),
        }
    }

    pub fn cache(&self) -> CacheSettings {
        CacheSettings {
            capacity: self.cache_capacity,
            max_bytes: self.cache_max_bytes,
            staleness: Duration::from_millis(self.cache_staleness_ms.max(1)),
        }
    }

    pub fn request_limits(&self) -> RequestLimits {
        RequestLimits {
            max_in_flight: usize::try_from(self.max_in_flight.max(1)).unwrap_or(usize::MAX),
            timeout: Duration::from_secs(self.request_timeout.max(1)),
        }
    }

    /// The relay's settings, when `--events-nats-url` is set; a bad name or prefix is
    /// refused at start.
    pub fn relay(&self) -> Result<Option<crate::relay::RelaySettings>, String> {
        let Some(url) = &self.events_nats_url else {
            return Ok(None);
        };
        let stream = &self.events_nats_stream;
        if stream.is_empty()
            || !stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "--events-nats-stream (TENANCY_EVENTS_NATS_STREAM) must be letters, digits, '_' or '-': {stream:?}"
            ));
        }
        let prefix = &self.events_nats_subject_prefix;
        let token_ok = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !prefix.split('.').all(token_ok) {
            return Err(format!(
                "--events-nats-subject-prefix (TENANCY_EVENTS_NATS_SUBJECT_PREFIX) must be dot-separated tokens of letters, digits, '_' or '-': {prefix:?}"
            ));
        }
        Ok(Some(crate::relay::RelaySettings {
            url: url.clone(),
            stream: stream.clone(),
            subject_prefix: prefix.clone(),
            duplicate_window: Duration::from_secs(self.events_nats_duplicate_window),
        }))
    }

    /// What access tokens say and how their keys rotate.
    pub fn token_settings(&self) -> crate::app::sessions::TokenSettings {
        crate::app::sessions::TokenSettings {
            issuer: self.token_issuer.clone(),
            audiences: self.token_audiences.clone(),
            lifetimes: self.session_lifetimes(),
            rotation_period: (self.signing_key_rotation_days > 0).then(|| {
                Duration::from_secs(self.signing_key_rotation_days.saturating_mul(24 * 3600))
            }),
            refresh_every: Duration::from_secs(self.signing_key_refresh_seconds.clamp(1, 30)),
        }
    }

    /// How long one-time recovery tokens live.
    pub fn recovery(&self) -> crate::app::recovery::RecoverySettings {
        crate::app::recovery::RecoverySettings {
            reset_ttl: Duration::from_secs(self.password_reset_minutes.max(1) * 60),
            verification_ttl: Duration::from_secs(self.email_verification_hours.max(1) * 3600),
        }
    }

    /// How long sessions and their access tokens live.
    pub fn session_lifetimes(&self) -> Lifetimes {
        Lifetimes {
            access_token: Duration::from_secs(self.access_token_minutes.clamp(1, 60) * 60),
            idle: Duration::from_secs(self.session_idle_seconds.max(1)),
            absolute: Duration::from_secs(self.session_lifetime_seconds.max(1)),
        }
    }

    pub fn invitation_ttl(&self) -> Duration {
        Duration::from_secs(self.invitation_ttl_hours.max(1) * 3600)
    }

    pub fn event_retention(&self) -> Duration {
        Duration::from_secs(self.event_retention_days * 24 * 3600)
    }

    pub fn request_id_retention(&self) -> Duration {
        Duration::from_secs(self.request_id_retention_hours.max(24) * 3600)
    }
}
