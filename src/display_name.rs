//! Display names: what other players see of a player in the live bets and the chat.
//!
//! Owns the rules of a name a player picks ([`DisplayName::parse`]: length, characters,
//! no impersonation of the house, the staff or a default name), the key two names clash
//! on ([`DisplayName::key`]: case, separators and look-alike digits folded, so "Ace",
//! "ace" and "A.c.e" are one name), and the default name of a player who picked none
//! ([`default_name`]). Names are ASCII: letters of other scripts that look like Latin
//! ones ("һouse" with a Cyrillic һ) would defeat the impersonation check.

use std::fmt;

/// Fewest characters of a picked name.
pub const DISPLAY_NAME_CHARS_MIN: usize = 3;

/// Most characters of a picked name (ASCII, so also its bytes).
pub const DISPLAY_NAME_CHARS_MAX: usize = 16;

/// Words a name may not contain once folded (see [`DisplayName::key`]): players must be
/// able to trust that a message or a bet under such a name is not the house's or the
/// staff's.
const RESERVED_WORDS: &[&str] = &[
    "house",
    "system",
    "admin",
    "moderator",
    "operator",
    "support",
    "aloft",
    "official",
    "staff",
];

/// What every default name starts with, and so no picked name may.
const DEFAULT_NAME_PREFIX: &str = "guest-";

/// Characters of the player id a default name ends with.
const DEFAULT_NAME_ID_CHARS: usize = 6;

/// A valid picked display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

/// Why a name is not accepted, in words a player understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name has 3 to 16 characters")]
    Length,
    #[error(
        "a name uses letters, digits, spaces and . _ - only, and starts and ends with a letter or digit"
    )]
    Characters,
    #[error("that name could be mistaken for the house, the staff or a guest")]
    Reserved,
}

impl DisplayName {
    /// Checks a name as the player typed it (surrounding spaces ignored).
    pub fn parse(text: &str) -> Result<DisplayName, NameError> {
        let name = text.trim();
        if !(DISPLAY_NAME_CHARS_MIN..=DISPLAY_NAME_CHARS_MAX).contains(&name.chars().count()) {
            return Err(NameError::Length);
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-');
        let ends_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !name.chars().all(allowed) || !ends_ok || name.contains("  ") {
            return Err(NameError::Characters);
        }
        let key = fold(name);
        let reserved = RESERVED_WORDS.iter().any(|word| key.contains(&fold(word)))
            || key.starts_with(&fold(DEFAULT_NAME_PREFIX));
        if reserved {
            return Err(NameError::Reserved);
        }
        Ok(DisplayName(name.to_owned()))
    }

    /// The name as shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What two names clash on: at most one player holds a key (the stores' unique index).
    pub fn key(&self) -> String {
        fold(&self.0)
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The name of a player who picked none: `guest-` and the end of its id, so two
/// default names rarely look alike and none can be picked.
pub fn default_name(player: &str) -> String {
    let tail_start = player
        .char_indices()
        .rev()
        .nth(DEFAULT_NAME_ID_CHARS - 1)
        .map_or(0, |(index, _)| index);
    format!("{DEFAULT_NAME_PREFIX}{}", &player[tail_start..])
}

/// Lower case, separators dropped, digits that pass for letters read as those letters.
fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| match c.to_ascii_lowercase() {
            '0' => 'o',
            '1' | 'l' => 'i',
            '3' => 'e',
            '4' => 'a',
            '5' => 's',
            '7' => 't',
            '8' => 'b',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_taken_as_typed_without_surrounding_spaces() {
        for name in [
            "Ace",
            "lucky_7",
            "Jean-Luc",
            "big.fish",
            "Ace of Spades",
            "abc",
        ] {
            assert_eq!(DisplayName::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(DisplayName::parse("  Ace  ").unwrap().as_str(), "Ace");
    }

    #[test]
    fn length_and_characters_are_bounded() {
        assert_eq!(DisplayName::parse("ab"), Err(NameError::Length));
        assert_eq!(DisplayName::parse(&"a".repeat(17)), Err(NameError::Length));
        assert!(DisplayName::parse(&"a".repeat(16)).is_ok());
        for bad in [
            "<script>", "a\u{0}b", "émile", "a  b", "_ace", "ace-", "ab😀c", "a\tb",
        ] {
            assert!(DisplayName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_house_the_staff_and_default_names_cannot_be_impersonated() {
        for bad in [
            "house",
            "HOUSE",
            "The House",
            "h0use",
            "H.o.u.s.e",
            "5ystem",
            "admin",
            "AdM1n",
            "mod erator",
            "aloft_team",
            "support-1",
            "guest-abc123",
            "Guest abc",
            "0fficial",
        ] {
            assert_eq!(DisplayName::parse(bad), Err(NameError::Reserved), "{bad:?}");
        }
    }

    #[test]
    fn names_that_fold_alike_share_a_key() {
        let key = |name| DisplayName::parse(name).unwrap().key();
        assert_eq!(key("Ace"), key("ace"));
        assert_eq!(key("A.c.e"), key("a c e"));
        assert_eq!(key("B1ll"), key("bill"));
        assert_ne!(key("Ace"), key("Aces"));
    }

    #[test]
    fn a_default_name_ends_with_the_id_and_is_never_a_valid_pick() {
        assert_eq!(default_name("g-0011223344556677"), "guest-556677");
        assert_eq!(default_name("bob"), "guest-bob");
        assert_eq!(
            DisplayName::parse(&default_name("g-0011223344556677")),
            Err(NameError::Reserved)
        );
    }
}
