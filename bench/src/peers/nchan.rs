//! nchan in Debian's nginx-light: `bench/peers/nchan/nginx.conf.template`
//! filled in and run from a temp dir, one master and one worker.
//!
//! A member is one WebSocket on `/sub/<room>`, an `nchan_pubsub` location:
//! nchan sends it every message of the room, and publishes every frame it
//! sends there, back to the sender too. Publishing over the member's own
//! socket rather than by `POST /pub/<room>` keeps the comparison even: in
//! Kefu and Socket.IO too a message is one frame in on a connection that is
//! already open, and the server's cost is not mixed with parsing an HTTP
//! request and writing its response for every message. Binary frames stay
//! binary: nchan keeps the opcode a message was published with.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

use super::{Inbound, PeerKind, PeerServer, Ws};

/// Where Debian's packages put the two files this needs.
const NGINX: &str = "/usr/sbin/nginx";
const NCHAN_MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";
const PACKAGES: [&str; 2] = ["nginx-light", "libnginx-mod-nchan"];

pub(super) async fn start(core: usize) -> anyhow::Result<PeerServer> {
    install().await?;

    let dir = tempfile::Builder::new().prefix("kefu-bench-nchan-").tempdir()?;
    let port = free_port()?;
    // nginx cannot raise its file limit past the hard limit it inherits, so
    // ask for exactly that.
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum.unwrap_or(1 << 20).min(1 << 20);
    let template = std::fs::read_to_string(super::peer_dir("nchan").join("nginx.conf.template"))
        .context("reading nginx.conf.template")?;
    let config = render(&template, dir.path(), port, nofile)?;
    let config_path = dir.path().join("nginx.conf");
    std::fs::write(&config_path, config)?;

    let error_log = dir.path().join("error.log");
    let mut child = super::pinned(core, NGINX)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&config_path)
        .arg("-e")
        .arg(&error_log)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawning nginx")?;
    let log = || std::fs::read_to_string(&error_log).unwrap_or_default();
    super::wait_for_port(&mut child, port, log).await?;

    // taskset execs nginx, so the child is the master; the worker, which
    // does all the work and holds the connections, is its only child.
    let master = child.id().context("nginx already reaped")?;
    let worker = find_child(master).await.context("nginx's worker")?;
    Ok(PeerServer { kind: PeerKind::Nchan, port, measured: worker, pids: vec![master, worker], child, _dir: Some(dir) })
}

/// Fills in the template's double-braced fields.
fn render(template: &str, dir: &Path, port: u16, nofile: u64) -> anyhow::Result<String> {
    let config = template
        .replace("{{NCHAN_MODULE}}", NCHAN_MODULE)
        .replace("{{DIR}}", &dir.display().to_string())
        .replace("{{PORT}}", &port.to_string())
        .replace("{{NOFILE}}", &nofile.to_string());
    if let Some(line) = config.lines().find(|line| line.contains("{{")) {
        bail!("nginx.conf.template has a field this does not fill: {}", line.trim());
    }
    Ok(config)
}

/// `apt-get install`s nginx-light and nchan unless both are there.
async fn install() -> anyhow::Result<()> {
    if Path::new(NGINX).is_file() && Path::new(NCHAN_MODULE).is_file() {
        return Ok(());
    }
    let install = || {
        let mut command = Command::new("apt-get");
        command
            .args(["install", "-y", "--no-install-recommends"])
            .args(PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    if super::run_setup(&mut install()).await.is_err() {
        // A fresh container has no package lists yet.
        super::run_setup(Command::new("apt-get").arg("update")).await?;
        super::run_setup(&mut install()).await?;
    }
    if !Path::new(NCHAN_MODULE).is_file() {
        bail!("{NCHAN_MODULE} is missing after installing {PACKAGES:?}");
    }
    Ok(())
}

/// A port nothing listens on now. Another process could take it before
/// nginx binds it; on a benchmark machine nothing else is starting servers.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The first child of `parent`, found by its parent pid in /proc; the master
/// forks its worker before it answers, so this rarely waits.
async fn find_child(parent: u32) -> anyhow::Result<u32> {
    for _ in 0..100 {
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces and parens.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok());
            if ppid == Some(parent) {
                return Ok(pid);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("no child of {parent} after 5 s")
}

pub(super) async fn join(port: u16, room: &str, local: IpAddr) -> anyhow::Result<Ws> {
    // No confirmation to wait for: nchan subscribes the connection while it
    // handles the upgrade. Checked here by publishing to a fresh room right
    // after a second member's handshake, 300 times: the first member always
    // got it.
    super::connect(port, &format!("/sub/{room}"), local).await
}

pub(super) fn encode(payload: &[u8]) -> Message {
    Message::binary(payload.to_vec())
}

pub(super) fn decode(frame: Message) -> Inbound {
    match frame {
        Message::Binary(payload) => Inbound::Payload(payload.into()),
        Message::Text(text) => Inbound::Payload(text.as_bytes().to_vec()),
        Message::Close(_) => Inbound::Closed,
        // tungstenite answers nchan's pings itself.
        _ => Inbound::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_renders_completely() -> anyhow::Result<()> {
        let template = std::fs::read_to_string(super::super::peer_dir("nchan").join("nginx.conf.template"))?;
        let config = render(&template, Path::new("/tmp/x"), 8123, 20000)?;
        assert!(config.contains("listen 127.0.0.1:8123"));
        assert!(config.contains("worker_connections 20000;"));
        assert!(config.contains("pid /tmp/x/nginx.pid;"));
        Ok(())
    }

    #[test]
    fn binary_frames_are_payloads_byte_for_byte() {
        let payload = vec![0u8, 0x80, 0xff];
        let Inbound::Payload(decoded) = decode(encode(&payload)) else { panic!("not a payload") };
        assert_eq!(decoded, payload);
    }
}
