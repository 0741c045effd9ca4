use clap::Parser as _;
use tenancy::{
    commands,
    config::{Cli, Command},
    startup, telemetry,
};

/// The allocator policy: glibc malloc with a fixed mmap threshold and two arenas.
///
/// glibc raises its mmap threshold to the size of any large block freed (up to 32 MiB),
/// so after one 19 MiB argon2 buffer every later one came from an arena and stayed
/// there; and each of the many threads (tokio workers, one per SQLite connection,
/// hashing) could get its own arena, each keeping its high-water mark. A fixed 1 MiB
/// threshold makes large buffers mmap'd and unmapped on free; two arenas keep the
/// small-object heaps few. Measured with `bench/ratios.sh` (RSS after 100 CreateUser
/// with passwords and 1,000 AuthenticateUser, idle, release, OWASP parameters; see the
/// README's Benchmarks section for the table): this policy held RSS as low as
/// mimalloc or jemalloc did, without adding an allocator to build. An operator's own
/// `GLIBC_TUNABLES` is respected: with it set, nothing is changed here.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        // SAFETY: mallopt only sets malloc parameters; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.common.log_format);
    let result = match &cli.command {
        Command::Serve(serve) => match tokio::net::TcpListener::bind(serve.listen).await {
            Ok(listener) => {
                startup::run(
                    cli.common.database(),
                    (**serve).clone(),
                    listener,
                    startup::shutdown_signal(),
                )
                .await
            }
            Err(error) => Err(format!("cannot listen on {}: {error}", serve.listen).into()),
        },
        Command::Migrate => commands::migrate(&cli.common).await,
        Command::Keys(command) => commands::keys(&cli.common, command).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "tenancy failed");
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
