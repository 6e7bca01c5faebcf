//! Invariants that span the two adapters.

use wtchat_core::arrival::{Arrival, TransportKind};
use wtchat_core::session::{Inbound, Session};
use wtchat_protocol::{ClientFrame, ClientMessage, PROTOCOL_VERSION, encode};

use crate::Hub;

/// What a client says, as a transport hands it to the core.
fn said(request_id: u32, message: ClientMessage) -> Inbound {
    Inbound::Frame(encode(&ClientFrame { request_id, message }).into())
}

/// The core encodes a message once; each adapter sends a view of that one
/// allocation, never a copy.
#[tokio::test]
async fn websocket_and_webtransport_members_get_views_of_one_allocation() {
    use tokio_tungstenite::tungstenite::Message;
    let config = crate::Config::default();
    let hub = Hub::new(config.hub_config(), None, None);
    let now = tokio::time::Instant::now();
    let mut sessions: Vec<_> =
        (0..2).map(|_| Session::open(&hub, Arrival::local(TransportKind::WebSocket))).collect();
    let version = u16::from(PROTOCOL_VERSION);
    for session in &mut sessions {
        let hello =
            ClientMessage::Hello { protocol_version: version, client_name: "t".into(), fallback: None };
        let join = ClientMessage::Join { room: "shared".into(), display_name: "t".into(), resume: None };
        session.receive(said(1, hello), now);
        session.receive(said(2, join), now);
    }
    let publish = ClientMessage::Publish { room: "shared".into(), body: "one copy".into(), message_id: None };
    sessions[0].receive(said(3, publish), now);
    let last_frame = |session: &wtchat_core::session::Session| {
        let mut batch = Vec::new();
        futures_util::FutureExt::now_or_never(session.outbox().next(&mut batch));
        batch.pop().unwrap()
    };
    // Member 0 is on WebSocket, member 1 on WebTransport.
    let over_websocket = crate::websocket::binary_message(last_frame(&sessions[0]));
    let stream = crate::webtransport::stream_bytes(last_frame(&sessions[1]));
    let Message::Binary(body) = over_websocket else { panic!("not a binary message") };
    assert_eq!(
        body.as_ptr(),
        stream.as_ptr().wrapping_add(wtchat_protocol::LENGTH_PREFIX_BYTES),
        "the WebSocket body is not a view of the WebTransport member's frame"
    );
    assert_eq!(&stream[wtchat_protocol::LENGTH_PREFIX_BYTES..], &body[..]);
}
