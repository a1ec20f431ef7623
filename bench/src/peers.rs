//! The two systems Kefu is measured against, and the clients that drive them.
//!
//! # Layout
//!
//! - this file: [`PeerKind`], [`PeerServer`] (starts a peer pinned to one core
//!   and kills it on drop) and [`PeerMember`] (one WebSocket member of a room),
//!   plus what both peers share: spawning under `taskset`, waiting for the port,
//!   connecting from a chosen 127.0.0.x address, and the per-member task.
//! - `socketio.rs`: Socket.IO 4.8 on Node (`bench/peers/socketio/server.js`)
//!   and the few Engine.IO v4 / Socket.IO v5 packets a chat member needs.
//! - `nchan.rs`: nginx with the nchan module (`bench/peers/nchan/`), one
//!   WebSocket per member that both subscribes and publishes.
//!
//! Every wait here is bounded in time: a peer that does not answer is an error,
//! never a hang.

mod nchan;
mod socketio;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// How long a peer may take to start answering, and a member to join.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Frames a member may have queued for sending before `publish` waits.
const OUTGOING_QUEUE: usize = 64;

/// Which peer system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerKind {
    /// Socket.IO 4.8 on Node 20, connection-state recovery on.
    SocketIo,
    /// nchan 1.3 in Debian's nginx-light, one worker.
    Nchan,
}

impl PeerKind {
    /// The name used in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            PeerKind::SocketIo => "Socket.IO",
            PeerKind::Nchan => "nchan",
        }
    }
}

/// A running peer server. Dropping it kills the whole process group (nginx's
/// master and worker, or Node).
#[derive(Debug)]
pub(crate) struct PeerServer {
    kind: PeerKind,
    port: u16,
    /// The process whose RSS and CPU are measured.
    measured: u32,
    /// Every process of the server, the measured one included.
    pids: Vec<u32>,
    child: Child,
    /// Config, logs and temp files of nginx; removed after the kill.
    _dir: Option<tempfile::TempDir>,
}

impl PeerServer {
    /// Installs what is missing, starts the server pinned to `core` with
    /// taskset, and waits until it answers.
    pub(crate) async fn start(kind: PeerKind, core: usize) -> anyhow::Result<PeerServer> {
        match kind {
            PeerKind::SocketIo => socketio::start(core).await,
            PeerKind::Nchan => nchan::start(core).await,
        }
        .with_context(|| format!("starting {}", kind.name()))
    }

    /// Which peer this is.
    pub(crate) fn kind(&self) -> PeerKind {
        self.kind
    }

    /// The process whose RSS and CPU are measured: Node, or nginx's worker.
    pub(crate) fn pid(&self) -> u32 {
        self.measured
    }

    /// Every process of the server: Node alone, or nginx's master and worker.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.pids.clone()
    }

    /// The TCP port on 127.0.0.1.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        // The server was started as the leader of its own process group, so
        // one signal reaches nginx's worker too.
        if let Some(pgid) =
            self.child.id().and_then(|id| i32::try_from(id).ok()).and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = self.child.start_kill();
    }
}

/// One member of a room on a peer: a WebSocket and the task that reads it.
/// Dropping the member closes its connection.
#[derive(Debug)]
pub(crate) struct PeerMember {
    kind: PeerKind,
    outgoing: mpsc::Sender<Message>,
}

impl PeerMember {
    /// Connects from `local` (a 127.0.0.x source address) and joins `room`;
    /// every payload published to the room arrives on the receiver, which
    /// closes when the connection ends.
    pub(crate) async fn join(
        kind: PeerKind,
        port: u16,
        room: &str,
        local: IpAddr,
    ) -> anyhow::Result<(PeerMember, mpsc::UnboundedReceiver<Vec<u8>>)> {
        if room.is_empty() || !room.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
            bail!("room name {room:?}: use only ASCII letters, digits, '_', '.' and '-'");
        }
        let joined = tokio::time::timeout(JOIN_TIMEOUT, async {
            match kind {
                PeerKind::SocketIo => socketio::join(port, room, local).await,
                PeerKind::Nchan => nchan::join(port, room, local).await,
            }
        })
        .await
        .with_context(|| format!("joining {room} on {}: timed out", kind.name()))?
        .with_context(|| format!("joining {room} on {}", kind.name()))?;

        let decode = match kind {
            PeerKind::SocketIo => socketio::decode,
            PeerKind::Nchan => nchan::decode,
        };
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        let (payloads, payloads_rx) = mpsc::unbounded_channel();
        tokio::spawn(drive(joined, outgoing_rx, payloads, decode));
        Ok((PeerMember { kind, outgoing }, payloads_rx))
    }

    /// Publishes `payload` to the member's room; everyone in the room, the
    /// sender included, receives it. Returns once the frame is queued on the
    /// member's connection.
    pub(crate) async fn publish(&self, payload: &[u8]) -> anyhow::Result<()> {
        let frame = match self.kind {
            PeerKind::SocketIo => socketio::encode(payload),
            PeerKind::Nchan => nchan::encode(payload),
        };
        self.outgoing.send(frame).await.map_err(|_| anyhow::anyhow!("{} connection closed", self.kind.name()))
    }
}

type Ws = WebSocketStream<TcpStream>;

/// What one incoming frame means to a member.
enum Inbound {
    Payload(Vec<u8>),
    /// A frame to send back (Engine.IO's pong).
    Reply(Message),
    Closed,
    Ignore,
}

/// Reads a member's socket and writes what `publish` queues, until the
/// server closes it or the member is dropped.
async fn drive(
    mut ws: Ws,
    mut outgoing: mpsc::Receiver<Message>,
    payloads: mpsc::UnboundedSender<Vec<u8>>,
    decode: fn(Message) -> Inbound,
) {
    loop {
        tokio::select! {
            frame = outgoing.recv() => match frame {
                Some(frame) => {
                    if ws.send(frame).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = ws.close(None).await;
                    return;
                }
            },
            frame = ws.next() => {
                let Some(Ok(frame)) = frame else { return };
                match decode(frame) {
                    // The harness may stop listening before it drops the
                    // member; the socket is still read so the server never
                    // blocks on it.
                    Inbound::Payload(payload) => {
                        let _ = payloads.send(payload);
                    }
                    Inbound::Reply(reply) => {
                        if ws.send(reply).await.is_err() {
                            return;
                        }
                    }
                    Inbound::Closed => return,
                    Inbound::Ignore => {}
                }
            }
        }
    }
}

/// Opens a WebSocket to `127.0.0.1:port` from `local`, so that many members
/// can share the loopback without running out of ephemeral ports.
async fn connect(port: u16, path: &str, local: IpAddr) -> anyhow::Result<Ws> {
    let socket = match local {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(local, 0)).with_context(|| format!("binding {local}"))?;
    let server = match local {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), port),
    };
    let stream = socket.connect(server).await.with_context(|| format!("connecting {local} to {server}"))?;
    // Chat frames are small and latency is what is measured.
    stream.set_nodelay(true)?;
    // tungstenite's 128 KiB default buffers would make the load generator,
    // not the server, the memory bottleneck at tens of thousands of members.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20));
    let url = format!("ws://{server}{path}");
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await.context("WebSocket handshake")?;
    Ok(ws)
}

/// `bench/peers/<name>`: the peer servers' code and configs.
fn peer_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers").join(name)
}

/// A command run under `taskset -c core`, as the leader of its own process
/// group so that [`PeerServer`]'s drop reaches every child.
fn pinned(core: usize, program: &str) -> Command {
    let mut command = Command::new("taskset");
    command.arg("-c").arg(core.to_string()).arg(program).process_group(0).stdin(Stdio::null());
    command
}

/// Runs a setup command (npm, apt-get) to completion, its output on stderr.
async fn run_setup(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .status()
        .await
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// Polls until `port` accepts a connection, failing early if the server
/// exits; `log` explains the failure.
async fn wait_for_port(child: &mut Child, port: u16, log: impl Fn() -> String) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("exited with {status} before answering:\n{}", log());
        }
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("not answering on port {port} after {STARTUP_TIMEOUT:?}:\n{}", log());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    //! Needs Node/npm and apt (for nginx and nchan) on the machine, so the
    //! tests are ignored by default:
    //! `cargo test -p kefu-bench peers -- --ignored --test-threads 1`

    use super::*;

    /// Three members on 127.0.0.2..4 in one room; 100 payloads of varied
    /// sizes and every byte value, published in turn by each member; every
    /// member must receive all of them, byte-exact and in the same order.
    async fn three_members_receive_everything(kind: PeerKind) -> anyhow::Result<()> {
        let server = PeerServer::start(kind, 0).await?;
        assert!(server.pids().contains(&server.pid()));

        let mut members = Vec::new();
        let mut inboxes = Vec::new();
        for host in 2..=4 {
            let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, host));
            let (member, inbox) = PeerMember::join(kind, server.port(), "room-1", local).await?;
            members.push(member);
            inboxes.push(inbox);
        }
        // Someone in another room must not receive anything.
        let (_outsider, mut outsider_inbox) =
            PeerMember::join(kind, server.port(), "room-2", IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5))).await?;

        let sent: Vec<Vec<u8>> = (0..100u32)
            .map(|seq| {
                let len = 16 + (seq as usize * 37) % 400;
                let mut payload = seq.to_be_bytes().to_vec();
                payload.extend((0..len).map(|i| (i as u32 * 7 + seq) as u8));
                payload
            })
            .collect();
        for (seq, payload) in sent.iter().enumerate() {
            members[seq % members.len()].publish(payload).await?;
        }

        let mut orders = Vec::new();
        for inbox in &mut inboxes {
            let mut received = Vec::new();
            while received.len() < sent.len() {
                let payload = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
                    .await
                    .with_context(|| format!("{} of {} arrived", received.len(), sent.len()))?
                    .context("connection closed")?;
                received.push(payload);
            }
            let mut sorted = received.clone();
            sorted.sort();
            let mut expected = sent.clone();
            expected.sort();
            assert_eq!(sorted, expected, "{kind:?}: payloads differ");
            orders.push(received);
        }
        assert!(orders.windows(2).all(|w| w[0] == w[1]), "{kind:?}: members saw different orders");

        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(outsider_inbox.try_recv().is_err(), "{kind:?}: leaked to another room");
        for inbox in &mut inboxes {
            assert!(inbox.try_recv().is_err(), "{kind:?}: duplicate delivery");
        }

        let pids = server.pids();
        drop(server);
        tokio::time::sleep(Duration::from_millis(200)).await;
        for pid in pids {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting to be reaped.
            assert!(state.is_empty() || state.contains(") Z "), "{kind:?}: {pid} still runs");
        }
        Ok(())
    }

    #[tokio::test]
    #[ignore = "installs and runs Socket.IO (npm)"]
    async fn socketio_delivers_to_every_member() -> anyhow::Result<()> {
        three_members_receive_everything(PeerKind::SocketIo).await
    }

    #[tokio::test]
    #[ignore = "installs and runs nginx with nchan (apt-get)"]
    async fn nchan_delivers_to_every_member() -> anyhow::Result<()> {
        three_members_receive_everything(PeerKind::Nchan).await
    }
}
