//! A closed-loop load generator for a running tenancy server.
//!
//! ```text
//! cargo run --release --example loadgen -- --target http://127.0.0.1:50051 --key KEY \
//!     --rpc AuthenticateUser --concurrency 8 --duration 20 [--warmup 3] [--users 64]
//! cargo run --release --example loadgen -- --key KEY --rpc GetUser --concurrency 4 \
//!     --background-rpc AuthenticateUser --background-concurrency 8 --duration 15
//! ```
//!
//! `--concurrency` workers share `--channels` HTTP/2 connections; each worker sends one
//! request, waits for its answer, and sends the next (a closed loop: there is no fixed
//! arrival rate, so a slow server is offered less load and no coordinated-omission
//! correction is made). Every request is timed with `Instant` from just before the call
//! to its answer; a request counts when it *completes* inside the measured window,
//! which starts after `--warmup` and lasts `--duration` seconds. Requests still in flight
//! when the window closes are cancelled and not counted.
//!
//! With `--rate R` the measured RPC runs open loop instead: R requests per second in
//! total, each timed from when it was due (so a server that falls behind shows it).
//!
//! Output is one `key: value` per line (the background workload's keys start with
//! `bg_`), and with `--json` one more line `json: {...}` holding the same figures.

use std::{
    collections::BTreeMap,
    fmt,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use hdrhistogram::Histogram;
use tenancy::pb::{
    AuthenticateUserRequest, CreateUserRequest, GetUserRequest, ListUsersRequest, User,
    get_user_request::Lookup, user_service_client::UserServiceClient,
};
use tonic::{
    Code, Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

/// The password every user the load generator creates gets (it passes the policy).
const PASSWORD: &str = "correct horse battery staple 42";

/// Drive a running tenancy server with one RPC (and optionally a second one in the
/// background) and report throughput and latency.
///
/// Closed loop by default: each of the N workers sends a request, waits for the
/// answer, and sends the next; no coordinated-omission correction is made. With --rate
/// the measured RPC runs open loop and each latency counts from when the request was
/// due. Latency is measured per request with a monotonic clock and kept in an HDR
/// histogram (µs resolution). Loopback targets only.
#[derive(Debug, Parser)]
#[command(name = "loadgen", verbatim_doc_comment)]
struct Args {
    /// Server address (http://, loopback only).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    /// API key sent as `authorization: Bearer <key>`; needs users.read and users.write
    /// (an admin key has both).
    #[arg(long, env = "TENANCY_API_KEY", hide_env_values = true)]
    key: String,
    /// The RPC to measure: AuthenticateUser, GetUser, CreateUser or ListUsers.
    #[arg(long)]
    rpc: Rpc,
    /// Concurrent workers (requests in flight) of the measured RPC.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds measured, after the warmup.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds of load before measuring starts (not counted).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Users created during setup for AuthenticateUser and GetUser (per workload);
    /// workers cycle through them.
    #[arg(long, default_value_t = 64)]
    users: usize,
    /// HTTP/2 connections the workers share (round robin).
    #[arg(long, default_value_t = 4)]
    channels: usize,
    /// A second RPC run at the same time over the same window, e.g. AuthenticateUser
    /// to saturate the hashing pool while GetUser is measured.
    #[arg(long)]
    background_rpc: Option<Rpc>,
    /// Open loop for the measured RPC: send this many requests per second in total,
    /// spread over the --concurrency workers (each sends on its own schedule and
    /// latency counts from when a request was due, so falling behind shows in the
    /// figures). Without it: closed loop. Use enough workers: rate x latency.
    #[arg(long)]
    rate: Option<f64>,
    /// Concurrent workers of the background RPC (always closed loop).
    #[arg(long, default_value_t = 8)]
    background_concurrency: usize,
    /// CreateUser: also send a password (so each create hashes one).
    #[arg(long)]
    with_password: bool,
    /// Seconds one request may take before it counts as DEADLINE_EXCEEDED.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Threads of the load generator's async runtime (default: half the cores, at
    /// least 1), since it shares the machine with the server.
    #[arg(long)]
    client_threads: Option<usize>,
    /// Also print the figures as one `json: {...}` line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    AuthenticateUser,
    GetUser,
    CreateUser,
    ListUsers,
}

impl FromStr for Rpc {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace(['_', '-'], "").as_str() {
            "authenticateuser" => Ok(Rpc::AuthenticateUser),
            "getuser" => Ok(Rpc::GetUser),
            "createuser" => Ok(Rpc::CreateUser),
            "listusers" => Ok(Rpc::ListUsers),
            _ => Err(format!(
                "unknown RPC {s:?}: use AuthenticateUser, GetUser, CreateUser or ListUsers"
            )),
        }
    }
}

impl fmt::Display for Rpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rpc::AuthenticateUser => "AuthenticateUser",
            Rpc::GetUser => "GetUser",
            Rpc::CreateUser => "CreateUser",
            Rpc::ListUsers => "ListUsers",
        })
    }
}

/// Adds the precomputed `authorization` header to every call.
#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Client = UserServiceClient<InterceptedService<Channel, Bearer>>;

/// What one workload needs that setup prepared.
struct Fixture {
    rpc: Rpc,
    /// Emails (AuthenticateUser) or ids (GetUser) to cycle through.
    keys: Vec<String>,
    /// Unique per run, for CreateUser emails.
    run: String,
    with_password: bool,
}

/// What one worker measured.
struct Tally {
    histogram: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    /// Errors seen during warmup (not counted), to make a misconfiguration visible.
    warmup_errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Self {
        Self {
            // 1 µs .. 10 min, 3 significant digits.
            histogram: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
            errors: BTreeMap::new(),
            warmup_errors: 0,
            first_error: None,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.histogram.add(&other.histogram).expect("same bounds");
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        self.warmup_errors += other.warmup_errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

fn code_name(code: Code) -> String {
    format!("{code:?}")
        .chars()
        .fold(String::new(), |mut out, c| {
            if c.is_uppercase() && !out.is_empty() {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
            out
        })
}

fn new_user(email: String) -> User {
    User {
        email,
        first_name: "Load".into(),
        last_name: "Generator".into(),
        ..Default::default()
    }
}

async fn call(
    client: &mut Client,
    fixture: &Fixture,
    worker: usize,
    seq: u64,
) -> Result<(), Status> {
    let pick = |keys: &[String]| keys[(worker + seq as usize * 7919) % keys.len()].clone();
    match fixture.rpc {
        Rpc::AuthenticateUser => client
            .authenticate_user(AuthenticateUserRequest {
                email: pick(&fixture.keys),
                password: PASSWORD.into(),
            })
            .await
            .map(drop),
        Rpc::GetUser => client
            .get_user(GetUserRequest {
                lookup: Some(Lookup::UserId(pick(&fixture.keys))),
            })
            .await
            .map(drop),
        Rpc::CreateUser => client
            .create_user(CreateUserRequest {
                user: Some(new_user(format!(
                    "lg-{}-{worker}-{seq}@example.com",
                    fixture.run
                ))),
                password: if fixture.with_password {
                    PASSWORD.into()
                } else {
                    String::new()
                },
                request_id: String::new(),
            })
            .await
            .map(drop),
        Rpc::ListUsers => client
            .list_users(ListUsersRequest {
                page_size: 50,
                ..Default::default()
            })
            .await
            .map(drop),
    }
}

/// Creates the users a workload reads or signs in as.
async fn setup(
    clients: &[Client],
    rpc: Rpc,
    users: usize,
    run: &str,
    with_password: bool,
) -> Result<Fixture, String> {
    let tag = format!("{run}-{}", rpc.to_string().to_lowercase());
    let keys = match rpc {
        Rpc::AuthenticateUser | Rpc::GetUser | Rpc::ListUsers => {
            let password = rpc == Rpc::AuthenticateUser;
            let count = users.max(1);
            // A few at a time: with a password each create costs one argon2 hash.
            let mut created = Vec::with_capacity(count);
            for chunk in (0..count).collect::<Vec<_>>().chunks(8) {
                let batch = chunk.iter().map(|&i| {
                    let mut client = clients[i % clients.len()].clone();
                    let email = format!("lg-{tag}-{i}@example.com");
                    async move {
                        let mut attempt = 0;
                        loop {
                            let result = client
                                .create_user(CreateUserRequest {
                                    user: Some(new_user(email.clone())),
                                    password: if password {
                                        PASSWORD.into()
                                    } else {
                                        String::new()
                                    },
                                    request_id: String::new(),
                                })
                                .await;
                            match result {
                                Ok(response) => {
                                    let user = response.into_inner().user.unwrap_or_default();
                                    return Ok((email, user.uuid));
                                }
                                Err(status)
                                    if status.code() == Code::ResourceExhausted && attempt < 20 =>
                                {
                                    attempt += 1;
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
                                Err(status) => {
                                    return Err(format!(
                                        "setup CreateUser failed: {:?} {}",
                                        status.code(),
                                        status.message()
                                    ));
                                }
                            }
                        }
                    }
                });
                for result in futures::future::join_all(batch).await {
                    created.push(result?);
                }
            }
            match rpc {
                Rpc::AuthenticateUser => created.into_iter().map(|(email, _)| email).collect(),
                Rpc::GetUser => created.into_iter().map(|(_, id)| id).collect(),
                _ => Vec::new(),
            }
        }
        Rpc::CreateUser => Vec::new(),
    };
    Ok(Fixture {
        rpc,
        keys,
        run: tag,
        with_password,
    })
}

#[derive(Clone, Copy)]
struct Window {
    /// Measuring starts here (the warmup ends).
    start: tokio::time::Instant,
    /// Measuring and the load end here.
    end: tokio::time::Instant,
    timeout: Duration,
}

/// Open-loop pacing of one worker: its k-th request is due at `first + k * interval`.
#[derive(Clone, Copy)]
struct Pace {
    first: tokio::time::Instant,
    interval: Duration,
}

async fn worker(
    mut client: Client,
    fixture: Arc<Fixture>,
    index: usize,
    window: Window,
    pace: Option<Pace>,
) -> Tally {
    let mut tally = Tally::new();
    let mut seq: u64 = 0;
    loop {
        // Closed loop: the clock starts when the request is sent. Open loop: it starts
        // when the request was due, so time spent behind schedule counts as latency.
        let begun = match pace {
            Some(pace) => {
                let due = pace.first + pace.interval.mul_f64(seq as f64);
                if due >= window.end {
                    break;
                }
                tokio::time::sleep_until(due).await;
                due.into_std()
            }
            None => Instant::now(),
        };
        if tokio::time::Instant::from_std(begun) >= window.end {
            break;
        }
        let outcome = tokio::select! {
            result = tokio::time::timeout(window.timeout, call(&mut client, &fixture, index, seq)) => {
                Some(result.unwrap_or_else(|_| Err(Status::deadline_exceeded("client timeout"))))
            }
            _ = tokio::time::sleep_until(window.end) => None,
        };
        seq += 1;
        let Some(outcome) = outcome else { break };
        let done = Instant::now();
        let done_at = tokio::time::Instant::from_std(done);
        let measured = done_at >= window.start && done_at <= window.end;
        match outcome {
            Ok(()) if measured => {
                let micros = done.duration_since(begun).as_micros().max(1) as u64;
                tally.histogram.saturating_record(micros);
            }
            Ok(()) => {}
            Err(status) => {
                if tally.first_error.is_none() {
                    tally.first_error =
                        Some(format!("{} {}", code_name(status.code()), status.message()));
                }
                if measured {
                    *tally.errors.entry(code_name(status.code())).or_default() += 1;
                } else {
                    tally.warmup_errors += 1;
                }
            }
        }
    }
    tally
}

fn spawn_workload(
    clients: &[Client],
    fixture: Arc<Fixture>,
    concurrency: usize,
    window: Window,
    rate: Option<f64>,
) -> Vec<tokio::task::JoinHandle<Tally>> {
    let workers = concurrency.max(1);
    let now = tokio::time::Instant::now();
    (0..workers)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            // Each worker sends rate/workers requests per second, staggered.
            let pace = rate.map(|rate| {
                let interval = Duration::from_secs_f64(workers as f64 / rate);
                Pace {
                    first: now + interval.mul_f64(i as f64 / workers as f64),
                    interval,
                }
            });
            tokio::spawn(worker(client, fixture.clone(), i, window, pace))
        })
        .collect()
}

async fn collect(handles: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut total = Tally::new();
    for handle in handles {
        total.merge(handle.await.expect("worker panicked"));
    }
    total
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// The figures of one workload, as ordered `key: value` pairs.
fn report(
    prefix: &str,
    rpc: Rpc,
    concurrency: usize,
    seconds: f64,
    tally: &Tally,
) -> Vec<(String, serde_json::Value)> {
    let h = &tally.histogram;
    let ok = h.len();
    let errors: u64 = tally.errors.values().sum();
    let mut out: Vec<(String, serde_json::Value)> = vec![
        ("rpc".into(), rpc.to_string().into()),
        ("concurrency".into(), concurrency.into()),
        ("ok".into(), ok.into()),
        ("errors".into(), errors.into()),
        (
            "rps".into(),
            round2(ok as f64 / seconds.max(f64::EPSILON)).into(),
        ),
    ];
    let latency = |q: f64| -> serde_json::Value {
        if ok == 0 {
            serde_json::Value::Null
        } else {
            round3(ms(h.value_at_quantile(q))).into()
        }
    };
    out.push((
        "mean_ms".into(),
        if ok == 0 {
            serde_json::Value::Null
        } else {
            round3(h.mean() / 1000.0).into()
        },
    ));
    out.push(("p50_ms".into(), latency(0.50)));
    out.push(("p90_ms".into(), latency(0.90)));
    out.push(("p99_ms".into(), latency(0.99)));
    out.push((
        "max_ms".into(),
        if ok == 0 {
            serde_json::Value::Null
        } else {
            round3(ms(h.max())).into()
        },
    ));
    for (code, n) in &tally.errors {
        out.push((format!("errors_{code}"), (*n).into()));
    }
    if tally.warmup_errors > 0 {
        out.push(("warmup_errors".into(), tally.warmup_errors.into()));
    }
    if let Some(first) = &tally.first_error {
        out.push(("first_error".into(), first.clone().into()));
    }
    out.into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v))
        .collect()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn is_loopback(target: &str) -> bool {
    let Ok(uri) = target.parse::<http::Uri>() else {
        return false;
    };
    match uri.host() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

async fn run(args: Args) -> Result<(), String> {
    if !is_loopback(&args.target) {
        return Err(format!(
            "--target {} is not a loopback address",
            args.target
        ));
    }
    if !(args.duration > 0.0 && args.warmup >= 0.0 && args.timeout > 0.0) {
        return Err("--duration and --timeout must be > 0, --warmup >= 0".into());
    }
    if args
        .rate
        .is_some_and(|rate| !(rate > 0.0 && rate.is_finite()))
    {
        return Err("--rate must be > 0".into());
    }
    let bearer: MetadataValue<Ascii> = format!("Bearer {}", args.key)
        .parse()
        .map_err(|_| "the key is not ASCII".to_string())?;

    let mut clients = Vec::new();
    for _ in 0..args.channels.max(1) {
        let channel = Endpoint::from_shared(args.target.clone())
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", args.target))?;
        clients.push(UserServiceClient::with_interceptor(
            channel,
            Bearer(bearer.clone()),
        ));
    }

    let run = ulid::Ulid::new().to_string().to_lowercase();
    let setup_started = Instant::now();
    let fixture = Arc::new(setup(&clients, args.rpc, args.users, &run, args.with_password).await?);
    let background = match args.background_rpc {
        Some(rpc) => Some(Arc::new(
            setup(
                &clients,
                rpc,
                args.users,
                &format!("{run}bg"),
                args.with_password,
            )
            .await?,
        )),
        None => None,
    };
    let setup_seconds = setup_started.elapsed().as_secs_f64();

    let now = tokio::time::Instant::now();
    let start = now + Duration::from_secs_f64(args.warmup);
    let window = Window {
        start,
        end: start + Duration::from_secs_f64(args.duration),
        timeout: Duration::from_secs_f64(args.timeout),
    };
    let background_handles = background.map(|fixture| {
        spawn_workload(&clients, fixture, args.background_concurrency, window, None)
    });
    let handles = spawn_workload(&clients, fixture, args.concurrency, window, args.rate);
    let tally = collect(handles).await;
    let background_tally = match background_handles {
        Some(handles) => Some(collect(handles).await),
        None => None,
    };

    let mut lines: Vec<(String, serde_json::Value)> = vec![
        ("target".into(), args.target.clone().into()),
        ("duration_s".into(), args.duration.into()),
        ("warmup_s".into(), args.warmup.into()),
        ("channels".into(), args.channels.max(1).into()),
        ("setup_s".into(), round3(setup_seconds).into()),
        (
            "mode".into(),
            match args.rate {
                Some(rate) => format!("open-loop {rate}/s"),
                None => "closed-loop".to_string(),
            }
            .into(),
        ),
    ];
    lines.extend(report(
        "",
        args.rpc,
        args.concurrency,
        args.duration,
        &tally,
    ));
    if let (Some(rpc), Some(bg)) = (args.background_rpc, &background_tally) {
        lines.extend(report(
            "bg_",
            rpc,
            args.background_concurrency,
            args.duration,
            bg,
        ));
    }
    for (key, value) in &lines {
        match value {
            serde_json::Value::String(s) => println!("{key}: {s}"),
            serde_json::Value::Null => println!("{key}: -"),
            other => println!("{key}: {other}"),
        }
    }
    if args.json {
        let object: serde_json::Map<String, serde_json::Value> = lines.into_iter().collect();
        println!("json: {}", serde_json::Value::Object(object));
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let threads = args.client_threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() / 2)
            .unwrap_or(1)
            .max(1)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(error) = runtime.block_on(run(args)) {
        eprintln!("loadgen: {error}");
        std::process::exit(1);
    }
}
