//! 200 real WebSocket players play three full rounds against the real embedded server;
//! every client must see every event in order, every acknowledged bet and cashout must
//! be exactly what the ledger holds, and the bounded public feed must list at most its
//! configured numbers, largest first, with round totals that add up to what every player
//! was told privately.

use std::collections::{BTreeMap, HashMap};

use crate::common::{TestApp, next_json, send};
use aloft::ledger::{Account, Ledger};
use serde_json::{Value, json};

const PLAYERS: usize = 200;
const ROUNDS: usize = 3;
/// Bets and cashouts a tick lists, at most: far fewer than 200 players bet, so the bound
/// is reached.
const LISTED_PER_TICK_MAX: usize = 3;

/// What one client saw and was told.
#[derive(Default)]
struct Seen {
    player: String,
    start_balance: i64,
    /// (round, slot, amount) of each bet_ok.
    bets: Vec<(u64, u8, i64)>,
    /// (round, slot, win) of each cashout the player got paid, manual or auto.
    wins: Vec<(u64, u8, i64)>,
    /// The round of each crash seen, in order.
    crashes: Vec<u64>,
    /// The totals of each crash seen, by round.
    crash_totals: BTreeMap<u64, Value>,
    /// Whether some tick listed as many bets or cashouts as it may.
    saw_full_list: bool,
    last_balance: i64,
}

/// Each event's `seq` is the previous + 1, except where a gateway conflated the ticks of
/// a slow socket (docs/protocol.md, "Slow sockets"): only ticks are skipped, so a jump
/// may end at a tick, at `flying` (after betting ticks) or at `crash` (after flying
/// ticks), never at a round's `betting`, and a `seq` never repeats.
fn check_seq(index: usize, last_seq: u64, seq: u64, frame: &Value) {
    assert!(seq > last_seq, "player {index}: seq repeat: {frame}");
    let after_conflated_ticks = matches!(frame["t"].as_str(), Some("tick" | "flying" | "crash"));
    assert!(
        seq == last_seq + 1 || after_conflated_ticks,
        "player {index}: seq gap before a phase event (seq {seq} after {last_seq}): {frame}"
    );
}

async fn play(app: &TestApp, index: usize) -> Seen {
    let (mut socket, player, hello, snapshot) = app.player().await;
    let mut seen = Seen {
        player: player.clone(),
        start_balance: hello["balance"].as_i64().unwrap(),
        last_balance: hello["balance"].as_i64().unwrap(),
        ..Seen::default()
    };
    let mut last_seq = snapshot["seq"].as_u64().unwrap();
    let mut in_full_round = false;
    let mut holding = false;
    let mut round = 0u64;
    let mut last_m = 0u64;
    // Half the players cash out by hand at 1.5x; the others use an auto-cashout.
    let manual = index % 2 == 0;
    let stake = 10 + (index as i64 * 7) % 500;
    while seen.crashes.len() < ROUNDS {
        let frame = next_json(&mut socket).await;
        if let Some(seq) = frame.get("seq").and_then(Value::as_u64) {
            check_seq(index, last_seq, seq, &frame);
            last_seq = seq;
        }
        match frame["t"].as_str().unwrap() {
            "betting" => {
                in_full_round = true;
                round = frame["round"].as_u64().unwrap();
                last_m = 100;
                let mut bet =
                    json!({"t": "bet", "req": format!("b{round}"), "amount": stake, "slot": 0});
                if !manual {
                    bet["auto"] = json!(120 + (index as u64 % 5) * 20);
                }
                send(&mut socket, bet).await;
            }
            "tick" if in_full_round => {
                let m = frame["m"].as_u64().unwrap();
                assert!(m >= last_m, "multiplier went down: {frame}");
                last_m = m;
                seen.saw_full_list |= check_public_lists(&frame);
                if manual && holding && m >= 150 {
                    send(
                        &mut socket,
                        json!({"t": "cashout", "req": format!("c{round}"), "slot": 0}),
                    )
                    .await;
                    holding = false;
                }
            }
            "crash" if in_full_round => {
                assert_eq!(frame["round"].as_u64().unwrap(), round);
                let hash = frame["hash"].as_str().unwrap();
                assert_eq!(
                    frame["m"].as_u64().unwrap(),
                    app_crash_point(app, hash).await
                );
                seen.saw_full_list |= check_public_lists(&frame);
                seen.crash_totals.insert(round, frame["totals"].clone());
                seen.crashes.push(round);
                holding = false;
            }
            "bet_ok" => {
                seen.bets.push((
                    frame["round"].as_u64().unwrap(),
                    0,
                    frame["amount"].as_i64().unwrap(),
                ));
                seen.last_balance = frame["balance"].as_i64().unwrap();
                holding = true;
            }
            "cashout_ok" => {
                seen.wins.push((
                    frame["round"].as_u64().unwrap(),
                    0,
                    frame["win"].as_i64().unwrap(),
                ));
                seen.last_balance = frame["balance"].as_i64().unwrap();
            }
            "balance" => record_balance(&frame, &mut seen),
            "bet_err" => panic!("player {index}: bet refused: {frame}"),
            "cashout_err" => assert_eq!(frame["code"], "too_late", "{frame}"),
            _ => {}
        }
    }
    // The balance frame of an auto-cashout decided at the last crash may trail it.
    let drain = std::time::Duration::from_millis(300);
    while let Ok(frame) = tokio::time::timeout(drain, next_json(&mut socket)).await {
        if frame["t"] == "balance" {
            record_balance(&frame, &mut seen);
        }
    }
    seen
}

/// A `balance` frame; one naming a cashout is how a player learns of its auto-cashout
/// (the public feed may not list it).
fn record_balance(frame: &Value, seen: &mut Seen) {
    seen.last_balance = frame["balance"].as_i64().unwrap();
    if let Some(cashout) = frame.get("cashout") {
        seen.wins.push((
            cashout["round"].as_u64().unwrap(),
            u8::try_from(cashout["slot"].as_u64().unwrap()).unwrap(),
            cashout["win"].as_i64().unwrap(),
        ));
    }
}

/// A tick or crash lists at most `LISTED_PER_TICK_MAX` bets and cashouts, largest
/// first. Returns whether a list was full.
fn check_public_lists(frame: &Value) -> bool {
    let mut full = false;
    for (list, ranked_by) in [("bets", "amount"), ("cashouts", "win")] {
        let items = frame.get(list).and_then(Value::as_array);
        let ranks: Vec<i64> = items
            .into_iter()
            .flatten()
            .map(|item| item[ranked_by].as_i64().unwrap())
            .collect();
        assert!(
            ranks.len() <= LISTED_PER_TICK_MAX,
            "{} {list} listed, at most {LISTED_PER_TICK_MAX}: {frame}",
            ranks.len()
        );
        assert!(
            ranks.windows(2).all(|pair| pair[0] >= pair[1]),
            "{list} not largest first: {frame}"
        );
        full |= ranks.len() == LISTED_PER_TICK_MAX;
    }
    full
}

/// Every player saw the same totals at a crash, and they are the sums of what the
/// players were told privately: their `bet_ok`s, and their `cashout_ok`s and `balance`
/// cashouts. Only these players bet, and each saw the crash of every round it bet in.
fn check_crash_totals(all: &[Seen]) {
    let mut totals_by_round: BTreeMap<u64, &Value> = BTreeMap::new();
    for (round, totals) in all.iter().flat_map(|seen| &seen.crash_totals) {
        let first = *totals_by_round.entry(*round).or_insert(totals);
        assert_eq!(first, totals, "round {round}: players saw different totals");
    }
    // Per round: bets, staked, cashouts, won, and the stakes of the bets cashed out.
    let mut told: BTreeMap<u64, (u64, i64, u64, i64, i64)> = BTreeMap::new();
    for seen in all {
        for (round, _, amount) in &seen.bets {
            let entry = told.entry(*round).or_default();
            entry.0 += 1;
            entry.1 += amount;
        }
        for (round, slot, win) in &seen.wins {
            let stake = seen
                .bets
                .iter()
                .find(|(bet_round, bet_slot, _)| bet_round == round && bet_slot == slot)
                .map_or(0, |(_, _, amount)| *amount);
            let entry = told.entry(*round).or_default();
            entry.2 += 1;
            entry.3 += win;
            entry.4 += stake;
        }
    }
    let mut rounds_with_bets = 0;
    for (round, totals) in totals_by_round {
        let (bets, staked, cashouts, won, cashout_stakes) =
            told.get(&round).copied().unwrap_or_default();
        if bets == 0 {
            assert!(totals.is_null(), "round {round} had no bet: {totals}");
            continue;
        }
        rounds_with_bets += 1;
        let expected = json!({"bets": bets, "staked": staked, "cashouts": cashouts, "won": won,
            "cashout_stakes": cashout_stakes});
        assert_eq!(*totals, expected, "round {round}");
    }
    assert!(rounds_with_bets >= ROUNDS - 1, "{rounds_with_bets} rounds");
}

async fn app_crash_point(app: &TestApp, hash: &str) -> u64 {
    let (status, body) = crate::common::http(app.addr, "GET", "/api/fair", &[]).await;
    assert_eq!(status, 200);
    let fair: Value = serde_json::from_str(&body).unwrap();
    aloft::fair::crash_point_hundredths(
        hash,
        fair["salt"].as_str().unwrap(),
        fair["house_edge_bp"].as_u64().unwrap() as u32,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_players_play_three_rounds_and_the_ledger_agrees() {
    let app = TestApp::start_with(|config| {
        config.engine.public_bets_per_tick_max = LISTED_PER_TICK_MAX;
        config.engine.public_cashouts_per_tick_max = LISTED_PER_TICK_MAX;
    })
    .await;
    let app = std::sync::Arc::new(app);
    let mut players = tokio::task::JoinSet::new();
    for index in 0..PLAYERS {
        let app = app.clone();
        players.spawn(async move { play(&app, index).await });
    }
    let mut all = Vec::with_capacity(PLAYERS);
    while let Some(seen) = players.join_next().await {
        all.push(seen.unwrap());
    }
    let ledger = app.ledger();
    let room = &app.config.rooms[0].clone();
    let mut total_bets = 0;
    for seen in &all {
        assert!(seen.crashes.len() >= ROUNDS);
        for (round, slot, amount) in &seen.bets {
            let id = format!("bet:{room}:{round}:{}:{slot}", seen.player);
            let stored = ledger
                .transfer(&id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("no {id}"));
            assert_eq!(stored.transfer.amount_minor, *amount);
            assert_eq!(stored.transfer.debit, Account::Player(seen.player.clone()));
            total_bets += 1;
        }
        let mut wins_by_round: HashMap<u64, i64> = HashMap::new();
        for (round, slot, win) in &seen.wins {
            let id = format!("payout:{room}:{round}:{}:{slot}", seen.player);
            let stored = ledger
                .transfer(&id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("no {id}"));
            assert_eq!(stored.transfer.amount_minor, *win);
            *wins_by_round.entry(*round).or_default() += win;
        }
        // Every payout in the ledger for this player was announced to it.
        for (round, ..) in &seen.bets {
            let prefix = format!("payout:{room}:{round}:{}:", seen.player);
            let paid: i64 = ledger
                .transfers_with_prefix(&prefix)
                .await
                .unwrap()
                .iter()
                .map(|t| t.transfer.amount_minor)
                .sum();
            assert_eq!(
                paid,
                wins_by_round.get(round).copied().unwrap_or(0),
                "{prefix}"
            );
        }
    }
    assert!(
        total_bets >= PLAYERS * (ROUNDS - 1),
        "too few bets acknowledged: {total_bets}"
    );
    assert!(
        all.iter().any(|seen| seen.saw_full_list),
        "no tick reached the list bound: the bound was not exercised"
    );
    check_crash_totals(&all);
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
    let mut app = std::sync::Arc::into_inner(app).expect("players are done");
    app.stop().await;
    // After the graceful stop, each player's balance is exactly what its frames said:
    // start − acknowledged stakes + wins (+ refunds of a round cut by the stop).
    let reopened =
        aloft::ledger::SqliteLedger::open(&app.config.data_dir.join("ledger.db")).unwrap();
    assert_eq!(reopened.total_balance().await.unwrap(), 0);
    let all_bets = reopened
        .transfers_with_prefix(&format!("bet:{room}:"))
        .await
        .unwrap();
    let refunds = reopened.transfers_with_prefix("refund:").await.unwrap();
    for seen in &all {
        let account = Account::Player(seen.player.clone());
        let ledger_bets = all_bets
            .iter()
            .filter(|t| t.transfer.debit == account)
            .count();
        assert_eq!(
            ledger_bets,
            seen.bets.len(),
            "{}: a bet the client was not told of",
            seen.player
        );
        let staked: i64 = seen.bets.iter().map(|(_, _, amount)| amount).sum();
        let won: i64 = seen.wins.iter().map(|(_, _, win)| win).sum();
        let refunded: i64 = refunds
            .iter()
            .filter(|t| t.transfer.credit == account)
            .map(|t| t.transfer.amount_minor)
            .sum();
        let balance = reopened.balance(&account).await.unwrap();
        assert_eq!(
            balance,
            seen.start_balance - staked + won + refunded,
            "{}",
            seen.player
        );
        assert_eq!(
            balance - refunded,
            seen.last_balance,
            "{}: last balance frame",
            seen.player
        );
    }
}
