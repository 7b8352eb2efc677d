//! What a chaos run checks in the ledger after each fault, read straight from
//! PostgreSQL (one REPEATABLE READ snapshot) and judged by pure functions:
//!
//! - `balances_sum`: the sum of all balances is 0 (double entry: the mint's negative
//!   balance is every grant);
//! - `balance_vs_transfers`: every account's balance is its credits minus its debits;
//! - `negative_balance`: no player balance below zero;
//! - `bet_lost`: every bet a bot saw acknowledged (`bet_ok`) has its stake transfer
//!   `bet:{room}:{round}:{player}:{slot}`, of the acknowledged amount;
//! - `settled_twice`: no bet has both a payout and a refund (ids are unique, so each
//!   exists at most once);
//! - `settlement_without_bet`: no payout or refund without its stake;
//! - `payout_amount`: a payout is `floor(stake · m / 100)` with `m` at most its round's
//!   crash point; a refund is the stake;
//! - `aborted_unsettled`: every stake of an aborted round was paid out or refunded;
//! - `stuck_round`: no unfinished round but the newest of its room.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use tokio_postgres::Transaction;

use super::probes::connect;
use crate::report::stats::AckedBet;

/// Messages kept per check; further findings are only counted.
const MESSAGES_PER_CHECK_MAX: usize = 3;

/// A stake, payout or refund as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    pub id: String,
    pub kind: String,
    pub amount_minor: i64,
    pub multiplier_hundredths: Option<i64>,
}

/// A round of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundRow {
    pub room: String,
    pub round: i64,
    pub status: String,
    pub crash_hundredths: i64,
}

/// What the checks read from the ledger.
#[derive(Debug, Clone, Default)]
pub struct LedgerRows {
    /// Every transfer but grants.
    pub transfers: Vec<TransferRow>,
    pub rounds: Vec<RoundRow>,
    pub balances_sum_minor: i64,
    /// Player accounts below zero: key and balance.
    pub negative_players: Vec<(String, i64)>,
    /// Accounts whose balance is not credits − debits: key, balance, credits − debits.
    pub balance_mismatches: Vec<(String, i64, i64)>,
}

/// The bet a stake, payout or refund id names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BetKey {
    pub room: String,
    pub round: i64,
    pub player: String,
    pub slot: u8,
}

impl std::fmt::Display for BetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.room, self.round, self.player, self.slot
        )
    }
}

/// Splits `{kind}:{room}:{round}:{player}:{slot}` (room and player hold no `:`).
pub fn parse_bet_id(id: &str) -> Option<(&str, BetKey)> {
    let mut parts = id.split(':');
    let kind = parts.next()?;
    let room = parts.next()?;
    let round = parts.next()?.parse().ok()?;
    let player = parts.next()?;
    let slot = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let key = BetKey {
        room: room.to_owned(),
        round,
        player: player.to_owned(),
        slot,
    };
    Some((kind, key))
}

/// The findings of one check run: counts per check and the first messages of each.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    pub counts: BTreeMap<&'static str, u64>,
    pub messages: Vec<String>,
}

impl Findings {
    fn add(&mut self, check: &'static str, message: String) {
        let count = self.counts.entry(check).or_default();
        *count += 1;
        if *count <= MESSAGES_PER_CHECK_MAX as u64 {
            self.messages.push(format!("{check}: {message}"));
        }
    }
}

/// A bet's transfers, gathered from their ids.
#[derive(Debug, Default)]
struct BetTransfers<'a> {
    stake: Option<&'a TransferRow>,
    payout: Option<&'a TransferRow>,
    refund: Option<&'a TransferRow>,
}

/// Runs every check on `rows`, with `acked` the bets the bots saw acknowledged in `room`.
pub fn check(rows: &LedgerRows, acked: &[AckedBet], room: &str) -> Findings {
    let mut findings = Findings::default();
    check_money(rows, &mut findings);
    let bets = gather_bets(rows, &mut findings);
    check_acked(&bets, acked, room, &mut findings);
    let rounds: HashMap<(&str, i64), &RoundRow> = (rows.rounds.iter())
        .map(|round| ((round.room.as_str(), round.round), round))
        .collect();
    for (key, bet) in &bets {
        check_settlement(
            key,
            bet,
            rounds.get(&(key.room.as_str(), key.round)),
            &mut findings,
        );
    }
    check_rounds(&rows.rounds, &mut findings);
    findings
}

fn check_money(rows: &LedgerRows, findings: &mut Findings) {
    if rows.balances_sum_minor != 0 {
        let message = format!("the balances sum to {}, not 0", rows.balances_sum_minor);
        findings.add("balances_sum", message);
    }
    for (key, balance) in &rows.negative_players {
        findings.add("negative_balance", format!("{key} holds {balance}"));
    }
    for (key, balance, moved) in &rows.balance_mismatches {
        let message = format!("{key} holds {balance}, its transfers add up to {moved}");
        findings.add("balance_vs_transfers", message);
    }
}

fn gather_bets<'a>(
    rows: &'a LedgerRows,
    findings: &mut Findings,
) -> BTreeMap<BetKey, BetTransfers<'a>> {
    let mut bets: BTreeMap<BetKey, BetTransfers> = BTreeMap::new();
    for transfer in &rows.transfers {
        let Some((kind, key)) =
            parse_bet_id(&transfer.id).filter(|(kind, _)| *kind == transfer.kind)
        else {
            findings.add(
                "transfer_id",
                format!("{} ({}) names no bet", transfer.id, transfer.kind),
            );
            continue;
        };
        let entry = bets.entry(key).or_default();
        match kind {
            "bet" => entry.stake = Some(transfer),
            "payout" => entry.payout = Some(transfer),
            _ => entry.refund = Some(transfer),
        }
    }
    bets
}

fn check_acked(
    bets: &BTreeMap<BetKey, BetTransfers>,
    acked: &[AckedBet],
    room: &str,
    findings: &mut Findings,
) {
    for bet in acked {
        let key = BetKey {
            room: room.to_owned(),
            round: i64::try_from(bet.round).unwrap_or(i64::MAX),
            player: bet.player.clone(),
            slot: bet.slot,
        };
        match bets.get(&key).and_then(|transfers| transfers.stake) {
            Some(stake) if stake.amount_minor == bet.amount_minor => {}
            Some(stake) => findings.add(
                "bet_lost",
                format!(
                    "bet {key} acked for {}, staked {}",
                    bet.amount_minor, stake.amount_minor
                ),
            ),
            None => findings.add(
                "bet_lost",
                format!("bet {key} acked, no stake in the ledger"),
            ),
        }
    }
}

fn check_settlement(
    key: &BetKey,
    bet: &BetTransfers,
    round: Option<&&RoundRow>,
    findings: &mut Findings,
) {
    let Some(stake) = bet.stake else {
        findings.add(
            "settlement_without_bet",
            format!("{key}: payout or refund, no stake"),
        );
        return;
    };
    if bet.payout.is_some() && bet.refund.is_some() {
        findings.add(
            "settled_twice",
            format!("{key}: both paid out and refunded"),
        );
    }
    if let Some(refund) = bet
        .refund
        .filter(|refund| refund.amount_minor != stake.amount_minor)
    {
        let message = format!(
            "{key}: stake {}, refunded {}",
            stake.amount_minor, refund.amount_minor
        );
        findings.add("payout_amount", message);
    }
    if let Some(payout) = bet.payout {
        let m = payout.multiplier_hundredths.unwrap_or(0);
        let expected = i128::from(stake.amount_minor) * i128::from(m) / 100;
        let above_crash =
            round.is_some_and(|round| round.status == "crashed" && m > round.crash_hundredths);
        if i128::from(payout.amount_minor) != expected || above_crash {
            let crash = round.map(|round| round.crash_hundredths);
            let message = format!(
                "{key}: stake {} paid {} at m {m} (crash point {crash:?})",
                stake.amount_minor, payout.amount_minor
            );
            findings.add("payout_amount", message);
        }
    }
    let aborted = round.is_some_and(|round| round.status == "aborted");
    if aborted && bet.payout.is_none() && bet.refund.is_none() {
        findings.add(
            "aborted_unsettled",
            format!("{key}: its round was aborted, the stake kept"),
        );
    }
}

fn check_rounds(rounds: &[RoundRow], findings: &mut Findings) {
    let mut newest: HashMap<&str, i64> = HashMap::new();
    for round in rounds {
        let entry = newest.entry(round.room.as_str()).or_insert(round.round);
        *entry = (*entry).max(round.round);
    }
    for round in rounds {
        let unfinished = matches!(round.status.as_str(), "betting" | "flying");
        if unfinished && newest.get(round.room.as_str()) != Some(&round.round) {
            let message = format!(
                "round {} of {} is still {}",
                round.round, round.room, round.status
            );
            findings.add("stuck_round", message);
        }
    }
}

/// Reads what the checks need from the ledger at `database_url`, in one snapshot.
pub async fn read_ledger(database_url: &str) -> anyhow::Result<LedgerRows> {
    let mut client = connect(database_url).await?;
    let snapshot = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let mut rows = read_balances(&snapshot).await?;
    rows.transfers = read_transfers(&snapshot).await?;
    rows.rounds = read_rounds(&snapshot).await?;
    snapshot.commit().await?;
    Ok(rows)
}

/// Every transfer but grants.
async fn read_transfers(snapshot: &Transaction<'_>) -> anyhow::Result<Vec<TransferRow>> {
    let sql = "SELECT id, kind, amount, multiplier_hundredths FROM transfers WHERE kind <> 'grant'";
    let rows = snapshot
        .query(sql, &[])
        .await
        .context("reading the transfers")?;
    Ok((rows.iter())
        .map(|row| TransferRow {
            id: row.get(0),
            kind: row.get(1),
            amount_minor: row.get(2),
            multiplier_hundredths: row.get(3),
        })
        .collect())
}

/// The round journal.
async fn read_rounds(snapshot: &Transaction<'_>) -> anyhow::Result<Vec<RoundRow>> {
    let sql = "SELECT room, round, status, crash_hundredths FROM rounds";
    let rows = snapshot
        .query(sql, &[])
        .await
        .context("reading the rounds")?;
    Ok((rows.iter())
        .map(|row| RoundRow {
            room: row.get(0),
            round: row.get(1),
            status: row.get(2),
            crash_hundredths: row.get(3),
        })
        .collect())
}

/// The balances' sum, the players below zero and the accounts whose balance is not
/// their transfers' (the rest of the rows left empty).
async fn read_balances(snapshot: &Transaction<'_>) -> anyhow::Result<LedgerRows> {
    let sum_sql = "SELECT coalesce(sum(balance), 0)::bigint FROM accounts";
    let negative_sql =
        "SELECT key, balance FROM accounts WHERE key LIKE 'player:%' AND balance < 0";
    let sum = snapshot.query_one(sum_sql, &[]).await?;
    let negative = snapshot.query(negative_sql, &[]).await?;
    let mismatches = snapshot.query(BALANCE_MISMATCHES_SQL, &[]).await?;
    Ok(LedgerRows {
        balances_sum_minor: sum.get(0),
        negative_players: (negative.iter())
            .map(|row| (row.get(0), row.get(1)))
            .collect(),
        balance_mismatches: (mismatches.iter())
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect(),
        ..LedgerRows::default()
    })
}

/// The newest round of the ledger that crashed or was aborted (0 before the first).
pub async fn newest_finished_round(database_url: &str) -> anyhow::Result<i64> {
    let client = connect(database_url).await?;
    let row = client
        .query_one(
            "SELECT coalesce(max(round), 0) FROM rounds WHERE status IN ('crashed', 'aborted')",
            &[],
        )
        .await
        .context("reading the newest finished round")?;
    Ok(row.get(0))
}

/// Accounts whose balance is not the sum of their credits minus their debits.
const BALANCE_MISMATCHES_SQL: &str = "
SELECT a.key, a.balance, (coalesce(c.total, 0) - coalesce(d.total, 0))::bigint
FROM accounts a
LEFT JOIN (SELECT credit AS key, sum(amount) AS total FROM transfers GROUP BY credit) c
    ON c.key = a.key
LEFT JOIN (SELECT debit AS key, sum(amount) AS total FROM transfers GROUP BY debit) d
    ON d.key = a.key
WHERE a.balance <> coalesce(c.total, 0) - coalesce(d.total, 0)";

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(id: &str, amount_minor: i64, multiplier_hundredths: Option<i64>) -> TransferRow {
        TransferRow {
            id: id.to_owned(),
            kind: id.split(':').next().unwrap().to_owned(),
            amount_minor,
            multiplier_hundredths,
        }
    }

    fn round(number: i64, status: &str, crash_hundredths: i64) -> RoundRow {
        RoundRow {
            room: "main".to_owned(),
            round: number,
            status: status.to_owned(),
            crash_hundredths,
        }
    }

    fn acked(round: u64, player: &str, slot: u8, amount_minor: i64) -> AckedBet {
        AckedBet {
            round,
            player: player.to_owned(),
            slot,
            amount_minor,
        }
    }

    /// A ledger where round 1 crashed at 2.50 (a paid at 2.00, b lost), round 2 was
    /// aborted (c refunded) and round 3 flies.
    fn healthy() -> LedgerRows {
        LedgerRows {
            transfers: vec![
                transfer("bet:main:1:a:0", 100, Some(200)),
                transfer("payout:main:1:a:0", 200, Some(200)),
                transfer("bet:main:1:b:1", 50, None),
                transfer("bet:main:2:c:0", 30, None),
                transfer("refund:main:2:c:0", 30, None),
                transfer("bet:main:3:a:0", 10, None),
            ],
            rounds: vec![
                round(1, "crashed", 250),
                round(2, "aborted", 100),
                round(3, "flying", 400),
            ],
            ..LedgerRows::default()
        }
    }

    fn checks_failed(rows: &LedgerRows, acked: &[AckedBet]) -> Vec<&'static str> {
        check(rows, acked, "main").counts.into_keys().collect()
    }

    #[test]
    fn bet_ids_name_room_round_player_and_slot() {
        let (kind, key) = parse_bet_id("payout:main:12:g-00ff.x_y:1").unwrap();
        assert_eq!(kind, "payout");
        assert_eq!(key.to_string(), "main:12:g-00ff.x_y:1");
        assert_eq!(parse_bet_id("grant:g-1"), None);
        assert_eq!(parse_bet_id("bet:main:x:p:0"), None);
        assert_eq!(parse_bet_id("bet:main:1:p:0:extra"), None);
    }

    #[test]
    fn a_healthy_ledger_passes() {
        let acked = [acked(1, "a", 0, 100), acked(3, "a", 0, 10)];
        assert_eq!(check(&healthy(), &acked, "main"), Findings::default());
    }

    #[test]
    fn an_acked_bet_without_its_stake_is_lost() {
        assert_eq!(
            checks_failed(&healthy(), &[acked(3, "b", 0, 10)]),
            ["bet_lost"]
        );
        assert_eq!(
            checks_failed(&healthy(), &[acked(3, "a", 0, 20)]),
            ["bet_lost"]
        );
    }

    #[test]
    fn a_bet_paid_and_refunded_is_settled_twice() {
        let mut rows = healthy();
        rows.transfers
            .push(transfer("refund:main:1:a:0", 100, None));
        assert_eq!(checks_failed(&rows, &[]), ["settled_twice"]);
    }

    #[test]
    fn payouts_pay_the_stake_times_m_up_to_the_crash_point() {
        let mut rows = healthy();
        rows.transfers[1] = transfer("payout:main:1:a:0", 201, Some(200));
        assert_eq!(checks_failed(&rows, &[]), ["payout_amount"]);
        let mut rows = healthy();
        rows.transfers[0] = transfer("bet:main:1:a:0", 100, Some(300));
        rows.transfers[1] = transfer("payout:main:1:a:0", 300, Some(300));
        assert_eq!(checks_failed(&rows, &[]), ["payout_amount"]);
        let mut rows = healthy();
        rows.transfers[4] = transfer("refund:main:2:c:0", 29, None);
        assert_eq!(checks_failed(&rows, &[]), ["payout_amount"]);
    }

    #[test]
    fn settlements_need_a_stake_and_aborted_rounds_settle_every_stake() {
        let mut rows = healthy();
        rows.transfers.push(transfer("refund:main:3:z:1", 5, None));
        assert_eq!(checks_failed(&rows, &[]), ["settlement_without_bet"]);
        let mut rows = healthy();
        rows.transfers.remove(4);
        assert_eq!(checks_failed(&rows, &[]), ["aborted_unsettled"]);
    }

    #[test]
    fn only_the_newest_round_may_be_unfinished() {
        let mut rows = healthy();
        rows.rounds[0].status = "flying".to_owned();
        assert_eq!(checks_failed(&rows, &[]), ["stuck_round"]);
    }

    #[test]
    fn money_must_balance_and_stay_positive() {
        let rows = LedgerRows {
            balances_sum_minor: 7,
            negative_players: vec![("player:a".to_owned(), -1)],
            balance_mismatches: vec![("house".to_owned(), 10, 9)],
            ..LedgerRows::default()
        };
        let failed = checks_failed(&rows, &[]);
        assert_eq!(
            failed,
            ["balance_vs_transfers", "balances_sum", "negative_balance"]
        );
        let findings = check(&rows, &[], "main");
        assert_eq!(
            findings.messages[0],
            "balances_sum: the balances sum to 7, not 0"
        );
    }
}
