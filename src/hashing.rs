//! Password hashing on a bounded pool of OS threads, off the async runtime, so hashing
//! never stalls other RPCs; a full queue answers `RESOURCE_EXHAUSTED` instead of queueing
//! without bound.

use std::{
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, SaltString},
};
use crossbeam_channel::{RecvTimeoutError, Sender, TrySendError, bounded};
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::oneshot;

use crate::domain::{Error, Result, password::Password};

/// argon2id cost parameters (OWASP: m = 19 MiB, t = 2, p = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Settings {
    pub fn params(&self) -> Result<Params> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| Error::internal(format!("invalid argon2 parameters: {e}")))
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash was made with other parameters; re-hash it now.
    pub needs_rehash: bool,
}

type Job = Box<dyn FnOnce(&mut ArgonMemory) + Send>;

/// Holds every hashing worker before its next job while closed. Not a setting: tests
/// close it to look at what a request did *before* its password was checked (a sign-in
/// reserves its attempt first), deterministically.
#[derive(Clone, Default)]
pub struct HashingGate(Arc<(Mutex<bool>, Condvar)>);

impl std::fmt::Debug for HashingGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashingGate")
    }
}

impl HashingGate {
    /// A gate that holds the workers until `open`.
    pub fn closed() -> Self {
        let gate = Self::default();
        gate.close();
        gate
    }

    pub fn close(&self) {
        if let Ok(mut closed) = self.0.0.lock() {
            *closed = true;
        }
    }

    pub fn open(&self) {
        let (lock, changed) = &*self.0;
        if let Ok(mut closed) = lock.lock() {
            *closed = false;
        }
        changed.notify_all();
    }

    fn wait(&self) {
        let (lock, changed) = &*self.0;
        let Ok(closed) = lock.lock() else { return };
        let _open = changed.wait_while(closed, |closed| *closed);
    }
}

/// Hashes and verifies passwords on `workers` threads with a queue of `queue` jobs.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    jobs: Sender<Job>,
    /// Jobs dropped unrun because their caller had gone (cancelled, deadline passed).
    skipped: Arc<AtomicU64>,
    /// Bytes of argon2 memory the workers hold now.
    held: Arc<AtomicUsize>,
    /// Verified against when the email is unknown, so that costs what a real check does.
    dummy_hash: String,
    /// Seconds each job waited in the queue before a worker took it.
    waits: Histogram,
}

/// Upper bounds, in seconds, of the queue-wait histogram: a hash takes ~10-50 ms, so
/// waits from under one hash to the request timeout.
const WAIT_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One hashing worker's argon2 memory (`m_cost` KiB), allocated on its first hash and
/// reused by every later one until the worker idles for `IDLE_RELEASE`. Allocating it
/// per hash cost 19 MiB a call that glibc kept (RSS climbed ~19 MB per `CreateUser` to
/// 354 MB); kept for good, every worker held 19 MiB after any burst (RSS 69 MB after
/// the issue-10 burst, against 20 MB at start). Released when idle, RSS goes back to
/// near its start, and a burst pays one allocation per worker.
#[derive(Default)]
pub struct ArgonMemory {
    blocks: Vec<Block>,
    /// Bytes the pool's workers hold, shared by them (`PasswordHasher::memory_held`).
    held: Arc<AtomicUsize>,
}

/// How long a hashing worker waits for work before it frees its argon2 memory.
pub const IDLE_RELEASE: Duration = Duration::from_secs(1);

impl ArgonMemory {
    pub fn new() -> Self {
        Self::default()
    }

    fn counted(held: Arc<AtomicUsize>) -> Self {
        Self {
            blocks: Vec::new(),
            held,
        }
    }

    /// Frees the buffer (a later hash allocates it again).
    pub fn release(&mut self) {
        let bytes = std::mem::size_of_val(self.blocks.as_slice());
        self.blocks = Vec::new();
        self.held.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Runs `f` with at least `params.block_count()` blocks. A stored hash made with
    /// more memory than configured gets a buffer of its own for that one call, so
    /// the kept one stays the configured size.
    fn with_blocks<T>(
        &mut self,
        configured: &Params,
        needed: &Params,
        f: impl FnOnce(&mut [Block]) -> T,
    ) -> T {
        let count = needed.block_count();
        if count > configured.block_count() {
            return f(&mut vec![Block::default(); count]);
        }
        if self.blocks.len() < configured.block_count() {
            self.release();
            self.blocks = vec![Block::default(); configured.block_count()];
            self.held.fetch_add(
                std::mem::size_of_val(self.blocks.as_slice()),
                Ordering::Relaxed,
            );
        }
        f(&mut self.blocks[..count])
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// A PHC string for `password` with `params`, computed in `memory`.
pub fn hash_password(memory: &mut ArgonMemory, params: &Params, password: &str) -> Result<String> {
    let failed =
        |e: argon2::password_hash::Error| Error::internal(format!("argon2 hashing failed: {e}"));
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let mut salt_buffer = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buffer).map_err(failed)?;
    let hasher = argon2(params);
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = memory
        .with_blocks(params, params, |blocks| {
            Output::init_with(output_len, |out| {
                Ok(hasher.hash_password_into_with_memory(
                    password.as_bytes(),
                    salt_bytes,
                    out,
                    blocks,
                )?)
            })
        })
        .map_err(failed)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Checks `password` against the PHC string `phc` with the parameters stored in it,
/// computed in `memory`, and says whether it was made with `params`. The outputs are
/// compared in constant time (`password_hash::Output`'s `PartialEq`).
pub fn verify_password(
    memory: &mut ArgonMemory,
    params: &Params,
    password: &str,
    phc: &str,
) -> Result<Verification> {
    let parsed = PasswordHash::new(phc)
        .map_err(|e| Error::internal(format!("stored hash is not a PHC string: {e}")))?;
    let matches = recompute(memory, params, password, &parsed)
        .is_some_and(|(computed, expected)| computed == expected);
    let current = parsed.algorithm.as_str() == "argon2id"
        && parsed.version == Some(Version::V0x13.into())
        && Params::try_from(&parsed).is_ok_and(|stored| {
            stored.m_cost() == params.m_cost()
                && stored.t_cost() == params.t_cost()
                && stored.p_cost() == params.p_cost()
        });
    Ok(Verification {
        matches,
        needs_rehash: matches && !current,
    })
}

/// The output `password` gives under the hash's own algorithm, version, parameters
/// and salt, next to the stored one; `None` when the hash cannot be recomputed (an
/// unknown algorithm, no salt, bad parameters), which never matches.
fn recompute(
    memory: &mut ArgonMemory,
    configured: &Params,
    password: &str,
    parsed: &PasswordHash<'_>,
) -> Option<(Output, Output)> {
    let (salt, expected) = (parsed.salt?, parsed.hash?);
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = match parsed.version {
        Some(version) => Version::try_from(version).ok()?,
        None => Version::default(),
    };
    let stored = Params::try_from(parsed).ok()?;
    let hasher = Argon2::new(algorithm, version, stored.clone());
    let mut salt_buffer = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buffer).ok()?;
    let computed = memory
        .with_blocks(configured, &stored, |blocks| {
            Output::init_with(expected.len(), |out| {
                Ok(hasher.hash_password_into_with_memory(
                    password.as_bytes(),
                    salt_bytes,
                    out,
                    blocks,
                )?)
            })
        })
        .ok()?;
    Some((computed, expected))
}

/// The nice value of hashing threads, chosen by measurement (2 cores, SQLite, release,
/// load tools on the same cores; sign-ins at concurrency 8, a GetUser flood at 16). At
/// nice 19 (before) the flood starved sign-ins, 89/s alone and 10/s flooded (0.12),
/// while GetUser p99 did not move. At nice 8 sign-ins kept 0.50 of their rate with
/// GetUser p99 at 0.96x its value alone; at nice 0 they kept 0.66, with p99 at 1.8x
/// (the goals: at least 0.5, at most 3x); later runs with other builds loading the
/// machine gave 0.46-0.47 with p99 1.8-3.1x, so the margin is thin. Equal priority lets the scheduler split the
/// cores between sign-ins and reads instead of letting either starve the other. A
/// longer EEVDF slice for these threads (sched_setattr) measured no better.
const HASH_THREAD_NICE: libc::c_int = 0;

/// Puts this hashing thread at `HASH_THREAD_NICE`, whatever the process runs at.
fn set_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread; no memory is shared.
    unsafe {
        let thread_id = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread_id, HASH_THREAD_NICE);
    }
}

impl PasswordHasher {
    /// Starts `workers` hashing threads.
    pub fn start(settings: Argon2Settings, workers: usize, queue: usize) -> Result<Self> {
        Self::start_gated(settings, workers, queue, None)
    }

    /// `start`, with workers that pass `gate` before each job.
    pub fn start_gated(
        settings: Argon2Settings,
        workers: usize,
        queue: usize,
        gate: Option<HashingGate>,
    ) -> Result<Self> {
        let params = settings.params()?;
        let (jobs, receiver) = bounded::<Job>(queue.max(1));
        let held = Arc::new(AtomicUsize::new(0));
        for index in 0..workers.max(1) {
            let receiver = receiver.clone();
            let held = held.clone();
            let gate = gate.clone();
            thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    set_thread_priority();
                    let mut memory = ArgonMemory::counted(held);
                    loop {
                        let job = match receiver.recv_timeout(IDLE_RELEASE) {
                            Ok(job) => job,
                            Err(RecvTimeoutError::Timeout) => {
                                memory.release();
                                match receiver.recv() {
                                    Ok(job) => job,
                                    Err(_) => break,
                                }
                            }
                            Err(RecvTimeoutError::Disconnected) => break,
                        };
                        if let Some(gate) = &gate {
                            gate.wait();
                        }
                        job(&mut memory);
                    }
                })
                .map_err(Error::internal)?;
        }
        // Its memory is freed at once; the allocator policy (main.rs) returns it.
        let dummy_hash = hash_password(
            &mut ArgonMemory::new(),
            &params,
            "dummy password for unknown emails",
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                jobs,
                skipped: Arc::new(AtomicU64::new(0)),
                held,
                dummy_hash,
                waits: Histogram::new(WAIT_BUCKETS),
            }),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut ArgonMemory, &Params) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let params = self.inner.params.clone();
        let skipped = self.inner.skipped.clone();
        let waits = self.inner.waits.clone();
        let queued = Instant::now();
        let job: Job = Box::new(move |memory| {
            waits.observe(queued.elapsed().as_secs_f64());
            // The RPC that asked was dropped while this job queued: argon2's cost would
            // buy nothing, and under a flood of abandoned sign-ins starve live ones.
            if reply.is_closed() {
                skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let _ = reply.send(work(memory, &params));
        });
        match self.inner.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(Error::ResourceExhausted(
                    "too many password operations in progress; retry shortly".into(),
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(Error::internal("hashing pool stopped"));
            }
        }
        answer
            .await
            .map_err(|_| Error::internal("hashing worker dropped the job"))?
    }

    /// Bytes of argon2 memory the workers hold now: at most `workers x m_cost` during
    /// work, 0 once they have idled for `IDLE_RELEASE`.
    pub fn memory_held(&self) -> usize {
        self.inner.held.load(Ordering::Relaxed)
    }

    /// Jobs waiting for a worker now.
    pub fn queue_depth(&self) -> usize {
        self.inner.jobs.len()
    }

    /// The queue waits of every job so far (a handle onto the live histogram).
    pub fn queue_waits(&self) -> Histogram {
        self.inner.waits.clone()
    }

    /// How many jobs were skipped because their caller had gone.
    pub fn skipped_jobs(&self) -> u64 {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    /// A PHC string for `password` with the configured parameters.
    pub async fn hash(&self, password: &Password) -> Result<String> {
        let password = password.expose().to_string();
        self.run(move |memory, params| hash_password(memory, params, &password))
            .await
    }

    /// Checks `password` against `phc`; with no stored hash, checks against a dummy
    /// hash so the answer takes as long as a real one, and never matches.
    pub async fn verify(&self, password: &Password, phc: Option<&str>) -> Result<Verification> {
        let password = password.expose().to_string();
        let (phc, real) = match phc {
            Some(phc) => (phc.to_string(), true),
            None => (self.inner.dummy_hash.clone(), false),
        };
        let verification = self
            .run(move |memory, params| verify_password(memory, params, &password, &phc))
            .await?;
        Ok(if real {
            verification
        } else {
            Verification {
                matches: false,
                needs_rehash: false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cheap() -> Argon2Settings {
        Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_old_parameters_ask_for_a_rehash() {
        let hasher = PasswordHasher::start(cheap(), 1, 4).unwrap();
        let password = Password::new("a long enough secret");
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        let ok = hasher.verify(&password, Some(&hash)).await.unwrap();
        assert_eq!(
            ok,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        let wrong = hasher
            .verify(&Password::new("another secret!"), Some(&hash))
            .await
            .unwrap();
        assert!(!wrong.matches);

        let stronger = PasswordHasher::start(
            Argon2Settings {
                memory_kib: 128,
                ..cheap()
            },
            1,
            4,
        )
        .unwrap();
        let old = stronger.verify(&password, Some(&hash)).await.unwrap();
        assert_eq!(
            old,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
    }

    #[tokio::test]
    async fn unknown_users_never_match() {
        let hasher = PasswordHasher::start(cheap(), 1, 4).unwrap();
        let result = hasher
            .verify(&Password::new("dummy password for unknown emails"), None)
            .await
            .unwrap();
        assert!(!result.matches);
    }

    #[tokio::test]
    async fn a_job_whose_caller_has_gone_is_skipped() {
        let gate = HashingGate::closed();
        let hasher = PasswordHasher::start_gated(cheap(), 1, 8, Some(gate.clone())).unwrap();
        let password = Password::new("a long enough secret");
        // Queued behind the closed gate, then abandoned (as a cancelled RPC or a passed
        // deadline drops its future).
        for _ in 0..3 {
            let abandoned =
                tokio::time::timeout(Duration::from_millis(20), hasher.hash(&password)).await;
            assert!(abandoned.is_err(), "the gate holds the job");
        }
        let live = tokio::spawn({
            let hasher = hasher.clone();
            let password = password.clone();
            async move { hasher.hash(&password).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.open();
        live.await.unwrap().unwrap();
        assert_eq!(hasher.skipped_jobs(), 3);
    }

    #[tokio::test]
    async fn a_full_queue_is_resource_exhausted() {
        let slow = Argon2Settings {
            memory_kib: 8 * 1024,
            iterations: 3,
            parallelism: 1,
        };
        let hasher = PasswordHasher::start(slow, 1, 1).unwrap();
        let password = Password::new("a long enough secret");
        let results = futures::future::join_all((0..8).map(|_| hasher.hash(&password))).await;
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(Error::ResourceExhausted(_))))
        );
        assert!(results.iter().any(|r| r.is_ok()));
    }

    #[test]
    fn hashes_stay_standard_phc_strings_both_ways() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let params = cheap().params().unwrap();
        let password = "a long enough secret";
        // Stored before workers reused memory: made by the crate's own API.
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let old = argon2(&params)
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string();
        let mut memory = ArgonMemory::new();
        let checked = verify_password(&mut memory, &params, password, &old).unwrap();
        assert!(checked.matches && !checked.needs_rehash);
        assert!(
            !verify_password(&mut memory, &params, "another secret!", &old)
                .unwrap()
                .matches
        );
        // Made here: the crate's verifier accepts it, and only with the right password.
        let new = hash_password(&mut memory, &params, password).unwrap();
        let parsed = PasswordHash::new(&new).unwrap();
        assert!(
            argon2(&params)
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        );
        assert!(
            argon2(&params)
                .verify_password(b"another secret!", &parsed)
                .is_err()
        );
    }

    #[test]
    fn a_worker_keeps_one_buffer_of_the_configured_size() {
        let params = cheap().params().unwrap();
        let mut memory = ArgonMemory::new();
        let first = hash_password(&mut memory, &params, "a long enough secret").unwrap();
        let buffer = memory.blocks.as_ptr();
        assert_eq!(memory.blocks.len(), params.block_count());
        for _ in 0..3 {
            let hash = hash_password(&mut memory, &params, "a long enough secret").unwrap();
            verify_password(&mut memory, &params, "a long enough secret", &hash).unwrap();
        }
        assert_eq!(memory.blocks.as_ptr(), buffer, "the buffer was reallocated");
        // A hash stored with more memory than configured verifies (and asks for a
        // re-hash) without growing the kept buffer.
        let bigger = Argon2Settings {
            memory_kib: 256,
            ..cheap()
        }
        .params()
        .unwrap();
        let stored =
            hash_password(&mut ArgonMemory::new(), &bigger, "a long enough secret").unwrap();
        let checked =
            verify_password(&mut memory, &params, "a long enough secret", &stored).unwrap();
        assert_eq!(
            checked,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
        assert_eq!(memory.blocks.len(), params.block_count());
        assert!(
            verify_password(&mut memory, &params, "a long enough secret", &first)
                .unwrap()
                .matches
        );
    }

    #[tokio::test]
    async fn idle_workers_free_their_memory() {
        let hasher = PasswordHasher::start(cheap(), 2, 8).unwrap();
        let password = Password::new("a long enough secret");
        assert_eq!(hasher.memory_held(), 0, "nothing is held before work");
        let hash = hasher.hash(&password).await.unwrap();
        let one_buffer = 64 * 1024;
        assert!(hasher.memory_held() >= one_buffer);
        assert!(hasher.memory_held() <= 2 * one_buffer);
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap().matches);
        tokio::time::sleep(IDLE_RELEASE * 2).await;
        assert_eq!(hasher.memory_held(), 0, "idle workers keep no buffer");
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap().matches);
        assert!(hasher.memory_held() >= one_buffer, "work allocates again");
    }

    #[test]
    fn hashes_that_cannot_be_recomputed_never_match() {
        let params = cheap().params().unwrap();
        let mut memory = ArgonMemory::new();
        let hash = hash_password(&mut memory, &params, "a long enough secret").unwrap();
        let unknown_algorithm = hash.replacen("argon2id", "scrypt", 1);
        let no_output = hash
            .rsplit_once('$')
            .map(|(head, _)| head.to_string())
            .unwrap();
        for phc in [unknown_algorithm, no_output] {
            let checked = verify_password(&mut memory, &params, "a long enough secret", &phc);
            assert!(checked.is_ok_and(|v| !v.matches), "{phc}");
        }
        assert!(verify_password(&mut memory, &params, "x", "not a phc string").is_err());
    }
}
