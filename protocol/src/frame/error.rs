//! Errors and the reason a relay closes a connection.

use std::string::String;

use serde::{Deserialize, Serialize};

/// What went wrong, for programs; the text is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The bytes are not a frame of this protocol.
    Malformed,
    /// The frame is larger than `Limits::max_frame_bytes`.
    FrameTooLarge,
    /// A message body or draft is larger than `Limits::max_body_bytes`.
    BodyTooLarge,
    /// The hello's protocol version is not one the relay speaks.
    UnsupportedVersion,
    /// The first frame was not a hello, or a second hello came.
    HelloExpected,
    /// Unknown site, or a wrong, expired or missing token.
    Unauthorized,
    /// The conversation does not exist for this client, or it may not do that.
    Forbidden,
    /// Too many connections or frames; slow down.
    RateLimited,
    /// The relay failed; retrying later may work.
    Internal,
    /// The change lost a race: someone else already made a different one
    /// (another agent took the chat, the target agent is full, ...).
    Conflict,
}

/// Relay -> client: a request failed, or the connection is about to close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    pub code: ErrorCode,
    pub text: String,
    /// Whether reconnecting with the same credentials can succeed.
    pub reconnect: bool,
}

/// Relay -> client, last frame before the relay closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closing {
    pub reason: CloseReason,
    /// Reconnect (to any node) after about this long; `None` = do not.
    pub reconnect_after_ms: Option<u32>,
}

/// Why the relay closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CloseReason {
    /// The node is draining; other nodes (or this one restarted) take over.
    ShuttingDown,
    /// The client read too slowly and its outbound queue filled.
    TooSlow,
    /// Nothing was heard from the client within the heartbeat deadline.
    HeartbeatTimeout,
    /// The client broke the protocol; see the preceding `Error`.
    ProtocolViolation,
    /// The agent's session ended: logged out, deactivated, or its password
    /// changed. Reconnecting with the same credentials cannot work; sign in
    /// again.
    SignedOut,
    /// The agent's rights changed (its role): reconnect, with the same
    /// credentials, to work with the new ones.
    AccessChanged,
}
