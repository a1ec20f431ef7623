//! Email follow-up a visitor asks for: its chat's transcript by mail.

use std::string::String;

use serde::{Deserialize, Serialize};

use crate::ids::ConversationId;

/// Visitor -> relay: mail me this conversation, whole, to the address the
/// relay knows for me (a signed-in user's, or one I gave). Answered with
/// [`TranscriptMailed`], or an error: `Forbidden` when the relay sends no
/// mail or knows no address, `RateLimited` when one was just sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailTranscript {
    pub conversation: ConversationId,
}

/// Relay -> visitor: the transcript is queued for `to`; it goes out even
/// if the relay restarts before sending it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptMailed {
    pub conversation: ConversationId,
    pub to: String,
}
