//! Kefu's fuzz targets, as library code so a corpus can be replayed
//! without libFuzzer.
//!
//! # Layout
//!
//! - [`decode`]: the checks of `decode_frame`, arbitrary bytes through the
//!   codec. `protocol/tests/fuzz_corpus.rs` runs the committed seeds
//!   (`seeds/decode_frame`) through the same file on stable.
//! - [`relay`]: the `relay_frames` harness: one relay per process, each
//!   input a connection that says hello and sends a sequence of frames.

pub mod decode;
pub mod relay;
