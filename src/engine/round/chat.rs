//! Room chat in the engine: a message is posted to everyone as a [`RoundEvent::ChatPosted`]
//! (numbered with the room's events, so it reaches every gateway, is recovered after a
//! reconnect and keeps its place among the round's events), unless its player is over
//! the chat rate limit: then only that player hears of it.
//!
//! The limit is the room's, per player, whichever gateway or socket sends: a generic cell
//! rate (GCRA) with a burst of `engine.chat_burst_messages`, then one message per
//! `engine.chat_message_interval_ms`. One number per player (when its next message would
//! be on time), and at most [`CHAT_PLAYERS_TRACKED_MAX`] players: past it, the players
//! whose limit has fully recovered are forgotten (they are as if new), so the bound never
//! loosens anyone's limit.

use std::collections::HashMap;

use crate::bus::ReplyTo;

use super::super::answer::{Answer, Refusal, RefusalCode, Reply};
use super::super::event::RoundEvent;
use super::RoomCore;

/// Players whose chat rate the engine remembers, at most.
pub const CHAT_PLAYERS_TRACKED_MAX: usize = 100_000;

/// Each player's chat rate: the time (engine ms) its next message is due under the
/// steady rate; a message earlier than that by more than the burst allows is refused.
#[derive(Debug, Default)]
pub(super) struct ChatRates {
    due_at_ms: HashMap<String, u64>,
}

/// Why a message was not posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RateVerdict {
    Posted,
    /// Over the limit: the next message is accepted from `retry_in_ms` on.
    Limited {
        retry_in_ms: u64,
    },
}

impl ChatRates {
    fn admit(&mut self, player: &str, now_ms: u64, burst: u32, interval_ms: u64) -> RateVerdict {
        let tolerance_ms = u64::from(burst - 1) * interval_ms;
        let due_at_ms = self
            .due_at_ms
            .get(player)
            .copied()
            .unwrap_or(now_ms)
            .max(now_ms);
        if due_at_ms - now_ms > tolerance_ms {
            let retry_in_ms = due_at_ms - now_ms - tolerance_ms;
            return RateVerdict::Limited { retry_in_ms };
        }
        if !self.due_at_ms.contains_key(player) && self.due_at_ms.len() >= CHAT_PLAYERS_TRACKED_MAX
        {
            // A player due now or earlier has its whole burst back: forgetting it changes
            // nothing it may do.
            self.due_at_ms.retain(|_, due| *due > now_ms);
            if self.due_at_ms.len() >= CHAT_PLAYERS_TRACKED_MAX {
                return RateVerdict::Limited {
                    retry_in_ms: interval_ms,
                };
            }
        }
        self.due_at_ms
            .insert(player.to_owned(), due_at_ms + interval_ms);
        RateVerdict::Posted
    }
}

impl RoomCore {
    /// Posts `text` (checked by the caller: `crate::chat::checked_text`) from
    /// `from.player` as `name` at `now_ms`, or tells the player it is over its rate.
    pub fn chat(&mut self, now_ms: u64, from: &ReplyTo, name: &str, text: &str) {
        self.observe(now_ms);
        debug_assert_eq!(crate::chat::checked_text(text), Ok(text));
        let engine = &self.settings.engine;
        let (burst, interval_ms) = (engine.chat_burst_messages, engine.chat_message_interval_ms);
        match self
            .chat_rates
            .admit(&from.player, now_ms, burst, interval_ms)
        {
            RateVerdict::Posted => {
                let round = self.round.number;
                self.emit(|seq| RoundEvent::ChatPosted {
                    seq,
                    round,
                    player: from.player.clone(),
                    name: name.to_owned(),
                    text: text.to_owned(),
                    at_ms: now_ms,
                });
            }
            RateVerdict::Limited { retry_in_ms } => {
                let seconds = retry_in_ms.div_ceil(1_000);
                let message = format!("you are sending messages too fast: wait {seconds} s");
                self.effects.replies.push(Reply {
                    to: from.clone(),
                    answer: Answer::ChatRefused {
                        refusal: Refusal::new(RefusalCode::ChatRateLimited, message),
                    },
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn post(core: &mut RoomCore, now_ms: u64, name: &str, text: &str) -> Vec<RoundEvent> {
        core.chat(now_ms, &player(name), name, text);
        let effects = core.take_effects();
        assert!(effects.transfers.is_empty(), "chat moves no money");
        if effects.events.is_empty() {
            let [Reply { to, answer }] = effects.replies.as_slice() else {
                panic!("a refused message is answered: {effects:?}");
            };
            assert_eq!(to, &player(name));
            assert!(matches!(
                answer,
                Answer::ChatRefused { refusal } if refusal.code == RefusalCode::ChatRateLimited
            ));
        }
        effects.events
    }

    #[test]
    fn a_message_is_a_numbered_event_of_the_round() {
        let (mut core, _) = room_where(|_| true, engine());
        core.take_effects();
        let first = post(&mut core, T0_MS + 5, "a", "gl hf");
        let [
            RoundEvent::ChatPosted {
                seq,
                round,
                player,
                name,
                text,
                at_ms,
            },
        ] = first.as_slice()
        else {
            panic!("one chat event: {first:?}");
        };
        assert_eq!((*round, *at_ms), (1, T0_MS + 5));
        assert_eq!(
            (player.as_str(), name.as_str(), text.as_str()),
            ("a", "a", "gl hf")
        );
        let second = post(&mut core, T0_MS + 6, "b", "hi");
        assert_eq!(second[0].seq(), seq + 1, "numbered with the room's events");
    }

    #[test]
    fn a_burst_then_one_message_per_interval_per_player() {
        let (mut core, _) = room_where(|_| true, engine());
        core.take_effects();
        let burst = engine().chat_burst_messages;
        let interval_ms = engine().chat_message_interval_ms;
        let now = T0_MS + 1;
        for _ in 0..burst {
            assert_eq!(post(&mut core, now, "a", "hi").len(), 1);
        }
        assert!(post(&mut core, now, "a", "hi").is_empty(), "over the burst");
        assert_eq!(post(&mut core, now, "b", "hi").len(), 1, "per player");
        assert!(post(&mut core, now + interval_ms - 1, "a", "hi").is_empty());
        assert_eq!(post(&mut core, now + interval_ms, "a", "hi").len(), 1);
        assert!(post(&mut core, now + interval_ms, "a", "hi").is_empty());
        // Quiet for a whole burst's worth: the burst is back.
        let later = now + interval_ms * u64::from(burst + 1);
        for _ in 0..burst {
            assert_eq!(post(&mut core, later, "a", "hi").len(), 1);
        }
        assert!(post(&mut core, later, "a", "hi").is_empty());
    }

    #[test]
    fn the_refusal_says_how_long_to_wait() {
        let mut rates = ChatRates::default();
        assert_eq!(rates.admit("a", 0, 2, 1_000), RateVerdict::Posted);
        assert_eq!(rates.admit("a", 0, 2, 1_000), RateVerdict::Posted);
        assert_eq!(
            rates.admit("a", 0, 2, 1_000),
            RateVerdict::Limited { retry_in_ms: 1_000 }
        );
        assert_eq!(
            rates.admit("a", 400, 2, 1_000),
            RateVerdict::Limited { retry_in_ms: 600 }
        );
        assert_eq!(rates.admit("a", 1_000, 2, 1_000), RateVerdict::Posted);
    }

    #[test]
    fn a_full_table_forgets_only_players_whose_burst_is_back() {
        let mut rates = ChatRates::default();
        for index in 0..CHAT_PLAYERS_TRACKED_MAX {
            let verdict = rates.admit(&format!("p{index}"), (index % 2) as u64 * 10_000, 1, 1_000);
            assert_eq!(verdict, RateVerdict::Posted);
        }
        // At 5,000 ms the even players (due at 1,000) are back to a full burst, the odd
        // ones (due at 11,000) are not: only the even ones are forgotten.
        assert_eq!(rates.admit("new", 5_000, 1, 1_000), RateVerdict::Posted);
        assert_eq!(rates.due_at_ms.len(), CHAT_PLAYERS_TRACKED_MAX / 2 + 1);
        assert!(matches!(
            rates.admit("p1", 5_000, 1, 1_000),
            RateVerdict::Limited { .. }
        ));
    }
}
