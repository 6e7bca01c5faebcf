//! A member's name for its own message, which makes a publish safe to
//! repeat: the id is checked, and turned into the key the message's
//! receipt is kept under, in the room (a server alone) or in the broker.

use wtchat_protocol::MESSAGE_ID_MAX_BYTES;

/// Why a message id was refused.
pub fn invalid(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("the message id is empty".into());
    }
    (id.len() > MESSAGE_ID_MAX_BYTES)
        .then(|| format!("the message id is {} bytes; at most {MESSAGE_ID_MAX_BYTES} are allowed", id.len()))
}

/// The key a member's message is remembered under: the id within its
/// user's (their token's subject), so that no other user can answer for
/// it, or the id alone for a client without a token, whose ids are its
/// own random choice. The user's name is length-prefixed, so that no
/// user and id can spell another's key, and the prefix keeps them apart
/// from the backend's idempotency keys.
pub fn receipt_key(user: Option<&str>, id: &str) -> String {
    match user {
        Some(user) => format!("u{}:{user}{id}", user.len()),
        None => format!("c:{id}"),
    }
}

/// The key a backend's post with an idempotency key is remembered under
/// in the broker, beside the members' ids.
pub fn backend_receipt_key(key: &str) -> String {
    format!("a:{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bounded_and_keys_are_kept_apart_by_user() {
        assert!(invalid("").is_some());
        assert!(invalid(&"x".repeat(MESSAGE_ID_MAX_BYTES)).is_none());
        assert!(invalid(&"x".repeat(MESSAGE_ID_MAX_BYTES + 1)).is_some());
        assert_ne!(receipt_key(Some("ab"), "c"), receipt_key(Some("a"), "bc"));
        assert_ne!(receipt_key(Some("ada"), "1"), receipt_key(Some("bob"), "1"));
        assert_ne!(receipt_key(None, "1"), backend_receipt_key("1"));
        assert_ne!(receipt_key(None, "1"), receipt_key(Some(""), "1"));
    }
}
