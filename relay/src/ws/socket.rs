//! The only place that turns WebSocket messages into frames and back.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use kefu_protocol::codec::{self, DecodeError};
use kefu_protocol::frame::Limits;
use kefu_protocol::{ClientFrame, ServerFrame};

/// What came off the socket.
#[derive(Debug)]
pub(crate) enum Incoming {
    Frame(ClientFrame),
    /// Bytes that are not a valid frame; the raw bytes are kept for the
    /// version check of a first frame.
    Invalid(DecodeError, Vec<u8>),
    /// A text message: this protocol is binary only.
    Text,
    /// The client closed, or the transport failed.
    Closed,
}

/// Why a write failed: either way the connection is over.
#[derive(Debug)]
pub(crate) struct WriteFailed;

/// Reads the next frame, skipping WebSocket-level pings and pongs (the
/// transport answers those itself).
pub(crate) async fn read_frame(socket: &mut WebSocket, limits: &Limits) -> Incoming {
    loop {
        let Some(Ok(message)) = socket.recv().await else {
            return Incoming::Closed;
        };
        return match message {
            Message::Binary(bytes) => match codec::decode::<ClientFrame>(&bytes, limits) {
                Ok(frame) => Incoming::Frame(frame),
                Err(error) => Incoming::Invalid(error, bytes.to_vec()),
            },
            Message::Text(_) => Incoming::Text,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(_) => Incoming::Closed,
        };
    }
}

/// Writes one frame. A write that takes longer than `timeout`
/// (`Config::write_timeout_ms`) means the client stopped reading; its
/// connection is then closed rather than holding memory and a task.
pub(crate) async fn write_frame(
    socket: &mut WebSocket,
    frame: &ServerFrame,
    timeout: Duration,
) -> Result<(), WriteFailed> {
    let bytes = codec::encode(frame);
    match tokio::time::timeout(timeout, socket.send(Message::Binary(bytes.into()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(WriteFailed),
    }
}

/// Sends a WebSocket close with a code and a short reason, best effort.
pub(crate) async fn close(socket: &mut WebSocket, code: u16, reason: &'static str, timeout: Duration) {
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = tokio::time::timeout(timeout, socket.send(Message::Close(Some(frame)))).await;
}
