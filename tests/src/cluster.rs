//! Several relay nodes in one test: a load balancer in front of them and a
//! private Redis the test can stop and start.
//!
//! - [`Balancer`]: an ordinary TCP load balancer, no sticky sessions: each
//!   new connection goes to the next node in turn, skipping nodes that
//!   refuse it, the way a health-checking nginx would.
//! - [`RedisServer`]: `redis-server` as a child process on a port of its
//!   own, so a test can stop it mid-traffic without touching the machine's
//!   Redis.
//! - [`redis_prefix`]: a fresh key prefix, so tests on the shared Redis
//!   never see each other's channels.
//! - [`Nodes`]: two relays on one fresh PostgreSQL database and one Redis.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::AbortHandle;

use crate::Relay;
use crate::postgres::Database;

/// The machine's Redis, which every machine of this kind runs.
pub const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

/// Two relay nodes on one PostgreSQL database of their own and one Redis
/// (with a key prefix of their own).
#[derive(Debug)]
pub struct Nodes {
    pub a: Relay,
    pub b: Relay,
    _database: Database,
}

impl Nodes {
    pub async fn start(redis_url: &str) -> Result<Nodes> {
        let database = Database::create().await?;
        let prefix = redis_prefix();
        let args = ["--database-url", database.url(), "--redis-url", redis_url, "--redis-prefix", &prefix];
        let a = Relay::start_with(&args).await?;
        // The first node creates the demo site and the admin; the second
        // finds them.
        a.wait_healthy().await?;
        let b = Relay::start_with(&args).await?;
        b.wait_healthy().await?;
        Ok(Nodes { a, b, _database: database })
    }
}

/// A key prefix no other test uses.
pub fn redis_prefix() -> String {
    format!("kefu-test-{:016x}", rand::random::<u64>())
}

/// Round robin over relay nodes for new connections; a node that refuses
/// a connection is skipped.
#[derive(Debug)]
pub struct Balancer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    nodes: Mutex<Vec<SocketAddr>>,
    next: AtomicUsize,
    links: Mutex<Vec<AbortHandle>>,
}

impl Balancer {
    /// A balancer in front of `nodes`.
    pub async fn start(nodes: &[SocketAddr]) -> Result<Balancer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let shared = Arc::new(Shared {
            nodes: Mutex::new(nodes.to_vec()),
            next: AtomicUsize::new(0),
            links: Mutex::new(Vec::new()),
        });
        let balancer = Balancer { addr: listener.local_addr()?, shared: Arc::clone(&shared) };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shared_for_link = Arc::clone(&shared);
                let link = tokio::spawn(async move { forward(client, &shared_for_link).await });
                lock(&shared.links).push(link.abort_handle());
            }
        });
        Ok(balancer)
    }

    /// `ws://balancer/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `http://balancer`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces node `index` (a restarted relay on a new port).
    pub fn set_node(&self, index: usize, addr: SocketAddr) {
        lock(&self.shared.nodes)[index] = addr;
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        for link in lock(&self.shared.links).drain(..) {
            link.abort();
        }
    }
}

async fn forward(mut client: TcpStream, shared: &Shared) {
    let nodes = lock(&shared.nodes).clone();
    let start = shared.next.fetch_add(1, Ordering::Relaxed);
    for offset in 0..nodes.len() {
        let node = nodes[(start + offset) % nodes.len()];
        if let Ok(mut server) = TcpStream::connect(node).await {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            return;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A private `redis-server` on its own port; killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port, keeping nothing on disk.
    pub async fn start() -> Result<RedisServer> {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?.port()
        };
        let mut server = RedisServer { port, child: None };
        server.restart().await?;
        Ok(server)
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it: every connection to it breaks, as when a Redis host dies.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server (Debian's redis-server package)")?;
        self.child = Some(child);
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("redis-server did not start listening on port {}", self.port)
    }
}
