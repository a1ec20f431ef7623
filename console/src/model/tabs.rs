//! Which conversations are open in tabs, which one is on screen, and
//! what therefore counts as read.

use kefu_protocol::ids::{ConversationId, Seq};

use super::{Conversation, Model};

/// At most this many conversations are open in tabs; opening another
/// closes the one looked at least recently.
pub const MAX_TABS: usize = 6;

impl Model {
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
    pub(super) fn see(&mut self) {
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
}
