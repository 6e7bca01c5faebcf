//! Validation of the names people choose: room names and display names.
//!
//! Room names are identifiers that end up in URLs, logs and keys of other
//! systems, so they are a conservative ASCII set. Display names are what people
//! call themselves, so any printable Unicode is fine, except what lets one
//! name pass for another or forge text around it:
//! - control characters and line or paragraph separators (a new line in a
//!   log or a terminal that looks like someone else's);
//! - bidirectional overrides, embeddings, isolates and marks (a name shown
//!   backwards, or text after it reordered);
//! - invisible characters that no script needs (zero-width space, word
//!   joiner, byte-order mark, soft hyphen, invisible operators), which make
//!   `al\u{200b}ice` look like `alice`;
//! - names made only of invisible characters and spaces;
//! - surrounding whitespace (which makes two names look alike).
//!
//! The zero-width joiner and non-joiner stay allowed inside a name: emoji
//! sequences and several scripts need them. Names are kept as given, not
//! normalised; two names that differ only in normalisation are two names.

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
    /// A display name has a bidirectional control character.
    #[error("display names may not contain bidirectional controls (found U+{0:04X})")]
    BidiControl(u32),
    /// A display name has an invisible character no script needs.
    #[error("display names may not contain invisible characters (found U+{0:04X})")]
    Invisible(u32),
    /// A display name shows nothing.
    #[error("display names must show at least one visible character")]
    NothingVisible,
}

/// Bidirectional formatting characters: marks, embeddings, overrides and
/// isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Invisible characters that no writing system needs in a name.
fn is_needless_invisible(c: char) -> bool {
    matches!(c, '\u{00ad}' | '\u{034f}' | '\u{180e}' | '\u{200b}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

/// Characters that show nothing on their own: spaces, joiners and the
/// invisible ones.
fn shows_nothing(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200c}' | '\u{200d}') || is_needless_invisible(c)
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
    if name.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
        return Err(NameError::ControlCharacter);
    }
    if let Some(c) = name.chars().find(|&c| is_bidi_control(c)) {
        return Err(NameError::BidiControl(c.into()));
    }
    if let Some(c) = name.chars().find(|&c| is_needless_invisible(c)) {
        return Err(NameError::Invisible(c.into()));
    }
    if name.chars().all(shows_nothing) {
        return Err(NameError::NothingVisible);
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

    #[test]
    fn names_that_pass_for_others_or_steer_text_are_refused() {
        let check = |name: &str| validate_display_name(name, 64).map(|n| n.to_string());
        assert_eq!(check("al\u{200b}ice"), Err(NameError::Invisible(0x200b)));
        assert_eq!(check("\u{feff}bob"), Err(NameError::Invisible(0xfeff)));
        assert_eq!(check("eve\u{202e}nimda"), Err(NameError::BidiControl(0x202e)));
        assert_eq!(check("\u{2067}x"), Err(NameError::BidiControl(0x2067)));
        assert_eq!(check("a\u{2028}b"), Err(NameError::ControlCharacter));
        assert_eq!(check("\u{200d}"), Err(NameError::NothingVisible));
        assert_eq!(check("\u{200c}\u{200d}"), Err(NameError::NothingVisible));
        // What real names and emoji need stays allowed.
        assert_eq!(check("👨\u{200d}👩\u{200d}👧"), Ok("👨\u{200d}👩\u{200d}👧".into()));
        assert_eq!(check("می\u{200c}خواهم"), Ok("می\u{200c}خواهم".into()));
        assert_eq!(check("Jean-Luc O'Neil"), Ok("Jean-Luc O'Neil".into()));
    }
}
