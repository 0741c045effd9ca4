//! The real binary: graceful shutdown on SIGTERM, the admin key printed on first start,
//! and `tenancy keys create|list|revoke`.

use std::{
    net::SocketAddr,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tenancy_client::pb::{
    self, event_service_client::EventServiceClient, user_service_client::UserServiceClient,
};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::Child,
    task::JoinHandle,
};
use tonic::{
    Code,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::{create_request, get_by_email};
use crate::helpers::{
    ADMIN_KEY, Backend, BearerKey, GOOD_PASSWORD, eventually, spawn_app, unique_email,
};
use crate::serve_child::{lines, run_command, tenancy};

type Lines = Arc<Mutex<Vec<String>>>;

fn collect_lines(
    pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> (Lines, JoinHandle<()>) {
    let lines = Lines::default();
    let reader = tokio::spawn({
        let lines = lines.clone();
        async move {
            let mut pipe = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = pipe.next_line().await {
                lines.lock().unwrap().push(line);
            }
        }
    });
    (lines, reader)
}

/// `tenancy serve` running as a child process.
struct Server {
    child: Child,
    address: SocketAddr,
    stdout: Lines,
    stderr: Lines,
    readers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts `tenancy serve` on a free loopback port and waits until it is SERVING.
    async fn start(database_url: &str, env: &[(&str, &str)]) -> Server {
        let mut child = tenancy()
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("DATABASE_URL", database_url)
            .envs(env.iter().copied())
            .spawn()
            .expect("start tenancy serve");
        let (stdout, out_reader) = collect_lines(child.stdout.take().unwrap());
        let (stderr, err_reader) = collect_lines(child.stderr.take().unwrap());
        let started = Instant::now();
        // The server logs the address it bound (port 0 picks a free one).
        let address = loop {
            let bound = stderr.lock().unwrap().iter().find_map(|line| {
                let log: serde_json::Value = serde_json::from_str(line).ok()?;
                (log["message"] == "serving gRPC").then(|| log["address"].as_str()?.parse().ok())?
            });
            if let Some(address) = bound {
                break address;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "tenancy serve exited with {status}: {:?}",
                    stderr.lock().unwrap()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "tenancy serve did not start: {:?}",
                stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let server = Server {
            child,
            address,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        };
        server.wait_until_serving().await;
        server
    }

    fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.address))
            .expect("endpoint")
            .connect_lazy()
    }

    fn users(&self, key: &str) -> UserServiceClient<crate::helpers::Svc> {
        UserServiceClient::with_interceptor(self.channel(), BearerKey(Some(key.into())))
    }

    async fn wait_until_serving(&self) {
        let mut health = HealthClient::new(self.channel());
        let started = Instant::now();
        loop {
            let status = health
                .check(HealthCheckRequest::default())
                .await
                .map(|r| r.into_inner().status());
            if matches!(status, Ok(ServingStatus::Serving)) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "not SERVING: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The key printed on stdout (it comes before the server serves, but the pipe is
    /// read concurrently).
    async fn printed_key(&self) -> Option<String> {
        let started = Instant::now();
        loop {
            let key = self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with("tny_"))
                .cloned();
            if key.is_some() || started.elapsed() > Duration::from_secs(5) {
                return key;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn terminate(&self) {
        let pid = self.child.id().expect("running") as i32;
        kill(Pid::from_raw(pid), Signal::SIGTERM).expect("send SIGTERM");
    }

    /// Waits for the process to exit and for its output to be read to the end.
    async fn wait(mut self, within: Duration) -> (ExitStatus, Vec<String>, Vec<String>) {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("tenancy did not exit within {within:?}"))
            .expect("wait");
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
        let stdout = self.stdout.lock().unwrap().clone();
        let stderr = self.stderr.lock().unwrap().clone();
        (status, stdout, stderr)
    }

    async fn stop(self) -> (ExitStatus, Vec<String>, Vec<String>) {
        self.terminate();
        self.wait(Duration::from_secs(15)).await
    }
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/t.db?mode=rwc", dir.path().display())
}

/// Cheap hashing, for tests that do not need it slow.
const FAST_ARGON2: [(&str, &str); 2] = [
    ("TENANCY_ARGON2_MEMORY_KIB", "256"),
    ("TENANCY_ARGON2_ITERATIONS", "1"),
];

fn with_password(email: &str) -> pb::CreateUserRequest {
    let mut request = create_request(email);
    request.password = GOOD_PASSWORD.into();
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_rpcs_reports_not_serving_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    // Slow hashing keeps a CreateUser with a password in flight long enough to be
    // caught by the signal. A long grace shows the drain ends when the RPCs do.
    let server = Server::start(
        &sqlite_url(&dir),
        &[
            ("TENANCY_ADMIN_KEY", ADMIN_KEY),
            ("TENANCY_ARGON2_MEMORY_KIB", "65536"),
            ("TENANCY_ARGON2_ITERATIONS", "16"),
            ("TENANCY_SHUTDOWN_GRACE", "60"),
        ],
    )
    .await;
    let address = server.address;
    let mut users = server.users(ADMIN_KEY);
    let started = Instant::now();
    users
        .create_user(with_password(&unique_email("calibrate")))
        .await
        .expect("create");
    let hash_time = started.elapsed();
    let mut watch = HealthClient::new(server.channel())
        .watch(HealthCheckRequest::default())
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    let mut events =
        EventServiceClient::with_interceptor(server.channel(), BearerKey(Some(ADMIN_KEY.into())))
            .stream_events(pb::StreamEventsRequest { after_sequence: 0 })
            .await
            .expect("stream")
            .into_inner();
    assert_eq!(
        events
            .message()
            .await
            .unwrap()
            .unwrap()
            .event
            .unwrap()
            .sequence,
        1
    );

    let in_flight_email = unique_email("in-flight");
    let in_flight = tokio::spawn({
        let request = with_password(&in_flight_email);
        async move {
            let result = users.create_user(request).await;
            (result, Instant::now())
        }
    });
    // Give the request time to reach the server: a small share of one hash.
    tokio::time::sleep(hash_time / 4).await;
    let signalled = Instant::now();
    server.terminate();
    let not_serving = tokio::time::timeout(Duration::from_secs(5), watch.message()).await;
    let not_serving_at = Instant::now();
    // The listening socket closes at once; in-flight RPCs go on.
    let refused_at = loop {
        if tokio::net::TcpStream::connect(address).await.is_err() {
            break Instant::now();
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "still accepting"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let in_flight_running_when_refused = !in_flight.is_finished();
    // Long streams end when shutdown begins rather than holding up the drain.
    let events_end = tokio::time::timeout(Duration::from_secs(5), events.message()).await;
    // The health watch ends once it has reported NOT_SERVING, so it does not hold
    // up the drain either.
    let watch_end = tokio::time::timeout(Duration::from_secs(5), watch.message()).await;
    let (created, completed_at) = in_flight.await.expect("in-flight task");
    let (status, _, stderr) = server.wait(Duration::from_secs(20)).await;
    let exited_after = signalled.elapsed();

    eprintln!(
        "one argon2 hash (m=64 MiB, t=16) took {hash_time:?}; NOT_SERVING seen {:?} and \
         connections refused {:?} after SIGTERM; the in-flight RPC finished {:?} after \
         SIGTERM; the process exited {exited_after:?} after SIGTERM",
        not_serving_at - signalled,
        refused_at - signalled,
        completed_at - signalled,
    );
    assert!(
        hash_time > Duration::from_millis(300),
        "hashing is slow enough to catch in flight: {hash_time:?}"
    );
    let not_serving = not_serving
        .expect("health changed in time")
        .expect("the watch")
        .expect("a health update");
    assert_eq!(not_serving.status(), ServingStatus::NotServing);
    assert!(
        in_flight_running_when_refused,
        "new connections were refused while the RPC was still running"
    );
    let created = created.expect("the in-flight RPC completed OK");
    assert_eq!(created.into_inner().user.unwrap().email, in_flight_email);
    assert!(
        completed_at > not_serving_at,
        "it was in flight during shutdown"
    );
    assert!(
        matches!(events_end, Ok(Ok(None))),
        "the event stream ended cleanly: {events_end:?}"
    );
    assert!(
        matches!(watch_end, Ok(Ok(None))),
        "the health watch ended cleanly: {watch_end:?}"
    );
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(
        exited_after < Duration::from_secs(30),
        "the drain ended with the RPCs, not the 60 s grace"
    );
    assert!(
        !stderr.iter().any(|l| l.contains("did not finish in time")),
        "{stderr:?}"
    );
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "nothing listens after exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_an_admin_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);

    let first = Server::start(&url, &FAST_ARGON2).await;
    let key = first.printed_key().await.expect("a key on stdout");
    let created = first
        .users(&key)
        .create_user(create_request(&unique_email("first")))
        .await;
    let (status, stdout, _) = first.stop().await;

    assert!(created.is_ok(), "the printed key works: {created:?}");
    assert_eq!(status.code(), Some(0));
    let printed: Vec<&String> = stdout.iter().filter(|l| l.starts_with("tny_")).collect();
    assert_eq!(printed.len(), 1, "one key, once: {stdout:?}");

    let second = Server::start(&url, &FAST_ARGON2).await;
    let still_works = second
        .users(printed[0])
        .get_user(get_by_email(&unique_email("nobody")))
        .await
        .unwrap_err();
    let (status, stdout, _) = second.stop().await;

    assert_eq!(status.code(), Some(0));
    assert!(
        !stdout.iter().any(|l| l.contains("tny_")),
        "no key on a second start: {stdout:?}"
    );
    assert_eq!(still_works.code(), Code::NotFound, "{still_works:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_admin_key_is_installed_and_none_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = FAST_ARGON2.to_vec();
    env.push(("TENANCY_ADMIN_KEY", ADMIN_KEY));

    let server = Server::start(&sqlite_url(&dir), &env).await;
    let works = server
        .users(ADMIN_KEY)
        .get_user(get_by_email(&unique_email("nobody")))
        .await
        .unwrap_err();
    let (status, stdout, _) = server.stop().await;

    assert_eq!(works.code(), Code::NotFound, "{works:?}");
    assert_eq!(status.code(), Some(0));
    assert!(!stdout.iter().any(|l| l.contains("tny_")), "{stdout:?}");
}

async fn the_keys_command_creates_lists_and_revokes_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = app.database.url.clone();

    let created = run_command(
        &url,
        &["keys", "create", "--name", "ci", "--scope", "users.read"],
    )
    .await;
    let created_out = lines(&created.stdout);
    let key = created_out.last().cloned().unwrap_or_default();
    let mut users = app.users_with_key(Some(&key));
    let email = unique_email("ci");
    let read = users.get_user(get_by_email(&email)).await.unwrap_err();
    let write = users.create_user(create_request(&email)).await.unwrap_err();
    let listed = run_command(&url, &["keys", "list"]).await;
    let listed_out = lines(&listed.stdout);
    let ci_line = listed_out
        .iter()
        .find(|l| l.split_whitespace().any(|w| w == "ci"))
        .cloned()
        .unwrap_or_else(|| panic!("ci is listed: {listed_out:?}"));
    let id = ci_line.split_whitespace().next().unwrap().to_string();
    let revoked = run_command(&url, &["keys", "revoke", &id]).await;
    // Within the key cache's staleness bound (1 s by default;
    // the test allows more for a loaded machine: `caching::keys` asserts the bound).
    eventually(Duration::from_secs(5), || {
        let mut users = users.clone();
        let email = email.clone();
        async move {
            users
                .get_user(get_by_email(&email))
                .await
                .unwrap_err()
                .code()
                == Code::Unauthenticated
        }
    })
    .await;
    let after_revoke = users.get_user(get_by_email(&email)).await.unwrap_err();
    let relisted = lines(&run_command(&url, &["keys", "list"]).await.stdout);
    let unknown_scope = run_command(
        &url,
        &["keys", "create", "--name", "x", "--scope", "users.delete"],
    )
    .await;
    let no_scope = run_command(&url, &["keys", "create", "--name", "x"]).await;
    let unknown_id = run_command(
        &url,
        &["keys", "revoke", "0190f1e2-0000-7000-8000-000000000000"],
    )
    .await;

    assert!(created.status.success(), "{created:?}");
    assert!(
        key.starts_with("tny_") && !key.contains(char::is_whitespace),
        "the key alone on the last line: {created_out:?}"
    );
    assert_eq!(
        created_out.iter().filter(|l| l.contains(&key)).count(),
        1,
        "shown once"
    );
    assert_eq!(read.code(), Code::NotFound, "the key reads: {read:?}");
    assert_eq!(
        write.code(),
        Code::PermissionDenied,
        "but may not write: {write:?}"
    );
    assert!(listed.status.success(), "{listed:?}");
    assert!(
        ci_line.contains("active") && ci_line.contains("users.read"),
        "{ci_line}"
    );
    assert!(
        !listed_out.iter().any(|l| l.contains(&key)),
        "list never shows a secret"
    );
    assert!(revoked.status.success(), "{revoked:?}");
    assert_eq!(
        after_revoke.code(),
        Code::Unauthenticated,
        "{after_revoke:?}"
    );
    assert!(
        relisted
            .iter()
            .any(|l| l.starts_with(&id) && l.contains("revoked")),
        "{relisted:?}"
    );
    assert!(!unknown_scope.status.success(), "{unknown_scope:?}");
    assert!(
        !lines(&unknown_scope.stdout)
            .iter()
            .any(|l| l.contains("tny_")),
        "no key for a refused request"
    );
    assert!(!no_scope.status.success(), "{no_scope:?}");
    assert!(!unknown_id.status.success(), "{unknown_id:?}");
}

crate::on_both_backends!(the_keys_command_creates_lists_and_revokes_keys);

/// A free loopback port (bound, then released for the child to bind).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_stderr_is_not_drained_keeps_answering_and_counts_dropped_lines() {
    let dir = tempfile::tempdir().unwrap();
    let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut env = FAST_ARGON2.to_vec();
    env.push(("TENANCY_ADMIN_KEY", ADMIN_KEY));
    // The smallest buffer: with a pipe nobody reads (64 KiB on Linux) it is full after
    // a few hundred RPCs.
    env.push(("TENANCY_LOG_BUFFER_BYTES", "65536"));
    let mut child = tenancy()
        .args([
            "serve",
            "--listen",
            &address.to_string(),
            "--log-format",
            "json",
        ])
        .env("DATABASE_URL", sqlite_url(&dir))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .expect("start tenancy serve");
    // Held, never read until the RPCs are done.
    let stderr = child.stderr.take().expect("stderr piped");
    let server = Server {
        child,
        address,
        stdout: Lines::default(),
        stderr: Lines::default(),
        readers: Vec::new(),
    };
    server.wait_until_serving().await;

    // Each GetUser logs an info line of ~250 bytes: 3,000 of them are over ten times
    // what the pipe and the buffer hold together.
    let mut users = server.users(ADMIN_KEY);
    let started = Instant::now();
    let mut answered = 0;
    for _ in 0..3_000 {
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            users.get_user(get_by_email("nobody@example.com")),
        )
        .await;
        match answer {
            Ok(Err(status)) if status.code() == Code::NotFound => answered += 1,
            other => panic!(
                "RPC {answered} after {:?} with stderr not drained: {other:?}",
                started.elapsed()
            ),
        }
    }
    let took = started.elapsed();

    // Once stderr is read again, the lines dropped meanwhile are counted in one line.
    let (lines, reader) = collect_lines(stderr);
    let reported = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let dropped = lines.lock().unwrap().iter().find_map(|line| {
                let log: serde_json::Value = serde_json::from_str(line).ok()?;
                log["message"]
                    .as_str()?
                    .contains("lines were dropped")
                    .then(|| log["dropped"].as_u64())?
            });
            if let Some(dropped) = dropped {
                return dropped;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    server.terminate();
    let mut server = server;
    let _ = tokio::time::timeout(Duration::from_secs(15), server.child.wait()).await;
    reader.abort();

    eprintln!("3,000 RPCs with stderr not drained took {took:?}; dropped lines: {reported:?}");
    assert_eq!(answered, 3_000);
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let dropped = reported.expect("a line reports the dropped lines once stderr drains");
    assert!(dropped > 0 && dropped <= 3_000, "dropped {dropped}");
}
