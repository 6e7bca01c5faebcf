//! The user behind a session and what they may do, as their token says.

use std::time::SystemTime;

use crate::room_pattern::RoomGrant;

/// A session's user, as a verified token describes them. Without
/// authentication a session has no `User`: it names itself and may go
/// anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Who the token names (its `sub`).
    pub id: String,
    /// The name other members see. When set, it replaces the display name a
    /// client asks for at join, so that a user cannot pose as another.
    pub display_name: Option<String>,
    /// The rooms the session may join.
    pub join: RoomGrant,
    /// The rooms the session may publish to (it must also be a member).
    pub publish: RoomGrant,
    /// When the credentials stop being valid; the session is closed then.
    pub expires_at: Option<SystemTime>,
}
