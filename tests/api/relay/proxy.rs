//! A TCP proxy between a relay and `nats-server` that makes the network's faults on
//! demand: it cuts every connection, black-holes them (holds what either side sends,
//! forwards nothing, closes nothing, and delivers it all late when restored), or cuts
//! once a number of publishes passed with their acks held back. Hand-written: the cut
//! must fall between NATS protocol frames, which no general proxy does.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::watch,
};

pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    accepting: tokio::task::JoinHandle<()>,
}

struct Shared {
    upstream: SocketAddr,
    black_holed: watch::Sender<BlackHoled>,
    /// Bumped by each cut; a connection opened before it ends and writes nothing more.
    cuts: watch::Sender<u64>,
    /// Armed: publishes still to pass before every connection is cut.
    cut_after: Mutex<Option<u64>>,
    held_publishes: AtomicU64,
    /// Bytes held now, on all connections.
    held_bytes: AtomicU64,
}

/// Which way the black hole swallows.
#[derive(Clone, Copy, Default)]
struct BlackHoled {
    to_server: bool,
    to_client: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

impl Proxy {
    pub async fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            black_holed: watch::channel(BlackHoled::default()).0,
            cuts: watch::channel(0).0,
            cut_after: Mutex::new(None),
            held_publishes: AtomicU64::new(0),
            held_bytes: AtomicU64::new(0),
        });
        let accepting = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(connection(shared.clone(), client));
                }
            }
        });
        Proxy {
            port,
            shared,
            accepting,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Closes every open connection, dropping what it held.
    pub fn cut(&self) {
        self.shared.cut();
    }

    pub fn cuts(&self) -> u64 {
        *self.shared.cuts.borrow()
    }

    /// Stops forwarding on every connection, open or new, without closing any.
    pub fn black_hole(&self) {
        self.shared.black_holed.send_replace(BlackHoled {
            to_server: true,
            to_client: true,
        });
    }

    /// Stops forwarding what clients send, open connections or new, closing none; the
    /// server's answers to what it already took still come through.
    pub fn black_hole_towards_server(&self) {
        self.shared.black_holed.send_replace(BlackHoled {
            to_server: true,
            to_client: false,
        });
    }

    /// Forwards again, first everything held.
    pub fn restore(&self) {
        self.shared.black_holed.send_replace(BlackHoled::default());
    }

    /// Once a connection passes a publish, its acks are held back; after `publishes`
    /// more publishes passed (on any connection), every connection is cut.
    pub fn arm_cut_after(&self, publishes: u64) {
        *self.shared.cut_after.lock().expect("proxy lock") = Some(publishes);
    }

    /// Publishes (`HPUB`) the black hole held so far.
    pub fn held_publishes(&self) -> u64 {
        self.shared.held_publishes.load(Ordering::Relaxed)
    }

    /// Bytes held now: what the black hole has not delivered yet.
    pub fn held_bytes(&self) -> u64 {
        self.shared.held_bytes.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.shared.cut();
    }
}

impl Shared {
    fn cut(&self) {
        self.cuts.send_modify(|cuts| *cuts += 1);
    }

    /// Whether to cut now, counting one publish passing while armed.
    fn count_armed_publish(&self) -> Option<bool> {
        let mut armed = self.cut_after.lock().expect("proxy lock");
        let left = armed.as_mut()?;
        *left = left.saturating_sub(1);
        if *left == 0 {
            *armed = None;
            return Some(true);
        }
        Some(false)
    }
}

async fn connection(shared: Arc<Shared>, client: TcpStream) {
    let generation = *shared.cuts.borrow();
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let (from_client, to_client) = client.into_split();
    let (from_server, to_server) = server.into_split();
    let acks_held = Arc::new(AtomicBool::new(false));
    let mut cuts = shared.cuts.subscribe();
    tokio::select! {
        _ = async {
            tokio::join!(
                pump(&shared, generation, from_client, to_server, Direction::ToServer, &acks_held),
                pump(&shared, generation, from_server, to_client, Direction::ToClient, &acks_held),
            )
        } => {}
        _ = cuts.wait_for(|cuts| *cuts != generation) => {}
    }
}

/// Copies one direction, frame by frame towards the server (so a cut or a count falls
/// between NATS protocol frames), holding while black-holed.
async fn pump(
    shared: &Shared,
    generation: u64,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    direction: Direction,
    acks_held: &AtomicBool,
) {
    let mut black_holed = shared.black_holed.subscribe();
    let mut frames = Frames::default();
    let mut held = Held {
        bytes: Vec::new(),
        counted: &shared.held_bytes,
    };
    let mut buffer = vec![0u8; 64 * 1024];
    let mut ended = false;
    loop {
        let cut = || *shared.cuts.borrow() != generation;
        let swallowed = *black_holed.borrow_and_update();
        let holding = match direction {
            Direction::ToServer => swallowed.to_server,
            Direction::ToClient => swallowed.to_client || acks_held.load(Ordering::Relaxed),
        };
        if !holding && !held.bytes.is_empty() {
            if cut() || to.write_all(&held.bytes).await.is_err() {
                return;
            }
            held.clear();
        }
        if ended && !holding {
            let _ = to.shutdown().await;
            return;
        }
        tokio::select! {
            read = from.read(&mut buffer), if !ended => match read {
                Ok(0) | Err(_) => ended = true,
                Ok(read) if direction == Direction::ToClient => {
                    held.extend(&buffer[..read]);
                }
                Ok(read) => {
                    frames.push(&buffer[..read]);
                    while let Some((frame, publish)) = frames.next() {
                        if black_holed.borrow().to_server {
                            if publish {
                                shared.held_publishes.fetch_add(1, Ordering::Relaxed);
                            }
                            held.extend(&frame);
                            continue;
                        }
                        let cut_now = if publish {
                            let armed = shared.count_armed_publish();
                            if armed.is_some() {
                                acks_held.store(true, Ordering::Relaxed);
                            }
                            armed == Some(true)
                        } else {
                            false
                        };
                        held.extend(&frame);
                        if cut_now {
                            if !cut() && to.write_all(&held.bytes).await.is_ok() {
                                let _ = to.flush().await;
                            }
                            shared.cut();
                            return;
                        }
                    }
                }
            },
            changed = black_holed.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Bytes a pump has not forwarded yet, counted in `counted` while it holds them.
struct Held<'a> {
    bytes: Vec<u8>,
    counted: &'a AtomicU64,
}

impl Held<'_> {
    fn extend(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.counted
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }

    fn clear(&mut self) {
        self.counted
            .fetch_sub(self.bytes.len() as u64, Ordering::Relaxed);
        self.bytes.clear();
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Splits the client's byte stream into NATS protocol frames: a control line, plus
/// its payload for `PUB` and `HPUB`.
#[derive(Default)]
struct Frames {
    buffer: Vec<u8>,
}

impl Frames {
    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, and whether it is a publish with headers (an event).
    fn next(&mut self) -> Option<(Vec<u8>, bool)> {
        let line_end = self.buffer.windows(2).position(|pair| pair == b"\r\n")? + 2;
        let line = &self.buffer[..line_end - 2];
        let publish = line.starts_with(b"HPUB ");
        let payload = if publish || line.starts_with(b"PUB ") {
            let size = line
                .rsplit(|byte| *byte == b' ')
                .next()
                .and_then(|size| std::str::from_utf8(size).ok())
                .and_then(|size| size.parse::<usize>().ok())
                .expect("a payload size ends a PUB line");
            size + 2
        } else {
            0
        };
        let length = line_end + payload;
        if self.buffer.len() < length {
            return None;
        }
        Some((self.buffer.drain(..length).collect(), publish))
    }
}
