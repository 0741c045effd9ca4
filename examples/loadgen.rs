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
//! Setup creates what the RPC reads: users (with a password for AuthenticateUser),
//! customers with hostnames (GetCustomer), one customer with limits and its accounts
//! (GetEffectiveLimits), users owning customers (CheckAccess), `--seed-customers`
//! customers walked to `--page-depth` (ListCustomers). `--emit-body FILE` stops after
//! setup and writes one request as a gRPC frame for h2load (see `bench/ratios.sh`);
//! `--requests N` ends the measured RPC after N requests (for memory figures).
//!
//! Output is one `key: value` per line (the background workload's keys start with
//! `bg_`), and with `--json` one more line `json: {...}` holding the same figures.

use std::{
    collections::BTreeMap,
    fmt,
    path::PathBuf,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use futures::{StreamExt as _, TryStreamExt as _};
use hdrhistogram::Histogram;
use prost::Message as _;
use prost_types::{Struct, Value, value::Kind};
use tenancy_client::pb::{
    self, AuthenticateUserRequest, CheckAccessRequest, CreateAccountRequest, CreateCustomerRequest,
    CreateUserRequest, GetCustomerRequest, GetEffectiveLimitsRequest, GetUserRequest,
    ListCustomersRequest, ListUsersRequest, User, account_service_client::AccountServiceClient,
    check_access_request, customer_service_client::CustomerServiceClient, get_customer_request,
    get_user_request, session_service_client::SessionServiceClient,
    user_service_client::UserServiceClient,
};
use tonic::{
    Code, Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

/// The password every user the load generator creates gets (it passes the policy).
const PASSWORD: &str = "correct horse battery staple 42";

/// Customers asked for per ListCustomers page while walking to --page-depth (the most
/// the server returns at once).
const WALK_PAGE_SIZE: i32 = 1000;

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
    /// API key sent as `authorization: Bearer <key>`; needs the read and write scopes of
    /// the services driven (an admin key has them all).
    #[arg(long, env = "TENANCY_API_KEY", hide_env_values = true)]
    key: String,
    /// The RPC to measure: AuthenticateUser, GetUser, CreateUser, ListUsers,
    /// GetCustomer (by hostname), ListCustomers, GetEffectiveLimits, CheckAccess,
    /// CreateCustomer (a PERSONAL customer, all owned by one user made in setup),
    /// CreateSession, CreateSessionTotp (users with a second factor; each user signs
    /// in at most once per --users calls, since a code is accepted once) or
    /// RefreshSession (each worker rotates its own session's refresh token).
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
    /// Users (GetUser, AuthenticateUser, CheckAccess), customers (GetCustomer) or
    /// accounts (GetEffectiveLimits) created during setup (per workload); workers
    /// cycle through them.
    #[arg(long, default_value_t = 64)]
    users: usize,
    /// GetUser: look users up by email instead of by id.
    #[arg(long)]
    by_email: bool,
    /// ListCustomers: customers to create during setup (64 creates in flight, each
    /// owned by one user without a password, so no hashing), e.g. 100100 to measure a
    /// page at depth 100,000.
    #[arg(long, default_value_t = 0)]
    seed_customers: usize,
    /// ListCustomers: walk this many customers into the list (pages of 1000) during
    /// setup and measure the page that starts there; 0 measures the first page.
    #[arg(long, default_value_t = 0)]
    page_depth: usize,
    /// ListCustomers and ListUsers: the page size of the measured requests.
    #[arg(long, default_value_t = 50)]
    page_size: i32,
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
    /// Stop the measured RPC after this many requests in total (warmup included),
    /// e.g. for "RSS after 1,000 sign-ins"; --duration still bounds the run.
    #[arg(long)]
    requests: Option<u64>,
    /// CreateUser: also send a password (so each create hashes one).
    #[arg(long)]
    with_password: bool,
    /// Run the setup, write the first request of the measured RPC to this file as a
    /// length-prefixed gRPC message (the body h2load sends with -d), print its
    /// `grpc_path`, and exit without load.
    #[arg(long)]
    emit_body: Option<PathBuf>,
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
    /// Also follow StreamEvents (from the log's head, on the first connection) and
    /// report, for each resource this run created inside the window, the time from
    /// its create call's answer to its event's arrival on the stream (0 when the event
    /// arrived first): `event_lag_p50_ms`, `event_lag_p99_ms`. The answer, not the
    /// event's `time`, starts the clock: on PostgreSQL `time` is when the event was
    /// numbered, which would leave out the wait between commit and numbering.
    #[arg(long)]
    event_lag: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    AuthenticateUser,
    GetUser,
    CreateUser,
    ListUsers,
    GetCustomer,
    ListCustomers,
    GetEffectiveLimits,
    CheckAccess,
    CreateCustomer,
    CreateSession,
    /// CreateSession for users with a second factor: each call sends a current code.
    CreateSessionTotp,
    RefreshSession,
}

const RPCS: [Rpc; 12] = [
    Rpc::AuthenticateUser,
    Rpc::GetUser,
    Rpc::CreateUser,
    Rpc::ListUsers,
    Rpc::GetCustomer,
    Rpc::ListCustomers,
    Rpc::GetEffectiveLimits,
    Rpc::CheckAccess,
    Rpc::CreateCustomer,
    Rpc::CreateSession,
    Rpc::CreateSessionTotp,
    Rpc::RefreshSession,
];

impl FromStr for Rpc {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.to_ascii_lowercase().replace(['_', '-'], "");
        RPCS.into_iter()
            .find(|rpc| rpc.to_string().to_ascii_lowercase() == wanted)
            .ok_or_else(|| {
                let names: Vec<String> = RPCS.iter().map(ToString::to_string).collect();
                format!("unknown RPC {s:?}: use one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for Rpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rpc::AuthenticateUser => "AuthenticateUser",
            Rpc::GetUser => "GetUser",
            Rpc::CreateUser => "CreateUser",
            Rpc::ListUsers => "ListUsers",
            Rpc::GetCustomer => "GetCustomer",
            Rpc::ListCustomers => "ListCustomers",
            Rpc::GetEffectiveLimits => "GetEffectiveLimits",
            Rpc::CheckAccess => "CheckAccess",
            Rpc::CreateCustomer => "CreateCustomer",
            Rpc::CreateSession => "CreateSession",
            Rpc::CreateSessionTotp => "CreateSessionTotp",
            Rpc::RefreshSession => "RefreshSession",
        })
    }
}

impl Rpc {
    /// The HTTP/2 path of the RPC, for h2load.
    fn path(self) -> String {
        let service = match self {
            Rpc::GetCustomer | Rpc::ListCustomers | Rpc::CreateCustomer => "CustomerService",
            Rpc::GetEffectiveLimits => "AccountService",
            Rpc::CreateSession | Rpc::RefreshSession => "SessionService",
            Rpc::CreateSessionTotp => return "/tenancy.v1.SessionService/CreateSession".into(),
            _ => "UserService",
        };
        format!("/tenancy.v1.{service}/{self}")
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

type Authed = InterceptedService<Channel, Bearer>;

/// One HTTP/2 connection, with a client of each service on it.
#[derive(Clone)]
struct Client {
    users: UserServiceClient<Authed>,
    customers: CustomerServiceClient<Authed>,
    accounts: AccountServiceClient<Authed>,
    sessions: SessionServiceClient<Authed>,
}

impl Client {
    fn new(channel: Channel, bearer: Bearer) -> Self {
        Self {
            users: UserServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            sessions: SessionServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            customers: CustomerServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            accounts: AccountServiceClient::with_interceptor(channel, bearer),
        }
    }
}

/// What one workload needs that setup prepared.
struct Fixture {
    rpc: Rpc,
    /// Emails (AuthenticateUser, GetUser --by-email), user ids (GetUser), hostnames
    /// (GetCustomer) or account ids (GetEffectiveLimits) to cycle through.
    keys: Vec<String>,
    /// CheckAccess: (user id, customer id) of a customer's owner.
    pairs: Vec<(String, String)>,
    /// ListCustomers: the token of the page at --page-depth ("" = the first page).
    page_token: String,
    page_size: i32,
    by_email: bool,
    /// Unique per run, for CreateUser emails.
    run: String,
    with_password: bool,
    /// CreateSessionTotp: each user's TOTP secret (base32), beside `keys`' emails; a
    /// shared counter hands each call the next user, since a code is accepted once.
    totp_secrets: Vec<String>,
    next_user: AtomicU64,
    /// RefreshSession: each worker's current refresh token (rotated by every call).
    refresh_tokens: std::sync::Mutex<Vec<String>>,
}

/// One request of any measured RPC, built apart from sending it so that `--emit-body`
/// can write exactly what a worker would send.
enum Call {
    AuthenticateUser(AuthenticateUserRequest),
    GetUser(GetUserRequest),
    CreateUser(CreateUserRequest),
    ListUsers(ListUsersRequest),
    GetCustomer(GetCustomerRequest),
    ListCustomers(ListCustomersRequest),
    GetEffectiveLimits(GetEffectiveLimitsRequest),
    CheckAccess(CheckAccessRequest),
    CreateCustomer(Box<CreateCustomerRequest>),
    CreateSession(pb::CreateSessionRequest),
    RefreshSession(pb::RefreshSessionRequest),
}

/// What a call answered that the workload keeps.
enum Answer {
    Nothing,
    /// A create's resource id (for the event lag).
    Created(String),
    /// RefreshSession's rotated refresh token.
    Refreshed(String),
}

impl Call {
    fn new(fixture: &Fixture, worker: usize, seq: u64) -> Self {
        let index = |len: usize| (worker + seq as usize * 7919) % len.max(1);
        let pick = |keys: &[String]| keys.get(index(keys.len())).cloned().unwrap_or_default();
        match fixture.rpc {
            Rpc::AuthenticateUser => Call::AuthenticateUser(AuthenticateUserRequest {
                email: pick(&fixture.keys),
                password: PASSWORD.into(),
                totp_code: String::new(),
            }),
            Rpc::GetUser => Call::GetUser(GetUserRequest {
                lookup: Some(if fixture.by_email {
                    get_user_request::Lookup::Email(pick(&fixture.keys))
                } else {
                    get_user_request::Lookup::UserId(pick(&fixture.keys))
                }),
            }),
            Rpc::CreateUser => Call::CreateUser(CreateUserRequest {
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
            }),
            Rpc::ListUsers => Call::ListUsers(ListUsersRequest {
                page_size: fixture.page_size,
                ..Default::default()
            }),
            Rpc::GetCustomer => Call::GetCustomer(GetCustomerRequest {
                lookup: Some(get_customer_request::Lookup::Hostname(pick(&fixture.keys))),
            }),
            Rpc::ListCustomers => Call::ListCustomers(ListCustomersRequest {
                page_size: fixture.page_size,
                page_token: fixture.page_token.clone(),
                ..Default::default()
            }),
            Rpc::GetEffectiveLimits => Call::GetEffectiveLimits(GetEffectiveLimitsRequest {
                account_id: pick(&fixture.keys),
            }),
            Rpc::CheckAccess => {
                let (user_id, customer_id) = fixture
                    .pairs
                    .get(index(fixture.pairs.len()))
                    .cloned()
                    .unwrap_or_default();
                Call::CheckAccess(CheckAccessRequest {
                    user_id,
                    target: Some(check_access_request::Target::CustomerId(customer_id)),
                    permission: "customer.read".into(),
                })
            }
            Rpc::CreateSession => Call::CreateSession(pb::CreateSessionRequest {
                email: pick(&fixture.keys),
                password: PASSWORD.into(),
                ..Default::default()
            }),
            Rpc::CreateSessionTotp => {
                let next = fixture.next_user.fetch_add(1, Ordering::Relaxed) as usize;
                let user = next % fixture.keys.len().max(1);
                Call::CreateSession(pb::CreateSessionRequest {
                    email: fixture.keys.get(user).cloned().unwrap_or_default(),
                    password: PASSWORD.into(),
                    totp_code: fixture
                        .totp_secrets
                        .get(user)
                        .map(|secret| totp_now(secret, 1))
                        .unwrap_or_default(),
                    ..Default::default()
                })
            }
            Rpc::RefreshSession => Call::RefreshSession(pb::RefreshSessionRequest {
                refresh_token: fixture
                    .refresh_tokens
                    .lock()
                    .expect("refresh tokens")
                    .get(worker)
                    .cloned()
                    .unwrap_or_default(),
                customer_id: String::new(),
            }),
            Rpc::CreateCustomer => Call::CreateCustomer(Box::new(CreateCustomerRequest {
                customer: Some(pb::Customer {
                    email: format!("lg-{}-{worker}-{seq}@example.com", fixture.run),
                    first_name: "Load".into(),
                    last_name: "Generator".into(),
                    customer_type: pb::CustomerType::Personal as i32,
                    ..Default::default()
                }),
                owner_user_id: pick(&fixture.keys),
                ..Default::default()
            })),
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Call::AuthenticateUser(m) => m.encode_to_vec(),
            Call::GetUser(m) => m.encode_to_vec(),
            Call::CreateUser(m) => m.encode_to_vec(),
            Call::ListUsers(m) => m.encode_to_vec(),
            Call::GetCustomer(m) => m.encode_to_vec(),
            Call::ListCustomers(m) => m.encode_to_vec(),
            Call::GetEffectiveLimits(m) => m.encode_to_vec(),
            Call::CheckAccess(m) => m.encode_to_vec(),
            Call::CreateCustomer(m) => m.encode_to_vec(),
            Call::CreateSession(m) => m.encode_to_vec(),
            Call::RefreshSession(m) => m.encode_to_vec(),
        }
    }

    async fn send(self, client: &mut Client) -> Result<Answer, Status> {
        let created = |id: Option<String>| id.map_or(Answer::Nothing, Answer::Created);
        let other = match self {
            Call::CreateUser(m) => {
                let user = client.users.create_user(m).await?.into_inner().user;
                return Ok(created(user.map(|u| u.uuid)));
            }
            Call::CreateCustomer(m) => {
                let customer = client
                    .customers
                    .create_customer(*m)
                    .await?
                    .into_inner()
                    .customer;
                return Ok(created(customer.map(|c| c.uuid)));
            }
            Call::CreateSession(m) => {
                return client
                    .sessions
                    .create_session(m)
                    .await
                    .map(|_| Answer::Nothing);
            }
            Call::RefreshSession(m) => {
                let answer = client.sessions.refresh_session(m).await?.into_inner();
                return Ok(Answer::Refreshed(answer.refresh_token));
            }
            other => other,
        };
        other.send_read(client).await.map(|()| Answer::Nothing)
    }

    async fn send_read(self, client: &mut Client) -> Result<(), Status> {
        match self {
            Call::AuthenticateUser(m) => client.users.authenticate_user(m).await.map(drop),
            Call::GetUser(m) => client.users.get_user(m).await.map(drop),
            Call::CreateUser(_)
            | Call::CreateCustomer(_)
            | Call::CreateSession(_)
            | Call::RefreshSession(_) => unreachable!("sent by send"),
            Call::ListUsers(m) => client.users.list_users(m).await.map(drop),
            Call::GetCustomer(m) => client.customers.get_customer(m).await.map(drop),
            Call::ListCustomers(m) => client.customers.list_customers(m).await.map(drop),
            Call::GetEffectiveLimits(m) => client.accounts.get_effective_limits(m).await.map(drop),
            Call::CheckAccess(m) => client.users.check_access(m).await.map(drop),
        }
    }
}

/// A gRPC message on the wire: uncompressed flag, big-endian length, the bytes.
fn grpc_frame(message: &[u8]) -> Result<Vec<u8>, String> {
    let length = u32::try_from(message.len()).map_err(|_| "message too large".to_string())?;
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(message);
    Ok(frame)
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

fn number(n: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

fn object(fields: &[(&str, f64)]) -> Struct {
    Struct {
        fields: fields
            .iter()
            .map(|(key, value)| (key.to_string(), number(*value)))
            .collect(),
    }
}

/// Setup calls retry RESOURCE_EXHAUSTED (a full hashing queue) for a while.
async fn retrying<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(status) if status.code() == Code::ResourceExhausted && tries < 20 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => {
                return Err(format!(
                    "setup {what} failed: {} {}",
                    code_name(status.code()),
                    status.message()
                ));
            }
        }
    }
}

/// Creates a user; with `password`, one the policy accepts (costs one hash).
async fn create_user(client: &Client, email: String, password: bool) -> Result<String, String> {
    retrying("CreateUser", || {
        let mut users = client.users.clone();
        let request = CreateUserRequest {
            user: Some(new_user(email.clone())),
            password: if password {
                PASSWORD.into()
            } else {
                String::new()
            },
            request_id: String::new(),
        };
        async move { users.create_user(request).await }
    })
    .await
    .map(|response| response.into_inner().user.unwrap_or_default().uuid)
}

/// Enrolls and confirms a second factor for `user_id` with the current step's code
/// (once more if a step boundary passed in between); answers its secret. Sign-ins then
/// send the next step's code (accepted with one step of skew), always later than the
/// confirming one.
async fn enable_totp(client: &Client, user_id: &str) -> Result<String, String> {
    let mut users = client.users.clone();
    let secret = users
        .enroll_totp(pb::EnrollTotpRequest {
            user_id: user_id.to_string(),
        })
        .await
        .map_err(|s| format!("setup EnrollTotp failed: {s:?}"))?
        .into_inner()
        .secret;
    let confirm = |code: String| {
        let mut users = users.clone();
        let request = pb::ConfirmTotpRequest {
            user_id: user_id.to_string(),
            code,
        };
        async move { users.confirm_totp(request).await }
    };
    if confirm(totp_now(&secret, 0)).await.is_err() {
        confirm(totp_now(&secret, 0))
            .await
            .map_err(|s| format!("setup ConfirmTotp failed: {s:?}"))?;
    }
    Ok(secret)
}

/// The RFC 6238 code (SHA-1, 6 digits, 30 s) of `secret` (base32) for the current
/// step plus `steps`.
fn totp_now(secret: &str, steps: i64) -> String {
    let bytes = totp_rs::Secret::try_from_base32(secret)
        .map(|secret| secret.to_vec())
        .unwrap_or_default();
    let Ok(totp) = tenancy::domain::second_factor::Totp::new(&bytes, "loadgen", "loadgen") else {
        return String::new();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    totp.code_at((now + steps * 30).max(0) as u64)
}

/// Creates a PERSONAL customer owned by `owner` (an existing user: no password, no
/// hash), with `hostname` when given and `limits` as its `customer_limits`.
async fn create_customer(
    client: &Client,
    email: String,
    owner: &str,
    hostname: Option<String>,
    limits: Option<Struct>,
) -> Result<String, String> {
    retrying("CreateCustomer", || {
        let mut customers = client.customers.clone();
        let request = CreateCustomerRequest {
            customer: Some(pb::Customer {
                email: email.clone(),
                first_name: "Load".into(),
                last_name: "Generator".into(),
                customer_type: pb::CustomerType::Personal as i32,
                hostname: hostname.clone().unwrap_or_default(),
                customer_limits: limits.clone(),
                ..Default::default()
            }),
            owner_user_id: owner.to_string(),
            ..Default::default()
        };
        async move { customers.create_customer(request).await }
    })
    .await
    .map(|response| response.into_inner().customer.unwrap_or_default().uuid)
}

/// Runs `make(i)` for `0..count`, `in_flight` at a time, keeping the order.
async fn concurrently<T, F, Fut>(count: usize, in_flight: usize, make: F) -> Result<Vec<T>, String>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    futures::stream::iter((0..count).map(make))
        .buffered(in_flight.max(1))
        .try_collect()
        .await
}

/// Pages through ListCustomers from the start until `depth` customers are behind, and
/// returns the token of the page that starts there.
async fn walk_customers(client: &Client, depth: usize) -> Result<String, String> {
    let mut customers = client.customers.clone();
    let mut token = String::new();
    let mut behind = 0;
    while behind < depth {
        let page_size = WALK_PAGE_SIZE.min(i32::try_from(depth - behind).unwrap_or(i32::MAX));
        let page = customers
            .list_customers(ListCustomersRequest {
                page_size,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .map_err(|s| format!("setup ListCustomers failed: {s:?}"))?
            .into_inner();
        behind += page.customers.len();
        if page.next_page_token.is_empty() {
            return Err(format!(
                "only {behind} customers exist, fewer than --page-depth {depth}; seed more with --seed-customers"
            ));
        }
        token = page.next_page_token;
    }
    Ok(token)
}

/// Creates what a workload reads or signs in as.
async fn setup(clients: &[Client], args: &Args, rpc: Rpc, run: &str) -> Result<Fixture, String> {
    let tag = format!("{run}-{}", rpc.to_string().to_lowercase());
    let tag = tag.as_str();
    let count = args.users.max(1);
    let client = |i: usize| &clients[i % clients.len()];
    let mut fixture = Fixture {
        rpc,
        keys: Vec::new(),
        pairs: Vec::new(),
        page_token: String::new(),
        page_size: args.page_size,
        by_email: args.by_email,
        run: tag.to_string(),
        with_password: args.with_password,
        totp_secrets: Vec::new(),
        next_user: AtomicU64::new(0),
        refresh_tokens: std::sync::Mutex::new(Vec::new()),
    };
    match rpc {
        Rpc::AuthenticateUser | Rpc::GetUser | Rpc::ListUsers => {
            let password = rpc == Rpc::AuthenticateUser;
            // A few at a time: with a password each create costs one argon2 hash.
            let created = concurrently(count, 8, |i| {
                let email = format!("lg-{tag}-{i}@example.com");
                async move {
                    let id = create_user(client(i), email.clone(), password).await?;
                    Ok((email, id))
                }
            })
            .await?;
            fixture.keys = match rpc {
                Rpc::AuthenticateUser => created.into_iter().map(|(email, _)| email).collect(),
                Rpc::GetUser if args.by_email => {
                    created.into_iter().map(|(email, _)| email).collect()
                }
                Rpc::GetUser => created.into_iter().map(|(_, id)| id).collect(),
                _ => Vec::new(),
            };
        }
        Rpc::CreateSession | Rpc::CreateSessionTotp | Rpc::RefreshSession => {
            let totp = rpc == Rpc::CreateSessionTotp;
            let created = concurrently(count, 8, |i| {
                let email = format!("lg-{tag}-{i}@example.com");
                async move {
                    let id = create_user(client(i), email.clone(), true).await?;
                    let secret = if totp {
                        enable_totp(client(i), &id).await?
                    } else {
                        String::new()
                    };
                    Ok((email, secret))
                }
            })
            .await?;
            (fixture.keys, fixture.totp_secrets) = created.into_iter().unzip();
            if rpc == Rpc::RefreshSession {
                let keys = &fixture.keys;
                let tokens = concurrently(args.concurrency.max(1), 8, |i| async move {
                    let request = pb::CreateSessionRequest {
                        email: keys[i % keys.len()].clone(),
                        password: PASSWORD.into(),
                        ..Default::default()
                    };
                    retrying("CreateSession", || {
                        let request = request.clone();
                        let mut sessions = client(i).sessions.clone();
                        async move { sessions.create_session(request).await }
                    })
                    .await
                    .map(|answer| answer.into_inner().refresh_token)
                })
                .await?;
                fixture.refresh_tokens = std::sync::Mutex::new(tokens);
            }
        }
        Rpc::CreateUser => {}
        Rpc::CreateCustomer => {
            // One owner for every customer created: an owner may own many.
            let owner =
                create_user(client(0), format!("lg-{tag}-owner@example.com"), false).await?;
            fixture.keys = vec![owner];
        }
        Rpc::GetCustomer => {
            let owner =
                create_user(client(0), format!("lg-{tag}-owner@example.com"), false).await?;
            let owner = owner.as_str();
            fixture.keys = concurrently(count, 16, |i| async move {
                let hostname = format!("c{i}.{tag}.example.com");
                let email = format!("lg-{tag}-c{i}@example.com");
                create_customer(client(i), email, owner, Some(hostname.clone()), None).await?;
                Ok(hostname)
            })
            .await?;
        }
        Rpc::ListCustomers => {
            let owner =
                create_user(client(0), format!("lg-{tag}-owner@example.com"), false).await?;
            let owner = owner.as_str();
            concurrently(args.seed_customers, 64, |i| {
                let email = format!("lg-{tag}-c{i}@example.com");
                async move { create_customer(client(i), email, owner, None, None).await }
            })
            .await?;
            fixture.page_token = walk_customers(client(0), args.page_depth).await?;
        }
        Rpc::GetEffectiveLimits => {
            // Both sides set, so every branch of the rule runs: capped, account-only,
            // customer-only, unlimited.
            let owner =
                create_user(client(0), format!("lg-{tag}-owner@example.com"), false).await?;
            let customer = create_customer(
                client(0),
                format!("lg-{tag}-customer@example.com"),
                &owner,
                None,
                Some(object(&[("max_rooms", 10.0), ("max_participants", 100.0)])),
            )
            .await?;
            let customer = customer.as_str();
            fixture.keys = concurrently(count, 16, |i| async move {
                retrying("CreateAccount", || {
                    let mut accounts = client(i).accounts.clone();
                    let request = CreateAccountRequest {
                        customer_id: customer.to_string(),
                        account: Some(pb::Account {
                            name: format!("load {i}"),
                            service_type: pb::ServiceType::WebMeeting as i32,
                            account_settings: Some(object(&[
                                ("max_rooms", 20.0),
                                ("max_storage", 50.0),
                            ])),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    async move { accounts.create_account(request).await }
                })
                .await
                .map(|response| response.into_inner().account.unwrap_or_default().uuid)
            })
            .await?;
        }
        Rpc::CheckAccess => {
            fixture.pairs = concurrently(count, 16, |i| async move {
                let user =
                    create_user(client(i), format!("lg-{tag}-u{i}@example.com"), false).await?;
                let customer = create_customer(
                    client(i),
                    format!("lg-{tag}-c{i}@example.com"),
                    &user,
                    None,
                    None,
                )
                .await?;
                Ok((user, customer))
            })
            .await?;
        }
    }
    Ok(fixture)
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
    budget: Option<Arc<AtomicU64>>,
    lag: Option<Arc<LagBook>>,
) -> Tally {
    let mut tally = Tally::new();
    let mut seq: u64 = 0;
    loop {
        // --requests: every worker takes one request from the shared budget.
        if let Some(budget) = &budget
            && budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(1)
                })
                .is_err()
        {
            break;
        }
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
            result = tokio::time::timeout(window.timeout, Call::new(&fixture, index, seq).send(&mut client)) => {
                Some(result.unwrap_or_else(|_| Err(Status::deadline_exceeded("client timeout"))))
            }
            _ = tokio::time::sleep_until(window.end) => None,
        };
        seq += 1;
        let Some(outcome) = outcome else { break };
        let done = Instant::now();
        let done_at = tokio::time::Instant::from_std(done);
        let measured = done_at >= window.start && done_at <= window.end;
        match &outcome {
            Ok(Answer::Created(id)) if measured => {
                if let Some(book) = &lag {
                    book.answered(id, done);
                }
            }
            Ok(Answer::Refreshed(token)) => {
                if let Some(slot) = fixture
                    .refresh_tokens
                    .lock()
                    .expect("refresh tokens")
                    .get_mut(index)
                {
                    *slot = token.clone();
                }
            }
            _ => {}
        }
        match outcome {
            Ok(_) if measured => {
                let micros = done.duration_since(begun).as_micros().max(1) as u64;
                tally.histogram.saturating_record(micros);
            }
            Ok(_) => {}
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
    requests: Option<u64>,
    lag: Option<Arc<LagBook>>,
) -> Vec<tokio::task::JoinHandle<Tally>> {
    let budget = requests.map(|n| Arc::new(AtomicU64::new(n)));
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
            tokio::spawn(worker(
                client,
                fixture.clone(),
                i,
                window,
                pace,
                budget.clone(),
                lag.clone(),
            ))
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
    let mut first_channel = None;
    for _ in 0..args.channels.max(1) {
        let channel = Endpoint::from_shared(args.target.clone())
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", args.target))?;
        first_channel.get_or_insert_with(|| channel.clone());
        clients.push(Client::new(channel, Bearer(bearer.clone())));
    }

    let run = ulid::Ulid::new().to_string().to_lowercase();
    let setup_started = Instant::now();
    let fixture = Arc::new(setup(&clients, &args, args.rpc, &run).await?);
    if let Some(path) = &args.emit_body {
        let frame = grpc_frame(&Call::new(&fixture, 0, 0).encode())?;
        std::fs::write(path, frame).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("rpc: {}", args.rpc);
        println!("grpc_path: {}", args.rpc.path());
        println!("body: {}", path.display());
        println!("setup_s: {}", round3(setup_started.elapsed().as_secs_f64()));
        return Ok(());
    }
    let background = match args.background_rpc {
        Some(rpc) => Some(Arc::new(
            setup(&clients, &args, rpc, &format!("{run}bg")).await?,
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
    let lag_book = args.event_lag.then(|| Arc::new(LagBook::default()));
    let lag = match (&first_channel, &lag_book) {
        (Some(channel), Some(book)) => Some(
            follow_event_lag(
                channel.clone(),
                Bearer(bearer.clone()),
                window,
                book.clone(),
            )
            .await?,
        ),
        _ => None,
    };
    let background_handles = background.map(|fixture| {
        spawn_workload(
            &clients,
            fixture,
            args.background_concurrency,
            window,
            None,
            None,
            None,
        )
    });
    let handles = spawn_workload(
        &clients,
        fixture,
        args.concurrency,
        window,
        args.rate,
        args.requests,
        lag_book.clone(),
    );
    let tally = collect(handles).await;
    // With --requests the workload may end before the window does.
    let measured_s = tokio::time::Instant::now()
        .saturating_duration_since(start)
        .as_secs_f64()
        .min(args.duration);
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
        if args.requests.is_some() {
            measured_s
        } else {
            args.duration
        },
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
    if let (Some(lag), Some(book)) = (lag, &lag_book) {
        lag.await.map_err(|e| e.to_string())?;
        let histogram = book.histogram();
        lines.push(("event_lag_events".into(), histogram.len().into()));
        for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
            let value = if histogram.is_empty() {
                serde_json::Value::Null
            } else {
                round3(ms(histogram.value_at_quantile(q))).into()
            };
            lines.push((format!("event_lag_{name}_ms"), value));
        }
        lines.push((
            "event_lag_max_ms".into(),
            round3(ms(histogram.max())).into(),
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

/// Pairs each created resource's answer with its event's arrival; whichever comes
/// second records the lag (0 when the event came first).
#[derive(Default)]
struct LagBook {
    state: std::sync::Mutex<LagState>,
}

struct LagState {
    /// Resource id → when its answer (`true`) or its event (`false`) was seen first.
    pending: std::collections::HashMap<String, (bool, Instant)>,
    histogram: Histogram<u64>,
}

impl Default for LagState {
    fn default() -> Self {
        Self {
            pending: Default::default(),
            histogram: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
        }
    }
}

impl LagBook {
    fn answered(&self, id: &str, at: Instant) {
        self.seen(id, true, at);
    }

    fn arrived(&self, id: &str, at: Instant) {
        self.seen(id, false, at);
    }

    fn seen(&self, id: &str, answer: bool, at: Instant) {
        let mut state = self.state.lock().expect("lag book");
        match state.pending.remove(id) {
            Some((first_was_answer, first)) if first_was_answer != answer => {
                let lag = if answer {
                    Duration::ZERO
                } else {
                    at.saturating_duration_since(first)
                };
                state
                    .histogram
                    .saturating_record((lag.as_micros() as u64).max(1));
            }
            _ => {
                state.pending.insert(id.to_string(), (answer, at));
            }
        }
    }

    fn histogram(&self) -> Histogram<u64> {
        self.state.lock().expect("lag book").histogram.clone()
    }
}

/// Streams events from the log's head and hands each arrival to the lag book.
async fn follow_event_lag(
    channel: Channel,
    bearer: Bearer,
    window: Window,
    book: Arc<LagBook>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let mut events =
        pb::event_service_client::EventServiceClient::with_interceptor(channel, bearer);
    let head = events
        .get_event_log(pb::GetEventLogRequest {})
        .await
        .map_err(|status| format!("GetEventLog: {status:?}"))?
        .into_inner()
        .event_log
        .map_or(0, |log| log.latest_sequence);
    let mut stream = events
        .stream_events(pb::StreamEventsRequest {
            after_sequence: head,
        })
        .await
        .map_err(|status| format!("StreamEvents: {status:?}"))?
        .into_inner();
    Ok(tokio::spawn(async move {
        // Events of answers given just before the window's end still arrive after it.
        let grace = window.end + Duration::from_secs(2);
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                _ = tokio::time::sleep_until(grace) => break,
            };
            let Ok(Some(message)) = message else { break };
            let Some(event) = message.event else { continue };
            if event.r#type.ends_with(".created") {
                book.arrived(&event.resource_id, Instant::now());
            }
        }
    }))
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
