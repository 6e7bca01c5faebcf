//! The WebTransport link: frames on one bidirectional stream with a length
//! prefix, ephemeral frames as datagrams.

use crate::channel::{self, Receiver};
use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{
    ReadableStreamDefaultReader, ReadableStreamReadResult, WebTransport, WebTransportCloseInfo,
    WebTransportHash, WebTransportOptions, WritableStreamDefaultWriter,
};

use crate::framing::{StreamBuffer, prefixed};
use crate::link::{Events, LinkEnd, LinkEvent, describe};

/// An established WebTransport session with its frame stream.
#[derive(Debug)]
pub struct WebTransportLink {
    transport: WebTransport,
    /// The frame stream's writer.
    stream: WritableStreamDefaultWriter,
    /// The datagram writer.
    datagrams: WritableStreamDefaultWriter,
}

/// Whether this browser has the WebTransport API at all (it is missing in
/// some browsers, and on plain-http pages that are not a secure context).
pub fn available() -> bool {
    js_sys::Reflect::has(&js_sys::global(), &JsValue::from_str("WebTransport")).unwrap_or(false)
}

impl WebTransportLink {
    /// Opens a session at `url`, trusting certificates with the given SHA-256
    /// hashes (none: the browser's usual verification), and opens the frame
    /// stream. Events arrive on the returned channel.
    pub async fn open(
        url: &str,
        hashes: &[Vec<u8>],
        max_frame: usize,
    ) -> Result<(Self, Receiver<LinkEvent>), String> {
        let options = WebTransportOptions::new();
        if !hashes.is_empty() {
            let hashes: Vec<WebTransportHash> = hashes
                .iter()
                .map(|hash| {
                    let entry = WebTransportHash::new();
                    entry.set_algorithm("sha-256");
                    entry.set_value_u8_array(&Uint8Array::from(hash.as_slice()));
                    entry
                })
                .collect();
            options.set_server_certificate_hashes(&hashes);
        }
        let transport = WebTransport::new_with_options(url, &options).map_err(|e| describe(&e))?;
        // A refused session rejects `ready` and `closed` both; this keeps the
        // second rejection from being reported as unhandled.
        let closed = transport.closed();
        if let Err(error) = transport.ready().await {
            spawn_local(async move {
                let _ = closed.await;
            });
            return Err(describe(&error));
        }
        let bidi = transport.create_bidirectional_stream().await.map_err(|e| describe(&e))?;
        let stream = bidi.writable().get_writer().map_err(|e| describe(&e))?;
        let datagrams = transport.datagrams().writable().get_writer().map_err(|e| describe(&e))?;
        let (events, receiver) = channel::unbounded();

        let reader: ReadableStreamDefaultReader = bidi.readable().get_reader().unchecked_into();
        spawn_local(read_stream(reader, events.clone(), max_frame));
        let datagram_reader: ReadableStreamDefaultReader =
            transport.datagrams().readable().get_reader().unchecked_into();
        spawn_local(read_datagrams(datagram_reader, events.clone()));
        spawn_local(async move {
            // The server closes a session with a code and text (a
            // WT_CLOSE_SESSION capsule), which `closed` resolves with, just
            // as a WebSocket close frame carries them.
            let end = match closed.await {
                Ok(info) => {
                    let info: WebTransportCloseInfo = info.unchecked_into();
                    LinkEnd::closed(
                        "WebTransport",
                        info.get_close_code().unwrap_or(0),
                        info.get_reason().unwrap_or_default(),
                    )
                }
                Err(error) => LinkEnd::broken(format!("WebTransport session failed: {}", describe(&error))),
            };
            let _ = events.unbounded_send(LinkEvent::Closed(end));
        });
        Ok((Self { transport, stream, datagrams }, receiver))
    }

    /// Sends a frame body on the stream.
    pub fn send(&self, body: &[u8]) -> Result<(), JsValue> {
        write(&self.stream, &prefixed(body))
    }

    /// Sends a frame body as a datagram.
    pub fn send_datagram(&self, body: &[u8]) -> Result<(), JsValue> {
        write(&self.datagrams, body)
    }

    /// Closes the session.
    pub fn close(&self) {
        self.transport.close();
    }
}

impl Drop for WebTransportLink {
    fn drop(&mut self) {
        self.transport.close();
    }
}

/// Queues a chunk on a writer. Writes complete in order; a failed write
/// means the session is ending, which the `closed` watcher reports.
fn write(writer: &WritableStreamDefaultWriter, bytes: &[u8]) -> Result<(), JsValue> {
    let promise = writer.write_with_chunk(&Uint8Array::from(bytes));
    spawn_local(async move {
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    });
    Ok(())
}

/// Reads the next chunk, or `None` at the end of the stream or on an error.
async fn next_chunk(reader: &ReadableStreamDefaultReader) -> Option<Vec<u8>> {
    let result = wasm_bindgen_futures::JsFuture::from(reader.read()).await.ok()?;
    let result: ReadableStreamReadResult = result.unchecked_into();
    if result.get_done().unwrap_or(true) {
        return None;
    }
    Some(result.get_value().dyn_into::<Uint8Array>().ok()?.to_vec())
}

async fn read_stream(reader: ReadableStreamDefaultReader, events: Events, max_frame: usize) {
    let mut buffer = StreamBuffer::default();
    while let Some(chunk) = next_chunk(&reader).await {
        match buffer.push(&chunk, max_frame) {
            Ok(frames) => {
                for frame in frames {
                    if events.unbounded_send(LinkEvent::Frame(frame)).is_err() {
                        return;
                    }
                }
            }
            Err(error) => {
                let end = LinkEnd::broken(format!("bad stream from the server: {error}"));
                let _ = events.unbounded_send(LinkEvent::Closed(end));
                return;
            }
        }
    }
    // The end of the stream is not the end of the session: the server ends
    // its stream before it closes the session with a code, which the
    // `closed` watcher reports.
}

async fn read_datagrams(reader: ReadableStreamDefaultReader, events: Events) {
    while let Some(datagram) = next_chunk(&reader).await {
        if events.unbounded_send(LinkEvent::Frame(datagram)).is_err() {
            return;
        }
    }
}
