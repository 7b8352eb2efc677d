//! The engine's section (`[engine]`): the round loop and its limits.

use serde::{Deserialize, Serialize};

use super::{ConfigError, require};

/// Highest `engine.public_bets_per_tick_max` and `public_cashouts_per_tick_max`: a tick
/// is written to every socket, so its lists stay short (1,000 bets ≈ 60 KB).
pub const PUBLIC_ITEMS_PER_TICK_MAX: usize = 1_000;

/// The round loop and its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Length of the betting phase.
    pub betting_duration_ms: u64,
    /// Pause after a crash before the next betting phase.
    pub crashed_duration_ms: u64,
    /// Interval between ticks while flying.
    pub tick_interval_ms: u64,
    /// Smallest stake, in minor units.
    pub bet_amount_min_minor: i64,
    /// Largest stake, in minor units.
    pub bet_amount_max_minor: i64,
    /// Largest auto-cashout multiplier accepted, in hundredths.
    pub auto_cashout_max_hundredths: u64,
    /// Round max profit: when the players' total profit would exceed it, everyone still
    /// in is cashed out at the multiplier that reaches it. In minor units.
    pub round_profit_max_minor: i64,
    /// Commands handled in one ledger transaction, at most.
    pub command_batch_max: usize,
    /// Growth rate of the multiplier, in millionths per millisecond:
    /// m(t) = floor(100 · e^(rate · t)). 60 gives 2.00x at about 11.55 s.
    pub growth_rate_per_ms_millionths: u64,
    /// Bets a tick lists publicly, at most: the largest accepted since the last tick.
    /// The others count only in the tick's totals (their players get `bet_ok`).
    pub public_bets_per_tick_max: usize,
    /// Cashouts a tick (or the crash) lists publicly, at most: the largest wins since
    /// the last tick.
    pub public_cashouts_per_tick_max: usize,
    /// A ledger batch that takes longer than this, in milliseconds, opens the room's
    /// circuit breaker (as a failed batch does): bets are refused `unavailable` for
    /// `ledger_breaker_cooldown_ms`.
    pub ledger_batch_timeout_ms: u64,
    /// How long an open breaker refuses bets before one batch probes the ledger again,
    /// in milliseconds.
    pub ledger_breaker_cooldown_ms: u64,
    /// Chat messages a player may post in a burst, before the rate below applies.
    pub chat_burst_messages: u32,
    /// After a burst, one chat message per this many milliseconds per player.
    pub chat_message_interval_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            betting_duration_ms: 5_000,
            crashed_duration_ms: 3_000,
            tick_interval_ms: 100,
            bet_amount_min_minor: 10,
            bet_amount_max_minor: 1_000_000,
            auto_cashout_max_hundredths: 1_000_000,
            round_profit_max_minor: 10_000_000,
            command_batch_max: 1024,
            growth_rate_per_ms_millionths: 60,
            public_bets_per_tick_max: 10,
            public_cashouts_per_tick_max: 10,
            ledger_batch_timeout_ms: 1_000,
            ledger_breaker_cooldown_ms: 5_000,
            chat_burst_messages: 5,
            chat_message_interval_ms: 1_000,
        }
    }
}

impl EngineConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.validate_round()?;
        self.validate_lists_and_ledger()?;
        self.validate_chat()
    }

    fn validate_chat(&self) -> Result<(), ConfigError> {
        require(
            (1..=100).contains(&self.chat_burst_messages),
            "engine.chat_burst_messages",
            "must be 1..=100",
        )?;
        require(
            (1..=3_600_000).contains(&self.chat_message_interval_ms),
            "engine.chat_message_interval_ms",
            "must be 1..=3600000",
        )
    }

    fn validate_round(&self) -> Result<(), ConfigError> {
        require(
            (10..=10_000).contains(&self.tick_interval_ms),
            "engine.tick_interval_ms",
            "must be 10..=10000",
        )?;
        require(
            self.betting_duration_ms >= self.tick_interval_ms,
            "engine.betting_duration_ms",
            "must be at least one tick",
        )?;
        require(
            0 < self.bet_amount_min_minor && self.bet_amount_min_minor <= self.bet_amount_max_minor,
            "engine.bet_amount_min_minor",
            "must be positive and at most engine.bet_amount_max_minor",
        )?;
        require(
            self.auto_cashout_max_hundredths > 100,
            "engine.auto_cashout_max_hundredths",
            "must be above 100",
        )?;
        require(
            self.round_profit_max_minor > 0,
            "engine.round_profit_max_minor",
            "must be positive",
        )?;
        require(
            (1..=10_000).contains(&self.growth_rate_per_ms_millionths),
            "engine.growth_rate_per_ms_millionths",
            "must be 1..=10000",
        )
    }

    fn validate_lists_and_ledger(&self) -> Result<(), ConfigError> {
        require(
            self.command_batch_max > 0,
            "engine.command_batch_max",
            "must be positive",
        )?;
        require(
            self.public_bets_per_tick_max <= PUBLIC_ITEMS_PER_TICK_MAX,
            "engine.public_bets_per_tick_max",
            &format!("must be at most {PUBLIC_ITEMS_PER_TICK_MAX}"),
        )?;
        require(
            self.public_cashouts_per_tick_max <= PUBLIC_ITEMS_PER_TICK_MAX,
            "engine.public_cashouts_per_tick_max",
            &format!("must be at most {PUBLIC_ITEMS_PER_TICK_MAX}"),
        )?;
        require(
            self.ledger_batch_timeout_ms > 0,
            "engine.ledger_batch_timeout_ms",
            "must be positive",
        )?;
        require(
            self.ledger_breaker_cooldown_ms > 0,
            "engine.ledger_breaker_cooldown_ms",
            "must be positive",
        )
    }
}
