//! `wtchat chat`: a terminal client. Lines typed on stdin are published to
//! the current room; `/join ROOM`, `/leave`, `/quit` do what they say.
//! Everything that arrives is printed one event per line, so the client
//! serves people and scripts alike.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use wtchat_protocol::{ClientFrame, ClientMessage, PresenceChange, ServerMessage, decode, encode};

use crate::dial::{Dialer, Received, Refused, Transport};

/// Options of `wtchat chat`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatArgs {
    /// The server's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub server: SocketAddr,
    /// The transport.
    #[arg(long, value_enum, default_value = "auto")]
    pub transport: Transport,
    /// The name others see.
    #[arg(long)]
    pub name: String,
    /// The room to join first.
    #[arg(long, default_value = "lobby")]
    pub room: String,
    /// A token (JWT) for servers that require one.
    #[arg(long, env = "WTCHAT_TOKEN", hide_env_values = true, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding the token, read at connect and read again whenever
    /// the server says the token is about to expire, so that whatever
    /// keeps the file fresh keeps the session going.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

impl ChatArgs {
    /// The token as its source has it now.
    fn current_token(&self) -> Result<Option<String>> {
        match &self.token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the token file {}", path.display()))?;
                Ok(Some(text.trim().to_owned()))
            }
            None => Ok(self.token.clone()),
        }
    }
}

/// How many times the client follows a refusal's retry hint before it
/// gives up.
const REFUSALS_FOLLOWED: u32 = 10;

/// Runs the terminal client until stdin ends, `/quit`, or the server closes.
pub async fn run(args: ChatArgs) -> Result<()> {
    let mut dialer = Dialer::new(args.server).await?.with_token(args.current_token()?);
    let mut refusals = 0;
    let session = loop {
        match dialer.open(args.transport, "wtchat-chat").await {
            Ok(session) => break session,
            Err(error) => {
                // An overloaded server says when to come back; the hint is
                // already spread at random, so following it as given keeps
                // clients from returning all at once.
                let Some(Refused(closing)) = error.downcast_ref::<Refused>() else { return Err(error) };
                refusals += 1;
                if !closing.code.should_reconnect() || refusals > REFUSALS_FOLLOWED {
                    return Err(error);
                }
                let wait = Duration::from_millis(u64::from(closing.retry_after_ms.unwrap_or(1_000)));
                println!("* {}; trying again in {} ms", printable(&error.to_string()), wait.as_millis());
                tokio::time::sleep(wait).await;
            }
        }
    };
    let transport = match session.transport {
        Transport::Wt => "WebTransport",
        _ => "WebSocket",
    };
    println!("* connected over {transport} as session {}", session.welcome.session_id);
    let (mut outgoing, mut incoming) = (session.outgoing, session.incoming);
    let heartbeat = Duration::from_millis(u64::from(session.welcome.heartbeat_interval_ms));
    let mut request_id = 0u32;
    let mut frame = |message: ClientMessage| {
        request_id += 1;
        encode(&ClientFrame { request_id, message })
    };
    let mut room = args.room.clone();
    outgoing
        .send(&frame(ClientMessage::Join {
            room: room.clone(),
            display_name: args.name.clone(),
            resume: None,
        }))
        .await?;

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut ticker = tokio::time::interval(heartbeat);
    let mut nonce = 0;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else {
                    // End of input: give what was sent a moment to leave,
                    // then say goodbye.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return Ok(());
                };
                let line = line.trim_end();
                if let Some(next) = line.strip_prefix("/join ") {
                    room = next.trim().to_owned();
                    outgoing.send(&frame(ClientMessage::Join { room: room.clone(), display_name: args.name.clone(), resume: None })).await?;
                } else if line == "/leave" {
                    outgoing.send(&frame(ClientMessage::Leave { room: room.clone() })).await?;
                } else if line == "/quit" {
                    return Ok(());
                } else if !line.is_empty() {
                    outgoing.send(&frame(ClientMessage::Publish { room: room.clone(), body: line.to_owned(), message_id: None })).await?;
                }
            }
            received = incoming.next() => match received {
                Some(Received::Frame(body)) => match decode::<ServerMessage>(&body, usize::MAX) {
                    Ok(message) => {
                        if let Some(line) = describe(&message) {
                            println!("{line}");
                        }
                        if let ServerMessage::TokenExpiring(_) = message {
                            match args.token_file.as_ref().map(|_| args.current_token()) {
                                Some(Ok(Some(token))) => outgoing.send(&frame(ClientMessage::RefreshToken { token })).await?,
                                Some(Err(error)) => println!("! cannot refresh the token: {error:#}"),
                                _ => println!("* no --token-file to refresh the token from; the session ends when it expires"),
                            }
                        }
                        if let ServerMessage::Closing(closing) = message {
                            if !closing.code.should_reconnect() {
                                bail!("the server closed the session: {}", printable(&closing.text));
                            }
                        }
                    }
                    Err(error) => println!("! bad frame from the server: {error}"),
                },
                Some(Received::Closed(why)) => {
                    println!("* disconnected: {}", printable(&why));
                    return Ok(());
                }
                None => return Ok(()),
            },
            _ = ticker.tick() => {
                nonce += 1;
                outgoing.send(&frame(ClientMessage::Ping { nonce })).await?;
            }
        }
    }
}

/// One line for an event, or nothing for bookkeeping messages. Everything
/// others chose (names, rooms, bodies) and every text of the server goes
/// through [`printable`].
fn describe(message: &ServerMessage) -> Option<String> {
    let p = printable;
    Some(match message {
        ServerMessage::Joined(joined) => {
            let names: Vec<String> = joined.members.iter().map(|m| p(&m.name)).collect();
            let more = (joined.member_count as usize).saturating_sub(names.len());
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            format!(
                "* joined {} ({} members: {}{more})",
                p(&joined.room),
                joined.member_count,
                names.join(", ")
            )
        }
        ServerMessage::Message(m) => line(m),
        ServerMessage::History(page) => page.messages.iter().map(line).collect::<Vec<_>>().join("\n"),
        ServerMessage::PresenceDiff(diff) if diff.changes.is_empty() => format!(
            "* {} joined and {} left {} ({} members)",
            diff.joins,
            diff.leaves,
            p(&diff.room),
            diff.member_count
        ),
        ServerMessage::PresenceDiff(diff) => diff
            .changes
            .iter()
            .map(|change| {
                let verb = match change.change {
                    PresenceChange::Joined => "joined",
                    PresenceChange::Left => "left",
                    PresenceChange::Disconnected => "disconnected from",
                };
                format!("* {} {verb} {}", p(&change.member.name), p(&diff.room))
            })
            .collect::<Vec<_>>()
            .join("\n"),
        ServerMessage::Members(page) => {
            let names: Vec<String> = page.members.iter().map(|m| p(&m.name)).collect();
            format!("* members of {} ({}): {}", p(&page.room), page.member_count, names.join(", "))
        }
        ServerMessage::Typing(t) => format!("* {} is typing in {}", p(&t.member.name), p(&t.room)),
        ServerMessage::Left(left) => format!("* left {}", p(&left.room)),
        ServerMessage::Error(e) => format!("! {}: {}", e.code, p(&e.text)),
        ServerMessage::Closing(c) => {
            format!(
                "! the server is closing the session: {} ({}), retry after {:?} ms",
                p(&c.text),
                c.code,
                c.retry_after_ms
            )
        }
        ServerMessage::TokenExpiring(notice) => {
            format!("* the token expires in {} s", notice.expires_in_ms.div_ceil(1_000))
        }
        ServerMessage::TokenRefreshed(fresh) => {
            format!("* token refreshed; it expires in {} s", fresh.expires_in_ms.div_ceil(1_000))
        }
        ServerMessage::Welcome(_) | ServerMessage::Pong(_) | ServerMessage::Published(_) => return None,
    })
}

/// A chat message as one line.
fn line(m: &wtchat_protocol::ChatMessage) -> String {
    let p = printable;
    format!("[{} #{}] {}: {}", p(&m.room), m.seq, p(&m.sender.name), p(&m.body))
}

/// Text from others, safe for a terminal: control characters (which can
/// move the cursor, recolour, retitle the window or start a new line that
/// looks like someone else's), line and paragraph separators and
/// bidirectional overrides are written as escapes such as `\u{1b}`.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let unsafe_here = c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c);
        if unsafe_here {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn what_could_steer_a_terminal_is_escaped() {
        assert_eq!(printable("plain text, ünïcödé"), "plain text, ünïcödé");
        assert_eq!(printable("\x1b]0;title\x07"), "\\u{1b}]0;title\\u{7}");
        assert_eq!(printable("a\nb\rc"), "a\\u{a}b\\u{d}c");
        assert_eq!(printable("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(printable("x\u{2028}y\u{9b}"), "x\\u{2028}y\\u{9b}");
    }
}
