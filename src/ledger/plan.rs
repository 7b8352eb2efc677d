//! What a batch of transfers does, decided in memory: the money rules of the ledger, in
//! one pure function both stores execute.
//!
//! A store checks the batch ([`prepare`]), reads what it names (the balances of the
//! touched accounts and the ids already committed, under the store's locks), and hands
//! them to [`plan_batch`], which returns every outcome, the transfers to insert and the
//! final balance of each moved account. The store then only writes the plan. So SQLite
//! and PostgreSQL agree by construction, and a store that retries a batch (PostgreSQL,
//! after losing a race) gets the same plan from the same reads.
//!
//! The rules, in batch order: an id already committed replays its first result (same
//! terms) or conflicts (other terms), moving nothing; an id committed earlier in the same
//! batch does the same; otherwise a player without the funds is refused alone; otherwise
//! the running balances move. Debits equal credits and no player ends below zero: both are
//! asserted, since a plan that breaks them is a bug.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Account, Fence, LedgerError, StoredTransfer, Transfer, TransferOutcome};

/// What a store must read before planning a batch, each sorted and distinct: one lock
/// order for every writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchReads {
    /// Keys of every account the batch debits or credits.
    pub account_keys: Vec<String>,
    /// Ids of the batch's transfers.
    pub ids: Vec<String>,
}

/// Refuses a batch holding a malformed transfer (the whole batch: no correct caller sends
/// one) and names what to read to plan it. `None` when there is nothing to do: an empty
/// batch without a fence (with one, the store still checks the fence, so a deposed caller
/// learns it was).
pub(crate) fn prepare(
    batch: &[Transfer],
    fence: Option<&Fence>,
) -> Result<Option<BatchReads>, LedgerError> {
    for transfer in batch {
        transfer.validate()?;
    }
    if batch.is_empty() && fence.is_none() {
        return Ok(None);
    }
    let account_keys: BTreeSet<String> = batch
        .iter()
        .flat_map(|transfer| [transfer.debit.key(), transfer.credit.key()])
        .collect();
    let ids: BTreeSet<&str> = batch.iter().map(|transfer| transfer.id.as_str()).collect();
    Ok(Some(BatchReads {
        account_keys: account_keys.into_iter().collect(),
        ids: ids.into_iter().map(str::to_owned).collect(),
    }))
}

/// A transfer of the batch that commits now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewTransfer {
    /// Its position in the batch.
    pub index: usize,
    pub debit_balance_after_minor: i64,
    pub credit_balance_after_minor: i64,
}

/// What a batch does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchPlan {
    /// One per transfer of the batch, in order: commits, replays and refusals.
    pub outcomes: Vec<TransferOutcome>,
    /// The transfers to insert, in batch order (so their commit sequence follows it).
    pub inserts: Vec<NewTransfer>,
    /// The final balance of every account whose balance changes, by key: each row is
    /// written once per batch (the house's too, the design's hot-spot rule), in key order.
    pub balances_after: BTreeMap<String, i64>,
}

/// The first commit of an id: what a replay returns and a reuse is compared with.
struct FirstCommit {
    transfer: Transfer,
    debit_balance_after_minor: i64,
    credit_balance_after_minor: i64,
}

/// Plans `batch` from `balances_before` (the stored balance of each touched account that
/// exists; a missing one is 0) and `committed` (the stored transfers among the batch's
/// ids). Fails only when a balance would leave the range of `i64`.
pub(crate) fn plan_batch(
    batch: &[Transfer],
    balances_before: &HashMap<String, i64>,
    committed: impl IntoIterator<Item = StoredTransfer>,
) -> Result<BatchPlan, LedgerError> {
    let mut known: HashMap<String, FirstCommit> = committed
        .into_iter()
        .map(|stored| {
            let first = FirstCommit {
                debit_balance_after_minor: stored.debit_balance_after_minor,
                credit_balance_after_minor: stored.credit_balance_after_minor,
                transfer: stored.transfer,
            };
            (first.transfer.id.clone(), first)
        })
        .collect();
    let mut running = balances_before.clone();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut inserts = Vec::new();
    for (index, transfer) in batch.iter().enumerate() {
        if let Some(first) = known.get(&transfer.id) {
            outcomes.push(replay(first, transfer));
            continue;
        }
        let outcome = move_money(&mut running, transfer)?;
        if let TransferOutcome::Committed {
            debit_balance_after_minor,
            credit_balance_after_minor,
            ..
        } = outcome
        {
            inserts.push(NewTransfer {
                index,
                debit_balance_after_minor,
                credit_balance_after_minor,
            });
            // Later copies of this id in the batch replay this commit.
            let first = FirstCommit {
                transfer: transfer.clone(),
                debit_balance_after_minor,
                credit_balance_after_minor,
            };
            known.insert(transfer.id.clone(), first);
        }
        outcomes.push(outcome);
    }
    Ok(BatchPlan {
        outcomes,
        inserts,
        balances_after: moved_balances(balances_before, running),
    })
}

/// A known id: its first result when the terms are the same, a conflict otherwise.
fn replay(first: &FirstCommit, transfer: &Transfer) -> TransferOutcome {
    if first.transfer == *transfer {
        TransferOutcome::Committed {
            debit_balance_after_minor: first.debit_balance_after_minor,
            credit_balance_after_minor: first.credit_balance_after_minor,
            replayed: true,
        }
    } else {
        TransferOutcome::IdConflict
    }
}

/// A new id: moves its amount between the running balances, or refuses an overdraft.
fn move_money(
    running: &mut HashMap<String, i64>,
    transfer: &Transfer,
) -> Result<TransferOutcome, LedgerError> {
    let amount = transfer.amount_minor;
    let (debit_key, credit_key) = (transfer.debit.key(), transfer.credit.key());
    let balance = |key: &String| running.get(key).copied().unwrap_or(0);
    let debit_before = balance(&debit_key);
    if !transfer.debit.may_go_negative() && debit_before < amount {
        return Ok(TransferOutcome::InsufficientFunds {
            available_minor: debit_before,
        });
    }
    let overflow = || LedgerError::InvalidTransfer {
        id: transfer.id.clone(),
        reason: "a balance would leave the range of i64",
    };
    let debit_after = debit_before.checked_sub(amount).ok_or_else(overflow)?;
    let credit_after = balance(&credit_key)
        .checked_add(amount)
        .ok_or_else(overflow)?;
    running.insert(debit_key, debit_after);
    running.insert(credit_key, credit_after);
    Ok(TransferOutcome::Committed {
        debit_balance_after_minor: debit_after,
        credit_balance_after_minor: credit_after,
        replayed: false,
    })
}

/// The accounts whose balance changed, checking the batch's money invariants: debits
/// equal credits, and no player ends below zero.
fn moved_balances(
    before: &HashMap<String, i64>,
    after: HashMap<String, i64>,
) -> BTreeMap<String, i64> {
    let mut net: i128 = 0;
    let mut moved = BTreeMap::new();
    for (key, balance) in after {
        let delta = i128::from(balance) - i128::from(before.get(&key).copied().unwrap_or(0));
        if delta == 0 {
            continue;
        }
        net += delta;
        let may_go_negative = Account::from_key(&key).is_none_or(|a| a.may_go_negative());
        assert!(
            balance >= 0 || may_go_negative,
            "player balance {key} would be negative: {balance}"
        );
        moved.insert(key, balance);
    }
    assert_eq!(net, 0, "ledger batch debits must equal its credits");
    moved
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ledger::conformance::{fence, player, transfer};

    fn committed(debit_after: i64, credit_after: i64, replayed: bool) -> TransferOutcome {
        TransferOutcome::Committed {
            debit_balance_after_minor: debit_after,
            credit_balance_after_minor: credit_after,
            replayed,
        }
    }

    fn balances(entries: &[(&str, i64)]) -> HashMap<String, i64> {
        let owned = entries
            .iter()
            .map(|(key, balance)| ((*key).to_owned(), *balance));
        owned.collect()
    }

    fn stored(transfer: Transfer, debit_after: i64, credit_after: i64) -> StoredTransfer {
        StoredTransfer {
            transfer,
            debit_balance_after_minor: debit_after,
            credit_balance_after_minor: credit_after,
            sequence: 1,
        }
    }

    #[test]
    fn a_batch_names_its_accounts_and_ids_sorted_once_each() {
        let batch = [
            transfer("b", player("z"), Account::House, 1),
            transfer("a", Account::Mint, player("z"), 1),
            transfer("b", player("z"), Account::House, 1),
        ];
        let reads = prepare(&batch, None).unwrap().unwrap();
        assert_eq!(reads.account_keys, ["house", "mint", "player:z"]);
        assert_eq!(reads.ids, ["a", "b"]);
        assert_eq!(prepare(&[], None).unwrap(), None);
        let fenced = prepare(&[], Some(&fence("main", 1))).unwrap().unwrap();
        assert!(fenced.account_keys.is_empty() && fenced.ids.is_empty());
        let malformed = [
            batch[0].clone(),
            transfer("c", player("z"), Account::House, 0),
        ];
        assert!(matches!(
            prepare(&malformed, None),
            Err(LedgerError::InvalidTransfer { .. })
        ));
    }

    #[test]
    fn new_ids_move_the_running_balances_and_each_account_is_written_once() {
        let batch = [
            transfer("g", Account::Mint, player("a"), 100),
            transfer("b1", player("a"), Account::House, 30),
            transfer("b2", player("a"), Account::House, 20),
        ];
        let plan = plan_batch(&batch, &balances(&[("house", 5)]), []).unwrap();
        assert_eq!(
            plan.outcomes,
            [
                committed(-100, 100, false),
                committed(70, 35, false),
                committed(50, 55, false)
            ]
        );
        let indexes: Vec<usize> = plan.inserts.iter().map(|new| new.index).collect();
        assert_eq!(indexes, [0, 1, 2]);
        assert_eq!(
            plan.balances_after,
            BTreeMap::from([
                ("house".to_owned(), 55),
                ("mint".to_owned(), -100),
                ("player:a".to_owned(), 50),
            ])
        );
    }

    #[test]
    fn known_ids_replay_or_conflict_and_move_nothing() {
        let first = transfer("b", player("a"), Account::House, 30);
        let known = [stored(first.clone(), 70, 30)];
        let reused = transfer("b", player("a"), Account::House, 31);
        let batch = [first.clone(), reused, first.clone()];
        let plan = plan_batch(&batch, &balances(&[("player:a", 70)]), known).unwrap();
        assert_eq!(
            plan.outcomes,
            [
                committed(70, 30, true),
                TransferOutcome::IdConflict,
                committed(70, 30, true)
            ]
        );
        assert!(plan.inserts.is_empty() && plan.balances_after.is_empty());
    }

    #[test]
    fn an_id_twice_in_a_batch_commits_once_and_an_overdraft_fails_alone() {
        let batch = [
            transfer("b1", player("a"), Account::House, 60),
            transfer("b2", player("a"), Account::House, 60),
            transfer("b1", player("a"), Account::House, 60),
            transfer("b1", player("a"), Account::House, 61),
            transfer("p", Account::House, player("a"), 500),
        ];
        let plan = plan_batch(&batch, &balances(&[("player:a", 100)]), []).unwrap();
        assert_eq!(
            plan.outcomes,
            [
                committed(40, 60, false),
                TransferOutcome::InsufficientFunds {
                    available_minor: 40
                },
                committed(40, 60, true),
                TransferOutcome::IdConflict,
                committed(-440, 540, false),
            ]
        );
        let indexes: Vec<usize> = plan.inserts.iter().map(|new| new.index).collect();
        assert_eq!(indexes, [0, 4]);
    }

    #[test]
    fn a_balance_leaving_i64_fails_the_batch() {
        let batch = [transfer("g", Account::Mint, player("a"), 10)];
        let full = balances(&[("player:a", i64::MAX - 5)]);
        assert!(matches!(
            plan_batch(&batch, &full, []),
            Err(LedgerError::InvalidTransfer { .. })
        ));
    }

    #[test]
    fn money_that_comes_back_writes_no_row() {
        let batch = [
            transfer("b", player("a"), Account::House, 10),
            transfer("p", Account::House, player("a"), 10),
        ];
        let plan = plan_batch(&batch, &balances(&[("player:a", 10)]), []).unwrap();
        assert_eq!(plan.inserts.len(), 2);
        assert!(plan.balances_after.is_empty());
    }

    /// Accounts of the generated batches: the mint, the house and a few players, so
    /// players often run out and ids often repeat.
    fn account() -> impl Strategy<Value = Account> {
        prop_oneof![
            Just(Account::Mint),
            Just(Account::House),
            (0..4u8).prop_map(|n| player(&n.to_string())),
        ]
    }

    fn any_transfer() -> impl Strategy<Value = Transfer> {
        (0..12u8, account(), account(), 1..200i64).prop_filter_map(
            "debit and credit differ",
            |(id, debit, credit, amount)| {
                (debit != credit).then(|| transfer(&format!("t:{id}"), debit, credit, amount))
            },
        )
    }

    /// A batch, and what the store read for it: balances (players never negative) and
    /// some of its ids committed before, with their terms or others.
    fn scenario()
    -> impl Strategy<Value = (Vec<Transfer>, HashMap<String, i64>, Vec<StoredTransfer>)> {
        let batch = prop::collection::vec(any_transfer(), 0..30);
        let committed = prop::collection::vec(any_transfer(), 0..6);
        let players = prop::collection::vec(0..300i64, 4);
        (batch, committed, players, -1_000..1_000i64).prop_map(
            |(batch, committed, players, house)| {
                let mut balances: HashMap<String, i64> = players
                    .iter()
                    .enumerate()
                    .map(|(n, balance)| (player(&n.to_string()).key(), *balance))
                    .collect();
                balances.insert("house".to_owned(), house);
                balances.insert("mint".to_owned(), -balances.values().sum::<i64>());
                let mut ids = std::collections::HashSet::new();
                let committed = committed
                    .into_iter()
                    .filter(|transfer| ids.insert(transfer.id.clone()))
                    .map(|transfer| stored(transfer, 0, 0))
                    .collect();
                (batch, balances, committed)
            },
        )
    }

    proptest! {
        /// Whatever the batch: one outcome per transfer; the inserts are exactly the fresh
        /// commits, and their balances chain from the reads to `balances_after`; a known
        /// id never inserts; each id inserts at most once; an overdraft names the running
        /// balance; and planning the same batch again over the result replays every
        /// commit and conflict, as a retry after the commit must.
        #[test]
        fn plans_keep_the_money_rules((batch, before, committed) in scenario()) {
            let plan = plan_batch(&batch, &before, committed.clone()).unwrap();
            prop_assert_eq!(plan.outcomes.len(), batch.len());
            let known: HashMap<&str, &Transfer> =
                committed.iter().map(|s| (s.transfer.id.as_str(), &s.transfer)).collect();
            let mut running = before.clone();
            let mut inserted = std::collections::HashSet::new();
            let mut inserts = plan.inserts.iter().peekable();
            for (index, (transfer, outcome)) in batch.iter().zip(&plan.outcomes).enumerate() {
                let fresh = inserts.next_if(|new| new.index == index);
                let debit = running.get(&transfer.debit.key()).copied().unwrap_or(0);
                let credit = running.get(&transfer.credit.key()).copied().unwrap_or(0);
                match (outcome, fresh) {
                    (TransferOutcome::Committed { replayed: false, debit_balance_after_minor, credit_balance_after_minor }, Some(new)) => {
                        prop_assert!(!known.contains_key(transfer.id.as_str()));
                        prop_assert!(inserted.insert(transfer.id.clone()), "{} inserted twice", transfer.id);
                        prop_assert_eq!(*debit_balance_after_minor, debit - transfer.amount_minor);
                        prop_assert_eq!(*credit_balance_after_minor, credit + transfer.amount_minor);
                        prop_assert_eq!(new.debit_balance_after_minor, *debit_balance_after_minor);
                        prop_assert_eq!(new.credit_balance_after_minor, *credit_balance_after_minor);
                        running.insert(transfer.debit.key(), *debit_balance_after_minor);
                        running.insert(transfer.credit.key(), *credit_balance_after_minor);
                    }
                    (TransferOutcome::Committed { replayed: true, .. }, None) => {
                        let first = known.get(transfer.id.as_str()).copied();
                        prop_assert!(first == Some(transfer) || inserted.contains(&transfer.id));
                    }
                    (TransferOutcome::IdConflict, None) => {
                        prop_assert!(known.contains_key(transfer.id.as_str()) || inserted.contains(&transfer.id));
                    }
                    (TransferOutcome::InsufficientFunds { available_minor }, None) => {
                        prop_assert!(!transfer.debit.may_go_negative());
                        prop_assert_eq!(*available_minor, debit);
                        prop_assert!(debit < transfer.amount_minor);
                    }
                    (outcome, fresh) => prop_assert!(false, "{outcome:?} with insert {fresh:?}"),
                }
            }
            prop_assert!(inserts.next().is_none());
            for (key, balance) in &running {
                let expected = plan.balances_after.get(key).copied()
                    .unwrap_or_else(|| before.get(key).copied().unwrap_or(0));
                prop_assert_eq!(*balance, expected, "{}", key);
            }

            let mut after = before.clone();
            after.extend(plan.balances_after.clone());
            let first_commits = plan.inserts.iter().map(|new| {
                stored(batch[new.index].clone(), new.debit_balance_after_minor, new.credit_balance_after_minor)
            });
            let retry = plan_batch(&batch, &after, committed.into_iter().chain(first_commits)).unwrap();
            // Only a refused overdraft may commit on retry: it was never recorded.
            let refused = |index: usize| {
                matches!(plan.outcomes[index], TransferOutcome::InsufficientFunds { .. })
            };
            prop_assert!(retry.inserts.iter().all(|new| refused(new.index)));
            prop_assert!(!retry.inserts.is_empty() || retry.balances_after.is_empty());
            for (outcome, retried) in plan.outcomes.iter().zip(&retry.outcomes) {
                match (outcome, retried) {
                    (TransferOutcome::Committed { debit_balance_after_minor: d, credit_balance_after_minor: c, .. },
                     TransferOutcome::Committed { debit_balance_after_minor: rd, credit_balance_after_minor: rc, replayed: true }) => {
                        prop_assert_eq!((d, c), (rd, rc));
                    }
                    (TransferOutcome::IdConflict, TransferOutcome::IdConflict) => {}
                    // A refused overdraft is not recorded: its retry is judged anew.
                    (TransferOutcome::InsufficientFunds { .. }, _) => {}
                    (outcome, retried) => prop_assert!(false, "{outcome:?} then {retried:?}"),
                }
            }
        }
    }
}
