//! Fuzz target: see `wtchat_fuzz::h3_settings`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wtchat_fuzz::h3_settings(data));
