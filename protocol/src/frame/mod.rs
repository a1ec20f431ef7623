//! The frames of the protocol, one module per family.
//!
//! `ClientFrame` and `ServerFrame` only dispatch. postcard numbers enum
//! variants by position, so new variants go at the end and existing ones
//! never move; `codec`'s tests pin the bytes of every frame.

mod conversation;
mod error;
mod file;
mod follow_up;
mod heartbeat;
mod hello;
mod message;
mod receipt;
mod survey;
mod team;
mod typing;
mod visitor;

use serde::{Deserialize, Serialize};

pub use conversation::{ConversationStatus, ConversationUpdate, Join, ReplayComplete};
pub use error::{CloseReason, Closing, ErrorCode, ErrorFrame};
pub use file::{FileRef, Files, ImageSize, MAX_FILES_PER_MESSAGE};
pub use follow_up::{MailTranscript, TranscriptMailed};
pub use heartbeat::{Ping, Pong};
pub use hello::{Credentials, Cursor, Heartbeat, Hello, Identity, Limits, ReturningVisitor, Welcome};
pub use message::{Accepted, Author, Body, Deferred, Message, Rejected, Send};
pub use receipt::{Ack, Receipt, ReceiptKind};
pub use survey::Rate;
pub use team::{AgentRef, AgentStatus, Change, ConversationEvent, Presence, Roster, TeamMember, Update};
pub use typing::{Typing, TypingNotice};
pub use visitor::{Attribute, Attributes, Availability, Identify, Visit, VisitorProfile};

/// Everything a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    Hello(Hello),
    Send(Send),
    Join(Join),
    Ack(Ack),
    Typing(Typing),
    Ping(Ping),
    Pong(Pong),
    Visit(Visit),
    Identify(Identify),
    Attributes(Attributes),
    Update(Update),
    Status(AgentStatus),
    Rate(Rate),
    MailTranscript(MailTranscript),
}

/// Everything the relay sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    Welcome(Welcome),
    Accepted(Accepted),
    Rejected(Rejected),
    Message(Message),
    ReplayComplete(ReplayComplete),
    Receipt(Receipt),
    Typing(TypingNotice),
    Ping(Ping),
    Pong(Pong),
    Error(ErrorFrame),
    Closing(Closing),
    Conversation(ConversationUpdate),
    Visitor(VisitorProfile),
    Availability(Availability),
    Roster(Roster),
    Deferred(Deferred),
    TranscriptMailed(TranscriptMailed),
}
