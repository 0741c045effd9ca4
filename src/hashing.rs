//! Password hashing on a bounded pool of OS threads, off the async runtime, so hashing
//! never stalls other RPCs; a full queue answers `RESOURCE_EXHAUSTED` instead of queueing
//! without bound.

use std::{
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread,
};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
    password_hash::SaltString,
};
use crossbeam_channel::{Sender, TrySendError, bounded};
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

type Job = Box<dyn FnOnce() + Send>;

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
    /// Verified against when the email is unknown, so that costs what a real check does.
    dummy_hash: String,
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_now(params: &Params, password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::internal(format!("argon2 hashing failed: {e}")))
}

fn verify_now(params: &Params, password: &str, phc: &str) -> Result<Verification> {
    let parsed = PasswordHash::new(phc)
        .map_err(|e| Error::internal(format!("stored hash is not a PHC string: {e}")))?;
    let matches = argon2(params)
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
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

/// Runs this hashing thread at the lowest CPU priority. Hashes saturate every core
/// under sign-in load; at equal priority the scheduler shares the cores evenly with
/// the async runtime, and every other RPC waits its turn behind argon2 (GetUser p99
/// rose ~4x under load; at nice 19 ~2x, with sign-in throughput unchanged).
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread; no memory is shared.
    unsafe {
        let thread_id = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread_id, 19);
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
        for index in 0..workers.max(1) {
            let receiver = receiver.clone();
            let gate = gate.clone();
            thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    lower_thread_priority();
                    while let Ok(job) = receiver.recv() {
                        if let Some(gate) = &gate {
                            gate.wait();
                        }
                        job();
                    }
                })
                .map_err(Error::internal)?;
        }
        let dummy_hash = hash_now(&params, "dummy password for unknown emails")?;
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                jobs,
                skipped: Arc::new(AtomicU64::new(0)),
                dummy_hash,
            }),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Params) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let params = self.inner.params.clone();
        let skipped = self.inner.skipped.clone();
        let job: Job = Box::new(move || {
            // The RPC that asked was dropped while this job queued: argon2's cost would
            // buy nothing, and under a flood of abandoned sign-ins starve live ones.
            if reply.is_closed() {
                skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let _ = reply.send(work(&params));
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

    /// How many jobs were skipped because their caller had gone.
    pub fn skipped_jobs(&self) -> u64 {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    /// A PHC string for `password` with the configured parameters.
    pub async fn hash(&self, password: &Password) -> Result<String> {
        let password = password.expose().to_string();
        self.run(move |params| hash_now(params, &password)).await
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
            .run(move |params| verify_now(params, &password, &phc))
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
}
