//! A small seeded random generator: SplitMix64.
//!
//! The session needs randomness for backoff jitter and for client message
//! ids, but wasm has no OS entropy without web-sys, and tests need the same
//! numbers on every run. So the host seeds it: production hosts with real
//! entropy, tests with a constant.

/// SplitMix64 (Steele, Lea and Flood, 2014): one 64-bit word of state,
/// passes BigCrush, and every seed is a good seed (unlike xorshift, which
/// must avoid zero).
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose outputs are fully determined by `seed`.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn next_u128(&mut self) -> u128 {
        let high = u128::from(self.next_u64());
        let low = u128::from(self.next_u64());
        (high << 64) | low
    }

    /// Uniform in `0..=max`.
    ///
    /// `next_u64() % (max + 1)` would favour small values whenever `max + 1`
    /// does not divide 2^64, so draws from the incomplete last stretch are
    /// rejected; fewer than half are, so the loop ends quickly.
    pub(crate) fn up_to(&mut self, max: u64) -> u64 {
        let Some(span) = max.checked_add(1) else {
            return self.next_u64();
        };
        // 2^64 mod span: the size of the incomplete stretch.
        let rejected_below = span.wrapping_neg() % span;
        loop {
            let x = self.next_u64();
            if x >= rejected_below {
                return x % span;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_splitmix64() {
        // The first outputs of the published algorithm for seed 0.
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn same_seed_same_numbers() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u128(), b.next_u128());
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn up_to_stays_in_range_and_reaches_both_ends() {
        let mut rng = Rng::new(7);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let x = rng.up_to(9);
            assert!(x <= 9);
            seen[x as usize] += 1;
        }
        // 1000 expected per value; 800 is more than 6 standard deviations off.
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        assert_eq!(rng.up_to(0), 0);
        let _ = rng.up_to(u64::MAX);
    }
}
