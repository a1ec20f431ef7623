//! How long to wait before the next reconnect: exponential backoff with
//! full jitter.
//!
//! Full jitter (a uniform draw from zero up to the exponential ceiling)
//! spreads the clients of a restarted relay over the whole window, so they
//! do not come back in synchronized waves.

use super::rng::Rng;

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    /// Reconnects scheduled since the last reset.
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(initial_ms: u64, max_ms: u64) -> Backoff {
        Backoff { initial_ms, max_ms, attempt: 0 }
    }

    /// The delay before the next reconnect, and one more attempt counted.
    pub(crate) fn next_delay(&mut self, rng: &mut Rng) -> u64 {
        let delay = rng.up_to(self.ceiling());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// `min(max, initial * 2^attempt)`, without overflowing however many
    /// attempts a week offline adds up to.
    pub(crate) fn ceiling(&self) -> u64 {
        let factor = 1u64.checked_shl(self.attempt).unwrap_or(u64::MAX);
        self.initial_ms.saturating_mul(factor).min(self.max_ms)
    }

    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_max() {
        let mut backoff = Backoff::new(500, 20_000);
        let mut rng = Rng::new(1);
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            ceilings.push(backoff.ceiling());
            backoff.next_delay(&mut rng);
        }
        assert_eq!(ceilings, [500, 1_000, 2_000, 4_000, 8_000, 16_000, 20_000, 20_000]);
        assert_eq!(backoff.attempt(), 8);
    }

    #[test]
    fn delays_stay_under_the_ceiling_and_use_all_of_it() {
        let mut rng = Rng::new(2);
        let mut highest = 0;
        let mut lowest = u64::MAX;
        for _ in 0..2_000 {
            let mut backoff = Backoff::new(500, 20_000);
            let delay = backoff.next_delay(&mut rng);
            assert!(delay <= 500);
            highest = highest.max(delay);
            lowest = lowest.min(delay);
        }
        // Full jitter: the draws cover the window, not just its top.
        assert!(lowest < 25 && highest > 475, "{lowest}..{highest}");
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new(500, 20_000);
        let mut rng = Rng::new(3);
        for _ in 0..5 {
            backoff.next_delay(&mut rng);
        }
        backoff.reset();
        assert_eq!(backoff.attempt(), 0);
        assert_eq!(backoff.ceiling(), 500);
    }

    #[test]
    fn many_attempts_do_not_overflow() {
        let mut backoff = Backoff::new(500, 20_000);
        backoff.attempt = u32::MAX - 1;
        let mut rng = Rng::new(4);
        assert!(backoff.next_delay(&mut rng) <= 20_000);
        assert!(backoff.next_delay(&mut rng) <= 20_000);
        assert_eq!(backoff.attempt(), u32::MAX);
        assert_eq!(backoff.ceiling(), 20_000);
    }

    #[test]
    fn same_seed_same_schedule() {
        let schedule = |seed| {
            let mut backoff = Backoff::new(500, 20_000);
            let mut rng = Rng::new(seed);
            (0..10).map(|_| backoff.next_delay(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(schedule(9), schedule(9));
        assert_ne!(schedule(9), schedule(10));
    }
}
