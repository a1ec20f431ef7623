//! Messages sent but not yet acknowledged by the relay.
//!
//! An entry leaves only when the relay answers for its `client_id`
//! (`Accepted` or `Rejected`); a dropped link removes nothing, so every
//! entry is resent on the next link until the relay has it. Resending is
//! safe because the relay stores a `client_id` once.

use crate::frame::{Body, Send};
use crate::ids::{ClientMessageId, ConversationId};

use super::Millis;

/// A message waiting for the relay's acknowledgement; the UI shows it as
/// "sending".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The id the relay will answer with; it stays the same on every resend.
    pub client_id: ClientMessageId,
    /// Where the message goes.
    pub conversation: ConversationId,
    /// What it says.
    pub body: Body,
    /// When the user sent it, on the host's clock.
    pub queued_at: Millis,
}

impl Pending {
    /// The frame that (re)sends it.
    pub fn to_send(&self) -> Send {
        Send { conversation: self.conversation, client_id: self.client_id, body: self.body.clone() }
    }
}

/// Oldest first: resends keep the order the user typed in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outbox {
    entries: Vec<Pending>,
}

impl Outbox {
    /// Adds an entry at the end; refuses one whose id is already queued, so
    /// no message is ever queued (and then shown) twice.
    pub(crate) fn push(&mut self, pending: Pending) -> bool {
        if self.contains(pending.client_id) {
            return false;
        }
        self.entries.push(pending);
        true
    }

    pub(crate) fn contains(&self, client_id: ClientMessageId) -> bool {
        self.entries.iter().any(|p| p.client_id == client_id)
    }

    pub(crate) fn remove(&mut self, client_id: ClientMessageId) -> Option<Pending> {
        let index = self.entries.iter().position(|p| p.client_id == client_id)?;
        Some(self.entries.remove(index))
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Pending> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: u128) -> Pending {
        Pending {
            client_id: ClientMessageId(id),
            conversation: ConversationId(1),
            body: Body::Text(format!("m{id}")),
            queued_at: Millis(0),
        }
    }

    fn ids(outbox: &Outbox) -> Vec<u128> {
        outbox.iter().map(|p| p.client_id.0).collect()
    }

    #[test]
    fn keeps_order_and_removes_from_anywhere() {
        let mut outbox = Outbox::default();
        for id in 1..=4 {
            assert!(outbox.push(pending(id)));
        }
        assert_eq!(outbox.remove(ClientMessageId(2)), Some(pending(2)));
        assert_eq!(ids(&outbox), [1, 3, 4]);
        assert!(outbox.push(pending(5)));
        assert_eq!(ids(&outbox), [1, 3, 4, 5]);
    }

    #[test]
    fn removing_an_unknown_id_changes_nothing() {
        let mut outbox = Outbox::default();
        outbox.push(pending(1));
        assert_eq!(outbox.remove(ClientMessageId(9)), None);
        assert_eq!(outbox.remove(ClientMessageId(1)), Some(pending(1)));
        assert_eq!(outbox.remove(ClientMessageId(1)), None);
        assert!(outbox.iter().next().is_none());
    }

    #[test]
    fn an_id_is_queued_once() {
        let mut outbox = Outbox::default();
        assert!(outbox.push(pending(1)));
        assert!(!outbox.push(pending(1)));
        assert_eq!(ids(&outbox), [1]);
        assert!(outbox.contains(ClientMessageId(1)));
    }

    #[test]
    fn the_resend_frame_carries_the_original_id() {
        let send = pending(7).to_send();
        assert_eq!(send.client_id, ClientMessageId(7));
        assert_eq!(send.conversation, ConversationId(1));
        assert_eq!(send.body, Body::Text("m7".into()));
    }
}
