//! HTTP/3 SETTINGS (RFC 9114, section 7.2.4) as a WebTransport server sends
//! them, and what it needs to know of the client's.
//!
//! Browsers implement different drafts of WebTransport over HTTP/3, and each
//! draft looks for its own codepoint before it opens a session. The server
//! advertises every codepoint a shipping browser checks, each from the draft
//! that defined it (draft-ietf-webtrans-http3, sections 3.1, 5.5 and 9.2):
//!
//! | setting | codepoint | draft | checked by |
//! |---|---|---|---|
//! | `ENABLE_WEBTRANSPORT` | 0x2b603742 | 00–06 | Chromium, Firefox |
//! | `WEBTRANSPORT_MAX_SESSIONS` | 0x2b603743 | 04–05 | older Chromium |
//! | `WEBTRANSPORT_MAX_SESSIONS` | 0xc671706a | 07–12 | Chromium |
//! | `WT_MAX_SESSIONS` | 0x14e9cd29 | 13–14 | Safari 26.4+ |
//! | `WT_ENABLED` | 0x2c7cf000 | 15–16 | newer clients |
//! | `WT_INITIAL_MAX_DATA` | 0x2b61 | 13–16 | Safari (sends nothing without it) |
//! | `WT_INITIAL_MAX_STREAMS_UNI` | 0x2b64 | 13–16 | Safari |
//! | `WT_INITIAL_MAX_STREAMS_BIDI` | 0x2b65 | 13–16 | Safari |
//!
//! beside the HTTP/3 settings WebTransport needs: extended CONNECT
//! (RFC 9220), HTTP datagrams (RFC 9297, and the draft-04 codepoint older
//! Chromium looks for) and the largest field section the server reads.
//! Unknown settings are ignored by every receiver (RFC 9114, section 7.2.4),
//! so advertising all of them costs a few bytes and nothing else.

use bytes::BufMut;

use crate::frame::{self, is_grease};
use crate::varint;

/// `SETTINGS_QPACK_MAX_TABLE_CAPACITY`: 0 (the default) means the peer's
/// QPACK encoder may not use a dynamic table, so the server needs no QPACK
/// state per connection.
pub const QPACK_MAX_TABLE_CAPACITY: u64 = 0x01;
/// `SETTINGS_MAX_FIELD_SECTION_SIZE`.
pub const MAX_FIELD_SECTION_SIZE: u64 = 0x06;
/// `SETTINGS_QPACK_BLOCKED_STREAMS`.
pub const QPACK_BLOCKED_STREAMS: u64 = 0x07;
/// `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 9220).
pub const ENABLE_CONNECT_PROTOCOL: u64 = 0x08;
/// `SETTINGS_H3_DATAGRAM` (RFC 9297).
pub const H3_DATAGRAM: u64 = 0x33;
/// `H3_DATAGRAM` of draft-ietf-masque-h3-datagram-04.
pub const H3_DATAGRAM_DRAFT04: u64 = 0xff_d277;
/// `SETTINGS_ENABLE_WEBTRANSPORT`, drafts 00 to 06.
pub const ENABLE_WEBTRANSPORT_DRAFT02: u64 = 0x2b60_3742;
/// `SETTINGS_WEBTRANSPORT_MAX_SESSIONS`, drafts 04 and 05.
pub const WEBTRANSPORT_MAX_SESSIONS_DRAFT04: u64 = 0x2b60_3743;
/// `SETTINGS_WEBTRANSPORT_MAX_SESSIONS`, drafts 07 to 12.
pub const WEBTRANSPORT_MAX_SESSIONS_DRAFT07: u64 = 0xc671_706a;
/// `SETTINGS_WT_MAX_SESSIONS`, drafts 13 and 14.
pub const WT_MAX_SESSIONS_DRAFT13: u64 = 0x14e9_cd29;
/// `SETTINGS_WT_ENABLED`, drafts 15 and 16.
pub const WT_ENABLED_DRAFT15: u64 = 0x2c7c_f000;
/// `SETTINGS_WT_INITIAL_MAX_DATA`: session-level data credit.
pub const WT_INITIAL_MAX_DATA: u64 = 0x2b61;
/// `SETTINGS_WT_INITIAL_MAX_STREAMS_UNI`.
pub const WT_INITIAL_MAX_STREAMS_UNI: u64 = 0x2b64;
/// `SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI`.
pub const WT_INITIAL_MAX_STREAMS_BIDI: u64 = 0x2b65;

/// A reserved setting identifier sent so that clients keep ignoring unknown
/// settings (RFC 9114, section 7.2.4.1).
const GREASE: u64 = 0x1f * 0x2a + 0x21;

/// What the server offers a client's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSettings {
    /// The largest request field section the server reads, in bytes.
    pub max_field_section_size: u64,
    /// The session-level data credit a client starts with: how many bytes
    /// of stream payload it may send before the server grants more.
    pub initial_max_data: u64,
    /// How many bidirectional streams a client may open in a session.
    pub initial_max_streams_bidi: u64,
    /// How many unidirectional streams a client may open in a session.
    pub initial_max_streams_uni: u64,
}

impl ServerSettings {
    /// Every setting and its value, in the order they are sent.
    pub fn entries(&self) -> Vec<(u64, u64)> {
        vec![
            (MAX_FIELD_SECTION_SIZE, self.max_field_section_size),
            (ENABLE_CONNECT_PROTOCOL, 1),
            (H3_DATAGRAM, 1),
            (H3_DATAGRAM_DRAFT04, 1),
            (ENABLE_WEBTRANSPORT_DRAFT02, 1),
            // One session per connection: the server never pools sessions.
            (WEBTRANSPORT_MAX_SESSIONS_DRAFT04, 1),
            (WEBTRANSPORT_MAX_SESSIONS_DRAFT07, 1),
            (WT_MAX_SESSIONS_DRAFT13, 1),
            (WT_ENABLED_DRAFT15, 1),
            (WT_INITIAL_MAX_DATA, self.initial_max_data),
            (WT_INITIAL_MAX_STREAMS_UNI, self.initial_max_streams_uni),
            (WT_INITIAL_MAX_STREAMS_BIDI, self.initial_max_streams_bidi),
            (GREASE, 0x5757),
        ]
    }

    /// The bytes that open the server's control stream: its type, then the
    /// SETTINGS frame.
    pub fn control_stream_preface(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        for (id, value) in self.entries() {
            varint::write(&mut payload, id);
            varint::write(&mut payload, value);
        }
        let mut out = Vec::with_capacity(payload.len() + 8);
        out.put_u8(frame::stream_type::CONTROL as u8);
        frame::write(&mut out, frame::SETTINGS, &payload);
        out
    }
}

/// What the server needs to know of a client's SETTINGS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerSettings {
    /// The session-level data credit the client grants the server
    /// (`WT_INITIAL_MAX_DATA`), 0 when it sent none.
    pub initial_max_data: u64,
    /// Whether the client declared session flow control (any of the three
    /// `WT_INITIAL_MAX_*` settings non-zero).
    pub flow_control: bool,
    /// Whether the client supports HTTP datagrams.
    pub datagrams: bool,
}

/// Why a SETTINGS frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The payload ended inside an identifier or value.
    #[error("the SETTINGS frame ends inside a setting")]
    Truncated,
    /// One identifier appeared twice.
    #[error("setting {0:#x} appears twice")]
    Duplicate(u64),
    /// An HTTP/2 setting, which HTTP/3 forbids.
    #[error("setting {0:#x} is an HTTP/2 setting")]
    Http2(u64),
}

impl PeerSettings {
    /// Reads a SETTINGS frame's payload. Unknown and grease settings are
    /// ignored; duplicates and HTTP/2 settings are errors (RFC 9114,
    /// section 7.2.4).
    pub fn decode(mut payload: &[u8]) -> Result<Self, SettingsError> {
        let mut settings = Self::default();
        let mut seen: Vec<u64> = Vec::new();
        let mut flow_control = [0u64; 3];
        while !payload.is_empty() {
            let id = varint::read(&mut payload).ok_or(SettingsError::Truncated)?;
            let value = varint::read(&mut payload).ok_or(SettingsError::Truncated)?;
            if is_grease(id) {
                continue;
            }
            if matches!(id, 0x02..=0x05) {
                return Err(SettingsError::Http2(id));
            }
            if seen.contains(&id) {
                return Err(SettingsError::Duplicate(id));
            }
            seen.push(id);
            match id {
                WT_INITIAL_MAX_DATA => {
                    settings.initial_max_data = value;
                    flow_control[0] = value;
                }
                WT_INITIAL_MAX_STREAMS_UNI => flow_control[1] = value,
                WT_INITIAL_MAX_STREAMS_BIDI => flow_control[2] = value,
                H3_DATAGRAM | H3_DATAGRAM_DRAFT04 => settings.datagrams |= value == 1,
                _ => {}
            }
        }
        settings.flow_control = flow_control.iter().any(|&v| v != 0);
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    fn offered() -> ServerSettings {
        ServerSettings {
            max_field_section_size: 8192,
            initial_max_data: 65_536,
            initial_max_streams_bidi: 1,
            initial_max_streams_uni: 0,
        }
    }

    #[test]
    fn the_control_stream_opens_with_one_settings_frame_holding_every_entry() {
        let preface = offered().control_stream_preface();
        assert_eq!(preface[0], 0x00, "control stream type");
        let mut rest = BytesMut::from(&preface[1..]);
        let frame = frame::split(&mut rest, 1 << 16).unwrap().unwrap();
        assert!(rest.is_empty());
        assert_eq!(frame.kind, frame::SETTINGS);
        let mut payload = &frame.payload[..];
        let mut decoded = Vec::new();
        while !payload.is_empty() {
            decoded.push((varint::read(&mut payload).unwrap(), varint::read(&mut payload).unwrap()));
        }
        assert_eq!(decoded, offered().entries());
        for id in [WT_MAX_SESSIONS_DRAFT13, WT_ENABLED_DRAFT15, WEBTRANSPORT_MAX_SESSIONS_DRAFT07] {
            assert!(decoded.contains(&(id, 1)), "{id:#x} is advertised");
        }
    }

    fn payload(entries: &[(u64, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(id, value) in entries {
            varint::write(&mut out, id);
            varint::write(&mut out, value);
        }
        out
    }

    #[test]
    fn a_client_declares_flow_control_with_any_initial_limit() {
        let safari = payload(&[(H3_DATAGRAM, 1), (WT_MAX_SESSIONS_DRAFT13, 1), (WT_INITIAL_MAX_DATA, 4096)]);
        let safari = PeerSettings::decode(&safari).unwrap();
        assert_eq!(safari, PeerSettings { initial_max_data: 4096, flow_control: true, datagrams: true });
        let streams_only = PeerSettings::decode(&payload(&[(WT_INITIAL_MAX_STREAMS_BIDI, 4)])).unwrap();
        assert!(streams_only.flow_control);
        assert_eq!(streams_only.initial_max_data, 0);
        let old = PeerSettings::decode(&payload(&[(H3_DATAGRAM_DRAFT04, 1), (0x21, 7)])).unwrap();
        assert!(!old.flow_control && old.datagrams);
    }

    #[test]
    fn broken_settings_are_refused() {
        assert_eq!(
            PeerSettings::decode(&payload(&[(0x33, 1), (0x33, 1)])),
            Err(SettingsError::Duplicate(0x33))
        );
        assert_eq!(PeerSettings::decode(&payload(&[(0x04, 1)])), Err(SettingsError::Http2(0x04)));
        assert_eq!(PeerSettings::decode(&[0x33]), Err(SettingsError::Truncated));
    }
}
