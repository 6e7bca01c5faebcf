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
//! Tungstenite still reads, and writes its control frames (the pong to a
//! ping, the echo of a client's close), through [`ControlStream`]: those
//! bytes join a pending buffer that the data writer also uses for the rest
//! of a short write, so that the socket only ever sees whole frames in a
//! row, whichever side wrote them. The server's own close is written here
//! ([`WireSink::close`]), and nothing follows a close frame, whoever wrote
//! it.
//!
//! The socket and that state share one allocation ([`Wire`]), and the
//! writer keeps no buffer of its own: an idle connection pays for none of
//! this.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
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

/// Buffer capacity kept between writes: a connection that once wrote a
/// burst gives the rest back, so that idle connections stay small.
const CAPACITY_KEPT: usize = 4 * 1024;

thread_local! {
    /// Where a batch (or, for a large one, its headers) is laid out before
    /// its write: one per worker thread, so that no connection keeps a
    /// buffer of its own.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(SCRATCH_BYTES));
}

/// What waits to go out, and what came in with the upgrade request.
#[derive(Debug, Default)]
struct WireState {
    /// Whole frames' bytes, or the tail of a frame whose head is already
    /// out: always written before new frames, in order.
    pending: Vec<u8>,
    /// Set once a close frame is queued: nothing may follow it.
    closed: bool,
    /// Bytes the HTTP server read past the upgrade request, which belong
    /// to the WebSocket; read before the socket.
    read_ahead: Vec<u8>,
}

/// The socket and its state, shared by the data writer ([`WireSink`]) and
/// tungstenite ([`ControlStream`]), which take turns on the connection's
/// one task.
#[derive(Debug)]
struct Shared {
    stream: TcpStream,
    state: Mutex<WireState>,
    /// The most `pending` may hold.
    pending_max: usize,
}

/// A handle on the shared socket.
#[derive(Debug, Clone)]
pub(crate) struct Wire(Arc<Shared>);

impl Wire {
    /// The wire of a connection whose outbound queue holds at most
    /// `queue_bytes` (a short write's remainder is at most one batch), and
    /// the bytes read past its upgrade request.
    pub(crate) fn new(stream: TcpStream, read_ahead: &[u8], queue_bytes: usize) -> Self {
        let state = WireState { read_ahead: read_ahead.to_vec(), ..WireState::default() };
        Self(Arc::new(Shared {
            stream,
            state: Mutex::new(state),
            pending_max: queue_bytes + CONTROL_BYTES_MAX,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, WireState> {
        // Every operation leaves `pending` whole, so a poisoned lock is
        // still consistent.
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes what `write` writes once the socket is writable.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.stream.poll_write_ready(cx))?;
            match write(&self.0.stream) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                result => return Poll::Ready(result),
            }
        }
    }

    /// Writes what is pending.
    fn poll_flush_pending(&self, state: &mut WireState, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !state.pending.is_empty() {
            let written = ready!(self.poll_write_with(cx, |stream| stream.try_write(&state.pending)))?;
            state.pending.drain(..written);
        }
        if state.pending.capacity() > CAPACITY_KEPT {
            state.pending = Vec::new();
        }
        Poll::Ready(Ok(()))
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

/// The length of the header of a frame of `len` bytes.
fn header_len(len: usize) -> usize {
    match len {
        0..126 => 2,
        126..=0xffff => 4,
        _ => HEADER_MAX,
    }
}

/// A close frame with a code and a reason of at most 123 bytes.
fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut frame = vec![0x88, (2 + reason.len()) as u8];
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason.as_bytes());
    frame
}

/// Writes frames as WebSocket binary messages, and the server's close.
#[derive(Debug)]
pub(crate) struct WireSink {
    wire: Wire,
}

impl WireSink {
    pub(crate) fn new(wire: Wire) -> Self {
        Self { wire }
    }

    /// Writes the frames in order, pending bytes first, and flushes.
    pub(crate) async fn send(&mut self, frames: &[Frame]) -> io::Result<()> {
        for chunk in frames.chunks(FRAMES_PER_WRITE) {
            let mut sent = false;
            std::future::poll_fn(|cx| self.poll_chunk(cx, chunk, &mut sent)).await?;
        }
        Ok(())
    }

    /// Queues a close frame with the code and reason (unless a close frame
    /// went out already, such as the echo of the client's) and flushes.
    pub(crate) async fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        {
            let mut state = self.wire.lock();
            if !state.closed {
                state.pending.extend_from_slice(&close_frame(code, reason));
                state.closed = true;
            }
        }
        std::future::poll_fn(|cx| {
            let mut state = self.wire.lock();
            self.wire.poll_flush_pending(&mut state, cx)
        })
        .await?;
        socket2::SockRef::from(&self.wire.0.stream).shutdown(std::net::Shutdown::Write)
    }

    /// Flushes what is pending, then writes the chunk (once); a short
    /// write's remainder joins the pending bytes and is flushed too.
    fn poll_chunk(&self, cx: &mut Context<'_>, chunk: &[Frame], sent: &mut bool) -> Poll<io::Result<()>> {
        let mut state = self.wire.lock();
        ready!(self.wire.poll_flush_pending(&mut state, cx))?;
        if *sent {
            return Poll::Ready(Ok(()));
        }
        if state.closed {
            // The client has the close frame; a frame after it would break
            // the protocol.
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "the WebSocket is closing")));
        }
        let bytes: usize =
            chunk.iter().map(|frame| header_len(frame.body_slice().len()) + frame.body_slice().len()).sum();
        let written = SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            if bytes <= SCRATCH_BYTES {
                // Laid out whole, for one `send`.
                for frame in chunk {
                    push_header(scratch, frame.body_slice().len());
                    scratch.extend_from_slice(frame.body_slice());
                }
                let written = match self.wire.poll_write_with(cx, |stream| stream.try_write(scratch)) {
                    Poll::Ready(result) => result?,
                    // The socket is full: the whole chunk waits in `pending`.
                    Poll::Pending => 0,
                };
                state.pending.extend_from_slice(&scratch[written..]);
            } else {
                // Headers here, bodies from the frames themselves.
                for frame in chunk {
                    push_header(scratch, frame.body_slice().len());
                }
                let pieces = pieces(scratch, chunk);
                let slices: Vec<IoSlice<'_>> = pieces.iter().map(|piece| IoSlice::new(piece)).collect();
                let written = match self.wire.poll_write_with(cx, |stream| stream.try_write_vectored(&slices))
                {
                    Poll::Ready(result) => result?,
                    Poll::Pending => 0,
                };
                let mut skip = written;
                for piece in &pieces {
                    let taken = skip.min(piece.len());
                    skip -= taken;
                    state.pending.extend_from_slice(&piece[taken..]);
                }
            }
            if scratch.capacity() > SCRATCH_BYTES {
                *scratch = Vec::with_capacity(SCRATCH_BYTES);
            }
            Ok::<(), io::Error>(())
        });
        written?;
        *sent = true;
        self.wire.poll_flush_pending(&mut state, cx)
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

/// The stream tungstenite gets: reads from the socket (after whatever the
/// HTTP server read past the upgrade request), and writes that join the
/// wire's pending bytes.
#[derive(Debug)]
pub(crate) struct ControlStream {
    wire: Wire,
}

impl ControlStream {
    pub(crate) fn new(wire: Wire) -> Self {
        Self { wire }
    }
}

impl AsyncRead for ControlStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        {
            let mut state = self.wire.lock();
            if !state.read_ahead.is_empty() {
                let n = state.read_ahead.len().min(buf.remaining());
                buf.put_slice(&state.read_ahead[..n]);
                state.read_ahead.drain(..n);
                if state.read_ahead.is_empty() {
                    state.read_ahead = Vec::new();
                }
                return Poll::Ready(Ok(()));
            }
        }
        let stream = &self.wire.0.stream;
        loop {
            ready!(stream.poll_read_ready(cx))?;
            match stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl AsyncWrite for ControlStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut state = self.wire.lock();
        if state.closed {
            // A close frame went out (the server's, which tungstenite did
            // not write and so answers the client's reply to): nothing
            // follows it.
            return Poll::Ready(Ok(buf.len()));
        }
        if state.pending.len() + buf.len() > self.wire.0.pending_max {
            return Poll::Ready(Err(io::Error::other("the client does not read its control frames")));
        }
        // Whole: tungstenite hands over whole frames, and they must stay
        // whole among the data frames.
        state.pending.extend_from_slice(buf);
        state.closed = holds_close(buf);
        // Out at once, as a socket would take them: tungstenite does not
        // flush after every frame it writes (the echo of a client's close
        // among them). What the socket cannot take now waits in `pending`
        // for the next flush or data write.
        if let Poll::Ready(Err(error)) = self.wire.poll_flush_pending(&mut state, cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.wire.lock();
        self.wire.poll_flush_pending(&mut state, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.wire.lock();
        ready!(self.wire.poll_flush_pending(&mut state, cx))?;
        Poll::Ready(socket2::SockRef::from(&self.wire.0.stream).shutdown(std::net::Shutdown::Write))
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
            assert_eq!(header_len(len), header.len());
        }
        assert_eq!(close_frame(4012, "bye"), [0x88, 5, 0x0f, 0xac, b'b', b'y', b'e']);
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
