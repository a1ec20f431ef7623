//! When the composer tells agents that the visitor is typing: at most about
//! once a second while the draft changes (with the draft, so agents see it
//! coming), and "stopped" after a few idle seconds or on send.

use kefu_protocol::session::Millis;

/// At most one "typing" per this long.
pub const TYPING_EVERY_MS: u64 = 1_000;
/// "Stopped typing" after this long without a keystroke.
pub const IDLE_AFTER_MS: u64 = 3_000;

/// What to do about a change of the draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send `typing(active = true, draft)` now.
    Send,
    /// Sent too recently: check again at this time, with the draft then.
    RetryAt(Millis),
    /// The draft is empty: send `typing(active = false)`.
    Stop,
    /// Nothing to tell.
    Nothing,
}

/// The composer's typing state.
///
/// Its timers are never cancelled, only checked when they fire: each one
/// is a fresh browser callback, and a cancelled one would never be freed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Throttle {
    last_sent: Option<Millis>,
    last_input: Millis,
    active: bool,
}

impl Throttle {
    /// The draft changed (or a retry came due). `empty` is whether the
    /// draft is blank now.
    pub fn changed(&mut self, now: Millis, empty: bool) -> Step {
        self.last_input = self.last_input.max(now);
        if empty {
            return if self.stop() { Step::Stop } else { Step::Nothing };
        }
        match self.last_sent {
            Some(last) if now.since(last) < TYPING_EVERY_MS => Step::RetryAt(last.add_ms(TYPING_EVERY_MS)),
            _ => {
                self.last_sent = Some(now);
                self.active = true;
                Step::Send
            }
        }
    }

    /// The idle check came due: `Ok(true)` to send "stopped" now,
    /// `Ok(false)` if there is nothing to stop, `Err(at)` to check again
    /// then because a key was pressed meanwhile.
    pub fn idle(&mut self, now: Millis) -> Result<bool, Millis> {
        let due = self.last_input.add_ms(IDLE_AFTER_MS);
        if now < due && self.active { Err(due) } else { Ok(self.stop()) }
    }

    /// The visitor sent the message or stayed idle: whether a "stopped"
    /// must go out.
    pub fn stop(&mut self) -> bool {
        let was = self.active;
        self.active = false;
        self.last_sent = None;
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_is_sent_at_most_once_a_second() {
        let mut throttle = Throttle::default();
        assert_eq!(throttle.changed(Millis(0), false), Step::Send);
        assert_eq!(throttle.changed(Millis(300), false), Step::RetryAt(Millis(1_000)));
        assert_eq!(throttle.changed(Millis(999), false), Step::RetryAt(Millis(1_000)));
        assert_eq!(throttle.changed(Millis(1_000), false), Step::Send);
        assert_eq!(throttle.changed(Millis(1_500), false), Step::RetryAt(Millis(2_000)));
    }

    #[test]
    fn idle_means_three_seconds_since_the_last_key() {
        let mut throttle = Throttle::default();
        assert_eq!(throttle.idle(Millis(0)), Ok(false), "nothing to stop");
        throttle.changed(Millis(0), false);
        throttle.changed(Millis(2_000), false);
        assert_eq!(throttle.idle(Millis(3_000)), Err(Millis(5_000)));
        assert_eq!(throttle.idle(Millis(5_000)), Ok(true));
        assert_eq!(throttle.idle(Millis(9_000)), Ok(false), "said once");
    }

    #[test]
    fn stopping_is_said_once_and_only_after_typing() {
        let mut throttle = Throttle::default();
        assert!(!throttle.stop(), "never typed");
        assert_eq!(throttle.changed(Millis(0), true), Step::Nothing);
        assert_eq!(throttle.changed(Millis(0), false), Step::Send);
        assert_eq!(throttle.changed(Millis(10), true), Step::Stop, "cleared the draft");
        assert!(!throttle.stop());
        assert_eq!(throttle.changed(Millis(20), false), Step::Send, "a new burst is not throttled");
        assert!(throttle.stop());
        assert!(!throttle.stop());
    }
}
