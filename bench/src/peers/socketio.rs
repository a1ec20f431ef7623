//! Socket.IO 4.8 on Node: the server in `bench/peers/socketio/server.js`, and
//! a member speaking just enough Engine.IO v4 / Socket.IO v5 over a plain
//! WebSocket (no polling, no upgrade, default namespace):
//!
//! - server → `0{"sid":..,"pingInterval":..}` (Engine.IO open)
//! - member → `40` (Socket.IO connect), server → `40{"sid":..,"pid":..}`
//! - member → `420["join","<room>"]`, server → `430[]` (the join's ack)
//! - either → `42["msg","<payload>"]`; the server's copy carries one more
//!   argument, the recovery offset, which is ignored here
//! - server → `2` (ping), member → `3` (pong)
//!
//! Payloads travel as base64 text inside the event, not as binary
//! attachments: a Socket.IO chat app emits its messages as JSON strings, and
//! an attachment would cost a second WebSocket frame per message
//! (`451-[..]` plus the bytes). base64 makes the payload 4/3 as long.

use std::net::IpAddr;
use std::process::Stdio;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

use super::{Inbound, PeerKind, PeerServer, Ws};

/// The prefix of every chat message the server sends: an Engine.IO message
/// (`4`) holding a Socket.IO event (`2`) named "msg", then its payload string.
const MSG_PREFIX: &str = r#"42["msg",""#;

pub(super) async fn start(core: usize) -> anyhow::Result<PeerServer> {
    let dir = super::peer_dir("socketio");
    if !dir.join("node_modules/socket.io").is_dir() {
        // `npm ci` installs exactly the committed lock; the first run, before
        // there is one, creates it.
        let verb = if dir.join("package-lock.json").is_file() { "ci" } else { "install" };
        super::run_setup(Command::new("npm").arg(verb).args(["--no-audit", "--no-fund"]).current_dir(&dir)).await?;
    }

    let mut child = super::pinned(core, "node")
        .arg("server.js")
        .arg("0")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawning node (is Node 20 installed?)")?;
    let stdout = child.stdout.take().context("node's stdout")?;

    // server.js prints `listening <port>` once it accepts connections.
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(super::STARTUP_TIMEOUT, lines.next_line())
        .await
        .context("node printed no port in time")?
        .context("reading node's stdout")?
        .context("node exited before listening")?;
    let port = line
        .strip_prefix("listening ")
        .and_then(|port| port.trim().parse::<u16>().ok())
        .with_context(|| format!("unexpected first line from server.js: {line:?}"))?;
    // Keep reading so a later write by Node never meets a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    super::wait_for_port(&mut child, port, || "see node's output above".to_owned()).await?;
    // taskset execs node, so the child's pid is Node's.
    let pid = child.id().context("node already reaped")?;
    Ok(PeerServer { kind: PeerKind::SocketIo, port, measured: pid, pids: vec![pid], child, _dir: None })
}

pub(super) async fn join(port: u16, room: &str, local: IpAddr) -> anyhow::Result<Ws> {
    let mut ws = super::connect(port, "/socket.io/?EIO=4&transport=websocket", local).await?;

    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        bail!("expected the Engine.IO open packet, got {open:?}");
    }

    ws.send(Message::text("40")).await?;
    let connected = next_text(&mut ws).await?;
    if !connected.starts_with("40") {
        bail!("Socket.IO refused the connection: {connected:?}");
    }

    // Room names are checked by the caller, so they need no JSON escaping.
    ws.send(Message::text(format!(r#"420["join","{room}"]"#))).await?;
    let ack = next_text(&mut ws).await?;
    if !ack.starts_with("430") {
        bail!("expected the join's ack, got {ack:?}");
    }
    Ok(ws)
}

/// The next text frame that is not a ping; pings are answered on the way.
async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    // A ping comes every 25 s, and joining is bounded by the caller's
    // timeout, so a few are plenty.
    for _ in 0..8 {
        match ws.next().await.context("connection closed")?? {
            Message::Text(text) if text.as_str() == "2" => ws.send(Message::text("3")).await?,
            Message::Text(text) => return Ok(text.as_str().to_owned()),
            _ => {}
        }
    }
    bail!("no answer among the frames received")
}

pub(super) fn encode(payload: &[u8]) -> Message {
    let mut text = String::with_capacity(MSG_PREFIX.len() + payload.len() * 4 / 3 + 8);
    text.push_str(MSG_PREFIX);
    BASE64.encode_string(payload, &mut text);
    text.push_str("\"]");
    Message::text(text)
}

pub(super) fn decode(frame: Message) -> Inbound {
    let Message::Text(text) = frame else {
        return Inbound::Ignore;
    };
    let text = text.as_str();
    if let Some(rest) = text.strip_prefix(MSG_PREFIX) {
        // base64 has no quote, so the string ends at the first one.
        return match rest.split_once('"') {
            Some((encoded, _)) => match BASE64.decode(encoded) {
                Ok(payload) => Inbound::Payload(payload),
                Err(_) => Inbound::Ignore,
            },
            None => Inbound::Ignore,
        };
    }
    match text {
        "2" => Inbound::Reply(Message::text("3")),
        // Engine.IO close, or Socket.IO disconnect of the namespace.
        "1" | "41" => Inbound::Closed,
        _ => Inbound::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips_through_the_wire_text() {
        let payload = [0u8, 1, 2, 0xfe, 0xff];
        let Message::Text(text) = encode(&payload) else { panic!("not text") };
        assert_eq!(text.as_str(), r#"42["msg","AAEC/v8="]"#);

        // What the server broadcasts: the same event plus its recovery offset.
        let from_server = Message::text(r#"42["msg","AAEC/v8=","MbQyCjTS6LXb4uoQAAAB"]"#);
        let Inbound::Payload(decoded) = decode(from_server) else { panic!("not a payload") };
        assert_eq!(decoded, payload);
    }

    #[test]
    fn pings_are_answered() {
        let Inbound::Reply(Message::Text(pong)) = decode(Message::text("2")) else { panic!("no pong") };
        assert_eq!(pong.as_str(), "3");
    }
}
