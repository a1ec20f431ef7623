//! One conversation as the agent sees it: its lines (messages, notes,
//! system lines) in seq order, who wrote each, how far each side has read,
//! and what the visitor is typing.

use kefu_protocol::frame::{Author, Body, ConversationEvent, ConversationStatus, Message};
use kefu_protocol::ids::{AgentId, ClientMessageId, ConversationId, Seq, Timestamp, VisitorId};
use kefu_protocol::session::Millis;

/// Who wrote a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Visitor,
    Agent(AgentId),
    /// The relay (assignments, transfers, closing).
    System,
}

impl From<Author> for Sender {
    fn from(author: Author) -> Sender {
        match author {
            Author::Visitor(_) => Sender::Visitor,
            Author::Agent(agent) => Sender::Agent(agent),
            Author::System => Sender::System,
        }
    }
}

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A message the visitor sees.
    Text,
    /// A private note: agents only.
    Note,
    /// A system line, centred and grey.
    System,
}

/// A message's identity on screen: what this console sent keeps its client
/// id from "sending" to stored, so its row is never rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LineKey {
    Own(ClientMessageId),
    Seq(Seq),
}

/// One line of a conversation on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub key: LineKey,
    pub sender: Sender,
    pub kind: Kind,
    pub text: String,
    /// The relay's time once stored, the device's before.
    pub at: Timestamp,
    /// `None` while it waits in the outbox.
    pub seq: Option<Seq>,
}

impl Line {
    /// How a message the relay stored shows.
    pub(super) fn stored(message: &Message) -> Line {
        let (kind, text) = match &message.body {
            Body::Text(text) => (Kind::Text, text.clone()),
            Body::Note(text) => (Kind::Note, text.clone()),
            // Until the console shows files itself: their names.
            Body::Files(files) => (Kind::Text, kefu_protocol::compat::files_as_text(files)),
            Body::Event(event) => (Kind::System, system_text(event)),
        };
        Line {
            key: LineKey::Seq(message.seq),
            sender: message.author.into(),
            kind,
            text,
            at: message.sent_at,
            seq: Some(message.seq),
        }
    }
}

/// What the visitor is doing in the composer right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorTyping {
    pub draft: Option<String>,
    pub until: Millis,
}

/// One conversation of the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: ConversationId,
    pub visitor: VisitorId,
    pub status: ConversationStatus,
    pub assignee: Option<AgentId>,
    /// The oldest visitor message nobody answered yet.
    pub waiting_since: Option<Timestamp>,
    /// The last activity: the relay's update or the newest message.
    pub updated_at: Timestamp,
    /// The relay's last seq; lines may not reach it yet (closed ones
    /// loaded page by page).
    pub last_seq: Seq,
    /// The visitor's name as the HTTP list gave it, before any profile.
    pub(super) visitor_name: Option<String>,
    /// The newest message as the HTTP list gave it: the preview of a
    /// conversation paged in before any of its lines are loaded.
    pub(super) listed_last: Option<Line>,
    /// Stored lines in seq order, then this console's unsent ones.
    pub(super) lines: Vec<Line>,
    /// How far this agent has seen the conversation.
    pub(super) read: Seq,
    /// How far the visitor has read.
    pub(super) visitor_read: Seq,
    pub(super) typing: Option<VisitorTyping>,
}

impl Conversation {
    pub(super) fn new(id: ConversationId, visitor: VisitorId) -> Conversation {
        Conversation {
            id,
            visitor,
            status: ConversationStatus::Open,
            assignee: None,
            waiting_since: None,
            updated_at: Timestamp(0),
            last_seq: Seq::ZERO,
            visitor_name: None,
            listed_last: None,
            lines: Vec::new(),
            read: Seq::ZERO,
            visitor_read: Seq::ZERO,
            typing: None,
        }
    }

    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    pub fn line(&self, key: LineKey) -> Option<&Line> {
        self.lines.iter().find(|l| l.key == key)
    }

    /// Whether the line after `key` continues it (same author and kind,
    /// within two minutes): then only the last of the run shows its time.
    pub fn continued(&self, key: LineKey) -> bool {
        let Some(at) = self.lines.iter().position(|l| l.key == key) else {
            return false;
        };
        match (self.lines.get(at), self.lines.get(at + 1)) {
            (Some(line), Some(next)) => {
                line.kind != Kind::System
                    && next.sender == line.sender
                    && next.kind == line.kind
                    && next.at.0.saturating_sub(line.at.0) < 120_000
            }
            _ => false,
        }
    }

    pub fn is_open(&self) -> bool {
        self.status == ConversationStatus::Open
    }

    /// The newest stored seq on screen.
    pub fn last_seq(&self) -> Seq {
        self.lines.iter().rev().find_map(|line| line.seq).unwrap_or(Seq::ZERO)
    }

    /// The oldest stored seq on screen; `None` before any.
    pub fn first_seq(&self) -> Option<Seq> {
        self.lines.iter().find_map(|line| line.seq)
    }

    /// Older messages exist than those on screen (agents are shown every
    /// seq, so a first seq above 1 means some are missing).
    pub fn has_earlier(&self) -> bool {
        match self.first_seq() {
            Some(first) => first > Seq(1),
            None => self.last_seq > Seq::ZERO,
        }
    }

    /// The last line a list should preview: a message or a note.
    pub fn last_message(&self) -> Option<&Line> {
        let loaded = self.lines.iter().rev().find(|l| l.kind != Kind::System);
        match (loaded, self.listed_last.as_ref()) {
            // The list's is newer than any stored line loaded; a pending
            // line (no seq yet) is newer than both.
            (Some(line), Some(listed)) if line.seq.is_some_and(|seq| Some(seq) < listed.seq) => Some(listed),
            (loaded, listed) => loaded.or(listed),
        }
    }

    /// The visitor's messages that no agent has answered and this agent
    /// has not seen. Counting only after the last agent reply keeps old,
    /// answered history from showing as unread on every console load.
    pub fn unread(&self) -> u32 {
        let answered = self
            .lines
            .iter()
            .rev()
            .find(|line| matches!(line.sender, Sender::Agent(_)) && line.kind == Kind::Text)
            .and_then(|line| line.seq)
            .unwrap_or(Seq::ZERO);
        let after = answered.max(self.read);
        let count =
            self.lines.iter().filter(|l| l.sender == Sender::Visitor && l.seq.is_some_and(|s| s > after)).count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    pub fn read(&self) -> Seq {
        self.read
    }

    /// Whether the visitor has read this console's stored message `seq`.
    pub fn read_by_visitor(&self, seq: Seq) -> bool {
        seq <= self.visitor_read
    }

    pub fn typing(&self) -> Option<&VisitorTyping> {
        self.typing.as_ref()
    }

    pub(super) fn has_seq(&self, seq: Seq) -> bool {
        self.lines.iter().any(|l| l.seq == Some(seq))
    }

    pub(super) fn insert_stored(&mut self, line: Line) {
        let seq = line.seq.unwrap_or(Seq::ZERO);
        // Stored lines are kept in seq order (history pages arrive before
        // or after live ones); unsent ones sit after them.
        let at = self.lines.iter().position(|l| l.seq.is_none_or(|s| s > seq)).unwrap_or(self.lines.len());
        self.lines.insert(at, line);
    }
}

/// The text of a system line, from the agents' side.
pub fn system_text(event: &ConversationEvent) -> String {
    match event {
        ConversationEvent::Assigned { to, by: None } => format!("Assigned to {}", to.name),
        ConversationEvent::Assigned { to, by: Some(by) } if by.id == to.id => format!("{} took the chat", to.name),
        ConversationEvent::Assigned { to, by: Some(by) } => format!("{} assigned the chat to {}", by.name, to.name),
        ConversationEvent::Transferred { from, to } => format!("{} transferred the chat to {}", from.name, to.name),
        ConversationEvent::Closed { by } => format!("Closed by {}", by.name),
        ConversationEvent::Reopened { by: Some(by) } => format!("Reopened by {}", by.name),
        ConversationEvent::Reopened { by: None } => "Reopened by the visitor".to_owned(),
        ConversationEvent::Rated { score, comment } if comment.is_empty() => {
            format!("The visitor rated the chat {score} of 5")
        }
        ConversationEvent::Rated { score, comment } => format!("The visitor rated the chat {score} of 5: “{comment}”"),
    }
}
