//! The left column's folders: the queue, this agent's chats, every open
//! one, and the closed ones paged in from the HTTP API.

use kefu_protocol::frame::ConversationStatus;
use kefu_protocol::ids::{ConversationId, Seq, Timestamp, VisitorId};

use super::{Conversation, Model};
use crate::api::ConversationSummary;

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
}
