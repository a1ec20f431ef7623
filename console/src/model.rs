//! What the agent sees, as plain data: the conversations with their
//! messages, notes and system lines, who handles each, who the visitors
//! are, who is typing, what is unread, the team, which conversations are
//! open in tabs, and the link.
//!
//! The connection feeds it the session's events and the HTTP pages; the
//! components only read it. Nothing here touches the browser, so it is
//! tested on the host.

use std::collections::BTreeMap;

use kefu_protocol::frame::{
    Accepted, AgentStatus, Author, Body, ConversationEvent, ConversationStatus, ConversationUpdate, Message, Receipt,
    ReceiptKind, TeamMember, TypingNotice, VisitorProfile,
};
use kefu_protocol::ids::{AgentId, ClientMessageId, ConversationId, Seq, Timestamp, VisitorId};
use kefu_protocol::session::{LinkState, Millis};

use crate::api::ConversationSummary;

/// A visitor's typing indicator and draft disappear after this long
/// without news, so a lost "stopped typing" cannot leave them on for good.
pub const TYPING_TIMEOUT_MS: u64 = 6_000;

/// At most this many conversations are open in tabs; opening another
/// closes the one looked at least recently.
pub const MAX_TABS: usize = 6;

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

/// What the visitor is doing in the composer right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorTyping {
    pub draft: Option<String>,
    pub until: Millis,
}

/// The lists of the left column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Folder {
    /// Waiting for an agent, oldest waiting first.
    Unassigned,
    /// Assigned to this agent.
    Mine,
    /// Every open conversation of the site.
    All,
    /// Closed ones, paged from the HTTP API.
    Closed,
}

impl Folder {
    pub const ALL: [Folder; 4] = [Folder::Mine, Folder::Unassigned, Folder::All, Folder::Closed];

    pub fn label(self) -> &'static str {
        match self {
            Folder::Unassigned => "Unassigned",
            Folder::Mine => "Mine",
            Folder::All => "All open",
            Folder::Closed => "Closed",
        }
    }
}

/// Something worth a sound and a notification: a visitor wrote in a
/// conversation this agent is not looking at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct News {
    pub conversation: ConversationId,
    pub title: String,
    pub body: String,
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
    visitor_name: Option<String>,
    /// Stored lines in seq order, then this console's unsent ones.
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
            assignee: None,
            waiting_since: None,
            updated_at: Timestamp(0),
            last_seq: Seq::ZERO,
            visitor_name: None,
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
        self.lines.iter().rev().find(|l| l.kind != Kind::System)
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

    fn has_seq(&self, seq: Seq) -> bool {
        self.lines.iter().any(|l| l.seq == Some(seq))
    }

    fn insert_stored(&mut self, line: Line) {
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
    }
}

/// The console's whole state.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The signed-in agent.
    me: AgentId,
    conversations: BTreeMap<ConversationId, Conversation>,
    visitors: BTreeMap<VisitorId, VisitorProfile>,
    /// Conversations open in tabs, in the order they were opened.
    tabs: Vec<ConversationId>,
    selected: Option<ConversationId>,
    /// Tabs by when they were last on screen, for closing the stalest.
    last_seen: BTreeMap<ConversationId, u64>,
    seen_clock: u64,
    folder: Folder,
    /// The Closed folder's pages, newest first; `closed_more` while the
    /// relay may have older ones.
    closed: Vec<ConversationId>,
    closed_more: bool,
    /// A page came from the relay: the folder holds more than the chats
    /// closed while this console watched.
    closed_fetched: bool,
    team: Vec<TeamMember>,
    status: AgentStatus,
    /// The relay's clock at the first welcome: visitor messages sent
    /// after it are news, those before are history.
    live_since: Option<Timestamp>,
    /// Short messages at the bottom of the screen (refused changes).
    toasts: Vec<(u64, String)>,
    next_toast: u64,
    /// The page is on screen: only then does the selected conversation
    /// count as read.
    visible: bool,
    link: LinkState,
    /// The link was live at least once: later drops show "Reconnecting…",
    /// the first connection only "Connecting…".
    was_live: bool,
    /// The relay refused the session for good: back to the login screen.
    signed_out: bool,
}

impl Model {
    pub fn new(me: AgentId, visible: bool) -> Model {
        Model {
            me,
            conversations: BTreeMap::new(),
            visitors: BTreeMap::new(),
            tabs: Vec::new(),
            selected: None,
            last_seen: BTreeMap::new(),
            seen_clock: 0,
            folder: Folder::Mine,
            closed: Vec::new(),
            closed_more: true,
            closed_fetched: false,
            team: Vec::new(),
            status: AgentStatus::Online,
            live_since: None,
            toasts: Vec::new(),
            next_toast: 0,
            visible,
            link: LinkState::Stopped,
            was_live: false,
            signed_out: false,
        }
    }

    pub fn me(&self) -> AgentId {
        self.me
    }

    // --- the link ------------------------------------------------------

    pub fn link(&mut self, link: LinkState) {
        self.was_live |= link == LinkState::Live;
        self.link = link;
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

    /// The relay welcomed this console; its clock says when "now" is.
    pub fn welcome(&mut self, server_time: Timestamp) {
        self.live_since.get_or_insert(server_time);
    }

    pub fn sign_out(&mut self) {
        self.signed_out = true;
    }

    pub fn signed_out(&self) -> bool {
        self.signed_out
    }

    // --- the team --------------------------------------------------------

    pub fn roster(&mut self, team: Vec<TeamMember>) {
        self.team = team;
    }

    pub fn team(&self) -> &[TeamMember] {
        &self.team
    }

    /// An agent's name as the team knows it.
    pub fn agent_name(&self, agent: AgentId) -> String {
        match self.team.iter().find(|m| m.agent == agent) {
            Some(member) => member.name.clone(),
            None => format!("Agent #{agent}"),
        }
    }

    /// Whether this agent is online or away, as last chosen.
    pub fn status(&self) -> AgentStatus {
        self.status
    }

    pub fn set_status(&mut self, status: AgentStatus) {
        self.status = status;
    }

    // --- conversations -----------------------------------------------------

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
        let (kind, text) = match &message.body {
            Body::Text(text) => (Kind::Text, text.clone()),
            Body::Note(text) => (Kind::Note, text.clone()),
            Body::Event(event) => (Kind::System, system_text(event)),
        };
        conversation.insert_stored(Line {
            key: LineKey::Seq(message.seq),
            sender: message.author.into(),
            kind,
            text,
            at: message.sent_at,
            seq: Some(message.seq),
        });
        true
    }

    /// This agent wrote `text` (a reply or a note); it shows at once, as
    /// pending.
    pub fn queue(&mut self, conversation: ConversationId, client_id: ClientMessageId, body: &Body, at: Timestamp) {
        let (kind, text) = match body {
            Body::Text(text) => (Kind::Text, text.clone()),
            Body::Note(text) => (Kind::Note, text.clone()),
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

    // --- the lists -----------------------------------------------------------

    pub fn folder(&self) -> Folder {
        self.folder
    }

    pub fn set_folder(&mut self, folder: Folder) {
        self.folder = folder;
    }

    /// The conversations of `folder`, in its order.
    pub fn list(&self, folder: Folder) -> Vec<ConversationId> {
        if folder == Folder::Closed {
            let mut closed: Vec<&Conversation> =
                self.closed.iter().filter_map(|id| self.conversations.get(id)).filter(|c| !c.is_open()).collect();
            closed.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
            return closed.into_iter().map(|c| c.id).collect();
        }
        let mut open: Vec<&Conversation> = self
            .conversations
            .values()
            .filter(|c| c.is_open())
            .filter(|c| match folder {
                Folder::Unassigned => c.assignee.is_none(),
                Folder::Mine => c.assignee == Some(self.me),
                _ => true,
            })
            .collect();
        if folder == Folder::Unassigned {
            // The queue: whoever has waited longest first.
            open.sort_by_key(|c| (c.waiting_since.unwrap_or(Timestamp(u64::MAX)), c.updated_at, c.id));
        } else {
            open.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
        }
        open.into_iter().map(|c| c.id).collect()
    }

    /// How many conversations `folder` holds (`None` for the paged Closed).
    pub fn count(&self, folder: Folder) -> Option<usize> {
        (folder != Folder::Closed).then(|| self.list(folder).len())
    }

    /// A page of closed conversations from the HTTP API.
    pub fn closed_page(&mut self, page: &[ConversationSummary], limit: usize) {
        for summary in page {
            let conversation =
                self.conversations.entry(summary.id).or_insert_with(|| Conversation::new(summary.id, summary.visitor));
            // The live updates are newer than a page: they win if any came.
            if summary.status == "closed" && conversation.lines.is_empty() {
                conversation.status = ConversationStatus::Closed;
            }
            conversation.assignee = conversation.assignee.or(summary.assignee);
            conversation.updated_at = conversation.updated_at.max(summary.updated_at);
            conversation.last_seq = conversation.last_seq.max(summary.last_seq);
            if conversation.visitor_name.is_none() {
                conversation.visitor_name.clone_from(&summary.visitor_name);
            }
            if !self.closed.contains(&summary.id) {
                self.closed.push(summary.id);
            }
        }
        self.closed_more = page.len() >= limit;
        self.closed_fetched = true;
    }

    pub fn closed_fetched(&self) -> bool {
        self.closed_fetched
    }

    /// Where the Closed folder's next page starts: the newest ones first,
    /// then older than the oldest held.
    pub fn closed_before(&self) -> Option<Timestamp> {
        if !self.closed_fetched {
            return None;
        }
        self.closed.iter().filter_map(|id| self.conversations.get(id)).map(|c| c.updated_at).min()
    }

    pub fn closed_more(&self) -> bool {
        self.closed_more
    }

    /// Makes sure a conversation known only by id (an earlier one from the
    /// visitor panel) can be opened.
    pub fn know(&mut self, id: ConversationId, visitor: VisitorId, status: ConversationStatus, last_seq: Seq) {
        let conversation = self.conversations.entry(id).or_insert_with(|| Conversation::new(id, visitor));
        if conversation.lines.is_empty() {
            conversation.status = status;
        }
        conversation.last_seq = conversation.last_seq.max(last_seq);
    }

    // --- tabs and what is on screen ----------------------------------------------

    pub fn tabs(&self) -> &[ConversationId] {
        &self.tabs
    }

    pub fn selected(&self) -> Option<ConversationId> {
        self.selected
    }

    /// Puts `id` on screen in a tab; its messages count as read.
    pub fn select(&mut self, id: ConversationId) {
        if !self.conversations.contains_key(&id) {
            return;
        }
        if !self.tabs.contains(&id) {
            if self.tabs.len() >= MAX_TABS
                && let Some(stalest) =
                    self.tabs.iter().copied().min_by_key(|tab| self.last_seen.get(tab).copied().unwrap_or(0))
            {
                self.close_tab(stalest);
            }
            self.tabs.push(id);
        }
        self.selected = Some(id);
        self.seen_clock += 1;
        self.last_seen.insert(id, self.seen_clock);
        self.see();
    }

    /// Closes a tab; the neighbour comes on screen.
    pub fn close_tab(&mut self, id: ConversationId) {
        let Some(at) = self.tabs.iter().position(|tab| *tab == id) else {
            return;
        };
        self.tabs.remove(at);
        self.last_seen.remove(&id);
        if self.selected == Some(id) {
            self.selected = self.tabs.get(at).or_else(|| self.tabs.last()).copied();
            self.see();
        }
    }

    pub fn set_visible(&mut self, visible: bool) {
        self.visible = visible;
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
        self.conversations.values().filter(|c| c.is_open()).map(|c| (c.id, c.read))
    }

    /// Unread messages in the open conversations that are this agent's
    /// business (theirs and the queue), for the tab title.
    pub fn unread_total(&self) -> u32 {
        self.conversations
            .values()
            .filter(|c| c.is_open() && c.assignee.is_none_or(|agent| agent == self.me))
            .map(Conversation::unread)
            .sum()
    }

    // --- toasts -------------------------------------------------------------

    /// Shows a short message; returns its id for dismissing it.
    pub fn toast(&mut self, text: String) -> u64 {
        self.next_toast += 1;
        self.toasts.push((self.next_toast, text));
        self.next_toast
    }

    pub fn dismiss(&mut self, id: u64) {
        self.toasts.retain(|(toast, _)| *toast != id);
    }

    pub fn toasts(&self) -> &[(u64, String)] {
        &self.toasts
    }
}

#[cfg(test)]
mod tests {
    use kefu_protocol::frame::AgentRef;
    use kefu_protocol::ids::MessageId;

    use super::*;

    const ME: AgentId = AgentId(1);
    const OTHER: AgentId = AgentId(2);
    const CONV: ConversationId = ConversationId(7);
    const VISITOR: VisitorId = VisitorId(3);

    fn update(id: ConversationId, at: u64, assignee: Option<AgentId>) -> ConversationUpdate {
        ConversationUpdate {
            conversation: id,
            visitor: VISITOR,
            status: ConversationStatus::Open,
            last_seq: Seq::ZERO,
            updated_at: Timestamp(at),
            assignee,
            waiting_since: None,
        }
    }

    fn message(conversation: ConversationId, seq: u64, author: Author, text: &str) -> Message {
        Message {
            conversation,
            seq: Seq(seq),
            prev: Seq(seq - 1),
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
    fn newest_activity_first_and_my_first_chat_opens_by_itself() {
        let mut model = Model::new(ME, true);
        model.conversation_update(&update(ConversationId(1), 10, Some(ME)));
        model.conversation_update(&update(ConversationId(2), 20, Some(ME)));
        assert_eq!(model.list(Folder::Mine), [ConversationId(2), ConversationId(1)]);
        assert_eq!(model.selected(), Some(ConversationId(1)));
        assert_eq!(model.tabs(), [ConversationId(1)]);
        model.message(&message(ConversationId(1), 1, Author::Visitor(VISITOR), "hi"));
        assert_eq!(model.list(Folder::Mine), [ConversationId(1), ConversationId(2)]);
    }

    #[test]
    fn only_a_chat_newly_given_to_me_opens_by_itself() {
        let mut model = Model::new(ME, true);
        model.conversation_update(&update(ConversationId(1), 10, Some(ME)));
        model.close_tab(ConversationId(1));
        // News in a chat the agent closed the tab of: it stays closed.
        model.message(&message(ConversationId(1), 1, Author::Visitor(VISITOR), "hi"));
        model.conversation_update(&update(ConversationId(1), 20, Some(ME)));
        assert_eq!(model.tabs(), []);
        model.conversation_update(&update(ConversationId(2), 30, None));
        assert_eq!(model.tabs(), []);
        model.conversation_update(&update(ConversationId(2), 40, Some(ME)));
        assert_eq!(model.tabs(), [ConversationId(2)]);
    }

    #[test]
    fn folders_split_the_queue_mine_and_everyone_elses() {
        let mut model = Model::new(ME, true);
        let mut waiting_long = update(ConversationId(1), 50, None);
        waiting_long.waiting_since = Some(Timestamp(5));
        let mut waiting_short = update(ConversationId(2), 10, None);
        waiting_short.waiting_since = Some(Timestamp(9));
        model.conversation_update(&waiting_short);
        model.conversation_update(&waiting_long);
        model.conversation_update(&update(ConversationId(3), 30, Some(ME)));
        model.conversation_update(&update(ConversationId(4), 40, Some(OTHER)));
        assert_eq!(model.list(Folder::Unassigned), [ConversationId(1), ConversationId(2)]);
        assert_eq!(model.list(Folder::Mine), [ConversationId(3)]);
        assert_eq!(model.list(Folder::All).len(), 4);
        let mut closed = update(ConversationId(3), 60, Some(ME));
        closed.status = ConversationStatus::Closed;
        model.conversation_update(&closed);
        assert_eq!(model.list(Folder::Mine), []);
        assert_eq!(model.list(Folder::Closed), [ConversationId(3)]);
        assert_eq!(model.count(Folder::All), Some(3));
    }

    #[test]
    fn unread_counts_what_is_not_on_screen_and_not_answered() {
        let mut model = Model::new(ME, true);
        model.conversation_update(&update(ConversationId(1), 10, Some(ME)));
        model.conversation_update(&update(CONV, 5, Some(ME)));
        assert_eq!(model.selected(), Some(ConversationId(1)));
        model.message(&message(CONV, 1, Author::Visitor(VISITOR), "a"));
        model.message(&message(CONV, 2, Author::Agent(ME), "b"));
        model.message(&message(CONV, 3, Author::Visitor(VISITOR), "c"));
        let mut note = message(CONV, 4, Author::Agent(OTHER), "");
        note.body = Body::Note("a note answers nobody".into());
        model.message(&note);
        model.message(&message(CONV, 5, Author::Visitor(VISITOR), "d"));
        assert_eq!(model.conversation(CONV).unwrap().unread(), 2);
        assert_eq!(model.unread_total(), 2);
        model.select(CONV);
        assert_eq!(model.unread_total(), 0);
        assert_eq!(model.conversation(CONV).unwrap().read(), Seq(5));
    }

    #[test]
    fn someone_elses_chat_is_not_in_the_title() {
        let mut model = Model::new(ME, true);
        model.conversation_update(&update(CONV, 5, Some(OTHER)));
        model.message(&message(CONV, 1, Author::Visitor(VISITOR), "a"));
        assert_eq!(model.conversation(CONV).unwrap().unread(), 1);
        assert_eq!(model.unread_total(), 0);
    }

    #[test]
    fn a_hidden_page_reads_nothing() {
        let mut model = Model::new(ME, false);
        model.conversation_update(&update(CONV, 5, Some(ME)));
        model.message(&message(CONV, 1, Author::Visitor(VISITOR), "a"));
        assert_eq!(model.unread_total(), 1);
        model.set_visible(true);
        assert_eq!(model.unread_total(), 0);
    }

    #[test]
    fn own_messages_keep_their_row_and_land_in_seq_order() {
        let mut model = Model::new(ME, true);
        model.conversation_update(&update(CONV, 5, Some(ME)));
        model.queue(CONV, ClientMessageId(9), &Body::Text("mine".into()), Timestamp(1));
        model.message(&message(CONV, 1, Author::Visitor(VISITOR), "theirs"));
        assert_eq!(texts(&model, CONV), ["theirs", "mine"]);
        let mut echo = message(CONV, 2, Author::Agent(ME), "mine");
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
        model.message(&message(CONV, 2, Author::Agent(ME), "mine"));
        assert_eq!(texts(&model, CONV).len(), 2);
    }

    #[test]
    fn notes_and_system_lines_are_kept_apart_from_messages() {
        let mut model = Model::new(ME, true);
        model.conversation_update(&update(CONV, 5, Some(ME)));
        let mut event = message(CONV, 1, Author::System, "");
        let ann = AgentRef { id: ME, name: "Ann".into() };
        let bob = AgentRef { id: OTHER, name: "Bob".into() };
        event.body = Body::Event(ConversationEvent::Transferred { from: ann.clone(), to: bob });
        model.message(&event);
        model.queue(CONV, ClientMessageId(1), &Body::Note("VIP".into()), Timestamp(3));
        let lines = model.conversation(CONV).unwrap().lines();
        assert_eq!((lines[0].kind, lines[0].text.as_str()), (Kind::System, "Ann transferred the chat to Bob"));
        assert_eq!((lines[1].kind, lines[1].sender), (Kind::Note, Sender::Agent(ME)));
        assert_eq!(
            system_text(&ConversationEvent::Assigned { to: ann.clone(), by: Some(ann.clone()) }),
            "Ann took the chat"
        );
        assert_eq!(system_text(&ConversationEvent::Assigned { to: ann.clone(), by: None }), "Assigned to Ann");
        assert_eq!(system_text(&ConversationEvent::Closed { by: ann }), "Closed by Ann");
    }

    #[test]
    fn earlier_pages_merge_in_seq_order_and_say_when_more_exist() {
        let mut model = Model::new(ME, true);
        model.conversation_update(&update(CONV, 5, Some(ME)));
        model.history(
            CONV,
            &[message(CONV, 4, Author::Visitor(VISITOR), "d"), message(CONV, 5, Author::Visitor(VISITOR), "e")],
        );
        assert!(model.conversation(CONV).unwrap().has_earlier());
        model.history(
            CONV,
            &[
                message(CONV, 1, Author::Visitor(VISITOR), "a"),
                message(CONV, 2, Author::Agent(ME), "b"),
                message(CONV, 3, Author::Visitor(VISITOR), "c"),
            ],
        );
        model.message(&message(CONV, 5, Author::Visitor(VISITOR), "e"));
        assert_eq!(texts(&model, CONV), ["a", "b", "c", "d", "e"]);
        let conversation = model.conversation(CONV).unwrap();
        assert!(!conversation.has_earlier());
        // c, d and e are one run: only e shows its time.
        assert!(!conversation.continued(LineKey::Seq(Seq(2))));
        assert!(conversation.continued(LineKey::Seq(Seq(3))));
        assert!(!conversation.continued(LineKey::Seq(Seq(5))));
    }

    #[test]
    fn news_is_a_live_visitor_message_off_screen_in_my_chats_or_the_queue() {
        let mut model = Model::new(ME, true);
        model.welcome(Timestamp(1_002));
        model.conversation_update(&update(ConversationId(1), 10, Some(ME)));
        model.conversation_update(&update(CONV, 5, None));
        // History from before the console came up is not news.
        assert_eq!(model.message(&message(CONV, 1, Author::Visitor(VISITOR), "old")), None);
        let news = model.message(&message(CONV, 2, Author::Visitor(VISITOR), "new")).unwrap();
        assert_eq!(news.title, "New message from Visitor #3");
        // On screen: no news.
        model.select(CONV);
        assert_eq!(model.message(&message(CONV, 3, Author::Visitor(VISITOR), "seen")), None);
        // Someone else's chat: not this agent's news.
        model.conversation_update(&update(ConversationId(9), 5, Some(OTHER)));
        assert_eq!(model.message(&message(ConversationId(9), 4, Author::Visitor(VISITOR), "x")), None);
    }

    #[test]
    fn tabs_keep_several_chats_and_drop_the_stalest() {
        let mut model = Model::new(ME, true);
        for id in 1..=(MAX_TABS as u64 + 1) {
            model.conversation_update(&update(ConversationId(id), id, Some(OTHER)));
            model.select(ConversationId(id));
        }
        assert_eq!(model.tabs().len(), MAX_TABS);
        assert!(!model.tabs().contains(&ConversationId(1)));
        model.close_tab(ConversationId(MAX_TABS as u64 + 1));
        assert_eq!(model.selected(), Some(ConversationId(MAX_TABS as u64)));
    }

    #[test]
    fn typing_runs_out_and_a_message_ends_it() {
        let mut model = Model::new(ME, true);
        model.conversation_update(&update(CONV, 5, Some(ME)));
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
        let mut model = Model::new(ME, true);
        model.link(LinkState::Connecting);
        assert_eq!(model.banner(), Some("Connecting…"));
        model.link(LinkState::Live);
        assert_eq!(model.banner(), None);
        model.link(LinkState::Waiting { attempt: 1, retry_at: Millis(5) });
        assert_eq!(model.banner(), Some("Reconnecting…"));
    }
}
