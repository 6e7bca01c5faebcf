//! Fuzz target: see `wtchat_fuzz::client_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wtchat_fuzz::client_frame(data));
