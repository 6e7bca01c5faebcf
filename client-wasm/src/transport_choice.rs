//! Choosing the transport: WebTransport where it works, WebSocket where it
//! does not, without making anyone wait for a full timeout.
//!
//! WebTransport starts first. If it has not answered the server's welcome
//! within a short head start, WebSocket starts too, and whichever answers
//! first wins; the other is closed. A WebTransport failure (no API, UDP
//! blocked, certificate refused) starts WebSocket at once. The winner is
//! remembered: a browser where WebSocket won last time gives WebTransport no
//! head start, so its next visit is not slower for having tried.

use futures::future::{Fuse, FutureExt};
use futures::{StreamExt, pin_mut, select_biased};
use wasm_bindgen_futures::spawn_local;

use crate::channel::Receiver;
use wtchat_protocol::{Closing, FallbackReason, ServerMessage, Welcome, decode};

use crate::discovery::Plan;
use crate::link::{Link, LinkEnd, LinkEvent, TransportKind};
use crate::time::sleep;
use crate::websocket::WebSocketLink;
use crate::webtransport::{self, WebTransportLink};

/// How the client chooses.
#[derive(Debug, Clone)]
pub struct Choice {
    /// Use WebSocket only.
    pub force_websocket: bool,
    /// How long WebTransport runs alone before WebSocket starts too.
    pub head_start_ms: f64,
    /// How long WebTransport may take before it counts as failed.
    pub webtransport_timeout_ms: f64,
    /// The winner of the last visit, if remembered.
    pub remembered: Option<TransportKind>,
    /// The largest frame the client accepts.
    pub max_frame: usize,
}

/// An established, greeted connection.
pub struct Established {
    /// The connection.
    pub link: Link,
    /// Its events, after the welcome.
    pub events: Receiver<LinkEvent>,
    /// The server's welcome.
    pub welcome: Welcome,
    /// Why this transport, and why not the other.
    pub reason: String,
    /// Why the other transport lost, if it was in the race.
    pub other: Option<String>,
}

/// Why no connection was established.
#[derive(Debug)]
pub enum AttemptError {
    /// The server answered and turned the session away (overloaded, an
    /// invalid token): the other transport would be turned away too, so
    /// the client follows the notice instead of trying it.
    Refused(Closing),
    /// The connection could not be made or broke before the welcome.
    Failed(String),
}

impl From<String> for AttemptError {
    fn from(why: String) -> Self {
        Self::Failed(why)
    }
}

impl From<&str> for AttemptError {
    fn from(why: &str) -> Self {
        Self::Failed(why.to_owned())
    }
}

type Attempt = Result<(Link, Receiver<LinkEvent>, Welcome), AttemptError>;

/// Connects over the best transport that works, sending the hello frame
/// that `hello` makes and waiting for the welcome. A WebSocket attempt's
/// hello carries the reason WebSocket is being tried, so that the server can
/// count how often, and why, WebTransport is not used.
pub async fn establish(
    plan: &Plan,
    choice: &Choice,
    hello: impl Fn(Option<FallbackReason>) -> Vec<u8>,
) -> Result<Established, AttemptError> {
    let skip_webtransport = if choice.force_websocket {
        Some((FallbackReason::REQUESTED, "WebSocket was requested".to_owned()))
    } else if plan.webtransport.is_none() {
        Some((FallbackReason::NOT_OFFERED, "the server offers no WebTransport".to_owned()))
    } else if !webtransport::available() {
        Some((
            FallbackReason::UNSUPPORTED,
            "this browser has no WebTransport here (an old browser, or a page that is not a secure context)"
                .to_owned(),
        ))
    } else {
        None
    };
    let websocket_url = plan.websocket.url.clone();
    if let Some((reason, why)) = skip_webtransport {
        let (link, events, welcome) = attempt_websocket(websocket_url, hello(Some(reason))).await?;
        return Ok(Established { link, events, welcome, reason: why.clone(), other: Some(why) });
    }
    let Some(wt) = plan.webtransport.clone() else { return Err("no transport".into()) };

    let remembered_websocket = choice.remembered == Some(TransportKind::WebSocket);
    let head_start = if remembered_websocket { 0.0 } else { choice.head_start_ms };
    let timeout = choice.webtransport_timeout_ms;
    let wt_attempt = Box::pin(
        {
            let hello = hello(None);
            let max_frame = choice.max_frame;
            async move {
                select_biased! {
                    result = attempt_webtransport(wt.url, wt.certificate_hashes, max_frame, hello).fuse() => {
                        result.map_err(|error| (FallbackReason::FAILED, error))
                    }
                    () = sleep(timeout).fuse() => Err((
                        FallbackReason::TIMEOUT,
                        AttemptError::Failed(format!("WebTransport was not ready within {} ms", timeout as u64)),
                    )),
                }
            }
        }
        .fuse(),
    );
    let mut wt_attempt = wt_attempt;
    let websocket_start = sleep(head_start).fuse();
    let websocket_attempt = Fuse::terminated();
    pin_mut!(websocket_start, websocket_attempt);
    let mut websocket_started = false;
    let mut webtransport_error: Option<String> = None;
    let mut websocket_error: Option<String> = None;
    // WebSocket started beside a WebTransport attempt that has not answered:
    // if it wins, WebTransport was too slow (or its packets are dropped).
    let racing_reason = if remembered_websocket { FallbackReason::REMEMBERED } else { FallbackReason::SLOW };
    loop {
        select_biased! {
            result = wt_attempt => match result {
                Ok((link, events, welcome)) => {
                    let other = if websocket_started {
                        "WebTransport answered first".to_owned()
                    } else {
                        format!("WebTransport answered within its {} ms head start", head_start as u64)
                    };
                    return Ok(Established {
                        link,
                        events,
                        welcome,
                        reason: "WebTransport works here".into(),
                        other: Some(other),
                    });
                }
                Err((_, AttemptError::Refused(closing))) => return Err(AttemptError::Refused(closing)),
                Err((reason, AttemptError::Failed(error))) => {
                    webtransport_error = Some(error);
                    if !websocket_started {
                        websocket_started = true;
                        websocket_attempt.set(attempt_websocket(websocket_url.clone(), hello(Some(reason))).fuse());
                    } else if let Some(websocket_error) = &websocket_error {
                        return Err(both_failed(webtransport_error.as_deref(), websocket_error).into());
                    }
                }
            },
            () = websocket_start => {
                if !websocket_started {
                    websocket_started = true;
                    let hello = hello(Some(racing_reason));
                    websocket_attempt.set(attempt_websocket(websocket_url.clone(), hello).fuse());
                }
            }
            result = websocket_attempt => match result {
                Ok((link, events, welcome)) => {
                    let why = match webtransport_error.take() {
                        Some(error) => format!("WebTransport failed: {error}"),
                        None => {
                            // Still trying: let it finish in the background
                            // and close whatever it opens.
                            spawn_local(async move {
                                if let Ok((late, _, _)) = wt_attempt.await {
                                    late.close();
                                }
                            });
                            format!("WebSocket answered first (WebTransport not ready after a {} ms head start)", head_start as u64)
                        }
                    };
                    return Ok(Established { link, events, welcome, reason: why.clone(), other: Some(why) });
                }
                Err(AttemptError::Refused(closing)) => return Err(AttemptError::Refused(closing)),
                Err(AttemptError::Failed(error)) => {
                    if let Some(webtransport_error) = &webtransport_error {
                        return Err(both_failed(Some(webtransport_error), &error).into());
                    }
                    websocket_error = Some(error);
                }
            },
        }
    }
}

fn both_failed(webtransport: Option<&str>, websocket: &str) -> String {
    format!("WebTransport failed ({}); WebSocket failed ({websocket})", webtransport.unwrap_or("not tried"))
}

async fn attempt_webtransport(
    url: String,
    hashes: Vec<Vec<u8>>,
    max_frame: usize,
    hello: Vec<u8>,
) -> Attempt {
    let (link, events) = WebTransportLink::open(&url, &hashes, max_frame).await?;
    greet(Link::WebTransport(link), events, &hello, max_frame).await
}

async fn attempt_websocket(url: String, hello: Vec<u8>) -> Attempt {
    let (link, mut events) = WebSocketLink::open(&url)?;
    match events.next().await {
        Some(LinkEvent::Opened) => {}
        Some(LinkEvent::Closed(end)) => return Err(refusal_or_failure(end)),
        _ => return Err("WebSocket closed before it opened".into()),
    }
    greet(Link::WebSocket(link), events, &hello, usize::MAX).await
}

/// Says hello on an open link and waits for the welcome.
async fn greet(link: Link, mut events: Receiver<LinkEvent>, hello: &[u8], max_frame: usize) -> Attempt {
    link.send(hello).map_err(|e| crate::link::describe(&e))?;
    loop {
        match events.next().await {
            Some(LinkEvent::Frame(body)) => match decode::<ServerMessage>(&body, max_frame) {
                Ok(ServerMessage::Welcome(welcome)) => return Ok((link, events, welcome)),
                Ok(ServerMessage::Closing(closing)) => return Err(AttemptError::Refused(closing)),
                // Named, not printed: printing would link every protocol
                // type's Debug into the client.
                Ok(_) => return Err("the server's first frame was not a welcome".to_owned().into()),
                Err(error) => return Err(format!("bad frame from the server: {error}").into()),
            },
            Some(LinkEvent::Opened) => {}
            Some(LinkEvent::Closed(end)) => return Err(refusal_or_failure(end)),
            None => return Err("the connection ended before the welcome".into()),
        }
    }
}

/// A link that closed before its welcome: a refusal when the close carried
/// one of the server's codes (its notice frame may not have arrived, as when
/// QUIC drops unread stream data), a failure of the transport otherwise.
fn refusal_or_failure(end: LinkEnd) -> AttemptError {
    match end.as_closing() {
        Some(closing) => AttemptError::Refused(closing),
        None => end.why.into(),
    }
}
