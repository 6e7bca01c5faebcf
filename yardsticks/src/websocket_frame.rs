//! The floor's WebSocket framing, by hand (RFC 6455): the upgrade, a
//! client's masked frames read in place, and a server frame's header
//! written once per message.

use anyhow::{Context, Result, bail};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The binary opcode, and close.
pub(crate) const BINARY: u8 = 0x2;
pub(crate) const CLOSE: u8 = 0x8;

/// Reads the upgrade request and answers it; returns what the client sent
/// after it.
pub(crate) async fn upgrade(stream: &mut TcpStream) -> Result<BytesMut> {
    let mut buffer = BytesMut::with_capacity(8192);
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > 8192 || stream.read_buf(&mut buffer).await? == 0 {
            bail!("no upgrade request");
        }
    };
    let head = std::str::from_utf8(&buffer[..end]).context("the request is not text")?;
    let key = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim().eq_ignore_ascii_case("sec-websocket-key").then(|| value.trim().to_owned())
        })
        .context("no Sec-WebSocket-Key")?;
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream.write_all(response.as_bytes()).await?;
    buffer.advance(end);
    Ok(buffer)
}

/// Takes one whole client frame from the front of `buffer`, unmasked:
/// `(opcode, payload)`; `None` until it has all arrived.
pub(crate) fn take_client_frame(buffer: &mut BytesMut) -> Result<Option<(u8, Vec<u8>)>> {
    if buffer.len() < 2 {
        return Ok(None);
    }
    let opcode = buffer[0] & 0x0f;
    if buffer[1] & 0x80 == 0 {
        bail!("a client frame must be masked");
    }
    let (len, mut at) = match buffer[1] & 0x7f {
        126 if buffer.len() >= 4 => (usize::from(u16::from_be_bytes([buffer[2], buffer[3]])), 4),
        127 if buffer.len() >= 10 => {
            let mut len = [0u8; 8];
            len.copy_from_slice(&buffer[2..10]);
            (usize::try_from(u64::from_be_bytes(len)).context("frame too long")?, 10)
        }
        126 | 127 => return Ok(None),
        len => (usize::from(len), 2),
    };
    if buffer.len() < at + 4 + len {
        return Ok(None);
    }
    let mask = [buffer[at], buffer[at + 1], buffer[at + 2], buffer[at + 3]];
    at += 4;
    let payload: Vec<u8> = buffer[at..at + len].iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
    buffer.advance(at + len);
    Ok(Some((opcode, payload)))
}

/// A whole unmasked binary frame from the server, header and payload in
/// one buffer, to be written with one `send` to every member.
pub(crate) fn server_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x80 | BINARY);
    match payload.len() {
        len @ 0..=125 => frame.push(len as u8),
        len @ 126..=65_535 => {
            frame.push(126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_frame_reads_back_and_a_server_frame_has_its_length() {
        let payload = b"hello";
        let mask = [1u8, 2, 3, 4];
        let mut bytes = vec![0x80 | BINARY, 0x80 | 5];
        bytes.extend_from_slice(&mask);
        bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let mut buffer = BytesMut::from(&bytes[..3]);
        assert!(take_client_frame(&mut buffer).unwrap().is_none(), "not all there yet");
        let mut buffer = BytesMut::from(&bytes[..]);
        assert_eq!(take_client_frame(&mut buffer).unwrap(), Some((BINARY, payload.to_vec())));
        assert!(buffer.is_empty());
        assert_eq!(server_frame(&[0; 200])[..4], [0x82, 126, 0, 200]);
        assert_eq!(server_frame(b"ab"), [0x82, 2, b'a', b'b']);
    }
}
