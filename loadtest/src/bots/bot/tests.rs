//! The bot's state machine driven by frames, with no socket: what it sends, what it
//! books in its own ledger and what it reports as failures.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use aloft::protocol::{BetCashout, ClientMessage, ErrorCode, Phase, RoomEvent, ServerMessage};
use tokio::time::Instant;

use super::*;
use crate::bots::behaviour::{Exit, Stake};
use crate::bots::verify::FairCheck;

const GRANTED_MINOR: i64 = 1_000;
const ROUND: u64 = 7;

fn bot(faults_expected: bool) -> Bot {
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
    let end_at = Instant::now() + Duration::from_secs(3_600);
    let context = RunContext {
        api: Api::new(server),
        fair: FairCheck {
            salt: String::new(),
            commitment: String::new(),
            house_edge_bp: 100,
        },
        stats: Arc::new(Stats::new()),
        servers: vec![server],
        reconnect_ms_max: None,
        faults_expected,
        room: "main".to_owned(),
        end_at,
        settle_deadline: end_at,
        stop_deadline: end_at,
    };
    let mut bot = Bot::new(Arc::new(context), 1, "p1".to_owned(), GRANTED_MINOR, 42);
    bot.on_private(hello(GRANTED_MINOR), Instant::now());
    bot.on_private(snapshot_betting(), Instant::now());
    bot.plan = None;
    bot
}

fn hello(balance: i64) -> ServerMessage {
    ServerMessage::Hello {
        player: "p1".to_owned(),
        balance,
        server_time: 0,
        proto: 1,
        room: "main".to_owned(),
        growth: 60,
        recovered: None,
    }
}

fn snapshot_betting() -> ServerMessage {
    ServerMessage::Snapshot {
        room: "main".to_owned(),
        epoch: Some(1),
        seq: 10,
        round: ROUND,
        phase: Phase::Betting,
        m: 100,
        ends_at: Some(unix_now_ms() + 60_000),
        started_at: None,
        history: Vec::new(),
        bets: Vec::new(),
        totals: None,
        paused: false,
        chat: Vec::new(),
    }
}

/// Places a bet of 100 in slot 0 with an auto-cashout at 2.00; returns its request.
fn place_bet(bot: &mut Bot) -> ClientMessage {
    place_bet_in(bot, 0)
}

fn place_bet_in(bot: &mut Bot, slot: u8) -> ClientMessage {
    let stake = Stake {
        slot,
        amount_minor: 100,
        exit: Exit::Auto(200),
    };
    bot.place_bet(stake, Instant::now());
    bot.outbox.pop().expect("the bet is queued")
}

fn req_of(message: &ClientMessage) -> String {
    match message {
        ClientMessage::Bet { req, .. } | ClientMessage::Cashout { req, .. } => req.clone(),
        other => panic!("not a request: {other:?}"),
    }
}

fn unavailable(req: &str) -> ServerMessage {
    ServerMessage::BetErr {
        req: req.to_owned(),
        code: ErrorCode::Unavailable,
        message: "the ledger is failing".to_owned(),
    }
}

fn failures(bot: &Bot) -> Vec<String> {
    bot.context.stats.failures().first_messages
}

#[test]
fn an_unavailable_bet_is_sent_again_with_its_req_and_its_answer_books_the_stake() {
    let mut bot = bot(true);
    let bet = place_bet(&mut bot);
    let req = req_of(&bet);

    bot.on_private(unavailable(&req), Instant::now());
    assert_eq!(bot.outbox, vec![bet], "the same request, the same req");
    bot.outbox.clear();
    let bet_ok = ServerMessage::BetOk {
        req,
        round: ROUND,
        slot: 0,
        amount: 100,
        auto: Some(200),
        balance: GRANTED_MINOR - 100,
    };
    bot.on_private(bet_ok, Instant::now());

    assert_eq!(failures(&bot), Vec::<String>::new());
    assert_eq!(bot.expected_minor, Some(GRANTED_MINOR - 100));
    assert!(bot.slots[0].as_ref().is_some_and(|bet| bet.acked));
    assert!(bot.pending.is_empty() && !bot.rebase_pending);
    let stats = &bot.context.stats;
    assert_eq!(Stats::get(&stats.unavailable_answers), 1);
    assert_eq!(Stats::get(&stats.unavailable_retries), 1);
    assert_eq!(Stats::get(&stats.outcomes_unknown), 0);
}

fn bet_ok(req: &str, slot: u8, balance: i64) -> ServerMessage {
    ServerMessage::BetOk {
        req: req.to_owned(),
        round: ROUND,
        slot,
        amount: 100,
        auto: Some(200),
        balance,
    }
}

#[test]
fn a_retried_bets_replayed_balance_is_not_taken_for_the_servers_last() {
    let mut bot = bot(true);
    let first = req_of(&place_bet_in(&mut bot, 0));
    let second = req_of(&place_bet_in(&mut bot, 1));

    // The engine took the first bet (balance 900) but its answer was lost: unavailable.
    bot.on_private(unavailable(&first), Instant::now());
    bot.on_private(bet_ok(&second, 1, GRANTED_MINOR - 200), Instant::now());
    // The retry is answered with the first answer, balance and all.
    bot.on_private(bet_ok(&first, 0, GRANTED_MINOR - 100), Instant::now());

    assert_eq!(failures(&bot), Vec::<String>::new());
    assert_eq!(bot.expected_minor, Some(GRANTED_MINOR - 200));
    assert_eq!(
        bot.last_balance_minor,
        GRANTED_MINOR - 200,
        "not the replay's"
    );
}

#[test]
fn an_unavailable_bet_after_its_phase_is_unknown_until_a_balance_notice_rebases() {
    let mut bot = bot(true);
    let req = req_of(&place_bet(&mut bot));
    let flying = RoomEvent::Flying {
        seq: 11,
        round: ROUND,
        started_at: unix_now_ms(),
    };
    bot.on_event(flying, Instant::now());

    bot.on_private(unavailable(&req), Instant::now());
    assert!(bot.outbox.is_empty(), "too late to send the bet again");
    assert!(bot.rebase_pending && bot.slots[0].is_none());
    // The engine had taken the stake: the auto-cashout's notice names the bet.
    let notice = ServerMessage::Balance {
        balance: GRANTED_MINOR + 100,
        cashout: Some(BetCashout {
            round: ROUND,
            slot: 0,
            m: 200,
            win: 200,
        }),
        refund: None,
    };
    bot.on_private(notice, Instant::now());

    assert_eq!(failures(&bot), Vec::<String>::new());
    assert_eq!(bot.expected_minor, Some(GRANTED_MINOR + 100), "re-based");
    assert!(!bot.rebase_pending);
    assert_eq!(Stats::get(&bot.context.stats.outcomes_unknown), 1);
}

#[test]
fn a_second_unavailable_leaves_the_outcome_unknown() {
    let mut bot = bot(true);
    let req = req_of(&place_bet(&mut bot));

    bot.on_private(unavailable(&req), Instant::now());
    bot.outbox.clear();
    bot.on_private(unavailable(&req), Instant::now());

    assert!(bot.outbox.is_empty(), "retried once only");
    assert!(bot.rebase_pending && bot.pending.is_empty());
    assert_eq!(failures(&bot), Vec::<String>::new());
    assert_eq!(Stats::get(&bot.context.stats.outcomes_unknown), 1);
}

#[test]
fn unavailable_without_faults_is_an_unexpected_reject() {
    let mut bot = bot(false);
    let req = req_of(&place_bet(&mut bot));

    bot.on_private(unavailable(&req), Instant::now());

    assert!(bot.outbox.is_empty());
    let failures = failures(&bot);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].starts_with("unexpected_reject"), "{failures:?}");
    assert_eq!(Stats::get(&bot.context.stats.unavailable_retries), 0);
}
