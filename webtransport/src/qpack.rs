//! QPACK field sections (RFC 9204) without a dynamic table.
//!
//! The server advertises a dynamic table capacity of 0, so a conforming
//! client encodes every field with the static table, literals and Huffman
//! strings only (RFC 9204, section 3.2.3), and the server keeps no QPACK
//! state per connection. A reference to a dynamic table is refused as a
//! decompression failure. Responses are encoded with static references and
//! plain literals.

use bytes::BufMut;

/// The static table (RFC 9204, appendix A): index, name and value.
const STATIC_TABLE: [(&str, &str); 99] = [
    (":authority", ""),
    (":path", "/"),
    ("age", "0"),
    ("content-disposition", ""),
    ("content-length", "0"),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("referer", ""),
    ("set-cookie", ""),
    (":method", "CONNECT"),
    (":method", "DELETE"),
    (":method", "GET"),
    (":method", "HEAD"),
    (":method", "OPTIONS"),
    (":method", "POST"),
    (":method", "PUT"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "103"),
    (":status", "200"),
    (":status", "304"),
    (":status", "404"),
    (":status", "503"),
    ("accept", "*/*"),
    ("accept", "application/dns-message"),
    ("accept-encoding", "gzip, deflate, br"),
    ("accept-ranges", "bytes"),
    ("access-control-allow-headers", "cache-control"),
    ("access-control-allow-headers", "content-type"),
    ("access-control-allow-origin", "*"),
    ("cache-control", "max-age=0"),
    ("cache-control", "max-age=2592000"),
    ("cache-control", "max-age=604800"),
    ("cache-control", "no-cache"),
    ("cache-control", "no-store"),
    ("cache-control", "public, max-age=31536000"),
    ("content-encoding", "br"),
    ("content-encoding", "gzip"),
    ("content-type", "application/dns-message"),
    ("content-type", "application/javascript"),
    ("content-type", "application/json"),
    ("content-type", "application/x-www-form-urlencoded"),
    ("content-type", "image/gif"),
    ("content-type", "image/jpeg"),
    ("content-type", "image/png"),
    ("content-type", "text/css"),
    ("content-type", "text/html; charset=utf-8"),
    ("content-type", "text/plain"),
    ("content-type", "text/plain;charset=utf-8"),
    ("range", "bytes=0-"),
    ("strict-transport-security", "max-age=31536000"),
    ("strict-transport-security", "max-age=31536000; includesubdomains"),
    ("strict-transport-security", "max-age=31536000; includesubdomains; preload"),
    ("vary", "accept-encoding"),
    ("vary", "origin"),
    ("x-content-type-options", "nosniff"),
    ("x-xss-protection", "1; mode=block"),
    (":status", "100"),
    (":status", "204"),
    (":status", "206"),
    (":status", "302"),
    (":status", "400"),
    (":status", "403"),
    (":status", "421"),
    (":status", "425"),
    (":status", "500"),
    ("accept-language", ""),
    ("access-control-allow-credentials", "FALSE"),
    ("access-control-allow-credentials", "TRUE"),
    ("access-control-allow-headers", "*"),
    ("access-control-allow-methods", "get"),
    ("access-control-allow-methods", "get, post, options"),
    ("access-control-allow-methods", "options"),
    ("access-control-expose-headers", "content-length"),
    ("access-control-request-headers", "content-type"),
    ("access-control-request-method", "get"),
    ("access-control-request-method", "post"),
    ("alt-svc", "clear"),
    ("authorization", ""),
    ("content-security-policy", "script-src 'none'; object-src 'none'; base-uri 'none'"),
    ("early-data", "1"),
    ("expect-ct", ""),
    ("forwarded", ""),
    ("if-range", ""),
    ("origin", ""),
    ("purpose", "prefetch"),
    ("server", ""),
    ("timing-allow-origin", "*"),
    ("upgrade-insecure-requests", "1"),
    ("user-agent", ""),
    ("x-forwarded-for", ""),
    ("x-frame-options", "deny"),
    ("x-frame-options", "sameorigin"),
];

/// One field line: a lowercase name and its value, as bytes (values need
/// not be UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field name.
    pub name: Vec<u8>,
    /// The field value.
    pub value: Vec<u8>,
}

/// Why a field section could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QpackError {
    /// The section ends inside a field line.
    #[error("the field section is cut short")]
    Truncated,
    /// A reference to a dynamic table, which this server does not allow.
    #[error("the field section refers to a dynamic table, whose capacity is 0")]
    DynamicTable,
    /// A static table index past its end.
    #[error("static table index {0} does not exist")]
    BadIndex(u64),
    /// An integer too large to be a length or an index.
    #[error("an integer in the field section overflows")]
    Overflow,
    /// A Huffman string that does not decode.
    #[error("a Huffman-coded string is malformed")]
    Huffman,
    /// The decoded fields are larger than the limit.
    #[error("the decoded field section is over {0} bytes")]
    TooLarge(usize),
}

/// Reads a prefixed integer (RFC 7541, section 5.1) whose first byte keeps
/// `prefix` low bits for the value.
fn read_integer(bytes: &mut &[u8], prefix: u8) -> Result<u64, QpackError> {
    let (&first, rest) = bytes.split_first().ok_or(QpackError::Truncated)?;
    *bytes = rest;
    let max = (1u64 << prefix) - 1;
    let mut value = u64::from(first) & max;
    if value < max {
        return Ok(value);
    }
    let mut shift = 0u32;
    loop {
        let (&byte, rest) = bytes.split_first().ok_or(QpackError::Truncated)?;
        *bytes = rest;
        if shift > 56 {
            return Err(QpackError::Overflow);
        }
        value = value.checked_add(u64::from(byte & 0x7f) << shift).ok_or(QpackError::Overflow)?;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// Writes a prefixed integer; `flags` are the high bits of the first byte.
fn write_integer(out: &mut Vec<u8>, prefix: u8, flags: u8, value: u64) {
    let max = (1u64 << prefix) - 1;
    if value < max {
        out.put_u8(flags | value as u8);
        return;
    }
    out.put_u8(flags | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.put_u8((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.put_u8(rest as u8);
}

/// Reads a string literal whose length has `prefix` bits, with the Huffman
/// flag just above them.
fn read_string(bytes: &mut &[u8], prefix: u8, budget: usize) -> Result<Vec<u8>, QpackError> {
    let huffman = bytes.first().ok_or(QpackError::Truncated)? & (1 << prefix) != 0;
    let len = read_integer(bytes, prefix)?;
    let len = usize::try_from(len).map_err(|_| QpackError::Overflow)?;
    if len > bytes.len() {
        return Err(QpackError::Truncated);
    }
    let (raw, rest) = bytes.split_at(len);
    *bytes = rest;
    if !huffman {
        if len > budget {
            return Err(QpackError::TooLarge(budget));
        }
        return Ok(raw.to_vec());
    }
    // A Huffman code is at least 5 bits per byte: the decoded string is at
    // most 8/5 of the coded one, so the budget bounds the work too.
    if len > budget {
        return Err(QpackError::TooLarge(budget));
    }
    let mut decoded = Vec::with_capacity(len * 8 / 5 + 1);
    httlib_huffman::decode(raw, &mut decoded, httlib_huffman::DecoderSpeed::FourBits)
        .map_err(|_| QpackError::Huffman)?;
    Ok(decoded)
}

fn static_entry(index: u64) -> Result<(&'static str, &'static str), QpackError> {
    usize::try_from(index).ok().and_then(|i| STATIC_TABLE.get(i)).copied().ok_or(QpackError::BadIndex(index))
}

/// Decodes a field section (the payload of a HEADERS frame). `max` bounds
/// the decoded size as RFC 9114 counts it: each field's name and value plus
/// 32 bytes.
pub fn decode(mut bytes: &[u8], max: usize) -> Result<Vec<Field>, QpackError> {
    // Encoded Field Section Prefix: the Required Insert Count must be 0
    // without a dynamic table; the Delta Base is then meaningless.
    if read_integer(&mut bytes, 8)? != 0 {
        return Err(QpackError::DynamicTable);
    }
    read_integer(&mut bytes, 7)?;
    let mut fields = Vec::new();
    let mut used = 0usize;
    while let Some(&first) = bytes.first() {
        let budget = max.saturating_sub(used);
        let field = if first & 0x80 != 0 {
            // Indexed field line: 1 T index(6).
            if first & 0x40 == 0 {
                return Err(QpackError::DynamicTable);
            }
            let (name, value) = static_entry(read_integer(&mut bytes, 6)?)?;
            Field { name: name.into(), value: value.into() }
        } else if first & 0x40 != 0 {
            // Literal field line with name reference: 01 N T index(4).
            if first & 0x10 == 0 {
                return Err(QpackError::DynamicTable);
            }
            let (name, _) = static_entry(read_integer(&mut bytes, 4)?)?;
            Field { name: name.into(), value: read_string(&mut bytes, 7, budget)? }
        } else if first & 0x20 != 0 {
            // Literal field line with literal name: 001 N H length(3).
            let name = read_string(&mut bytes, 3, budget)?;
            Field { name, value: read_string(&mut bytes, 7, budget)? }
        } else {
            // Post-base references (0001..., 0000...) are dynamic by nature.
            return Err(QpackError::DynamicTable);
        };
        used = used.saturating_add(field.name.len() + field.value.len() + 32);
        if used > max {
            return Err(QpackError::TooLarge(max));
        }
        fields.push(field);
    }
    Ok(fields)
}

/// Encodes a field section: static references where the table has the
/// field or its name, plain literals otherwise.
pub fn encode(fields: &[(&str, &str)]) -> Vec<u8> {
    // Required Insert Count 0, Delta Base 0.
    let mut out = vec![0, 0];
    for &(name, value) in fields {
        if let Some(index) = STATIC_TABLE.iter().position(|&entry| entry == (name, value)) {
            write_integer(&mut out, 6, 0xc0, index as u64);
        } else if let Some(index) = STATIC_TABLE.iter().position(|&(n, _)| n == name) {
            write_integer(&mut out, 4, 0x50, index as u64);
            write_integer(&mut out, 7, 0x00, value.len() as u64);
            out.put_slice(value.as_bytes());
        } else {
            write_integer(&mut out, 3, 0x20, name.len() as u64);
            out.put_slice(name.as_bytes());
            write_integer(&mut out, 7, 0x00, value.len() as u64);
            out.put_slice(value.as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, value: &str) -> Field {
        Field { name: name.into(), value: value.into() }
    }

    #[test]
    fn what_is_encoded_decodes() {
        let fields = [
            (":status", "200"),
            (":status", "429"),
            ("content-type", "text/plain;charset=utf-8"),
            ("sec-webtransport-http3-draft", "draft02"),
            ("x-long", &"v".repeat(300)),
        ];
        let encoded = encode(&fields);
        let decoded = decode(&encoded, 4096).unwrap();
        assert_eq!(decoded, fields.iter().map(|&(n, v)| field(n, v)).collect::<Vec<_>>());
        // The exact matches take one byte each.
        assert_eq!(&encoded[2..3], &[0xc0 | 25]);
    }

    #[test]
    fn huffman_strings_decode() {
        // RFC 7541, appendix C.4.1: "www.example.com" Huffman-coded.
        let coded = [0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff];
        // A literal with a static name reference to :authority (index 0),
        // Huffman flag set on the value.
        let mut section = vec![0, 0, 0x50, 0x80 | coded.len() as u8];
        section.extend_from_slice(&coded);
        assert_eq!(decode(&section, 4096).unwrap(), vec![field(":authority", "www.example.com")]);
    }

    #[test]
    fn a_chromium_style_connect_request_decodes() {
        // :method CONNECT (15), :scheme https (23), :authority and :path
        // as static name references, :protocol and origin as literals.
        let mut section = vec![0, 0, 0xc0 | 15, 0xc0 | 23];
        section.extend_from_slice(&[0x50, 14]);
        section.extend_from_slice(b"127.0.0.1:4433");
        section.extend_from_slice(&[0x51, 3]);
        section.extend_from_slice(b"/wt");
        section.extend_from_slice(&[0x27, 2]);
        section.extend_from_slice(b":protocol");
        section.extend_from_slice(&[12]);
        section.extend_from_slice(b"webtransport");
        let decoded = decode(&section, 4096).unwrap();
        assert_eq!(decoded[0], field(":method", "CONNECT"));
        assert_eq!(decoded[3], field(":path", "/wt"));
        assert_eq!(decoded[4], field(":protocol", "webtransport"));
    }

    #[test]
    fn dynamic_references_and_bad_input_are_refused() {
        assert_eq!(decode(&[1, 0], 4096), Err(QpackError::DynamicTable));
        assert_eq!(decode(&[0, 0, 0x80], 4096), Err(QpackError::DynamicTable));
        assert_eq!(decode(&[0, 0, 0x10], 4096), Err(QpackError::DynamicTable));
        assert_eq!(decode(&[0, 0, 0xff, 0x7f], 4096), Err(QpackError::BadIndex(63 + 127)));
        assert_eq!(decode(&[0, 0, 0x50, 5, b'a'], 4096), Err(QpackError::Truncated));
        let big = encode(&[("x", &"y".repeat(5000))]);
        assert!(matches!(decode(&big, 4096), Err(QpackError::TooLarge(_))));
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = decode(&bytes, 2048);
        }
    }
}
