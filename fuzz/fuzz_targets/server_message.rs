//! Fuzz target: see `wtchat_fuzz::server_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wtchat_fuzz::server_message(data));
