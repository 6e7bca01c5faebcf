//! The signature a delivery carries, so that its receiver knows it came
//! from this server and is fresh.
//!
//! The header reads `t=<unix seconds>,v1=<hex HMAC-SHA256>`, the MAC taken
//! with the shared secret over `<t>.<body>`. A receiver recomputes it,
//! compares in constant time, and refuses a `t` too far from its clock,
//! which defeats a replay of an old delivery. A retry is signed afresh.

use ring::hmac;

/// The header that carries the signature.
pub const HEADER: &str = "wtchat-signature";

/// Signs `body` as sent at `unix_seconds`: the header's value.
pub fn sign(secret: &[u8], unix_seconds: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, &signed_bytes(unix_seconds, body));
    format!("t={unix_seconds},v1={}", hex(tag.as_ref()))
}

/// Checks a header's value against `body`: whether it is well formed,
/// signed with `secret`, and no more than `tolerance_seconds` away from
/// `now_seconds`. What a receiver does; the tests receive like one.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now_seconds: u64, tolerance_seconds: u64) -> bool {
    let mut time = None;
    let mut mac = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => time = value.parse::<u64>().ok(),
            Some(("v1", value)) => mac = unhex(value),
            _ => {}
        }
    }
    let (Some(time), Some(mac)) = (time, mac) else { return false };
    if time.abs_diff(now_seconds) > tolerance_seconds {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, &signed_bytes(time, body), &mac).is_ok()
}

fn signed_bytes(unix_seconds: u64, body: &[u8]) -> Vec<u8> {
    let mut signed = format!("{unix_seconds}.").into_bytes();
    signed.extend_from_slice(body);
    signed
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_secret_body_and_time() {
        let header = sign(b"a secret of 16 bytes", 1_000, b"{\"events\":[]}");
        assert!(verify(b"a secret of 16 bytes", &header, b"{\"events\":[]}", 1_100, 300));
        assert!(!verify(b"another secret....", &header, b"{\"events\":[]}", 1_100, 300), "wrong secret");
        assert!(!verify(b"a secret of 16 bytes", &header, b"{\"events\":[1]}", 1_100, 300), "changed body");
        assert!(!verify(b"a secret of 16 bytes", &header, b"{\"events\":[]}", 2_000, 300), "a replay, later");
        let moved = header.replace("t=1000", "t=1900");
        assert!(
            !verify(b"a secret of 16 bytes", &moved, b"{\"events\":[]}", 2_000, 300),
            "a re-dated replay"
        );
        assert!(!verify(b"a secret of 16 bytes", "t=1000", b"", 1_000, 300), "no MAC");
        assert!(!verify(b"a secret of 16 bytes", "v1=zz,t=1000", b"", 1_000, 300), "not hex");
    }

    #[test]
    fn the_mac_is_hmac_sha256_over_the_time_a_dot_and_the_body() {
        // Computed apart from this code (Python's `hmac` module), as a
        // receiver in another language would.
        assert_eq!(
            sign(b"Jefe", 7, b"what do ya want for nothing?"),
            "t=7,v1=239f4b39fd23f4376db46b239fae471e7c6824b3931bc60f4c0b745bef8de34f"
        );
    }
}
