//! Orders for every server sharing the Redis, on one channel all of them
//! follow (`Keys::control`): the application's backend disconnecting a
//! user's sessions, or one session, wherever they are connected.
//!
//! An order is `{kind} {node} {reason length} {reason}{target}`: `u` for a
//! user (the target is their id), `s` for a session (its id); `node` is the
//! server that sent it, which has already closed its own sessions.

use wtchat_core::broker::Disconnect;

/// An order as it goes on the channel.
pub fn order(node_id: u64, target: &Disconnect, reason: Option<&str>) -> Vec<u8> {
    let reason = reason.unwrap_or_default();
    let (kind, target) = match target {
        Disconnect::User(user) => ('u', user.clone()),
        Disconnect::Session(id) => ('s', id.to_string()),
    };
    format!("{kind} {node_id} {} {reason}{target}", reason.len()).into_bytes()
}

/// An order read back: the server that sent it, whom it disconnects and
/// why. `None` for anything else.
pub fn parse(bytes: &[u8]) -> Option<(u64, Disconnect, Option<String>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (kind, rest) = text.split_once(' ')?;
    let (node, rest) = rest.split_once(' ')?;
    let (reason_len, rest) = rest.split_once(' ')?;
    let reason_len: usize = reason_len.parse().ok()?;
    let reason = rest.get(..reason_len)?;
    let target = rest.get(reason_len..)?;
    let target = match kind {
        "u" if !target.is_empty() => Disconnect::User(target.to_owned()),
        "s" => Disconnect::Session(target.parse().ok()?),
        _ => return None,
    };
    Some((node.parse().ok()?, target, (!reason.is_empty()).then(|| reason.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_reads_back_as_it_was_given() {
        for (target, reason) in [
            (Disconnect::User("troll@example.com".into()), Some("spam, 3 times")),
            (Disconnect::User("名前 with spaces".into()), None),
            (Disconnect::Session(7 << 32 | 12), Some("ünïcode")),
        ] {
            let order = order(7, &target, reason);
            assert_eq!(parse(&order), Some((7, target, reason.map(str::to_owned))));
        }
        for junk in [&b""[..], b"u 7", b"u 7 99 short", b"x 7 0 a", b"s 7 0 nan", b"u 7 0 ", b"\xff"] {
            assert_eq!(parse(junk), None, "{junk:?}");
        }
    }
}
