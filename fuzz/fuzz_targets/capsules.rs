//! Fuzz target: see `wtchat_fuzz::capsules`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wtchat_fuzz::capsules(data));
