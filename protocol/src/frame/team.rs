//! The agents' side: who is on duty, and what agents do to conversations.

use std::string::String;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, ConversationId};

/// Agent -> relay: change who handles a conversation, or whether it is open.
/// Every change the relay makes becomes a system line in the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub conversation: ConversationId,
    pub change: Change,
}

/// What an agent does to a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Assign it to me. Refused with `Conflict` if someone has it already.
    Take,
    /// Hand it to another agent of the site, with a note only agents see.
    Transfer { to: AgentId, note: String },
    /// The visitor's question is answered.
    Close,
    /// Open it again, assigned to me.
    Reopen,
}

/// Agent -> relay: whether the agent takes new chats. The relay repeats
/// nothing: a client sends it again after every welcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AgentStatus {
    /// Takes new chats (auto-assignment considers this agent).
    Online,
    /// Connected, answers the chats it has, gets no new ones.
    Away,
}

/// Whether an agent is there, as the team sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Presence {
    Online,
    Away,
    /// No console connected.
    Offline,
}

/// Relay -> agents: the site's team as it is now; sent after the welcome
/// and whenever someone's presence or load changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    pub agents: Vec<TeamMember>,
}

/// One agent of a site in the [`Roster`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    pub agent: AgentId,
    pub name: String,
    pub presence: Presence,
    /// Open conversations assigned to the agent now.
    pub open: u32,
    /// The most open conversations auto-assignment gives the agent.
    pub capacity: u32,
}

/// An agent named in a system line, with the name it had then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRef {
    pub id: AgentId,
    pub name: String,
}

/// What a system line in a conversation records. Written by the relay only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConversationEvent {
    /// `to` took the chat, or (with `by: None`) the relay assigned it.
    Assigned { to: AgentRef, by: Option<AgentRef> },
    /// `from` handed the chat to `to`; the note follows as a private note.
    Transferred { from: AgentRef, to: AgentRef },
    /// Closed by an agent.
    Closed { by: AgentRef },
    /// Opened again by an agent, or (with `by: None`) by the visitor
    /// writing into a closed conversation.
    Reopened { by: Option<AgentRef> },
    /// The visitor rated the chat after it was closed (the satisfaction
    /// survey): `score` 1 to 5, `comment` possibly empty.
    Rated { score: u8, comment: String },
}
