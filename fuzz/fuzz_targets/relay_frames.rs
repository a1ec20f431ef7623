//! Frame sequences through one live relay; see `kefu_fuzz::relay`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kefu_fuzz::relay::run_input(data));
