//! Use cases: each public method is one thing a caller can ask for. They validate with
//! `domain`, hash on the password pool, and persist through `store`.

pub mod accounts;
pub mod api_keys;
pub mod customers;
mod events;
pub mod members;
pub mod recovery;
pub mod roles;
pub mod sessions;
pub mod users;

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use crate::{
    cache::{CacheSettings, CacheStats, Caches},
    domain::{
        Result,
        page::{Page, PageRequest, PageTokens},
        violations::Violations,
    },
    hashing::PasswordHasher,
    store::{Store, ThrottlePolicy},
};

pub use events::{EventSettings, EventStream};

/// Runs a write once more when the database rolled it back for colliding with a
/// concurrent one (`Error::Contention`: a deadlock or serialization failure). Such a
/// transaction wrote nothing, so running it again is the same request arriving anew;
/// a second collision goes back to the caller as retryable `ABORTED`.
async fn once_more_on_contention<T, F, Fut>(mut write: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    match write().await {
        Err(crate::domain::Error::Contention) => {
            tracing::debug!("a write collided with a concurrent one; running it once more");
            write().await
        }
        other => other,
    }
}

/// Everything a use case needs; cheap to clone: one reference count, since every
/// request clones it (into the auth layer's service, the HTTP router's state).
#[derive(Clone)]
pub struct App(Arc<AppParts>);

impl std::ops::Deref for App {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// What an `App` holds.
pub struct AppParts {
    pub store: Store,
    hasher: PasswordHasher,
    secret: [u8; 32],
    page_tokens: PageTokens,
    throttle: ThrottlePolicy,
    invitation_ttl: std::time::Duration,
    /// Becomes `true` when the server starts shutting down; long streams end then.
    shutting_down: watch::Receiver<bool>,
    events: events::EventFeed,
    caches: Arc<Caches>,
    sign_ins: Arc<SignInCounters>,
    signing: Arc<sessions::Signing>,
    recovery: recovery::RecoverySettings,
}

/// What the sign-in throttle did, since start.
#[derive(Debug, Default)]
struct SignInCounters {
    /// Emails locked by a failed sign-in.
    lockouts: std::sync::atomic::AtomicU64,
    /// Sign-ins (and password checks) refused because their email was locked.
    refused_locked: std::sync::atomic::AtomicU64,
}

/// A reading of the process's queues, pools, streams and caches, for the metrics.
#[derive(Debug, Clone)]
pub struct Vitals {
    pub hash_queue_depth: usize,
    pub pool: crate::store::PoolStats,
    /// The newest event sequence this process's event feed has read.
    pub event_head: i64,
    /// Each open event stream: its key, a process-local number, and how many events
    /// behind the feed's head it is.
    pub streams: Vec<StreamLag>,
    pub caches: [(&'static str, CacheStats); 6],
    pub lockouts: u64,
    pub refused_locked: u64,
}

pub use events::StreamLag;

/// Settings of the use cases that are not about connections.
#[derive(Debug, Clone, Copy)]
pub struct AppSettings {
    pub throttle: ThrottlePolicy,
    pub events: EventSettings,
    /// How long an invitation token stays valid.
    pub invitation_ttl: std::time::Duration,
    pub cache: CacheSettings,
    pub recovery: recovery::RecoverySettings,
}

/// How often the caches' counters are logged (when they changed).
const CACHE_STATS_EVERY: Duration = Duration::from_secs(60);

impl App {
    /// Builds the use cases over a migrated store, and starts the event feed (which
    /// stops when `shutting_down` turns true).
    pub async fn new(
        store: Store,
        hasher: PasswordHasher,
        signing: sessions::Signing,
        settings: AppSettings,
        shutting_down: watch::Receiver<bool>,
    ) -> Result<App> {
        let secret = store.server_secret().await?;
        if settings.cache.staleness <= settings.events.poll_interval {
            tracing::warn!(
                staleness = ?settings.cache.staleness,
                poll_interval = ?settings.events.poll_interval,
                "--cache-staleness-ms is not above --event-poll-interval-ms: the caches \
                 will mostly be bypassed"
            );
        }
        let caches = Arc::new(Caches::new(settings.cache));
        store.on_commit({
            let caches = caches.clone();
            Arc::new(move |ids| caches.changed(ids))
        });
        let events = events::EventFeed::start(
            store.clone(),
            settings.events,
            caches.clone(),
            shutting_down.clone(),
        )
        .await?;
        // Revocations write no event: a poll of their count tells every instance. It
        // polls at least twice per staleness bound, so one slow poll does not yet make
        // the key cache bypassed.
        let key_poll = settings
            .events
            .poll_interval
            .min(settings.cache.staleness / 2);
        tokio::spawn(api_keys::watch_revocations(
            store.clone(),
            caches.clone(),
            key_poll,
            shutting_down.clone(),
        ));
        tokio::spawn(log_cache_stats(caches.clone(), shutting_down.clone()));
        let signing = Arc::new(signing);
        tokio::spawn(sessions::refresh_ring(
            store.clone(),
            signing.clone(),
            shutting_down.clone(),
        ));
        Ok(App(Arc::new(AppParts {
            store,
            hasher,
            secret,
            page_tokens: PageTokens::new(secret),
            throttle: settings.throttle,
            invitation_ttl: settings.invitation_ttl,
            shutting_down,
            events,
            caches,
            sign_ins: Arc::default(),
            signing,
            recovery: settings.recovery,
        })))
    }

    /// Reads the gauges and counters the metrics report; cheap (no database call).
    pub fn vitals(&self) -> Vitals {
        use std::sync::atomic::Ordering::Relaxed;
        Vitals {
            hash_queue_depth: self.hasher.queue_depth(),
            pool: self.store.pool_stats(),
            event_head: self.events.head(),
            streams: self.events.stream_lags(),
            caches: self.caches.stats(),
            lockouts: self.sign_ins.lockouts.load(Relaxed),
            refused_locked: self.sign_ins.refused_locked.load(Relaxed),
        }
    }

    /// The live histogram of password jobs' queue waits.
    pub fn hash_queue_waits(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.hasher.queue_waits()
    }

    /// The counters of each cache (`customers`, `limits`, `access`, `keys`,
    /// `unknown_keys`).
    pub fn cache_stats(&self) -> [(&'static str, CacheStats); 6] {
        self.caches.stats()
    }

    /// The page a list request asks for, bound to its canonical filter; a bad size or
    /// token is recorded in `violations` with the request's other faults.
    fn page_request(
        &self,
        violations: &mut Violations,
        canonical: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<Option<PageRequest>> {
        match self.page_tokens.request(canonical, page_size, page_token) {
            Ok(page) => Ok(Some(page)),
            Err(error) => {
                violations.absorb(error)?;
                Ok(None)
            }
        }
    }

    /// A page's items and the token of the next page (empty at the end).
    fn page_answer<T>(&self, canonical: &str, page: Page<T>) -> (Vec<T>, String) {
        let next = self.page_tokens.next_token(canonical, &page);
        (page.items, next)
    }

    /// The key that makes request fingerprints unforgeable.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

/// One info line per cache whose counters moved since the last, so hit rates show in the
/// log without a metrics endpoint.
async fn log_cache_stats(caches: Arc<Caches>, mut shutting_down: watch::Receiver<bool>) {
    let mut last = caches.stats();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CACHE_STATS_EVERY) => {}
            _ = shutting_down.wait_for(|down| *down) => return,
        }
        let now = caches.stats();
        for ((name, stats), (_, before)) in now.iter().zip(last.iter()) {
            if stats != before {
                tracing::info!(
                    cache = name,
                    hits = stats.hits,
                    misses = stats.misses,
                    stale = stats.stale,
                    entries = stats.entries,
                    "cache counters"
                );
            }
        }
        last = now;
    }
}
