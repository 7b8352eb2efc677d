//! The gateway: holds player sockets and delivers the rooms' events to them.
//!
//! A gateway process runs one [`shard`] per core. It subscribes to each room on the bus
//! once (never per socket), parses and encodes each event once into a shared WebSocket
//! frame ([`frame`]), and hands that frame to every shard, which writes it to its sockets
//! ([`connection`]). Private replies from the engine come over the bus addressed to a
//! connection id; the [`GatewayShared::players`] map (player → connection ids) routes
//! them to the right shard, or to the player's other sockets when the requesting one is
//! gone.

pub mod connection;
pub mod frame;
pub mod handoff;
pub mod message;
pub mod names;
pub mod recovery;
pub mod requests;
pub mod room_view;
pub mod session;
pub mod shard;
pub mod traffic;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use futures_util::{FutureExt, StreamExt};
use metrics::Histogram;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, Delivery, EventEnvelope, PlayerControl, ReplyEnvelope, StreamPosition};
use crate::config::GatewayConfig;
use crate::ledger::{Ledger, RESTRICTED_PLAYERS_MAX};
use crate::metrics::gateway::{BusErrorPath, bus_error};
use crate::protocol::{PastRound, RoomEvent};
pub use handoff::{AdmissionSlots, Credentials, PendingUpgrade, ShardEntry, ShardSeats};
pub use message::ShardMessage;

/// Backlog of each shard's listener, in connections.
const LISTEN_BACKLOG_CONNECTIONS: i32 = 4096;

/// State shared by every shard and the HTTP layer of a gateway process.
pub struct GatewayShared {
    /// This gateway's name on the bus; replies are addressed to it.
    pub id: String,
    pub config: GatewayConfig,
    pub rooms: Vec<String>,
    pub bus: Arc<dyn Bus>,
    pub ledger: Arc<dyn Ledger>,
    /// Player → ids of the player's live connections on this gateway.
    pub players: DashMap<String, Vec<u64>>,
    /// Live sockets per client address and per player, shared with the HTTP layer.
    pub limits: Arc<crate::admission::ConnectionLimits>,
    /// The requests each connection awaits answers to (see [`requests`]).
    pub requests: requests::RequestsInFlight,
    /// The rooms' multiplier growth (`engine.growth_rate_per_ms_millionths`), told to
    /// clients in `hello` so they animate the same curve.
    pub growth_rate_per_ms_millionths: u64,
    /// What this process counts for the operator console (see [`traffic`]).
    pub traffic: Arc<traffic::Traffic>,
    /// Where each room's decoded events are copied for the operator console
    /// (`operator::feed`), bounded by `operator::FEED_EVENTS_QUEUE_MAX`; none in tests
    /// that run no console.
    pub operator_events: Option<mpsc::Sender<FollowedEvent>>,
}

/// A room's event as the gateway decoded it, for a follower beside the shards (the
/// operator console): a reference, not a copy.
#[derive(Debug, Clone)]
pub struct FollowedEvent {
    pub room: Arc<str>,
    pub epoch: u64,
    pub event: Arc<RoomEvent>,
}

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listen address is taken or not local: pick another with `--listen`.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The bus refused the subscription for a room (or for the gateway's replies).
    #[error("cannot subscribe to room {room}: {source}")]
    Subscribe {
        room: String,
        #[source]
        source: crate::bus::BusError,
    },
    /// The operating system refused a thread.
    #[error("cannot start shard thread: {0}")]
    Thread(std::io::Error),
    /// The banned or muted players could not be read from the ledger: check the database.
    #[error("cannot read the banned and muted players: {0}")]
    Restricted(#[from] crate::ledger::LedgerError),
}

/// A running gateway.
pub struct Gateway {
    pub local_addr: SocketAddr,
    shard_threads: Vec<std::thread::JoinHandle<std::io::Result<()>>>,
    /// The bus tasks (one forwarding each room's events, one routing replies); they end
    /// at shutdown, giving their subscriptions back to the bus.
    bus_tasks: JoinSet<()>,
}

/// What [`Gateway::start`] needs besides the shared state.
pub struct GatewayStart {
    pub shared: Arc<GatewayShared>,
    pub listen: SocketAddr,
    pub shard_count: usize,
    /// Past rounds per room, newest first, for the first snapshots.
    pub history: HashMap<String, Vec<PastRound>>,
    /// Builds the HTTP router of a shard.
    pub make_router: Box<dyn Fn(ShardEntry) -> axum::Router>,
    pub shutdown: CancellationToken,
}

/// The running shards: their threads and the queues the bus tasks feed them through.
struct Shards {
    local_addr: SocketAddr,
    threads: Vec<std::thread::JoinHandle<std::io::Result<()>>>,
    senders: Arc<Vec<mpsc::Sender<ShardMessage>>>,
}

impl Gateway {
    /// Subscribes to its replies and loads the banned and muted players (in this order,
    /// so a ban or mute made meanwhile arrives as a reply), binds the listeners, starts the shard threads,
    /// and spawns the bus tasks on the current tokio runtime.
    pub async fn start(start: GatewayStart) -> Result<Gateway, GatewayError> {
        assert!(start.shard_count > 0);
        let shared = &start.shared;
        let replies =
            (shared.bus.replies(&shared.id).await).map_err(|source| GatewayError::Subscribe {
                room: "replies".to_owned(),
                source,
            })?;
        for players in [&shared.limits.bans, &shared.limits.mutes] {
            let restricted = shared
                .ledger
                .restricted_players(players.restriction(), RESTRICTED_PLAYERS_MAX)
                .await?;
            players.load(restricted);
        }
        let shards = start_shards(&start)?;
        let bus_tasks =
            start_bus_tasks(&start.shared, shards.senders, replies, &start.shutdown).await?;
        Ok(Gateway {
            local_addr: shards.local_addr,
            shard_threads: shards.threads,
            bus_tasks,
        })
    }

    /// Waits, after the shutdown token fired, for the bus tasks to end and then for
    /// every shard thread to finish; fails only when the runtime could not wait.
    pub async fn join(mut self) -> Result<(), tokio::task::JoinError> {
        while let Some(joined) = self.bus_tasks.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "gateway bus task failed");
            }
        }
        let threads = self.shard_threads;
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                match thread.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::error!(%error, "shard failed"),
                    Err(_) => tracing::error!("shard panicked"),
                }
            }
        });
        joined.await
    }
}

/// Binds a listener per shard and starts each shard's thread.
fn start_shards(start: &GatewayStart) -> Result<Shards, GatewayError> {
    let config = &start.shared.config;
    let listeners = bind_listeners(start.listen, start.shard_count)?;
    let local_addr = listeners[0]
        .local_addr()
        .map_err(|source| GatewayError::Listen {
            addr: start.listen,
            source,
        })?;
    let mut senders = Vec::with_capacity(start.shard_count);
    let mut threads = Vec::with_capacity(start.shard_count);
    for (index, listener) in listeners.into_iter().enumerate() {
        let (message_sender, messages) = mpsc::channel(config.shard_queue_frames_max);
        let (upgrade_sender, upgrades) = mpsc::channel(config.shard_queue_frames_max);
        let router = (start.make_router)(ShardEntry {
            index,
            upgrades: upgrade_sender,
            seats: ShardSeats::new(config.connections_per_shard_max),
        });
        let setup = shard::ShardSetup {
            index,
            listener,
            router,
            shared: start.shared.clone(),
            messages,
            upgrades,
            history: start.history.clone(),
            shutdown: start.shutdown.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("aloft-shard-{index}"))
            .spawn(move || shard::run(setup))
            .map_err(GatewayError::Thread)?;
        senders.push(message_sender);
        threads.push(thread);
    }
    Ok(Shards {
        local_addr,
        threads,
        senders: Arc::new(senders),
    })
}

/// Subscribes to every room, and spawns the tasks that hand their events and this
/// gateway's `replies` to the shards until `shutdown`.
async fn start_bus_tasks(
    shared: &Arc<GatewayShared>,
    shards: Arc<Vec<mpsc::Sender<ShardMessage>>>,
    replies: futures_util::stream::BoxStream<'static, ReplyEnvelope>,
    shutdown: &CancellationToken,
) -> Result<JoinSet<()>, GatewayError> {
    let mut tasks = JoinSet::new();
    let subscribe_error = |room: &str| {
        let room = room.to_owned();
        move |source| GatewayError::Subscribe { room, source }
    };
    // Half a shard queue, so the replay leaves room for the live events behind it.
    let replay_events_max =
        (shared.config.recovery_window_events).min(shared.config.shard_queue_frames_max / 2);
    for room in &shared.rooms {
        let events = (shared.bus.subscribe(room).await).map_err(subscribe_error(room))?;
        let forward = forward_events(
            room.clone(),
            shared.bus.clone(),
            events,
            replay_events_max,
            Followers {
                shards: shards.clone(),
                operator: shared.operator_events.clone(),
            },
        );
        tasks.spawn(
            shutdown
                .clone()
                .run_until_cancelled_owned(forward)
                .map(drop),
        );
    }
    let route = route_replies(shared.clone(), replies, shards.clone());
    tasks.spawn(shutdown.clone().run_until_cancelled_owned(route).map(drop));
    tasks.spawn(answer_expired_requests(
        shared.clone(),
        shards,
        shutdown.clone(),
    ));
    Ok(tasks)
}

/// One SO_REUSEPORT listener per shard, all on the same address (the port of the first
/// when `listen` asks for port 0).
fn bind_listeners(
    listen: SocketAddr,
    count: usize,
) -> Result<Vec<std::net::TcpListener>, GatewayError> {
    let mut addr = listen;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let listener =
            bind_reuseport(addr).map_err(|source| GatewayError::Listen { addr, source })?;
        addr = listener
            .local_addr()
            .map_err(|source| GatewayError::Listen { addr, source })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG_CONNECTIONS)?;
    Ok(socket.into())
}

/// Events fetched from the bus's history to fill one gap, at most.
const GAP_FILL_EVENTS_MAX: usize = 1024;

/// Where a room's decoded events go: every shard, and the operator console's feed.
struct Followers {
    shards: Arc<Vec<mpsc::Sender<ShardMessage>>>,
    operator: Option<mpsc::Sender<FollowedEvent>>,
}

/// Parses and encodes each event of a room once, then hands it to every shard. A gap
/// reported by the bus is filled from the room's recent-events history when it still
/// holds the missed events; otherwise the shards see the seq jump and resend snapshots.
async fn forward_events(
    room: String,
    bus: Arc<dyn Bus>,
    events: futures_util::stream::BoxStream<'static, Delivery>,
    replay_events_max: usize,
    followers: Followers,
) {
    let room_name: Arc<str> = Arc::from(room.as_str());
    let mut last: Option<StreamPosition> = None;
    // A gateway that starts while the room plays (a cluster gateway, a restart) first
    // replays the room's retained events: its shards' views then know the round in
    // play, and their recovery rings serve clients that come over from another gateway.
    // Subscribed already, so nothing published meanwhile is missed; repeats are skipped.
    let retained = newest_retained(bus.as_ref(), &room, replay_events_max)
        .await
        .unwrap_or_else(|error| {
            bus_error(BusErrorPath::Retained);
            tracing::warn!(room, %error, "retained events unreadable: starting from live ones");
            Vec::new()
        });
    // Only live ticks measure the bus: retained and gap-filled ones are old by nature.
    let bus_lag = crate::metrics::gateway::bus_receive_lag(&room);
    let retained = retained
        .into_iter()
        .map(|event| (Delivery::Event(event), None));
    let live = events.map(|delivery| (delivery, Some(&bus_lag)));
    let mut deliveries = futures_util::stream::iter(retained).chain(live);
    while let Some((delivery, lag)) = deliveries.next().await {
        let (envelopes, lag) = match delivery {
            Delivery::Event(envelope) => (vec![envelope], lag),
            Delivery::Gap { missed } => {
                tracing::warn!(room, missed, ?last, "bus gap: filling from history");
                let filled = missed_events(bus.as_ref(), &room, last).await;
                let recovered = filled.unwrap_or_else(|error| {
                    bus_error(BusErrorPath::GapFill);
                    tracing::warn!(room, %error, "gap not filled: shards resend snapshots");
                    Vec::new()
                });
                (recovered, None)
            }
        };
        for envelope in envelopes {
            // Events recovered from history may arrive again live: forward each once.
            let position = envelope.position();
            if last.is_some_and(|last| last.covers(position)) {
                continue;
            }
            last = Some(position);
            forward_event(&room_name, &envelope, &followers, lag);
        }
    }
}

/// The newest `events_max` retained events of the room's newest epoch, oldest first.
async fn newest_retained(
    bus: &dyn Bus,
    room: &str,
    events_max: usize,
) -> Result<Vec<EventEnvelope>, crate::bus::BusError> {
    let mut retained = bus.recent_events(room, 0, GAP_FILL_EVENTS_MAX).await?;
    let older = retained.len().saturating_sub(events_max);
    retained.drain(..older);
    Ok(retained)
}

/// The retained events after `last`: the rest of its epoch, or, when the room has moved
/// to a newer epoch meanwhile, that epoch from its start.
async fn missed_events(
    bus: &dyn Bus,
    room: &str,
    last: Option<StreamPosition>,
) -> Result<Vec<EventEnvelope>, crate::bus::BusError> {
    let after_seq = last.map_or(0, |last| last.seq);
    let missed = bus
        .recent_events(room, after_seq, GAP_FILL_EVENTS_MAX)
        .await?;
    let same_epoch = missed
        .first()
        .is_some_and(|first| last.is_some_and(|last| last.epoch == first.epoch));
    if same_epoch || after_seq == 0 {
        return Ok(missed);
    }
    // Empty or of another epoch: the newest epoch may have begun below `after_seq`.
    bus.recent_events(room, 0, GAP_FILL_EVENTS_MAX).await
}

/// `bus_lag`: where to record a live tick's time from the engine to here.
fn forward_event(
    room: &Arc<str>,
    envelope: &EventEnvelope,
    followers: &Followers,
    bus_lag: Option<&Histogram>,
) {
    let event: RoomEvent = match serde_json::from_slice(&envelope.json) {
        Ok(event) => event,
        Err(error) => {
            bus_error(BusErrorPath::Undecodable);
            tracing::error!(%room, %error, "undecodable event on the bus");
            return;
        }
    };
    if let (Some(bus_lag), RoomEvent::Tick { at, .. }) = (bus_lag, &event) {
        bus_lag.record(crate::metrics::gateway::seconds_since(*at));
    }
    let event = Arc::new(event);
    if let Some(operator) = &followers.operator {
        let followed = FollowedEvent {
            room: room.clone(),
            epoch: envelope.epoch,
            event: event.clone(),
        };
        // A console that fell this far behind sees the seq jump and says so.
        let _ = operator.try_send(followed);
    }
    let frame = frame::text(&envelope.json);
    for shard in followers.shards.iter() {
        let message = ShardMessage::Event {
            room: room.clone(),
            epoch: envelope.epoch,
            event: event.clone(),
            frame: frame.clone(),
            conflatable: envelope.conflatable,
        };
        if shard.try_send(message).is_err() {
            // A shard this far behind is stalled; it resyncs from the seq gap.
            metrics::counter!(crate::metrics::SHARD_QUEUE_DROPPED).increment(1);
        }
    }
}

/// Routes each private reply to the shard of its connection, or, when that socket is
/// gone, to the player's other sockets on this gateway; applies operators' controls of
/// players.
async fn route_replies(
    shared: Arc<GatewayShared>,
    mut replies: futures_util::stream::BoxStream<'static, ReplyEnvelope>,
    shards: Arc<Vec<mpsc::Sender<ShardMessage>>>,
) {
    while let Some(reply) = replies.next().await {
        if let Some(control) = reply.control {
            control_player(&shared, &shards, &reply.to.player, control).await;
            continue;
        }
        let Some(targets) = reply_targets(&shared, &reply) else {
            metrics::counter!(crate::metrics::DUPLICATE_REPLIES_DROPPED).increment(1);
            tracing::debug!(player = %reply.to.player, "second answer to a request dropped");
            continue;
        };
        let frame = frame::text(&reply.json);
        for connection in targets {
            send_reply_to_shard(&shards, connection, &reply.to.player, frame.clone()).await;
        }
    }
}

/// Applies an operator's `control` of `player` here: the ban or mute set first (so a
/// socket authenticating meanwhile is refused), then, for a kick or ban, a close of each
/// of the player's sockets.
async fn control_player(
    shared: &GatewayShared,
    shards: &[mpsc::Sender<ShardMessage>],
    player: &str,
    control: PlayerControl,
) {
    if let Some((restriction, restricted)) = control.restriction_change() {
        let players = shared.limits.restricted(restriction);
        if !restricted {
            players.remove(player);
        } else if let Err(full) = players.insert(player) {
            tracing::error!(player, %full, "restriction not held by this gateway");
        }
    }
    let (code, reason) = match control {
        PlayerControl::Ban => (crate::protocol::close_code::BANNED, "banned by an operator"),
        PlayerControl::Kick => (crate::protocol::close_code::KICKED, "kicked by an operator"),
        PlayerControl::Unban | PlayerControl::Mute | PlayerControl::Unmute => return,
    };
    let connections = shared
        .players
        .get(player)
        .map(|ids| ids.clone())
        .unwrap_or_default();
    tracing::info!(
        player,
        ?control,
        sockets = connections.len(),
        "player's sockets closed"
    );
    for connection in connections {
        let index = (connection >> shard::CONNECTION_ID_SHARD_SHIFT) as usize;
        let Some(shard) = shards.get(index) else {
            continue;
        };
        let message = ShardMessage::Close {
            connection,
            player: player.to_owned(),
            code,
            reason,
        };
        if shard.send(message).await.is_err() {
            tracing::debug!(connection, "close for a stopped shard");
        }
    }
}

/// The connections `reply` goes to: its own while it is open, else the player's others
/// (none when the player has no socket here). `None` when it answers a request its open
/// connection no longer awaits: the request was answered already, so this is dropped.
fn reply_targets(shared: &GatewayShared, reply: &ReplyEnvelope) -> Option<Vec<u64>> {
    let Some(ids) = shared.players.get(&reply.to.player) else {
        return Some(Vec::new());
    };
    if !ids.contains(&reply.to.connection) {
        return Some(ids.clone());
    }
    if let Some(request) = &reply.answers
        && !shared.requests.finish(reply.to.connection, request)
    {
        return None;
    }
    Some(vec![reply.to.connection])
}

/// How often requests past `gateway.request_timeout_ms` are looked for.
const REQUEST_EXPIRY_INTERVAL_MS: u64 = 250;

/// Answers `unavailable` every request that waited `gateway.request_timeout_ms` without
/// an answer (its command lost with the bus): the client hears back and its slot in
/// `requests_in_flight_max` is free; a late real answer is dropped (see [`requests`]).
async fn answer_expired_requests(
    shared: Arc<GatewayShared>,
    shards: Arc<Vec<mpsc::Sender<ShardMessage>>>,
    shutdown: CancellationToken,
) {
    let interval = std::time::Duration::from_millis(REQUEST_EXPIRY_INTERVAL_MS);
    let mut sweep = tokio::time::interval(interval);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = tokio::select! {
            _ = shutdown.cancelled() => return,
            now = sweep.tick() => now,
        };
        for expired in shared.requests.expire(now) {
            metrics::counter!(crate::metrics::REQUESTS_TIMED_OUT).increment(1);
            let answer = expired.answer(shared.requests.request_timeout());
            let frame = frame::text(crate::protocol::encode(&answer).as_bytes());
            send_reply_to_shard(&shards, expired.connection, &expired.player, frame).await;
        }
    }
}

/// Waits for room in the shard's queue rather than dropping: a reply may carry money
/// (`bet_ok`, `cashout_ok`); the wait pushes back on the bus's bounded reply queue.
async fn send_reply_to_shard(
    shards: &[mpsc::Sender<ShardMessage>],
    connection: u64,
    player: &str,
    frame: Bytes,
) {
    let index = (connection >> shard::CONNECTION_ID_SHARD_SHIFT) as usize;
    let Some(shard) = shards.get(index) else {
        return;
    };
    let message = ShardMessage::Reply {
        connection,
        player: player.to_owned(),
        frame,
    };
    if shard.send(message).await.is_err() {
        tracing::debug!(connection, "reply for a stopped shard");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::MemoryBus;

    const EPOCH: u64 = 1_763_900_000_000;

    async fn publish(bus: &MemoryBus, epoch: u64, seqs: std::ops::RangeInclusive<u64>) {
        for seq in seqs {
            let event = EventEnvelope {
                room: "r1".into(),
                epoch,
                seq,
                conflatable: false,
                json: Bytes::from(format!("{{\"seq\":{seq}}}")),
            };
            bus.publish(event).await.unwrap();
        }
    }

    async fn missed(bus: &MemoryBus, last: Option<(u64, u64)>) -> Vec<(u64, u64)> {
        let last = last.map(|(epoch, seq)| StreamPosition { epoch, seq });
        missed_events(bus, "r1", last)
            .await
            .unwrap()
            .iter()
            .map(|event| (event.epoch, event.seq))
            .collect()
    }

    fn reply(
        connection: u64,
        answers: Option<&crate::bus::RequestId>,
        message: &crate::protocol::ServerMessage,
    ) -> ReplyEnvelope {
        ReplyEnvelope {
            answers: answers.cloned(),
            control: None,
            to: crate::bus::ReplyTo {
                gateway: "gw".into(),
                connection,
                player: "p".into(),
            },
            json: Bytes::from(crate::protocol::encode(message)),
        }
    }

    /// The shared state of gateway `gw` serving room `r1` on `bus`.
    fn shared(bus: Arc<dyn Bus>) -> GatewayShared {
        GatewayShared {
            id: "gw".into(),
            config: GatewayConfig::default(),
            rooms: vec!["r1".into()],
            bus,
            ledger: Arc::new(crate::ledger::SqliteLedger::open_in_memory().unwrap()),
            players: DashMap::new(),
            limits: Arc::new(crate::admission::ConnectionLimits::new(
                &crate::config::LimitsConfig::default(),
            )),
            requests: requests::RequestsInFlight::new(4, std::time::Duration::from_secs(8)),
            growth_rate_per_ms_millionths: 60,
            traffic: Arc::new(traffic::Traffic::new(1)),
            operator_events: None,
        }
    }

    /// Bytes of a socket's session task, held for the socket's whole life.
    const SESSION_TASK_BYTES_MAX: usize = 1_024;

    #[tokio::test]
    async fn a_sockets_session_task_stays_small() {
        let shared = shared(Arc::new(MemoryBus::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let connection = connection::Connection::new(1, "r1".into(), stream, 4);
        let inbound = session::Inbound::new(Default::default(), &shared.config, Vec::new());
        let shutdown = CancellationToken::new();
        let task = session::run(&shared, &shutdown, std::rc::Rc::new(connection), inbound);
        // Every byte here is paid once per open socket: a buffer held across an await
        // (the drain's 4 KiB once was) belongs on the heap, allocated when needed.
        let task_bytes = std::mem::size_of_val(&task);
        assert!(
            task_bytes <= SESSION_TASK_BYTES_MAX,
            "session task {task_bytes} bytes"
        );
    }

    #[tokio::test]
    async fn a_stopped_gateway_gives_its_bus_subscriptions_back() {
        let bus = Arc::new(MemoryBus::default());
        let shutdown = CancellationToken::new();
        let gateway = Gateway::start(GatewayStart {
            shared: Arc::new(shared(bus.clone())),
            listen: "127.0.0.1:0".parse().unwrap(),
            shard_count: 1,
            history: HashMap::new(),
            make_router: Box::new(|_| axum::Router::new()),
            shutdown: shutdown.clone(),
        })
        .await
        .unwrap();
        assert_eq!(bus.gateways().await.unwrap(), ["gw"]);
        shutdown.cancel();
        gateway.join().await.unwrap();
        // The reply stream was the bus tasks': a gateway that stopped hears nothing more.
        assert!(bus.gateways().await.unwrap().is_empty());
        let reply = reply(
            5,
            None,
            &crate::protocol::ServerMessage::Balance {
                balance: 1,
                cashout: None,
                refund: None,
            },
        );
        assert!(matches!(
            bus.send_reply(reply).await,
            Err(crate::bus::BusError::NoReceiver { .. })
        ));
    }

    #[test]
    fn a_second_answer_to_a_request_is_dropped_and_other_replies_pass() {
        use crate::bus::RequestKind;
        use crate::protocol::{ErrorCode, ServerMessage};
        let shared = shared(Arc::new(MemoryBus::default()));
        shared.players.insert("p".into(), vec![5, 6]);
        let bet = crate::bus::RequestId {
            kind: RequestKind::Bet,
            req: "b1".into(),
        };
        let now = tokio::time::Instant::now();
        shared.requests.begin(5, "p", bet.clone(), now).unwrap();
        let bet_err = ServerMessage::BetErr {
            req: "b1".into(),
            code: ErrorCode::Internal,
            message: "retry".into(),
        };
        let bet_err = |connection| reply(connection, Some(&bet), &bet_err);
        assert_eq!(reply_targets(&shared, &bet_err(5)), Some(vec![5]));
        // The same answer again (a new engine leader re-handling the command): dropped.
        assert_eq!(reply_targets(&shared, &bet_err(5)), None);
        // Unrequested frames are not answers: delivered.
        let balance = ServerMessage::Balance {
            balance: 1,
            cashout: None,
            refund: None,
        };
        assert_eq!(
            reply_targets(&shared, &reply(5, None, &balance)),
            Some(vec![5])
        );
        // The requesting socket is gone: the player's others learn the outcome.
        assert_eq!(reply_targets(&shared, &bet_err(7)), Some(vec![5, 6]));
    }

    #[tokio::test]
    async fn a_gap_is_filled_from_the_rest_of_the_epoch_or_the_start_of_a_newer_one() {
        let bus = MemoryBus::default();
        publish(&bus, EPOCH, 1..=5).await;
        assert_eq!(
            missed(&bus, Some((EPOCH, 3))).await,
            [(EPOCH, 4), (EPOCH, 5)]
        );
        assert_eq!(missed(&bus, None).await.len(), 5);
        // The engine restarted: its new epoch is short of the old seq, then past it.
        publish(&bus, EPOCH + 1, 1..=2).await;
        assert_eq!(
            missed(&bus, Some((EPOCH, 5))).await,
            [(EPOCH + 1, 1), (EPOCH + 1, 2)]
        );
        publish(&bus, EPOCH + 1, 3..=7).await;
        assert_eq!(missed(&bus, Some((EPOCH, 5))).await.len(), 7);
        assert_eq!(missed(&bus, Some((EPOCH + 1, 6))).await, [(EPOCH + 1, 7)]);
    }
}
