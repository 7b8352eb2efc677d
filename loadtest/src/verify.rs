//! What the bots check: the rules a correct server never breaks, as pure functions and
//! small trackers, so each rule is unit-tested on its own.
//!
//! This module owns the catalogue of failure kinds ([`Check`]) and the rules that need
//! no connection state: the contiguity of public `seq` numbers, the crash point of a
//! round recomputed with `aloft::fair`, the hash-chain link between consecutive rounds
//! and the payout of a cashout. The bot (`bot.rs`) applies them to what it receives.

use aloft::fair::{crash_point_hundredths, sha256_hex};
use aloft::protocol::PastRound;

/// The kinds of failure a run counts, each one a reason the run fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    /// The guest call or the WebSocket handshake failed.
    ConnectFailed,
    /// The server closed or broke the connection before the run ended.
    Disconnected,
    /// A frame that is not a protocol v1 JSON text frame.
    BadFrame,
    /// The server sent an `error` frame.
    ErrorFrame,
    /// A public event arrived before the snapshot that fixes the first `seq`.
    EventBeforeSnapshot,
    /// Public events' `seq` skipped or repeated a number.
    SeqGap,
    /// A `crash`'s `m` differs from the one the revealed hash gives.
    CrashPoint,
    /// A round hash does not hash to the previous round's (or to the commitment).
    ChainLink,
    /// A tick's multiplier went above the round's crash point.
    TickAboveCrash,
    /// A reply's `req` matches no request in flight.
    UnknownReply,
    /// A `bet_ok`/`cashout_ok` disagrees with the request it answers.
    ReplyMismatch,
    /// A `bet_err`/`cashout_err` code a well-behaved bot should never get.
    UnexpectedReject,
    /// A cashout paid something else than `floor(amount · m / 100)`.
    CashoutWin,
    /// Two reports of the same cashout (private and public) disagree.
    CashoutConflict,
    /// An auto-cashout happened at another multiplier than the bet's `auto`.
    AutoCashoutPrice,
    /// The round crashed above a bet's `auto` and the bet was not cashed out.
    AutoCashoutMissed,
    /// A public cashout of this bot for a slot it has no bet in, or never asked to cash.
    UnrequestedCashout,
    /// A balance below zero.
    NegativeBalance,
    /// Between rounds, the bot's own ledger and the server's last balance disagree.
    BalanceDrift,
    /// The bot could not settle its bets within the drain time.
    DrainTimeout,
    /// After reconnecting, `hello.balance` (read from the ledger) is not the bot's own.
    FinalBalance,
    /// The final reconnection failed.
    ReconnectFailed,
}

impl Check {
    /// The name used in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::ConnectFailed => "connect_failed",
            Check::Disconnected => "disconnected",
            Check::BadFrame => "bad_frame",
            Check::ErrorFrame => "error_frame",
            Check::EventBeforeSnapshot => "event_before_snapshot",
            Check::SeqGap => "seq_gap",
            Check::CrashPoint => "crash_point",
            Check::ChainLink => "chain_link",
            Check::TickAboveCrash => "tick_above_crash",
            Check::UnknownReply => "unknown_reply",
            Check::ReplyMismatch => "reply_mismatch",
            Check::UnexpectedReject => "unexpected_reject",
            Check::CashoutWin => "cashout_win",
            Check::CashoutConflict => "cashout_conflict",
            Check::AutoCashoutPrice => "auto_cashout_price",
            Check::AutoCashoutMissed => "auto_cashout_missed",
            Check::UnrequestedCashout => "unrequested_cashout",
            Check::NegativeBalance => "negative_balance",
            Check::BalanceDrift => "balance_drift",
            Check::DrainTimeout => "drain_timeout",
            Check::FinalBalance => "final_balance",
            Check::ReconnectFailed => "reconnect_failed",
        }
    }
}

/// One broken rule: its kind and a message that says what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub check: Check,
    pub message: String,
}

impl Failure {
    pub fn new(check: Check, message: impl Into<String>) -> Failure {
        Failure {
            check,
            message: message.into(),
        }
    }
}

/// Follows the public `seq` numbers of one connection: the snapshot fixes the last
/// number it includes, and every event must carry the next one.
#[derive(Debug, Default)]
pub struct SeqTracker {
    /// The `seq` the next public event must carry; `None` before the snapshot.
    next_seq: Option<u64>,
}

impl SeqTracker {
    /// The snapshot includes every event up to `seq`.
    pub fn on_snapshot(&mut self, seq: u64) {
        self.next_seq = Some(seq + 1);
    }

    /// Checks a public event's `seq`, then expects the one after it (so one gap is
    /// reported once, not for every later event).
    pub fn on_event(&mut self, seq: u64) -> Result<(), Failure> {
        let Some(expected) = self.next_seq else {
            return Err(Failure::new(
                Check::EventBeforeSnapshot,
                format!("event seq {seq} before the snapshot"),
            ));
        };
        self.next_seq = Some(seq + 1);
        if seq == expected {
            Ok(())
        } else {
            Err(Failure::new(
                Check::SeqGap,
                format!("expected seq {expected}, got {seq}"),
            ))
        }
    }
}

/// The public fairness parameters of the server (`GET /api/fair`).
#[derive(Debug, Clone)]
pub struct FairCheck {
    pub salt: String,
    /// SHA-256 of round 1's hash, published before play.
    pub commitment: String,
    pub house_edge_bp: u32,
}

impl FairCheck {
    /// The crash point `m` of `round` must be the one its revealed `hash` gives.
    pub fn check_crash(&self, round: u64, m: u64, hash: &str) -> Result<(), Failure> {
        let expected = crash_point_hundredths(hash, &self.salt, self.house_edge_bp);
        if m == expected {
            Ok(())
        } else {
            Err(Failure::new(
                Check::CrashPoint,
                format!("round {round} crashed at {m}, its hash gives {expected}"),
            ))
        }
    }

    /// The chain link of `round`: its hash hashes to the hash of the round before it
    /// (when that one is known) or, for round 1, to the published commitment.
    pub fn check_link(
        &self,
        previous: Option<(u64, &str)>,
        round: u64,
        hash: &str,
    ) -> Result<(), Failure> {
        let expected = match previous {
            _ if round == 1 => self.commitment.as_str(),
            Some((previous_round, previous_hash)) if previous_round + 1 == round => previous_hash,
            _ => return Ok(()),
        };
        let hashed = sha256_hex(hash);
        if hashed == expected {
            Ok(())
        } else {
            Err(Failure::new(
                Check::ChainLink,
                format!("sha256(hash of round {round}) = {hashed}, expected {expected}"),
            ))
        }
    }

    /// Checks the past rounds listed in a snapshot: each crash point, and the link of
    /// every pair of consecutive rounds in the list.
    pub fn check_history(&self, history: &[PastRound]) -> Vec<Failure> {
        let mut failures = Vec::new();
        for past in history {
            failures.extend(self.check_crash(past.round, past.m, &past.hash).err());
            let previous = history
                .iter()
                .find(|other| other.round + 1 == past.round)
                .map(|other| (other.round, other.hash.as_str()));
            if previous.is_some() || past.round == 1 {
                failures.extend(self.check_link(previous, past.round, &past.hash).err());
            }
        }
        failures
    }
}

/// What a cashout of `amount_minor` at `m` hundredths must pay, stake included.
pub fn expected_win_minor(amount_minor: i64, m: u64) -> i64 {
    let win = i128::from(amount_minor) * i128::from(m) / 100;
    i64::try_from(win).unwrap_or(i64::MAX)
}

/// A cashout must pay exactly `floor(amount · m / 100)`.
pub fn check_win(amount_minor: i64, m: u64, win_minor: i64) -> Result<(), Failure> {
    let expected = expected_win_minor(amount_minor, m);
    if win_minor == expected {
        Ok(())
    } else {
        Err(Failure::new(
            Check::CashoutWin,
            format!("stake {amount_minor} at {m} paid {win_minor}, expected {expected}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft::fair::FairChain;

    /// Computed independently of `aloft::fair` (Python's hmac/hashlib, integer maths).
    const HASH_OF_X: &str = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881";

    fn fair(commitment: &str) -> FairCheck {
        FairCheck {
            salt: "salt".into(),
            commitment: commitment.into(),
            house_edge_bp: 100,
        }
    }

    #[test]
    fn seq_must_follow_the_snapshot_without_gaps() {
        let mut tracker = SeqTracker::default();
        assert_eq!(
            tracker.on_event(5).unwrap_err().check,
            Check::EventBeforeSnapshot
        );
        tracker.on_snapshot(10);
        assert!(tracker.on_event(11).is_ok());
        assert!(tracker.on_event(12).is_ok());
        let gap = tracker.on_event(14).unwrap_err();
        assert_eq!(gap.check, Check::SeqGap);
        assert_eq!(gap.message, "expected seq 13, got 14");
        assert!(tracker.on_event(15).is_ok(), "one gap is reported once");
        assert_eq!(tracker.on_event(15).unwrap_err().check, Check::SeqGap);
    }

    #[test]
    fn crash_point_matches_an_independent_vector() {
        let check = fair("");
        assert!(check.check_crash(1, 162, HASH_OF_X).is_ok());
        assert_eq!(
            check.check_crash(1, 163, HASH_OF_X).unwrap_err().check,
            Check::CrashPoint
        );
        let chained = "c386d8e8d07342f2e39e189c8e6c57bb205bb373fe4e3a6f69404a8bb767b417";
        assert!(check.check_crash(7, 176, chained).is_ok());
    }

    #[test]
    fn chain_links_consecutive_rounds_and_the_commitment() {
        let seed = "0000000000000000000000000000000000000000000000000000000000000001";
        let chain = FairChain::generate(seed, 4).unwrap();
        let check = fair(&chain.commitment());
        let hash = |round| chain.round_hash(round).unwrap();
        assert!(check.check_link(None, 1, &hash(1)).is_ok());
        assert!(check.check_link(Some((1, &hash(1))), 2, &hash(2)).is_ok());
        assert!(check.check_link(Some((2, &hash(2))), 3, &hash(3)).is_ok());
        let broken = check.check_link(Some((2, &hash(2))), 3, &hash(4));
        assert_eq!(broken.unwrap_err().check, Check::ChainLink);
        assert_eq!(
            check.check_link(None, 1, &hash(2)).unwrap_err().check,
            Check::ChainLink
        );
        assert!(
            check.check_link(Some((1, &hash(1))), 3, &hash(4)).is_ok(),
            "rounds that are not consecutive prove nothing"
        );
    }

    #[test]
    fn history_is_checked_round_by_round() {
        let seed = "0000000000000000000000000000000000000000000000000000000000000002";
        let chain = FairChain::generate(seed, 3).unwrap();
        let check = fair(&chain.commitment());
        let past = |round: u64| {
            let hash = chain.round_hash(round).unwrap();
            let m = crash_point_hundredths(&hash, "salt", 100);
            PastRound { round, m, hash }
        };
        let mut history = vec![past(3), past(2), past(1)];
        assert!(check.check_history(&history).is_empty());
        history[1].m += 1;
        history[0].hash = chain.round_hash(1).unwrap();
        let kinds: Vec<Check> = check
            .check_history(&history)
            .iter()
            .map(|failure| failure.check)
            .collect();
        assert!(kinds.contains(&Check::CrashPoint));
        assert!(kinds.contains(&Check::ChainLink));
    }

    #[test]
    fn cashout_pays_the_floor_of_stake_times_multiplier() {
        assert!(check_win(100, 257, 257).is_ok());
        assert!(check_win(33, 150, 49).is_ok());
        assert_eq!(check_win(33, 150, 50).unwrap_err().check, Check::CashoutWin);
        assert_eq!(expected_win_minor(1_000_000, 1_000_000), 10_000_000_000);
    }
}
