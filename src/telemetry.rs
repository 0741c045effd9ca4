//! Logging through tracing-subscriber, to stderr (stdout carries command output such as
//! a new API key). `RUST_LOG` filters; the default is `info`.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Installs the global subscriber; a second call is a no-op (tests spawn many servers).
///
/// Lines go to stderr through one writer thread that writes whatever has queued up in
/// one call: a line per RPC written by the RPC's own thread cost a system call each,
/// ~15 % of a cached read's CPU. Nothing is dropped (a full queue makes loggers wait).
/// Keep the returned guard until the process ends: dropping it writes what is queued.
#[must_use = "lines still queued are written when the guard is dropped"]
pub fn init(format: LogFormat) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("tenancy-log")
        // Buffered: the writer thread flushes whenever its queue is empty, so a burst
        // of lines is one write instead of one each.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .flatten_event(true)
            .try_init(),
    };
    installed.ok().map(|()| guard)
}
