//! The only place that turns WebSocket messages into frames and back.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use kefu_protocol::codec::{self, DecodeError};
use kefu_protocol::frame::Limits;
use kefu_protocol::{ClientFrame, ServerFrame};

use crate::hub::Published;

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

/// Writes one frame and flushes it: for a frame sent on its own (the
/// welcome, a refusal).
pub(crate) async fn write_frame(
    socket: &mut WebSocket,
    frame: &ServerFrame,
    timeout: Duration,
) -> Result<(), WriteFailed> {
    let message = Message::Binary(codec::encode(frame).into());
    within(timeout, socket.send(message)).await
}

/// Adds one frame to the socket's write buffer without flushing it, so
/// that frames written in a burst share write calls: the transport writes
/// out the buffer once it holds `WRITE_BUFFER_BYTES`, and [`flush`] sends
/// the rest. The caller must flush before it waits for anything else.
/// Feeding waits, up to `timeout`, only while the socket is blocked.
pub(crate) async fn feed_frame(
    socket: &mut WebSocket,
    frame: &ServerFrame,
    timeout: Duration,
) -> Result<(), WriteFailed> {
    let message = Message::Binary(codec::encode(frame).into());
    within(timeout, socket.feed(message)).await
}

/// Feeds a frame from the hub as it was published: its bytes are encoded
/// by the first connection to send it and shared by all the others.
pub(crate) async fn feed_published(
    socket: &mut WebSocket,
    published: &Published,
    timeout: Duration,
) -> Result<(), WriteFailed> {
    let bytes = published.encoded.get_or_init(|| codec::encode(&*published.frame).into());
    within(timeout, socket.feed(Message::Binary(bytes.clone()))).await
}

/// Sends whatever was fed and is still buffered.
pub(crate) async fn flush(socket: &mut WebSocket, timeout: Duration) -> Result<(), WriteFailed> {
    within(timeout, socket.flush()).await
}

/// A write that takes longer than `timeout` (`Config::write_timeout_ms`)
/// means the client stopped reading; its connection is then closed rather
/// than holding memory and a task.
async fn within(timeout: Duration, write: impl Future<Output = Result<(), axum::Error>>) -> Result<(), WriteFailed> {
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(WriteFailed),
    }
}

/// Sends a WebSocket close with a code and a short reason, best effort.
pub(crate) async fn close(socket: &mut WebSocket, code: u16, reason: &'static str, timeout: Duration) {
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = tokio::time::timeout(timeout, socket.send(Message::Close(Some(frame)))).await;
}
