//! Validation of the names people choose: room names and display names.
//!
//! Room names are identifiers that end up in URLs, logs and keys of other
//! systems, so they are a conservative ASCII set. Display names are what people
//! call themselves, so any printable Unicode is fine, but not control
//! characters (which could forge lines in a log or a terminal) and not
//! surrounding whitespace (which makes two names look alike).

use std::sync::Arc;

/// Why a name was refused, in words meant for the person who chose it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name has no characters.
    #[error("the name is empty")]
    Empty,
    /// The name is longer than the limit.
    #[error("the name is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// The name's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A room name has a character outside `A-Z a-z 0-9 - _ . :`.
    #[error("room names may only use letters A-Z, digits and - _ . : (found {0:?})")]
    RoomCharacter(char),
    /// A display name has a control character.
    #[error("display names may not contain control characters")]
    ControlCharacter,
    /// A display name starts or ends with whitespace.
    #[error("display names may not start or end with spaces")]
    SurroundingWhitespace,
}

/// Checks a room name and returns it in the shared form rooms keep.
pub fn validate_room_name(name: &str, max_bytes: usize) -> Result<Arc<str>, NameError> {
    check_length(name, max_bytes)?;
    if let Some(bad) =
        name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(NameError::RoomCharacter(bad));
    }
    Ok(Arc::from(name))
}

/// Checks a display name and returns it in the shared form rooms keep.
pub fn validate_display_name(name: &str, max_bytes: usize) -> Result<Arc<str>, NameError> {
    check_length(name, max_bytes)?;
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    if name.trim() != name {
        return Err(NameError::SurroundingWhitespace);
    }
    Ok(Arc::from(name))
}

fn check_length(name: &str, max_bytes: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > max_bytes {
        return Err(NameError::TooLong { len: name.len(), max: max_bytes });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        let check = |name: &str| validate_room_name(name, 16).map(|n| n.to_string());
        assert_eq!(check("lobby"), Ok("lobby".into()));
        assert_eq!(check("team-7_a.b:c"), Ok("team-7_a.b:c".into()));
        assert_eq!(check(""), Err(NameError::Empty));
        assert_eq!(check("a".repeat(17).as_str()), Err(NameError::TooLong { len: 17, max: 16 }));
        assert_eq!(check("two words"), Err(NameError::RoomCharacter(' ')));
        assert_eq!(check("café"), Err(NameError::RoomCharacter('é')));
        assert_eq!(check("a/b"), Err(NameError::RoomCharacter('/')));
    }

    #[test]
    fn display_names() {
        let check = |name: &str| validate_display_name(name, 16).map(|n| n.to_string());
        assert_eq!(check("Zoë Ångström"), Ok("Zoë Ångström".into()));
        assert_eq!(check("李雷"), Ok("李雷".into()));
        assert_eq!(check(""), Err(NameError::Empty));
        assert_eq!(check("bob\nroot: hi"), Err(NameError::ControlCharacter));
        assert_eq!(check("\u{1b}[31mred"), Err(NameError::ControlCharacter));
        assert_eq!(check(" bob"), Err(NameError::SurroundingWhitespace));
        // Length is in bytes: six three-byte characters are 18 bytes.
        assert_eq!(check("李雷李雷李雷"), Err(NameError::TooLong { len: 18, max: 16 }));
    }
}
