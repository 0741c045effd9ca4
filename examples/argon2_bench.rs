//! Raw argon2id throughput with the server's parameters, to compare the server's
//! sign-in rate with.
//!
//! ```text
//! cargo run --release --example argon2_bench -- --memory-kib 19456 --iterations 2 \
//!     --parallelism 1 --threads 2 --duration 10 [--hash] [--pool --concurrency 8] [--json]
//! ```
//!
//! Default mode: one password is hashed once, then `--threads` OS threads each verify it
//! in a loop for `--duration` seconds after a `--warmup`, with the server's own code
//! (`tenancy::hashing::verify_password`: the PHC string parsed per call, one argon2
//! memory buffer per thread reused across calls, as each hashing worker does). `--hash` times
//! hashing (a fresh salt per call) instead. `--pool` goes through the server's own
//! `tenancy::hashing::PasswordHasher` (`--threads` workers, `--concurrency` verifications
//! in flight from async tasks), which adds the queue and the wake-ups but no gRPC and no
//! database. The parameters default to `tenancy::hashing::Argon2Settings::default()`,
//! the server's defaults.

use std::{
    sync::{Arc, Barrier},
    thread,
    time::{Duration, Instant},
};

use clap::Parser;
use tenancy::{
    domain::password::Password,
    hashing::{Argon2Settings, ArgonMemory, PasswordHasher, hash_password, verify_password},
};

const PASSWORD: &str = "correct horse battery staple 42";

#[derive(Debug, Parser)]
#[command(
    name = "argon2_bench",
    about = "Time argon2id verification or hashing on N threads"
)]
struct Args {
    /// argon2id memory cost in KiB (server default).
    #[arg(long, default_value_t = Argon2Settings::default().memory_kib)]
    memory_kib: u32,
    /// argon2id iterations (server default).
    #[arg(long, default_value_t = Argon2Settings::default().iterations)]
    iterations: u32,
    /// argon2id lanes (server default).
    #[arg(long, default_value_t = Argon2Settings::default().parallelism)]
    parallelism: u32,
    /// OS threads (default: the cores, like the server's --hash-workers).
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds run before measuring (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Time hashing (fresh salt each) instead of verification.
    #[arg(long)]
    hash: bool,
    /// Go through tenancy::hashing::PasswordHasher (the server's pool) instead of bare
    /// threads.
    #[arg(long)]
    pool: bool,
    /// With --pool: operations in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Also print the figures as one `json: {...}` line.
    #[arg(long)]
    json: bool,
}

struct ThreadResult {
    count: u64,
    busy: Duration,
}

fn settings(args: &Args) -> Argon2Settings {
    Argon2Settings {
        memory_kib: args.memory_kib,
        iterations: args.iterations,
        parallelism: args.parallelism,
    }
}

fn hash_once(settings: &Argon2Settings, memory: &mut ArgonMemory) -> String {
    let params = settings.params().expect("valid argon2 parameters");
    hash_password(memory, &params, PASSWORD).expect("hashing")
}

fn verify_once(settings: &Argon2Settings, memory: &mut ArgonMemory, phc: &str) {
    let params = settings.params().expect("valid argon2 parameters");
    let verification = verify_password(memory, &params, PASSWORD, phc).expect("PHC string");
    assert!(verification.matches, "the password matches");
}

fn bare_threads(args: &Args, threads: usize, phc: &str) -> (Vec<ThreadResult>, Duration) {
    let settings = settings(args);
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let hash_mode = args.hash;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = barrier.clone();
            let phc = phc.to_string();
            thread::spawn(move || {
                let mut memory = ArgonMemory::new();
                let mut work = || {
                    if hash_mode {
                        std::hint::black_box(hash_once(&settings, &mut memory));
                    } else {
                        verify_once(&settings, &mut memory, &phc);
                    }
                };
                barrier.wait();
                let begun = Instant::now();
                while begun.elapsed() < warmup {
                    work();
                }
                let start = Instant::now();
                let mut result = ThreadResult {
                    count: 0,
                    busy: Duration::ZERO,
                };
                while start.elapsed() < duration {
                    let t = Instant::now();
                    work();
                    result.busy += t.elapsed();
                    result.count += 1;
                }
                (result, start.elapsed())
            })
        })
        .collect();
    barrier.wait();
    let mut results = Vec::new();
    let mut wall = Duration::ZERO;
    for handle in handles {
        let (result, elapsed) = handle.join().expect("bench thread panicked");
        wall = wall.max(elapsed);
        results.push(result);
    }
    (results, wall)
}

fn through_pool(args: &Args, threads: usize) -> (Vec<ThreadResult>, Duration) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let pool = PasswordHasher::start(settings(args), threads, 256).expect("pool");
        let password = Password::new(PASSWORD);
        let phc = pool.hash(&password).await.expect("hash");
        let warm_end = Instant::now() + Duration::from_secs_f64(args.warmup);
        let end = warm_end + Duration::from_secs_f64(args.duration);
        let tasks: Vec<_> = (0..args.concurrency.max(1))
            .map(|_| {
                let pool = pool.clone();
                let password = password.clone();
                let phc = phc.clone();
                let hash_mode = args.hash;
                tokio::spawn(async move {
                    let mut result = ThreadResult {
                        count: 0,
                        busy: Duration::ZERO,
                    };
                    loop {
                        let t = Instant::now();
                        if t >= end {
                            break;
                        }
                        if hash_mode {
                            pool.hash(&password).await.expect("hash");
                        } else {
                            let v = pool.verify(&password, Some(&phc)).await.expect("verify");
                            assert!(v.matches);
                        }
                        let done = Instant::now();
                        if t >= warm_end && done <= end {
                            result.busy += done - t;
                            result.count += 1;
                        }
                    }
                    result
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task panicked"));
        }
        (results, Duration::from_secs_f64(args.duration))
    })
}

fn main() {
    let args = Args::parse();
    let threads = args
        .threads
        .unwrap_or_else(|| {
            thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let s = settings(&args);
    let single = Instant::now();
    let phc = hash_once(&s, &mut ArgonMemory::new());
    let single_hash_ms = single.elapsed().as_secs_f64() * 1000.0;

    let (results, wall) = if args.pool {
        through_pool(&args, threads)
    } else {
        bare_threads(&args, threads, &phc)
    };
    let total: u64 = results.iter().map(|r| r.count).sum();
    let busy: Duration = results.iter().map(|r| r.busy).sum();
    let wall_s = wall.as_secs_f64();
    let per_second = total as f64 / wall_s;
    let mean_ms = if total == 0 {
        0.0
    } else {
        busy.as_secs_f64() * 1000.0 / total as f64
    };
    let op = if args.hash { "hashes" } else { "verifications" };
    let mode = if args.pool { "pool" } else { "threads" };

    let mut lines: Vec<(String, serde_json::Value)> = vec![
        (
            "mode".into(),
            format!("{mode}-{}", if args.hash { "hash" } else { "verify" }).into(),
        ),
        ("memory_kib".into(), s.memory_kib.into()),
        ("iterations".into(), s.iterations.into()),
        ("parallelism".into(), s.parallelism.into()),
        ("threads".into(), threads.into()),
        ("duration_s".into(), round3(wall_s).into()),
        ("single_hash_ms".into(), round3(single_hash_ms).into()),
        (op.into(), total.into()),
        (format!("{op}_per_s"), round3(per_second).into()),
        (
            format!("{op}_per_s_per_thread"),
            round3(per_second / threads as f64).into(),
        ),
    ];
    // Bare threads: time per operation. Pool: time per call, queueing included.
    let mean_key = if args.pool {
        "mean_latency_ms"
    } else {
        "mean_ms"
    };
    lines.push((mean_key.into(), round3(mean_ms).into()));
    if args.pool {
        lines.push(("concurrency".into(), args.concurrency.into()));
    } else {
        for (i, r) in results.iter().enumerate() {
            lines.push((format!("thread{i}_{op}"), r.count.into()));
        }
    }
    for (key, value) in &lines {
        match value {
            serde_json::Value::String(s) => println!("{key}: {s}"),
            other => println!("{key}: {other}"),
        }
    }
    if args.json {
        let object: serde_json::Map<String, serde_json::Value> = lines.into_iter().collect();
        println!("json: {}", serde_json::Value::Object(object));
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
