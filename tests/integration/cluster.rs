//! Cluster mode end to end: the real binary as `aloft migrate`, two `aloft engine` and
//! three `aloft gateway` processes over a Redis and a PostgreSQL database of the test's
//! own (`tests/integration/cluster/harness.rs`). Players take a token from any gateway and play on
//! any other; every gateway serves the same rounds byte for byte; the standby engine
//! finishes the round of a leader killed in flight; a client that reconnects to another
//! gateway with `?since=&epoch=` misses nothing; the operator console of any gateway
//! shows both engines, the three gateways, who leads the room and a failover
//! (`cluster/console.rs`).
//!
//! They need redis-server and PostgreSQL (see README.md): without them they fail with a
//! message, never skip. They run one at a time: a cluster is five processes, and the
//! machine may have two cores.

mod console;
mod harness;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore, mpsc, watch};

use crate::common::{Socket, guest_at, next_text, open_socket, send};
use harness::{Cluster, GATEWAYS, HOUSE_EDGE_BP, Lease, ROOM, Rounds};

/// One cluster at a time.
pub(crate) static SERIAL: Mutex<()> = Mutex::const_new(());

/// Fast rounds: 2x in about 1.2 s, ten ticks a second, and betting long enough for
/// hundreds of players on a shared machine.
pub(crate) const FAST_ROUNDS: Rounds = Rounds {
    other_rooms: &[],
    betting_duration_ms: 2_000,
    tick_interval_ms: 100,
    crashed_duration_ms: 500,
    growth_rate_per_ms_millionths: 600,
};
/// Longest wait for one round to be played: betting and a flight to 1000x at the
/// slowest growth used here.
const ROUND_WAIT_MS: u64 = 60_000;
/// Longest wait for the database to journal a round seen ending on a socket.
const JOURNAL_WAIT_MS: u64 = 10_000;
/// Pause between polls of the database or the lease.
const POLL_MS: u64 = 50;

/// Players of the first test, spread evenly over the gateways.
const CLIENTS: usize = 300;
/// Rounds every player of the first test bets in.
const PLAYED_ROUNDS: u64 = 3;
/// The first `GATEWAYS` players (one per gateway) stake this each round: bets a public
/// feed bounded to the largest bets of a tick still lists.
const WHALE_STAKE_MINOR: i64 = 20_000;
/// Guests created and sockets opened at once.
const CONNECTS_AT_ONCE: usize = 16;

/// Rounds of the failover test: 2x in about 2.3 s, so the round is still flying when
/// the leader dies, and often when the standby takes over.
const FAILOVER_ROUNDS: Rounds = Rounds {
    growth_rate_per_ms_millionths: 300,
    ..FAST_ROUNDS
};
/// Players of the failover test.
const FAILOVER_PLAYERS: usize = 12;
const FAILOVER_STAKE_MINOR: i64 = 1_000;
/// Auto-cashouts of the failover players, by index modulo 4. The leader dies as the
/// round takes off, so 1.5x (at 1.35 s) and 2x (2.3 s) are reached while no engine
/// leads, and 5x (5.4 s) after the takeover; bets without one only lose.
const FAILOVER_AUTOS: [Option<u64>; 4] = [None, Some(150), Some(200), Some(500)];
/// Longest wait for the standby to take the lease: the lease TTL (3 s by default), a
/// standby poll (0.5 s) and a generous margin for a loaded machine.
const TAKEOVER_WAIT_MS: u64 = 15_000;

/// How long the reconnecting client stays away.
const AWAY_MS: u64 = 2_000;

/// A text frame as received: its exact text (public events are compared byte for byte)
/// and its JSON.
#[derive(Debug, Clone)]
struct Frame {
    text: String,
    value: Value,
}

impl Frame {
    fn kind(&self) -> &str {
        self.value["t"].as_str().unwrap_or_default()
    }

    /// The `seq` of a public event (a snapshot carries one too, but is private).
    fn public_seq(&self) -> Option<u64> {
        match self.kind() {
            "snapshot" => None,
            _ => self.value["seq"].as_u64(),
        }
    }

    fn round(&self) -> Option<u64> {
        self.value["round"].as_u64()
    }
}

async fn next_frame(socket: &mut Socket) -> Frame {
    let text = next_text(socket).await;
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("a frame that is not JSON ({error}): {text}"));
    Frame { text, value }
}

async fn next_of_kind(socket: &mut Socket, kind: &str) -> Frame {
    loop {
        let frame = next_frame(socket).await;
        if frame.kind() == kind {
            return frame;
        }
    }
}

async fn within<T>(wait_ms: u64, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_millis(wait_ms), future)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {wait_ms} ms"))
}

/// A new guest from `gateway`: (token, player).
async fn guest(gateway: SocketAddr) -> (String, String) {
    let (token, player, _) = guest_at(gateway).await;
    (token, player)
}

/// Opens a socket with `token` and reads its hello and snapshot.
async fn join(gateway: SocketAddr, token: &str) -> (Socket, Frame, Frame) {
    let mut socket = open_socket(gateway, &format!("token={token}")).await;
    let hello = next_frame(&mut socket).await;
    assert_eq!(hello.kind(), "hello", "{}", hello.text);
    let snapshot = next_frame(&mut socket).await;
    assert_eq!(snapshot.kind(), "snapshot", "{}", snapshot.text);
    (socket, hello, snapshot)
}

fn bet(req: &str, amount_minor: i64, auto: Option<u64>) -> Value {
    let mut bet = json!({"t": "bet", "req": req, "amount": amount_minor, "slot": 0});
    if let Some(auto) = auto {
        bet["auto"] = json!(auto);
    }
    bet
}

/// Advances `last_seq` over a public event, which must come after it: a repeat or an
/// event out of order is a bug, a skipped seq may be a conflated tick ([`Reference`]).
fn advance(last_seq: &mut u64, frame: &Frame, who: &str) {
    let seq = frame.public_seq().expect("a public event");
    assert!(
        seq > *last_seq,
        "{who}: seq {seq} after {last_seq} (a repeat or out of order): {}",
        frame.text
    );
    *last_seq = seq;
}

/// The public events that several clients received, by seq: no two clients may get
/// different bytes for one seq. A client may lack ticks: a gateway writes only the
/// newest tick to a socket, or a shard, that fell behind, as the protocol allows. Any
/// other event reaches every socket, or the gateway sends a snapshot instead (which these
/// tests refuse), so a seq that no client got was a tick too.
#[derive(Default)]
struct Reference<'a> {
    by_seq: BTreeMap<u64, (&'a Frame, String)>,
}

impl<'a> Reference<'a> {
    fn add(&mut self, who: &str, events: &'a [Frame]) {
        for frame in events {
            let seq = frame.public_seq().expect("a public event");
            let (first, first_who) = self
                .by_seq
                .entry(seq)
                .or_insert_with(|| (frame, who.to_owned()));
            assert_eq!(
                frame.text, first.text,
                "seq {seq}: {who} and {first_who} got different frames"
            );
        }
    }

    /// The seq of the `kind` event of `round`.
    fn seq_of(&self, kind: &str, round: u64) -> u64 {
        let mut events = self.by_seq.iter();
        events
            .find(|(_, (frame, _))| frame.kind() == kind && frame.round() == Some(round))
            .map(|(seq, _)| *seq)
            .unwrap_or_else(|| panic!("no client got the {kind} event of round {round}"))
    }

    /// Asserts that `events` hold every event of `window` but ticks; returns how many
    /// ticks they lack.
    fn ticks_missing(&self, who: &str, events: &[Frame], window: RangeInclusive<u64>) -> usize {
        let seen: HashSet<u64> = events.iter().filter_map(Frame::public_seq).collect();
        let mut missing = 0;
        for seq in window.filter(|seq| !seen.contains(seq)) {
            if let Some((frame, _)) = self.by_seq.get(&seq) {
                assert_eq!(frame.kind(), "tick", "{who} missed {}", frame.text);
            }
            missing += 1;
        }
        missing
    }
}

fn snapshot_seq(snapshot: &Frame) -> u64 {
    snapshot.value["seq"]
        .as_u64()
        .expect("a snapshot has a seq")
}

async fn balances_sum(sql: &tokio_postgres::Client) -> i64 {
    sql.query_one(
        "SELECT COALESCE(SUM(balance), 0)::BIGINT FROM accounts",
        &[],
    )
    .await
    .expect("sum the balances")
    .get(0)
}

/// Waits until the journal holds `round` as finished; returns its row.
async fn finished_round(sql: &tokio_postgres::Client, round: u64) -> tokio_postgres::Row {
    let round = i64::try_from(round).unwrap();
    let query = "SELECT status, crash_hundredths, hash, bets_total_minor, payouts_total_minor \
                 FROM rounds WHERE room = $1 AND round = $2";
    let deadline = Instant::now() + Duration::from_millis(JOURNAL_WAIT_MS);
    loop {
        if let Some(row) = sql.query_opt(query, &[&ROOM, &round]).await.unwrap()
            && !matches!(row.get::<_, &str>(0), "betting" | "flying")
        {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "round {round} is not journaled as finished {JOURNAL_WAIT_MS} ms after players saw it end"
        );
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// What one player of the first test saw and was told.
struct Played {
    player: String,
    gateway: usize,
    /// Public events after its snapshot, in seq order, to the crash of the last round.
    events: Vec<Frame>,
    /// `bet_ok` replies.
    accepted: Vec<Value>,
    /// `bet_err` replies.
    refused: Vec<Value>,
}

/// Stake and auto-cashout of player `index` in the first test.
fn stake_of(index: usize) -> (i64, Option<u64>) {
    if index < GATEWAYS {
        (WHALE_STAKE_MINOR, None)
    } else {
        let stake = 100 * (1 + index as i64 % 5);
        (stake, (index % 2 == 0).then_some(150))
    }
}

/// Where player `index` gets its token and where it plays.
struct Seat {
    index: usize,
    /// The gateway that issues its token: another than the one it plays on.
    token_from: SocketAddr,
    play_on: usize,
    play_on_addr: SocketAddr,
}

/// Joins, then records every public event and bets in each planned round, until the
/// crash of the last planned round.
async fn play(
    seat: Seat,
    connects: Arc<Semaphore>,
    connected: mpsc::Sender<()>,
    plan: watch::Receiver<Option<RangeInclusive<u64>>>,
) -> Played {
    let (mut socket, snapshot, player) = {
        let _permit = connects.acquire().await.expect("the semaphore stays open");
        let (token, player) = guest(seat.token_from).await;
        let (socket, _, snapshot) = join(seat.play_on_addr, &token).await;
        (socket, snapshot, player)
    };
    connected
        .send(())
        .await
        .expect("the test waits for players");
    let who = format!("{player} on gateway {}", seat.play_on);
    let (stake, auto) = stake_of(seat.index);
    let mut last_seq = snapshot_seq(&snapshot);
    let mut played = Played {
        player,
        gateway: seat.play_on,
        events: Vec::new(),
        accepted: Vec::new(),
        refused: Vec::new(),
    };
    loop {
        let frame = next_frame(&mut socket).await;
        match frame.kind() {
            "bet_ok" => played.accepted.push(frame.value),
            "bet_err" => played.refused.push(frame.value),
            "snapshot" => panic!(
                "{who}: a snapshot mid-stream (an event gap): {}",
                frame.text
            ),
            _ if frame.public_seq().is_some() => {
                advance(&mut last_seq, &frame, &who);
                let round = frame.round().expect("public events name their round");
                let planned = plan
                    .borrow()
                    .clone()
                    .filter(|rounds| rounds.contains(&round));
                if frame.kind() == "betting" && planned.is_some() {
                    send(&mut socket, bet(&format!("r{round}"), stake, auto)).await;
                }
                let last = planned.is_some_and(|rounds| *rounds.end() == round);
                let done = last && frame.kind() == "crash";
                played.events.push(frame);
                if done {
                    return played;
                }
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_serves_the_same_rounds_on_every_gateway() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(FAST_ROUNDS).await;
    let gateways = &cluster.gateway_addrs;
    let (plan_sender, plan) = watch::channel(None);
    let (connected_sender, mut connected) = mpsc::channel(CLIENTS);
    let connects = Arc::new(Semaphore::new(CONNECTS_AT_ONCE));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|index| {
            let seat = Seat {
                index,
                token_from: gateways[(index + 1) % GATEWAYS],
                play_on: index % GATEWAYS,
                play_on_addr: gateways[index % GATEWAYS],
            };
            let connected = connected_sender.clone();
            tokio::spawn(play(seat, connects.clone(), connected, plan.clone()))
        })
        .collect();
    for _ in 0..CLIENTS {
        within(ROUND_WAIT_MS, "every player connects", connected.recv()).await;
    }
    // Every player is connected: the round after the next betting phase is seen whole.
    let (token, _) = guest(gateways[0]).await;
    let (mut observer, ..) = join(gateways[0], &token).await;
    let betting = within(ROUND_WAIT_MS, "a betting phase", async {
        next_of_kind(&mut observer, "betting").await
    })
    .await;
    drop(observer);
    let first = betting.round().unwrap() + 1;
    let rounds = first..=first + PLAYED_ROUNDS - 1;
    plan_sender.send_replace(Some(rounds.clone()));
    let mut played = Vec::with_capacity(CLIENTS);
    for task in tasks {
        let wait_ms = ROUND_WAIT_MS * (PLAYED_ROUNDS + 1);
        played.push(within(wait_ms, "a player's rounds", task).await.unwrap());
    }

    let refused: Vec<&Value> = played.iter().flat_map(|p| &p.refused).collect();
    assert!(refused.is_empty(), "bets refused: {refused:?}");
    assert_same_public_events(&played, &rounds);
    assert_large_bets_reach_other_gateways(&played, &rounds);
    let sql = cluster.sql().await;
    finished_round(&sql, *rounds.end()).await;
    assert_eq!(balances_sum(&sql).await, 0, "the balances do not sum to 0");
    assert_bets_match_transfers(&sql, &played).await;
}

fn who(played: &Played) -> String {
    format!("{} on gateway {}", played.player, played.gateway)
}

/// Every player got the same bytes for each seq, and every event of the rounds but the
/// ticks its gateway conflated.
fn assert_same_public_events(played: &[Played], rounds: &RangeInclusive<u64>) {
    let mut reference = Reference::default();
    for p in played {
        reference.add(&who(p), &p.events);
    }
    for round in rounds.clone() {
        for kind in ["betting", "flying", "crash"] {
            reference.seq_of(kind, round);
        }
    }
    let opening = reference.seq_of("betting", *rounds.start());
    let closing = reference.seq_of("crash", *rounds.end());
    let mut ticks_missing = 0;
    for p in played {
        let first = p.events.first().and_then(Frame::public_seq).unwrap();
        let last = p.events.last().and_then(Frame::public_seq).unwrap();
        assert!(
            first <= opening && last == closing,
            "{} got seq {first}..={last}, not {opening}..={closing}",
            who(p)
        );
        ticks_missing += reference.ticks_missing(&who(p), &p.events, opening..=closing);
    }
    eprintln!(
        "{} players, events {opening}..={closing}: {ticks_missing} ticks conflated in all",
        played.len()
    );
}

/// Each large bet, placed on its own gateway, is in a tick that reached players on
/// another gateway. (A gateway that fell behind may have skipped that very tick, so not
/// necessarily on all of them: that is reported.)
fn assert_large_bets_reach_other_gateways(played: &[Played], rounds: &RangeInclusive<u64>) {
    let mut reference = Reference::default();
    for p in played {
        reference.add(&who(p), &p.events);
    }
    let seqs_by_gateway: Vec<HashSet<u64>> = (0..GATEWAYS)
        .map(|gateway| {
            let on_gateway = played.iter().filter(|p| p.gateway == gateway);
            (on_gateway.flat_map(|p| p.events.iter().filter_map(Frame::public_seq))).collect()
        })
        .collect();
    for whale in &played[..GATEWAYS] {
        for round in rounds.clone() {
            let listing = (reference.by_seq.iter()).find(|(_, (frame, _))| {
                let bets = frame.value["bets"].as_array().into_iter().flatten();
                frame.kind() == "tick"
                    && frame.round() == Some(round)
                    && bets
                        .into_iter()
                        .any(|bet| bet["player"] == whale.player.as_str())
            });
            let Some((seq, _)) = listing else {
                panic!("no tick of round {round} listed the bet of {}", who(whale));
            };
            let reached: Vec<usize> = (0..GATEWAYS)
                .filter(|gateway| seqs_by_gateway[*gateway].contains(seq))
                .collect();
            assert!(
                reached.iter().any(|gateway| *gateway != whale.gateway),
                "the tick listing the bet of {} in round {round} reached gateways {reached:?} only",
                who(whale)
            );
            if reached.len() < GATEWAYS {
                eprintln!(
                    "the tick listing the bet of {} in round {round} was conflated on some gateways (reached {reached:?})",
                    who(whale)
                );
            }
        }
    }
}

/// Every acknowledged bet is a bet transfer of its amount, and every bet transfer was
/// acknowledged.
async fn assert_bets_match_transfers(sql: &tokio_postgres::Client, played: &[Played]) {
    let rows = sql
        .query(
            "SELECT id, debit, amount FROM transfers WHERE kind = 'bet'",
            &[],
        )
        .await
        .unwrap();
    let stored: HashMap<String, (String, i64)> = (rows.iter())
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    let mut acknowledged = HashMap::new();
    for p in played {
        for ok in &p.accepted {
            let (round, slot) = (&ok["round"], &ok["slot"]);
            let id = format!("bet:{ROOM}:{round}:{}:{slot}", p.player);
            let amount = ok["amount"].as_i64().unwrap();
            acknowledged.insert(id, (format!("player:{}", p.player), amount));
        }
    }
    assert_eq!(acknowledged.len(), CLIENTS * PLAYED_ROUNDS as usize);
    let unmatched: Vec<_> = (acknowledged.iter())
        .filter(|(id, terms)| stored.get(*id) != Some(terms))
        .take(10)
        .collect();
    assert!(
        unmatched.is_empty(),
        "bet_ok without its transfer: {unmatched:?}"
    );
    let unacknowledged: Vec<_> = (stored.keys())
        .filter(|id| !acknowledged.contains_key(*id))
        .take(10)
        .collect();
    assert!(
        unacknowledged.is_empty(),
        "bet transfers no player was told about: {unacknowledged:?}"
    );
}

/// What one player of the failover test did and saw.
struct Watched {
    player: String,
    auto: Option<u64>,
    /// Whether its bet was answered `bet_ok`.
    accepted: bool,
    /// Every frame from its snapshot up to the first about a later round.
    frames: Vec<Frame>,
}

/// Bets in `round`, tells the test when the round flies, and watches it end.
async fn bet_and_watch(
    mut socket: Socket,
    player: String,
    auto: Option<u64>,
    round: u64,
    flying: mpsc::Sender<()>,
) -> Watched {
    let mut frames = Vec::new();
    let mut accepted = false;
    loop {
        let frame = next_frame(&mut socket).await;
        let this_round = frame.round() == Some(round);
        match frame.kind() {
            "betting" if this_round => {
                let req = format!("r{round}");
                send(&mut socket, bet(&req, FAILOVER_STAKE_MINOR, auto)).await;
            }
            "flying" if this_round => drop(flying.try_send(())),
            "bet_ok" => accepted = true,
            "bet_err" => panic!("{player}: bet refused: {}", frame.text),
            _ if frame.round().is_some_and(|later| later > round) => {
                return Watched {
                    player,
                    auto,
                    accepted,
                    frames,
                };
            }
            _ => {}
        }
        frames.push(frame);
    }
}

/// The crash point and hash of `round` as a player learned them: from its `crash` event,
/// or, when its gateway resynced after the engine change, from a snapshot's history.
fn round_end(watched: &Watched, round: u64) -> (u64, String) {
    let crashes: Vec<&Frame> = (watched.frames.iter())
        .filter(|frame| frame.kind() == "crash" && frame.round() == Some(round))
        .collect();
    assert!(
        crashes.len() <= 1,
        "{} saw round {round} crash {} times",
        watched.player,
        crashes.len()
    );
    let snapshots = (watched.frames.iter()).filter(|frame| frame.kind() == "snapshot");
    let in_history = snapshots
        .flat_map(|snapshot| snapshot.value["history"].as_array().cloned())
        .flatten()
        .find(|past| past["round"] == round);
    let end = match crashes.first() {
        Some(crash) => crash.value.clone(),
        None => in_history
            .unwrap_or_else(|| panic!("{} never learned how round {round} ended", watched.player)),
    };
    (
        end["m"].as_u64().expect("a crash point"),
        end["hash"].as_str().expect("a revealed hash").to_owned(),
    )
}

pub(crate) async fn wait_for_takeover(cluster: &Cluster, old: &Lease) -> Lease {
    let deadline = Instant::now() + Duration::from_millis(TAKEOVER_WAIT_MS);
    loop {
        if let Some(lease) = cluster.lease_holder().await
            && lease.engine_id != old.engine_id
        {
            return lease;
        }
        assert!(
            Instant::now() < deadline,
            "no standby took the lease within {TAKEOVER_WAIT_MS} ms of the leader's death"
        );
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// The failover players, joined and betting in `round`; `flying` tells when it flies.
struct FailoverRound {
    round: u64,
    players: Vec<tokio::task::JoinHandle<Watched>>,
    flying: mpsc::Receiver<()>,
}

/// Joins the failover players over the gateways; they bet in the next round.
async fn bet_in_the_next_round(cluster: &Cluster) -> FailoverRound {
    let gateways = cluster.gateway_addrs.clone();
    let mut joined = Vec::with_capacity(FAILOVER_PLAYERS);
    for index in 0..FAILOVER_PLAYERS {
        let (token, player) = guest(gateways[(index + 1) % GATEWAYS]).await;
        let (socket, _, snapshot) = join(gateways[index % GATEWAYS], &token).await;
        joined.push((
            socket,
            player,
            snapshot.round().expect("a snapshot names its round"),
        ));
    }
    // Every player is connected before the betting phase of `round` opens.
    let round = joined.iter().map(|(.., round)| round).max().unwrap() + 1;
    let (flying_sender, flying) = mpsc::channel(FAILOVER_PLAYERS);
    let players = (joined.into_iter().enumerate())
        .map(|(index, (socket, player, _))| {
            let auto = FAILOVER_AUTOS[index % FAILOVER_AUTOS.len()];
            let flying = flying_sender.clone();
            tokio::spawn(bet_and_watch(socket, player, auto, round, flying))
        })
        .collect();
    FailoverRound {
        round,
        players,
        flying,
    }
}

/// Waits for the failover round to end for every player, then checks that they all saw
/// the same crash, the chain's, and that the ledger settled every bet exactly once.
async fn assert_round_settled_exactly(cluster: &Cluster, failover: FailoverRound) {
    let round = failover.round;
    let mut watched = Vec::with_capacity(FAILOVER_PLAYERS);
    for player in failover.players {
        watched.push(
            within(ROUND_WAIT_MS, "the round's end", player)
                .await
                .unwrap(),
        );
    }
    let (crash, hash) = round_end(&watched[0], round);
    for other in &watched[1..] {
        assert_eq!(
            round_end(other, round),
            (crash, hash.clone()),
            "{}",
            other.player
        );
    }
    eprintln!("round {round} crashed at {crash} hundredths");
    let recomputed = aloft::fair::crash_point_hundredths(&hash, &cluster.salt, HOUSE_EDGE_BP);
    assert_eq!(
        crash, recomputed,
        "crash point of round {round} (hash {hash})"
    );
    let sql = cluster.sql().await;
    let journaled = finished_round(&sql, round).await;
    assert_eq!(
        journaled.get::<_, &str>(0),
        "crashed",
        "round {round} was not crashed"
    );
    assert_eq!(journaled.get::<_, i64>(1), crash as i64);
    assert_eq!(journaled.get::<_, &str>(2), hash);
    let (bets_total, payouts_total) = assert_settled_once(&sql, &watched, round, crash).await;
    assert_eq!(journaled.get::<_, i64>(3), bets_total, "bets_total_minor");
    assert_eq!(
        journaled.get::<_, i64>(4),
        payouts_total,
        "payouts_total_minor"
    );
    assert_eq!(balances_sum(&sql).await, 0, "the balances do not sum to 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_finishes_the_round_in_flight() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start(FAILOVER_ROUNDS).await;
    let leader = cluster.lease_holder().await.expect("a leader");
    let leader_index = cluster.engine_index(&leader.engine_id);
    let mut failover = bet_in_the_next_round(&cluster).await;
    within(ROUND_WAIT_MS, "round flying", failover.flying.recv()).await;
    cluster.kill_engine(leader_index);
    let killed_at = Instant::now();
    let standby = wait_for_takeover(&cluster, &leader).await;
    eprintln!(
        "{} took over from {} {} ms after the kill",
        standby.engine_id,
        leader.engine_id,
        killed_at.elapsed().as_millis()
    );
    let standby_index = cluster.engine_index(&standby.engine_id);
    assert!(
        standby.fencing_token > leader.fencing_token,
        "fencing token {} after {}",
        standby.fencing_token,
        leader.fencing_token
    );
    assert_round_settled_exactly(&cluster, failover).await;
    assert!(cluster.engine_running(standby_index), "the standby died");
}

/// A leader frozen (SIGSTOP) while Redis restarts empty: the standby takes the room with
/// a token from the ledger, above the frozen one's although Redis forgot every token.
/// Thawed, the old leader writes nothing more (its token is fenced off) and stops leading;
/// the round in flight is settled exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_across_a_redis_restart_is_fenced_off() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start(FAILOVER_ROUNDS).await;
    let leader = cluster.lease_holder().await.expect("a leader");
    let leader_index = cluster.engine_index(&leader.engine_id);
    let mut failover = bet_in_the_next_round(&cluster).await;
    within(ROUND_WAIT_MS, "round flying", failover.flying.recv()).await;
    cluster.pause_engine(leader_index);
    cluster.restart_redis();
    let standby = wait_for_takeover(&cluster, &leader).await;
    assert!(
        standby.fencing_token > leader.fencing_token,
        "fencing token {} after a Redis restart, the paused leader holds {}",
        standby.fencing_token,
        leader.fencing_token
    );
    let logged_before_thaw = cluster.engine_log(leader_index).len();
    cluster.resume_engine(leader_index);
    poll_until(
        TAKEOVER_WAIT_MS,
        "the thawed leader stops leading",
        async || {
            let log = cluster.engine_log(leader_index);
            log[logged_before_thaw..]
                .contains("room handed over")
                .then_some(())
        },
    )
    .await;
    assert_round_settled_exactly(&cluster, failover).await;
    assert_eq!(
        cluster.lease_holder().await,
        Some(standby),
        "the room changed hands again"
    );
}

/// Players of the Redis restart test, spread over the gateways.
const RESTART_PLAYERS: usize = 9;
/// Times Redis is restarted in that test, a round played after each.
const REDIS_RESTARTS: usize = 2;
/// Stake of every bet in that test.
const RESTART_STAKE_MINOR: i64 = 100;
/// Longest wait for every request to be answered once the players stop betting.
const ANSWERS_WAIT_MS: u64 = 30_000;

/// What a player of the Redis restart test sent and was told.
struct Answered {
    player: String,
    /// Request ids of the bets it sent.
    sent: Vec<String>,
    /// Answers (`bet_ok`/`bet_err`) by request id.
    answers: HashMap<String, Vec<Value>>,
    /// Snapshots received after the first.
    snapshots: usize,
}

/// Bets in every round until `stop`, checking the stream as a client must see it: each
/// public event's seq above the last, each phase of a round announced at most once, a
/// snapshot (a new epoch, or a gap the gateway could not fill) starting over. Returns
/// once stopped and every request has its answer.
async fn play_across_restarts(
    mut socket: Socket,
    player: String,
    first_seq: u64,
    mut stop: watch::Receiver<bool>,
) -> Answered {
    let mut last_seq = first_seq;
    let mut announced: HashSet<(u64, String)> = HashSet::new();
    let mut played = Answered {
        player,
        sent: Vec::new(),
        answers: HashMap::new(),
        snapshots: 0,
    };
    loop {
        let stopped = *stop.borrow();
        if stopped && played.sent.len() <= played.answers.len() {
            return played;
        }
        let frame = tokio::select! {
            frame = next_frame(&mut socket) => frame,
            _ = stop.changed(), if !stopped => continue,
        };
        let who = &played.player;
        match frame.kind() {
            "snapshot" => {
                played.snapshots += 1;
                last_seq = snapshot_seq(&frame);
                announced.clear();
            }
            "bet_ok" | "bet_err" => {
                let req = frame.value["req"]
                    .as_str()
                    .expect("an answer names its req");
                let answers = played.answers.entry(req.to_owned()).or_default();
                answers.push(frame.value);
            }
            kind @ ("betting" | "flying" | "crash" | "tick") => {
                advance(&mut last_seq, &frame, who);
                let round = frame.round().expect("public events name their round");
                if kind != "tick" {
                    assert!(
                        announced.insert((round, kind.to_owned())),
                        "{who}: {kind} of round {round} announced again: {}",
                        frame.text
                    );
                }
                if kind == "betting" && !stopped {
                    let req = format!("r{round}");
                    send(&mut socket, bet(&req, RESTART_STAKE_MINOR, Some(150))).await;
                    played.sent.push(req);
                }
            }
            _ => {}
        }
    }
}

/// The newest round of [`ROOM`] the journal holds as finished, 0 for none.
async fn newest_finished_round(sql: &tokio_postgres::Client) -> u64 {
    let row = sql
        .query_one(
            "SELECT COALESCE(MAX(round), 0)::BIGINT FROM rounds \
             WHERE room = $1 AND status IN ('crashed', 'aborted')",
            &[&ROOM],
        )
        .await
        .unwrap();
    u64::try_from(row.get::<_, i64>(0)).unwrap()
}

/// Polls `probe` every [`POLL_MS`] until it gives a value; fails naming `what` after
/// `wait_ms`.
async fn poll_until<T>(wait_ms: u64, what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {wait_ms} ms");
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// Waits until the journal holds a round after `round` as finished.
async fn wait_for_a_round_after(sql: &tokio_postgres::Client, round: u64) {
    let what = format!("a round after {round} played");
    poll_until(ROUND_WAIT_MS, &what, async || {
        (newest_finished_round(sql).await > round + 1).then_some(())
    })
    .await;
}

/// Redis killed and restarted empty (no persistence) while players bet in every round:
/// no client sees a phase twice or a seq go back (a new epoch comes with a snapshot),
/// every bet gets exactly one answer, each `bet_ok` is a stake in the ledger and every
/// stake was acknowledged, and the balances still sum to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_play_on_across_redis_restarts() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start(FAST_ROUNDS).await;
    let gateways = cluster.gateway_addrs.clone();
    let (stop_sender, stop) = watch::channel(false);
    let mut players = Vec::with_capacity(RESTART_PLAYERS);
    for index in 0..RESTART_PLAYERS {
        let (token, player) = guest(gateways[(index + 1) % GATEWAYS]).await;
        let (socket, _, snapshot) = join(gateways[index % GATEWAYS], &token).await;
        let first_seq = snapshot_seq(&snapshot);
        let stop = stop.clone();
        players.push(tokio::spawn(play_across_restarts(
            socket, player, first_seq, stop,
        )));
    }
    let sql = cluster.sql().await;
    wait_for_a_round_after(&sql, newest_finished_round(&sql).await).await;
    for restart in 1..=REDIS_RESTARTS {
        let before = newest_finished_round(&sql).await;
        cluster.restart_redis();
        eprintln!("Redis restarted ({restart}) after round {before}");
        wait_for_a_round_after(&sql, before).await;
    }
    stop_sender.send(true).unwrap();
    let mut bets_ok = HashMap::new();
    for player in players {
        let played = within(ANSWERS_WAIT_MS, "every request answered", player)
            .await
            .unwrap();
        eprintln!(
            "{}: {} bets, {} snapshots",
            played.player,
            played.sent.len(),
            played.snapshots
        );
        for req in &played.sent {
            let answers = played.answers.get(req).map_or(&[][..], Vec::as_slice);
            assert_eq!(
                answers.len(),
                1,
                "{} {req}: answers {answers:?}",
                played.player
            );
            if answers[0]["t"] == "bet_ok" {
                let id = format!("bet:{ROOM}:{}:{}:0", answers[0]["round"], played.player);
                bets_ok.insert(id, format!("player:{}", played.player));
            }
        }
    }
    let stakes: HashMap<String, String> = (sql
        .query("SELECT id, debit FROM transfers WHERE kind = 'bet'", &[]))
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect();
    assert_eq!(
        stakes, bets_ok,
        "stakes in the ledger and bet_ok answers differ"
    );
    assert_eq!(balances_sum(&sql).await, 0, "the balances do not sum to 0");
}

/// Each bet of `round` is staked once and paid at most once, exactly as its
/// auto-cashout and the crash point decide; nothing is refunded. Returns the round's
/// (stakes, payouts).
async fn assert_settled_once(
    sql: &tokio_postgres::Client,
    watched: &[Watched],
    round: u64,
    crash: u64,
) -> (i64, i64) {
    let rows = sql
        .query(
            "SELECT id, kind, amount FROM transfers WHERE kind <> 'grant'",
            &[],
        )
        .await
        .unwrap();
    let mut transfers: HashMap<String, (String, i64)> = (rows.iter())
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    let (mut bets_total, mut payouts_total) = (0, 0);
    for p in watched {
        assert!(p.accepted, "{} got no bet_ok", p.player);
        let id = |kind: &str| format!("{kind}:{ROOM}:{round}:{}:0", p.player);
        let stake = transfers.remove(&id("bet"));
        assert_eq!(
            stake,
            Some(("bet".to_owned(), FAILOVER_STAKE_MINOR)),
            "{}'s stake",
            p.player
        );
        // Auto-cashouts are paid at exactly their target when it is below the crash point.
        let won = p.auto.filter(|auto| *auto < crash);
        let expected = won.map(|auto| {
            (
                "payout".to_owned(),
                FAILOVER_STAKE_MINOR * auto as i64 / 100,
            )
        });
        let payout = transfers.remove(&id("payout"));
        assert_eq!(
            payout, expected,
            "{}'s payout (auto {:?}, crash {crash})",
            p.player, p.auto
        );
        bets_total += FAILOVER_STAKE_MINOR;
        payouts_total += payout.map_or(0, |(_, amount)| amount);
    }
    assert!(
        transfers.is_empty(),
        "money moved beyond one stake and at most one payout per bet: {transfers:?}"
    );
    (bets_total, payouts_total)
}

/// Records the public events after `last_seq` until it reached `until`, telling its
/// progress through `position`.
async fn record_until(
    mut socket: Socket,
    mut last_seq: u64,
    position: Arc<AtomicU64>,
    mut until: watch::Receiver<Option<u64>>,
) -> Vec<Frame> {
    let mut events = Vec::new();
    loop {
        if until.borrow().is_some_and(|target| last_seq >= target) {
            return events;
        }
        tokio::select! {
            frame = next_frame(&mut socket) => {
                assert_ne!(frame.kind(), "snapshot", "the staying client got a snapshot: {}", frame.text);
                if frame.public_seq().is_some() {
                    advance(&mut last_seq, &frame, "the staying client");
                    position.store(last_seq, Ordering::Release);
                    events.push(frame);
                }
            }
            _ = until.changed() => {}
        }
    }
}

/// The value of a `hello` or `snapshot` field as a query parameter.
fn query_value(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// Reads a reconnected socket after its hello: the events it gets, which must come
/// with `recovered: true` (on the hello, or on a snapshot before them), until the
/// betting phase of a round after `left_round`.
async fn read_recovered(
    socket: &mut Socket,
    hello: &Frame,
    left_round: u64,
    who: &str,
) -> Vec<Frame> {
    let mut recovered = hello.value["recovered"] == true;
    let mut last_seq = 0;
    let mut events = Vec::new();
    loop {
        let frame = next_frame(socket).await;
        if frame.kind() == "snapshot" {
            assert_eq!(
                frame.value["recovered"], true,
                "{who} came back within the history window ({AWAY_MS} ms) but got a snapshot: {}",
                frame.text
            );
            recovered = true;
            continue;
        }
        if frame.public_seq().is_none() {
            continue;
        }
        assert!(
            recovered,
            "{who} got events without recovered:true on its hello or a snapshot: {}",
            hello.text
        );
        advance(&mut last_seq, &frame, who);
        let next_round_opens = frame.kind() == "betting" && frame.round() > Some(left_round);
        events.push(frame);
        if next_round_opens {
            return events;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reconnecting_with_since_misses_nothing() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(FAST_ROUNDS).await;
    let [first, second, third] = [0, 1, 2].map(|index| cluster.gateway_addrs[index]);
    let (staying_token, _) = guest(first).await;
    let (staying_socket, _, staying_snapshot) = join(first, &staying_token).await;
    let position = Arc::new(AtomicU64::new(snapshot_seq(&staying_snapshot)));
    let (until_sender, until) = watch::channel(None);
    let staying = tokio::spawn(record_until(
        staying_socket,
        snapshot_seq(&staying_snapshot),
        position.clone(),
        until,
    ));

    let (token, player) = guest(second).await;
    let (mut socket, hello, snapshot) = join(second, &token).await;
    let epoch = (snapshot.value.get("epoch").or(hello.value.get("epoch")))
        .unwrap_or_else(|| {
            panic!(
                "neither hello nor snapshot carries an epoch: {}",
                hello.text
            )
        })
        .clone();
    let who = format!("{player} (reconnecting)");
    let mut last_seq = snapshot_seq(&snapshot);
    let mut seen = Vec::new();
    // Leave as a round takes off: its ticks and crash, at least, happen while away.
    let left_round = loop {
        let frame = next_frame(&mut socket).await;
        if frame.public_seq().is_some() {
            advance(&mut last_seq, &frame, &who);
            let flying = (frame.kind() == "flying").then(|| frame.round().unwrap());
            seen.push(frame);
            if let Some(round) = flying {
                break round;
            }
        }
    };
    let since = last_seq;
    drop(socket);
    tokio::time::sleep(Duration::from_millis(AWAY_MS)).await;

    // Published before the reconnect: the history must replay all of these.
    let published_before = position.load(Ordering::Acquire);
    let query = format!("token={token}&since={since}&epoch={}", query_value(&epoch));
    let mut socket = open_socket(third, &query).await;
    let hello = next_frame(&mut socket).await;
    assert_eq!(hello.kind(), "hello", "{}", hello.text);
    if let Some(hello_epoch) = hello.value.get("epoch") {
        assert_eq!(
            hello_epoch, &epoch,
            "the epoch changed without an engine change"
        );
    }
    let returned = read_recovered(&mut socket, &hello, left_round, &who).await;
    let replayed: Vec<u64> = (returned.iter())
        .filter_map(Frame::public_seq)
        .take_while(|seq| *seq <= published_before)
        .collect();
    let missed: Vec<u64> = (since + 1..=published_before).collect();
    assert_eq!(replayed, missed, "{who}: the events missed while away");
    seen.extend(returned);

    let (first_seq, last_seq) = (
        seen[0].public_seq().unwrap(),
        seen.last().unwrap().public_seq().unwrap(),
    );
    until_sender.send_replace(Some(last_seq));
    let stayed = within(ROUND_WAIT_MS, "the staying client", staying)
        .await
        .unwrap();
    let mut reference = Reference::default();
    reference.add("the staying client", &stayed);
    reference.add(&who, &seen);
    let window = first_seq..=last_seq;
    let staying_missing = reference.ticks_missing("the staying client", &stayed, window.clone());
    let reconnecting_missing = reference.ticks_missing(&who, &seen, window);
    eprintln!(
        "events {first_seq}..={last_seq}, {} replayed: ticks conflated: {staying_missing} (staying), {reconnecting_missing} (reconnecting)",
        missed.len()
    );
}

/// Rooms of the spread test: [`ROOM`] and three more.
const SPREAD_ROOMS: [&str; 4] = [ROOM, "b", "c", "d"];
/// Longest wait for the engines to settle who leads what.
const SPREAD_WAIT_MS: u64 = 20_000;

/// The engine id leading each of [`SPREAD_ROOMS`], once every room has a leader.
async fn leaders(cluster: &Cluster) -> Option<Vec<(String, u64)>> {
    let mut leaders = Vec::new();
    for room in SPREAD_ROOMS {
        let lease = cluster.lease_holder_of(room).await?;
        leaders.push((lease.engine_id, lease.fencing_token));
    }
    Some(leaders)
}

/// Polls until `settled` accepts the leaders of every room.
async fn wait_for_leaders(
    cluster: &Cluster,
    what: &str,
    settled: impl Fn(&[(String, u64)]) -> bool,
) -> Vec<(String, u64)> {
    let mut seen = None;
    poll_until(SPREAD_WAIT_MS, what, async || {
        let now = leaders(cluster).await;
        if now != seen {
            eprintln!("leaders of the rooms: {now:?}");
            seen.clone_from(&now);
        }
        now.filter(|leaders| settled(leaders))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_spread_over_the_engines_and_move_to_a_survivor() {
    let _serial = SERIAL.lock().await;
    let rounds = Rounds {
        other_rooms: &SPREAD_ROOMS[1..],
        ..FAST_ROUNDS
    };
    let mut cluster = Cluster::start(rounds).await;
    let led_by = |leaders: &[(String, u64)], engine: &str| {
        leaders
            .iter()
            .filter(|(leader, _)| leader == engine)
            .count()
    };
    let spread = wait_for_leaders(&cluster, "two rooms per engine", |leaders| {
        let first = &leaders[0].0;
        led_by(leaders, first) == 2
    })
    .await;
    let victim = spread[0].0.clone();
    cluster.kill_engine(cluster.engine_index(&victim));
    let survivor = spread
        .iter()
        .map(|(engine, _)| engine.clone())
        .find(|engine| *engine != victim)
        .expect("two engines lead");
    let moved = wait_for_leaders(&cluster, "every room on the survivor", |leaders| {
        led_by(leaders, &survivor) == SPREAD_ROOMS.len()
    })
    .await;
    for ((before_engine, before_token), (_, after_token)) in spread.iter().zip(&moved) {
        if *before_engine == victim {
            assert!(
                after_token > before_token,
                "a taken-over room has a newer token"
            );
        }
    }
}

/// The status and JSON `code` of `/ws` at `gateway` with `token`, once refused; `None`
/// while it is accepted.
async fn ws_refusal(gateway: SocketAddr, token: &str) -> Option<(u16, String)> {
    let url = format!("ws://{gateway}/ws?token={token}");
    match tokio_tungstenite::connect_async(&url).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let code = body["code"].as_str().unwrap_or_default().to_owned();
            Some((response.status().as_u16(), code))
        }
        Err(error) => panic!("/ws at {gateway}: {error}"),
    }
}

/// `method` on the admin API of `gateway` as operator `ops`: the status.
async fn admin_call(cluster: &Cluster, gateway: SocketAddr, method: &str, path: &str) -> u16 {
    admin_answer(cluster, gateway, method, path).await.0
}

/// [`admin_call`] with the answer's JSON.
async fn admin_answer(
    cluster: &Cluster,
    gateway: SocketAddr,
    method: &str,
    path: &str,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = client
        .request(method, format!("http://{gateway}{path}"))
        .bearer_auth(&cluster.operator_token)
        .header("x-aloft-operator", "ops")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// A ban taken on one gateway closes the player's socket held by another (4005) and is
/// refused at every gateway's `/ws`, through the Redis bus; an unban taken on a third
/// admits the player everywhere again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_on_one_gateway_holds_on_every_gateway() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(FAST_ROUNDS).await;
    let gateways = cluster.gateway_addrs.clone();
    let (token, player) = guest(gateways[0]).await;
    let (mut socket, ..) = join(gateways[1], &token).await;
    let ban = format!("/api/admin/players/{player}/ban");
    assert_eq!(admin_call(&cluster, gateways[0], "POST", &ban).await, 200);
    let closed = crate::common::close_code(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(
        closed,
        Some(4005),
        "the socket on another gateway is closed"
    );
    for gateway in &gateways {
        let refused = within(JOURNAL_WAIT_MS, "the ban on every gateway", async {
            loop {
                if let Some(refusal) = ws_refusal(*gateway, &token).await {
                    return refusal;
                }
                tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
            }
        })
        .await;
        assert_eq!(refused, (403, "banned".to_owned()), "{gateway}");
    }
    assert_eq!(admin_call(&cluster, gateways[2], "DELETE", &ban).await, 200);
    for gateway in &gateways {
        within(JOURNAL_WAIT_MS, "the unban on every gateway", async {
            while ws_refusal(*gateway, &token).await.is_some() {
                tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
            }
        })
        .await;
    }
}

/// A mute taken on one gateway is held by every gateway, through the Redis bus, and
/// leaves the player's socket on another gateway open; an unmute taken on a third lifts
/// it everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_on_one_gateway_holds_on_every_gateway() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(FAST_ROUNDS).await;
    let gateways = cluster.gateway_addrs.clone();
    let (token, player) = guest(gateways[0]).await;
    let (mut socket, ..) = join(gateways[1], &token).await;
    let (record, mute) = (
        format!("/api/admin/players/{player}"),
        format!("/api/admin/players/{player}/mute"),
    );
    let muted_everywhere = async |muted: bool, what: &str| {
        for gateway in &gateways {
            within(JOURNAL_WAIT_MS, what, async {
                loop {
                    let (status, lookup) = admin_answer(&cluster, *gateway, "GET", &record).await;
                    if status == 200 && lookup["muted"] == muted {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                }
            })
            .await;
        }
    };
    let (status, muted) = admin_answer(&cluster, gateways[0], "POST", &mute).await;
    assert_eq!((status, &muted["muted"]), (200, &json!(true)), "{muted}");
    let told = muted["gateways"].as_u64().unwrap();
    assert!(told >= gateways.len() as u64, "every gateway told: {muted}");
    muted_everywhere(true, "the mute on every gateway").await;
    let closing = crate::common::close_code(&mut socket, Duration::from_secs(10));
    let open = tokio::time::timeout(Duration::from_secs(2), closing).await;
    assert!(open.is_err(), "a mute closed the socket: {open:?}");
    assert_eq!(
        admin_call(&cluster, gateways[2], "DELETE", &mute).await,
        200
    );
    muted_everywhere(false, "the unmute on every gateway").await;
}
