//! The left column's folders: the queue, this agent's chats, every open
//! one, and the closed ones paged in from the HTTP API.
//!
//! The relay lists only the [`OPEN_FIRST_PAGE`] most recently active open
//! conversations when the console connects, and announces every change
//! after that. The rest of the open ones are paged in over HTTP too, from
//! just past the oldest the console was told of: anything older that
//! changed since was announced with its new time, so no page misses one.

use kefu_protocol::frame::ConversationStatus;
use kefu_protocol::ids::{ConversationId, Seq, Timestamp, VisitorId};

use super::{Conversation, Line, Model};
use crate::api::ConversationSummary;

/// How many open conversations the relay lists when the console connects
/// (the relay's `AGENT_FIRST_PAGE`): holding that many, the console offers
/// to page in older ones.
pub const OPEN_FIRST_PAGE: usize = 100;

/// A conversation's place in the relay's pages, newest first.
pub type PageKey = (Timestamp, ConversationId);

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

    pub fn is_open(self) -> bool {
        self != Folder::Closed
    }
}

impl Model {
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
            merge_summary(conversation, summary);
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
    pub fn closed_before(&self) -> Option<PageKey> {
        if !self.closed_fetched {
            return None;
        }
        self.closed.iter().filter_map(|id| self.conversations.get(id)).map(|c| (c.updated_at, c.id)).min()
    }

    pub fn closed_more(&self) -> bool {
        self.closed_more
    }

    /// The relay told of an open conversation, listed or live: the open
    /// folders' next page starts past the oldest of these.
    pub(super) fn saw_open(&mut self, key: PageKey) {
        self.open_told.insert(key.1);
        self.open_before = Some(self.open_before.map_or(key, |before| before.min(key)));
    }

    /// A page of open conversations from the HTTP API, older than any the
    /// relay told of.
    pub fn open_page(&mut self, page: &[ConversationSummary], limit: usize) {
        for summary in page.iter().filter(|s| s.status == "open") {
            let conversation =
                self.conversations.entry(summary.id).or_insert_with(|| Conversation::new(summary.id, summary.visitor));
            // A live update since is newer than the page: it wins.
            if summary.updated_at >= conversation.updated_at {
                conversation.status = ConversationStatus::Open;
                conversation.assignee = summary.assignee;
                conversation.waiting_since = summary.waiting_since;
                self.closed.retain(|id| *id != summary.id);
            }
            merge_summary(conversation, summary);
            let key = (summary.updated_at, summary.id);
            self.open_before = Some(self.open_before.map_or(key, |before| before.min(key)));
        }
        self.open_more = Some(page.len() >= limit);
    }

    /// Where the open folders' next page starts.
    pub fn open_before(&self) -> Option<PageKey> {
        self.open_before
    }

    /// The relay may hold open conversations older than those shown: it
    /// listed a full first page, or the last page was full.
    pub fn open_more(&self) -> bool {
        self.open_more.unwrap_or(self.open_told.len() >= OPEN_FIRST_PAGE)
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
}

/// What a page says of a conversation that only grows: its last activity,
/// its last seq, the visitor's name, its newest message.
fn merge_summary(conversation: &mut Conversation, summary: &ConversationSummary) {
    if let Some(message) = &summary.last_message
        && conversation.listed_last.as_ref().is_none_or(|listed| listed.seq < Some(message.seq))
    {
        conversation.listed_last = Some(Line::stored(message));
    }
    conversation.updated_at = conversation.updated_at.max(summary.updated_at);
    conversation.last_seq = conversation.last_seq.max(summary.last_seq);
    if conversation.visitor_name.is_none() {
        conversation.visitor_name.clone_from(&summary.visitor_name);
    }
}
