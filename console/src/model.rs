//! What the agent sees, as plain data: the open conversations with their
//! messages, who the visitors are, who is typing, what is unread, which
//! conversation is on screen, and the link.
//!
//! The connection feeds it the session's events; the components only read
//! it. Nothing here touches the browser, so it is tested on the host.

use std::collections::BTreeMap;

use kefu_protocol::frame::{
    Accepted, Author, Body, ConversationStatus, ConversationUpdate, Message, Receipt, ReceiptKind, TypingNotice,
    VisitorProfile,
};
use kefu_protocol::ids::{ClientMessageId, ConversationId, Seq, Timestamp, VisitorId};
use kefu_protocol::session::{LinkState, Millis};

/// A visitor's typing indicator and draft disappear after this long
/// without news, so a lost "stopped typing" cannot leave them on for good.
pub const TYPING_TIMEOUT_MS: u64 = 6_000;

/// Who wrote a message, from the agent's side of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Visitor,
    /// This console's agent or a colleague.
    Agent,
    System,
}

impl From<Author> for Sender {
    fn from(author: Author) -> Sender {
        match author {
            Author::Visitor(_) => Sender::Visitor,
            Author::Agent(_) => Sender::Agent,
            Author::System => Sender::System,
        }
    }
}

/// A message's identity on screen: what this console sent keeps its client
/// id from "sending" to stored, so its row is never rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LineKey {
    Own(ClientMessageId),
    Seq(Seq),
}

/// One message on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub key: LineKey,
    pub sender: Sender,
    pub text: String,
    /// The relay's time once stored, the device's before.
    pub at: Timestamp,
    /// `None` while it waits in the outbox.
    pub seq: Option<Seq>,
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
    /// The last activity: the relay's update or the newest message.
    pub updated_at: Timestamp,
    /// Stored messages in seq order, then this console's unsent ones.
    lines: Vec<Line>,
    /// How far this agent has seen the conversation.
    read: Seq,
    /// How far the visitor has read.
    visitor_read: Seq,
    typing: Option<VisitorTyping>,
}

impl Conversation {
    fn new(id: ConversationId, visitor: VisitorId) -> Conversation {
        Conversation {
            id,
            visitor,
            status: ConversationStatus::Open,
            updated_at: Timestamp(0),
            lines: Vec::new(),
            read: Seq::ZERO,
            visitor_read: Seq::ZERO,
            typing: None,
        }
    }

    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The newest stored seq.
    pub fn last_seq(&self) -> Seq {
        self.lines.iter().rev().find_map(|line| line.seq).unwrap_or(Seq::ZERO)
    }

    pub fn last_line(&self) -> Option<&Line> {
        self.lines.last()
    }

    /// The visitor's messages that no agent has answered and this agent
    /// has not seen. Counting only after the last agent reply keeps old,
    /// answered history from showing as unread on every console load.
    pub fn unread(&self) -> u32 {
        let answered = self
            .lines
            .iter()
            .rev()
            .find(|line| line.sender == Sender::Agent)
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

    fn insert_stored(&mut self, line: Line) {
        let seq = line.seq.unwrap_or(Seq::ZERO);
        // Stored lines come in seq order from the session; unsent ones sit
        // after them.
        let at = self.lines.iter().position(|l| l.seq.is_none_or(|s| s > seq)).unwrap_or(self.lines.len());
        self.lines.insert(at, line);
    }
}

/// The console's whole state.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    conversations: BTreeMap<ConversationId, Conversation>,
    visitors: BTreeMap<VisitorId, VisitorProfile>,
    selected: Option<ConversationId>,
    /// The page is on screen: only then does the selected conversation
    /// count as read.
    visible: bool,
    link: LinkState,
    /// The link was live at least once: later drops show "Reconnecting…",
    /// the first connection only "Connecting…".
    was_live: bool,
    /// The relay refused the token for good: back to the login screen.
    signed_out: bool,
}

impl Default for Model {
    fn default() -> Model {
        Model::new(true)
    }
}

impl Model {
    pub fn new(visible: bool) -> Model {
        Model {
            conversations: BTreeMap::new(),
            visitors: BTreeMap::new(),
            selected: None,
            visible,
            link: LinkState::Stopped,
            was_live: false,
            signed_out: false,
        }
    }

    pub fn link(&mut self, link: LinkState) {
        self.was_live |= link == LinkState::Live;
        self.link = link;
    }

    pub fn link_state(&self) -> LinkState {
        self.link
    }

    /// The banner to show, if any.
    pub fn banner(&self) -> Option<&'static str> {
        match self.link {
            LinkState::Live => None,
            LinkState::Stopped if self.signed_out => None,
            LinkState::Stopped => Some("Disconnected. Reload the page to reconnect."),
            _ if self.was_live => Some("Reconnecting…"),
            _ => Some("Connecting…"),
        }
    }

    pub fn sign_out(&mut self) {
        self.signed_out = true;
    }

    pub fn signed_out(&self) -> bool {
        self.signed_out
    }

    pub fn conversation_update(&mut self, update: &ConversationUpdate) {
        let conversation = self
            .conversations
            .entry(update.conversation)
            .or_insert_with(|| Conversation::new(update.conversation, update.visitor));
        conversation.status = update.status;
        conversation.updated_at = conversation.updated_at.max(update.updated_at);
        if update.status == ConversationStatus::Closed && self.selected == Some(update.conversation) {
            self.selected = None;
        }
        self.select_first_if_none();
    }

    /// A stored message; the session delivers each seq once, in order.
    pub fn message(&mut self, message: &Message) {
        let visitor = match message.author {
            Author::Visitor(visitor) => Some(visitor),
            _ => None,
        };
        let known = self.conversations.contains_key(&message.conversation);
        if !known && let Some(visitor) = visitor {
            self.conversations.insert(message.conversation, Conversation::new(message.conversation, visitor));
        }
        let Some(conversation) = self.conversations.get_mut(&message.conversation) else {
            return;
        };
        conversation.updated_at = conversation.updated_at.max(message.sent_at);
        if visitor.is_some() {
            // The visitor sent it: whatever they were typing went out.
            conversation.typing = None;
        }
        // This console's own message, already on screen as pending.
        if let Some(client_id) = message.client_id
            && let Some(line) = conversation.lines.iter_mut().find(|l| l.key == LineKey::Own(client_id))
        {
            if line.seq.is_none() {
                let mut line = line.clone();
                line.seq = Some(message.seq);
                line.at = message.sent_at;
                conversation.lines.retain(|l| l.key != LineKey::Own(client_id));
                conversation.insert_stored(line);
            }
            return;
        }
        if conversation.lines.iter().any(|l| l.seq == Some(message.seq)) {
            return;
        }
        let Body::Text(text) = &message.body;
        conversation.insert_stored(Line {
            key: LineKey::Seq(message.seq),
            sender: message.author.into(),
            text: text.clone(),
            at: message.sent_at,
            seq: Some(message.seq),
        });
        self.select_first_if_none();
        self.see();
    }

    /// This agent wrote `text`; it shows at once, as pending.
    pub fn queue(&mut self, conversation: ConversationId, client_id: ClientMessageId, text: String, at: Timestamp) {
        if let Some(conversation) = self.conversations.get_mut(&conversation) {
            conversation.lines.push(Line { key: LineKey::Own(client_id), sender: Sender::Agent, text, at, seq: None });
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
        match self.visitors.get(&visitor).and_then(|p| p.name.as_deref()).filter(|n| !n.trim().is_empty()) {
            Some(name) => name.to_owned(),
            None => format!("Visitor #{visitor}"),
        }
    }

    pub fn conversation(&self, id: ConversationId) -> Option<&Conversation> {
        self.conversations.get(&id)
    }

    /// Open conversations, newest activity first.
    pub fn open_ids(&self) -> Vec<ConversationId> {
        let mut open: Vec<&Conversation> =
            self.conversations.values().filter(|c| c.status == ConversationStatus::Open).collect();
        open.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
        open.into_iter().map(|c| c.id).collect()
    }

    pub fn selected(&self) -> Option<ConversationId> {
        self.selected
    }

    /// Puts `id` on screen; its messages count as read.
    pub fn select(&mut self, id: ConversationId) {
        if self.conversations.contains_key(&id) {
            self.selected = Some(id);
            self.see();
        }
    }

    pub fn set_visible(&mut self, visible: bool) {
        self.visible = visible;
        self.see();
    }

    /// With nothing on screen yet, the newest conversation is.
    fn select_first_if_none(&mut self) {
        if self.selected.is_none() {
            self.selected = self.open_ids().first().copied();
        }
        self.see();
    }

    /// Marks what is on screen as read.
    fn see(&mut self) {
        if !self.visible {
            return;
        }
        if let Some(conversation) = self.selected.and_then(|id| self.conversations.get_mut(&id)) {
            conversation.read = conversation.read.max(conversation.last_seq());
        }
    }

    /// How far this agent has read each conversation, for read acks.
    pub fn read_marks(&self) -> impl Iterator<Item = (ConversationId, Seq)> + '_ {
        self.conversations.values().map(|c| (c.id, c.read))
    }

    /// Unread messages in every open conversation, for the tab title.
    pub fn unread_total(&self) -> u32 {
        self.conversations.values().filter(|c| c.status == ConversationStatus::Open).map(Conversation::unread).sum()
    }
}

#[cfg(test)]
mod tests {
    use kefu_protocol::ids::{AgentId, MessageId};

    use super::*;

    const CONV: ConversationId = ConversationId(7);
    const VISITOR: VisitorId = VisitorId(3);

    fn update(id: ConversationId, at: u64) -> ConversationUpdate {
        ConversationUpdate {
            conversation: id,
            visitor: VISITOR,
            status: ConversationStatus::Open,
            last_seq: Seq::ZERO,
            updated_at: Timestamp(at),
        }
    }

    fn message(conversation: ConversationId, seq: u64, author: Author, text: &str) -> Message {
        Message {
            conversation,
            seq: Seq(seq),
            id: MessageId(seq),
            client_id: None,
            author,
            body: Body::Text(text.into()),
            sent_at: Timestamp(1_000 + seq),
        }
    }

    fn texts(model: &Model, id: ConversationId) -> Vec<String> {
        model.conversation(id).unwrap().lines().iter().map(|l| l.text.clone()).collect()
    }

    #[test]
    fn newest_activity_first_and_the_first_one_is_selected() {
        let mut model = Model::new(true);
        model.conversation_update(&update(ConversationId(1), 10));
        model.conversation_update(&update(ConversationId(2), 20));
        assert_eq!(model.open_ids(), [ConversationId(2), ConversationId(1)]);
        assert_eq!(model.selected(), Some(ConversationId(1)));
        model.message(&message(ConversationId(1), 1, Author::Visitor(VISITOR), "hi"));
        assert_eq!(model.open_ids(), [ConversationId(1), ConversationId(2)]);
    }

    #[test]
    fn unread_counts_what_is_not_on_screen_and_not_answered() {
        let mut model = Model::new(true);
        model.conversation_update(&update(ConversationId(1), 10));
        model.conversation_update(&update(CONV, 5));
        assert_eq!(model.selected(), Some(ConversationId(1)));
        model.message(&message(CONV, 1, Author::Visitor(VISITOR), "a"));
        model.message(&message(CONV, 2, Author::Agent(AgentId(1)), "b"));
        model.message(&message(CONV, 3, Author::Visitor(VISITOR), "c"));
        model.message(&message(CONV, 4, Author::Visitor(VISITOR), "d"));
        assert_eq!(model.conversation(CONV).unwrap().unread(), 2);
        assert_eq!(model.unread_total(), 2);
        model.select(CONV);
        assert_eq!(model.unread_total(), 0);
        assert_eq!(model.conversation(CONV).unwrap().read(), Seq(4));
    }

    #[test]
    fn a_hidden_page_reads_nothing() {
        let mut model = Model::new(false);
        model.conversation_update(&update(CONV, 5));
        model.message(&message(CONV, 1, Author::Visitor(VISITOR), "a"));
        assert_eq!(model.unread_total(), 1);
        model.set_visible(true);
        assert_eq!(model.unread_total(), 0);
    }

    #[test]
    fn own_messages_keep_their_row_and_land_in_seq_order() {
        let mut model = Model::new(true);
        model.conversation_update(&update(CONV, 5));
        model.queue(CONV, ClientMessageId(9), "mine".into(), Timestamp(1));
        model.message(&message(CONV, 1, Author::Visitor(VISITOR), "theirs"));
        assert_eq!(texts(&model, CONV), ["theirs", "mine"]);
        let mut echo = message(CONV, 2, Author::Agent(AgentId(1)), "mine");
        echo.client_id = Some(ClientMessageId(9));
        model.message(&echo);
        model.accepted(&Accepted {
            conversation: CONV,
            client_id: ClientMessageId(9),
            id: MessageId(2),
            seq: Seq(2),
            sent_at: Timestamp(5),
        });
        assert_eq!(texts(&model, CONV), ["theirs", "mine"]);
        let lines = model.conversation(CONV).unwrap().lines();
        assert_eq!(lines[1].key, LineKey::Own(ClientMessageId(9)));
        assert_eq!(lines[1].seq, Some(Seq(2)));
        model.message(&message(CONV, 2, Author::Agent(AgentId(1)), "mine"));
        assert_eq!(texts(&model, CONV).len(), 2);
    }

    #[test]
    fn typing_runs_out_and_a_message_ends_it() {
        let mut model = Model::new(true);
        model.conversation_update(&update(CONV, 5));
        let notice =
            TypingNotice { conversation: CONV, by: Author::Visitor(VISITOR), active: true, draft: Some("hel".into()) };
        model.typing(&notice, Millis(100));
        assert_eq!(model.typing_until(), Some(Millis(100 + TYPING_TIMEOUT_MS)));
        model.expire_typing(Millis(200));
        assert!(model.conversation(CONV).unwrap().typing().is_some());
        model.message(&message(CONV, 1, Author::Visitor(VISITOR), "hello"));
        assert!(model.conversation(CONV).unwrap().typing().is_none());
        model.typing(&notice, Millis(300));
        model.expire_typing(Millis(300 + TYPING_TIMEOUT_MS));
        assert_eq!(model.typing_until(), None);
    }

    #[test]
    fn the_banner_says_reconnecting_only_after_a_live_link() {
        let mut model = Model::new(true);
        model.link(LinkState::Connecting);
        assert_eq!(model.banner(), Some("Connecting…"));
        model.link(LinkState::Live);
        assert_eq!(model.banner(), None);
        model.link(LinkState::Waiting { attempt: 1, retry_at: Millis(5) });
        assert_eq!(model.banner(), Some("Reconnecting…"));
    }
}
