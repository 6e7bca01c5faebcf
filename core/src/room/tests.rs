//! A room's sequencing, following and presence, with outboxes and no sockets.

use super::*;
use wtchat_protocol::ReasonCode;

use crate::outbox::Next;

fn follower(name: &str) -> Room {
    Room::new(name.into(), 1, HistoryPolicy::keeping(10), Sequencing::follower())
}

fn member(session_id: u64, name: &str) -> RoomMember {
    RoomMember { session_id, name: Arc::from(name), outbox: Arc::new(Outbox::new(1 << 20)), user: None }
}

fn message(epoch: u64, seq: u64) -> RoomEvent {
    RoomEvent::Message {
        epoch,
        seq,
        sender: EventMember { session_id: 99, name: "Far".into() },
        sent_at_ms: 0,
        body: format!("m{seq}"),
    }
}

/// Everything queued for a member so far, decoded.
async fn received(member: &RoomMember) -> Vec<ServerMessage> {
    let mut out = Vec::new();
    if member.outbox.queued_bytes() == 0 {
        return out;
    }
    let mut batch = Vec::new();
    if let Next::Frames = member.outbox.next(&mut batch).await {
        // As a transport would: what was taken is written.
        member.outbox.written(batch.len(), batch.iter().map(Frame::len).sum());
        for frame in batch {
            out.push(wtchat_protocol::decode(&frame.body(), usize::MAX).unwrap());
        }
    }
    out
}

fn seqs(messages: &[ServerMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| if let ServerMessage::Message(c) = m { Some(c.seq) } else { None })
        .collect()
}

#[tokio::test]
async fn a_follower_answers_joins_from_the_snapshot_and_drops_what_it_already_holds() {
    let room = follower("r");
    let ann = member(1, "Ann");
    room.join(ann.clone(), 7, Some(Resume { epoch: 5, last_seq: 2 })).unwrap();
    // Events that arrive before the snapshot wait, whether or not the
    // snapshot turns out to hold them too.
    assert_eq!(room.apply(message(5, 4)), Applied::Noted);
    assert_eq!(room.apply(message(5, 5)), Applied::Noted);
    assert!(received(&ann).await.is_empty(), "nothing before the snapshot");
    let far = EventMember { session_id: 99, name: "Far".into() };
    room.synced(Snapshot {
        epoch: 5,
        last_seq: 4,
        history: (1..=4).map(|seq| message(5, seq)).collect(),
        members: vec![far],
    });
    let got = received(&ann).await;
    let ServerMessage::Joined(joined) = &got[0] else { panic!("{got:?}") };
    // The held message 5 is applied before the waiting join is answered,
    // so the joiner gets it in its replay.
    assert_eq!((joined.request_id, joined.epoch, joined.next_seq), (7, 5, 6));
    assert!(!joined.history.gap);
    assert_eq!(joined.members.len(), 2, "members on other servers are listed");
    // What it missed after 2, where 4 was both in the snapshot and
    // held from the feed, and comes once.
    assert_eq!(seqs(&got), vec![3, 4, 5]);
    assert_eq!(room.apply(message(5, 5)), Applied::Noted, "a duplicate is dropped");
    assert_eq!(room.apply(message(5, 6)), Applied::Delivered(1));
    assert_eq!(seqs(&received(&ann).await), vec![6]);
}

#[test]
fn a_broken_feed_closes_members_so_that_they_resume() {
    let room = follower("r");
    let ann = member(1, "Ann");
    room.join(ann.clone(), 1, None).unwrap();
    room.synced(Snapshot { epoch: 5, last_seq: 0, history: Vec::new(), members: Vec::new() });
    assert_eq!(room.apply(message(5, 1)), Applied::Delivered(1));
    // Number 2 never came: the member must not silently miss it.
    assert_eq!(room.apply(message(5, 3)), Applied::Resync);
    assert!(!ann.outbox.is_open());
    assert_eq!(ann.outbox.stats().close_code, Some(ReasonCode::BROKER_UNAVAILABLE));
    // A new epoch (Redis lost the room) breaks the feed the same way.
    let room = follower("s");
    room.synced(Snapshot { epoch: 5, last_seq: 9, history: Vec::new(), members: Vec::new() });
    let bob = member(2, "Bob");
    room.join(bob.clone(), 1, None).unwrap();
    assert_eq!(room.apply(message(6, 1)), Applied::Resync);
    assert_eq!(bob.outbox.stats().close_code, Some(ReasonCode::BROKER_UNAVAILABLE));
}

/// Tells a room's presence now, as the hub's timer would.
fn flush(room: &Room) {
    assert!(room.flush_presence(&policy()));
}

fn policy() -> PresencePolicy {
    PresencePolicy { interval: std::time::Duration::from_millis(200), names_max: 1_000 }
}

/// The named changes of every presence diff queued for a member.
async fn changes(member: &RoomMember) -> Vec<(PresenceChange, u64)> {
    received(member)
        .await
        .into_iter()
        .flat_map(|m| match m {
            ServerMessage::PresenceDiff(d) => {
                d.changes.into_iter().map(|c| (c.change, c.member.session_id)).collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

#[tokio::test]
async fn presence_from_other_servers_is_told_once() {
    let room = follower("r");
    room.synced(Snapshot { epoch: 1, last_seq: 0, history: Vec::new(), members: Vec::new() });
    let ann = member(1, "Ann");
    room.join(ann.clone(), 1, None).unwrap();
    flush(&room);
    received(&ann).await;
    let far = EventMember { session_id: 99, name: "Far".into() };
    assert_eq!(
        room.apply(RoomEvent::Presence { change: PresenceChange::Joined, member: far.clone() }),
        Applied::PresenceChanged
    );
    assert_eq!(
        room.apply(RoomEvent::Presence { change: PresenceChange::Joined, member: far.clone() }),
        Applied::Noted,
        "a repeated join is not news"
    );
    // Ann's own join, echoed back by Redis, is not news to anyone.
    let echo = EventMember { session_id: 1, name: "Ann".into() };
    assert_eq!(
        room.apply(RoomEvent::Presence { change: PresenceChange::Joined, member: echo }),
        Applied::Noted
    );
    flush(&room);
    assert_eq!(changes(&ann).await, [(PresenceChange::Joined, 99)]);
    assert_eq!(room.total_member_count(), 2);
    room.apply(RoomEvent::Presence { change: PresenceChange::Disconnected, member: far });
    flush(&room);
    assert_eq!(changes(&ann).await, [(PresenceChange::Disconnected, 99)]);
    assert_eq!(room.total_member_count(), 1);
}

#[tokio::test]
async fn pages_merge_this_servers_members_with_the_others_by_session_id() {
    let room = follower("r");
    let far = |id: u64| EventMember { session_id: id, name: format!("far{id}").into() };
    room.synced(Snapshot {
        epoch: 1,
        last_seq: 0,
        history: Vec::new(),
        members: vec![far(2), far(4), far(6)],
    });
    let near = [member(1, "a"), member(3, "b"), member(5, "c")];
    for m in &near {
        room.join(m.clone(), 1, None).unwrap();
    }
    let mut ids = Vec::new();
    let mut after = 0;
    loop {
        let page = room.members_page(9, after, 4);
        let ServerMessage::Members(page) = wtchat_protocol::decode(&page.body(), usize::MAX).unwrap() else {
            panic!()
        };
        assert_eq!(page.member_count, 6);
        ids.extend(page.members.iter().map(|m| m.session_id));
        match page.next_after {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn a_room_told_counts_tells_one_slice_of_its_members_each_interval() {
    let room = Room::new("big".into(), 1, HistoryPolicy::keeping(10), Sequencing::Own);
    let policy = PresencePolicy { interval: std::time::Duration::from_millis(100), names_max: 2 };
    let members: Vec<RoomMember> = (1..=6).map(|id| member(id, "m")).collect();
    for m in &members {
        room.join(m.clone(), 1, None).unwrap();
        received(m).await;
    }
    // Six members over a limit of two: three slices of two, one per
    // interval, then the rotation rests.
    let mut told_per_interval = Vec::new();
    for _ in 0..3 {
        assert!(!room.flush_presence(&policy), "the rotation goes on");
        let mut told = 0;
        for m in &members {
            let frames = received(m).await;
            assert!(
                frames.iter().all(|f| matches!(f, ServerMessage::PresenceDiff(d)
                    if d.member_count == 6 && d.joins == 6 && d.changes.is_empty())),
                "{frames:?}"
            );
            told += frames.len();
        }
        told_per_interval.push(told);
    }
    assert_eq!(told_per_interval, [2, 2, 2], "each interval tells one slice, and each member once");
    assert!(room.flush_presence(&policy), "nothing left to tell");
    assert!(received(&members[0]).await.is_empty());
    // A later arrival starts the rotation again, where it left off.
    room.join(member(7, "late"), 1, None).unwrap();
    assert!(!room.flush_presence(&policy));
}

#[tokio::test]
async fn members_that_stayed_through_a_lost_link_get_what_they_missed_in_order_once() {
    let room = follower("r");
    let ann = member(1, "Ann");
    room.join(ann.clone(), 1, None).unwrap();
    let far = EventMember { session_id: 99, name: "Far".into() };
    let snapshot = |last_seq, history: Vec<RoomEvent>, members: Vec<EventMember>| Snapshot {
        epoch: 5,
        last_seq,
        history,
        members,
    };
    room.synced(snapshot(0, Vec::new(), vec![far.clone()]));
    assert_eq!(room.apply(message(5, 1)), Applied::Delivered(1));
    flush(&room);
    received(&ann).await;

    // The link is lost; numbers 2 and 3 are given out meanwhile, and the
    // other server's member leaves while a new one comes.
    room.resync();
    assert_eq!(room.apply(message(5, 4)), Applied::Noted, "what the new link brings waits for the snapshot");
    let near = EventMember { session_id: 98, name: "Near".into() };
    room.synced(snapshot(3, (1..=3).map(|seq| message(5, seq)).collect(), vec![near.clone()]));
    assert_eq!(seqs(&received(&ann).await), [2, 3, 4], "the missed ones, then the held one, each once");
    assert!(ann.outbox.is_open());
    flush(&room);
    assert_eq!(changes(&ann).await, [(PresenceChange::Disconnected, 99), (PresenceChange::Joined, 98)]);

    // A history that no longer reaches back to what was missed: the members
    // are closed to resume, and told of the gap then.
    room.resync();
    room.synced(snapshot(20, (15..=20).map(|seq| message(5, seq)).collect(), Vec::new()));
    assert!(!ann.outbox.is_open());
    assert_eq!(ann.outbox.stats().close_code, Some(ReasonCode::BROKER_UNAVAILABLE));

    // So is a new epoch (Redis came back empty).
    let room = follower("s");
    let bob = member(2, "Bob");
    room.join(bob.clone(), 1, None).unwrap();
    room.synced(snapshot(0, Vec::new(), Vec::new()));
    room.resync();
    room.synced(Snapshot { epoch: 6, last_seq: 0, history: Vec::new(), members: Vec::new() });
    assert_eq!(bob.outbox.stats().close_code, Some(ReasonCode::BROKER_UNAVAILABLE));
}
