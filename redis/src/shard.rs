//! Client-side sharding: rooms spread over several independent Redis, each
//! room on one of them, chosen by a stable hash of its name so that every
//! server agrees without asking anyone.
//!
//! Each shard has its own link (`link.rs`): its own node id, heartbeat and
//! leftovers, and its own grace when it is lost, which touches only the
//! rooms it holds. The first shard is the home shard: the server's session
//! ids come from its node id, and the backend's disconnect orders travel on
//! its control channel.

/// One shard's place among the configured ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Its position in `redis_url`.
    pub index: usize,
    /// How many there are.
    pub count: usize,
}

impl Shard {
    /// The only shard of a single Redis.
    pub const ALONE: Self = Self { index: 0, count: 1 };

    /// Whether `room` lives on this shard.
    pub fn holds(&self, room: &str) -> bool {
        shard_of(room, self.count) == self.index
    }

    /// Whether this is the home shard.
    pub fn is_home(&self) -> bool {
        self.index == 0
    }
}

/// The shard of `room` among `count`: FNV-1a of its name, a hash fixed here
/// (not the standard library's, which may change between releases and is
/// seeded per process) so that every server and every release agree.
pub fn shard_of(room: &str, count: usize) -> usize {
    let hash = room.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % count.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_shard_is_fixed_and_rooms_spread() {
        // Fixed values: a change of hash would move every room of a running
        // deployment to another Redis.
        // (FNV-1a of "a" is 0xaf63dc4c8601ec8c, the published test vector;
        // the figures below were computed apart from this code.)
        assert_eq!([shard_of("", 7), shard_of("a", 7), shard_of("lobby", 7)], [2, 5, 5]);
        assert_eq!([shard_of("lobby", 3), shard_of("team-a", 3)], [1, 1]);
        let mut counts = [0; 3];
        for n in 0..3_000 {
            counts[shard_of(&format!("room-{n}"), 3)] += 1;
        }
        assert!(counts.iter().all(|&count| (800..1_200).contains(&count)), "{counts:?}");
        assert!(Shard::ALONE.holds("anything"));
    }
}
