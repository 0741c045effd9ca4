//! [`Verifier`]: access tokens verified offline against a cached JWKS, refetched when a
//! token names a key it lacks (at most once per 30 s) and when it grows old.

use std::{sync::RwLock, time::Duration};

use ed25519_dalek::VerifyingKey;
use tokio::{sync::Mutex, time::Instant};

use crate::{
    jwks::{GrpcJwks, JwksSource, KeySet},
    token::{AccessClaims, Expected, Unverified, VerifyError, unix_now},
};

/// Verifies tenancy access tokens offline: signature, `exp` (with a leeway), `iss`,
/// `aud` and `typ`, against the keys of a [`JwksSource`] cached by `kid`.
///
/// The key set is fetched on the first token; again when a token names an unknown
/// `kid`, at most once per [`Verifier::refetch_interval`] (30 s) so that forged `kid`s
/// cannot make it hammer tenancy; and again on the first token after
/// [`Verifier::max_age`] (10 min), so a key withdrawn from the set stops verifying.
/// A failed fetch keeps the keys already cached. Share one verifier per process (in an
/// `Arc`), so that every task uses its one cache.
#[derive(Debug)]
pub struct Verifier<S = GrpcJwks> {
    source: S,
    expected: Expected,
    refetch_interval: Duration,
    max_age: Duration,
    cache: RwLock<Cache>,
    /// Held while fetching, so that tokens arriving meanwhile wait for that fetch
    /// rather than start their own.
    fetching: Mutex<()>,
}

#[derive(Debug, Default)]
struct Cache {
    keys: KeySet,
    /// When the last fetch was tried, successful or not.
    fetched_at: Option<Instant>,
    /// Why the last fetch failed; `None` after a success.
    error: Option<String>,
}

impl Verifier<GrpcJwks> {
    /// A verifier fetching the JWKS with `SessionService.GetJwks` over `channel`.
    pub fn grpc(channel: tonic::transport::Channel, expected: Expected) -> Self {
        Self::new(GrpcJwks::new(channel), expected)
    }
}

impl<S: JwksSource> Verifier<S> {
    /// A verifier over `source` expecting `expected`; nothing is fetched until the
    /// first token.
    pub fn new(source: S, expected: Expected) -> Self {
        Self {
            source,
            expected,
            refetch_interval: Duration::from_secs(30),
            max_age: Duration::from_secs(600),
            cache: RwLock::new(Cache::default()),
            fetching: Mutex::new(()),
        }
    }

    /// The least time between two fetches caused by unknown `kid`s (30 s by default).
    pub fn refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// How long a fetched key set is used before the next token refetches it (10 min
    /// by default; never less than the refetch interval).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    pub fn expected(&self) -> &Expected {
        &self.expected
    }

    /// Verifies `token` now and returns its claims, or the first rule it breaks.
    /// Suspends only to fetch the JWKS.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let token = Unverified::parse(token)?;
        let key = self.key(&token.kid).await?;
        token.verify(&key, &self.expected, unix_now())
    }

    /// The key named `kid`: from the cache while it is fresh, else after one fetch
    /// when the rate limit allows.
    async fn key(&self, kid: &str) -> Result<VerifyingKey, VerifyError> {
        if let Some(key) = self.lookup(kid, Instant::now()).0 {
            return Ok(key);
        }
        let _fetching = self.fetching.lock().await;
        // Another token may have fetched while this one waited.
        let now = Instant::now();
        let (found, may_fetch) = self.lookup(kid, now);
        if let Some(key) = found {
            return Ok(key);
        }
        if may_fetch {
            let fetched = self.source.fetch().await;
            let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
            cache.fetched_at = Some(now);
            match fetched {
                Ok(jwks) => {
                    cache.keys = KeySet::new(&jwks);
                    cache.error = None;
                }
                Err(error) => cache.error = Some(error),
            }
        }
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        match (cache.keys.get(kid), &cache.error) {
            (Some(key), _) => Ok(*key),
            (None, Some(error)) => Err(VerifyError::JwksUnavailable(error.clone())),
            (None, None) => Err(VerifyError::UnknownKey {
                kid: kid.to_owned(),
            }),
        }
    }

    /// The cached key if the set is fresh, and whether a fetch may happen now.
    fn lookup(&self, kid: &str, now: Instant) -> (Option<VerifyingKey>, bool) {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let age = cache.fetched_at.map(|at| now.saturating_duration_since(at));
        let stale = age.is_none_or(|age| age >= self.max_age.max(self.refetch_interval));
        if stale {
            return (None, true);
        }
        match cache.keys.get(kid) {
            Some(key) => (Some(*key), false),
            None => (None, age.is_none_or(|age| age >= self.refetch_interval)),
        }
    }
}

#[cfg(test)]
#[path = "verifier_tests.rs"]
mod tests;
