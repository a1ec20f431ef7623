//! The load generator's Kefu side: the relay as a pinned child process on
//! a seeded store, and a lean client on the protocol crate's codec.
//!
//! The lean client is one task per connection that answers pings and hands
//! every delivered message body to a channel, as the peers' adapters do:
//! the SDK keeps a session, an outbox and an event queue per client, which
//! is right for an application and too heavy for 20,000 of them on one
//! core. The reconnect storm uses the SDK, for its resume logic.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use kefu_protocol::frame::{Body, Credentials, Hello, Identity, Join, Pong, Send};
use kefu_protocol::ids::{AgentToken, ClientMessageId, ConversationId, Seq, SiteKey, Timestamp};
use kefu_protocol::{ClientFrame, DEFAULT_LIMITS, PROTOCOL_VERSION, ServerFrame, codec};
use kefu_relay::store::{Role, Store};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How long a connect, hello or start may take before the run fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// Source addresses 127.0.0.2 ..= 127.0.0.(1 + SOURCES): each has its own
/// ~28,000 ephemeral ports towards one server port.
const SOURCES: usize = 60;

/// The `n`th connection's source address.
pub(crate) fn source(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % SOURCES) as u8))
}

/// How a relay is started.
#[derive(Debug, Clone, Default)]
pub(crate) struct RelayOptions {
    /// `--database-url`; SQLite in a fresh data dir when `None`.
    pub(crate) database_url: Option<String>,
    pub(crate) redis_url: Option<String>,
    pub(crate) redis_prefix: Option<String>,
    /// The CPU core it is pinned to.
    pub(crate) core: usize,
}

/// A relay child process on one core with one worker thread, killed when
/// dropped.
#[derive(Debug)]
pub(crate) struct KefuRelay {
    child: Child,
    addr: SocketAddr,
    data_dir: PathBuf,
    options: RelayOptions,
}

impl KefuRelay {
    /// Starts a relay on `data_dir` (whose store is already seeded).
    pub(crate) async fn start(data_dir: &Path, options: RelayOptions) -> Result<KefuRelay> {
        let listen: SocketAddr = "127.0.0.1:0".parse()?;
        let (child, addr) = spawn(data_dir, &options, listen).await?;
        Ok(KefuRelay { child, addr, data_dir: data_dir.to_owned(), options })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// `kill -9`, then a new process on the same store and port.
    pub(crate) async fn kill9_and_restart(&mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        let (child, addr) = spawn(&self.data_dir, &self.options, self.addr).await?;
        self.child = child;
        self.addr = addr;
        Ok(())
    }
}

fn relay_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let binary = exe.parent().context("no parent dir")?.join("kefu-relay");
    if !binary.exists() {
        bail!("{} is missing: `cargo build --release -p kefu-relay` (cargo xtask bench does)", binary.display());
    }
    Ok(binary)
}

async fn spawn(data_dir: &Path, options: &RelayOptions, listen: SocketAddr) -> Result<(Child, SocketAddr)> {
    let mut command = Command::new("taskset");
    command
        .args(["-c", &options.core.to_string()])
        .arg(relay_binary()?)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--worker-threads", "1"])
        // The limits guard against abuse; the benchmark measures serving.
        .args(["--connections-per-minute-per-ip", "0", "--frames-per-second", "0"])
        .args(["--logins-per-minute-per-ip", "0"])
        .env("RUST_LOG", "warn");
    if let Some(url) = &options.database_url {
        command.args(["--database-url", url]);
    }
    if let Some(url) = &options.redis_url {
        command.args(["--redis-url", url]);
    }
    if let Some(prefix) = &options.redis_prefix {
        command.args(["--redis-prefix", prefix]);
    }
    kefu_tests::spawn_relay(command).await
}

/// A site made for the benchmark, with an agent logged in.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub(crate) key: SiteKey,
    pub(crate) token: AgentToken,
}

/// Creates `count` sites, each with one agent and a session token, in the
/// store at `database_url` or in `data_dir`, before any relay runs.
pub(crate) async fn seed(database_url: Option<&str>, data_dir: &Path, count: usize) -> Result<Vec<Site>> {
    let store = Store::connect(database_url, data_dir).await?;
    let mut sites = Vec::with_capacity(count);
    let expires = Timestamp(kefu_relay::store::now().0 + 7 * 24 * 3_600_000);
    for n in 0..count {
        let key = SiteKey::new(format!("bench-{n}"))?;
        let site = store.create_site(&key, &format!("Bench {n}")).await?;
        let agent = store
            .create_agent(
                site.id,
                &format!("agent{n}@bench.test"),
                &format!("Agent {n}"),
                kefu_relay::auth::dummy_hash(),
                Role::Agent,
            )
            .await?;
        let token = kefu_relay::auth::new_token();
        store.create_agent_session(site.id, agent.id, &kefu_relay::auth::token_hash(&token), expires).await?;
        sites.push(Site { key, token: AgentToken::new(token)? });
    }
    store.close().await;
    Ok(sites)
}

type Ws = WebSocketStream<TcpStream>;

/// What every lean connection of a run counts.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// Connections that ended before the run let them go.
    pub(crate) dropped: AtomicU64,
}

/// One lean WebSocket client after its welcome. Dropping it closes the
/// connection.
#[derive(Debug)]
pub(crate) struct KefuConn {
    frames: mpsc::UnboundedSender<ClientFrame>,
    /// How many `ReplayComplete` have arrived.
    replays: watch::Receiver<u64>,
    /// How many `Accepted` have arrived.
    accepted: watch::Receiver<u64>,
    pub(crate) identity: Identity,
    next_id: AtomicU64,
    tag: u128,
}

/// Opens a WebSocket from `local` and says hello; message bodies that
/// arrive go to `payloads`.
pub(crate) async fn connect(
    addr: SocketAddr,
    local: IpAddr,
    credentials: Credentials,
    payloads: Option<mpsc::UnboundedSender<Vec<u8>>>,
    counters: Arc<Counters>,
) -> Result<KefuConn> {
    tokio::time::timeout(PATIENCE, connect_now(addr, local, credentials, payloads, counters))
        .await
        .context("connect timed out")?
}

async fn connect_now(
    addr: SocketAddr,
    local: IpAddr,
    credentials: Credentials,
    payloads: Option<mpsc::UnboundedSender<Vec<u8>>>,
    counters: Arc<Counters>,
) -> Result<KefuConn> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(local, 0))?;
    let stream = socket.connect(addr).await.with_context(|| format!("connect {local} -> {addr}"))?;
    stream.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream).await?;
    let hello = ClientFrame::Hello(Hello { version: PROTOCOL_VERSION, credentials, resume: Vec::new() });
    ws.send(WsMessage::binary(codec::encode(&hello))).await?;
    let identity = loop {
        let message = ws.next().await.context("closed before the welcome")??;
        if let WsMessage::Binary(bytes) = message {
            match codec::decode::<ServerFrame>(&bytes, &DEFAULT_LIMITS)? {
                ServerFrame::Welcome(welcome) => break welcome.identity,
                ServerFrame::Error(error) => bail!("refused: {:?} {}", error.code, error.text),
                _ => {}
            }
        }
    };
    let (frames, outgoing) = mpsc::unbounded_channel();
    let (replays_tx, replays) = watch::channel(0);
    let (accepted_tx, accepted) = watch::channel(0);
    tokio::spawn(drive(ws, outgoing, payloads, Answers { replays: replays_tx, accepted: accepted_tx }, counters));
    Ok(KefuConn {
        frames,
        replays,
        accepted,
        identity,
        next_id: AtomicU64::new(1),
        tag: u128::from(rand::random::<u64>()) << 64,
    })
}

/// What `drive` counts for the connection's own waits.
struct Answers {
    replays: watch::Sender<u64>,
    accepted: watch::Sender<u64>,
}

/// Reads and writes one connection until either side closes it.
async fn drive(
    mut ws: Ws,
    mut outgoing: mpsc::UnboundedReceiver<ClientFrame>,
    payloads: Option<mpsc::UnboundedSender<Vec<u8>>>,
    answers: Answers,
    counters: Arc<Counters>,
) {
    loop {
        tokio::select! {
            frame = outgoing.recv() => {
                let Some(frame) = frame else {
                    let _ = ws.close(None).await;
                    return;
                };
                if ws.send(WsMessage::binary(codec::encode(&frame))).await.is_err() {
                    break;
                }
            }
            message = ws.next() => {
                let Some(Ok(message)) = message else { break };
                let WsMessage::Binary(bytes) = message else { continue };
                let Ok(frame) = codec::decode::<ServerFrame>(&bytes, &DEFAULT_LIMITS) else {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                match frame {
                    ServerFrame::Message(message) => {
                        if let (Some(payloads), Body::Text(text)) = (&payloads, message.body) {
                            let _ = payloads.send(text.into_bytes());
                        }
                    }
                    ServerFrame::Ping(ping) => {
                        let pong = ClientFrame::Pong(Pong { nonce: ping.nonce });
                        if ws.send(WsMessage::binary(codec::encode(&pong))).await.is_err() {
                            break;
                        }
                    }
                    ServerFrame::ReplayComplete(_) => answers.replays.send_modify(|n| *n += 1),
                    ServerFrame::Accepted(_) => {
                        counters.accepted.fetch_add(1, Ordering::Relaxed);
                        answers.accepted.send_modify(|n| *n += 1);
                    }
                    ServerFrame::Rejected(_) => {
                        counters.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    ServerFrame::Error(_) | ServerFrame::Closing(_) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }
    }
    // Ended by the relay or the transport while the run still held it.
    if !outgoing.is_closed() {
        counters.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

impl KefuConn {
    /// A visitor's own conversation.
    pub(crate) fn conversation(&self) -> Option<ConversationId> {
        match self.identity {
            Identity::Visitor { conversation, .. } => Some(conversation),
            Identity::Agent { .. } => None,
        }
    }

    /// Follows `conversation` from its start; returns after its replay.
    pub(crate) async fn join(&self, conversation: ConversationId) -> Result<()> {
        let mut replays = self.replays.clone();
        let before = *replays.borrow_and_update();
        self.frames
            .send(ClientFrame::Join(Join { conversation, after: Seq::ZERO }))
            .map_err(|_| anyhow::anyhow!("connection closed"))?;
        tokio::time::timeout(PATIENCE, replays.wait_for(|n| *n > before)).await.context("join timed out")??;
        Ok(())
    }

    /// A visitor's first line, which is what makes its conversation (the
    /// relay stores nothing of a visitor until it writes), once stored, so
    /// agents may join it. Unstamped, so no latency is recorded for it.
    pub(crate) async fn open_conversation(&self) -> Result<ConversationId> {
        let conversation = self.conversation().context("only visitors open conversations")?;
        let mut accepted = self.accepted.clone();
        let before = *accepted.borrow_and_update();
        self.publish(conversation, b"hello")?;
        tokio::time::timeout(PATIENCE, accepted.wait_for(|n| *n > before)).await.context("hello not stored")??;
        Ok(conversation)
    }

    /// How many messages [`KefuConn::publish`] has sent.
    pub(crate) fn sent(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed) - 1
    }

    /// Sends `payload` as a text message into `conversation`.
    pub(crate) fn publish(&self, conversation: ConversationId, payload: &[u8]) -> Result<()> {
        let client_id = ClientMessageId(self.tag | u128::from(self.next_id.fetch_add(1, Ordering::Relaxed)));
        let body = Body::Text(String::from_utf8_lossy(payload).into_owned());
        self.frames
            .send(ClientFrame::Send(Send { conversation, client_id, body }))
            .map_err(|_| anyhow::anyhow!("connection closed"))
    }
}

/// A new visitor of `site`.
pub(crate) fn visitor(site: &Site) -> Credentials {
    Credentials::Visitor { site: site.key.clone(), returning: None }
}

/// The agent of `site`.
pub(crate) fn agent(site: &Site) -> Credentials {
    Credentials::Agent { token: site.token.clone() }
}
