//! What happens to a room in a scenario ([`Scenario`], [`Step`]) and how any bytes decode
//! into one, for the proptest and the fuzz target alike.

/// What the mint granted each player: one who cannot bet, one who soon cannot, two who can.
pub(super) const GRANTS_MINOR: [i64; 4] = [0, 500, 20_000, 1_000_000];
/// Request ids per player and message type that steps draw from: few, so that replays
/// happen. Bets and cashouts use separate ids (`b3`, `c3`): see issue 10 row 6, a cashout
/// reusing a bet's `req` is answered with the bet's reply until the replay key holds the
/// message type.
const REQUEST_IDS: u8 = 8;
/// Steps one scenario holds, at most.
pub const STEPS_MAX: usize = 2_000;

/// One thing that happens to a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Time passes; nothing runs until the next step.
    Clock {
        elapsed_ms: u64,
    },
    /// The runner wakes: `advance` at the current time.
    Advance,
    Bet {
        player: usize,
        req: u8,
        amount_minor: i64,
        auto_cashout_hundredths: Option<u64>,
        slot: u8,
    },
    Cashout {
        player: usize,
        req: u8,
        slot: u8,
    },
    Cancel {
        player: usize,
        req: u8,
        slot: u8,
    },
    /// The next ledger batch fails: its stakes are refused, its credits retried later.
    LedgerFault,
    /// The room shuts down: open stakes are refunded.
    Abort,
}

/// A room's settings and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Picks the room's salt, hence its crash points.
    pub salt: u8,
    pub round_profit_max_minor: i64,
    pub steps: Vec<Step>,
}

/// Reads a scenario's numbers from fuzzer bytes; `None` once they run out.
struct Input<'a> {
    rest: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(first)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
}

impl Scenario {
    /// Any bytes make a scenario: the salt, the max profit, then steps, each an opcode
    /// byte and its operands, until the bytes (or `STEPS_MAX`) run out.
    pub fn decode(bytes: &[u8]) -> Scenario {
        let mut input = Input { rest: bytes };
        let salt = input.byte().unwrap_or(0);
        let round_profit_max_minor = 100 * (1 + i64::from(input.byte().unwrap_or(0)));
        let mut steps = Vec::new();
        while steps.len() < STEPS_MAX {
            match Step::decode(&mut input) {
                Some(step) => steps.push(step),
                None => break,
            }
        }
        Scenario {
            salt,
            round_profit_max_minor,
            steps,
        }
    }
}

impl Step {
    fn decode(input: &mut Input) -> Option<Step> {
        let step = match input.byte()? {
            // Mostly short: b² ms, up to 65 s.
            0..=63 => Step::Clock {
                elapsed_ms: u64::from(input.byte()?).pow(2),
            },
            64..=111 => Step::Advance,
            112..=175 => Step::Bet {
                player: usize::from(input.byte()?) % GRANTS_MINOR.len(),
                req: input.byte()? % REQUEST_IDS,
                // -100..12_000: below the minimum, in range, above the maximum.
                amount_minor: i64::from(input.u16()? % 12_100) - 100,
                // None, or 0.99x..=11.15x: below the lowest target, and in range.
                auto_cashout_hundredths: match input.byte()? {
                    0 => None,
                    unit => Some(95 + 4 * u64::from(unit)),
                },
                // 2 is not a slot.
                slot: input.byte()? % 3,
            },
            176..=207 => Step::Cashout {
                player: usize::from(input.byte()?) % GRANTS_MINOR.len(),
                req: input.byte()? % REQUEST_IDS,
                slot: input.byte()? % 3,
            },
            208..=223 => Step::Cancel {
                player: usize::from(input.byte()?) % GRANTS_MINOR.len(),
                req: input.byte()? % REQUEST_IDS,
                slot: input.byte()? % 3,
            },
            224..=254 => Step::LedgerFault,
            // Rare: nothing happens after it.
            255 => Step::Abort,
        };
        Some(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_bytes_decode_and_the_operands_cover_refusals() {
        assert_eq!(Scenario::decode(&[]).steps, vec![]);
        // A bet: player 1, req 9 (→ 1), amount 0x0005 - 100, no auto, slot 5 (→ 2); then a
        // ledger fault and 3² ms.
        let scenario = Scenario::decode(&[3, 4, 112, 1, 9, 5, 0, 0, 5, 224, 0, 3]);
        assert_eq!(scenario.salt, 3);
        assert_eq!(scenario.round_profit_max_minor, 500);
        assert_eq!(
            scenario.steps,
            vec![
                Step::Bet {
                    player: 1,
                    req: 1,
                    amount_minor: -95,
                    auto_cashout_hundredths: None,
                    slot: 2
                },
                Step::LedgerFault,
                Step::Clock { elapsed_ms: 9 },
            ]
        );
    }
}
