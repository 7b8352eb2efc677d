//! The conformance cases of the operators' records: room controls (fenced, read back),
//! the audit trail (newest first, bounded, append-only), a player's bets with their
//! settlements, and the restricted players (bans and mutes: stored, listed, lifted, audited).

use serde_json::json;

use super::super::{
    AUDIT_ENTRIES_MAX, Account, AuditAction, AuditEntry, Ledger, PLAYER_BETS_MAX, Restriction,
    RestrictionChange, RoomControls, RoomControlsChange, RoomLimits, TransferKind,
};
use super::fixtures::{apply, bet, grant, payout, with_multiplier};
use super::{assert_fenced, fence, player, transfer};

fn controls(paused: bool, bet_amount_max_minor: i64) -> RoomControls {
    RoomControls {
        paused,
        limits: RoomLimits {
            bet_amount_min_minor: 10,
            bet_amount_max_minor,
            round_profit_max_minor: 100_000,
        },
    }
}

fn change(room: &str, before: RoomControls, after: RoomControls, at_ms: u64) -> RoomControlsChange {
    RoomControlsChange {
        room: room.to_owned(),
        operator: "ops".to_owned(),
        action: AuditAction::SetRoomLimits,
        at_ms,
        before,
        after,
    }
}

/// A room's controls are `None` until written, then read back as last written; a write
/// with a stale fence changes neither the controls nor the audit, and rooms are apart.
pub async fn room_controls_are_written_fenced_and_read_back(ledger: &dyn Ledger) {
    assert_eq!(ledger.room_controls("main").await.unwrap(), None);
    let (open, paused) = (controls(false, 500), controls(true, 500));
    let first = change("main", open, paused, 1);
    ledger.write_room_controls(&first, None).await.unwrap();
    assert_eq!(ledger.room_controls("main").await.unwrap(), Some(paused));
    let raised = change("main", paused, controls(true, 900), 2);
    ledger
        .write_room_controls(&raised, Some(&fence("main", 3)))
        .await
        .unwrap();
    let stale = change("main", controls(true, 900), open, 3);
    let refused = ledger
        .write_room_controls(&stale, Some(&fence("main", 2)))
        .await;
    assert_fenced(refused, 2, 3);
    assert_eq!(
        ledger.room_controls("main").await.unwrap(),
        Some(controls(true, 900))
    );
    assert_eq!(ledger.room_controls("other").await.unwrap(), None);
    let audit = ledger.audit_entries(10).await.unwrap();
    assert_eq!(audit, vec![raised.audit_entry(), first.audit_entry()]);
}

/// The audit reads back newest first, at most the limit asked and never more than
/// `AUDIT_ENTRIES_MAX`, with every field as appended.
pub async fn audit_entries_read_newest_first_and_bounded(ledger: &dyn Ledger) {
    assert!(ledger.audit_entries(10).await.unwrap().is_empty());
    let entry = |n: u64| AuditEntry {
        at_ms: 1_700_000_000_000 + n,
        operator: format!("op{}", n % 3),
        action: AuditAction::KickPlayer,
        target: format!("player{n}"),
        before: json!({ "sockets": n }),
        after: json!({ "sockets": 0 }),
    };
    let appended = AUDIT_ENTRIES_MAX as u64 + 5;
    for n in 0..appended {
        ledger.append_audit(&entry(n)).await.unwrap();
    }
    let newest = ledger.audit_entries(3).await.unwrap();
    let expected: Vec<AuditEntry> = (appended - 3..appended).rev().map(entry).collect();
    assert_eq!(newest, expected);
    let all = ledger.audit_entries(usize::MAX).await.unwrap();
    assert_eq!(all.len(), AUDIT_ENTRIES_MAX);
    assert_eq!(all.last(), Some(&entry(5)));
}

/// A player's bets come newest first, each with its payout or refund (none while open or
/// lost), at most `PLAYER_BETS_MAX`, and never another player's.
pub async fn player_bets_come_with_their_settlements(ledger: &dyn Ledger) {
    apply(
        ledger,
        vec![grant("grant:a", "a", 100_000), grant("grant:b", "b", 1_000)],
    )
    .await;
    let stake = |round: u64, player: &str| {
        with_multiplier(
            bet(&format!("bet:main:{round}:{player}:0"), player, 100),
            Some(150),
        )
    };
    let won = with_multiplier(payout("payout:main:1:a:0", "a", 250), Some(250));
    let mut refund = transfer("refund:main:2:a:0", Account::House, player("a"), 100);
    refund.kind = TransferKind::Refund;
    apply(ledger, vec![stake(1, "a"), stake(1, "b"), won.clone()]).await;
    apply(ledger, vec![stake(2, "a"), refund.clone(), stake(3, "a")]).await;
    let bets = ledger.player_bets("a", 10).await.unwrap();
    let ids: Vec<&str> = bets
        .iter()
        .map(|bet| bet.stake.transfer.id.as_str())
        .collect();
    assert_eq!(ids, ["bet:main:3:a:0", "bet:main:2:a:0", "bet:main:1:a:0"]);
    assert_eq!(bets[0].settlement, None);
    let settled = |index: usize| bets[index].settlement.as_ref().map(|(t, _)| &t.transfer);
    assert_eq!(settled(1), Some(&refund));
    assert_eq!(settled(2), Some(&won));
    assert_eq!(bets[2].stake.transfer, stake(1, "a"));
    let now_ms = crate::clock::unix_now_ms();
    for bet in &bets {
        assert!(bet.staked_at_ms <= now_ms && bet.staked_at_ms + 60_000 > now_ms);
    }
    let stakes = (4..PLAYER_BETS_MAX as u64 + 10).map(|round| stake(round, "a"));
    apply(ledger, stakes.collect()).await;
    let latest = ledger.player_bets("a", usize::MAX).await.unwrap();
    assert_eq!(latest.len(), PLAYER_BETS_MAX);
    let newest_round = PLAYER_BETS_MAX as u64 + 9;
    assert_eq!(
        latest[0].stake.transfer.id,
        format!("bet:main:{newest_round}:a:0")
    );
    assert_eq!(ledger.player_bets("b", 10).await.unwrap().len(), 1);
    assert!(ledger.player_bets("nobody", 10).await.unwrap().is_empty());
}

/// A ban is stored once (a second ban keeps the first), listed oldest first and bounded,
/// lifted by an unban; each change is audited with the state before it, even one that
/// changed nothing.
pub async fn bans_are_stored_listed_lifted_and_audited(ledger: &dyn Ledger) {
    restrictions_are_stored_listed_lifted_and_audited(ledger, Restriction::Ban).await;
}

/// Mutes behave as bans, in their own table: a mute bans nobody.
pub async fn mutes_are_stored_listed_lifted_and_audited(ledger: &dyn Ledger) {
    restrictions_are_stored_listed_lifted_and_audited(ledger, Restriction::Mute).await;
    let banned = ledger.restricted_players(Restriction::Ban, 10).await;
    assert!(banned.unwrap().is_empty());
}

async fn restrictions_are_stored_listed_lifted_and_audited(
    ledger: &dyn Ledger,
    restriction: Restriction,
) {
    let listed = |limit| ledger.restricted_players(restriction, limit);
    assert!(listed(10).await.unwrap().is_empty());
    let write = |player: &str, restricted: bool, at_ms: u64| {
        let change = RestrictionChange {
            restriction,
            player: player.to_owned(),
            operator: "ops".to_owned(),
            at_ms,
            restricted,
        };
        async move { ledger.write_restriction(&change).await.unwrap() }
    };
    assert!(!write("b", true, 1).await);
    assert!(!write("a", true, 2).await);
    assert!(write("b", true, 3).await);
    assert_eq!(listed(10).await.unwrap(), ["b", "a"]);
    assert_eq!(listed(1).await.unwrap(), ["b"]);
    assert!(write("b", false, 4).await);
    assert!(!write("b", false, 5).await);
    assert_eq!(listed(10).await.unwrap(), ["a"]);
    let audit = ledger.audit_entries(10).await.unwrap();
    let state = restriction.state();
    let seen: Vec<(AuditAction, &str, bool, bool)> = audit
        .iter()
        .map(|entry| {
            let restricted = |value: &serde_json::Value| value[state].as_bool().unwrap();
            (
                entry.action,
                entry.target.as_str(),
                restricted(&entry.before),
                restricted(&entry.after),
            )
        })
        .collect();
    let (imposed, lifted) = (
        restriction.audit_action(true),
        restriction.audit_action(false),
    );
    assert_eq!(
        seen,
        [
            (lifted, "b", false, false),
            (lifted, "b", true, false),
            (imposed, "b", true, true),
            (imposed, "a", false, true),
            (imposed, "b", false, true),
        ]
    );
    assert!(audit.iter().all(|entry| entry.operator == "ops"));
    assert_eq!(audit[0].at_ms, 5);
}
