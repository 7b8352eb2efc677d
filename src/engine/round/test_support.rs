//! What the tests of the round's parts share: an engine config, a room with a wanted
//! crash point, placed bets, a started flight and readers of [`Effects`].

use std::sync::Arc;

use crate::bus::ReplyTo;
use crate::config::EngineConfig;
use crate::engine::answer::{Answer, RefusalCode};
use crate::fair::{self, FairChain};

use super::RoomCore;
pub(super) use super::types::BetTerms;
use super::types::{
    BetKey, CreditNotice, CreditReason, Effects, RoomSettings, RoundPhase, TransferPurpose,
};

pub(super) const SEED: &str = "0000000000000000000000000000000000000000000000000000000000000007";

/// Engine time at which round 1 opens.
pub(super) const T0_MS: u64 = 1_000_000;

pub(super) const BETTING_MS: u64 = 1_000;

pub(super) const RATE: u64 = 60;

pub(super) fn engine() -> EngineConfig {
    EngineConfig {
        betting_duration_ms: BETTING_MS,
        crashed_duration_ms: 500,
        tick_interval_ms: 100,
        bet_amount_min_minor: 10,
        bet_amount_max_minor: 10_000,
        auto_cashout_max_hundredths: 100_000,
        round_profit_max_minor: 1_000_000,
        command_batch_max: 64,
        growth_rate_per_ms_millionths: RATE,
        public_bets_per_tick_max: 10,
        public_cashouts_per_tick_max: 10,
        ledger_batch_timeout_ms: 1_000,
        ledger_breaker_cooldown_ms: 5_000,
        chat_burst_messages: 5,
        chat_message_interval_ms: 1_000,
    }
}

/// A room whose round 1 crashes at a point `wanted` accepts (found by trying salts),
/// and that crash point.
pub(super) fn room_where(wanted: impl Fn(u64) -> bool, engine: EngineConfig) -> (RoomCore, u64) {
    let chain = Arc::new(FairChain::generate(SEED, 10).unwrap());
    let hash = chain.round_hash(1).unwrap();
    for attempt in 0..100_000 {
        let salt = format!("salt-{attempt}");
        let crash = fair::crash_point_hundredths(&hash, &salt, 100);
        if wanted(crash) {
            let settings = RoomSettings {
                room: "test".into(),
                salt,
                house_edge_bp: 100,
                engine,
            };
            return (RoomCore::new(settings, chain, 1, 1, T0_MS).unwrap(), crash);
        }
    }
    panic!("no salt gives a wanted crash point");
}

pub(super) fn player(name: &str) -> ReplyTo {
    ReplyTo {
        gateway: "g".into(),
        connection: 1,
        player: name.into(),
    }
}

/// Places a bet at T0 and confirms it with a balance of 1000 after.
pub(super) fn placed(
    core: &mut RoomCore,
    name: &str,
    amount: i64,
    auto: Option<u64>,
    slot: u8,
) -> BetKey {
    placed_at(core, T0_MS, name, amount, auto, slot)
}

/// Places a bet at `now_ms` and confirms it with a balance of 1000 after.
pub(super) fn placed_at(
    core: &mut RoomCore,
    now_ms: u64,
    name: &str,
    amount: i64,
    auto: Option<u64>,
    slot: u8,
) -> BetKey {
    core.bet(
        now_ms,
        &player(name),
        name,
        &format!("bet-{name}-{slot}"),
        BetTerms::new(amount, auto, slot),
    );
    let effects = core.take_effects();
    let [intent] = effects.transfers.as_slice() else {
        panic!("expected one stake: {effects:?}");
    };
    let TransferPurpose::Stake(key) = &intent.purpose else {
        panic!("expected a stake: {intent:?}");
    };
    let key = key.clone();
    core.confirm_bet(&key, 1_000);
    core.take_effects();
    key
}

/// Starts the flight; returns its start time.
pub(super) fn fly(core: &mut RoomCore) -> u64 {
    let started_at_ms = T0_MS + BETTING_MS;
    core.advance(started_at_ms).unwrap();
    assert!(matches!(core.phase(), RoundPhase::Flying { .. }));
    started_at_ms
}

pub(super) fn only_reply(core: &mut RoomCore) -> Answer {
    let effects = core.take_effects();
    assert_eq!(effects.replies.len(), 1, "{effects:?}");
    effects.replies[0].answer.clone()
}

pub(super) fn refusal(answer: &Answer) -> RefusalCode {
    match answer.refusal() {
        Some(refusal) => refusal.code,
        None => panic!("not a refusal: {answer:?}"),
    }
}

/// (id, amount) of the payouts and refunds in `effects`.
pub(super) fn credits(effects: &Effects) -> Vec<(String, i64)> {
    let credits = effects.transfers.iter();
    let credits = credits.filter(|intent| matches!(intent.purpose, TransferPurpose::Credit(_)));
    credits
        .map(|intent| (intent.transfer.id.clone(), intent.transfer.amount_minor))
        .collect()
}

/// (player, multiplier) of the cashouts decided in `effects`, from their payouts:
/// what the engine pays, listed publicly or not.
pub(super) fn cashout_multipliers(effects: &Effects) -> Vec<(String, u64)> {
    let mut cashouts = Vec::new();
    for intent in &effects.transfers {
        if let TransferPurpose::Credit(CreditNotice {
            bet,
            reason:
                CreditReason::Cashout {
                    multiplier_hundredths,
                    ..
                },
            ..
        }) = &intent.purpose
        {
            cashouts.push((bet.player.clone(), *multiplier_hundredths));
        }
    }
    cashouts
}
