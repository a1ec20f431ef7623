//! The satisfaction survey: the visitor rates a closed conversation.

use std::string::String;

use serde::{Deserialize, Serialize};

use crate::ids::ConversationId;

/// Visitor -> relay: how satisfied the visitor is with the chat an agent
/// closed. Taken once per close; the relay writes it as a
/// `ConversationEvent::Rated` line, which tells the visitor's other tabs
/// too. A second rating of the same close is refused with `Conflict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub conversation: ConversationId,
    /// 1 (bad) to 5 (very good).
    pub score: u8,
    /// Optional; empty when the visitor wrote none.
    pub comment: String,
}
