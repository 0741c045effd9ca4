//! `tenancy serve` as a child process of the test: an instance that can be killed,
//! frozen (SIGSTOP) or started with another environment (a faked clock) while the
//! test's own instances and clients go on; and the other subcommands run to their end.

use std::{
    net::SocketAddr,
    process::{Output, Stdio},
    time::Duration,
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tenancy_client::pb::{
    account_service_client::AccountServiceClient, event_service_client::EventServiceClient,
    session_service_client::SessionServiceClient, user_service_client::UserServiceClient,
};
use tokio::process::{Child, Command};
use tonic::transport::Endpoint;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{ADMIN_KEY, BearerKey, MASTER_KEY, Svc, eventually};

/// `tenancy` with a clean environment (none of the caller's settings leak in), logging
/// at `info`, its output piped.
pub fn tenancy() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenancy"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TENANCY_") || name == "DATABASE_URL" || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs a `tenancy` subcommand on `database_url` (through `DATABASE_URL`) to the end.
pub async fn run_command(database_url: &str, args: &[&str]) -> Output {
    run_command_with(database_url, args, &[]).await
}

/// `run_command` with `env` added to the command's environment.
pub async fn run_command_with(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::time::timeout(
        Duration::from_secs(60),
        tenancy()
            .env("DATABASE_URL", database_url)
            .envs(env.iter().copied())
            .args(args)
            .output(),
    )
    .await
    .expect("the command finished")
    .expect("run tenancy")
}

pub fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A running `tenancy serve` and clients for it carrying the admin key; killed on drop.
pub struct ServeChild {
    pub process: Child,
    pub address: SocketAddr,
    pub users: UserServiceClient<Svc>,
    pub accounts: AccountServiceClient<Svc>,
    pub events: EventServiceClient<Svc>,
    pub sessions: SessionServiceClient<Svc>,
}

impl ServeChild {
    /// Starts `tenancy serve` on `database_url` and a free loopback port, with none of
    /// the caller's `TENANCY_*` settings; `configure` adds to its command (settings,
    /// an environment). Returns once it answers health checks as SERVING. Its output
    /// goes to the test's only with `TEST_LOG=1`.
    pub async fn start(database_url: &str, configure: impl FnOnce(&mut Command)) -> ServeChild {
        let address: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let mut command = tenancy();
        let logged = std::env::var("TEST_LOG").as_deref() == Ok("1");
        let output = || {
            if logged {
                Stdio::inherit()
            } else {
                Stdio::null()
            }
        };
        command
            .args(["serve", "--listen", &address.to_string()])
            .env("DATABASE_URL", database_url)
            .env("TENANCY_ADMIN_KEY", ADMIN_KEY)
            .env("TENANCY_MASTER_KEY", MASTER_KEY)
            .env("RUST_LOG", if logged { "info" } else { "warn" })
            .stdout(output())
            .stderr(output());
        configure(&mut command);
        let process = command.spawn().expect("start tenancy serve");
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .expect("endpoint")
            .connect_lazy();
        let health = HealthClient::new(channel.clone());
        eventually(Duration::from_secs(60), || {
            let mut health = health.clone();
            async move {
                matches!(
                    health
                        .check(HealthCheckRequest::default())
                        .await
                        .map(|r| r.into_inner().status()),
                    Ok(ServingStatus::Serving)
                )
            }
        })
        .await;
        let key = BearerKey(Some(ADMIN_KEY.into()));
        ServeChild {
            process,
            address,
            users: UserServiceClient::with_interceptor(channel.clone(), key.clone()),
            accounts: AccountServiceClient::with_interceptor(channel.clone(), key.clone()),
            events: EventServiceClient::with_interceptor(channel.clone(), key.clone()),
            sessions: SessionServiceClient::with_interceptor(channel, key),
        }
    }

    /// Sends `signal` to the process (SIGSTOP freezes it, SIGCONT resumes it).
    pub fn signal(&self, signal: Signal) {
        let pid = self.process.id().expect("the process is running");
        kill(Pid::from_raw(pid as i32), signal).expect("signal tenancy serve");
    }

    /// Stops the process with SIGTERM (so it writes its last log lines) and waits for it.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        self.signal(Signal::SIGTERM);
        tokio::time::timeout(Duration::from_secs(20), self.process.wait())
            .await
            .expect("tenancy serve exited after SIGTERM")
            .expect("wait for tenancy serve")
    }
}
