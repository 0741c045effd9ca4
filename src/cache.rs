//! In-process caches of the hot reads (API keys, `GetCustomer`, `GetEffectiveLimits`,
//! `CheckAccess`), and what keeps them within their staleness bound.
//!
//! Every entry names the ids it depends on; a change drops the entries depending on an
//! id it touched — at once for this process's writes (the store tells us on commit),
//! and when the event feed reads it for other instances' writes. A cache serves only
//! while its poller has confirmed, within the bound, that it has applied every change
//! committed before: when the poll fails or falls behind, reads go to the database.

use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hashlink::LruCache;

use crate::domain::{
    api_key::Caller,
    customer::{Customer, CustomerKey},
    id::Id,
    limits::EffectiveLimit,
    membership::{AccessFacts, MembershipTarget},
};

/// How big the caches are and how stale an answer may be.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Entries each cache holds at most; 0 turns caching off.
    pub capacity: usize,
    /// No cached answer reflects the database as of longer ago than this.
    pub staleness: Duration,
}

/// When a poller last confirmed that every change committed before that moment has been
/// applied to its caches.
pub struct Freshness {
    origin: Instant,
    /// Microseconds from `origin` to the confirmed moment, plus one; 0 = never.
    confirmed: AtomicU64,
    bound: Duration,
}

impl Freshness {
    pub fn new(bound: Duration) -> Freshness {
        Freshness {
            origin: Instant::now(),
            confirmed: AtomicU64::new(0),
            bound,
        }
    }

    /// Every change committed before `as_of` has been applied. `as_of` must be taken
    /// before the read that saw those changes began.
    pub fn confirm(&self, as_of: Instant) {
        let micros = as_of.saturating_duration_since(self.origin).as_micros();
        let micros = u64::try_from(micros).unwrap_or(u64::MAX - 1) + 1;
        self.confirmed.fetch_max(micros, Ordering::AcqRel);
    }

    /// Whether a cached answer may be served now.
    pub fn is_fresh(&self) -> bool {
        let confirmed = self.confirmed.load(Ordering::Acquire);
        if confirmed == 0 {
            return false;
        }
        let now = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        now.saturating_sub(confirmed - 1) <= u64::try_from(self.bound.as_micros()).unwrap_or(0)
    }
}

/// Taken before the database read whose answer is to be cached: an answer read while a
/// change was being applied is not stored, since it may predate the change.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

/// Counters of one cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Reads that went to the database because the poller had not confirmed freshness
    /// within the bound.
    pub stale: u64,
    /// Entries dropped to make room (not by invalidation).
    pub evictions: u64,
    pub entries: usize,
}

/// A size-bounded LRU map whose entries are dropped by the ids they depend on.
pub struct DependentCache<K, V> {
    inner: Mutex<Inner<K, V>>,
    /// Bumped (under the lock) by every invalidation.
    generation: AtomicU64,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    evictions: AtomicU64,
}

struct Inner<K, V> {
    entries: LruCache<K, (V, Vec<Id>)>,
    dependents: HashMap<Id, HashSet<K>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Inner<K, V> {
    fn unlink(&mut self, key: &K, ids: &[Id]) {
        for id in ids {
            if let Some(keys) = self.dependents.get_mut(id) {
                keys.remove(key);
                if keys.is_empty() {
                    self.dependents.remove(id);
                }
            }
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> DependentCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        DependentCache {
            inner: Mutex::new(Inner {
                entries: LruCache::new_unbounded(),
                dependents: HashMap::new(),
            }),
            generation: AtomicU64::new(0),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached value of `key`, unless the cache is off, or `fresh` is false (the
    /// poller is late: the caller reads the database).
    pub fn get(&self, key: &K, fresh: bool) -> Option<V> {
        if self.capacity == 0 {
            return None;
        }
        if !fresh {
            self.stale.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let found = self.lock().entries.get(key).map(|(value, _)| value.clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    /// Stores `value`, read from the database after `ticket` was taken, unless an
    /// invalidation ran since (the value might predate it).
    pub fn insert(&self, ticket: Ticket, key: K, value: V, depends_on: Vec<Id>) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if let Some((_, old)) = inner.entries.remove(&key) {
            inner.unlink(&key, &old);
        }
        for id in &depends_on {
            inner.dependents.entry(*id).or_default().insert(key.clone());
        }
        inner.entries.insert(key, (value, depends_on));
        while inner.entries.len() > self.capacity {
            match inner.entries.remove_lru() {
                Some((evicted, (_, ids))) => {
                    inner.unlink(&evicted, &ids);
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                }
                None => break,
            }
        }
    }

    /// Drops every entry that depends on one of `ids`.
    pub fn invalidate(&self, ids: &[Id]) {
        let mut inner = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        for id in ids {
            let Some(keys) = inner.dependents.remove(id) else {
                continue;
            };
            for key in keys {
                if let Some((_, others)) = inner.entries.remove(&key) {
                    inner.unlink(&key, &others);
                }
            }
        }
    }

    pub fn clear(&self) {
        let mut inner = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        inner.entries.clear();
        inner.dependents.clear();
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries: self.lock().entries.len(),
        }
    }
}

/// The process's caches: the answers of the hot reads, and the live API keys.
pub struct Caches {
    /// Confirmed by the event feed.
    pub changes: Freshness,
    pub customers: DependentCache<CustomerKey, Arc<Customer>>,
    pub limits: DependentCache<Id, Arc<Vec<EffectiveLimit>>>,
    pub access: DependentCache<(Id, MembershipTarget), AccessFacts>,
    /// Confirmed by the key watch (revocations write no event).
    pub key_revocations: Freshness,
    /// Live keys by digest; unknown and revoked keys are never stored here.
    pub keys: DependentCache<String, Caller>,
    /// Digests of keys that are unknown (or revoked): refused without a read. Emptied
    /// with `keys` when the key watch sees a key created or revoked; a cache of its own,
    /// so a flood of made-up keys evicts only other made-up keys.
    pub unknown_keys: DependentCache<String, ()>,
    /// The ids of revoked keys as the key watch last read them: open streams end when
    /// their key appears here.
    pub revoked_keys: tokio::sync::watch::Sender<Arc<HashSet<Id>>>,
}

impl Caches {
    pub fn new(settings: CacheSettings) -> Caches {
        Caches {
            changes: Freshness::new(settings.staleness),
            customers: DependentCache::new(settings.capacity),
            limits: DependentCache::new(settings.capacity),
            access: DependentCache::new(settings.capacity),
            key_revocations: Freshness::new(settings.staleness),
            keys: DependentCache::new(settings.capacity),
            unknown_keys: DependentCache::new(settings.capacity),
            revoked_keys: tokio::sync::watch::Sender::new(Arc::default()),
        }
    }

    /// Drops the answers a change touching `ids` may have altered.
    pub fn changed(&self, ids: &[Id]) {
        self.customers.invalidate(ids);
        self.limits.invalidate(ids);
        self.access.invalidate(ids);
    }

    /// `(name, counters)` of each cache, for the periodic log line.
    pub fn stats(&self) -> [(&'static str, CacheStats); 5] {
        [
            ("customers", self.customers.stats()),
            ("limits", self.limits.stats()),
            ("access", self.access.stats()),
            ("keys", self.keys.stats()),
            ("unknown_keys", self.unknown_keys.stats()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> DependentCache<&'static str, u32> {
        DependentCache::new(2)
    }

    #[test]
    fn an_invalidation_drops_exactly_the_dependents_of_its_ids() {
        let (a, b) = (Id::generate(), Id::generate());
        let cache = cache();
        cache.insert(cache.ticket(), "x", 1, vec![a]);
        cache.insert(cache.ticket(), "y", 2, vec![b]);
        cache.invalidate(&[a]);
        assert_eq!(cache.get(&"x", true), None);
        assert_eq!(cache.get(&"y", true), Some(2));
    }

    #[test]
    fn a_value_read_before_an_invalidation_is_not_stored() {
        let a = Id::generate();
        let cache = cache();
        let ticket = cache.ticket();
        cache.invalidate(&[Id::generate()]);
        cache.insert(ticket, "x", 1, vec![a]);
        assert_eq!(cache.get(&"x", true), None);
    }

    #[test]
    fn the_least_recently_used_entry_goes_when_full_and_its_links_with_it() {
        let (a, b, c) = (Id::generate(), Id::generate(), Id::generate());
        let cache = cache();
        cache.insert(cache.ticket(), "x", 1, vec![a]);
        cache.insert(cache.ticket(), "y", 2, vec![b]);
        assert_eq!(cache.get(&"x", true), Some(1));
        cache.insert(cache.ticket(), "z", 3, vec![c]);
        assert_eq!(cache.get(&"y", true), None);
        assert_eq!(cache.get(&"x", true), Some(1));
        assert_eq!(cache.stats().entries, 2);
        assert!(!cache.lock().dependents.contains_key(&b));
    }

    #[test]
    fn nothing_is_served_when_freshness_is_unconfirmed() {
        let cache = cache();
        cache.insert(cache.ticket(), "x", 1, vec![]);
        assert_eq!(cache.get(&"x", false), None);
        assert_eq!(cache.stats().stale, 1);
    }

    #[test]
    fn freshness_lapses_after_its_bound() {
        let freshness = Freshness::new(Duration::from_millis(50));
        assert!(!freshness.is_fresh());
        freshness.confirm(Instant::now());
        assert!(freshness.is_fresh());
        std::thread::sleep(Duration::from_millis(80));
        assert!(!freshness.is_fresh());
    }

    #[test]
    fn hits_misses_and_stale_reads_are_counted() {
        let cache = cache();
        cache.get(&"x", true);
        cache.insert(cache.ticket(), "x", 1, vec![]);
        cache.get(&"x", true);
        cache.get(&"x", true);
        cache.get(&"x", false);
        // Capacity 2: the third entry evicts the least recently used; an invalidation
        // is not an eviction.
        cache.insert(cache.ticket(), "y", 2, vec![]);
        cache.insert(cache.ticket(), "z", 3, vec![]);
        let id = Id::generate();
        cache.insert(cache.ticket(), "w", 4, vec![id]);
        cache.invalidate(&[id]);
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 2,
                misses: 1,
                stale: 1,
                evictions: 2,
                entries: 1
            }
        );
    }

    #[test]
    fn a_zero_capacity_caches_nothing() {
        let cache: DependentCache<&str, u32> = DependentCache::new(0);
        cache.insert(cache.ticket(), "x", 1, vec![]);
        assert_eq!(cache.get(&"x", true), None);
    }
}
