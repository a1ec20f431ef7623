//! Arbitrary bytes through the frame decoder; see `kefu_fuzz::decode`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kefu_fuzz::decode::check_bytes(data));
