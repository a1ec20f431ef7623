//! Delivered and read marks.

use serde::{Deserialize, Serialize};

use crate::frame::Author;
use crate::ids::{ConversationId, Seq};

/// How far a party has got in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReceiptKind {
    /// The messages reached the party's device.
    Delivered,
    /// The party saw them on screen.
    Read,
}

/// Client -> relay: "I have everything up to `up_to` delivered or read".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub conversation: ConversationId,
    pub kind: ReceiptKind,
    pub up_to: Seq,
}

/// Relay -> participants: `by` has `kind` up to `up_to`. Marks only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub conversation: ConversationId,
    pub by: Author,
    pub kind: ReceiptKind,
    pub up_to: Seq,
}
