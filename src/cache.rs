//! In-process caches of the hot reads (API keys, `GetCustomer`, `GetEffectiveLimits`,
//! `CheckAccess`), and what keeps them within their staleness bound.
//!
//! Every entry names the ids it depends on; a change drops the entries depending on an
//! id it touched — at once for this process's writes (the store tells us on commit),
//! and when the event feed reads it for other instances' writes. A cache serves only
//! while its poller has confirmed, within the bound, that it has applied every change
//! committed before: when the poll fails or falls behind, reads go to the database.
//!
//! Each cache is bounded twice: in entries and in (estimated) bytes, so a few large
//! customers cannot hold more memory than the operator allowed.

use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
    mem::size_of,
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
    membership::{AccessFacts, Grant, MembershipTarget, ResourceKind},
};

/// The default of `--cache-max-bytes`: per cache, so at most five times this in all.
/// Enough for 10,000 typical customers (a few KiB each); it binds only when many carry
/// settings and metadata near their 16 KiB limits.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;

/// How big the caches are and how stale an answer may be.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Entries each cache holds at most; 0 turns caching off.
    pub capacity: usize,
    /// Estimated bytes each cache holds at most (see [`HeapSize`]); an entry larger than
    /// this is not cached.
    pub max_bytes: usize,
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

/// Bytes a key or value holds outside its inline size (strings, vectors, boxes), as an
/// estimate. Computed once, when an entry is stored; never on a read.
pub trait HeapSize {
    fn heap_size(&self) -> usize;
}

/// The bytes of `value` as compact JSON, counted without building the text; `usize::MAX`
/// (too large to cache) if it cannot be encoded.
pub fn encoded_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(bytes.len());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// What a JSON member costs in memory beyond its text: its key's `String`, its `Value`
/// and its share of the map's node.
const JSON_MEMBER_OVERHEAD: usize = 64;

fn strings_heap(strings: &[String]) -> usize {
    strings.iter().map(|s| size_of::<String>() + s.len()).sum()
}

impl HeapSize for Arc<Customer> {
    /// Its compact JSON (every string in it), plus each settings and metadata member's
    /// overhead, plus the inline struct the `Arc` points to.
    fn heap_size(&self) -> usize {
        let members = self.settings.len() + self.metadata.len();
        size_of::<Customer>()
            .saturating_add(encoded_len(&**self))
            .saturating_add(members * JSON_MEMBER_OVERHEAD)
    }
}

impl HeapSize for Arc<Vec<EffectiveLimit>> {
    fn heap_size(&self) -> usize {
        self.iter()
            .map(|limit| size_of::<EffectiveLimit>() + limit.key.len())
            .sum::<usize>()
            + size_of::<Vec<EffectiveLimit>>()
    }
}

impl HeapSize for AccessFacts {
    fn heap_size(&self) -> usize {
        let grant = |grant: &Option<Grant>| {
            grant
                .as_ref()
                .map_or(0, |grant| strings_heap(&grant.permissions))
        };
        grant(&self.member) + grant(&self.customer_member)
    }
}

impl HeapSize for Caller {
    fn heap_size(&self) -> usize {
        strings_heap(&self.scopes)
    }
}

impl HeapSize for CustomerKey {
    fn heap_size(&self) -> usize {
        match self {
            CustomerKey::Id(_) => 0,
            CustomerKey::Email(email) => email.as_str().len(),
            CustomerKey::ExternalId(text)
            | CustomerKey::CustomerKey(text)
            | CustomerKey::Subdomain(text)
            | CustomerKey::Hostname(text) => text.len(),
        }
    }
}

impl HeapSize for String {
    fn heap_size(&self) -> usize {
        self.len()
    }
}

impl HeapSize for Id {
    fn heap_size(&self) -> usize {
        0
    }
}

impl HeapSize for (Id, MembershipTarget) {
    fn heap_size(&self) -> usize {
        0
    }
}

impl HeapSize for (Id, ResourceKind) {
    fn heap_size(&self) -> usize {
        0
    }
}

impl HeapSize for Arc<Vec<Id>> {
    fn heap_size(&self) -> usize {
        size_of::<Vec<Id>>().saturating_add(size_of::<Id>().saturating_mul(self.len()))
    }
}

impl HeapSize for () {
    fn heap_size(&self) -> usize {
        0
    }
}

/// What one entry costs besides its key and value: the LRU map's node and hash slot.
const ENTRY_OVERHEAD: usize = 64;
/// What one dependency costs besides the key it holds a copy of: its `Id` in the entry,
/// and its place in the index of dependents.
const DEPENDENCY_OVERHEAD: usize = 48;

/// The estimated bytes of one entry: key and value, inline and on the heap, the map's
/// node, and a copy of the key in the index of each id it depends on.
fn entry_cost<K: HeapSize, V: HeapSize>(key: &K, value: &V, depends_on: &[Id]) -> usize {
    let key_cost = size_of::<K>().saturating_add(key.heap_size());
    let per_dependency = key_cost + size_of::<Id>() + DEPENDENCY_OVERHEAD;
    key_cost
        .saturating_add(size_of::<V>())
        .saturating_add(value.heap_size())
        .saturating_add(ENTRY_OVERHEAD)
        .saturating_add(per_dependency.saturating_mul(depends_on.len()))
}

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
    /// Estimated bytes of the entries held, never above the cache's byte bound.
    pub bytes: usize,
}

/// An LRU map bounded in entries and in estimated bytes, whose entries are dropped by
/// the ids they depend on.
pub struct DependentCache<K, V> {
    inner: Mutex<Inner<K, V>>,
    /// Bumped (under the lock) by every invalidation.
    generation: AtomicU64,
    capacity: usize,
    max_bytes: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    evictions: AtomicU64,
}

struct Entry<V> {
    value: V,
    depends_on: Vec<Id>,
    /// `entry_cost`, computed when stored.
    cost: usize,
}

struct Inner<K, V> {
    entries: LruCache<K, Entry<V>>,
    dependents: HashMap<Id, HashSet<K>>,
    /// The sum of the entries' costs.
    bytes: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Inner<K, V> {
    /// Removes `key`'s entry, with its links and its bytes.
    fn remove(&mut self, key: &K) -> bool {
        let Some(entry) = self.entries.remove(key) else {
            return false;
        };
        self.forget(key, &entry);
        true
    }

    fn forget(&mut self, key: &K, entry: &Entry<V>) {
        self.bytes = self.bytes.saturating_sub(entry.cost);
        self.unlink(key, &entry.depends_on);
    }

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

impl<K: Hash + Eq + Clone + HeapSize, V: Clone + HeapSize> DependentCache<K, V> {
    /// At most `capacity` entries and `max_bytes` estimated bytes; either at 0 caches
    /// nothing.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        DependentCache {
            inner: Mutex::new(Inner {
                entries: LruCache::new_unbounded(),
                dependents: HashMap::new(),
                bytes: 0,
            }),
            generation: AtomicU64::new(0),
            capacity,
            max_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// False when the cache holds nothing (a bound at 0).
    pub fn is_enabled(&self) -> bool {
        self.capacity > 0 && self.max_bytes > 0
    }

    /// The cached value of `key`, unless the cache is off, or `fresh` is false (the
    /// poller is late: the caller reads the database).
    pub fn get(&self, key: &K, fresh: bool) -> Option<V> {
        self.read(key, fresh, V::clone)
    }

    /// What `answer` makes of the entry of `key`, under the lock: for a hot path that
    /// needs one answer from a value, not a copy of it.
    pub fn read<R>(&self, key: &K, fresh: bool, answer: impl FnOnce(&V) -> R) -> Option<R> {
        if self.capacity == 0 {
            return None;
        }
        if !fresh {
            self.stale.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let found = self
            .lock()
            .entries
            .get(key)
            .map(|entry| answer(&entry.value));
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
    /// invalidation ran since (the value might predate it), then evicts the least
    /// recently used entries until both bounds hold. An entry larger than the byte bound
    /// is not stored (and drops the older entry of its key).
    pub fn insert(&self, ticket: Ticket, key: K, value: V, depends_on: Vec<Id>) {
        if self.capacity == 0 {
            return;
        }
        // Outside the lock: the only part of an insert that reads the whole value.
        let cost = entry_cost(&key, &value, &depends_on);
        let mut inner = self.lock();
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        inner.remove(&key);
        if cost > self.max_bytes {
            return;
        }
        for id in &depends_on {
            inner.dependents.entry(*id).or_default().insert(key.clone());
        }
        inner.bytes += cost;
        inner.entries.insert(
            key,
            Entry {
                value,
                depends_on,
                cost,
            },
        );
        while inner.entries.len() > self.capacity || inner.bytes > self.max_bytes {
            match inner.entries.remove_lru() {
                Some((evicted, entry)) => {
                    inner.forget(&evicted, &entry);
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
                inner.remove(&key);
            }
        }
    }

    pub fn clear(&self) {
        let mut inner = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        inner.entries.clear();
        inner.dependents.clear();
        inner.bytes = 0;
    }

    pub fn stats(&self) -> CacheStats {
        let (entries, bytes) = {
            let inner = self.lock();
            (inner.entries.len(), inner.bytes)
        };
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries,
            bytes,
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
    /// Per user and kind, every customer or account `ListAccessibleResources` weighs,
    /// in id order (the user's memberships, and the accounts of customers the user
    /// owns).
    pub candidates: DependentCache<(Id, ResourceKind), Arc<Vec<Id>>>,
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
            customers: DependentCache::new(settings.capacity, settings.max_bytes),
            limits: DependentCache::new(settings.capacity, settings.max_bytes),
            access: DependentCache::new(settings.capacity, settings.max_bytes),
            candidates: DependentCache::new(settings.capacity, settings.max_bytes),
            key_revocations: Freshness::new(settings.staleness),
            keys: DependentCache::new(settings.capacity, settings.max_bytes),
            unknown_keys: DependentCache::new(settings.capacity, settings.max_bytes),
            revoked_keys: tokio::sync::watch::Sender::new(Arc::default()),
        }
    }

    /// Drops the answers a change touching `ids` may have altered.
    pub fn changed(&self, ids: &[Id]) {
        self.customers.invalidate(ids);
        self.limits.invalidate(ids);
        self.access.invalidate(ids);
        self.candidates.invalidate(ids);
    }

    /// `(name, counters)` of each cache, for the periodic log line.
    pub fn stats(&self) -> [(&'static str, CacheStats); 6] {
        [
            ("customers", self.customers.stats()),
            ("limits", self.limits.stats()),
            ("access", self.access.stats()),
            ("candidates", self.candidates.stats()),
            ("keys", self.keys.stats()),
            ("unknown_keys", self.unknown_keys.stats()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl HeapSize for &'static str {
        fn heap_size(&self) -> usize {
            0
        }
    }

    impl HeapSize for u32 {
        fn heap_size(&self) -> usize {
            0
        }
    }

    fn cache() -> DependentCache<&'static str, u32> {
        DependentCache::new(2, DEFAULT_MAX_BYTES)
    }

    /// A cache bounded only by bytes, and the cost of one entry of `key` holding `len`
    /// bytes and depending on one id.
    fn bytes_cache(max_bytes: usize) -> DependentCache<String, String> {
        DependentCache::new(usize::MAX, max_bytes)
    }

    fn cost(key: &str, len: usize) -> usize {
        entry_cost(&key.to_string(), &"x".repeat(len), &[Id::generate()])
    }

    fn put(cache: &DependentCache<String, String>, key: &str, len: usize) -> Id {
        let id = Id::generate();
        cache.insert(cache.ticket(), key.into(), "x".repeat(len), vec![id]);
        id
    }

    /// The cost of what the cache holds, summed afresh from its entries.
    fn held(cache: &DependentCache<String, String>) -> usize {
        let inner = cache.lock();
        inner
            .entries
            .iter()
            .map(|(key, entry)| entry_cost(key, &entry.value, &entry.depends_on))
            .sum()
    }

    #[test]
    fn the_bytes_held_never_exceed_the_byte_bound() {
        let max_bytes = 10 * cost("k00", 1_000);
        let cache = bytes_cache(max_bytes);
        for i in 0..200usize {
            // 100 to 3,000 bytes, in no order.
            let len = 100 + (i * 7_919) % 2_900;
            put(&cache, &format!("k{i:02}"), len);
            let stats = cache.stats();
            assert!(
                stats.bytes <= max_bytes,
                "after {i}: {} > {max_bytes}",
                stats.bytes
            );
            assert_eq!(stats.bytes, held(&cache), "after {i}: the count is exact");
        }
        let stats = cache.stats();
        assert!(stats.entries > 3, "large entries evict, not all: {stats:?}");
        assert_eq!(stats.evictions, 200 - stats.entries as u64);
    }

    #[test]
    fn the_least_recently_used_entries_go_first_when_the_bytes_run_out() {
        let cache = bytes_cache(3 * cost("a", 1_000));
        let ids: Vec<Id> = ["a", "b", "c"]
            .into_iter()
            .map(|key| put(&cache, key, 1_000))
            .collect();
        assert!(cache.get(&"a".into(), true).is_some());
        // Twice the size of one: the two least recently used (b, then c) make room.
        put(&cache, "d", 1_900);
        assert!(cache.get(&"a".into(), true).is_some());
        assert!(cache.get(&"b".into(), true).is_none());
        assert!(cache.get(&"c".into(), true).is_none());
        assert!(cache.get(&"d".into(), true).is_some());
        assert_eq!(cache.stats().evictions, 2);
        assert!(!cache.lock().dependents.contains_key(&ids[1]));
        assert!(!cache.lock().dependents.contains_key(&ids[2]));
    }

    #[test]
    fn an_entry_larger_than_the_byte_bound_is_not_cached() {
        let max_bytes = cost("a", 1_000) + cost("big", 1_000);
        let cache = bytes_cache(max_bytes);
        put(&cache, "a", 1_000);
        put(&cache, "big", 1_000);
        let before = cache.stats();
        put(&cache, "huge", max_bytes);
        // The older entry of a key is dropped even when its new value is too large.
        put(&cache, "big", max_bytes);
        assert!(cache.get(&"huge".into(), true).is_none());
        assert!(cache.get(&"big".into(), true).is_none());
        assert!(
            cache.get(&"a".into(), true).is_some(),
            "nothing evicted for it"
        );
        let after = cache.stats();
        assert_eq!(after.evictions, before.evictions);
        assert_eq!((after.entries, after.bytes), (1, cost("a", 1_000)));
    }

    #[test]
    fn invalidating_and_clearing_give_the_bytes_back() {
        let cache = bytes_cache(DEFAULT_MAX_BYTES);
        let a = put(&cache, "a", 500);
        put(&cache, "b", 700);
        cache.invalidate(&[a]);
        assert_eq!(cache.stats().bytes, cost("b", 700));
        put(&cache, "b", 100);
        assert_eq!(
            cache.stats().bytes,
            cost("b", 100),
            "a replaced entry's bytes go"
        );
        cache.clear();
        assert_eq!(cache.stats().bytes, 0);
    }

    #[test]
    fn a_customer_with_large_metadata_weighs_at_least_its_json() {
        use crate::domain::customer::Customer;
        let customer: Customer = serde_json::from_value(serde_json::json!({
            "id": Id::generate(), "external_id": null, "tenant_id": "t",
            "customer_key": "abcdefghij", "customer_prefix": "AB", "status": "Active",
            "email": "a@example.com", "first_name": "A", "last_name": "B",
            "company_name": "", "customer_type": "Personal", "hostname": null,
            "subdomain": "ab", "country": null, "currency": null, "language": "en",
            "delinquent": false, "allowed_domains_origins": [],
            "allowed_domains_registration": [], "settings": {},
            "metadata": {"notes": "n".repeat(15_000)}, "limits": {}, "addresses": [],
            "telephones": [], "legal_documents": [], "owner_user_id": Id::generate(),
            "create_time": "2024-01-01T00:00:00Z", "update_time": "2024-01-01T00:00:00Z",
            "revision": 1
        }))
        .expect("a customer");
        let weight = Arc::new(customer).heap_size();
        assert!((15_000..20_000).contains(&weight), "{weight}");
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
                entries: 1,
                bytes: entry_cost(&"z", &3, &[]),
            }
        );
    }

    #[test]
    fn a_zero_capacity_caches_nothing() {
        let cache: DependentCache<&str, u32> = DependentCache::new(0, DEFAULT_MAX_BYTES);
        cache.insert(cache.ticket(), "x", 1, vec![]);
        assert_eq!(cache.get(&"x", true), None);
    }
}
