//! Chat messages: sending one, its acknowledgement, and its delivery.

use std::string::String;

use serde::{Deserialize, Serialize};

use crate::frame::{ConversationEvent, ErrorCode, Files};
use crate::ids::{AgentId, ClientMessageId, ConversationId, MessageId, Seq, Timestamp, VisitorId};

/// Client -> relay: store this message. Resending with the same
/// `client_id` is safe: it is stored once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Send {
    pub conversation: ConversationId,
    pub client_id: ClientMessageId,
    pub body: Body,
}

/// Relay -> sender: the message is durably stored with this seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub conversation: ConversationId,
    pub client_id: ClientMessageId,
    pub id: MessageId,
    pub seq: Seq,
    pub sent_at: Timestamp,
}

/// Relay -> sender: the message will never be stored (the sender may not
/// write there, or the body is invalid). Resending will not help; the
/// code says why, for the sender's user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub conversation: ConversationId,
    pub client_id: ClientMessageId,
    pub code: ErrorCode,
    pub text: String,
}

/// Relay -> sender: the message was not stored *yet*, because the
/// connection is over its frame budget. It and every send after it on
/// this connection are set aside (only this one is answered); the client
/// sends them again, in order and starting with this one, after
/// `retry_after_ms`. The relay takes no other send of the connection
/// before this one comes back, so the order the user typed in is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferred {
    pub conversation: ConversationId,
    pub client_id: ClientMessageId,
    /// How long to wait before sending it again (the HTTP `Retry-After`
    /// of this protocol), in milliseconds.
    pub retry_after_ms: u32,
}

/// Relay -> participants: a stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub conversation: ConversationId,
    pub seq: Seq,
    /// The seq of the message before this one that the recipient is shown:
    /// `seq - 1`, except for visitors, who are not shown private notes.
    /// A recipient holding exactly `prev` has nothing missing before it.
    pub prev: Seq,
    pub id: MessageId,
    /// The sender's id for it; `None` for messages the relay wrote itself.
    pub client_id: Option<ClientMessageId>,
    pub author: Author,
    pub body: Body,
    pub sent_at: Timestamp,
}

/// Who wrote a message, is typing, or read something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Author {
    Visitor(VisitorId),
    Agent(AgentId),
    /// The relay itself: assignment, transfer, close and similar lines.
    System,
}

/// What a message carries. Shown as text, never as HTML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Text(String),
    /// A private note: agents only; the relay never sends it to visitors.
    Note(String),
    /// A system line (assigned, transferred, closed, ...), written by the
    /// relay; clients may not send one.
    Event(ConversationEvent),
    /// Files with a caption (protocol version 2; version 1 peers are sent
    /// a text instead, see `compat`).
    Files(Files),
}

impl Body {
    /// The size that counts against `Limits::max_body_bytes`.
    pub fn len_bytes(&self) -> usize {
        match self {
            Body::Text(text) | Body::Note(text) => text.len(),
            Body::Event(_) => 0,
            Body::Files(files) => files.caption.len() + files.files.iter().map(|file| file.name.len()).sum::<usize>(),
        }
    }

    /// Whether visitors are shown it.
    pub fn is_for_visitors(&self) -> bool {
        !matches!(self, Body::Note(_))
    }
}
