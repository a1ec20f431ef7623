//! Deadlines on silence: "give the link up if nothing is heard by then".
//!
//! The same shape serves the heartbeat (refreshed by every frame) and the
//! handshake (never refreshed: Welcome must come within the window).

use super::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline {
    window_ms: u64,
    last_heard: Millis,
}

impl Deadline {
    pub(crate) fn new(window_ms: u64, now: Millis) -> Deadline {
        Deadline { window_ms, last_heard: now }
    }

    pub(crate) fn heard(&mut self, now: Millis) {
        // Hosts promise a monotonic clock; if one steps back anyway, keep
        // the later instant rather than extend the link's life into the past.
        self.last_heard = self.last_heard.max(now);
    }

    pub(crate) fn expires_at(&self) -> Millis {
        self.last_heard.add_ms(self.window_ms)
    }

    /// Silence has lasted the whole window.
    pub(crate) fn expired(&self, now: Millis) -> bool {
        now >= self.expires_at()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_after_a_window_of_silence() {
        let deadline = Deadline::new(30_000, Millis(1_000));
        assert_eq!(deadline.expires_at(), Millis(31_000));
        assert!(!deadline.expired(Millis(30_999)));
        assert!(deadline.expired(Millis(31_000)));
    }

    #[test]
    fn hearing_something_pushes_it_back() {
        let mut deadline = Deadline::new(30_000, Millis(0));
        deadline.heard(Millis(20_000));
        assert!(!deadline.expired(Millis(40_000)));
        assert!(deadline.expired(Millis(50_000)));
    }

    #[test]
    fn a_clock_stepping_back_does_not_move_it_earlier() {
        let mut deadline = Deadline::new(10, Millis(100));
        deadline.heard(Millis(50));
        assert_eq!(deadline.expires_at(), Millis(110));
    }

    #[test]
    fn the_far_future_saturates() {
        let deadline = Deadline::new(u64::MAX, Millis(5));
        assert_eq!(deadline.expires_at(), Millis(u64::MAX));
    }
}
