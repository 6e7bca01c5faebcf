//! A member paging back through its room's older messages: the newest the
//! room keeps below a number, at most a page at a time, under the same
//! pages budget as members pages. The frames are copied out under the
//! room's lock (reference counts) and turned into one answer outside it.

use tokio::time::Instant;
use wtchat_protocol::{HistoryPage, ServerMessage};

use super::{Flow, Session};
use crate::frame::Frame;
use crate::presence::PAGE_MAX;

impl Session {
    pub(super) fn history(
        &mut self,
        request_id: u32,
        room: &str,
        before: u64,
        limit: u32,
        now: Instant,
    ) -> Flow {
        let index = match self.member_of(request_id, room, now) {
            Ok(index) => index,
            Err(flow) => return flow,
        };
        if let Some(flow) = self.page_rate_limited(request_id, "history", now) {
            return flow;
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX).min(PAGE_MAX);
        let open = &self.memberships[index].room;
        let page = open.history_before(before, limit);
        let messages = page.chat_messages();
        let answer = HistoryPage {
            request_id,
            room: open.name().to_string(),
            epoch: page.epoch,
            messages,
            more: page.older,
        };
        self.outbox.push(&Frame::encode(&ServerMessage::History(answer)));
        Flow::Continue
    }
}
