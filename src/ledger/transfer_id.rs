//! The ids aloft gives its own transfers: the one place their format is written and read.
//!
//! An id is the transfer's idempotency key, so it names what makes the movement unique,
//! never a retry: a guest's grant (`grant:{player}`) and the stake, payout or refund of
//! one bet (`{kind}:{room}:{round}:{player}:{slot}`, kind `bet`, `payout` or `refund`).
//! The engine builds them, recovery and the load test's checks parse them back, and the
//! ledger stores their text: [`super::Transfer::id`] stays a string (the ledger itself
//! accepts any non-empty id, as its conformance suite does), and this type is how aloft
//! writes and reads the ones it makes. The text is the format databases already hold, so
//! changing it here would orphan every stored id: add a variant instead.

use std::fmt;
use std::str::FromStr;

/// The bet a stake, payout or refund belongs to. Room names hold no `:`
/// (`config::valid_room_name`), so an id names its room unambiguously; player ids hold
/// none either (`auth::valid_player_id`), though a parse would still find one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BetRef {
    pub room: String,
    pub round: u64,
    pub player: String,
    /// The player's bet slot in the round.
    pub slot: u8,
}

/// Which of a bet's transfers an id names; its text starts the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::Display, strum::EnumString)]
pub enum BetTransferKind {
    /// The stake (player → house).
    #[strum(serialize = "bet")]
    Stake,
    /// The win of a cashout (house → player).
    #[strum(serialize = "payout")]
    Payout,
    /// The stake given back (house → player).
    #[strum(serialize = "refund")]
    Refund,
}

/// The id of a transfer aloft makes. `Display` writes the stored text, `FromStr` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransferId {
    /// `grant:{player}`: a guest's demo balance, at most once per player.
    Grant { player: String },
    /// `{kind}:{room}:{round}:{player}:{slot}`: one of the transfers of a bet.
    OfBet { kind: BetTransferKind, bet: BetRef },
}

/// The first part of a grant's id.
const GRANT: &str = "grant";

impl TransferId {
    pub fn grant(player: &str) -> TransferId {
        TransferId::Grant {
            player: player.to_owned(),
        }
    }

    /// The prefix of every `kind` id of `room` (for `Ledger::transfers_with_prefix`).
    pub fn room_prefix(kind: BetTransferKind, room: &str) -> String {
        format!("{kind}:{room}:")
    }

    /// The prefix of every `kind` id of `room`'s round `round`.
    pub fn round_prefix(kind: BetTransferKind, room: &str, round: u64) -> String {
        format!("{kind}:{room}:{round}:")
    }
}

/// SQL for the ids of the payout and refund of the stake whose id is in `stake_id_column`
/// (`payout` or `refund` in place of `bet`, the rest kept): a list for `IN (…)`, the same
/// text in SQLite and PostgreSQL (`substr` counts from 1).
pub(crate) fn settlement_ids_sql(stake_id_column: &str) -> String {
    let after_kind = BetTransferKind::Stake.to_string().len() + 1;
    let rest = format!("substr({stake_id_column}, {after_kind})");
    format!(
        "'{payout}' || {rest}, '{refund}' || {rest}",
        payout = BetTransferKind::Payout,
        refund = BetTransferKind::Refund,
    )
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferId::Grant { player } => write!(f, "{GRANT}:{player}"),
            TransferId::OfBet { kind, bet } => {
                let BetRef {
                    room,
                    round,
                    player,
                    slot,
                } = bet;
                write!(f, "{kind}:{room}:{round}:{player}:{slot}")
            }
        }
    }
}

/// A string that is not an id aloft makes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an aloft transfer id: {id:?} ({reason})")]
pub struct TransferIdError {
    pub id: String,
    pub reason: &'static str,
}

impl FromStr for TransferId {
    type Err = TransferIdError;

    fn from_str(id: &str) -> Result<TransferId, TransferIdError> {
        let refuse = |reason| TransferIdError {
            id: id.to_owned(),
            reason,
        };
        let (kind, rest) = id.split_once(':').ok_or_else(|| refuse("no kind"))?;
        if kind == GRANT {
            if rest.is_empty() {
                return Err(refuse("no player"));
            }
            return Ok(TransferId::grant(rest));
        }
        let kind: BetTransferKind = kind.parse().map_err(|_| refuse("unknown kind"))?;
        let (room, rest) = rest.split_once(':').ok_or_else(|| refuse("no round"))?;
        let (round, rest) = rest.split_once(':').ok_or_else(|| refuse("no player"))?;
        let (player, slot) = rest.rsplit_once(':').ok_or_else(|| refuse("no slot"))?;
        if room.is_empty() || player.is_empty() {
            return Err(refuse("an empty room or player"));
        }
        let bet = BetRef {
            room: room.to_owned(),
            round: parse_number(round).ok_or_else(|| refuse("the round is not a number"))?,
            player: player.to_owned(),
            slot: parse_number(slot).ok_or_else(|| refuse("the slot is not a number"))?,
        };
        Ok(TransferId::OfBet { kind, bet })
    }
}

/// Decimal digits only, as `Display` writes them: a `+` or a leading zero would make two
/// texts for one id.
fn parse_number<T: FromStr>(text: &str) -> Option<T> {
    let canonical = text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty();
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if canonical && !leading_zero {
        text.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn bet(room: &str, round: u64, player: &str, slot: u8) -> BetRef {
        BetRef {
            room: room.to_owned(),
            round,
            player: player.to_owned(),
            slot,
        }
    }

    #[test]
    fn ids_are_written_as_the_databases_hold_them() {
        assert_eq!(TransferId::grant("g-1f").to_string(), "grant:g-1f");
        let cases = [
            (BetTransferKind::Stake, "bet:main:12:alice:0"),
            (BetTransferKind::Payout, "payout:main:12:alice:0"),
            (BetTransferKind::Refund, "refund:main:12:alice:0"),
        ];
        for (kind, text) in cases {
            let id = TransferId::OfBet {
                kind,
                bet: bet("main", 12, "alice", 0),
            };
            assert_eq!(id.to_string(), text);
            assert_eq!(text.parse::<TransferId>(), Ok(id));
        }
        assert_eq!(
            TransferId::round_prefix(BetTransferKind::Payout, "main", 12),
            "payout:main:12:"
        );
        assert_eq!(
            TransferId::room_prefix(BetTransferKind::Stake, "main"),
            "bet:main:"
        );
    }

    #[test]
    fn other_strings_are_not_ids() {
        for text in [
            "",
            "grant",
            "grant:",
            "g:1",
            "bet:main",
            "bet:main:1",
            "bet:main:1:alice",
            "bet:main:x:alice:0",
            "bet:main:1:alice:256",
            "bet:main:01:alice:0",
            "bet:main:+1:alice:0",
            "bet::1:alice:0",
            "bet:main:1::0",
            "wager:main:1:alice:0",
        ] {
            assert!(text.parse::<TransferId>().is_err(), "{text:?}");
        }
    }

    proptest! {
        /// Every id aloft can make reads back as itself, whatever its players (with `:`
        /// too), rounds and slots.
        #[test]
        fn every_id_reads_back_as_itself(
            room in "[a-z0-9_-]{1,32}",
            round: u64,
            player in "[A-Za-z0-9_.:-]{1,64}",
            slot: u8,
            kind in prop::sample::select(vec![
                BetTransferKind::Stake,
                BetTransferKind::Payout,
                BetTransferKind::Refund,
            ]),
        ) {
            let grant = TransferId::grant(&player);
            prop_assert_eq!(grant.to_string().parse::<TransferId>(), Ok(grant));
            let id = TransferId::OfBet { kind, bet: bet(&room, round, &player, slot) };
            prop_assert_eq!(id.to_string().parse::<TransferId>(), Ok(id));
        }
    }
}
