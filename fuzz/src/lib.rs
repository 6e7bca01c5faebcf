//! What each fuzz target checks, beyond "does not panic": the decoders'
//! contracts on arbitrary bytes. The targets in `fuzz_targets/` are one line
//! each around these functions.

use wtchat_protocol::{
    ClientFrame, DecodeError, LENGTH_PREFIX_BYTES, ServerMessage, decode, encode, split_stream_frame,
};

/// The largest frame the checks accept: the server's default limit.
pub const MAX_FRAME: usize = 64 * 1024 + 1024;

/// A client frame that decodes must survive a round trip unchanged; one
/// that does not must fail with a typed error, never a panic.
pub fn client_frame(data: &[u8]) {
    if let Ok(frame) = decode::<ClientFrame>(data, MAX_FRAME) {
        let again = encode(&frame);
        assert_eq!(decode::<ClientFrame>(&again, usize::MAX).ok(), Some(frame));
    }
}

/// The same contract for everything the server sends (what the browser
/// client and the tools decode).
pub fn server_message(data: &[u8]) {
    if let Ok(message) = decode::<ServerMessage>(data, MAX_FRAME) {
        let again = encode(&message);
        assert_eq!(decode::<ServerMessage>(&again, usize::MAX).ok(), Some(message));
    }
}

/// Splitting a byte stream into length-prefixed frames, as the WebTransport
/// readers do: every frame found lies inside the buffer, each split makes
/// progress, and an oversized or empty length is refused rather than
/// awaited.
pub fn stream_frames(data: &[u8]) {
    let mut rest = data;
    loop {
        match split_stream_frame(rest, MAX_FRAME) {
            Ok(Some(end)) => {
                assert!(end > LENGTH_PREFIX_BYTES && end <= rest.len(), "a frame lies inside the buffer");
                let _ = decode::<ClientFrame>(&rest[LENGTH_PREFIX_BYTES..end], MAX_FRAME);
                rest = &rest[end..];
            }
            Ok(None) => {
                if let Some(prefix) = rest.first_chunk::<LENGTH_PREFIX_BYTES>() {
                    let len = u32::from_be_bytes(*prefix) as usize;
                    assert!(rest.len() < LENGTH_PREFIX_BYTES + len, "waits only for an incomplete frame");
                }
                return;
            }
            Err(DecodeError::TooLarge { len, max }) => {
                assert!(len > max);
                return;
            }
            Err(DecodeError::Empty) => return,
            Err(other) => panic!("unexpected stream error {other:?}"),
        }
    }
}

/// The largest request head the checks accept, as the server's.
pub const MAX_FIELD_SECTION: usize = 16 * 1024;

/// A request head as the WebTransport server reads it (a QPACK field section
/// from an untrusted client): decoding stays within its size limit, and a
/// decoded head either becomes a request or is refused with a typed error.
pub fn request_head(data: &[u8]) {
    use wtchat_webtransport::{qpack, request::Request};
    if let Ok(fields) = qpack::decode(data, MAX_FIELD_SECTION) {
        let size: usize = fields.iter().map(|f| f.name.len() + f.value.len() + 32).sum();
        assert!(size <= MAX_FIELD_SECTION, "a decoded head stays within its limit");
        if let Ok(request) = Request::from_fields(&fields) {
            assert!(!request.method.is_empty());
        }
    }
}

/// Capsules on a CONNECT stream: each split consumes bytes, never more than
/// the buffer holds, and a capsule that decodes survives a round trip.
pub fn capsules(data: &[u8]) {
    use wtchat_webtransport::capsule::Capsule;
    let mut buffer = bytes::BytesMut::from(data);
    loop {
        let before = buffer.len();
        match Capsule::split(&mut buffer) {
            Ok(Some(capsule)) => {
                assert!(buffer.len() < before, "a capsule consumes bytes");
                let mut again = bytes::BytesMut::from(&capsule.to_bytes()[..]);
                assert_eq!(Capsule::split(&mut again).ok().flatten(), Some(capsule));
            }
            Ok(None) => {
                assert_eq!(buffer.len(), before, "an incomplete capsule is left whole");
                return;
            }
            Err(_) => return,
        }
    }
}

/// A client's SETTINGS payload: decodes or is refused, never panics, and
/// flow control is declared only with a non-zero limit.
pub fn h3_settings(data: &[u8]) {
    if let Ok(settings) = wtchat_webtransport::PeerSettings::decode(data) {
        if settings.initial_max_data > 0 {
            assert!(settings.flow_control);
        }
    }
}
