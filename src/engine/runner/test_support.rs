//! What the tests of the runner's parts share: a room on a memory bus and an in-memory
//! SQLite ledger, commands sent as a gateway would, and readers of the room's events and
//! of the replies.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, Command, CommandEnvelope, EventEnvelope, ReplyEnvelope, ReplyTo};
use crate::bus::{Delivery, MemoryBus};
use crate::clock::SystemClock;
use crate::config::EngineConfig;
use crate::engine::answer::Answer;
use crate::engine::codec::Codec;
use crate::engine::codec::RecordingCodec;
use crate::engine::event::RoundEvent;
use crate::engine::round::RoomSettings;
use crate::fair;
use crate::fair::FairChain;
use crate::ledger::SqliteLedger;
use crate::ledger::{Account, Ledger, Transfer, TransferId, TransferKind, TransferOutcome};

use super::*;

pub(super) const ROOM: &str = "r1";

pub(super) const GATEWAY: &str = "gw";

pub(super) const SEED: &str = "00000000000000000000000000000000000000000000000000000000000000aa";

/// Longest wait for one event or reply before a test fails.
pub(super) const WAIT_MS: u64 = 10_000;

pub(super) struct Fixture {
    pub(super) bus: Arc<MemoryBus>,
    pub(super) ledger: Arc<SqliteLedger>,
    pub(super) settings: RoomSettings,
    pub(super) deps: EngineDeps,
    /// The engine's codec, to read back what it sent.
    pub(super) codec: Arc<RecordingCodec>,
}

/// A room whose round `round` crashes at a point `wanted` accepts.
pub(super) fn fixture(round: u64, wanted: impl Fn(u64) -> bool) -> Fixture {
    let chain = Arc::new(FairChain::generate(SEED, 1_000).unwrap());
    let hash = chain.round_hash(round).unwrap();
    let salt = (0..100_000)
        .map(|attempt| format!("salt-{attempt}"))
        .find(|salt| wanted(fair::crash_point_hundredths(&hash, salt, 100)))
        .expect("a salt gives a wanted crash point");
    let engine = EngineConfig {
        betting_duration_ms: 200,
        crashed_duration_ms: 100,
        tick_interval_ms: 20,
        growth_rate_per_ms_millionths: 1_000,
        ..EngineConfig::default()
    };
    let settings = RoomSettings {
        room: ROOM.into(),
        salt,
        house_edge_bp: 100,
        engine,
    };
    let bus = Arc::new(MemoryBus::default());
    let ledger = Arc::new(SqliteLedger::open_in_memory().unwrap());
    let codec = Arc::new(RecordingCodec::default());
    let deps = EngineDeps {
        bus: bus.clone(),
        ledger: ledger.clone(),
        chain,
        clock: Arc::new(SystemClock),
        codec: codec.clone(),
        leading: Default::default(),
    };
    Fixture {
        bus,
        ledger,
        settings,
        deps,
        codec,
    }
}

pub(super) async fn apply_one(
    ledger: &SqliteLedger,
    id: &str,
    debit: Account,
    credit: Account,
    amount_minor: i64,
    kind: TransferKind,
) {
    let transfer = Transfer {
        id: id.into(),
        debit,
        credit,
        amount_minor,
        kind,
        multiplier_hundredths: None,
    };
    commit(ledger, transfer).await;
}

/// Applies `transfer` alone and checks that the ledger took it.
pub(super) async fn commit(ledger: &SqliteLedger, transfer: Transfer) {
    let outcomes = ledger.apply_batch(vec![transfer]).await.unwrap();
    assert!(
        matches!(outcomes[0], TransferOutcome::Committed { .. }),
        "{outcomes:?}"
    );
}

pub(super) async fn grant(ledger: &SqliteLedger, player: &str, amount_minor: i64) {
    let id = TransferId::grant(player).to_string();
    let player = Account::Player(player.into());
    apply_one(
        ledger,
        &id,
        Account::Mint,
        player,
        amount_minor,
        TransferKind::Grant,
    )
    .await;
}

pub(super) async fn balance_of(ledger: &SqliteLedger, player: &str) -> i64 {
    ledger
        .balance(&Account::Player(player.into()))
        .await
        .unwrap()
}

pub(super) fn from(player: &str) -> ReplyTo {
    ReplyTo {
        gateway: GATEWAY.into(),
        connection: 7,
        player: player.into(),
    }
}

pub(super) async fn send(bus: &MemoryBus, player: &str, command: Command) {
    let envelope = CommandEnvelope {
        room: ROOM.into(),
        from: from(player),
        command,
    };
    bus.send_command(envelope).await.unwrap();
}

pub(super) fn bet(req: &str, amount_minor: i64, auto_cashout_hundredths: Option<u64>) -> Command {
    Command::Bet {
        req: req.into(),
        amount_minor,
        auto_cashout_hundredths,
        slot: 0,
        name: "Bettor".to_owned(),
    }
}

pub(super) fn cashout(req: &str) -> Command {
    Command::Cashout {
        req: req.into(),
        slot: 0,
    }
}

/// The room's events as a subscriber sees them, every one kept.
pub(super) struct Watcher {
    pub(super) events: BoxStream<'static, Delivery>,
    pub(super) codec: Arc<RecordingCodec>,
    pub(super) seen: Vec<RoundEvent>,
}

impl Watcher {
    pub(super) async fn new(fixture: &Fixture) -> Watcher {
        let events = fixture.bus.subscribe(ROOM).await.unwrap();
        Watcher {
            events,
            codec: fixture.codec.clone(),
            seen: Vec::new(),
        }
    }

    pub(super) fn decode(&self, envelope: &EventEnvelope) -> RoundEvent {
        self.codec
            .decode_event(&envelope.json)
            .expect("the engine's event")
    }

    /// Waits for the first event `wanted` accepts.
    pub(super) async fn until(&mut self, wanted: impl Fn(&RoundEvent) -> bool) -> RoundEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS);
        loop {
            let delivery = tokio::time::timeout_at(deadline, self.events.next())
                .await
                .expect("the event comes in time")
                .expect("the event stream is open");
            let Delivery::Event(envelope) = delivery else {
                panic!("a subscriber that keeps up sees no gap");
            };
            let event = self.decode(&envelope);
            assert_eq!(
                (envelope.seq, envelope.conflatable),
                (event.seq(), event.is_conflatable())
            );
            self.seen.push(event.clone());
            if wanted(&event) {
                return event;
            }
        }
    }

    /// Takes the events already published and checks that every seq came, in order.
    pub(super) fn finish(mut self) -> Vec<RoundEvent> {
        while let Some(Some(Delivery::Event(envelope))) = self.events.next().now_or_never() {
            let event = self.decode(&envelope);
            self.seen.push(event);
        }
        for (index, event) in self.seen.iter().enumerate() {
            assert_eq!(event.seq(), index as u64 + 1, "seq is contiguous from 1");
        }
        self.seen
    }
}

/// The replies to the test's gateway, read back as the engine's answers.
pub(super) struct Replies {
    pub(super) stream: BoxStream<'static, ReplyEnvelope>,
    pub(super) codec: Arc<RecordingCodec>,
}

pub(super) async fn replies_of(fixture: &Fixture) -> Replies {
    Replies {
        stream: fixture.bus.replies(GATEWAY).await.unwrap(),
        codec: fixture.codec.clone(),
    }
}

pub(super) type Engine = tokio::task::JoinHandle<Result<(), EngineError>>;

/// Subscribes to the room's events and the gateway's replies, then starts the engine.
pub(super) async fn start(fixture: &Fixture) -> (Watcher, Replies, CancellationToken, Engine) {
    let watcher = Watcher::new(fixture).await;
    let replies = replies_of(fixture).await;
    let shutdown = CancellationToken::new();
    let settings = fixture.settings.clone();
    let engine = tokio::spawn(run_room(settings, fixture.deps.clone(), shutdown.clone()));
    (watcher, replies, shutdown, engine)
}

pub(super) async fn next_reply(replies: &mut Replies) -> (String, Answer) {
    let reply = tokio::time::timeout(Duration::from_millis(WAIT_MS), replies.stream.next())
        .await
        .expect("the reply comes in time")
        .expect("the reply stream is open");
    (reply.to.player, replies.codec.answer(&reply.json))
}
