//! What the core is configured with: plain values, no format.
//!
//! The server's options table (`server/src/options.rs`) is the one place
//! where each option is named, documented, defaulted and validated; it
//! builds a [`HubConfig`] for the core. The core neither parses nor
//! defaults anything, so that no option has a second definition here.

use std::time::Duration;

use wtchat_protocol::Limits;

use crate::admission::AdmissionLimits;
use crate::closing::RetryHints;
use crate::presence::PresencePolicy;

/// The core's configuration.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Limits each session is held to.
    pub session: SessionLimits,
    /// Limits on sessions in total, per address, and per second.
    pub admission: AdmissionLimits,
    /// The most rooms the server holds at once.
    pub max_rooms: usize,
    /// The most rooms one party may hold open; 0 is no limit.
    pub max_rooms_per_user: usize,
    /// How many recent messages each room keeps for joiners.
    pub history_len: usize,
    /// How many of those a fresh join replays; members page back through
    /// the rest.
    pub history_replay: usize,
    /// How often clients must send something.
    pub heartbeat_interval: Duration,
    /// How long the server waits for a silent client before closing it.
    pub heartbeat_timeout: Duration,
    /// The retry hints of closing notices.
    pub retry_hints: RetryHints,
    /// How presence is gathered and told.
    pub presence: PresencePolicy,
    /// How long before its token expires a session is told to refresh it
    /// (at most half the token's remaining life).
    pub token_refresh_notice: Duration,
}

/// Limits each session is held to.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// The largest frame accepted; a larger one closes the session.
    pub max_frame_bytes: usize,
    /// The largest message body accepted; a larger one is refused.
    pub max_message_bytes: usize,
    /// How many rooms one session may be in.
    pub max_rooms_per_session: usize,
    /// Sustained publishes per second.
    pub publish_rate_per_sec: u32,
    /// Publishes allowed above the sustained rate in a burst.
    pub publish_burst: u32,
    /// Refused publishes tolerated (refilling at one per second) before the
    /// session is closed for flooding.
    pub flood_tolerance: u32,
    /// Other refused requests tolerated (refilling at one per second) before
    /// the session is closed for a protocol violation.
    pub error_tolerance: u32,
    /// The byte bound of the outbound queue; past it the session is evicted.
    pub outbound_queue_bytes: usize,
    /// The longest room name in bytes.
    pub max_room_name_bytes: usize,
    /// The longest display name in bytes.
    pub max_display_name_bytes: usize,
}

impl SessionLimits {
    /// The limits as announced to clients in the welcome.
    pub fn announced(&self) -> Limits {
        let narrow = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Limits {
            max_frame_bytes: narrow(self.max_frame_bytes),
            max_message_bytes: narrow(self.max_message_bytes),
            max_rooms_per_session: narrow(self.max_rooms_per_session),
            publish_rate_per_sec: self.publish_rate_per_sec,
            publish_burst: self.publish_burst,
            max_room_name_bytes: narrow(self.max_room_name_bytes),
            max_display_name_bytes: narrow(self.max_display_name_bytes),
            outbound_queue_bytes: narrow(self.outbound_queue_bytes),
        }
    }
}

#[cfg(test)]
impl HubConfig {
    /// A configuration for the core's unit tests: the shipped defaults of
    /// the limits these tests lean on, written out because the defaults
    /// themselves live in the server's options table, which the core
    /// cannot see.
    pub(crate) fn for_tests() -> Self {
        Self {
            session: SessionLimits {
                max_frame_bytes: 66_560,
                max_message_bytes: 65_536,
                max_rooms_per_session: 32,
                publish_rate_per_sec: 10,
                publish_burst: 20,
                flood_tolerance: 20,
                error_tolerance: 20,
                outbound_queue_bytes: 1 << 20,
                max_room_name_bytes: 64,
                max_display_name_bytes: 64,
            },
            admission: AdmissionLimits {
                max_connections: 100_000,
                max_connections_per_ip: 1_000,
                max_new_connections_per_sec: 1_000,
            },
            max_rooms: 100_000,
            max_rooms_per_user: 2_000,
            history_len: 100,
            history_replay: 100,
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(25),
            retry_hints: RetryHints {
                shutdown: crate::closing::RetryHint {
                    base: Duration::from_secs(1),
                    spread: Duration::from_secs(5),
                },
                refusal: crate::closing::RetryHint {
                    base: Duration::from_secs(1),
                    spread: Duration::from_secs(4),
                },
                flooding: Duration::from_secs(10),
            },
            presence: PresencePolicy { interval: Duration::from_millis(200), names_max: 1_000 },
            token_refresh_notice: Duration::from_secs(60),
        }
    }
}
