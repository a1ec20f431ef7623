//! What the agent sees, as plain data: the conversations with their
//! messages, notes and system lines, who handles each, who the visitors
//! are, who is typing, what is unread, the team, which conversations are
//! open in tabs, and the link.
//!
//! The connection feeds it the session's events and the HTTP pages; the
//! components only read it. Nothing here touches the browser, so it is
//! tested on the host.

//!
//! # Layout
//!
//! - [`conversation`]: one conversation and its lines.
//! - [`messages`]: what arrives for the conversations (updates, messages,
//!   history, sends and their answers, receipts, typing, visitors).
//! - [`lists`]: the folders of the left column.
//! - [`tabs`]: the tabs, the one on screen, and what counts as read.
//! - here: the [`Model`] itself, the link, the team and the toasts.

use std::collections::{BTreeMap, BTreeSet};

use kefu_protocol::frame::{AgentStatus, TeamMember, VisitorProfile};
use kefu_protocol::ids::{AgentId, ConversationId, Timestamp, VisitorId};
use kefu_protocol::session::LinkState;

pub mod conversation;
pub mod lists;
pub mod messages;
pub mod tabs;
#[cfg(test)]
mod tests;

pub use conversation::{Conversation, Kind, Line, LineKey, Sender, VisitorTyping, system_text};
pub use lists::{Folder, OPEN_FIRST_PAGE};
pub use messages::{News, TYPING_TIMEOUT_MS};
pub use tabs::MAX_TABS;

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
    /// Where the open folders' next page starts: the oldest open
    /// conversation the relay told of or a page brought.
    open_before: Option<lists::PageKey>,
    /// The open conversations the relay told of, listed or live.
    open_told: BTreeSet<ConversationId>,
    /// Whether the last open page was full; `None` before the first.
    open_more: Option<bool>,
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
            open_before: None,
            open_told: BTreeSet::new(),
            open_more: None,
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
