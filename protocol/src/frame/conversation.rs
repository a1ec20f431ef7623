//! Following conversations: joining with replay, and the site's list.

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, ConversationId, Seq, Timestamp, VisitorId};

/// Client -> relay: send me `conversation` from `after` on, then live.
/// Also how a client repairs a gap it detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    pub conversation: ConversationId,
    pub after: Seq,
}

/// Relay -> client: replay of `conversation` is done; live messages follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayComplete {
    pub conversation: ConversationId,
    pub last_seq: Seq,
}

/// Relay -> agents of the site: a conversation started or changed. Sent
/// for every open conversation right after the welcome, then on changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationUpdate {
    pub conversation: ConversationId,
    pub visitor: VisitorId,
    pub status: ConversationStatus,
    pub last_seq: Seq,
    pub updated_at: Timestamp,
    /// The agent handling it; `None` while it waits in the queue.
    pub assignee: Option<AgentId>,
    /// When the oldest visitor message no agent has answered yet was sent;
    /// `None` when nobody is waiting for an answer.
    pub waiting_since: Option<Timestamp>,
}

/// Whether a conversation is still being worked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConversationStatus {
    Open,
    Closed,
}
