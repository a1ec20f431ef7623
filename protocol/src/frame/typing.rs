//! Typing indicators, with the visitor's draft for agents who may see it.

use std::string::String;

use serde::{Deserialize, Serialize};

use crate::frame::Author;
use crate::ids::ConversationId;

/// Client -> relay: the sender started or stopped typing. Not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    pub conversation: ConversationId,
    pub active: bool,
    /// What is in the composer now; the relay passes a visitor's draft to
    /// agents only and drops an agent's.
    pub draft: Option<String>,
}

/// Relay -> participants: `by` is typing (or stopped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingNotice {
    pub conversation: ConversationId,
    pub by: Author,
    pub active: bool,
    pub draft: Option<String>,
}
