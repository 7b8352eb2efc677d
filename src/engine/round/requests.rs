//! How [`RoomCore`] answers a request: a replay gets the first answer (or joins the
//! connections waiting for it), a request that waited for the ledger is answered once the
//! ledger has spoken, and every answer of the current round is remembered in its
//! [`ReplayMap`](super::replay::ReplayMap).

use crate::bus::{ReplyTo, RequestKind};

use super::super::answer::{Answer, Reply};
use super::RoomCore;
use super::replay::{RequestKey, Seen};

impl RoomCore {
    pub(super) fn request_key(&self, from: &ReplyTo, kind: RequestKind, req: &str) -> RequestKey {
        RequestKey {
            round: self.round.number,
            player: from.player.clone(),
            kind,
            req: req.to_owned(),
        }
    }

    /// Answers a replayed request: with its first answer, or by joining the connections
    /// waiting for it. Returns false for a request seen for the first time.
    pub(super) fn answer_replay(&mut self, request: &RequestKey, from: &ReplyTo) -> bool {
        match self.replay.seen(request, from) {
            Seen::New => false,
            Seen::Waiting => true,
            Seen::Answered(answer) => {
                self.effects.replies.push(Reply {
                    to: from.clone(),
                    answer,
                });
                true
            }
        }
    }

    /// Answers a request that waited for the ledger.
    pub(super) fn finish_request(
        &mut self,
        round: u64,
        player: &str,
        kind: RequestKind,
        req: String,
        answer: Answer,
    ) {
        let request = RequestKey {
            round,
            player: player.to_owned(),
            kind,
            req,
        };
        let waiters = self.replay.take_waiters(&request);
        self.answer(request, waiters, answer);
    }

    /// Sends `answer` to `waiters` and remembers it as the request's answer for replays.
    pub(super) fn answer(&mut self, request: RequestKey, waiters: Vec<ReplyTo>, answer: Answer) {
        for to in waiters {
            self.effects.replies.push(Reply {
                to,
                answer: answer.clone(),
            });
        }
        // The replay map holds the current round only.
        if request.round == self.round.number {
            self.replay.remember(request, &answer);
        }
    }
}
