//! Reassembling length-prefixed frames from a byte stream (the WebTransport
//! stream), which delivers bytes in chunks unrelated to frame boundaries.

use wtchat_protocol::{DecodeError, LENGTH_PREFIX_BYTES, split_stream_frame};

/// Bytes received and not yet split into frames.
#[derive(Debug, Default)]
pub struct StreamBuffer {
    bytes: Vec<u8>,
}

impl StreamBuffer {
    /// Appends a received chunk and returns every frame body it completes.
    pub fn push(&mut self, chunk: &[u8], max_frame: usize) -> Result<Vec<Vec<u8>>, DecodeError> {
        self.bytes.extend_from_slice(chunk);
        let mut frames = Vec::new();
        let mut start = 0;
        while let Some(end) = split_stream_frame(&self.bytes[start..], max_frame)? {
            frames.push(self.bytes[start + LENGTH_PREFIX_BYTES..start + end].to_vec());
            start += end;
        }
        self.bytes.drain(..start);
        Ok(frames)
    }
}

/// A frame body with its length prefix in front, for the stream.
pub fn prefixed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LENGTH_PREFIX_BYTES + body.len());
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(body);
    out
}
