//! Chat traffic beside the ticks (`--chat-messages-per-second N --chatters K`): K of the
//! receiving connections are chatters, each its own guest player (the server limits chat
//! per player, about 1 message per second after a burst of 5), sending in turn so that
//! together they send N messages per second, evenly spaced. Every chat text carries its
//! send time and its chatter (`lt <unix µs> <chatter> <counter>`), so every socket that
//! receives the room's `chat` event measures its delivery latency on the generator's
//! clock. Only aloft has chat; the floor and the peers run without it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::api::Api;
use crate::fanout::wire;
use crate::report::chat::ChatReport;
use crate::report::latency::latency_percentiles;

/// Most chatters: each is a guest created before the run.
const CHATTERS_MAX: u64 = 1_000;
/// Chat messages one player may send per second, sustained (the server's limit).
pub const MESSAGES_PER_SECOND_PER_CHATTER_MAX: u64 = 1;
/// How every chat text the generator sends starts.
const TEXT_TAG: &str = "lt";
/// How a room's `chat` event starts on the wire (the server writes `t` first), so a
/// connection that parses nothing else can keep just those frames.
pub const CHAT_EVENT_PREFIX: &[u8] = br#"{"t":"chat""#;
/// The error code of a chat message over the per-player limit.
const RATE_LIMITED_CODE: &str = "chat_rate_limited";
/// Largest chat latency the histogram tells apart, in microseconds (60 s).
const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant figures of the latency histogram.
const LATENCY_SIGNIFICANT_FIGURES: u8 = 3;

/// The chat load of a fan-out run, shared with `compare`.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ChatArgs {
    /// Chat messages per second sent by all chatters together (aloft only); 0 = no chat.
    #[arg(long, default_value_t = 0)]
    pub chat_messages_per_second: u64,
    /// Receiving connections that send the chat, each its own guest player (1 to 1,000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=CHATTERS_MAX))]
    pub chatters: u64,
}

impl ChatArgs {
    /// No chat, for servers that have none.
    pub const OFF: ChatArgs = ChatArgs {
        chat_messages_per_second: 0,
        chatters: 1,
    };

    pub fn is_on(&self) -> bool {
        self.chat_messages_per_second > 0
    }

    /// Fails when the chat load cannot run as asked: more messages than the chatters may
    /// send within the per-player limit, more chatters than connections, or a server
    /// without chat.
    pub fn check(&self, conns: u64, server: &str, server_has_chat: bool) -> anyhow::Result<()> {
        if !self.is_on() {
            return Ok(());
        }
        let (rate, chatters) = (self.chat_messages_per_second, self.chatters);
        ensure!(
            rate <= chatters * MESSAGES_PER_SECOND_PER_CHATTER_MAX,
            "--chat-messages-per-second {rate} needs at least {rate} chatters (--chatters \
             {chatters}): a player may send {MESSAGES_PER_SECOND_PER_CHATTER_MAX} chat message \
             per second"
        );
        ensure!(
            chatters <= conns,
            "--chatters {chatters} is more than the {conns} connections they are part of"
        );
        ensure!(
            server_has_chat,
            "{server} has no chat: --chat-messages-per-second needs aloft"
        );
        Ok(())
    }

    /// Time between two messages of one chatter.
    fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.chatters as f64 / self.chat_messages_per_second as f64)
    }

    /// The sender of chatter `rank`, starting at `start`: chatters take turns, one
    /// message every 1/N s in all.
    pub fn sender(&self, rank: u64, start: Instant) -> ChatSender {
        let turn = Duration::from_secs_f64(rank as f64 / self.chat_messages_per_second as f64);
        ChatSender {
            rank,
            interval: self.interval(),
            next_due: start + turn,
            counter: 0,
        }
    }
}

/// The text of chatter `chatter`'s message number `counter`, sent at `sent_at_us`.
pub fn chat_text(sent_at_us: u64, chatter: u64, counter: u64) -> String {
    format!("{TEXT_TAG} {sent_at_us} {chatter} {counter}")
}

/// Who sent a generator's chat text, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatStamp {
    pub sent_at_us: u64,
    pub chatter: u64,
}

/// The stamp of a text [`chat_text`] wrote; `None` for any other text.
pub fn parse_chat_text(text: &str) -> Option<ChatStamp> {
    let mut words = text.split(' ');
    if words.next()? != TEXT_TAG {
        return None;
    }
    let sent_at_us = words.next()?.parse().ok()?;
    let chatter = words.next()?.parse().ok()?;
    let _counter: u64 = words.next()?.parse().ok()?;
    words.next().is_none().then_some(ChatStamp {
        sent_at_us,
        chatter,
    })
}

/// One chatter's sending: its turn, and the next message due.
#[derive(Debug)]
pub struct ChatSender {
    pub rank: u64,
    interval: Duration,
    pub next_due: Instant,
    counter: u64,
}

impl ChatSender {
    /// Sends the message due, stamped `now_us` (unix µs), counting it when `measuring`,
    /// and schedules the next one at its turn; turns already missed (the task ran late)
    /// are skipped, never sent in a burst the per-player limit would refuse.
    pub async fn send(
        &mut self,
        stream: &mut TcpStream,
        tally: &ChatTally,
        (now_us, measuring): (u64, bool),
    ) -> anyhow::Result<()> {
        let text = chat_text(now_us, self.rank, self.counter);
        let message = serde_json::json!({"t": "chat", "text": text}).to_string();
        stream
            .write_all(&wire::client_text_frame(message.as_bytes()))
            .await
            .context("sending a chat message")?;
        if measuring {
            tally.sent.fetch_add(1, Ordering::Relaxed);
        }
        self.counter += 1;
        self.next_due = next_turn(self.next_due, self.interval, Instant::now());
        Ok(())
    }
}

/// The first turn after `due` that is still ahead of `now`, a whole number of
/// `interval`s later.
fn next_turn(due: Instant, interval: Duration, now: Instant) -> Instant {
    let mut next = due + interval;
    while next <= now {
        next += interval;
    }
    next
}

/// The chat figures every connection adds to, over the measured window.
pub struct ChatTally {
    pub sent: AtomicU64,
    /// `chat` events received, on every connection (the sender's own echo included).
    pub delivered: AtomicU64,
    pub refused_rate_limited: AtomicU64,
    /// Chat messages answered with another error (e.g. `unknown_type` from a server
    /// without chat).
    pub refused_other: AtomicU64,
    pub first_refusal_code: Mutex<Option<String>>,
    /// Chatter send → receipt at every other socket, in microseconds.
    pub latency_us: Mutex<Histogram<u64>>,
}

impl ChatTally {
    pub fn new() -> ChatTally {
        let histogram = Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_FIGURES)
            .expect("constant histogram bounds are valid");
        ChatTally {
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            refused_rate_limited: AtomicU64::new(0),
            refused_other: AtomicU64::new(0),
            first_refusal_code: Mutex::new(None),
            latency_us: Mutex::new(histogram),
        }
    }

    /// A `chat` event with `text` received at `received_at_us` by a connection that is
    /// chatter `own_chatter` (if any): its latency unless it is the connection's own
    /// message coming back.
    pub fn note_delivered(
        &self,
        text: Option<&str>,
        own_chatter: Option<u64>,
        received_at_us: u64,
    ) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let Some(stamp) = text.and_then(parse_chat_text) else {
            return;
        };
        if Some(stamp.chatter) == own_chatter {
            return;
        }
        let latency_us = received_at_us.saturating_sub(stamp.sent_at_us).max(1);
        let mut histogram = self.latency_us.lock().expect("histogram lock");
        histogram.saturating_record(latency_us);
    }

    /// An `error` frame answering a chatter's message.
    pub fn note_refused(&self, code: Option<&str>) {
        if code == Some(RATE_LIMITED_CODE) {
            self.refused_rate_limited.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.refused_other.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_refusal_code.lock().expect("refusal lock");
        first.get_or_insert_with(|| code.unwrap_or("(no code)").to_owned());
    }
}

/// The chat figures of a window of `window_seconds`, as counted from its opening (the
/// counters start at zero and count only inside the window).
pub fn report(args: &ChatArgs, tally: &ChatTally, window_seconds: f64) -> ChatReport {
    let sent = tally.sent.load(Ordering::Relaxed);
    let delivered = tally.delivered.load(Ordering::Relaxed);
    ChatReport {
        messages_per_second_requested: args.chat_messages_per_second,
        chatters: args.chatters,
        messages_sent: sent,
        messages_per_second_sent: sent as f64 / window_seconds.max(f64::MIN_POSITIVE),
        frames_delivered: delivered,
        deliveries_per_message: (sent > 0).then(|| delivered as f64 / sent as f64),
        refused_rate_limited: tally.refused_rate_limited.load(Ordering::Relaxed),
        refused_other: tally.refused_other.load(Ordering::Relaxed),
        first_refusal_code: tally
            .first_refusal_code
            .lock()
            .expect("refusal lock")
            .clone(),
        latency: latency_percentiles(&tally.latency_us.lock().expect("histogram lock")),
    }
}

/// The upgrade paths of `chatters` new guest players: `path` (which has a query) with
/// each one's token.
pub async fn chatter_paths(
    server: std::net::SocketAddr,
    path: &str,
    chatters: u64,
) -> anyhow::Result<Vec<String>> {
    let api = Api::new(server);
    let mut paths = Vec::new();
    for _ in 0..chatters {
        let guest = api.guest().await.context("creating a chatter's guest")?;
        paths.push(format!("{path}&token={}", guest.token));
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(rate: u64, chatters: u64) -> ChatArgs {
        ChatArgs {
            chat_messages_per_second: rate,
            chatters,
        }
    }

    #[test]
    fn flags_over_the_per_player_limit_are_refused() {
        let error = chat(51, 50).check(2_000, "aloft", true).unwrap_err();
        assert!(
            error.to_string().contains("needs at least 51 chatters"),
            "{error}"
        );
        chat(50, 50).check(2_000, "aloft", true).unwrap();
        chat(20, 50).check(2_000, "aloft", true).unwrap();
        let error = chat(20, 50).check(40, "aloft", true).unwrap_err();
        assert!(
            error.to_string().contains("more than the 40 connections"),
            "{error}"
        );
        let error = chat(20, 50).check(2_000, "floor", false).unwrap_err();
        assert!(error.to_string().contains("floor has no chat"), "{error}");
        // Off is always fine, even where there is no chat.
        chat(0, 50).check(1, "floor", false).unwrap();
        ChatArgs::OFF.check(1, "uws", false).unwrap();
    }

    #[test]
    fn chatters_take_turns_within_their_own_limit() {
        let start = Instant::now();
        let args = chat(20, 50);
        let senders: Vec<ChatSender> = (0..50).map(|rank| args.sender(rank, start)).collect();
        assert_eq!(senders[0].next_due, start);
        assert_eq!(senders[1].next_due - start, Duration::from_millis(50));
        assert_eq!(senders[49].next_due - start, Duration::from_millis(2_450));
        // Each chatter sends every 2.5 s: 50 of them make 20 per second.
        assert_eq!(senders[7].interval, Duration::from_millis(2_500));
        assert!(chat(50, 50).interval() >= Duration::from_secs(1));
    }

    #[test]
    fn missed_turns_are_skipped_not_sent_in_a_burst() {
        let due = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(next_turn(due, second, due), due + second);
        assert_eq!(
            next_turn(due, second, due + Duration::from_millis(3_500)),
            due + 4 * second
        );
    }

    #[test]
    fn chat_texts_carry_their_send_time_and_chatter() {
        let text = chat_text(1_765_000_000_123_456, 7, 42);
        assert_eq!(text, "lt 1765000000123456 7 42");
        assert!(text.chars().count() <= 200);
        assert_eq!(
            parse_chat_text(&text),
            Some(ChatStamp {
                sent_at_us: 1_765_000_000_123_456,
                chatter: 7
            })
        );
        for other in ["hello", "lt 1 2", "lt x 2 3", "lt 1 2 3 4", "LT 1 2 3", ""] {
            assert_eq!(parse_chat_text(other), None, "{other:?}");
        }
    }

    #[test]
    fn latency_counts_every_other_socket_and_refusals_by_code() {
        let tally = ChatTally::new();
        let text = chat_text(1_000_000, 3, 0);
        tally.note_delivered(Some(&text), None, 1_002_500);
        tally.note_delivered(Some(&text), Some(4), 1_004_000);
        // The sender's own echo is delivered, but is no latency sample.
        tally.note_delivered(Some(&text), Some(3), 1_900_000);
        // Someone else's words: delivered, no sample.
        tally.note_delivered(Some("gg"), None, 1_900_000);
        assert_eq!(tally.delivered.load(Ordering::Relaxed), 4);
        let histogram = tally.latency_us.lock().unwrap();
        assert_eq!(histogram.len(), 2);
        assert!(histogram.equivalent(histogram.max(), 4_000));
        assert!(histogram.equivalent(histogram.min(), 2_500));
        drop(histogram);
        tally.note_refused(Some("chat_rate_limited"));
        tally.note_refused(Some("unknown_type"));
        tally.note_refused(Some("bad_json"));
        assert_eq!(tally.refused_rate_limited.load(Ordering::Relaxed), 1);
        assert_eq!(tally.refused_other.load(Ordering::Relaxed), 2);
        let first = tally.first_refusal_code.lock().unwrap().clone();
        assert_eq!(first.as_deref(), Some("unknown_type"));
    }
}
