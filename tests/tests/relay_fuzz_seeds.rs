//! The `relay_frames` fuzz target's seeds, replayed on the stable toolchain
//! through the target's own harness (`fuzz/src/relay.rs`, included below):
//! a real relay in this process, one WebSocket per seed, and every check
//! the fuzzer makes. CI runs them without cargo-fuzz or nightly, as
//! `protocol/tests/fuzz_corpus.rs` does for `decode_frame`.
//!
//! The seeds are committed in `fuzz/seeds/relay_frames`. Each starts with
//! the two bytes that pick the pool visitor and the opening (a known
//! visitor, the admin agent, a new visitor, a refused hello, a frame before
//! the hello, text, raw bytes), so every opening is covered, followed by
//! bytes from a fixed generator that the harness reads as frames. After a
//! change to the harness, rewrite them with
//! `cargo test -p kefu-tests --test relay_fuzz_seeds -- --ignored`.

#[path = "../../fuzz/src/relay.rs"]
#[allow(dead_code, unreachable_pub)]
mod relay;

use std::fs;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Committed corpora stay small: the fuzzer grows its own in `fuzz/corpus`.
const MAX_CORPUS_BYTES: u64 = 64 * 1024;

/// The opening byte (read modulo 32) of each kind the harness knows.
const OPENINGS: [(&str, u8); 9] = [
    ("visitor", 0),
    ("visitor-resuming", 9),
    ("agent", 18),
    ("agent-following", 22),
    ("new-visitor", 26),
    ("refused-hello", 27),
    ("frame-before-hello", 29),
    ("text", 30),
    ("raw-bytes", 31),
];

/// Tails per opening, and their lengths: short scripts and long ones.
const TAIL_LENGTHS: [usize; 3] = [16, 96, 400];

fn seed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/relay_frames")
}

#[test]
fn every_committed_seed_passes_the_relay_checks() {
    // libFuzzer turns a panic on any thread into a crash; here a panic in
    // one of the relay's tasks would only end that task, so it is noted.
    static RELAY_PANICKED: AtomicBool = AtomicBool::new(false);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        RELAY_PANICKED.store(true, Ordering::SeqCst);
        default_hook(info);
    }));

    let mut entries: Vec<_> = fs::read_dir(seed_dir())
        .expect("fuzz/seeds/relay_frames exists")
        .map(|entry| entry.expect("a readable entry").path())
        .collect();
    entries.sort();
    assert!(entries.len() >= seeds().len(), "{} seeds committed, {} defined", entries.len(), seeds().len());
    let mut total = 0;
    for path in &entries {
        let bytes = fs::read(path).expect("a readable seed");
        total += bytes.len() as u64;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| relay::run_input(&bytes)));
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        assert!(outcome.is_ok(), "seed {name} failed the harness's checks (see the panic above)");
        assert!(!RELAY_PANICKED.load(Ordering::SeqCst), "a relay task panicked during seed {name}");
    }
    assert!(total <= MAX_CORPUS_BYTES, "the committed corpus is {total} bytes");
}

#[test]
fn the_committed_seeds_are_the_generated_ones() {
    for (name, bytes) in seeds() {
        let committed = fs::read(seed_dir().join(&name)).unwrap_or_default();
        assert!(
            committed == bytes,
            "{name} is missing or stale; rewrite the seeds with \
             `cargo test -p kefu-tests --test relay_fuzz_seeds -- --ignored`"
        );
    }
}

#[test]
#[ignore = "writes fuzz/seeds/relay_frames; run after a change to the harness"]
fn write_the_seeds() {
    let dir = seed_dir();
    fs::create_dir_all(&dir).expect("the seed folder");
    for (name, bytes) in seeds() {
        fs::write(dir.join(name), bytes).expect("a written seed");
    }
}

/// Every seed by file name: `<opening>-<pool visitor>-<tail length>`.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut state = 0x6b65_6675_u64;
    for (pool_visitor, (opening, selector)) in (0u8..).zip(OPENINGS) {
        for length in TAIL_LENGTHS {
            let mut bytes = vec![pool_visitor % 4, selector];
            bytes.extend((0..length).map(|_| next_byte(&mut state)));
            seeds.push((format!("{opening}-{}-{length}", pool_visitor % 4), bytes));
        }
    }
    seeds
}

/// A fixed xorshift: the same bytes on every machine and run.
fn next_byte(state: &mut u64) -> u8 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    state.to_le_bytes()[0]
}
