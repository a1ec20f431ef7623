//! A TCP proxy that misbehaves on purpose, one connection at a time.
//!
//! [`FaultProxy`] forwards every connection to the relay and, when told,
//! hurts one of them the way real networks do:
//!
//! - [`Fault::Cut`]: the connection is gone, both directions, with whatever
//!   was in flight (a pulled cable, a NAT that forgot the flow).
//! - [`Fault::Stall`]: nothing is forwarded either way for a while, but the
//!   connection stays open (a train in a tunnel, a wedged middlebox). The
//!   ends only notice if their heartbeats time out.
//! - [`Fault::Delay`]: every chunk arrives `latency` late for a while (a
//!   congested uplink). Order within a connection is kept.
//!
//! Which faults happen and when is up to the caller, who draws them from a
//! seeded RNG (see [`FaultMix::draw`]) so a run's fault schedule can be
//! replayed. Which connection a fault hits is drawn too, as an index into
//! the connections open at that moment, ordered by when they opened.
//!
//! Chunks read from one side go through a small bounded queue to the
//! writer of the other side, so a stalled or slow connection pushes back
//! on its sender instead of buffering without bound.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Result;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Chunks queued between a connection's reader and writer, per direction.
const QUEUE_CHUNKS: usize = 32;

/// After one direction of a connection has ended, how long the other may
/// go on before the whole connection is dropped.
const HALF_CLOSED_GRACE: Duration = Duration::from_secs(2);

/// One thing that can go wrong with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Close it at once, dropping anything in flight.
    Cut,
    /// Forward nothing, either way, for this long; keep it open.
    Stall(Duration),
    /// Hold every chunk back by `latency`, for `lasting`.
    Delay {
        /// How late each chunk arrives.
        latency: Duration,
        /// How long the connection stays slow.
        lasting: Duration,
    },
}

/// How often each kind of fault is drawn and how bad it gets.
#[derive(Debug, Clone)]
pub struct FaultMix {
    /// Relative weight of cuts.
    pub cut: u32,
    /// Relative weight of stalls.
    pub stall: u32,
    /// Relative weight of delays.
    pub delay: u32,
    /// Stalls last between these two.
    pub stall_range: (Duration, Duration),
    /// Delays add between these two to each chunk.
    pub latency_range: (Duration, Duration),
    /// Delays last between these two.
    pub delay_range: (Duration, Duration),
}

impl Default for FaultMix {
    /// Mostly cuts and stalls; stalls sometimes long enough for a
    /// heartbeat to declare the link dead, sometimes not.
    fn default() -> FaultMix {
        FaultMix {
            cut: 4,
            stall: 3,
            delay: 3,
            stall_range: (Duration::from_millis(200), Duration::from_millis(5_000)),
            latency_range: (Duration::from_millis(20), Duration::from_millis(800)),
            delay_range: (Duration::from_millis(500), Duration::from_millis(5_000)),
        }
    }
}

impl FaultMix {
    /// Draws the next fault.
    pub fn draw(&self, rng: &mut impl Rng) -> Fault {
        let total = self.cut + self.stall + self.delay;
        let pick = rng.gen_range(0..total.max(1));
        if pick < self.cut {
            Fault::Cut
        } else if pick < self.cut + self.stall {
            Fault::Stall(between(rng, self.stall_range))
        } else {
            Fault::Delay { latency: between(rng, self.latency_range), lasting: between(rng, self.delay_range) }
        }
    }
}

fn between(rng: &mut impl Rng, (low, high): (Duration, Duration)) -> Duration {
    if high <= low { low } else { rng.gen_range(low..=high) }
}

/// How many faults a proxy has applied, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Connections cut, one at a time or all at once.
    pub cuts: u64,
    /// Connections stalled.
    pub stalls: u64,
    /// Connections slowed down.
    pub delays: u64,
}

/// A fault-injecting TCP proxy in front of the relay. Cloning is shallow:
/// every clone is the same proxy.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Held only to stop accepting when the last clone goes.
    _accept: Arc<AbortOnDrop>,
}

#[derive(Debug)]
struct Shared {
    /// A std mutex: held only to look up or change a few fields, never
    /// across an `.await`.
    state: Mutex<State>,
    cuts: AtomicU64,
    stalls: AtomicU64,
    delays: AtomicU64,
}

#[derive(Debug)]
struct State {
    upstream: SocketAddr,
    next_id: u64,
    /// Open connections by id: ids grow, so this is opening order.
    links: BTreeMap<u64, Link>,
}

#[derive(Debug)]
struct Link {
    task: AbortHandle,
    condition: Arc<Mutex<Condition>>,
}

/// What is wrong with one connection right now.
#[derive(Debug, Default)]
struct Condition {
    stalled_until: Option<Instant>,
    delayed: Option<(Duration, Instant)>,
}

impl Condition {
    fn latency(&self, now: Instant) -> Duration {
        match self.delayed {
            Some((latency, until)) if now < until => latency,
            _ => Duration::ZERO,
        }
    }

    fn stalled_until(&self, now: Instant) -> Option<Instant> {
        self.stalled_until.filter(|until| now < *until)
    }
}

/// Stops the accept loop when the last clone of the proxy is dropped.
#[derive(Debug)]
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl FaultProxy {
    /// A proxy on `127.0.0.1:0` forwarding to `upstream`, doing no harm
    /// until told to.
    pub async fn start(upstream: SocketAddr) -> Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { upstream, next_id: 0, links: BTreeMap::new() }),
            cuts: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            delays: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(FaultProxy { addr, shared, _accept: Arc::new(AbortOnDrop(accept.abort_handle())) })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://proxy/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Forwards new connections to `upstream` (a restarted relay). Open
    /// connections keep their old upstream until they end.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        self.shared.lock().upstream = upstream;
    }

    /// How many connections are open.
    pub fn open_links(&self) -> usize {
        self.shared.lock().links.len()
    }

    /// Applies `fault` to the open connection number `pick` (modulo how
    /// many are open, oldest first). `false` if none is open.
    pub fn inject(&self, fault: Fault, pick: u64) -> bool {
        let mut state = self.shared.lock();
        let count = state.links.len() as u64;
        if count == 0 {
            return false;
        }
        let Some(&id) = state.links.keys().nth((pick % count) as usize) else { return false };
        let now = Instant::now();
        match fault {
            Fault::Cut => {
                if let Some(link) = state.links.remove(&id) {
                    link.task.abort();
                    self.shared.cuts.fetch_add(1, Ordering::Relaxed);
                }
            }
            Fault::Stall(lasting) => {
                if let Some(link) = state.links.get(&id) {
                    lock_condition(&link.condition).stalled_until = Some(now + lasting);
                    self.shared.stalls.fetch_add(1, Ordering::Relaxed);
                }
            }
            Fault::Delay { latency, lasting } => {
                if let Some(link) = state.links.get(&id) {
                    lock_condition(&link.condition).delayed = Some((latency, now + lasting));
                    self.shared.delays.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        true
    }

    /// Cuts every open connection; returns how many there were.
    pub fn cut_all(&self) -> usize {
        let links = std::mem::take(&mut self.shared.lock().links);
        for link in links.values() {
            link.task.abort();
        }
        self.shared.cuts.fetch_add(links.len() as u64, Ordering::Relaxed);
        links.len()
    }

    /// Ends every stall and delay now: the network is healthy again.
    pub fn heal(&self) {
        for link in self.shared.lock().links.values() {
            *lock_condition(&link.condition) = Condition::default();
        }
    }

    /// The faults applied so far.
    pub fn counts(&self) -> FaultCounts {
        FaultCounts {
            cuts: self.shared.cuts.load(Ordering::Relaxed),
            stalls: self.shared.stalls.load(Ordering::Relaxed),
            delays: self.shared.delays.load(Ordering::Relaxed),
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn lock_condition(condition: &Mutex<Condition>) -> MutexGuard<'_, Condition> {
    condition.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        let condition = Arc::new(Mutex::new(Condition::default()));
        let mut state = shared.lock();
        let id = state.next_id;
        state.next_id += 1;
        let upstream = state.upstream;
        let task = tokio::spawn(link(id, client, upstream, Arc::clone(&condition), Arc::clone(&shared)));
        state.links.insert(id, Link { task: task.abort_handle(), condition });
    }
}

/// Runs one connection until both directions end, one end fails, or the
/// connection is cut (the task is aborted, which drops both sockets).
async fn link(id: u64, client: TcpStream, upstream: SocketAddr, condition: Arc<Mutex<Condition>>, shared: Arc<Shared>) {
    if let Ok(server) = TcpStream::connect(upstream).await {
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        let up = direction(client_read, server_write, Arc::clone(&condition));
        let down = direction(server_read, client_write, condition);
        tokio::pin!(up, down);
        tokio::select! {
            () = &mut up => { let _ = tokio::time::timeout(HALF_CLOSED_GRACE, down).await; }
            () = &mut down => { let _ = tokio::time::timeout(HALF_CLOSED_GRACE, up).await; }
        }
    }
    shared.lock().links.remove(&id);
}

/// Forwards one direction: a reader stamps each chunk with when it may be
/// written, a writer waits for that time and for any stall to end.
async fn direction(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, condition: Arc<Mutex<Condition>>) {
    let (chunks_tx, mut chunks) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE_CHUNKS);
    let latency_of = Arc::clone(&condition);
    let read = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let now = Instant::now();
                    let due = now + lock_condition(&latency_of).latency(now);
                    if chunks_tx.send((due, buffer[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let write = async move {
        while let Some((due, chunk)) = chunks.recv().await {
            tokio::time::sleep_until(due).await;
            // A stall can start or be extended while waiting out another.
            loop {
                let stalled = lock_condition(&condition).stalled_until(Instant::now());
                match stalled {
                    Some(until) => tokio::time::sleep_until(until).await,
                    None => break,
                }
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}
