//! Which master of a Redis Cluster serves which slots, as `CLUSTER SLOTS`
//! answers it.

use redis::{RedisResult, Value};

/// A range of slots and the master that serves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    /// The first slot.
    pub first: u16,
    /// The last slot, included.
    pub last: u16,
    /// The master's host.
    pub host: String,
    /// The master's port.
    pub port: u16,
}

impl SlotRange {
    /// Whether `slot` is in the range.
    pub fn holds(&self, slot: u16) -> bool {
        (self.first..=self.last).contains(&slot)
    }
}

/// Reads `CLUSTER SLOTS`: each entry is `[first, last, [master host, port,
/// id, ...], replicas...]`; an entry of another shape is skipped.
pub fn slot_ranges(reply: &[Value]) -> RedisResult<Vec<SlotRange>> {
    let mut ranges = Vec::new();
    for range in reply {
        let Value::Array(fields) = range else { continue };
        let (Some(first), Some(last), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            continue;
        };
        ranges.push(SlotRange {
            first: redis::from_redis_value(first)?,
            last: redis::from_redis_value(last)?,
            host: redis::from_redis_value(master.first().unwrap_or(&Value::Nil))?,
            port: redis::from_redis_value(master.get(1).unwrap_or(&Value::Nil))?,
        });
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_slots_are_read() {
        let text = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = [
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                Value::Array(vec![text("127.0.0.1"), Value::Int(7000), text("id")]),
                Value::Array(vec![text("127.0.0.1"), Value::Int(7003), text("replica")]),
            ]),
            Value::Int(1),
        ];
        let ranges = slot_ranges(&reply).unwrap();
        assert_eq!(
            ranges,
            [SlotRange { first: 0, last: 5460, host: "127.0.0.1".into(), port: 7000 }],
            "the master, not the replica; a malformed entry skipped"
        );
        assert!(ranges[0].holds(5460) && !ranges[0].holds(5461));
    }
}
