//! Kefu's wire protocol, shared by the relay, the widget, the console and
//! native clients. Pure: no I/O, no async runtime; builds for the host and
//! for `wasm32-unknown-unknown`.
//!
//! # Layout
//!
//! - [`ids`]: newtype identifiers (`ConversationId`, `Seq`, tokens, ...).
//! - [`frame`]: the frames, one module per family (hello, message,
//!   receipt, typing, conversation, heartbeat, error); `ClientFrame` and
//!   `ServerFrame` only dispatch.
//! - [`codec`]: bytes <-> frames with the protocol version and size limits.
//! - [`compat`]: what a peer of an older version is sent instead.
//! - [`session`]: the client's side of a connection without I/O: backoff,
//!   heartbeat deadlines, the outbox of unacknowledged sends and the replay
//!   cursors. Fed events, it returns actions for the host to carry out.

pub mod codec;
pub mod compat;
pub mod frame;
pub mod ids;
pub mod session;

pub use codec::{DEFAULT_LIMITS, DecodeError, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION, decode, encode};
pub use frame::{ClientFrame, ServerFrame};
