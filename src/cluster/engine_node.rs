//! The engine role of a cluster: [`EngineNode`] leads the rooms it holds a lease on and
//! stands by for the others.
//!
//! Each room has a loop in this process. While another engine leads the room, the loop
//! polls its lease every `cluster.standby_poll_interval_ms`. When the lease is free it
//! takes it (only its share of the rooms at first, so rooms spread over the live engines;
//! any room left without a leader for a whole lease TTL is taken by whoever sees it), then:
//! 1. takes the room's next fencing token from the ledger, which raises the ledger's fence
//!    to it, so the previous leader can write no more, and records it in the lease;
//! 2. runs the room with [`crate::engine::lead_room`]: resuming the round the previous
//!    leader left in flight, every ledger write carrying the token;
//! 3. keeps renewing the lease meanwhile ([`lease::keep`]); losing it stops the room at once.
//!
//! Stopping the node hands every room over: each room stops where it is (no refund), the
//! lease is released, and a standby resumes the round in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::lease::{self, LeaseGrant, Leases, RoomLease};
use crate::Config;
use crate::bus::{Bus, BusError, RedisBus};
use crate::clock::{Clock, SystemClock};
use crate::config::ConfigError;
use crate::engine::{EngineDeps, EngineError, Leadership};
use crate::fair::{FairChain, FairError};
use crate::ledger::{Fence, Ledger, LedgerError, PostgresLedger, RoundStatus};
use crate::server::{redis_options, room_settings};
use crate::status::LeadingRooms;
use crate::status::publisher::Reporter;

/// Why the engine role could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineNodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// A running engine process.
pub struct EngineNode {
    pub engine_id: String,
    shutdown: CancellationToken,
    rooms: JoinSet<()>,
}

/// What every room loop of the node shares.
struct NodeShared {
    config: Arc<Config>,
    bus: Arc<dyn Bus>,
    ledger: Arc<dyn Ledger>,
    leases: Leases,
    /// Rooms this node leads now.
    leading: AtomicUsize,
    /// Engines alive in the cluster, this one included, as of the last heartbeat.
    engines_alive: AtomicUsize,
    /// The handover token of each room this node leads: cancelling one gives the room
    /// to another engine (to spread the rooms when engines join).
    led_rooms: Mutex<HashMap<String, CancellationToken>>,
    /// The rooms this node leads, with their epochs, tokens and ack latency, for its
    /// status reports.
    leading_rooms: Arc<LeadingRooms>,
    clock: Arc<dyn Clock>,
}

impl EngineNode {
    /// Connects to Redis and PostgreSQL and starts a loop per configured room.
    pub async fn start(config: Config, engine_id: String) -> Result<EngineNode, EngineNodeError> {
        config.validate_for_cluster()?;
        let config = Arc::new(config);
        let ledger: Arc<dyn Ledger> = Arc::new(
            PostgresLedger::connect(
                &config.database_url,
                config.ledger.postgres_pool_connections_max,
            )
            .await?,
        );
        let bus = RedisBus::connect(&config.redis_url, redis_options(&config, &engine_id)).await?;
        let leases = Leases::new(&bus, engine_id.clone(), config.cluster.lease_ttl_ms);
        let shared = Arc::new(NodeShared {
            config: config.clone(),
            bus: Arc::new(bus),
            ledger,
            leases,
            leading: AtomicUsize::new(0),
            engines_alive: AtomicUsize::new(1),
            led_rooms: Mutex::new(HashMap::new()),
            leading_rooms: Arc::default(),
            clock: Arc::new(SystemClock),
        });
        let shutdown = CancellationToken::new();
        let mut rooms = JoinSet::new();
        rooms.spawn(heartbeat_loop(shared.clone(), shutdown.clone()));
        let reporter = Reporter::Engine {
            id: engine_id.clone(),
            rooms: shared.leading_rooms.clone(),
        };
        rooms.spawn(crate::status::publisher::run(
            shared.bus.clone(),
            vec![reporter],
            shutdown.clone(),
        ));
        for room in &config.rooms {
            rooms.spawn(room_loop(shared.clone(), room.clone(), shutdown.clone()));
        }
        tracing::info!(engine = %engine_id, rooms = ?config.rooms, "engine standing by");
        Ok(EngineNode {
            engine_id,
            shutdown,
            rooms,
        })
    }

    /// Hands every room over (no refunds; a standby resumes the rounds in flight) and
    /// releases the leases.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.rooms.join_next().await.is_some() {}
    }
}

/// Keeps this engine counted among the live ones, and gives one room away per beat
/// while it leads more than its share (engines that joined later take them).
async fn heartbeat_loop(shared: Arc<NodeShared>, shutdown: CancellationToken) {
    let interval = Duration::from_millis(shared.config.cluster.lease_renew_interval_ms);
    loop {
        match shared.leases.heartbeat(shared.clock.now_ms()).await {
            Ok(alive) => {
                let alive = usize::try_from(alive).unwrap_or(usize::MAX).max(1);
                shared.engines_alive.store(alive, Ordering::Relaxed);
                let share = shared.config.rooms.len().div_ceil(alive);
                let led_rooms = shared.led_rooms.lock().expect("node lock poisoned");
                if led_rooms.len() > share
                    && let Some((room, handover)) = led_rooms.iter().next()
                {
                    tracing::info!(
                        room,
                        share,
                        alive,
                        "handing a room over to spread the rooms"
                    );
                    handover.cancel();
                }
            }
            Err(error) => tracing::warn!(%error, "engine heartbeat failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Leads `room` whenever its lease can be had, until `shutdown`.
async fn room_loop(shared: Arc<NodeShared>, room: String, shutdown: CancellationToken) {
    let cluster = &shared.config.cluster;
    let poll = Duration::from_millis(cluster.standby_poll_interval_ms);
    let orphan_after = Duration::from_millis(cluster.lease_ttl_ms);
    let mut free_since: Option<Instant> = None;
    while !shutdown.is_cancelled() {
        let granted = match shared.leases.holder(&room).await {
            Ok(Some(_)) => {
                free_since = None;
                None
            }
            Ok(None) => {
                let free_for = free_since.get_or_insert_with(Instant::now).elapsed();
                if has_room_for_more(&shared) || free_for >= orphan_after {
                    shared
                        .leases
                        .try_acquire(&room)
                        .await
                        .unwrap_or_else(|error| {
                            tracing::warn!(room, %error, "lease request failed");
                            None
                        })
                } else {
                    None
                }
            }
            Err(error) => {
                tracing::warn!(room, %error, "lease lookup failed");
                None
            }
        };
        let acquired = match granted {
            Some(grant) => fence(&shared, &room, grant).await,
            None => None,
        };
        if let Some(lease) = acquired {
            free_since = None;
            metrics::counter!(crate::metrics::LEASE_TAKEOVERS, "room" => room.clone()).increment(1);
            shared.leading.fetch_add(1, Ordering::Relaxed);
            let given_away = lead(&shared, &room, &lease, &shutdown).await;
            shared.leading.fetch_sub(1, Ordering::Relaxed);
            if given_away {
                // Leave the room to the others for a lease's time; if none takes it, it
                // is an orphan and anyone (this engine too) takes it afterwards.
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(orphan_after) => {}
                }
            }
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// Takes the room's next fencing token from the ledger for a lease just won and records
/// it in the lease. None (the grant given up) when the ledger cannot be reached or the
/// grant expired meanwhile.
async fn fence(shared: &NodeShared, room: &str, grant: LeaseGrant) -> Option<RoomLease> {
    let token = match shared.ledger.acquire_fence(room).await {
        Ok(token) => token,
        Err(error) => {
            tracing::warn!(room, %error, "no fencing token from the ledger; giving the lease up");
            if let Err(error) = shared.leases.release_grant(grant).await {
                tracing::warn!(room, %error, "lease not released; it expires by itself");
            }
            return None;
        }
    };
    match shared.leases.confirm(grant, token).await {
        Ok(Some(lease)) => Some(lease),
        Ok(None) => {
            tracing::warn!(room, token, "lease expired while taking its fencing token");
            None
        }
        Err(error) => {
            // The lease expires by itself; another engine's token will be higher.
            tracing::warn!(room, token, %error, "fencing token not recorded in the lease");
            None
        }
    }
}

/// Whether this engine leads fewer rooms than its share.
fn has_room_for_more(shared: &NodeShared) -> bool {
    let rooms = shared.config.rooms.len();
    let alive = shared.engines_alive.load(Ordering::Relaxed).max(1);
    shared.leading.load(Ordering::Relaxed) < rooms.div_ceil(alive)
}

/// Leads `room` under `lease` until the lease is lost or given away to spread the rooms
/// (then returns true), the node stops, or the room fails.
async fn lead(
    shared: &NodeShared,
    room: &str,
    lease: &RoomLease,
    shutdown: &CancellationToken,
) -> bool {
    let fence = Fence {
        room: room.to_owned(),
        token: lease.token(),
    };
    // Losing the lease and stopping the node both end the room the same way: at once,
    // leaving the round in flight to the next leader.
    let handover = shutdown.child_token();
    shared
        .led_rooms
        .lock()
        .expect("node lock poisoned")
        .insert(room.to_owned(), handover.clone());
    let stop_keeping = CancellationToken::new();
    let renew_interval_ms = shared.config.cluster.lease_renew_interval_ms;
    let keeping = lease::keep(
        &shared.leases,
        lease,
        renew_interval_ms,
        &stop_keeping,
        &handover,
    );
    let leading = async {
        let outcome = run_as_leader(shared, room, fence, handover.clone()).await;
        stop_keeping.cancel();
        outcome
    };
    let ((), outcome) = tokio::join!(keeping, leading);
    shared
        .led_rooms
        .lock()
        .expect("node lock poisoned")
        .remove(room);
    // Given away to spread the rooms, or lost to another engine: either way another
    // engine leads it now.
    let given_away = handover.is_cancelled() && !shutdown.is_cancelled();
    match outcome {
        Ok(()) => tracing::info!(room, token = lease.token(), "room handed over"),
        Err(error) => {
            tracing::error!(room, %error, "room stopped; another engine may take it over");
            let pause = Duration::from_millis(shared.config.cluster.standby_poll_interval_ms);
            tokio::time::sleep(pause).await;
        }
    }
    given_away
}

/// Why leading a room ended other than by handover.
#[derive(Debug, thiserror::Error)]
enum LeadError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Fair(#[from] FairError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Leads `room` with `fence`, whose token the ledger handed out last: every write of a
/// predecessor is refused from then on, so the state read here is final.
async fn run_as_leader(
    shared: &NodeShared,
    room: &str,
    fence: Fence,
    handover: CancellationToken,
) -> Result<(), LeadError> {
    tracing::info!(room, token = fence.token, "leading room");
    let config = &shared.config;
    let newest = shared.ledger.recent_rounds(room, 1).await?;
    let round_to_play = match newest.first() {
        None => 1,
        Some(record) if matches!(record.status, RoundStatus::Betting | RoundStatus::Flying) => {
            record.round
        }
        Some(record) => record.round + 1,
    };
    let chain = FairChain::derive(
        &config.fair.chain_secret,
        room,
        round_to_play,
        config.fair.chain_length,
    )?;
    let deps = EngineDeps {
        bus: shared.bus.clone(),
        ledger: shared.ledger.clone(),
        chain: Arc::new(chain),
        clock: shared.clock.clone(),
        codec: Arc::new(crate::protocol::JsonCodec),
        leading: shared.leading_rooms.clone(),
    };
    let settings = room_settings(config, room, &config.fair.salt);
    let leadership = Leadership { fence, handover };
    match crate::engine::lead_room(settings, deps, leadership).await {
        // The next loop derives the following chain.
        Err(EngineError::ChainExhausted { round }) => {
            tracing::info!(room, round, "chain exhausted; continuing on the next chain");
            Ok(())
        }
        Err(EngineError::Deposed { current, .. }) => {
            tracing::warn!(
                room,
                current,
                "deposed: a newer leader writes to the ledger"
            );
            Ok(())
        }
        other => Ok(other?),
    }
}
