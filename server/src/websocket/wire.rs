//! The write side of a WebSocket on plain TCP: each batch of frames goes
//! to the socket behind headers encoded here, without a trip through
//! tungstenite.
//!
//! At everyday load a member gets one frame per write, so what a delivery
//! costs beside the kernel's `send` is what the writer does around it.
//! Through tungstenite that was a lock shared with the reading half, a
//! waker registered per operation, framing into its write buffer and a
//! flush. Here a batch of up to [`SCRATCH_BYTES`] is laid out in the worker
//! thread's scratch buffer and goes out in one `send`, which costs the
//! kernel less than a `writev` of the same bytes (no file position, no
//! vector to import); a larger batch goes out with `writev` straight from
//! the frames' shared allocations.
//!
//! Tungstenite still reads, and still writes its control frames (the pong
//! to a ping, the close handshake), through [`ControlStream`]: those bytes
//! join a pending buffer that the data writer also uses for the rest of a
//! short write, so that the socket only ever sees whole frames in a row,
//! whichever side wrote them.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use wtchat_core::frame::Frame;

/// Frames per vectored write: two slices each (header and body), within
/// the 1024 slices a `writev` takes.
const FRAMES_PER_WRITE: usize = 512;

/// Bytes of control frames (pongs, the close) that may wait for a client
/// that does not read, beyond a short write's remainder; past it the
/// connection fails rather than grow.
const CONTROL_BYTES_MAX: usize = 64 * 1024;

/// The longest WebSocket header a server writes: no mask, 64-bit length.
const HEADER_MAX: usize = 10;

/// Batches up to this many bytes go out from the thread's scratch buffer
/// in one `send`.
const SCRATCH_BYTES: usize = 16 * 1024;

thread_local! {
    /// Where a batch is laid out before its `send`: one per worker thread,
    /// so that no connection keeps a buffer of its own.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(SCRATCH_BYTES));
}

/// Buffer capacity kept between writes: a connection that once wrote a
/// burst gives the rest back, so that idle connections stay small.
const CAPACITY_KEPT: usize = 4 * 1024;

/// The socket's writing half and what waits to go out before anything new.
#[derive(Debug)]
struct WireState {
    half: OwnedWriteHalf,
    /// Whole frames' bytes, or the tail of a frame whose head is already
    /// out: always written before new frames, in order.
    pending: Vec<u8>,
    /// The most `pending` may hold.
    pending_max: usize,
    /// Set once tungstenite wrote a close frame: nothing may follow it.
    closed: bool,
}

impl WireState {
    /// Writes what is pending.
    fn poll_flush_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written = ready!(Pin::new(&mut self.half).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..written);
        }
        if self.pending.capacity() > CAPACITY_KEPT {
            self.pending = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

/// The shared write side: the data writer ([`WireSink`]) and tungstenite
/// ([`ControlStream`]) use it in turn, on the connection's one task.
#[derive(Debug, Clone)]
pub(crate) struct Wire(Arc<Mutex<WireState>>);

impl Wire {
    /// The write side of a connection whose outbound queue holds at most
    /// `queue_bytes`: a short write's remainder is at most one batch.
    pub(crate) fn new(half: OwnedWriteHalf, queue_bytes: usize) -> Self {
        let state = WireState {
            half,
            pending: Vec::new(),
            pending_max: queue_bytes + CONTROL_BYTES_MAX,
            closed: false,
        };
        Self(Arc::new(Mutex::new(state)))
    }

    fn lock(&self) -> MutexGuard<'_, WireState> {
        // Every operation leaves `pending` whole, so a poisoned lock is
        // still consistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The header of an unmasked, final binary frame of `len` bytes, into
/// `out`.
fn push_header(out: &mut Vec<u8>, len: usize) {
    out.push(0x82);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Writes frames as WebSocket binary messages.
#[derive(Debug)]
pub(crate) struct WireSink {
    wire: Wire,
    /// The headers of the frames being written, back to back; kept between
    /// batches so that a batch allocates nothing.
    headers: Vec<u8>,
}

impl WireSink {
    pub(crate) fn new(wire: Wire) -> Self {
        Self { wire, headers: Vec::new() }
    }

    /// Writes the frames in order, pending bytes first, and flushes.
    pub(crate) async fn send(&mut self, frames: &[Frame]) -> io::Result<()> {
        for chunk in frames.chunks(FRAMES_PER_WRITE) {
            self.headers.clear();
            for frame in chunk {
                push_header(&mut self.headers, frame.body_slice().len());
            }
            let mut sent = false;
            std::future::poll_fn(|cx| self.poll_chunk(cx, chunk, &mut sent)).await?;
        }
        if self.headers.capacity() > CAPACITY_KEPT {
            self.headers = Vec::new();
        }
        Ok(())
    }

    /// Flushes what is pending, then writes the chunk (once); a short
    /// write's remainder joins the pending bytes and is flushed too.
    fn poll_chunk(&self, cx: &mut Context<'_>, chunk: &[Frame], sent: &mut bool) -> Poll<io::Result<()>> {
        let mut state = self.wire.lock();
        ready!(state.poll_flush_pending(cx))?;
        if *sent {
            return Poll::Ready(Ok(()));
        }
        if state.closed {
            // The client has the close frame; a frame after it would break
            // the protocol.
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "the WebSocket is closing")));
        }
        let bodies: usize = chunk.iter().map(|frame| frame.body_slice().len()).sum();
        if self.headers.len() + bodies <= SCRATCH_BYTES {
            return self.poll_send_laid_out(&mut state, cx, chunk, sent);
        }
        let pieces: Vec<&[u8]>;
        let one: [&[u8]; 2];
        let pieces: &[&[u8]] = match chunk {
            [frame] => {
                one = [&self.headers, frame.body_slice()];
                &one
            }
            _ => {
                pieces = self::pieces(&self.headers, chunk);
                &pieces
            }
        };
        let total: usize = pieces.iter().map(|piece| piece.len()).sum();
        let written = ready!(Self::poll_write_pieces(&mut state.half, cx, pieces))?;
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        *sent = true;
        if written < total {
            // The socket took part of the chunk: the rest goes out before
            // anything else, from the pending buffer.
            let mut skip = written;
            for piece in pieces {
                let taken = skip.min(piece.len());
                skip -= taken;
                state.pending.extend_from_slice(&piece[taken..]);
            }
            ready!(state.poll_flush_pending(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl WireSink {
    /// Lays the chunk out in the thread's scratch buffer and sends it; what
    /// the socket does not take joins the pending bytes, which are then
    /// flushed.
    fn poll_send_laid_out(
        &self,
        state: &mut WireState,
        cx: &mut Context<'_>,
        chunk: &[Frame],
        sent: &mut bool,
    ) -> Poll<io::Result<()>> {
        let written = SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            let mut at = 0;
            for frame in chunk {
                let body = frame.body_slice();
                let header_len = header_len(body.len());
                scratch.extend_from_slice(&self.headers[at..at + header_len]);
                scratch.extend_from_slice(body);
                at += header_len;
            }
            let written = match Pin::new(&mut state.half).poll_write(cx, scratch) {
                Poll::Ready(Ok(0)) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Poll::Ready(Ok(written)) => written,
                Poll::Ready(Err(error)) => return Err(error),
                // The socket is full: the whole chunk waits in `pending`.
                Poll::Pending => 0,
            };
            state.pending.extend_from_slice(&scratch[written..]);
            Ok(())
        });
        written?;
        *sent = true;
        state.poll_flush_pending(cx)
    }

    fn poll_write_pieces(
        half: &mut OwnedWriteHalf,
        cx: &mut Context<'_>,
        pieces: &[&[u8]],
    ) -> Poll<io::Result<usize>> {
        match pieces {
            [header, body] => {
                Pin::new(half).poll_write_vectored(cx, &[IoSlice::new(header), IoSlice::new(body)])
            }
            _ => {
                let slices: Vec<IoSlice<'_>> = pieces.iter().map(|piece| IoSlice::new(piece)).collect();
                Pin::new(half).poll_write_vectored(cx, &slices)
            }
        }
    }
}

/// Whether bytes tungstenite wrote (whole frames, unmasked) hold a close
/// frame.
fn holds_close(mut bytes: &[u8]) -> bool {
    while let [first, second, rest @ ..] = bytes {
        if first & 0x0f == 0x8 {
            return true;
        }
        let (len, rest) = match second & 0x7f {
            126 if rest.len() >= 2 => (usize::from(u16::from_be_bytes([rest[0], rest[1]])), &rest[2..]),
            127 if rest.len() >= 8 => {
                let len = u64::from_be_bytes(rest[..8].try_into().unwrap_or_default());
                (usize::try_from(len).unwrap_or(usize::MAX), &rest[8..])
            }
            len @ 0..126 => (usize::from(len), rest),
            _ => return false,
        };
        let mask = if second & 0x80 != 0 { 4 } else { 0 };
        bytes = rest.get(len.saturating_add(mask)..).unwrap_or_default();
    }
    false
}

/// The length of the header of a frame of `len` bytes.
fn header_len(len: usize) -> usize {
    match len {
        0..126 => 2,
        126..=0xffff => 4,
        _ => HEADER_MAX,
    }
}

/// What a chunk's write consists of: each frame's header, then its body as
/// a view of the frame's shared allocation.
pub(crate) fn pieces<'a>(headers: &'a [u8], chunk: &'a [Frame]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::with_capacity(chunk.len() * 2);
    let mut at = 0;
    for frame in chunk {
        let body = frame.body_slice();
        let header_len = header_len(body.len());
        pieces.push(&headers[at..at + header_len]);
        pieces.push(body);
        at += header_len;
    }
    pieces
}

/// The stream tungstenite gets: the socket's reading half (after whatever
/// the HTTP server read past the upgrade request), and writes that join
/// the wire's pending bytes.
#[derive(Debug)]
pub(crate) struct ControlStream {
    read: OwnedReadHalf,
    /// Bytes read with the upgrade request that belong to the WebSocket.
    read_ahead: Bytes,
    wire: Wire,
}

impl ControlStream {
    pub(crate) fn new(read: OwnedReadHalf, read_ahead: Bytes, wire: Wire) -> Self {
        // Even empty, the bytes would keep the HTTP server's whole read
        // buffer alive for the connection's life.
        let read_ahead =
            if read_ahead.is_empty() { Bytes::new() } else { Bytes::copy_from_slice(&read_ahead) };
        Self { read, read_ahead, wire }
    }
}

impl AsyncRead for ControlStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read_ahead.has_remaining() {
            let n = self.read_ahead.len().min(buf.remaining());
            buf.put_slice(&self.read_ahead[..n]);
            self.read_ahead.advance(n);
            if !self.read_ahead.has_remaining() {
                self.read_ahead = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for ControlStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut state = self.wire.lock();
        if state.pending.len() + buf.len() > state.pending_max {
            return Poll::Ready(Err(io::Error::other("the client does not read its control frames")));
        }
        // Whole: tungstenite hands over whole frames, and they must stay
        // whole among the data frames.
        state.pending.extend_from_slice(buf);
        state.closed |= holds_close(buf);
        // Out at once, as a socket would take them: tungstenite does not
        // flush after every frame it writes (the echo of a client's close
        // among them). What the socket cannot take now waits in `pending`
        // for the next flush or data write.
        if let Poll::Ready(Err(error)) = state.poll_flush_pending(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.wire.lock().poll_flush_pending(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.wire.lock();
        ready!(state.poll_flush_pending(cx))?;
        Pin::new(&mut state.half).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use wtchat_protocol::ServerMessage;

    use super::*;

    /// A frame whose body is about `body_len` bytes.
    fn frame(body_len: usize) -> Frame {
        let message = ServerMessage::Message(wtchat_protocol::ChatMessage {
            room: "r".into(),
            seq: 1,
            sender: wtchat_protocol::Member { session_id: 1, name: "n".into() },
            sent_at_ms: 0,
            body: "x".repeat(body_len),
        });
        Frame::encode(&message)
    }

    #[test]
    fn each_length_gets_the_header_rfc_6455_gives_it() {
        for (len, header) in [
            (5usize, vec![0x82, 5]),
            (125, vec![0x82, 125]),
            (126, vec![0x82, 126, 0, 126]),
            (65535, vec![0x82, 126, 0xff, 0xff]),
            (65536, vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let mut out = Vec::new();
            push_header(&mut out, len);
            assert_eq!(out, header, "{len}");
        }
    }

    #[test]
    fn a_close_frame_is_found_among_the_control_frames() {
        let pong = [0x8a, 2, b'h', b'i'];
        let close = [0x88, 2, 0x03, 0xe8];
        assert!(!holds_close(&pong));
        assert!(holds_close(&close));
        assert!(holds_close(&[&pong[..], &close[..]].concat()));
        let mut long_pong = vec![0x8a, 126, 0, 200];
        long_pong.extend([0x88; 200]);
        assert!(!holds_close(&long_pong), "bytes inside a payload are not a header");
    }

    #[test]
    fn a_write_is_each_header_then_a_view_of_the_frames_own_allocation() {
        let frames: Vec<Frame> = [10, 200, 70_000].into_iter().map(frame).collect();
        let mut headers = Vec::new();
        for frame in &frames {
            push_header(&mut headers, frame.body_slice().len());
        }
        let pieces = pieces(&headers, &frames);
        assert_eq!(pieces.len(), 6);
        for (frame, pair) in frames.iter().zip(pieces.chunks(2)) {
            assert_eq!(pair[0][0], 0x82);
            assert!(
                std::ptr::eq(pair[1], frame.body_slice()),
                "the body is the shared allocation, not a copy"
            );
        }
    }
}
