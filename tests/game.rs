//! 200 real WebSocket players play three full rounds against the real embedded server;
//! every client must see every event in order, and every acknowledged bet and cashout
//! must be exactly what the ledger holds.

mod common;

use std::collections::HashMap;

use aloft::ledger::{Account, Ledger};
use common::{TestApp, next_json, send};
use serde_json::{Value, json};

const PLAYERS: usize = 200;
const ROUNDS: usize = 3;

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
    last_balance: i64,
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
            assert_eq!(
                seq,
                last_seq + 1,
                "player {index}: seq gap or repeat: {frame}"
            );
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
                collect_public_wins(&frame, &player, manual, &mut seen);
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
                collect_public_wins(&frame, &player, manual, &mut seen);
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
            "balance" => seen.last_balance = frame["balance"].as_i64().unwrap(),
            "bet_err" => panic!("player {index}: bet refused: {frame}"),
            "cashout_err" => assert_eq!(frame["code"], "too_late", "{frame}"),
            _ => {}
        }
    }
    // The balance frame of an auto-cashout decided at the last crash may trail it.
    let drain = std::time::Duration::from_millis(300);
    while let Ok(frame) = tokio::time::timeout(drain, next_json(&mut socket)).await {
        if frame["t"] == "balance" {
            seen.last_balance = frame["balance"].as_i64().unwrap();
        }
    }
    seen
}

/// Auto-cashouts are announced publicly; the player learns its win from them.
fn collect_public_wins(frame: &Value, player: &str, manual: bool, seen: &mut Seen) {
    if manual {
        return;
    }
    let Some(cashouts) = frame.get("cashouts").and_then(Value::as_array) else {
        return;
    };
    for cashout in cashouts.iter().filter(|c| c["player"] == player) {
        seen.wins.push((
            frame["round"].as_u64().unwrap(),
            0,
            cashout["win"].as_i64().unwrap(),
        ));
    }
}

async fn app_crash_point(app: &TestApp, hash: &str) -> u64 {
    let (status, body) = common::http(app.addr, "GET", "/api/fair", &[]).await;
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
    let app = std::sync::Arc::new(TestApp::start().await);
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
