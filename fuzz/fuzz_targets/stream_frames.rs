//! Fuzz target: see `wtchat_fuzz::stream_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wtchat_fuzz::stream_frames(data));
