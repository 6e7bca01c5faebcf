//! The WebSocket link: one binary message per frame.

use crate::channel::{self, Receiver};
use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::link::{Events, LinkEnd, LinkEvent, describe};

/// An open (or opening) WebSocket and the handlers that feed its events.
#[derive(Debug)]
pub struct WebSocketLink {
    socket: WebSocket,
    /// Kept alive for as long as the socket may call them.
    _handlers: [Closure<dyn FnMut(JsValue)>; 3],
}

impl WebSocketLink {
    /// Starts opening a WebSocket; its events arrive on the returned channel,
    /// [`LinkEvent::Opened`] first.
    pub fn open(url: &str) -> Result<(Self, Receiver<LinkEvent>), String> {
        let socket = WebSocket::new(url).map_err(|e| describe(&e))?;
        socket.set_binary_type(BinaryType::Arraybuffer);
        let (events, receiver) = channel::unbounded();
        let handler =
            |events: Events, f: fn(&Events, JsValue)| Closure::new(move |event: JsValue| f(&events, event));
        let on_open = handler(events.clone(), |events, _| {
            let _ = events.unbounded_send(LinkEvent::Opened);
        });
        let on_message = handler(events.clone(), |events, event| {
            let Ok(event) = event.dyn_into::<MessageEvent>() else { return };
            if let Ok(buffer) = event.data().dyn_into::<ArrayBuffer>() {
                let _ = events.unbounded_send(LinkEvent::Frame(Uint8Array::new(&buffer).to_vec()));
            }
        });
        let on_close = handler(events, |events, event| {
            let end = match event.dyn_into::<CloseEvent>() {
                Ok(close) => LinkEnd::closed("WebSocket", u32::from(close.code()), close.reason()),
                Err(_) => LinkEnd::broken("WebSocket closed"),
            };
            let _ = events.unbounded_send(LinkEvent::Closed(end));
        });
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok((Self { socket, _handlers: [on_open, on_message, on_close] }, receiver))
    }

    /// Sends a frame body as one binary message.
    pub fn send(&self, body: &[u8]) -> Result<(), JsValue> {
        self.socket.send_with_u8_array(body)
    }

    /// Closes the socket normally.
    pub fn close(&self) {
        let _ = self.socket.close_with_code(1000);
    }
}

impl Drop for WebSocketLink {
    fn drop(&mut self) {
        // The handlers are about to be freed; the socket must not call them.
        self.socket.set_onopen(None);
        self.socket.set_onmessage(None);
        self.socket.set_onclose(None);
        let _ = self.socket.close_with_code(1000);
    }
}
