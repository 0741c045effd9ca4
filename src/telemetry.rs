//! Logging through tracing-subscriber, to stderr (stdout carries command output such as
//! a new API key). `RUST_LOG` filters; the default is `info`.

use std::{
    io::Write as _,
    sync::{
        Arc, Condvar, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// How long a line may wait in memory before it is written.
const FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// A buffer this full is written at once rather than at the next interval.
const FLUSH_BYTES: usize = 64 * 1024;
/// The default bound of the buffer (`--log-buffer-bytes`).
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 8 * 1024 * 1024;
/// The smallest bound accepted: a few hundred lines.
pub const MIN_MAX_BUFFERED_BYTES: usize = 64 * 1024;

/// Installs the global subscriber; a second call is a no-op (tests spawn many servers).
///
/// There is a line per RPC. Written by the RPC's own thread, each cost a system call;
/// handed to a writer thread one by one (tracing-appender), each woke that thread.
/// Both cost ~15 % of a cached read's CPU. So lines are appended to a buffer in memory
/// and one thread writes it out every `FLUSH_INTERVAL` (sooner when it fills): a line
/// reaches stderr within 20 ms. Keep the returned guard until the process ends:
/// dropping it writes what is buffered.
///
/// The buffer holds at most `max_buffered_bytes`. When stderr stalls (a reader that
/// stopped reading, a full pipe) and the buffer is full, a logger never waits: its line
/// is dropped and counted, so RPCs go on. Once the buffer drains again, one warning
/// says how many lines were dropped.
#[must_use = "buffered lines are written when the guard is dropped"]
pub fn init(format: LogFormat, max_buffered_bytes: usize) -> Option<LogGuard> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let writer = BufferedStderr {
        shared: Arc::new(Shared {
            max_bytes: max_buffered_bytes.max(MIN_MAX_BUFFERED_BYTES),
            ..Shared::default()
        }),
    };
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone())
        .with_ansi(ansi);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .flatten_event(true)
            .try_init(),
    };
    installed.ok()?;
    let thread = std::thread::Builder::new()
        .name("tenancy-log".into())
        .spawn({
            let shared = writer.shared.clone();
            move || shared.write_out_until_closed()
        })
        .ok();
    if thread.is_none() {
        // No writer thread: every line is written by its logger, as if closed.
        writer.shared.lock().closed = true;
    }
    Some(LogGuard {
        shared: writer.shared,
        thread,
    })
}

/// Writes what is still buffered when dropped, and stops the writer thread.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        match self.thread.take() {
            Some(thread) => {
                let _ = thread.join();
            }
            // No writer thread could be started: write here.
            None => self
                .shared
                .write_out(std::mem::take(&mut self.shared.lock().bytes)),
        }
    }
}

/// The `MakeWriter` of the subscriber: every line is appended to the shared buffer.
#[derive(Clone)]
struct BufferedStderr {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    buffer: Mutex<Buffer>,
    /// Tells the writer thread the buffer is full or closed.
    wake: Condvar,
    /// The most bytes the buffer holds; a line that does not fit is dropped.
    max_bytes: usize,
    /// Lines dropped since the last report.
    dropped: AtomicU64,
}

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_out_until_closed(&self) {
        let mut spare = Vec::new();
        loop {
            let mut buffer = self.lock();
            if buffer.bytes.len() < FLUSH_BYTES && !buffer.closed {
                buffer = self
                    .wake
                    .wait_timeout(buffer, FLUSH_INTERVAL)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            let closed = buffer.closed;
            std::mem::swap(&mut buffer.bytes, &mut spare);
            drop(buffer);
            // The buffer is empty now, so the report fits; it is written with the
            // next batch. (A stderr still stalled holds this thread in `write_out`,
            // and lines go on being counted until it returns.)
            let dropped = self.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "the log buffer was full (stderr not drained): lines were dropped"
                );
            }
            self.write_out(std::mem::take(&mut spare));
            if closed {
                // Lines logged after the guard was dropped are written directly.
                return;
            }
        }
    }

    fn write_out(&self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(&bytes);
            let _ = stderr.flush();
        }
    }
}

impl<'a> fmt::MakeWriter<'a> for BufferedStderr {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

/// One event's writer: appends to the buffer (or, once the guard is gone, to stderr).
struct LineWriter<'a> {
    shared: &'a Shared,
}

impl std::io::Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.shared.lock();
        if !buffer.closed && buffer.bytes.len() + bytes.len() > self.shared.max_bytes {
            // Full: stderr is not keeping up. Waiting would stall the RPC that logs
            // (and, with it, every RPC), so the line is dropped and counted.
            drop(buffer);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            self.shared.wake.notify_one();
            return Ok(bytes.len());
        }
        if buffer.closed {
            drop(buffer);
            return std::io::stderr().write(bytes);
        }
        buffer.bytes.extend_from_slice(bytes);
        if buffer.bytes.len() >= FLUSH_BYTES {
            self.shared.wake.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
