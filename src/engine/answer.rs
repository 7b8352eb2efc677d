//! What the engine tells one player: [`Answer`], the outcome of a bet, cashout or cancel
//! request (accepted, paid, refunded, or refused with a [`RefusalCode`]), a change of
//! balance the player did not ask for, or a chat message it did not post. Domain terms; `protocol` maps an answer to its private frame.

use super::round::ControlChange;
use crate::bus::{ReplyTo, RequestId, RequestKind};

/// Why the engine refused a request. Each code but the last three is final for the
/// request (replays get the same refusal); `Overloaded`, `Internal` and `Unavailable`
/// ask the client to retry with the same request id.
/// Its name (`insufficient_funds`, …) is the `code` label of the refusal metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum RefusalCode {
    /// A field is out of range (stake, auto-cashout, slot).
    InvalidField,
    /// Bets are taken only while betting is open; cashouts only while flying.
    WrongPhase,
    /// The player's balance is lower than the stake.
    InsufficientFunds,
    /// The slot already holds a bet this round.
    SlotTaken,
    /// There is no active bet in the slot to cash out or cancel.
    NoActiveBet,
    /// The round crashed before the cashout reached the engine, or betting closed before
    /// the cancel did (the bet plays in the round).
    TooLate,
    /// The round holds `ROUND_BETS_MAX` bets.
    Overloaded,
    /// The ledger failed; nothing was changed.
    Internal,
    /// The ledger is failing or slow: bets are refused at once for a while.
    Unavailable,
    /// A chat message over the player's rate limit (not a request: never replayed).
    ChatRateLimited,
}

impl RefusalCode {
    /// Whether the client should retry the request with the same id: then the refusal
    /// is not remembered for replays.
    pub fn asks_retry(self) -> bool {
        matches!(
            self,
            RefusalCode::Overloaded | RefusalCode::Internal | RefusalCode::Unavailable
        )
    }
}

/// A refused request: the code, and a sentence for the player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: RefusalCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: RefusalCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

/// Why the engine refused an operator's control of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ControlRefusalCode {
    /// The limits cannot govern a round: min ≥ 1, min ≤ max and cap ≥ max are required.
    InvalidLimits,
    /// A pause of a room that is paused already.
    AlreadyPaused,
    /// A resume of a room that is not paused.
    NotPaused,
    /// The ledger did not store the change; nothing changed. Retry later.
    Unavailable,
}

/// A refused control: the code, and a sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRefusal {
    pub code: ControlRefusalCode,
    pub message: String,
}

impl ControlRefusal {
    pub fn new(code: ControlRefusalCode, message: impl Into<String>) -> ControlRefusal {
        ControlRefusal {
            code,
            message: message.into(),
        }
    }
}

/// A cashout the engine made for a player without a request of its own (auto-cashout,
/// the round's max profit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineCashout {
    pub round: u64,
    pub slot: u8,
    pub multiplier_hundredths: u64,
    /// Paid back, stake included.
    pub win_minor: i64,
}

/// A stake the engine gave back without a request of the player (its round was
/// aborted), as told with the balance that includes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineRefund {
    pub round: u64,
    pub slot: u8,
    pub refunded_minor: i64,
}

/// What a player is told privately. `req` is the request id an answer is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The ledger took the stake.
    BetAccepted {
        req: String,
        round: u64,
        slot: u8,
        stake_minor: i64,
        auto_cashout_hundredths: Option<u64>,
        /// The player's balance right after the stake.
        balance_after_minor: i64,
    },
    BetRefused {
        req: String,
        refusal: Refusal,
    },
    /// The ledger paid the cashout.
    CashedOut {
        req: String,
        round: u64,
        slot: u8,
        multiplier_hundredths: u64,
        win_minor: i64,
        /// The player's balance right after the payout.
        balance_after_minor: i64,
    },
    CashoutRefused {
        req: String,
        refusal: Refusal,
    },
    /// The player's balance changed outside a request: a cashout the engine made
    /// (`cashout`), or a refund of a round that did not play (`refund`).
    BalanceChanged {
        balance_minor: i64,
        cashout: Option<EngineCashout>,
        refund: Option<EngineRefund>,
    },
    /// The bet was cancelled: the ledger refunded its stake.
    BetCancelled {
        req: String,
        round: u64,
        slot: u8,
        refunded_minor: i64,
        /// The player's balance right after the refund.
        balance_after_minor: i64,
    },
    CancelRefused {
        req: String,
        refusal: Refusal,
    },
    /// An operator's control is stored and applied (its events are published).
    ControlApplied {
        req: String,
        change: ControlChange,
    },
    /// An operator's control was refused; nothing changed.
    ControlRefused {
        req: String,
        refusal: ControlRefusal,
    },
    /// A chat message was not posted.
    ChatRefused {
        refusal: Refusal,
    },
}

impl Answer {
    /// The request this answers; `None` for a balance the player did not ask for.
    pub fn request(&self) -> Option<RequestId> {
        let (kind, req) = match self {
            Answer::BetAccepted { req, .. } | Answer::BetRefused { req, .. } => {
                (RequestKind::Bet, req)
            }
            Answer::CashedOut { req, .. } | Answer::CashoutRefused { req, .. } => {
                (RequestKind::Cashout, req)
            }
            Answer::BetCancelled { req, .. } | Answer::CancelRefused { req, .. } => {
                (RequestKind::Cancel, req)
            }
            Answer::ControlApplied { req, .. } | Answer::ControlRefused { req, .. } => {
                (RequestKind::Control, req)
            }
            Answer::BalanceChanged { .. } | Answer::ChatRefused { .. } => return None,
        };
        Some(RequestId {
            kind,
            req: req.clone(),
        })
    }

    /// The refusal, if this answer is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Answer::BetRefused { refusal, .. }
            | Answer::CashoutRefused { refusal, .. }
            | Answer::CancelRefused { refusal, .. }
            | Answer::ChatRefused { refusal } => Some(refusal),
            Answer::BetAccepted { .. }
            | Answer::CashedOut { .. }
            | Answer::BetCancelled { .. }
            | Answer::BalanceChanged { .. }
            | Answer::ControlApplied { .. }
            | Answer::ControlRefused { .. } => None,
        }
    }
}

/// An answer for one connection, or for every socket of a player
/// ([`ReplyTo::every_socket_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub to: ReplyTo,
    pub answer: Answer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_names_the_request_it_answers() {
        let bet_ok = Answer::BetAccepted {
            req: "r".into(),
            round: 1,
            slot: 0,
            stake_minor: 10,
            auto_cashout_hundredths: None,
            balance_after_minor: 0,
        };
        let cashout_refused = Answer::CashoutRefused {
            req: "r".into(),
            refusal: Refusal::new(RefusalCode::TooLate, "late"),
        };
        let balance = Answer::BalanceChanged {
            balance_minor: 1,
            cashout: None,
            refund: None,
        };
        let named = |kind| {
            Some(RequestId {
                kind,
                req: "r".into(),
            })
        };
        assert_eq!(bet_ok.request(), named(RequestKind::Bet));
        assert_eq!(cashout_refused.request(), named(RequestKind::Cashout));
        assert_eq!(balance.request(), None);
    }
}
