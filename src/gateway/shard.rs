//! A shard: one OS thread running a current_thread tokio runtime that owns a listener
//! (SO_REUSEPORT, so the kernel spreads new connections over the shards) and every
//! socket it accepted. The fan-out of a public frame is a loop on this thread over this
//! shard's sockets: no lock, no cross-thread hop, no per-socket allocation.
//!
//! HTTP requests on a shard's sockets are served by hyper with the process's axum router;
//! a `/ws` upgrade comes back to the shard as a [`PendingUpgrade`], and the shard adopts
//! the raw `TcpStream` (hyper's upgrade hands it back untouched). A socket joins its room
//! with a snapshot, or, when it resumes from a position this shard's [`RecoveryRing`]
//! still covers, with the frames it missed.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use slab::Slab;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tungstenite::protocol::WebSocketConfig;

use super::connection::{CloseDeadlines, Connection};
use super::handoff::{AdmissionSlots, Credentials, PendingUpgrade};
use super::message::{ShardMessage, is_superseded_tick};
use super::recovery::{Continuity, RecoveryFrame, RecoveryRing};
use super::room_view::RoomView;
use super::traffic::{FanOut, Traffic};
use super::{GatewayShared, frame, session};
use crate::bus::StreamPosition;
use crate::config::GatewayConfig;
use crate::ledger::Account;
use crate::metrics::gateway::{CloseReason, RoomShardMetrics, ShardMetrics, socket_closed};
use crate::protocol::{self, PROTOCOL_VERSION, RoomEvent, ServerMessage, close_code};

/// Messages a shard takes per wake-up of its fan-out loop.
const SHARD_BATCH_MESSAGES_MAX: usize = 64;

/// Time given to sockets to flush their close frames at shutdown.
const SHUTDOWN_GRACE_MS: u64 = 2_000;

/// Interval of the shard's sweep over its sockets (pings, idle timeouts, close
/// deadlines).
const HOUSEKEEPING_INTERVAL_MS: u64 = 1_000;

/// Bits of a connection id below the shard index.
pub const CONNECTION_ID_SHARD_SHIFT: u32 = 48;

/// The sockets of one room on this shard.
struct RoomShard {
    view: RoomView,
    /// The room's last public frames, for sockets that resume; also the judge of
    /// whether an event continues what the sockets were sent.
    recovery: RecoveryRing,
    members: Slab<Rc<Connection>>,
    metrics: RoomShardMetrics,
}

impl RoomShard {
    /// Events were lost upstream, or the engine restarted (a new epoch), or the gateway
    /// started after its engine: every socket of the room starts over from a fresh
    /// snapshot rather than a gap it cannot fill.
    fn resend_snapshots(&self) {
        let snapshot = frame::text(protocol::encode(&self.view.snapshot()).as_bytes());
        for (_, connection) in self.members.iter() {
            connection.send_private(snapshot.clone());
        }
    }

    /// Offers a public frame to every socket of the room; counted once per fan-out.
    fn offer(&self, frame: &Bytes, conflatable: bool, (traffic, shard): (&Traffic, usize)) {
        let mut fan_out = FanOut::default();
        for (_, connection) in self.members.iter() {
            fan_out.count(connection.offer(frame, conflatable));
        }
        let (delivered, dropped) = (fan_out.delivered(), fan_out.sockets - fan_out.delivered());
        let (queued, conflated) = (fan_out.queued + fan_out.conflated, fan_out.conflated);
        (self.metrics).fanned_out(delivered, queued, conflated, dropped);
        traffic.fanned_out(shard, &fan_out);
    }
}

/// State owned by the shard thread.
pub struct ShardState {
    pub index: usize,
    pub shared: Arc<GatewayShared>,
    pub ws_config: WebSocketConfig,
    pub shutdown: CancellationToken,
    rooms: RefCell<HashMap<String, RoomShard>>,
    registry: RefCell<HashMap<u64, Rc<Connection>>>,
    /// Sockets opened without a URL token, waiting for their `auth` message, with the
    /// time they were adopted: the sweep closes them after `gateway.auth_timeout_ms`.
    awaiting_auth: RefCell<HashMap<u64, (tokio::time::Instant, Rc<Connection>)>>,
    next_connection: Cell<u64>,
    metrics: ShardMetrics,
}

/// Everything a shard thread starts with.
pub struct ShardSetup {
    pub index: usize,
    pub listener: std::net::TcpListener,
    pub router: axum::Router,
    pub shared: Arc<GatewayShared>,
    pub messages: mpsc::Receiver<ShardMessage>,
    pub upgrades: mpsc::Receiver<PendingUpgrade>,
    pub history: HashMap<String, Vec<protocol::PastRound>>,
    pub shutdown: CancellationToken,
}

/// Runs a shard on the current thread until shutdown; returns when its sockets are closed.
pub fn run(setup: ShardSetup) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve(setup))
}

/// How tungstenite reads a socket's frames: the message size limit applies to every
/// frame too, and nothing is written through tungstenite but its control replies. Public
/// so the WebSocket fuzz target reads bytes exactly as a shard does.
pub fn websocket_config(config: &GatewayConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(0)
        .max_message_size(Some(config.inbound_message_bytes_max))
        .max_frame_size(Some(config.inbound_message_bytes_max))
}

async fn serve(setup: ShardSetup) -> std::io::Result<()> {
    let listener = TcpListener::from_std(setup.listener)?;
    let config = &setup.shared.config;
    let ws_config = websocket_config(config);
    let rooms = setup
        .shared
        .rooms
        .iter()
        .map(|room| {
            let history = setup.history.get(room).cloned().unwrap_or_default();
            let view = RoomView::new(
                room,
                history,
                config.snapshot_history_rounds,
                config.snapshot_bets_max,
            );
            (
                room.clone(),
                RoomShard {
                    view,
                    recovery: RecoveryRing::new(config.recovery_window_events),
                    members: Slab::new(),
                    metrics: RoomShardMetrics::new(room, setup.index),
                },
            )
        })
        .collect();
    let shard = Rc::new(ShardState {
        index: setup.index,
        shared: setup.shared.clone(),
        ws_config,
        shutdown: setup.shutdown.clone(),
        rooms: RefCell::new(rooms),
        registry: RefCell::new(HashMap::new()),
        awaiting_auth: RefCell::new(HashMap::new()),
        next_connection: Cell::new(1),
        metrics: ShardMetrics::new(setup.index),
    });
    let tracker = TaskTracker::new();
    tracker.spawn_local(fan_out_loop(shard.clone(), setup.messages));
    tracker.spawn_local(housekeeping_loop(shard.clone()));
    tracker.spawn_local(adopt_loop(shard.clone(), setup.upgrades, tracker.clone()));
    accept_loop(&shard, listener, setup.router, &tracker).await;
    tracker.close();
    let grace = Duration::from_millis(SHUTDOWN_GRACE_MS);
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            shard = shard.index,
            "sockets still open after the shutdown grace"
        );
    }
    Ok(())
}

async fn accept_loop(
    shard: &Rc<ShardState>,
    listener: TcpListener,
    router: axum::Router,
    tracker: &TaskTracker,
) {
    let handshake_timeout = Duration::from_millis(shard.shared.config.handshake_timeout_ms);
    loop {
        let accepted = tokio::select! {
            _ = shard.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The peer address rides on every request of the connection, for the
        // per-address limits of the HTTP layer (`ConnectInfo`).
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        let shutdown = shard.shutdown.clone();
        tracker.spawn_local(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(handshake_timeout)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
            }
        });
    }
}

async fn adopt_loop(
    shard: Rc<ShardState>,
    mut upgrades: mpsc::Receiver<PendingUpgrade>,
    tracker: TaskTracker,
) {
    loop {
        let pending = tokio::select! {
            _ = shard.shutdown.cancelled() => return,
            pending = upgrades.recv() => match pending {
                Some(pending) => pending,
                None => return,
            },
        };
        tracker.spawn_local(adopt(shard.clone(), pending));
    }
}

/// Takes over an upgraded socket: hello, snapshot or missed events, membership, then
/// its task. The socket's places (`pending.slots`, `pending.seat`) are given back when
/// this returns, however it ends.
async fn adopt(shard: Rc<ShardState>, pending: PendingUpgrade) {
    let _seat = pending.seat;
    let mut slots = pending.slots;
    let Ok(upgraded) = pending.upgrade.await else {
        return;
    };
    let parts = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => parts,
        Err(_) => unreachable!("shards serve plain TcpStreams"),
    };
    let stream = parts.io.into_inner();
    // hyper's leftover bytes share its whole read buffer: copy them out (usually none) so
    // the buffer is freed now rather than held for the socket's life.
    let early_bytes = parts.read_buf.to_vec();
    drop(parts.read_buf);
    let id = (shard.index as u64) << CONNECTION_ID_SHARD_SHIFT | shard.next_connection.get();
    shard.next_connection.set(shard.next_connection.get() + 1);
    let connection = Rc::new(Connection::new(
        id,
        pending.room,
        stream,
        shard.shared.config.outbound_queue_frames_max,
    ));
    let mut inbound = session::Inbound::new(shard.ws_config, &shard.shared.config, early_bytes);
    let credentials = pending.credentials;
    let Some(player) = player_of(&shard, &connection, credentials, &mut slots, &mut inbound).await
    else {
        return;
    };
    connection.authenticate(player);
    match shard
        .shared
        .ledger
        .balance(&Account::Player(connection.player().to_owned()))
        .await
    {
        // Banned since its token was checked (a ban while the balance was read): no join.
        Ok(_) if shard.shared.limits.bans.contains(connection.player()) => {
            connection.close(close_code::BANNED, "banned by an operator");
            session::finish_close(&shard.shared, &shard.shutdown, &connection).await;
        }
        Ok(balance) => {
            // Counted before the hello goes out, so a client that has its hello is counted.
            shard.metrics.connections.increment(1.0);
            shard.shared.traffic.connection(shard.index, true);
            shard.join(&connection, balance, pending.since);
            session::run(&shard.shared, &shard.shutdown, connection.clone(), inbound).await;
            shard.leave(&connection);
            shard.shared.traffic.connection(shard.index, false);
            shard.metrics.connections.decrement(1.0);
        }
        Err(error) => {
            tracing::error!(%error, "cannot read a balance for hello");
            connection.close(1011, "ledger unavailable");
            connection.flush();
        }
    }
}

/// The player a socket belongs to: the URL token's, or the one its first message
/// authenticates, which then takes its place in the per-player count (the socket waits
/// in `awaiting_auth` meanwhile, so the sweep can close it); `None` once a socket that
/// failed to authenticate, or is one too many for its player, is closed.
async fn player_of(
    shard: &ShardState,
    connection: &Rc<Connection>,
    credentials: Credentials,
    slots: &mut AdmissionSlots,
    inbound: &mut session::Inbound,
) -> Option<String> {
    let tokens = match credentials {
        Credentials::Player(player) => return Some(player),
        Credentials::FirstMessage(tokens) => tokens,
    };
    let adopted_at = tokio::time::Instant::now();
    shard
        .awaiting_auth
        .borrow_mut()
        .insert(connection.id, (adopted_at, connection.clone()));
    let player = session::first_message_player(connection, inbound, &tokens)
        .await
        .and_then(|player| match shard.shared.limits.admit_player(&player) {
            Ok(slot) => {
                slots.player = Some(slot);
                Some(player)
            }
            Err(refusal) => {
                metrics::counter!(crate::metrics::ADMISSION_REFUSED, "reason" => refusal.code())
                    .increment(1);
                connection.close(refusal.close_code(), &refusal.to_string());
                None
            }
        });
    if player.is_none() {
        session::finish_close(&shard.shared, &shard.shutdown, connection).await;
    }
    shard.awaiting_auth.borrow_mut().remove(&connection.id);
    player
}

impl ShardState {
    /// Queues hello and then either the frames of every event after `since` (when the
    /// client resumes from a position the room's ring still covers) or a snapshot, and
    /// makes the socket a member of its room, with no await in between, so the live
    /// frames that follow continue exactly from what was queued.
    fn join(&self, connection: &Rc<Connection>, balance: i64, since: Option<StreamPosition>) {
        let mut rooms = self.rooms.borrow_mut();
        let room = rooms
            .get_mut(&connection.room)
            .expect("the HTTP layer admits only configured rooms");
        let missed = since.and_then(|since| room.recovery.frames_after(since));
        let recovered = since.map(|_| missed.is_some());
        if let Some(recovered) = recovered {
            let result = if recovered { "recovered" } else { "snapshot" };
            metrics::counter!(crate::metrics::RECOVERIES, "result" => result).increment(1);
        }
        let hello = ServerMessage::Hello {
            player: connection.player().to_owned(),
            balance,
            server_time: crate::clock::unix_now_ms(),
            proto: PROTOCOL_VERSION,
            room: connection.room.clone(),
            growth: self.shared.growth_rate_per_ms_millionths,
            recovered,
        };
        connection.send_private(frame::text(protocol::encode(&hello).as_bytes()));
        match missed {
            Some(frames) => {
                for replayed in frames {
                    connection.offer(&replayed.frame, replayed.conflatable);
                }
            }
            None => {
                let snapshot = protocol::encode(&room.view.snapshot());
                connection.send_private(frame::text(snapshot.as_bytes()));
            }
        }
        connection
            .member_key
            .set(room.members.insert(connection.clone()));
        self.registry
            .borrow_mut()
            .insert(connection.id, connection.clone());
        self.shared
            .players
            .entry(connection.player().to_owned())
            .or_default()
            .push(connection.id);
    }

    fn leave(&self, connection: &Rc<Connection>) {
        if let Some(room) = self.rooms.borrow_mut().get_mut(&connection.room) {
            room.members.remove(connection.member_key.get());
        }
        self.registry.borrow_mut().remove(&connection.id);
        self.shared.requests.forget(connection.id);
        self.shared
            .players
            .remove_if_mut(connection.player(), |_, ids| {
                ids.retain(|id| *id != connection.id);
                ids.is_empty()
            });
    }

    /// Applies `event` to the room's view and its recovery ring and, unless a newer tick
    /// supersedes it, offers its frame to every socket of the room.
    fn publish(
        &self,
        room_name: &str,
        epoch: u64,
        event: &RoomEvent,
        (frame, conflatable): (&Bytes, bool),
        superseded: bool,
    ) {
        let mut rooms = self.rooms.borrow_mut();
        let Some(room) = rooms.get_mut(room_name) else {
            return;
        };
        room.view.apply(epoch, event);
        // Superseded ticks go into the ring too: a resuming client gets every event.
        let recovery_frame = RecoveryFrame {
            frame: frame.clone(),
            conflatable,
        };
        let joined_mid_stream = !room.recovery.has_run();
        if room.recovery.push(epoch, event.seq(), recovery_frame) == Continuity::Restarted {
            if joined_mid_stream {
                tracing::info!(
                    room = room_name,
                    epoch,
                    seq = event.seq(),
                    "following the room"
                );
            } else {
                tracing::warn!(
                    room = room_name,
                    epoch,
                    seq = event.seq(),
                    "event gap or new epoch: resending snapshots"
                );
                room.metrics.event_gaps.increment(1);
            }
            room.resend_snapshots();
            return;
        }
        if superseded {
            room.metrics.ticks_skipped.increment(1);
            return;
        }
        if !room.members.is_empty() {
            room.metrics.delivering(event);
        }
        room.offer(frame, conflatable, (&self.shared.traffic, self.index));
    }

    /// Closes the connection with `code`, if it is still the player's; its task then
    /// writes the close frame and drains as for any close of ours.
    fn close_connection(&self, connection_id: u64, player: &str, (code, reason): (u16, &str)) {
        let registry = self.registry.borrow();
        if let Some(connection) = registry
            .get(&connection_id)
            .filter(|c| c.player() == player)
        {
            connection.close(code, reason);
        }
    }

    fn deliver_reply(&self, connection_id: u64, player: &str, frame: Bytes) {
        let registry = self.registry.borrow();
        if let Some(connection) = registry
            .get(&connection_id)
            .filter(|c| c.player() == player)
        {
            self.shared.traffic.offered(connection.send_reply(frame));
        }
    }
}

/// Every second: pings every socket once per `ping_interval_ms` (one shared frame),
/// closes those silent for `idle_timeout_ms` and drops closing sockets past their close
/// deadlines (`close_write_timeout_ms`, `close_drain_timeout_ms`), whether their peer
/// reads or not. At shutdown: closes every socket with 1001. One sweep per shard instead
/// of timers per socket.
async fn housekeeping_loop(shard: Rc<ShardState>) {
    let config = &shard.shared.config;
    let ping_interval = Duration::from_millis(config.ping_interval_ms);
    let idle_timeout = Duration::from_millis(config.idle_timeout_ms);
    let close_deadlines = CloseDeadlines::new(config);
    let auth_timeout = Duration::from_millis(config.auth_timeout_ms);
    let mut sweep = tokio::time::interval(Duration::from_millis(HOUSEKEEPING_INTERVAL_MS));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_ping = tokio::time::Instant::now() + ping_interval;
    let ping = frame::ping();
    loop {
        tokio::select! {
            _ = shard.shutdown.cancelled() => break,
            now = sweep.tick() => {
                let ping_now = now >= next_ping;
                if ping_now {
                    next_ping = now + ping_interval;
                }
                for (adopted_at, connection) in shard.awaiting_auth.borrow().values() {
                    if connection.close_overdue(now, close_deadlines) {
                        connection.abort();
                    } else if now.duration_since(*adopted_at) > auth_timeout
                        && connection.close(close_code::AUTH_FAILED, "no auth message in time")
                    {
                        socket_closed(CloseReason::AuthTimeout);
                    }
                }
                for connection in shard.registry.borrow().values() {
                    if connection.close_overdue(now, close_deadlines) {
                        connection.abort();
                    } else if now.duration_since(connection.last_inbound()) > idle_timeout {
                        if connection.close(close_code::IDLE_TIMEOUT, "idle timeout") {
                            socket_closed(CloseReason::IdleTimeout);
                        }
                    } else if ping_now {
                        connection.send_private(ping.clone());
                    }
                }
            }
        }
    }
    for connection in shard.registry.borrow().values() {
        connection.close(close_code::GOING_AWAY, "server shutting down");
    }
}

async fn fan_out_loop(shard: Rc<ShardState>, mut messages: mpsc::Receiver<ShardMessage>) {
    let mut batch = Vec::with_capacity(SHARD_BATCH_MESSAGES_MAX);
    loop {
        batch.clear();
        let received = tokio::select! {
            _ = shard.shutdown.cancelled() => return,
            received = messages.recv_many(&mut batch, SHARD_BATCH_MESSAGES_MAX) => received,
        };
        if received == 0 {
            return;
        }
        for index in 0..batch.len() {
            let superseded = is_superseded_tick(&batch, index);
            match &batch[index] {
                ShardMessage::Event {
                    room,
                    epoch,
                    event,
                    frame,
                    conflatable,
                } => shard.publish(room, *epoch, event, (frame, *conflatable), superseded),
                ShardMessage::Reply {
                    connection,
                    player,
                    frame,
                } => shard.deliver_reply(*connection, player, frame.clone()),
                ShardMessage::Close {
                    connection,
                    player,
                    code,
                    reason,
                } => shard.close_connection(*connection, player, (*code, reason)),
            }
        }
    }
}
