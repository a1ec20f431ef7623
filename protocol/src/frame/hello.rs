//! Opening a connection: the client's hello and the relay's welcome.

use std::string::String;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::ids::{
    AgentId, AgentToken, ConversationId, Seq, SessionId, SiteId, SiteKey, Timestamp, VisitorId, VisitorToken,
};

/// The first frame on every connection.
///
/// `version` comes first so a relay can read it even from a hello whose
/// later fields it does not understand (see `codec::peek_hello_version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The client's `PROTOCOL_VERSION`.
    pub version: u16,
    /// Who is connecting.
    pub credentials: Credentials,
    /// Conversations the client already holds, each with the last seq it
    /// has without a gap; the relay replays everything after it.
    pub resume: Vec<Cursor>,
}

/// Who is connecting, and the proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Credentials {
    /// A website visitor. New visitors send `returning: None` and get an id
    /// and token in the welcome; returning ones send them back.
    Visitor { site: SiteKey, returning: Option<ReturningVisitor> },
    /// An agent with a token from `POST /api/login`.
    Agent { token: AgentToken },
    /// An agent of the browser console: the proof is the HttpOnly session
    /// cookie sent with the WebSocket upgrade, which page scripts cannot
    /// read. The relay accepts it only from the relay's own origin.
    AgentCookie,
}

/// A visitor's identity from an earlier welcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturningVisitor {
    pub visitor: VisitorId,
    pub token: VisitorToken,
}

/// "I hold `conversation` up to and including `seq`."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub conversation: ConversationId,
    pub seq: Seq,
}

/// The relay's answer to a valid hello. Replay of the resumed conversations
/// follows it, each ending with `ReplayComplete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// This connection, for logs.
    pub session: SessionId,
    /// Who the relay says the client is.
    pub identity: Identity,
    /// How the relay keeps the link alive; both sides use it.
    pub heartbeat: Heartbeat,
    /// The relay's clock, so clients can show times consistently.
    pub server_time: Timestamp,
    /// What the relay accepts.
    pub limits: Limits,
}

/// The identity the relay established for a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Identity {
    /// A visitor and the one open conversation it chats in. The token is
    /// what the client must store to come back as the same visitor.
    Visitor { visitor: VisitorId, token: VisitorToken, site: SiteId, conversation: ConversationId },
    /// An agent of one site.
    Agent { agent: AgentId, site: SiteId, name: String },
}

/// The relay pings every `interval_ms`; a side that hears nothing for
/// `interval_ms + grace_ms` treats the link as dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub interval_ms: u32,
    pub grace_ms: u32,
}

impl Heartbeat {
    /// How long a side may hear nothing before it gives the link up.
    pub fn deadline_ms(self) -> u64 {
        u64::from(self.interval_ms) + u64::from(self.grace_ms)
    }
}

/// Sizes the relay accepts; larger frames are refused with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_frame_bytes: u32,
    pub max_body_bytes: u32,
}
