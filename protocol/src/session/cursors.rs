//! Where each followed conversation stands, and when to ask for a replay.
//!
//! The cursor is the last seq held with nothing missing before it. Every
//! message names the seq of the one before it that this client is shown
//! (`prev`: visitors are not shown private notes), so a message continues
//! the cursor exactly when its `prev` is the cursor. Messages
//! are delivered strictly in seq order: a duplicate is dropped, and a
//! message past a hole is dropped too, because asking the relay to replay
//! from the cursor brings it again, in order, with whatever was missing.

use std::collections::BTreeMap;

use crate::frame::Cursor;
use crate::ids::{ConversationId, Seq};

/// What to do with a message that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The next one in order: show it; the cursor has moved to it.
    Deliver,
    /// Already held: drop it.
    Duplicate,
    /// Something before it is missing: drop it. `join_after` is set when a
    /// replay must be asked for; it is not while one is already on its way.
    Gap { join_after: Option<Seq> },
}

#[derive(Debug, Clone, Default)]
struct Track {
    cursor: Seq,
    /// Replays asked for on this link that have not completed yet. While
    /// one is under way a hole is expected to fill, so no new Join is sent.
    replays: u32,
    /// The highest seq dropped past a hole on this link: proof that the
    /// relay has more than the cursor, even if no later message comes.
    missed: Seq,
}

/// Ordered by id so hellos list conversations the same way on every run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cursors {
    tracks: BTreeMap<ConversationId, Track>,
}

impl Cursors {
    /// Starts following a conversation from seq 0; `false` if it already was.
    pub(crate) fn follow(&mut self, conversation: ConversationId) -> bool {
        if self.tracks.contains_key(&conversation) {
            return false;
        }
        self.tracks.insert(conversation, Track::default());
        true
    }

    pub(crate) fn is_followed(&self, conversation: ConversationId) -> bool {
        self.tracks.contains_key(&conversation)
    }

    pub(crate) fn cursor(&self, conversation: ConversationId) -> Seq {
        self.tracks.get(&conversation).map_or(Seq::ZERO, |track| track.cursor)
    }

    /// Judges a message by its seq and the seq of the one before it that
    /// this client is shown (`prev`); one for a conversation not followed
    /// yet starts it at seq 0.
    pub(crate) fn offer(&mut self, conversation: ConversationId, prev: Seq, seq: Seq) -> Arrival {
        let track = self.tracks.entry(conversation).or_default();
        if seq <= track.cursor {
            Arrival::Duplicate
        } else if prev == track.cursor {
            track.cursor = seq;
            Arrival::Deliver
        } else {
            track.missed = track.missed.max(seq);
            if track.replays > 0 {
                Arrival::Gap { join_after: None }
            } else {
                track.replays = 1;
                Arrival::Gap { join_after: Some(track.cursor) }
            }
        }
    }

    /// A Join for the conversation went out; its replay is on the way.
    pub(crate) fn expect_replay(&mut self, conversation: ConversationId) {
        let track = self.tracks.entry(conversation).or_default();
        track.replays = track.replays.saturating_add(1);
    }

    /// A replay ended. Returns `Some(after)` when a message was seen past a
    /// hole that the replays did not fill, so another Join must go out.
    pub(crate) fn replay_complete(&mut self, conversation: ConversationId) -> Option<Seq> {
        let track = self.tracks.get_mut(&conversation)?;
        track.replays = track.replays.saturating_sub(1);
        if track.replays == 0 && track.missed > track.cursor {
            track.replays = 1;
            Some(track.cursor)
        } else {
            None
        }
    }

    /// The link dropped: replays asked for on it will never complete, and
    /// the next hello's resume asks for everything after the cursors anyway.
    pub(crate) fn new_link(&mut self) {
        for track in self.tracks.values_mut() {
            track.replays = 0;
            track.missed = Seq::ZERO;
        }
    }

    /// The hello's resume list: every followed conversation with its cursor.
    /// The relay replays each one, so each now awaits a replay.
    pub(crate) fn resume(&mut self) -> Vec<Cursor> {
        self.tracks
            .iter_mut()
            .map(|(&conversation, track)| {
                track.replays = track.replays.saturating_add(1);
                Cursor { conversation, seq: track.cursor }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seq before `seq`: what agents are sent as `prev`.
    fn prev(seq: Seq) -> Seq {
        Seq(seq.0.saturating_sub(1))
    }

    const C: ConversationId = ConversationId(1);

    fn deliver_up_to(cursors: &mut Cursors, n: u64) {
        for seq in 1..=n {
            assert_eq!(cursors.offer(C, prev(Seq(seq)), Seq(seq)), Arrival::Deliver);
        }
    }

    #[test]
    fn in_order_messages_advance_the_cursor() {
        let mut cursors = Cursors::default();
        assert!(cursors.follow(C));
        assert!(!cursors.follow(C));
        deliver_up_to(&mut cursors, 3);
        assert_eq!(cursors.cursor(C), Seq(3));
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut cursors = Cursors::default();
        deliver_up_to(&mut cursors, 3);
        assert_eq!(cursors.offer(C, prev(Seq(3)), Seq(3)), Arrival::Duplicate);
        assert_eq!(cursors.offer(C, prev(Seq(1)), Seq(1)), Arrival::Duplicate);
        assert_eq!(cursors.offer(C, prev(Seq(0)), Seq(0)), Arrival::Duplicate);
        assert_eq!(cursors.cursor(C), Seq(3));
    }

    #[test]
    fn a_gap_asks_for_one_replay_and_the_replay_fills_it() {
        let mut cursors = Cursors::default();
        deliver_up_to(&mut cursors, 2);
        assert_eq!(cursors.offer(C, prev(Seq(5)), Seq(5)), Arrival::Gap { join_after: Some(Seq(2)) });
        // More past the hole while the replay is on its way: no second Join.
        assert_eq!(cursors.offer(C, prev(Seq(6)), Seq(6)), Arrival::Gap { join_after: None });
        for seq in 3..=6 {
            assert_eq!(cursors.offer(C, prev(Seq(seq)), Seq(seq)), Arrival::Deliver);
        }
        assert_eq!(cursors.replay_complete(C), None);
        assert_eq!(cursors.cursor(C), Seq(6));
        // Resynced: the next hole asks again.
        assert_eq!(cursors.offer(C, prev(Seq(8)), Seq(8)), Arrival::Gap { join_after: Some(Seq(6)) });
    }

    #[test]
    fn a_replay_that_leaves_a_known_hole_asks_again() {
        let mut cursors = Cursors::default();
        deliver_up_to(&mut cursors, 1);
        assert_eq!(cursors.offer(C, prev(Seq(4)), Seq(4)), Arrival::Gap { join_after: Some(Seq(1)) });
        assert_eq!(cursors.offer(C, prev(Seq(2)), Seq(2)), Arrival::Deliver);
        assert_eq!(cursors.replay_complete(C), Some(Seq(2)));
        // That second Join is on its way: holes wait for it.
        assert_eq!(cursors.offer(C, prev(Seq(5)), Seq(5)), Arrival::Gap { join_after: None });
    }

    #[test]
    fn overlapping_replays_wait_for_the_last() {
        let mut cursors = Cursors::default();
        cursors.follow(C);
        assert_eq!(cursors.resume().len(), 1);
        cursors.expect_replay(C);
        assert_eq!(cursors.offer(C, prev(Seq(3)), Seq(3)), Arrival::Gap { join_after: None });
        assert_eq!(cursors.replay_complete(C), None);
        assert_eq!(cursors.offer(C, prev(Seq(4)), Seq(4)), Arrival::Gap { join_after: None });
        assert_eq!(cursors.replay_complete(C), Some(Seq(0)));
    }

    #[test]
    fn a_new_link_forgets_replays_in_flight() {
        let mut cursors = Cursors::default();
        deliver_up_to(&mut cursors, 1);
        cursors.offer(C, prev(Seq(3)), Seq(3));
        cursors.new_link();
        assert_eq!(cursors.offer(C, prev(Seq(3)), Seq(3)), Arrival::Gap { join_after: Some(Seq(1)) });
    }

    #[test]
    fn seqs_not_shown_to_this_client_are_no_gap() {
        let mut cursors = Cursors::default();
        deliver_up_to(&mut cursors, 2);
        // 3 and 4 are private notes: 5 follows 2 for a visitor.
        assert_eq!(cursors.offer(C, Seq(2), Seq(5)), Arrival::Deliver);
        assert_eq!(cursors.cursor(C), Seq(5));
        assert_eq!(cursors.offer(C, Seq(2), Seq(5)), Arrival::Duplicate);
        // 7 says 6 came before it, which this client has not seen.
        assert_eq!(cursors.offer(C, Seq(6), Seq(7)), Arrival::Gap { join_after: Some(Seq(5)) });
    }

    #[test]
    fn unknown_conversations_start_at_zero() {
        let mut cursors = Cursors::default();
        assert_eq!(cursors.cursor(C), Seq::ZERO);
        assert!(!cursors.is_followed(C));
        assert_eq!(cursors.offer(C, prev(Seq(1)), Seq(1)), Arrival::Deliver);
        assert!(cursors.is_followed(C));
        assert_eq!(cursors.replay_complete(ConversationId(9)), None);
        assert!(!cursors.is_followed(ConversationId(9)));
    }

    #[test]
    fn resume_lists_every_conversation_in_id_order() {
        let mut cursors = Cursors::default();
        cursors.follow(ConversationId(9));
        cursors.follow(ConversationId(2));
        cursors.offer(ConversationId(2), Seq(0), Seq(1));
        assert_eq!(
            cursors.resume(),
            [
                Cursor { conversation: ConversationId(2), seq: Seq(1) },
                Cursor { conversation: ConversationId(9), seq: Seq(0) },
            ]
        );
    }
}
