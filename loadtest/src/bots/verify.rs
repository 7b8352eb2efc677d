//! What the bots check: the rules a correct server never breaks, as pure functions and
//! small trackers, so each rule is unit-tested on its own.
//!
//! This module owns the catalogue of failure kinds ([`Check`]) and the rules that need
//! no connection state: the order of public events ([`StreamTracker`], which tells the
//! ticks a slow socket may skip from lost events), the crash point of a round recomputed
//! with `aloft::fair`, the hash-chain link between consecutive rounds, the order of the
//! public lists and the payout of a cashout. The bot (`bots::bot`) applies them to what it
//! receives.

use aloft::fair::{crash_point_hundredths, sha256_hex};
use aloft::protocol::{PastRound, Phase, PublicBet, PublicCashout, RoomEvent, RoundTotals};

/// The kinds of failure a run counts, each one a reason the run fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
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
    /// A public event's `seq` was not above the previous one (repeated or older).
    SeqRepeat,
    /// Skipped `seq` numbers where more than ticks must have been: a lost `betting`,
    /// `flying` or `crash` (a gateway may skip only ticks of a slow socket).
    LostEvent,
    /// Contiguous events in an order the round loop never produces (a round without
    /// its crash, a flight without `flying`, a tick after the crash).
    EventOrder,
    /// A `crash`'s `m` differs from the one the revealed hash gives.
    CrashPoint,
    /// A round hash does not hash to the previous round's (or to the commitment).
    ChainLink,
    /// A tick's multiplier went above the round's crash point.
    TickAboveCrash,
    /// A public list not largest first, or round totals that went down.
    PublicFeed,
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
    /// The final reconnection failed, or (when the run allows reconnecting) no gateway
    /// took a lost connection back in time.
    ReconnectFailed,
    /// A reconnection that sent `since` got a `hello` without `recovered`.
    ResumeUnanswered,
}

impl Check {
    /// The name used in the report: the variant in snake case.
    pub fn as_str(self) -> &'static str {
        self.into()
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

/// What a public event is, for the order rules. A betting tick carries `ms` 0; a flying
/// tick is at least one tick interval into the flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Betting,
    BettingTick,
    Flying,
    FlyingTick,
    Crash,
    /// A player's `bet_cancelled`: only while betting is open.
    BetCancelled,
    /// An operator's `paused`, `resumed` or `limits`, or a player's `chat`: the round's
    /// phase stays.
    Aside,
}

impl EventKind {
    pub fn of(event: &RoomEvent) -> EventKind {
        match event {
            RoomEvent::Betting { .. } => EventKind::Betting,
            RoomEvent::Tick { ms: 0, .. } => EventKind::BettingTick,
            RoomEvent::Tick { .. } => EventKind::FlyingTick,
            RoomEvent::Flying { .. } => EventKind::Flying,
            RoomEvent::Crash { .. } => EventKind::Crash,
            RoomEvent::BetCancelled { .. } => EventKind::BetCancelled,
            RoomEvent::Paused { .. }
            | RoomEvent::Resumed { .. }
            | RoomEvent::Limits { .. }
            | RoomEvent::Chat { .. } => EventKind::Aside,
        }
    }

    /// The phase of the round once this event happened, if the event changes it.
    fn phase_after(self) -> Option<Phase> {
        match self {
            EventKind::Betting | EventKind::BettingTick | EventKind::BetCancelled => {
                Some(Phase::Betting)
            }
            EventKind::Flying | EventKind::FlyingTick => Some(Phase::Flying),
            EventKind::Crash => Some(Phase::Crashed),
            EventKind::Aside => None,
        }
    }
}

/// The last public event a connection has: its `seq` and where the round stood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    seq: u64,
    round: u64,
    phase: Phase,
}

impl Position {
    /// Rounds and their phases in stream order.
    fn order(self) -> (u64, u8) {
        let rank = match self.phase {
            Phase::Betting => 0,
            Phase::Flying => 1,
            Phase::Crashed => 2,
        };
        (self.round, rank)
    }
}

/// Follows the public events of one connection from its snapshot on. A round's events
/// come as `betting`, betting ticks, `flying`, flying ticks, `crash`, each `seq` the
/// previous + 1. A gateway may skip ticks of a slow socket (conflation: only the newest
/// tick is kept), so a jump in `seq` is allowed where only ticks can have been: between
/// events of the same phase of a round, from the betting phase to `flying`, and from the
/// flight to its `crash`. Everything else is a violation: a jump over a phase event
/// (`lost_event`), a `seq` not above the last (`seq_repeat`), an impossible order with
/// no jump (`event_order`).
#[derive(Debug, Default)]
pub struct StreamTracker {
    /// `None` before the snapshot.
    last: Option<Position>,
}

impl StreamTracker {
    /// The `seq` of the last event followed (or of the snapshot): where a reconnecting
    /// client resumes. `None` before the snapshot.
    pub fn last_seq(&self) -> Option<u64> {
        self.last.map(|position| position.seq)
    }

    /// The snapshot includes every event up to `seq`; the round stood at `phase`.
    pub fn on_snapshot(&mut self, seq: u64, round: u64, phase: Phase) {
        self.last = Some(Position { seq, round, phase });
    }

    /// Checks the next public event; returns how many ticks were skipped before it. After
    /// a violation the tracker follows the new event, so one fault is reported once.
    pub fn on_event(&mut self, seq: u64, round: u64, kind: EventKind) -> Result<u64, Failure> {
        let Some(last) = self.last else {
            return Err(Failure::new(
                Check::EventBeforeSnapshot,
                format!("event seq {seq} before the snapshot"),
            ));
        };
        if seq <= last.seq {
            return Err(Failure::new(
                Check::SeqRepeat,
                format!(
                    "seq {seq} ({kind:?} of round {round}) after seq {}",
                    last.seq
                ),
            ));
        }
        let next = Position {
            seq,
            round,
            phase: kind.phase_after().unwrap_or(last.phase),
        };
        self.last = Some(next);
        let skipped = seq - last.seq - 1;
        let same_round = round == last.round;
        let follows = match (last.phase, kind) {
            (
                Phase::Betting,
                EventKind::BettingTick | EventKind::BetCancelled | EventKind::Flying,
            ) => same_round,
            (Phase::Flying, EventKind::FlyingTick | EventKind::Crash) => same_round,
            (Phase::Crashed, EventKind::Betting) => round == last.round + 1 && skipped == 0,
            (_, EventKind::Aside) => same_round,
            _ => false,
        };
        if follows {
            return Ok(skipped);
        }
        let what = format!(
            "seq {seq} ({kind:?} of round {round}) after seq {} (round {} {:?})",
            last.seq, last.round, last.phase
        );
        if skipped > 0 && next.order() >= last.order() {
            Err(Failure::new(
                Check::LostEvent,
                format!("{what}: the {skipped} skipped events were not all ticks"),
            ))
        } else {
            Err(Failure::new(Check::EventOrder, what))
        }
    }
}

/// The public lists of a tick or crash are largest first: bets by stake, cashouts by win.
pub fn check_feed_order(bets: &[PublicBet], cashouts: &[PublicCashout]) -> Result<(), Failure> {
    let bets_sorted = bets.windows(2).all(|pair| pair[0].amount >= pair[1].amount);
    let cashouts_sorted = cashouts.windows(2).all(|pair| pair[0].win >= pair[1].win);
    if bets_sorted && cashouts_sorted {
        return Ok(());
    }
    let bets: Vec<i64> = bets.iter().map(|bet| bet.amount).collect();
    let wins: Vec<i64> = cashouts.iter().map(|cashout| cashout.win).collect();
    Err(Failure::new(
        Check::PublicFeed,
        format!("lists not largest first: bets {bets:?}, cashout wins {wins:?}"),
    ))
}

/// A round's totals only grow: each event carries them whole, so even after skipped
/// ticks the next ones are at least the previous ones.
pub fn check_totals_grow(
    round: u64,
    previous: &RoundTotals,
    next: &RoundTotals,
) -> Result<(), Failure> {
    let grew = next.bets >= previous.bets
        && next.staked >= previous.staked
        && next.cashouts >= previous.cashouts
        && next.won >= previous.won
        && next.cashout_stakes >= previous.cashout_stakes;
    if grew {
        Ok(())
    } else {
        Err(Failure::new(
            Check::PublicFeed,
            format!("round {round}: totals went from {previous:?} to {next:?}"),
        ))
    }
}

/// The crash's totals count at least the bot's own acknowledged bets of the round
/// (`own_stakes_minor`, one stake each).
pub fn check_totals_count(
    round: u64,
    totals: Option<&RoundTotals>,
    own_stakes_minor: &[i64],
) -> Result<(), Failure> {
    if own_stakes_minor.is_empty() {
        return Ok(());
    }
    let own_bets = own_stakes_minor.len() as u64;
    let own_staked: i64 = own_stakes_minor.iter().sum();
    match totals {
        Some(totals) if totals.bets >= own_bets && totals.staked >= own_staked => Ok(()),
        _ => Err(Failure::new(
            Check::PublicFeed,
            format!(
                "round {round} crashed with totals {totals:?}, below the bot's own {own_bets} bets of {own_staked}"
            ),
        )),
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

    use EventKind::{Betting, BettingTick, Crash, Flying, FlyingTick};

    /// Feeds `events` (seq, round, kind) after a snapshot at seq 10 of round 3 in
    /// `phase`; returns each outcome: skipped ticks or the failed check.
    fn follow(phase: Phase, events: &[(u64, u64, EventKind)]) -> Vec<Result<u64, Check>> {
        let mut tracker = StreamTracker::default();
        tracker.on_snapshot(10, 3, phase);
        events
            .iter()
            .map(|&(seq, round, kind)| {
                tracker
                    .on_event(seq, round, kind)
                    .map_err(|failure| failure.check)
            })
            .collect()
    }

    #[test]
    fn a_whole_round_in_order_skips_nothing() {
        let round = [
            (11, 3, BettingTick),
            (12, 3, Flying),
            (13, 3, FlyingTick),
            (14, 3, FlyingTick),
            (15, 3, Crash),
            (16, 4, Betting),
            (17, 4, Flying),
            (18, 4, Crash),
        ];
        assert!(follow(Phase::Betting, &round).iter().all(|o| *o == Ok(0)));
    }

    #[test]
    fn skipped_ticks_are_conflation_and_are_counted() {
        let events = [
            (13, 3, BettingTick),
            (15, 3, Flying),
            (20, 3, FlyingTick),
            (21, 3, FlyingTick),
            (25, 3, Crash),
            (26, 4, Betting),
        ];
        let outcomes = follow(Phase::Betting, &events);
        assert_eq!(outcomes, [Ok(2), Ok(1), Ok(4), Ok(0), Ok(3), Ok(0)]);
    }

    #[test]
    fn a_jump_over_a_phase_event_is_a_lost_event() {
        // `flying` lost: a flying tick right after betting ticks.
        assert_eq!(
            follow(Phase::Betting, &[(13, 3, FlyingTick)]),
            [Err(Check::LostEvent)]
        );
        // `crash` and `betting` lost: the next round's flight.
        assert_eq!(
            follow(Phase::Flying, &[(14, 4, Flying)]),
            [Err(Check::LostEvent)]
        );
        // A round seen without its crash.
        assert_eq!(
            follow(Phase::Flying, &[(12, 4, Betting)]),
            [Err(Check::LostEvent)]
        );
        // Nothing but `betting` comes after a crash, and nothing between them.
        assert_eq!(
            follow(Phase::Crashed, &[(12, 4, Betting)]),
            [Err(Check::LostEvent)]
        );
        // Reported once: the tracker follows the new event.
        let outcomes = follow(Phase::Betting, &[(13, 3, FlyingTick), (14, 3, FlyingTick)]);
        assert_eq!(outcomes, [Err(Check::LostEvent), Ok(0)]);
    }

    #[test]
    fn repeated_seqs_and_impossible_orders_are_violations() {
        let outcomes = follow(Phase::Flying, &[(10, 3, FlyingTick), (9, 3, FlyingTick)]);
        assert_eq!(outcomes, [Err(Check::SeqRepeat), Err(Check::SeqRepeat)]);
        // Contiguous but impossible: a flight without `flying`, a tick after the crash,
        // a crash of another round, a round that goes back.
        let impossible = [
            (Phase::Betting, (11, 3, FlyingTick)),
            (Phase::Crashed, (11, 3, FlyingTick)),
            (Phase::Flying, (11, 4, Crash)),
            (Phase::Flying, (13, 2, Betting)),
            (Phase::Crashed, (11, 5, Betting)),
        ];
        for (phase, event) in impossible {
            assert_eq!(
                follow(phase, &[event]),
                [Err(Check::EventOrder)],
                "{event:?} after {phase:?}"
            );
        }
        let mut tracker = StreamTracker::default();
        let early = tracker.on_event(5, 1, Betting).unwrap_err();
        assert_eq!(early.check, Check::EventBeforeSnapshot);
    }

    #[test]
    fn totals_only_grow_and_count_the_bots_own_bets() {
        let totals = |bets, staked, cashouts, won| RoundTotals {
            bets,
            staked,
            cashouts,
            won,
            cashout_stakes: 0,
        };
        let before = totals(10, 1_000, 2, 300);
        assert!(check_totals_grow(1, &before, &totals(10, 1_000, 3, 450)).is_ok());
        for shrunk in [totals(9, 1_000, 2, 300), totals(10, 1_000, 2, 299)] {
            let failure = check_totals_grow(1, &before, &shrunk).unwrap_err();
            assert_eq!(failure.check, Check::PublicFeed);
        }
        assert!(check_totals_count(1, None, &[]).is_ok());
        assert!(check_totals_count(1, Some(&before), &[500, 500]).is_ok());
        assert!(check_totals_count(1, Some(&before), &[500, 501]).is_err());
        assert!(check_totals_count(1, None, &[10]).is_err());
    }

    #[test]
    fn public_lists_must_be_largest_first() {
        let bet = |amount| PublicBet {
            player: "p".into(),
            name: "guest-p".into(),
            slot: 0,
            amount,
            auto: None,
        };
        let cashout = |win| PublicCashout {
            player: "p".into(),
            slot: 0,
            m: 200,
            win,
            by: None,
        };
        assert!(check_feed_order(&[bet(50), bet(50), bet(10)], &[cashout(9), cashout(3)]).is_ok());
        let unsorted = check_feed_order(&[bet(10), bet(50)], &[]).unwrap_err();
        assert_eq!(unsorted.check, Check::PublicFeed);
        assert!(check_feed_order(&[], &[cashout(3), cashout(9)]).is_err());
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
