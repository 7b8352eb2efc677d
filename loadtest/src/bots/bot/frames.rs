//! How a bot reads what the server sends: public room events (followed with the stream
//! tracker, the feed and totals checked, the crash point and chain link verified) and
//! private frames (hello, snapshot, replies, balances), each applied to its state.

use aloft::protocol::{
    BetCashout, ErrorCode, PastRound, Phase, PublicBet, PublicCashout, RoomEvent, RoundTotals,
    ServerMessage,
};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::bots::bot::open_bets::{Pending, Source};
use crate::bots::bot::{Bot, unix_now_ms};
use crate::bots::connection::{self, Incoming};
use crate::bots::verify::{self, Check, EventKind};
use crate::report::stats::AckedBet;

impl Bot {
    pub(super) fn on_message(&mut self, message: Message) {
        match message {
            Message::Text(text) => {
                self.local.frames_received += 1;
                match connection::decode(text.as_str()) {
                    Ok(Incoming::Event(event)) => self.on_event(event, Instant::now()),
                    Ok(Incoming::Private(message)) => self.on_private(message, Instant::now()),
                    Err(error) => self.fail(Check::BadFrame, format!("{error}: {}", text.as_str())),
                }
            }
            Message::Close(frame) => {
                self.lost = Some(format!("server closed the connection: {frame:?}"));
            }
            Message::Binary(_) => self.fail(Check::BadFrame, "binary frame".to_owned()),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }

    pub(super) fn on_event(&mut self, event: RoomEvent, now: Instant) {
        let kind = EventKind::of(&event);
        match self.stream.on_event(event.seq(), event.round(), kind) {
            Ok(ticks_skipped) => self.local.ticks_conflated += ticks_skipped,
            Err(failure) => self.report(failure),
        }
        match event {
            RoomEvent::Betting { round, ends_at, .. } => self.on_betting(round, ends_at, now),
            RoomEvent::Flying { round, .. } => {
                self.context.stats.note_flying(round);
                self.round = round;
                self.phase = Phase::Flying;
                self.tick_m = 100;
                if self.stopping {
                    self.cash_out_due(u64::MAX, now);
                }
            }
            RoomEvent::Tick {
                round,
                m,
                at,
                bets,
                cashouts,
                totals,
                ..
            } => {
                let lag_ms = unix_now_ms().saturating_sub(at);
                self.local.tick_lags_us.push(lag_ms.saturating_mul(1_000));
                self.check_feed(round, &bets, &cashouts, totals);
                self.on_tick(round, m, &cashouts, now);
            }
            RoomEvent::Crash {
                round,
                m,
                hash,
                cashouts,
                totals,
                ..
            } => {
                self.check_feed(round, &[], &cashouts, totals);
                self.on_crash(round, m, hash, &cashouts, totals);
            }
            // Another player's cancel: the totals went down, which the next ones continue.
            RoomEvent::BetCancelled { round, totals, .. } => {
                self.totals = totals.map(|totals| (round, totals));
            }
            // A paused room opens no round: the bot waits for the next `betting`.
            RoomEvent::Paused { .. }
            | RoomEvent::Resumed { .. }
            | RoomEvent::Limits { .. }
            | RoomEvent::Chat { .. } => {}
        }
    }

    /// The public lists are largest first and the round's totals never go down.
    fn check_feed(
        &mut self,
        round: u64,
        bets: &[PublicBet],
        cashouts: &[PublicCashout],
        totals: Option<RoundTotals>,
    ) {
        if let Err(failure) = verify::check_feed_order(bets, cashouts) {
            self.report(failure);
        }
        let Some(totals) = totals else { return };
        if let Some((totals_round, previous)) = self.totals
            && totals_round == round
            && let Err(failure) = verify::check_totals_grow(round, &previous, &totals)
        {
            self.report(failure);
        }
        self.totals = Some((round, totals));
    }

    fn on_betting(&mut self, round: u64, ends_at_ms: u64, now: Instant) {
        self.release_bets_before(round);
        if self.pending.is_empty()
            && self.late.is_empty()
            && !self.rebase_pending
            && !self.balance_stale
            && self
                .expected_minor
                .is_some_and(|expected| expected != self.last_balance_minor)
        {
            let message = format!(
                "before round {round}: own ledger {:?}, server's last balance {}",
                self.expected_minor, self.last_balance_minor
            );
            self.fail(Check::BalanceDrift, message);
        }
        self.round = round;
        self.phase = Phase::Betting;
        self.tick_m = 100;
        self.plan_bets(round, ends_at_ms, now);
    }

    fn on_tick(&mut self, round: u64, m: u64, cashouts: &[PublicCashout], now: Instant) {
        self.apply_public_cashouts(round, cashouts);
        if self.phase == Phase::Flying && round == self.round {
            self.tick_m = self.tick_m.max(m);
            self.cash_out_due(m, now);
        }
    }

    fn on_crash(
        &mut self,
        round: u64,
        m: u64,
        hash: String,
        cashouts: &[PublicCashout],
        totals: Option<RoundTotals>,
    ) {
        let fair = &self.context.fair;
        let previous = self
            .last_crash
            .as_ref()
            .map(|(round, hash)| (*round, hash.as_str()));
        let failures = [
            fair.check_crash(round, m, &hash).err(),
            fair.check_link(previous, round, &hash).err(),
        ];
        for failure in failures.into_iter().flatten() {
            self.report(failure);
        }
        if round == self.round && self.tick_m > m {
            self.fail(
                Check::TickAboveCrash,
                format!("round {round} ticked {} but crashed at {m}", self.tick_m),
            );
        }
        self.apply_public_cashouts(round, cashouts);
        let own: Vec<i64> = self
            .slots
            .iter()
            .flatten()
            .filter(|bet| bet.round == round && bet.acked)
            .map(|bet| bet.amount_minor)
            .collect();
        if let Err(failure) = verify::check_totals_count(round, totals.as_ref(), &own) {
            self.report(failure);
        }
        for slot in 0..self.slots.len() {
            let Some(bet) = self.slots[slot].as_mut().filter(|bet| bet.round == round) else {
                continue;
            };
            // Payouts are reported privately, maybe only after the crash (replies follow
            // the ledger commit): the bet stays until the next round opens.
            bet.crashed_at = Some(m);
        }
        self.phase = Phase::Crashed;
        self.last_crash = Some((round, hash));
        self.context.stats.note_crash(round);
    }

    pub(super) fn on_private(&mut self, message: ServerMessage, now: Instant) {
        match message {
            ServerMessage::Hello {
                player,
                balance,
                recovered,
                ..
            } => self.on_hello(&player, balance, recovered),
            ServerMessage::Snapshot {
                epoch,
                seq,
                round,
                phase,
                ends_at,
                history,
                totals,
                ..
            } => {
                self.totals = totals.map(|totals| (round, totals));
                self.epoch = epoch;
                self.on_snapshot(seq, round, phase, ends_at, &history, now);
            }
            ServerMessage::Error { code, message } => {
                self.fail(Check::ErrorFrame, format!("{}: {message}", code.as_str()))
            }
            ServerMessage::Pong { .. } => {}
            reply => self.on_reply(reply, now),
        }
    }

    /// Answers to the bot's requests, and the balance notices of the engine's cashouts.
    fn on_reply(&mut self, reply: ServerMessage, now: Instant) {
        match reply {
            ServerMessage::BetOk {
                req,
                round,
                slot,
                amount,
                auto,
                balance,
            } => {
                let fresh = self.is_fresh_reply(&req, true);
                self.on_bet_ok(&req, round, slot, amount, auto, now);
                self.observe_balance(balance, fresh);
            }
            ServerMessage::CashoutOk {
                req,
                round,
                slot,
                m,
                win,
                balance,
            } => {
                let fresh = self.is_fresh_reply(&req, false);
                self.on_cashout_ok(
                    &req,
                    &BetCashout {
                        round,
                        slot,
                        m,
                        win,
                    },
                    now,
                );
                self.observe_balance(balance, fresh);
            }
            ServerMessage::BetErr { req, code, message } => {
                self.on_reject(&req, true, code, &message, now)
            }
            ServerMessage::CashoutErr { req, code, message } => {
                self.on_reject(&req, false, code, &message, now)
            }
            ServerMessage::Balance {
                balance, cashout, ..
            } => self.on_balance(balance, cashout),
            // Not replies: `on_private` handles them.
            ServerMessage::Hello { .. }
            | ServerMessage::Snapshot { .. }
            | ServerMessage::Error { .. }
            | ServerMessage::Pong { .. } => {}
            // Answers to requests a bot never sends: an operator's control, a cancel, a name.
            ServerMessage::ControlOk { .. }
            | ServerMessage::ControlErr { .. }
            | ServerMessage::CancelOk { .. }
            | ServerMessage::CancelErr { .. }
            | ServerMessage::NameOk { .. }
            | ServerMessage::NameErr { .. } => {
                self.fail(Check::ReplyMismatch, "not an answer to a bot".into())
            }
        }
    }

    /// A balance the bot did not ask for: with the cashout the engine made, or a refund.
    fn on_balance(&mut self, balance: i64, cashout: Option<BetCashout>) {
        if let Some(cashout) = cashout {
            self.apply_win(&cashout, Source::Engine);
        }
        self.observe_balance(balance, true);
    }

    /// The engine's answer to the bot's own `cashout` request.
    fn on_cashout_ok(&mut self, req: &str, cashout: &BetCashout, now: Instant) {
        let Some(request) = self.take_pending(req, false, now) else {
            return;
        };
        self.local.cashouts_acked += 1;
        if request.slot != cashout.slot {
            let message = format!(
                "cashout {req} of slot {} answered for slot {}",
                request.slot, cashout.slot
            );
            self.fail(Check::ReplyMismatch, message);
        }
        self.apply_win(cashout, Source::Reply);
    }

    fn on_hello(&mut self, player: &str, balance: i64, recovered: Option<bool>) {
        if player != self.player {
            self.fail(Check::ReplyMismatch, format!("hello for player {player}"));
        }
        if std::mem::take(&mut self.resuming) {
            self.on_resume_answer(recovered);
        }
        if self.expected_minor.is_none() {
            if balance != self.granted_minor {
                let message = format!(
                    "hello balance {balance}, guest granted {}",
                    self.granted_minor
                );
                self.fail(Check::ReplyMismatch, message);
            }
            self.expected_minor = Some(balance);
        }
        self.observe_balance(balance, true);
    }

    /// Counts how the gateway answered a reconnection with `since`.
    fn on_resume_answer(&mut self, recovered: Option<bool>) {
        let stats = self.context.stats.clone();
        let counter = match recovered {
            Some(true) => &stats.resumes_recovered,
            Some(false) => &stats.resumes_snapshot,
            None => {
                let message = "hello without `recovered` after a reconnection with `since`";
                return self.fail(Check::ResumeUnanswered, message.to_owned());
            }
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn on_snapshot(
        &mut self,
        seq: u64,
        round: u64,
        phase: Phase,
        ends_at_ms: Option<u64>,
        history: &[PastRound],
        now: Instant,
    ) {
        self.stream.on_snapshot(seq, round, phase);
        for failure in self.context.fair.check_history(history) {
            self.report(failure);
        }
        self.last_crash = history
            .iter()
            .max_by_key(|past| past.round)
            .map(|past| (past.round, past.hash.clone()));
        self.round = round;
        self.phase = phase;
        self.tick_m = 100;
        if let (Phase::Betting, Some(ends_at_ms)) = (phase, ends_at_ms) {
            self.plan_bets(round, ends_at_ms, now);
        }
    }

    fn on_bet_ok(
        &mut self,
        req: &str,
        round: u64,
        slot: u8,
        amount_minor: i64,
        auto: Option<u64>,
        now: Instant,
    ) {
        let Some(request) = self.take_pending(req, true, now) else {
            return;
        };
        self.local.bets_acked += 1;
        let slot_index = usize::from(request.slot);
        let Some(bet) = self.slots[slot_index].as_mut() else {
            return;
        };
        bet.acked = true;
        let asked = (bet.round, request.slot, bet.amount_minor, bet.exit.auto());
        let stake_minor = bet.amount_minor;
        if let Some(expected) = self.expected_minor.as_mut() {
            *expected -= stake_minor;
        }
        if asked != (round, slot, amount_minor, auto) {
            let message = format!(
                "bet {req}: asked (round, slot, amount, auto) {asked:?}, got {:?}",
                (round, slot, amount_minor, auto)
            );
            self.fail(Check::ReplyMismatch, message);
        }
        self.context.stats.record_acked_bet(AckedBet {
            round,
            player: self.player.clone(),
            slot,
            amount_minor,
        });
    }

    fn on_reject(&mut self, req: &str, is_bet: bool, code: ErrorCode, message: &str, now: Instant) {
        let Some(request) = self.take_pending(req, is_bet, now) else {
            return;
        };
        let kind = if is_bet { "bet" } else { "cashout" };
        self.context.stats.record_reject(kind, code.as_str());
        if code == ErrorCode::Unavailable && self.context.faults_expected {
            return self.on_unavailable(request, now);
        }
        if is_bet {
            self.slots[usize::from(request.slot)] = None;
        }
        let expected = match code {
            ErrorCode::WrongPhase | ErrorCode::Overloaded => true,
            ErrorCode::Internal => is_bet && self.context.faults_expected,
            ErrorCode::TooLate | ErrorCode::NoActiveBet => !is_bet,
            _ => false,
        };
        if !expected {
            self.fail(
                Check::UnexpectedReject,
                format!("{kind} {req}: {}: {message}", code.as_str()),
            );
        }
    }

    /// Removes the request `req` from those in flight and records its latency.
    fn take_pending(&mut self, req: &str, is_bet: bool, now: Instant) -> Option<Pending> {
        let position = self
            .pending
            .iter()
            .position(|request| request.req == req && request.is_bet == is_bet);
        let Some(position) = position else {
            self.fail(
                Check::UnknownReply,
                format!("reply to unknown request {req:?}"),
            );
            return None;
        };
        let request = self.pending.swap_remove(position);
        let latency_us =
            u64::try_from(now.duration_since(request.sent_at).as_micros()).unwrap_or(u64::MAX);
        self.local.ack_latencies_us.push(latency_us);
        Some(request)
    }

    /// Whether a reply to `req` carries a balance of now: it answers a request that
    /// was not re-sent.
    fn is_fresh_reply(&self, req: &str, is_bet: bool) -> bool {
        (self.pending.iter())
            .any(|request| request.req == req && request.is_bet == is_bet && !request.resent)
    }

    /// Notes a balance the server sent. A `fresh` one (not from a verbatim replay) is the
    /// server's balance now, and re-bases the own ledger after a reconnection or an
    /// unknown outcome once no re-sent request waits; a replayed one may predate what the
    /// bot booked since, so it only marks the last balance stale.
    fn observe_balance(&mut self, balance_minor: i64, fresh: bool) {
        if balance_minor < 0 {
            self.fail(Check::NegativeBalance, format!("balance {balance_minor}"));
        }
        if !fresh {
            self.balance_stale = true;
            return;
        }
        self.last_balance_minor = balance_minor;
        self.balance_stale = false;
        if self.rebase_pending && !self.pending.iter().any(|request| request.resent) {
            self.expected_minor = Some(balance_minor);
            self.rebase_pending = false;
        }
    }
}
