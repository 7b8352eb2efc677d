//! Players' display names in the store, for both stores: at most one player holds a
//! name's key (`crate::display_name::DisplayName::key`, the stores' unique index), so two
//! players never show as the same name. The SQL both stores run.

/// What giving a player a name did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameOutcome {
    /// The player holds the name now (a player renaming itself to a spelling of its own
    /// name's key included).
    Set,
    /// Another player holds a name with the same key; nothing changed.
    Taken,
}

/// Gives a player a name, replacing its own: player, name, key, time (ms). A key held by
/// another player violates the unique index, which each store reads as
/// [`NameOutcome::Taken`].
pub(crate) const UPSERT_DISPLAY_NAME: &str = "INSERT INTO display_names \
    (player, name, name_key, named_at_ms) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (player) DO UPDATE SET name = excluded.name, \
    name_key = excluded.name_key, named_at_ms = excluded.named_at_ms";

/// A player's name, if it picked one.
pub(crate) const SELECT_DISPLAY_NAME: &str = "SELECT name FROM display_names WHERE player = $1";
