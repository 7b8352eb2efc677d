//! The players whose tokens this gateway process refuses: an in-memory set, so a
//! handshake never reads the database. Each gateway loads it from the ledger at start
//! (`Ledger::banned_players`, after subscribing to its replies, so no ban falls between)
//! and keeps it current from the `PlayerControl`s every gateway receives on the bus.

use dashmap::DashSet;

use crate::ledger::BANNED_PLAYERS_MAX;

/// The banned players, at most [`BANNED_PLAYERS_MAX`].
#[derive(Default)]
pub struct Bans {
    players: DashSet<String>,
}

/// A ban past [`BANNED_PLAYERS_MAX`]: refused, so no gateway drops one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at most {BANNED_PLAYERS_MAX} players can be banned: lift some bans first")]
pub struct BansFull;

impl Bans {
    /// Whether `player`'s tokens are refused.
    pub fn contains(&self, player: &str) -> bool {
        self.players.contains(player)
    }

    /// Bans `player` here; a ban already held is no error.
    pub fn insert(&self, player: &str) -> Result<(), BansFull> {
        if self.players.contains(player) {
            return Ok(());
        }
        self.room_for_one_more()?;
        self.players.insert(player.to_owned());
        Ok(())
    }

    /// Whether one more ban fits.
    pub fn room_for_one_more(&self) -> Result<(), BansFull> {
        if self.players.len() >= BANNED_PLAYERS_MAX {
            return Err(BansFull);
        }
        Ok(())
    }

    /// Lifts `player`'s ban here.
    pub fn remove(&self, player: &str) {
        self.players.remove(player);
    }

    /// Replaces the set with `players` (the ledger's, at start).
    pub fn load(&self, players: Vec<String>) {
        self.players.clear();
        for player in players.into_iter().take(BANNED_PLAYERS_MAX) {
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
    fn a_ban_is_held_until_lifted_and_loading_replaces_the_set() {
        let bans = Bans::default();
        bans.insert("a").unwrap();
        bans.insert("a").unwrap();
        assert!(bans.contains("a") && !bans.contains("b"));
        assert_eq!(bans.len(), 1);
        bans.remove("a");
        assert!(bans.is_empty());
        bans.insert("c").unwrap();
        bans.load(vec!["x".into(), "y".into()]);
        assert!(!bans.contains("c") && bans.contains("x") && bans.contains("y"));
    }
}
