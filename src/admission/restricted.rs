//! The players this gateway process holds under an operator's restriction, one set per
//! [`Restriction`]: the banned (whose tokens it refuses) and the muted (whose chat it
//! refuses). In memory, so neither a handshake nor a chat message reads the database.
//! Each gateway loads them from the ledger at start (`Ledger::restricted_players`, after
//! subscribing to its replies, so no change falls between) and keeps them current from
//! the `PlayerControl`s every gateway receives on the bus.

use dashmap::DashSet;

use crate::ledger::{RESTRICTED_PLAYERS_MAX, Restriction};

/// The players under one restriction, at most [`RESTRICTED_PLAYERS_MAX`].
pub struct RestrictedPlayers {
    restriction: Restriction,
    players: DashSet<String>,
}

/// One more player past [`RESTRICTED_PLAYERS_MAX`]: refused, so no gateway drops one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "at most {RESTRICTED_PLAYERS_MAX} players can be {}: lift some first",
    restriction.state()
)]
pub struct RestrictedFull {
    pub restriction: Restriction,
}

impl RestrictedPlayers {
    pub fn new(restriction: Restriction) -> RestrictedPlayers {
        RestrictedPlayers {
            restriction,
            players: DashSet::new(),
        }
    }

    pub fn restriction(&self) -> Restriction {
        self.restriction
    }

    /// Whether `player` is under the restriction.
    pub fn contains(&self, player: &str) -> bool {
        self.players.contains(player)
    }

    /// Puts `player` under the restriction here; a player under it already is no error.
    pub fn insert(&self, player: &str) -> Result<(), RestrictedFull> {
        if self.players.contains(player) {
            return Ok(());
        }
        self.room_for_one_more()?;
        self.players.insert(player.to_owned());
        Ok(())
    }

    /// Whether one more player fits.
    pub fn room_for_one_more(&self) -> Result<(), RestrictedFull> {
        if self.players.len() >= RESTRICTED_PLAYERS_MAX {
            return Err(RestrictedFull {
                restriction: self.restriction,
            });
        }
        Ok(())
    }

    /// Lifts the restriction of `player` here.
    pub fn remove(&self, player: &str) {
        self.players.remove(player);
    }

    /// Replaces the set with `players` (the ledger's, at start).
    pub fn load(&self, players: Vec<String>) {
        self.players.clear();
        for player in players.into_iter().take(RESTRICTED_PLAYERS_MAX) {
            self.players.insert(player);
        }
    }

    pub fn len(&self) -> usize {
        self.players.len()
    }

    pub fn is_empty(&self) -> bool {
        self.players.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_player_is_held_until_lifted_and_loading_replaces_the_set() {
        for restriction in [Restriction::Ban, Restriction::Mute] {
            let players = RestrictedPlayers::new(restriction);
            players.insert("a").unwrap();
            players.insert("a").unwrap();
            assert!(players.contains("a") && !players.contains("b"));
            assert_eq!(players.len(), 1);
            players.remove("a");
            assert!(players.is_empty());
            players.insert("c").unwrap();
            players.load(vec!["x".into(), "y".into()]);
            assert!(!players.contains("c") && players.contains("x") && players.contains("y"));
        }
    }

    #[test]
    fn a_full_set_refuses_one_more_and_names_its_restriction() {
        let muted = RestrictedPlayers::new(Restriction::Mute);
        muted.load(
            (0..RESTRICTED_PLAYERS_MAX + 5)
                .map(|n| n.to_string())
                .collect(),
        );
        assert_eq!(muted.len(), RESTRICTED_PLAYERS_MAX);
        let full = muted.insert("one-more").unwrap_err();
        assert_eq!(full.restriction, Restriction::Mute);
        assert!(full.to_string().contains("muted"), "{full}");
        muted.insert("0").unwrap();
        muted.remove("0");
        muted.insert("one-more").unwrap();
    }
}
