//! The randomized conformance case: random batches of transfers (grants, bets, payouts,
//! refunds, retries, reused ids) checked against an in-memory model of `apply_batch`;
//! and the throughput measurement of a ledger.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::super::{Account, Ledger, Transfer, TransferKind, TransferOutcome};
use super::fixtures::{
    apply, assert_strictly_increasing, balance, bet, committed, grant, payout, player, transfer,
    with_multiplier,
};

/// Operations of the randomized case.
const RANDOM_OPERATIONS: usize = 10_000;
/// Largest batch of the randomized case, in transfers.
const RANDOM_BATCH_TRANSFERS_MAX: usize = 100;
/// Distinct players of the randomized case: few enough that each sees many movements.
const RANDOM_PLAYERS: usize = 40;

/// The reference semantics of `apply_batch`, kept in memory.
#[derive(Default)]
struct Model {
    balances: HashMap<Account, i64>,
    /// Committed transfers by id, with the balances of their first commit.
    committed: HashMap<String, (Transfer, i64, i64)>,
}

impl Model {
    fn balance(&self, account: &Account) -> i64 {
        self.balances.get(account).copied().unwrap_or(0)
    }

    fn apply(&mut self, transfer: &Transfer) -> TransferOutcome {
        if let Some((first, debit_after, credit_after)) = self.committed.get(&transfer.id) {
            if first != transfer {
                return TransferOutcome::IdConflict;
            }
            return committed(*debit_after, *credit_after, true);
        }
        let available = self.balance(&transfer.debit);
        if !transfer.debit.may_go_negative() && available < transfer.amount_minor {
            return TransferOutcome::InsufficientFunds {
                available_minor: available,
            };
        }
        let debit_after = available - transfer.amount_minor;
        let credit_after = self.balance(&transfer.credit) + transfer.amount_minor;
        self.balances.insert(transfer.debit.clone(), debit_after);
        self.balances.insert(transfer.credit.clone(), credit_after);
        self.committed.insert(
            transfer.id.clone(),
            (transfer.clone(), debit_after, credit_after),
        );
        committed(debit_after, credit_after, false)
    }
}

/// One random operation: grants, bets (some overdrawing), payouts, refunds, exact retries
/// of earlier ids and reuses of earlier ids with other contents.
fn random_transfer(
    rng: &mut StdRng,
    model: &Model,
    issued: &[Transfer],
    serial: usize,
) -> Transfer {
    let who = format!("p{}", rng.random_range(0..RANDOM_PLAYERS));
    let roll = rng.random_range(0..100);
    if roll < 15 && !issued.is_empty() {
        return issued.choose(rng).expect("not empty").clone();
    }
    if roll < 20 && !issued.is_empty() {
        let mut reused = issued.choose(rng).expect("not empty").clone();
        reused.amount_minor += 1;
        return reused;
    }
    match roll {
        0..35 => grant(&format!("g:{serial}"), &who, rng.random_range(1..=10_000)),
        35..75 => {
            // Up to a quarter above the balance, so some bets overdraw.
            let held = model.balance(&player(&who));
            let amount = rng.random_range(1..=held + held / 4 + 10);
            // Half the bets carry an auto-cashout target.
            let auto = rng.random_bool(0.5).then(|| rng.random_range(101..=10_000));
            with_multiplier(bet(&format!("b:{serial}"), &who, amount), auto)
        }
        75..90 => {
            let paid_at = rng.random_range(100..=10_000);
            let win = payout(&format!("w:{serial}"), &who, rng.random_range(1..=20_000));
            with_multiplier(win, Some(paid_at))
        }
        _ => {
            let mut refund = payout(&format!("r:{serial}"), &who, rng.random_range(1..=1_000));
            refund.kind = TransferKind::Refund;
            refund
        }
    }
}

/// 10,000 random operations in random batch sizes give exactly the model's outcomes and
/// balances; money is conserved and no player is ever negative.
pub async fn random_operations_match_a_model(ledger: &dyn Ledger) {
    let mut rng = StdRng::seed_from_u64(0x0a10f7);
    let mut model = Model::default();
    let mut issued: Vec<Transfer> = Vec::new();
    // Replays, id conflicts and overdrafts seen, so a change to the generator cannot
    // silently stop exercising the rarer paths.
    let mut paths_exercised = [0usize; 3];
    let mut operations = 0;
    while operations < RANDOM_OPERATIONS {
        let size = rng
            .random_range(1..=RANDOM_BATCH_TRANSFERS_MAX)
            .min(RANDOM_OPERATIONS - operations);
        let mut batch = Vec::with_capacity(size);
        let mut expected = Vec::with_capacity(size);
        for serial in operations..operations + size {
            let next = random_transfer(&mut rng, &model, &issued, serial);
            let outcome = model.apply(&next);
            match outcome {
                TransferOutcome::Committed { replayed: true, .. } => paths_exercised[0] += 1,
                TransferOutcome::IdConflict => paths_exercised[1] += 1,
                TransferOutcome::InsufficientFunds { .. } => paths_exercised[2] += 1,
                TransferOutcome::Committed { .. } => {}
            }
            expected.push(outcome);
            issued.push(next.clone());
            batch.push(next);
        }
        assert_eq!(
            apply(ledger, batch).await,
            expected,
            "batch at operation {operations}"
        );
        operations += size;
    }
    assert_ledger_holds_the_model(ledger, &model).await;
    for (path, times) in ["replayed", "conflict", "overdraft"]
        .iter()
        .zip(paths_exercised)
    {
        assert!(times > 50, "the {path} path ran only {times} times");
    }
}

/// Money is conserved, every balance is the model's (no player negative), and the stored
/// transfers are the model's committed ones, as sent, in commit order.
async fn assert_ledger_holds_the_model(ledger: &dyn Ledger, model: &Model) {
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
    for (account, expected) in &model.balances {
        let actual = balance(ledger, account.clone()).await;
        assert_eq!(actual, *expected, "balance of {account:?}");
        assert!(
            actual >= 0 || account.may_go_negative(),
            "{account:?} is negative"
        );
    }
    let stored = ledger.transfers_with_prefix("").await.unwrap();
    assert_eq!(stored.len(), model.committed.len());
    assert_strictly_increasing(&stored);
    for entry in &stored {
        assert_eq!(
            entry.transfer, model.committed[&entry.transfer.id].0,
            "stored as sent"
        );
    }
}

/// Group-commit throughput of `ledger` for batches of 1, 100 and 1000 stakes. Prints;
/// asserts nothing about speed (run from `#[ignore]`d tests, `-- --ignored --nocapture`).
pub async fn bets_per_second(ledger: &dyn Ledger) {
    const PLAYERS: usize = 1_000;
    let grants = (0..PLAYERS)
        .map(|n| {
            transfer(
                &format!("g:{n}"),
                Account::Mint,
                player(&n.to_string()),
                1 << 40,
            )
        })
        .collect();
    ledger.apply_batch(grants).await.unwrap();
    for (batch_size, bets) in [(1, 2_000), (100, 50_000), (1_000, 200_000)] {
        let started = std::time::Instant::now();
        for batch_start in (0..bets).step_by(batch_size) {
            let batch = (batch_start..batch_start + batch_size)
                .map(|n| {
                    let id = format!("bet:{batch_size}:{n}");
                    transfer(&id, player(&(n % PLAYERS).to_string()), Account::House, 10)
                })
                .collect();
            ledger.apply_batch(batch).await.unwrap();
        }
        let seconds = started.elapsed().as_secs_f64();
        let rate = bets as f64 / seconds;
        println!("batch {batch_size:>5}: {bets} bets in {seconds:.2} s = {rate:.0} bets/s");
    }
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
}
