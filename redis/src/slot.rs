//! Which Redis Cluster slot a key belongs to: CRC16 (XMODEM) of the key's
//! hash tag, or of the whole key when it has none, modulo 16,384, as the
//! Redis Cluster specification defines it.

/// How many slots a Redis Cluster has.
pub const SLOTS: u16 = 16_384;

/// The slot of `key`.
pub fn slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key).unwrap_or(key)) % SLOTS
}

/// What lies between the first `{` and the next `}`, if that is not empty.
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&byte| byte == b'{')?;
    let length = key[open + 1..].iter().position(|&byte| byte == b'}')?;
    (length > 0).then(|| &key[open + 1..open + 1 + length])
}

/// CRC16 with polynomial 0x1021, initial value 0, no reflection.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0_u16, |crc, &byte| {
        (0..8).fold(crc ^ (u16::from(byte) << 8), |crc, _| {
            if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keys;

    #[test]
    fn slots_follow_the_specification() {
        // The specification's check value, and slots Redis itself reports
        // (`CLUSTER KEYSLOT`).
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot(b"foo"), 12_182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"), "an empty tag hashes the whole key");
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }

    #[test]
    fn every_key_of_a_room_is_in_the_rooms_slot() {
        let keys = Keys::new("app:");
        let room = "team:a-1.b_2";
        let slots = [
            keys.room_meta(room),
            keys.room_history(room),
            keys.room_members(room),
            keys.room_node(room, 42),
            keys.room_receipt(room, "key"),
            keys.room_events(room),
        ]
        .map(|key| slot(key.as_bytes()));
        assert!(slots.iter().all(|&each| each == slot(room.as_bytes())), "{slots:?}");
        let listing = [keys.rooms(), keys.room_versions(), keys.room_vacated(room)];
        assert!(listing.iter().all(|key| slot(key.as_bytes()) == slot(b"rooms")));
        let liveness = [keys.nodes(), keys.reaping(), keys.node_ids()];
        assert!(liveness.iter().all(|key| slot(key.as_bytes()) == slot(b"nodes")));
    }
}
