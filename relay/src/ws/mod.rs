//! The `/ws` endpoint: one WebSocket per client, speaking kefu-protocol.
//!
//! - `socket`: bytes <-> frames, and nothing else.
//! - `handshake`: the hello, who the client is, its welcome.
//! - `connection`: replay, live traffic, heartbeats, closing.

mod connection;
mod handshake;
mod socket;

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::StatusCode;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use kefu_protocol::DEFAULT_LIMITS;
use kefu_protocol::codec::clip_bytes;

use crate::auth::cookie;
use crate::limits::{self, ClientAddress};
use crate::state::AppState;

/// tungstenite allocates its read buffer per socket up front; its default
/// of 128 KiB would dominate the memory of an idle connection. Clients send
/// small frames (an ack, a pong, a typing notice, most chat lines), so
/// 512 bytes hold nearly all of them in one read; a larger one takes a few,
/// and the buffer grows to fit it. 4 KiB cost 3 KiB more per idle
/// connection than 1 KiB (measured with heaptrack); 1 KiB cost 0.7 KiB
/// more than 512 bytes (RSS, `cargo xtask bench --only idle`).
const READ_BUFFER_BYTES: usize = 512;

/// How much outgoing data is gathered before it is written to the socket.
const WRITE_BUFFER_BYTES: usize = 4 * 1024;

/// Frames larger than the protocol limit but below this still get a clear
/// "frame too large" error; larger ones are cut off by the transport.
const TRANSPORT_MAX_MESSAGE: usize = 2 * DEFAULT_LIMITS.max_frame_bytes as usize;

/// Upgrades the request and serves the connection until it ends. An
/// address over its connection limit gets 429 before any upgrade, so a
/// flood of connections costs the relay no socket task.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    address: ClientAddress,
    headers: HeaderMap,
) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining; connect to another node").into_response();
    }
    if let Err(wait) = state.limiters.connections.check(address) {
        tracing::debug!(?address, "connection refused: rate limited");
        return limits::too_many("connections from this address", wait);
    }
    let upgrade = match read_upgrade(&state, &headers).await {
        Ok(upgrade) => upgrade,
        Err(error) => return error.into_response(),
    };
    let tracker = state.connections.clone();
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(WRITE_BUFFER_BYTES + 2 * TRANSPORT_MAX_MESSAGE)
        .max_message_size(TRANSPORT_MAX_MESSAGE)
        .max_frame_size(TRANSPORT_MAX_MESSAGE)
        .on_upgrade(move |socket| tracker.track_future(connection::serve(socket, state, upgrade, address)))
}

/// Longest user agent or language kept for the visitor panel.
const CLIENT_HEADER_BYTES: usize = 512;

/// The parts of the upgrade request the handshake needs. The session
/// cookie counts only when the request comes from the relay's own origin:
/// browsers send cookies with cross-site WebSocket upgrades too, so another
/// site's page must not be able to open an agent's connection.
async fn read_upgrade(state: &AppState, headers: &HeaderMap) -> Result<handshake::Upgrade, crate::error::Error> {
    let text =
        |name| headers.get(name).and_then(|v| v.to_str().ok()).map(|v| clip_bytes(v.to_owned(), CLIENT_HEADER_BYTES));
    let cookie_agent = cookie::agent_from_cookie(&state.store, headers, state.config.public_url.as_ref()).await?;
    Ok(handshake::Upgrade {
        cookie_agent,
        user_agent: text(header::USER_AGENT),
        language: text(header::ACCEPT_LANGUAGE)
            .map(|l| clip_bytes(l.split(',').next().unwrap_or("").trim().to_owned(), 35)),
    })
}
