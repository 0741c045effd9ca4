//! `tenancy serve` as a child process of the test: an instance that can be killed,
//! frozen (SIGSTOP) or started with another environment (a faked clock) while the
//! test's own instances and clients go on.

use std::{net::SocketAddr, process::Stdio, time::Duration};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tenancy_client::pb::{
    account_service_client::AccountServiceClient, event_service_client::EventServiceClient,
    user_service_client::UserServiceClient,
};
use tokio::process::{Child, Command};
use tonic::transport::Endpoint;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{ADMIN_KEY, BearerKey, MASTER_KEY, Svc, eventually};

/// A running `tenancy serve` and clients for it carrying the admin key; killed on drop.
pub struct ServeChild {
    pub process: Child,
    pub users: UserServiceClient<Svc>,
    pub accounts: AccountServiceClient<Svc>,
    pub events: EventServiceClient<Svc>,
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
        let mut command = Command::new(env!("CARGO_BIN_EXE_tenancy"));
        for (name, _) in std::env::vars() {
            if name.starts_with("TENANCY_") || name == "DATABASE_URL" {
                command.env_remove(name);
            }
        }
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
            .stdin(Stdio::null())
            .stdout(output())
            .stderr(output())
            .kill_on_drop(true);
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
            users: UserServiceClient::with_interceptor(channel.clone(), key.clone()),
            accounts: AccountServiceClient::with_interceptor(channel.clone(), key.clone()),
            events: EventServiceClient::with_interceptor(channel, key),
        }
    }

    /// Sends `signal` to the process (SIGSTOP freezes it, SIGCONT resumes it).
    pub fn signal(&self, signal: Signal) {
        let pid = self.process.id().expect("the process is running");
        kill(Pid::from_raw(pid as i32), signal).expect("signal tenancy serve");
    }
}
