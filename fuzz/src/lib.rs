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
