//! The replay map of a round: the answer to every finished request, and the connections
//! waiting for the answer of a request still in the ledger, so a request sent again (the
//! same `req`) is answered exactly as the first time and decided only once.

use std::collections::HashMap;

use crate::bus::{ReplyTo, RequestKind};

use super::super::answer::Answer;
use super::types::ROUND_BETS_MAX;

/// Refusals remembered per round for replays. Beyond it a replayed refused request is
/// decided again, which is harmless: a refusal changed nothing.
pub const REPLAY_REFUSALS_PER_ROUND_MAX: usize = 4 * ROUND_BETS_MAX;

/// Connections waiting for the answer of one request still in the ledger (the first
/// sender plus replays); further replays of it get no answer.
pub const REQUEST_WAITERS_MAX: usize = 8;

const _: () = assert!(REPLAY_REFUSALS_PER_ROUND_MAX >= ROUND_BETS_MAX);

/// A request id as scoped by the replay map: per round, per player and per message type,
/// so a bet and a cashout that happen to share a `req` are two requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RequestKey {
    pub(super) round: u64,
    pub(super) player: String,
    pub(super) kind: RequestKind,
    pub(super) req: String,
}

/// What the replay map knows of a request.
pub(super) enum Seen {
    /// Never seen this round: decide it.
    New,
    /// Answered: this is its answer, to send again.
    Answered(Answer),
    /// Still in the ledger: the sender joined the connections waiting for its answer.
    Waiting,
}

/// The requests of the current round: their answers, and the connections waiting for the
/// answer of those still in the ledger.
#[derive(Debug, Default)]
pub(super) struct ReplayMap {
    /// The answer to every finished request of the round, except the refusals that ask
    /// for a retry and those past `REPLAY_REFUSALS_PER_ROUND_MAX`.
    answers: HashMap<RequestKey, Answer>,
    remembered_refusals: usize,
    /// Requests waiting for the ledger, with the connections to answer (at most
    /// `REQUEST_WAITERS_MAX` each).
    waiters: HashMap<RequestKey, Vec<ReplyTo>>,
}

impl ReplayMap {
    /// What is known of `request`; a replay of a request still in the ledger adds `from`
    /// to its waiters while there is room.
    pub(super) fn seen(&mut self, request: &RequestKey, from: &ReplyTo) -> Seen {
        if let Some(answer) = self.answers.get(request) {
            return Seen::Answered(answer.clone());
        }
        if let Some(waiters) = self.waiters.get_mut(request) {
            if waiters.len() < REQUEST_WAITERS_MAX {
                waiters.push(from.clone());
            }
            return Seen::Waiting;
        }
        Seen::New
    }

    /// `request`, sent by `from`, waits for the ledger.
    pub(super) fn wait_for_ledger(&mut self, request: RequestKey, from: &ReplyTo) {
        self.waiters.insert(request, vec![from.clone()]);
    }

    /// The connections waiting for `request`, which the ledger has answered.
    pub(super) fn take_waiters(&mut self, request: &RequestKey) -> Vec<ReplyTo> {
        self.waiters
            .remove(request)
            .expect("a request in the ledger has its sender")
    }

    /// Remembers `answer` as the answer to `request` for its replays.
    pub(super) fn remember(&mut self, request: RequestKey, answer: &Answer) {
        if let Some(refusal) = answer.refusal() {
            // A code that asks the client to retry with the same req is never replayed.
            if refusal.code.asks_retry()
                || self.remembered_refusals >= REPLAY_REFUSALS_PER_ROUND_MAX
            {
                return;
            }
            self.remembered_refusals += 1;
        }
        self.answers.insert(request, answer.clone());
    }

    /// A new round starts: the answers of the last one are not replayed. Requests still
    /// waiting for the ledger keep their waiters.
    pub(super) fn forget_answers(&mut self) {
        self.answers.clear();
        self.remembered_refusals = 0;
    }
}

#[cfg(test)]
mod tests {

    use crate::bus::ReplyTo;

    use crate::engine::answer::{Answer, RefusalCode};

    use super::super::test_support::*;
    use super::super::*;

    #[test]
    fn a_replayed_request_gets_exactly_the_first_reply() {
        let (mut core, _) = room_where(|_| true, engine());
        let other_connection = ReplyTo {
            connection: 2,
            ..player("a")
        };
        core.bet(T0_MS, &player("a"), "a", "r1", BetTerms::new(100, None, 0));
        let stake = core.take_effects().transfers.remove(0);
        // Replayed while the ledger has the stake: answered together with the first.
        core.bet(
            T0_MS,
            &other_connection,
            "a",
            "r1",
            BetTerms::new(100, None, 0),
        );
        assert!(core.take_effects().replies.is_empty());
        let TransferPurpose::Stake(key) = stake.purpose else {
            panic!("a stake")
        };
        core.confirm_bet(&key, 900);
        let replies = core.take_effects().replies;
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0].answer, replies[1].answer);
        assert_eq!(replies[1].to, other_connection);
        // Replayed later, even with other fields: the first reply again, nothing moves.
        core.bet(
            T0_MS + 1,
            &player("a"),
            "a",
            "r1",
            BetTerms::new(555, None, 1),
        );
        let effects = core.take_effects();
        assert!(effects.transfers.is_empty());
        assert_eq!(effects.replies[0].answer, replies[0].answer);
        // A refusal is replayed as it was, though the request would now be valid.
        core.bet(
            T0_MS + 2,
            &player("a"),
            "a",
            "r2",
            BetTerms::new(1, None, 1),
        );
        let first = only_reply(&mut core);
        core.bet(
            T0_MS + 3,
            &player("a"),
            "a",
            "r2",
            BetTerms::new(100, None, 1),
        );
        assert_eq!(only_reply(&mut core), first);
        // An internal fault is not remembered: the retry with the same req goes through.
        core.bet(
            T0_MS + 4,
            &player("a"),
            "a",
            "r3",
            BetTerms::new(100, None, 1),
        );
        let key = BetKey {
            round: 1,
            player: "a".into(),
            slot: 1,
        };
        core.take_effects();
        core.reject_bet(&key, RefusalCode::Internal);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::Internal);
        core.bet(
            T0_MS + 5,
            &player("a"),
            "a",
            "r3",
            BetTerms::new(100, None, 1),
        );
        assert_eq!(core.take_effects().transfers.len(), 1);
    }

    #[test]
    fn a_bet_and_a_cashout_sharing_a_req_are_two_requests() {
        let (mut core, _) = room_where(|crash| crash >= 300, engine());
        core.bet(
            T0_MS,
            &player("a"),
            "a",
            "same",
            BetTerms::new(100, None, 0),
        );
        let TransferPurpose::Stake(key) = core.take_effects().transfers.remove(0).purpose else {
            panic!("a stake")
        };
        core.confirm_bet(&key, 900);
        assert!(matches!(only_reply(&mut core), Answer::BetAccepted { .. }));
        let started_at_ms = fly(&mut core);
        core.take_effects();

        // Not the bet's reply replayed: the cashout is made.
        core.cashout(started_at_ms + 1_000, &player("a"), "same", 0);
        let effects = core.take_effects();
        assert_eq!(
            credits(&effects),
            vec![("payout:test:1:a:0".to_owned(), 106)]
        );
        let TransferPurpose::Credit(notice) = &effects.transfers[0].purpose else {
            panic!("a credit")
        };
        core.credit_committed(notice, 1_006);
        let cashout_ok = only_reply(&mut core);
        assert!(matches!(
            cashout_ok,
            Answer::CashedOut {
                multiplier_hundredths: 106,
                ..
            }
        ));
        // Each is replayed as itself.
        core.cashout(started_at_ms + 1_100, &player("a"), "same", 0);
        assert_eq!(only_reply(&mut core), cashout_ok);
        core.bet(
            started_at_ms + 1_100,
            &player("a"),
            "a",
            "same",
            BetTerms::new(100, None, 0),
        );
        assert!(matches!(
            only_reply(&mut core),
            Answer::BetAccepted {
                balance_after_minor: 900,
                ..
            }
        ));
    }
}
