//! Support for Kefu's end-to-end tests: a real relay process on a real
//! SQLite file, a TCP proxy that can cut or refuse connections, and small
//! helpers around the SDK.
//!
//! # Layout
//!
//! - [`Relay`]: the `kefu-relay` binary as a child process, so tests can
//!   `kill -9`, stop and continue it, and restart it on the same data dir.
//! - [`Proxy`]: sits between clients and the relay; cuts every connection
//!   at once, refuses new ones while "offline", and follows the relay to a
//!   new port after a restart.
//! - [`raw`]: a bare WebSocket speaking frames by hand, for hostile input.
//! - [`browser`]: headless Chromium over the DevTools protocol.
//! - [`cluster`]: several relay nodes: a round-robin load balancer and a
//!   private `redis-server` a test can stop.
//! - [`tls`]: a TLS-terminating proxy with a CA made at test time.
//! - [`smtp`]: a real SMTP server (aiosmtpd) that keeps each mail it
//!   takes as a file, and can go down and come back on its port.
//! - [`nginx`]: Debian's nginx in front of relay nodes, on the shipped
//!   `dist/nginx.conf`.

pub mod browser;
pub mod chaos;
pub mod cluster;
pub mod faults;
pub mod nginx;
pub mod postgres;
pub mod raw;
pub mod smtp;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kefu_sdk::{Event, Events, Message};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::AbortHandle;

/// The admin every test relay starts with.
pub const ADMIN_EMAIL: &str = "admin@kefu.test";
/// Their password.
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// How long a test waits for something that should happen "soon" before
/// it fails. Generous: CI machines are shared and slow.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Where cargo put the relay binary: next to this test's own executable.
pub fn relay_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> -> target/<profile>/kefu-relay
    let dir = exe.parent().and_then(Path::parent).context("test executable has no parent dir")?;
    let binary = dir.join(format!("kefu-relay{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        bail!("{} is missing: build it first (`cargo build -p kefu-relay`; `cargo xtask test` does)", binary.display());
    }
    Ok(binary)
}

/// `binary` as a command with none of the environment's `KEFU_` settings
/// (a developer's `KEFU_WEB_DIR` or `KEFU_DATA_DIR` would change what it
/// does) and quiet logs; killed when dropped.
pub fn relay_command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    command.env("RUST_LOG", "warn").kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KEFU_") {
            command.env_remove(name);
        }
    }
    command
}

/// Runs a subcommand of the relay binary (`backup`, `site list`, ...) to
/// its end, failing after [`PATIENCE`].
pub async fn run_subcommand(args: &[&str]) -> Result<std::process::Output> {
    let mut command = relay_command(&relay_binary()?);
    command.args(args);
    tokio::time::timeout(PATIENCE, command.output()).await.context("subcommand hung")?.map_err(Into::into)
}

/// What a finished command printed, stdout then stderr.
pub fn said(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A relay child process with its own data dir.
#[derive(Debug)]
pub struct Relay {
    child: Child,
    addr: SocketAddr,
    data_dir: PathBuf,
    args: Vec<String>,
    /// Keeps the data dir alive as long as the relay value.
    _dir: Option<tempfile::TempDir>,
}

impl Relay {
    /// A relay on a fresh data dir with default settings.
    pub async fn start() -> Result<Relay> {
        Relay::start_with(&[]).await
    }

    /// A relay on a fresh data dir with extra flags, e.g.
    /// `["--heartbeat-interval-ms", "300"]`.
    pub async fn start_with(args: &[&str]) -> Result<Relay> {
        let dir = tempfile::tempdir()?;
        let args: Vec<String> = args.iter().map(ToString::to_string).collect();
        let (child, addr) = spawn(dir.path(), &args).await?;
        Ok(Relay { child, addr, data_dir: dir.path().to_owned(), args, _dir: Some(dir) })
    }

    /// Its HTTP and WebSocket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://addr/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Waits until `/healthz` says the store answers: the relay prints
    /// where it listens before it opens its store, and a second node on
    /// one database must find what the first one created.
    pub async fn wait_healthy(&self) -> Result<()> {
        let url = format!("{}/healthz", self.http_url());
        let http = reqwest::Client::new();
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Ok(response) = http.get(&url).send().await
                    && response.status().is_success()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .context("the relay never became healthy")
    }

    /// The SQLite data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// `kill -9`: no shutdown, no flush, nothing.
    pub async fn kill9(&mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// Starts the relay again on the same data dir and flags (on a new
    /// port, unless they name one).
    pub async fn restart(&mut self) -> Result<()> {
        let (child, addr) = spawn(&self.data_dir, &self.args).await?;
        self.child = child;
        self.addr = addr;
        Ok(())
    }

    /// Sends a signal (SIGSTOP, SIGCONT, SIGTERM) to the process.
    pub fn signal(&self, signal: &str) -> Result<()> {
        let status =
            std::process::Command::new("kill").args([format!("-{signal}"), self.pid().to_string()]).status()?;
        if !status.success() {
            bail!("kill -{signal} failed");
        }
        Ok(())
    }

    /// Waits for the process to exit by itself (after SIGTERM).
    pub async fn wait_exit(&mut self) -> Result<std::process::ExitStatus> {
        Ok(tokio::time::timeout(PATIENCE, self.child.wait()).await??)
    }

    /// Logs the admin in and returns an agent token.
    pub async fn admin_token(&self) -> Result<String> {
        Ok(kefu_sdk::login(&self.http_url(), ADMIN_EMAIL, ADMIN_PASSWORD).await?.token)
    }
}

/// Starts the relay on a port of its own choosing, unless `args` name one
/// with `--listen` (a node behind a balancer that lists it must come back
/// on the same port).
async fn spawn(data_dir: &Path, args: &[String]) -> Result<(Child, SocketAddr)> {
    let mut command = Command::new(relay_binary()?);
    if !args.iter().any(|arg| arg == "--listen") {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--admin-email", ADMIN_EMAIL, "--admin-password", ADMIN_PASSWORD])
        .args(args)
        .env("RUST_LOG", std::env::var("KEFU_TEST_LOG").unwrap_or_else(|_| "warn".into()));
    spawn_relay(command).await
}

/// Runs `command`, a relay (or a wrapper that execs one), and waits until
/// it says where it listens. Its stdout is drained from then on so it never
/// blocks on a full pipe; its stderr goes to ours; it dies with the value.
pub async fn spawn_relay(command: Command) -> Result<(Child, SocketAddr)> {
    spawn_relay_logging_to(command, Stdio::inherit()).await
}

/// [`spawn_relay`], with the relay's stderr (its log) going to `log`, such
/// as a file the test reads.
pub async fn spawn_relay_logging_to(mut command: Command, log: impl Into<Stdio>) -> Result<(Child, SocketAddr)> {
    let mut child =
        command.stdout(Stdio::piped()).stderr(log).kill_on_drop(true).spawn().context("spawning kefu-relay")?;
    let stdout = child.stdout.take().context("relay stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await? {
            // https:// when the relay serves TLS itself (`--tls-cert`).
            let addr = line
                .strip_prefix("kefu-relay listening on http://")
                .or_else(|| line.strip_prefix("kefu-relay listening on https://"));
            if let Some(addr) = addr {
                return Ok::<_, anyhow::Error>(addr.trim().parse::<SocketAddr>()?);
            }
        }
        bail!("relay exited before listening")
    })
    .await
    .context("relay did not start in time")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr))
}

/// A TCP proxy in front of the relay that can cut every connection,
/// refuse new ones ("offline") and switch to a restarted relay.
#[derive(Debug, Clone)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Mutex<ProxyState>>,
}

#[derive(Debug)]
struct ProxyState {
    upstream: SocketAddr,
    offline: bool,
    /// Refuse WebSocket upgrades but let plain HTTP through: the page loads,
    /// its chat link cannot.
    websockets_blocked: bool,
    links: Vec<AbortHandle>,
}

impl Proxy {
    /// A proxy forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Proxy {
            addr: listener.local_addr()?,
            shared: Arc::new(Mutex::new(ProxyState {
                upstream,
                offline: false,
                websockets_blocked: false,
                links: Vec::new(),
            })),
        };
        let shared = Arc::clone(&proxy.shared);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, offline, websockets_blocked) = {
                    let state = lock(&shared);
                    (state.upstream, state.offline, state.websockets_blocked)
                };
                if offline {
                    drop(client);
                    continue;
                }
                let link = tokio::spawn(forward(client, upstream, websockets_blocked));
                lock(&shared).links.push(link.abort_handle());
            }
        });
        Ok(proxy)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://proxy`: pages loaded through it reach the relay through it.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://proxy/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Cuts every open connection, both directions, at once.
    pub fn cut(&self) {
        for link in lock(&self.shared).links.drain(..) {
            link.abort();
        }
    }

    /// Refuses (and cuts) connections until [`Proxy::online`].
    pub fn offline(&self) {
        lock(&self.shared).offline = true;
        self.cut();
    }

    /// Accepts connections again.
    pub fn online(&self) {
        lock(&self.shared).offline = false;
    }

    /// Cuts every connection and refuses WebSocket upgrades (plain HTTP
    /// still passes) until called with `false`.
    pub fn block_websockets(&self, blocked: bool) {
        lock(&self.shared).websockets_blocked = blocked;
        if blocked {
            self.cut();
        }
    }

    /// Forwards new connections to `upstream` (a restarted relay).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        lock(&self.shared).upstream = upstream;
    }
}

fn lock(shared: &Mutex<ProxyState>) -> std::sync::MutexGuard<'_, ProxyState> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, websockets_blocked: bool) {
    if websockets_blocked {
        let mut head = [0u8; 2048];
        let Ok(n) = client.peek(&mut head).await else { return };
        if String::from_utf8_lossy(&head[..n]).to_ascii_lowercase().contains("upgrade: websocket") {
            return;
        }
    }
    if let Ok(mut server) = TcpStream::connect(upstream).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

/// Serves one HTML page on its own port (another origin than the relay),
/// e.g. a host page that embeds the widget; returns its URL.
pub async fn serve_page(html: String) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    let html = Arc::new(html);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let html = Arc::clone(&html);
            tokio::spawn(async move {
                // Read the request head; its content does not matter.
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    html.len(),
                    html
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(url)
}

/// Reads events until `pick` has returned `Some` for `count` of them;
/// fails after [`PATIENCE`].
pub async fn collect<T>(events: &mut Events, count: usize, mut pick: impl FnMut(Event) -> Option<T>) -> Result<Vec<T>> {
    let mut found = Vec::with_capacity(count);
    tokio::time::timeout(PATIENCE, async {
        while found.len() < count {
            let event = events.next().await.context("client stopped")?;
            if let Some(item) = pick(event) {
                found.push(item);
            }
        }
        Ok::<_, anyhow::Error>(())
    })
    .await
    .with_context(|| format!("waited {PATIENCE:?} for {count} events, got {}", found.len()))??;
    Ok(found)
}

/// Picks chat messages out of an event stream.
pub fn message(event: Event) -> Option<Message> {
    match event {
        Event::Message(message) => Some(message),
        _ => None,
    }
}

/// The text of a message or private note, the caption of files; empty
/// for a system line.
pub fn text(message: &Message) -> &str {
    match &message.body {
        kefu_sdk::Body::Text(text) | kefu_sdk::Body::Note(text) => text,
        kefu_sdk::Body::Files(files) => &files.caption,
        kefu_sdk::Body::Event(_) => "",
    }
}

/// Reads events up to the first that `is_marker` accepts and returns
/// every event before it (the marker is consumed); fails after
/// [`PATIENCE`]. This is how a test says "nothing else arrived": make
/// something happen after whatever could go wrong (a message written
/// later, a replay's end), read up to it, and assert on what came in
/// between. Unlike waiting a moment for the next event, that cannot pass
/// because the unexpected one came late, or after an unrelated one.
pub async fn events_until(events: &mut Events, mut is_marker: impl FnMut(&Event) -> bool) -> Result<Vec<Event>> {
    let mut before = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = events.next().await.context("client stopped")?;
            if is_marker(&event) {
                return Ok::<_, anyhow::Error>(());
            }
            before.push(event);
        }
    })
    .await
    .with_context(|| format!("waited {PATIENCE:?} for the marker; before it: {before:?}"))??;
    Ok(before)
}

/// The chat messages among `events`, in order.
pub fn messages(events: Vec<Event>) -> Vec<Message> {
    events.into_iter().filter_map(message).collect()
}

/// A marker for [`events_until`]: the message with exactly this text.
pub fn message_saying(wanted: &str) -> impl FnMut(&Event) -> bool + '_ {
    move |event| matches!(event, Event::Message(message) if text(message) == wanted)
}
