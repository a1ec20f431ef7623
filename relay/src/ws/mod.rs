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
use axum::response::{IntoResponse, Response};
use kefu_protocol::DEFAULT_LIMITS;

use crate::state::AppState;

/// tungstenite allocates its read buffer per socket up front; its default
/// of 128 KiB would dominate the memory of an idle connection.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

/// Frames larger than the protocol limit but below this still get a clear
/// "frame too large" error; larger ones are cut off by the transport.
const TRANSPORT_MAX_MESSAGE: usize = 2 * DEFAULT_LIMITS.max_frame_bytes as usize;

/// Upgrades the request and serves the connection until it ends.
pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining; connect to another node").into_response();
    }
    let tracker = state.connections.clone();
    ws.read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_write_buffer_size(SOCKET_BUFFER_BYTES + 2 * TRANSPORT_MAX_MESSAGE)
        .max_message_size(TRANSPORT_MAX_MESSAGE)
        .max_frame_size(TRANSPORT_MAX_MESSAGE)
        .on_upgrade(move |socket| tracker.track_future(connection::serve(socket, state)))
}
