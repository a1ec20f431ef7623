//! Replay and live fan-out merged: following a conversation, catching
//! up from the store, and passing on what the hub publishes, once and in
//! order (see the parent module).

use std::borrow::Cow;

use kefu_protocol::frame::{Join, Message, ReplayComplete, TypingNotice};
use kefu_protocol::ids::{ConversationId, Seq};
use kefu_protocol::{ServerFrame, compat};

use super::{Connection, End, Peer, Position};
use crate::hub::Published;

/// Messages read from the store per query while replaying.
const REPLAY_PAGE: u32 = 256;

impl Connection {
    /// Follows a conversation from `after`: also how a client repairs a gap.
    pub(super) async fn join(&mut self, join: Join) -> Result<(), End> {
        if self.access(join.conversation).await?.is_none() {
            return self.forbidden(join.conversation).await;
        }
        self.follow(join.conversation, join.after).await
    }

    pub(super) async fn follow(&mut self, conversation: ConversationId, after: Seq) -> Result<(), End> {
        // A cursor past the end (corrupt, or from a forged resume) would
        // hide every new message until the conversation caught up with it:
        // start at the end instead; the replay's `last_seq` says where.
        let after = if after > Seq::ZERO {
            let found =
                self.state.store.conversation(self.peer.site(), conversation).await.map_err(|e| End::store(&e))?;
            found.map_or(Seq::ZERO, |found| after.min(found.last_seq))
        } else {
            after
        };
        // Register first, read second: see the module comment.
        self.mailbox.follow(conversation);
        self.positions.insert(conversation, Position { passed: after, sent: after });
        self.catch_up(conversation, None).await?;
        let last_seq = self.positions.get(&conversation).map_or(after, |position| position.sent);
        self.write(&ServerFrame::ReplayComplete(ReplayComplete { conversation, last_seq })).await?;
        // Marks are not messages and are not replayed with them; the
        // current ones come after, so a reloaded client shows them again.
        let receipts = self.state.store.receipts(self.peer.site(), conversation).await.map_err(|e| End::store(&e))?;
        for receipt in receipts {
            self.write(&ServerFrame::Receipt(receipt)).await?;
        }
        Ok(())
    }

    /// Sends stored messages after the last one sent, up to `until` (or
    /// to the end of the conversation).
    async fn catch_up(&mut self, conversation: ConversationId, until: Option<Seq>) -> Result<(), End> {
        loop {
            let after = self.positions.get(&conversation).map_or(Seq::ZERO, |position| position.passed);
            if until.is_some_and(|until| after >= until) {
                return Ok(());
            }
            let page = self
                .state
                .store
                .messages_after(self.peer.site(), conversation, after, REPLAY_PAGE)
                .await
                .map_err(|e| End::store(&e))?;
            let full = page.len() == REPLAY_PAGE as usize;
            for message in page {
                self.pass_on(message).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Passes on what the hub published, in order and once.
    pub(super) async fn deliver(&mut self, published: &Published) -> Result<(), End> {
        match &*published.frame {
            ServerFrame::Message(message) => self.deliver_message(published, message).await,
            ServerFrame::Typing(TypingNotice { by, .. }) if *by == self.peer.author() => Ok(()),
            _ => self.write_published(published).await,
        }
    }

    async fn deliver_message(&mut self, published: &Published, message: &Message) -> Result<(), End> {
        let Some(position) = self.positions.get(&message.conversation) else {
            return Ok(()); // followed through the site only
        };
        if message.seq <= position.passed {
            return Ok(()); // already sent by replay
        }
        if message.seq > position.passed.next() {
            // Commits of one conversation can be published out of order
            // by different connections; the store has them all.
            return self.catch_up(message.conversation, Some(message.seq)).await;
        }
        match self.advance(message) {
            None => Ok(()),
            // As published, a message says `prev: seq - 1`: what every
            // agent is sent, and a visitor with no note just before it.
            // Those of the current version share the published bytes.
            Some(prev) if prev == message.prev && compat::is_current(&message.body, self.version) => {
                self.write_published(published).await
            }
            Some(prev) => self.pass_on_as(message.clone(), prev).await,
        }
    }

    /// Sends the next message of a conversation, or skips it if this peer
    /// is not shown it.
    async fn pass_on(&mut self, message: Message) -> Result<(), End> {
        let Some(prev) = self.advance(&message) else {
            return Ok(());
        };
        self.pass_on_as(message, prev).await
    }

    /// Sends a message with this peer's `prev`, in a shape its protocol
    /// version can decode.
    async fn pass_on_as(&mut self, mut message: Message, prev: Seq) -> Result<(), End> {
        message.prev = prev;
        if let Cow::Owned(body) = compat::body_for(&message.body, self.version) {
            message.body = body;
        }
        self.write(&ServerFrame::Message(message)).await
    }

    /// Moves this connection's position past the next message of a
    /// conversation; returns its `prev` for this peer, or `None` if this
    /// peer is not shown it.
    fn advance(&mut self, message: &Message) -> Option<Seq> {
        let shown = matches!(self.peer, Peer::Agent { .. }) || message.body.is_for_visitors();
        let position = self.positions.entry(message.conversation).or_default();
        position.passed = message.seq;
        if !shown {
            return None;
        }
        let prev = position.sent;
        position.sent = message.seq;
        Some(prev)
    }
}
