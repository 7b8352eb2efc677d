//! The ledger conformance suite: the behaviour every [`Ledger`] implementation must show.
//!
//! Owns one async function per contract case, each taking a fresh, empty ledger, and the
//! [`ledger_conformance_tests!`] macro that stamps them out as `#[tokio::test]`s for an
//! implementation. SQLite runs it from `ledger::sqlite`'s tests; PostgreSQL will run the
//! same cases, so the two cannot drift apart.

//!
//! `fixtures` holds the helpers the cases share; `random` the randomized case against a
//! model of `apply_batch` (and the throughput measurement).

mod admin;
mod fixtures;
mod names;
mod random;

use super::{
    Account, Ledger, LedgerError, RoundRecord, RoundStatus, StoredTransfer, Transfer, TransferKind,
    TransferOutcome,
};
pub use admin::{
    audit_entries_read_newest_first_and_bounded, bans_are_stored_listed_lifted_and_audited,
    mutes_are_stored_listed_lifted_and_audited, player_bets_come_with_their_settlements,
    room_controls_are_written_fenced_and_read_back,
};
use fixtures::{
    apply, assert_strictly_increasing, balance, bet, committed, grant, payout, with_multiplier,
};
pub(crate) use fixtures::{assert_fenced, fence, player, transfer};
pub use names::display_names_are_unique_by_key_and_replaceable;
pub use random::{bets_per_second, random_operations_match_a_model};

/// Stamps out one `#[tokio::test]` per conformance case. `$make` is a closure returning a
/// future of `(Box<dyn Ledger>, guard)`: a fresh, empty ledger, and whatever must live as
/// long as it (a temporary directory, a scratch schema).
macro_rules! ledger_conformance_tests {
    ($make:expr) => {
        $crate::ledger::conformance::ledger_conformance_tests!(@cases $make;
            idempotent_retry_returns_the_first_result,
            insufficient_funds_moves_nothing_and_spares_the_batch,
            reused_id_with_other_contents_conflicts,
            invalid_transfer_rejects_the_whole_batch,
            unknown_accounts_have_zero_balance,
            transfers_with_prefix_are_exact_and_in_commit_order,
            round_journal_records_updates_and_lists,
            settled_rounds_are_the_newest_crashed_ones,
            multiplier_is_stored_and_part_of_the_id,
            a_stale_fence_is_refused_and_changes_nothing,
            fences_are_per_room_and_spare_unfenced_calls,
            unused_guests_expire_and_their_grant_goes_back_to_the_mint,
            acquired_fence_tokens_only_grow_and_fence_off_the_previous,
            concurrent_acquirers_get_distinct_fence_tokens,
            room_controls_are_written_fenced_and_read_back,
            audit_entries_read_newest_first_and_bounded,
            player_bets_come_with_their_settlements,
            bans_are_stored_listed_lifted_and_audited,
            mutes_are_stored_listed_lifted_and_audited,
            display_names_are_unique_by_key_and_replaceable,
            random_operations_match_a_model);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (ledger, _guard) = ($make)().await;
                $crate::ledger::conformance::$case(&*ledger).await;
            }
        )*
    };
}
pub(crate) use ledger_conformance_tests;

/// Re-sending a committed id returns the balances of its first commit and moves nothing,
/// whether the retry comes in a later batch or later in the same batch.
pub async fn idempotent_retry_returns_the_first_result(ledger: &dyn Ledger) {
    let first = apply(
        ledger,
        vec![grant("g:a", "a", 1_000), bet("b:a:1", "a", 300)],
    )
    .await;
    assert_eq!(
        first,
        vec![committed(-1_000, 1_000, false), committed(700, 300, false)]
    );
    let later = apply(ledger, vec![bet("b:a:2", "a", 100), bet("b:a:1", "a", 300)]).await;
    assert_eq!(
        later,
        vec![committed(600, 400, false), committed(700, 300, true)]
    );
    let same_batch = apply(ledger, vec![bet("b:a:3", "a", 50), bet("b:a:3", "a", 50)]).await;
    assert_eq!(
        same_batch,
        vec![committed(550, 450, false), committed(550, 450, true)]
    );
    assert_eq!(balance(ledger, player("a")).await, 550);
    assert_eq!(balance(ledger, Account::House).await, 450);
    assert_eq!(balance(ledger, Account::Mint).await, -1_000);
    let stored = ledger.transfer("b:a:1").await.unwrap().expect("stored");
    assert_eq!(stored.transfer, bet("b:a:1", "a", 300));
    assert_eq!(
        (
            stored.debit_balance_after_minor,
            stored.credit_balance_after_minor
        ),
        (700, 300)
    );
    assert_eq!(ledger.transfers_with_prefix("").await.unwrap().len(), 4);
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
}

/// A guest whose only transfer is an old enough grant is removed: its balance goes back
/// to the mint in the same transaction (the sum of all balances stays 0), its account and
/// grant are gone, and it starts over at 0 if it comes back. A guest that ever bet, or
/// whose grant is newer than the cutoff, stays; the count per call is bounded.
pub async fn unused_guests_expire_and_their_grant_goes_back_to_the_mint(ledger: &dyn Ledger) {
    let grants = (1..=4).map(|n| grant(&format!("grant:u{n}"), &format!("u{n}"), 1_000));
    apply(ledger, grants.collect()).await;
    // u4 bets and wins its stake back: its balance equals its grant, but it played.
    apply(
        ledger,
        vec![
            bet("bet:u4", "u4", 100),
            payout("payout:u4", "u4", 100),
            grant("grant:p", "p", 500),
            bet("bet:p", "p", 200),
        ],
    )
    .await;
    // Nothing is older than the epoch.
    assert_eq!(ledger.expire_unused_guests(0, 100).await.unwrap(), 0);
    let cutoff_ms = crate::clock::unix_now_ms() + 60_000;
    assert_eq!(ledger.expire_unused_guests(cutoff_ms, 2).await.unwrap(), 2);
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
    assert_eq!(
        ledger.expire_unused_guests(cutoff_ms, 100).await.unwrap(),
        1
    );
    assert_eq!(
        ledger.expire_unused_guests(cutoff_ms, 100).await.unwrap(),
        0
    );
    for expired in ["u1", "u2", "u3"] {
        assert_eq!(balance(ledger, player(expired)).await, 0, "{expired}");
        let grant_id = format!("grant:{expired}");
        assert_eq!(ledger.transfer(&grant_id).await.unwrap(), None);
    }
    assert_eq!(balance(ledger, player("u4")).await, 1_000);
    assert_eq!(balance(ledger, player("p")).await, 300);
    assert_eq!(balance(ledger, Account::Mint).await, -1_500);
    assert_eq!(balance(ledger, Account::House).await, 200);
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
    // An expired guest that comes back is an account at 0: it cannot bet.
    let outcomes = apply(ledger, vec![bet("bet:u1", "u1", 10)]).await;
    assert_eq!(
        outcomes,
        vec![TransferOutcome::InsufficientFunds { available_minor: 0 }]
    );
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
}

/// An overdraft fails alone: nothing moves for it, it is not recorded (so a later retry
/// with enough funds commits), and the rest of its batch still applies.
pub async fn insufficient_funds_moves_nothing_and_spares_the_batch(ledger: &dyn Ledger) {
    let outcomes = apply(
        ledger,
        vec![
            grant("g:a", "a", 100),
            bet("b:a:1", "a", 60),
            bet("b:a:2", "a", 60),
            bet("b:nobody", "nobody", 1),
            grant("g:b", "b", 10),
        ],
    )
    .await;
    assert_eq!(
        outcomes,
        vec![
            committed(-100, 100, false),
            committed(40, 60, false),
            TransferOutcome::InsufficientFunds {
                available_minor: 40
            },
            TransferOutcome::InsufficientFunds { available_minor: 0 },
            committed(-110, 10, false),
        ]
    );
    assert_eq!(balance(ledger, player("a")).await, 40);
    assert_eq!(balance(ledger, player("b")).await, 10);
    assert_eq!(balance(ledger, Account::House).await, 60);
    assert_eq!(ledger.transfer("b:a:2").await.unwrap(), None);
    let exact = apply(ledger, vec![bet("b:a:3", "a", 40)]).await;
    assert_eq!(exact, vec![committed(0, 100, false)]);
    let funded = apply(ledger, vec![grant("g:a:2", "a", 60), bet("b:a:2", "a", 60)]).await;
    assert_eq!(
        funded,
        vec![committed(-170, 60, false), committed(0, 160, false)]
    );
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
}

/// An id reused for another movement is refused and moves nothing.
pub async fn reused_id_with_other_contents_conflicts(ledger: &dyn Ledger) {
    apply(ledger, vec![grant("g:a", "a", 500), bet("b:a", "a", 100)]).await;
    let mut other_kind = bet("b:a", "a", 100);
    other_kind.kind = TransferKind::Refund;
    let outcomes = apply(
        ledger,
        vec![
            bet("b:a", "a", 101),
            bet("b:a", "b", 100),
            payout("b:a", "a", 100),
            other_kind,
            bet("b:a", "a", 100),
        ],
    )
    .await;
    let conflict = TransferOutcome::IdConflict;
    assert_eq!(
        outcomes,
        vec![
            conflict.clone(),
            conflict.clone(),
            conflict.clone(),
            conflict,
            committed(400, 100, true),
        ]
    );
    assert_eq!(balance(ledger, player("a")).await, 400);
    assert_eq!(balance(ledger, player("b")).await, 0);
    assert_eq!(balance(ledger, Account::House).await, 100);
}

/// A malformed transfer is a caller bug: the whole batch is refused, even its valid
/// transfers before it.
pub async fn invalid_transfer_rejects_the_whole_batch(ledger: &dyn Ledger) {
    let malformed = [
        grant("g:zero", "a", 0),
        grant("g:negative", "a", -5),
        transfer("self", player("a"), player("a"), 5),
        transfer("house-to-house", Account::House, Account::House, 5),
        grant("", "a", 5),
        with_multiplier(bet("b:below-1x", "a", 5), Some(99)),
    ];
    for bad in malformed {
        let bad_id = bad.id.clone();
        let error = ledger
            .apply_batch(vec![grant("g:a", "a", 100), bad])
            .await
            .expect_err("a malformed transfer fails its batch");
        match error {
            LedgerError::InvalidTransfer { id, .. } => assert_eq!(id, bad_id),
            other => panic!("expected InvalidTransfer, got {other:?}"),
        }
    }
    assert_eq!(ledger.transfer("g:a").await.unwrap(), None);
    assert_eq!(balance(ledger, player("a")).await, 0);
    assert_eq!(balance(ledger, Account::Mint).await, 0);
    assert!(ledger.transfers_with_prefix("").await.unwrap().is_empty());
}

/// Accounts that never moved money read as 0, and so does the empty ledger's total.
pub async fn unknown_accounts_have_zero_balance(ledger: &dyn Ledger) {
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
    for account in [Account::Mint, Account::House, player("nobody"), player("")] {
        assert_eq!(balance(ledger, account).await, 0);
    }
    assert_eq!(ledger.transfer("missing").await.unwrap(), None);
    apply(ledger, vec![grant("g:a", "a", 7)]).await;
    assert_eq!(balance(ledger, player("nobody")).await, 0);
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
}

/// The prefix match is exact (`_` and `%` are plain characters, multi-byte text works) and
/// the result is in commit order, not id order.
pub async fn transfers_with_prefix_are_exact_and_in_commit_order(ledger: &dyn Ledger) {
    let ids = [
        "bet:r_1:z",
        "bet:r%1:a",
        "bet:r_1:a",
        "bet:rx1:a",
        "bet:r_10:a",
        "bet:r_1",
        "bet:r_1:é",
        "bet:r_1;a",
        "bet:r_1:\u{10FFFF}",
        "bet:r_2:a",
    ];
    apply(ledger, vec![grant("g", "p", 1_000)]).await;
    for pair in ids.chunks(3) {
        let batch = pair.iter().map(|id| bet(id, "p", 1)).collect();
        apply(ledger, batch).await;
    }
    let found = ledger.transfers_with_prefix("bet:r_1:").await.unwrap();
    let found_ids: Vec<&str> = found.iter().map(|t| t.transfer.id.as_str()).collect();
    assert_eq!(
        found_ids,
        vec!["bet:r_1:z", "bet:r_1:a", "bet:r_1:é", "bet:r_1:\u{10FFFF}"]
    );
    assert_strictly_increasing(&found);
    let percent = ledger.transfers_with_prefix("bet:r%").await.unwrap();
    assert_eq!(percent.len(), 1);
    assert_eq!(percent[0].transfer.id, "bet:r%1:a");
    let accented = ledger.transfers_with_prefix("bet:r_1:é").await.unwrap();
    assert_eq!(accented.len(), 1);
    let everything = ledger.transfers_with_prefix("").await.unwrap();
    assert_eq!(everything.len(), ids.len() + 1);
    assert_strictly_increasing(&everything);
    assert!(
        ledger
            .transfers_with_prefix("nope")
            .await
            .unwrap()
            .is_empty()
    );
}

/// The settled rounds of a room are its crashed ones, newest first, as many as asked:
/// aborted and unfinished rounds and other rooms' are left out.
pub async fn settled_rounds_are_the_newest_crashed_ones(ledger: &dyn Ledger) {
    assert!(ledger.settled_rounds("main", 10).await.unwrap().is_empty());
    let statuses = [
        RoundStatus::Crashed,
        RoundStatus::Aborted,
        RoundStatus::Crashed,
        RoundStatus::Crashed,
        RoundStatus::Flying,
    ];
    for (number, status) in (1..).zip(statuses) {
        ledger
            .record_round(round("main", number, status))
            .await
            .unwrap();
    }
    ledger
        .record_round(round("other", 9, RoundStatus::Crashed))
        .await
        .unwrap();
    let numbers = |records: Vec<RoundRecord>| records.iter().map(|r| r.round).collect::<Vec<_>>();
    let settled = ledger.settled_rounds("main", 10).await.unwrap();
    assert_eq!(settled[0], round("main", 4, RoundStatus::Crashed));
    assert_eq!(numbers(settled), [4, 3, 1]);
    assert_eq!(
        numbers(ledger.settled_rounds("main", 2).await.unwrap()),
        [4, 3]
    );
    assert_eq!(
        numbers(ledger.settled_rounds("other", 10).await.unwrap()),
        [9]
    );
}

fn round(room: &str, round: u64, status: RoundStatus) -> RoundRecord {
    RoundRecord {
        room: room.to_owned(),
        round,
        hash: format!("{round:064x}"),
        crash_hundredths: 100 + round * 37,
        started_at_ms: if status == RoundStatus::Betting {
            0
        } else {
            1_700_000_000_000 + round
        },
        ended_at_ms: matches!(status, RoundStatus::Crashed | RoundStatus::Aborted)
            .then_some(1_700_000_009_000 + round),
        status,
        bets_total_minor: 1_000 * i64::try_from(round).unwrap(),
        payouts_total_minor: 10 * i64::try_from(round).unwrap(),
    }
}

/// Rounds round-trip exactly, upsert by (room, round), list newest first, and unfinished
/// ones (betting or flying) come back oldest first, per room.
pub async fn round_journal_records_updates_and_lists(ledger: &dyn Ledger) {
    assert!(ledger.recent_rounds("main", 10).await.unwrap().is_empty());
    let records = [
        round("main", 1, RoundStatus::Crashed),
        round("main", 3, RoundStatus::Betting),
        round("main", 2, RoundStatus::Flying),
        round("other", 9, RoundStatus::Betting),
        round("main", 0, RoundStatus::Aborted),
    ];
    for record in &records {
        ledger.record_round(record.clone()).await.unwrap();
    }
    let recent = ledger.recent_rounds("main", 2).await.unwrap();
    assert_eq!(recent, vec![records[1].clone(), records[2].clone()]);
    let all: Vec<u64> = ledger
        .recent_rounds("main", 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.round)
        .collect();
    assert_eq!(all, vec![3, 2, 1, 0]);
    let unfinished = ledger.unfinished_rounds("main").await.unwrap();
    assert_eq!(unfinished, vec![records[2].clone(), records[1].clone()]);

    let mut crashed = round("main", 2, RoundStatus::Crashed);
    crashed.payouts_total_minor = 0;
    ledger.record_round(crashed.clone()).await.unwrap();
    let unfinished = ledger.unfinished_rounds("main").await.unwrap();
    assert_eq!(unfinished, vec![records[1].clone()]);
    assert_eq!(ledger.recent_rounds("main", 2).await.unwrap()[1], crashed);
    assert_eq!(
        ledger.unfinished_rounds("other").await.unwrap(),
        vec![records[3].clone()]
    );
    assert!(ledger.unfinished_rounds("empty").await.unwrap().is_empty());
}

/// A bet's auto-cashout target and a payout's multiplier come back as sent (`None` too),
/// and a replay naming another multiplier is an id conflict, like another amount.
pub async fn multiplier_is_stored_and_part_of_the_id(ledger: &dyn Ledger) {
    let sent = vec![
        grant("g:a", "a", 1_000),
        with_multiplier(bet("b:auto", "a", 100), Some(250)),
        bet("b:manual", "a", 100),
        with_multiplier(payout("w:auto", "a", 250), Some(250)),
        with_multiplier(payout("w:min", "a", 100), Some(100)),
    ];
    apply(ledger, sent.clone()).await;
    for transfer in &sent {
        let stored = ledger
            .transfer(&transfer.id)
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(stored.transfer, *transfer);
    }
    let listed: Vec<Transfer> = ledger
        .transfers_with_prefix("")
        .await
        .unwrap()
        .into_iter()
        .map(|stored| stored.transfer)
        .collect();
    assert_eq!(listed, sent);
    let replays = apply(
        ledger,
        vec![
            with_multiplier(bet("b:auto", "a", 100), Some(250)),
            with_multiplier(bet("b:auto", "a", 100), Some(251)),
            bet("b:auto", "a", 100),
            with_multiplier(bet("b:manual", "a", 100), Some(200)),
            with_multiplier(payout("w:auto", "a", 250), Some(249)),
        ],
    )
    .await;
    assert_eq!(
        replays,
        vec![
            committed(900, 100, true),
            TransferOutcome::IdConflict,
            TransferOutcome::IdConflict,
            TransferOutcome::IdConflict,
            TransferOutcome::IdConflict,
        ]
    );
    assert_eq!(balance(ledger, player("a")).await, 1_150);
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
}

/// Everything a stale writer could have changed.
async fn snapshot(ledger: &dyn Ledger) -> (Vec<StoredTransfer>, Vec<RoundRecord>, [i64; 3]) {
    (
        ledger.transfers_with_prefix("").await.unwrap(),
        ledger.recent_rounds("main", 100).await.unwrap(),
        [
            balance(ledger, player("a")).await,
            balance(ledger, Account::House).await,
            balance(ledger, Account::Mint).await,
        ],
    )
}

/// The first token of a room is accepted, so are an equal and a higher one; after a
/// higher one, the lower token is refused by every fenced call (even with an empty batch)
/// and changes nothing: no balance, transfer or round.
pub async fn a_stale_fence_is_refused_and_changes_nothing(ledger: &dyn Ledger) {
    let old = fence("main", 5);
    let first = ledger
        .apply_batch_fenced(vec![grant("g:a", "a", 1_000)], &old)
        .await
        .unwrap();
    assert_eq!(first, vec![committed(-1_000, 1_000, false)]);
    old.raise(ledger).await.unwrap();
    ledger
        .record_round_fenced(round("main", 1, RoundStatus::Betting), &old)
        .await
        .unwrap();
    let equal = ledger
        .apply_batch_fenced(vec![bet("b:a:1", "a", 100)], &old)
        .await
        .unwrap();
    assert_eq!(equal, vec![committed(900, 100, false)]);

    let new = fence("main", 6);
    ledger
        .record_round_fenced(round("main", 1, RoundStatus::Flying), &new)
        .await
        .unwrap();
    let before = snapshot(ledger).await;
    let stale_batch = vec![bet("b:a:2", "a", 100), payout("w:a:1", "a", 500)];
    assert_fenced(ledger.apply_batch_fenced(stale_batch, &old).await, 5, 6);
    assert_fenced(ledger.apply_batch_fenced(Vec::new(), &old).await, 5, 6);
    let crashed = round("main", 1, RoundStatus::Crashed);
    assert_fenced(ledger.record_round_fenced(crashed, &old).await, 5, 6);
    assert_fenced(
        ledger
            .record_round_fenced(round("main", 2, RoundStatus::Betting), &old)
            .await,
        5,
        6,
    );
    assert_fenced(old.raise(ledger).await, 5, 6);
    assert_eq!(snapshot(ledger).await, before);

    fence("main", 9).raise(ledger).await.unwrap();
    assert_fenced(new.raise(ledger).await, 6, 9);
    let newest = ledger
        .apply_batch_fenced(vec![bet("b:a:2", "a", 100)], &fence("main", 9))
        .await
        .unwrap();
    assert_eq!(newest, vec![committed(800, 200, false)]);
    match fence("main", u64::MAX).raise(ledger).await {
        Err(LedgerError::OutOfRange { value, .. }) => assert_eq!(value, u64::MAX),
        other => panic!("expected OutOfRange, got {other:?}"),
    }
    assert_fenced(fence("main", 8).raise(ledger).await, 8, 9);
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
}

/// One room's token fences only that room, and the unfenced calls (guest grants, embedded
/// mode) neither check nor move any fence.
pub async fn fences_are_per_room_and_spare_unfenced_calls(ledger: &dyn Ledger) {
    fence("main", 10).raise(ledger).await.unwrap();
    fence("other", 0).raise(ledger).await.unwrap();
    let other = ledger
        .apply_batch_fenced(vec![grant("g:b", "b", 50)], &fence("other", 1))
        .await
        .unwrap();
    assert_eq!(other, vec![committed(-50, 50, false)]);
    ledger
        .record_round_fenced(round("other", 1, RoundStatus::Betting), &fence("other", 1))
        .await
        .unwrap();
    let unfenced = apply(ledger, vec![grant("g:a", "a", 100)]).await;
    assert_eq!(unfenced, vec![committed(-150, 100, false)]);
    ledger
        .record_round(round("main", 1, RoundStatus::Crashed))
        .await
        .unwrap();
    assert_eq!(ledger.recent_rounds("main", 1).await.unwrap().len(), 1);
    assert_fenced(fence("main", 9).raise(ledger).await, 9, 10);
    fence("main", 10).raise(ledger).await.unwrap();
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
}

/// Each `acquire_fence` returns a token above every token the room's fence ever held
/// (acquired, raised or written with), and raises the fence to it: a write with any lower
/// token is refused and changes nothing. Rooms count apart.
pub async fn acquired_fence_tokens_only_grow_and_fence_off_the_previous(ledger: &dyn Ledger) {
    let first = ledger.acquire_fence("main").await.unwrap();
    assert!(first >= 1, "a token is never 0: {first}");
    let second = ledger.acquire_fence("main").await.unwrap();
    assert!(second > first, "token {second} after {first}");
    ledger
        .apply_batch_fenced(vec![grant("g:a", "a", 1_000)], &fence("main", second))
        .await
        .unwrap();
    let before = snapshot(ledger).await;
    let deposed = vec![bet("b:a:1", "a", 100)];
    assert_fenced(
        ledger
            .apply_batch_fenced(deposed, &fence("main", first))
            .await,
        first,
        second,
    );
    assert_eq!(snapshot(ledger).await, before);

    // A token written or raised by other means is never handed out again.
    fence("main", second + 10).raise(ledger).await.unwrap();
    let third = ledger.acquire_fence("main").await.unwrap();
    assert_eq!(third, second + 11);
    let raised = fence("main", second + 10);
    let stale = ledger.record_round_fenced(round("main", 1, RoundStatus::Betting), &raised);
    assert_fenced(stale.await, second + 10, third);
    assert_eq!(ledger.acquire_fence("other").await.unwrap(), first);
    assert_eq!(ledger.acquire_fence("main").await.unwrap(), third + 1);
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
}

/// Acquirers of one room racing each other (engines winning leases in turn faster than
/// the ledger answers) each get a token of their own.
pub async fn concurrent_acquirers_get_distinct_fence_tokens(ledger: &dyn Ledger) {
    const ACQUIRERS: u64 = 16;
    let acquired =
        futures_util::future::join_all((0..ACQUIRERS).map(|_| ledger.acquire_fence("main"))).await;
    let mut tokens: Vec<u64> = acquired.into_iter().map(Result::unwrap).collect();
    tokens.sort_unstable();
    let first = tokens[0];
    assert_eq!(tokens, (first..first + ACQUIRERS).collect::<Vec<_>>());
    let next = ledger.acquire_fence("main").await.unwrap();
    assert_eq!(next, first + ACQUIRERS);
}
