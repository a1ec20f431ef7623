//! What arrives for the conversations: updates, stored messages and
//! history pages, this console's own sends and their answers, receipts,
//! typing, and who the visitors are.

use kefu_protocol::frame::{
    Accepted, Author, Body, ConversationStatus, ConversationUpdate, Message, Receipt, ReceiptKind, TypingNotice,
    VisitorProfile,
};
use kefu_protocol::ids::{ClientMessageId, ConversationId, Timestamp, VisitorId};
use kefu_protocol::session::Millis;

use super::{Conversation, Kind, Line, LineKey, Model, Sender, VisitorTyping};

/// A visitor's typing indicator and draft disappear after this long
/// without news, so a lost "stopped typing" cannot leave them on for good.
pub const TYPING_TIMEOUT_MS: u64 = 6_000;

/// Something worth a sound and a notification: a visitor wrote in a
/// conversation this agent is not looking at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct News {
    pub conversation: ConversationId,
    pub title: String,
    pub body: String,
}

impl Model {
    pub fn conversation_update(&mut self, update: &ConversationUpdate) {
        let conversation = self
            .conversations
            .entry(update.conversation)
            .or_insert_with(|| Conversation::new(update.conversation, update.visitor));
        let given_to_me = conversation.assignee != Some(self.me) && update.assignee == Some(self.me);
        conversation.status = update.status;
        conversation.assignee = update.assignee;
        conversation.waiting_since = update.waiting_since;
        conversation.last_seq = conversation.last_seq.max(update.last_seq);
        conversation.updated_at = conversation.updated_at.max(update.updated_at);
        if update.status == ConversationStatus::Closed {
            conversation.typing = None;
            if !self.closed.contains(&update.conversation) {
                self.closed.insert(0, update.conversation);
            }
        } else {
            self.closed.retain(|id| *id != update.conversation);
            self.saw_open((update.updated_at, update.conversation));
        }
        // A chat just given to this agent opens by itself, unless others
        // are open already.
        if given_to_me && update.status == ConversationStatus::Open && self.tabs.is_empty() {
            self.select(update.conversation);
        }
    }

    /// A stored message; the session delivers each seq once, in order.
    /// Returns news when a visitor wrote where this agent is not looking.
    pub fn message(&mut self, message: &Message) -> Option<News> {
        let live = self.live_since.is_some_and(|since| message.sent_at >= since);
        let stored = self.store(message);
        self.see();
        if !stored || !live || !matches!(message.author, Author::Visitor(_)) {
            return None;
        }
        let conversation = self.conversations.get(&message.conversation)?;
        let on_screen = self.visible && self.selected == Some(message.conversation);
        let mine = conversation.assignee.is_none_or(|agent| agent == self.me);
        if on_screen || !mine || !conversation.is_open() {
            return None;
        }
        let first = conversation.lines.iter().filter(|l| l.sender == Sender::Visitor).count() == 1;
        let Body::Text(text) = &message.body else {
            return None;
        };
        let name = self.visitor_name(conversation.visitor);
        Some(News {
            conversation: message.conversation,
            title: if first { format!("New chat from {name}") } else { format!("New message from {name}") },
            body: text.chars().take(140).collect(),
        })
    }

    /// Older messages of `conversation` from the HTTP API (oldest first).
    pub fn history(&mut self, conversation: ConversationId, messages: &[Message]) {
        for message in messages.iter().filter(|m| m.conversation == conversation) {
            self.store(message);
        }
        self.see();
    }

    /// Puts a message on its conversation's lines once; false if it was
    /// there already or its conversation is unknown.
    fn store(&mut self, message: &Message) -> bool {
        let visitor = match message.author {
            Author::Visitor(visitor) => Some(visitor),
            _ => None,
        };
        if let Some(visitor) = visitor {
            self.conversations
                .entry(message.conversation)
                .or_insert_with(|| Conversation::new(message.conversation, visitor));
        }
        let Some(conversation) = self.conversations.get_mut(&message.conversation) else {
            return false;
        };
        conversation.updated_at = conversation.updated_at.max(message.sent_at);
        conversation.last_seq = conversation.last_seq.max(message.seq);
        if visitor.is_some() && message.seq >= conversation.last_seq() {
            // The visitor sent it: whatever they were typing went out.
            conversation.typing = None;
        }
        // This console's own message, already on screen as pending.
        if let Some(client_id) = message.client_id
            && let Some(at) = conversation.lines.iter().position(|l| l.key == LineKey::Own(client_id))
        {
            if conversation.lines[at].seq.is_none() {
                let mut line = conversation.lines.remove(at);
                conversation.lines.retain(|l| l.seq != Some(message.seq));
                line.seq = Some(message.seq);
                line.at = message.sent_at;
                conversation.insert_stored(line);
            }
            return false;
        }
        if conversation.has_seq(message.seq) {
            return false;
        }
        conversation.insert_stored(Line::stored(message));
        true
    }

    /// This agent wrote `text` (a reply or a note); it shows at once, as
    /// pending.
    pub fn queue(&mut self, conversation: ConversationId, client_id: ClientMessageId, body: &Body, at: Timestamp) {
        let (kind, text) = match body {
            Body::Text(text) => (Kind::Text, text.clone()),
            Body::Note(text) => (Kind::Note, text.clone()),
            Body::Files(files) => (Kind::Text, kefu_protocol::compat::files_as_text(files)),
            Body::Event(_) => return,
        };
        if let Some(conversation) = self.conversations.get_mut(&conversation) {
            let sender = Sender::Agent(self.me);
            conversation.lines.push(Line { key: LineKey::Own(client_id), sender, kind, text, at, seq: None });
            conversation.updated_at = conversation.updated_at.max(at);
        }
    }

    pub fn accepted(&mut self, accepted: &Accepted) {
        let Some(conversation) = self.conversations.get_mut(&accepted.conversation) else {
            return;
        };
        let Some(at) = conversation.lines.iter().position(|l| l.key == LineKey::Own(accepted.client_id)) else {
            return;
        };
        if conversation.lines[at].seq.is_some() {
            return;
        }
        let mut line = conversation.lines.remove(at);
        // The relay's copy may already be here under its seq (it came in
        // as a message first): keep one row.
        conversation.lines.retain(|l| l.seq != Some(accepted.seq));
        line.seq = Some(accepted.seq);
        line.at = accepted.sent_at;
        conversation.insert_stored(line);
    }

    /// The relay refused a message for good: it leaves the screen.
    pub fn rejected(&mut self, conversation: ConversationId, client_id: ClientMessageId) {
        if let Some(conversation) = self.conversations.get_mut(&conversation) {
            conversation.lines.retain(|l| l.key != LineKey::Own(client_id));
        }
    }

    pub fn receipt(&mut self, receipt: &Receipt) {
        if let (Author::Visitor(_), ReceiptKind::Read) = (receipt.by, receipt.kind)
            && let Some(conversation) = self.conversations.get_mut(&receipt.conversation)
        {
            conversation.visitor_read = conversation.visitor_read.max(receipt.up_to);
        }
    }

    pub fn typing(&mut self, notice: &TypingNotice, now: Millis) {
        if !matches!(notice.by, Author::Visitor(_)) {
            return;
        }
        if let Some(conversation) = self.conversations.get_mut(&notice.conversation) {
            conversation.typing = notice
                .active
                .then(|| VisitorTyping { draft: notice.draft.clone(), until: now.add_ms(TYPING_TIMEOUT_MS) });
        }
    }

    /// The earliest moment a typing indicator runs out.
    pub fn typing_until(&self) -> Option<Millis> {
        self.conversations.values().filter_map(|c| c.typing.as_ref().map(|t| t.until)).min()
    }

    pub fn expire_typing(&mut self, now: Millis) {
        for conversation in self.conversations.values_mut() {
            if conversation.typing.as_ref().is_some_and(|t| t.until <= now) {
                conversation.typing = None;
            }
        }
    }

    pub fn visitor(&mut self, profile: VisitorProfile) {
        self.visitors.insert(profile.visitor, profile);
    }

    pub fn profile(&self, visitor: VisitorId) -> Option<&VisitorProfile> {
        self.visitors.get(&visitor)
    }

    /// The visitor's name, or "Visitor #id".
    pub fn visitor_name(&self, visitor: VisitorId) -> String {
        let from_list =
            || self.conversations.values().filter(|c| c.visitor == visitor).find_map(|c| c.visitor_name.clone());
        match self.visitors.get(&visitor).and_then(|p| p.name.clone()).or_else(from_list) {
            Some(name) if !name.trim().is_empty() => name,
            _ => format!("Visitor #{visitor}"),
        }
    }

    pub fn conversation(&self, id: ConversationId) -> Option<&Conversation> {
        self.conversations.get(&id)
    }
}
