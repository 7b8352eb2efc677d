//! Conformance cases of players' display names.

use crate::display_name::DisplayName;
use crate::ledger::{Ledger, NameOutcome};

fn name(text: &str) -> DisplayName {
    DisplayName::parse(text).unwrap()
}

pub async fn display_names_are_unique_by_key_and_replaceable(ledger: &dyn Ledger) {
    assert_eq!(ledger.display_name("p1").await.unwrap(), None);
    let set = |player: &'static str, text: &'static str, at_ms| async move {
        ledger
            .set_display_name(player, &name(text), at_ms)
            .await
            .unwrap()
    };
    assert_eq!(set("p1", "Ace", 1).await, NameOutcome::Set);
    assert_eq!(
        ledger.display_name("p1").await.unwrap().as_deref(),
        Some("Ace")
    );
    // Another spelling of the same key is someone else's name.
    assert_eq!(set("p2", "a.c.e", 2).await, NameOutcome::Taken);
    assert_eq!(set("p2", "ACE", 2).await, NameOutcome::Taken);
    assert_eq!(ledger.display_name("p2").await.unwrap(), None);
    // The holder may respell its own name, and give it up for another.
    assert_eq!(set("p1", "ACE", 3).await, NameOutcome::Set);
    assert_eq!(
        ledger.display_name("p1").await.unwrap().as_deref(),
        Some("ACE")
    );
    assert_eq!(set("p1", "Bolt", 4).await, NameOutcome::Set);
    assert_eq!(set("p2", "Ace", 5).await, NameOutcome::Set);
    assert_eq!(
        ledger.display_name("p2").await.unwrap().as_deref(),
        Some("Ace")
    );
    assert_eq!(set("p2", "bolt", 6).await, NameOutcome::Taken);
    assert_eq!(
        ledger.display_name("p2").await.unwrap().as_deref(),
        Some("Ace")
    );
}
