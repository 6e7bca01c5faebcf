//! QUIC variable-length integers (RFC 9000, section 16), the unit every
//! HTTP/3 and WebTransport field is built from.

use bytes::{Buf, BufMut};

/// The largest value a variable-length integer holds (2^62 - 1).
pub const MAX: u64 = (1 << 62) - 1;

/// Reads one integer, or `None` if `buf` ends first (nothing is consumed
/// then, so the caller can wait for more bytes and try again).
pub fn read(buf: &mut impl Buf) -> Option<u64> {
    let first = *buf.chunk().first()?;
    let len = 1usize << (first >> 6);
    if buf.remaining() < len {
        return None;
    }
    let value = match len {
        1 => u64::from(buf.get_u8() & 0x3f),
        2 => u64::from(buf.get_u16() & 0x3fff),
        4 => u64::from(buf.get_u32() & 0x3fff_ffff),
        _ => buf.get_u64() & 0x3fff_ffff_ffff_ffff,
    };
    Some(value)
}

/// Reads one integer from the front of a slice: the value and how many bytes
/// it took.
pub fn peek(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut view = bytes;
    let value = read(&mut view)?;
    Some((value, bytes.len() - view.len()))
}

/// How many bytes `value` takes. Values above [`MAX`] are clamped to it:
/// every caller writes counts and codepoints well below.
pub fn size(value: u64) -> usize {
    match value {
        0..=0x3f => 1,
        0x40..=0x3fff => 2,
        0x4000..=0x3fff_ffff => 4,
        _ => 8,
    }
}

/// Writes one integer in its shortest form. Values above [`MAX`] are written
/// as [`MAX`].
pub fn write(buf: &mut impl BufMut, value: u64) {
    let value = value.min(MAX);
    match size(value) {
        1 => buf.put_u8(value as u8),
        2 => buf.put_u16(0x4000 | value as u16),
        4 => buf.put_u32(0x8000_0000 | value as u32),
        _ => buf.put_u64(0xc000_0000_0000_0000 | value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_examples_decode() {
        // RFC 9000, appendix A.1.
        let cases: [(&[u8], u64); 4] = [
            (&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c], 151_288_809_941_952_652),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ];
        for (bytes, value) in cases {
            assert_eq!(peek(bytes), Some((value, bytes.len())));
            let mut out = Vec::new();
            write(&mut out, value);
            assert_eq!(out, bytes);
        }
        // The two-byte form of 37 is valid too.
        assert_eq!(peek(&[0x40, 0x25]), Some((37, 2)));
    }

    #[test]
    fn a_cut_integer_consumes_nothing() {
        let mut view: &[u8] = &[0x9d, 0x7f, 0x3e];
        assert_eq!(read(&mut view), None);
        assert_eq!(view.len(), 3);
        assert_eq!(peek(&[]), None);
    }

    proptest::proptest! {
        #[test]
        fn every_value_round_trips(value in 0..=MAX) {
            let mut out = Vec::new();
            write(&mut out, value);
            proptest::prop_assert_eq!(out.len(), size(value));
            proptest::prop_assert_eq!(peek(&out), Some((value, out.len())));
        }
    }
}
