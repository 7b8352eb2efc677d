//! Wires the roles of the embedded mode into one process: the SQLite ledger, the
//! in-memory bus, one engine per room and the gateway with its HTTP surface.
//!
//! `aloft::serve(config, shutdown)` runs until `shutdown` resolves; [`Server::start`]
//! and [`Server::stop`] give tests the bound address in between. Stopping is graceful:
//! readiness drops, engines refund the bets of a round in flight and flush the ledger,
//! and every socket gets a 1001 close frame.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::auth::{AuthError, TokenKeys};
use crate::bus::memory::MemoryBusLimits;
use crate::bus::{Bus, MemoryBus};
use crate::engine::{EngineDeps, EngineError, RoomSettings, SystemClock};
use crate::fair::{FairChain, FairError};
use crate::gateway::{Gateway, GatewayError, GatewayShared, GatewayStart};
use crate::http::{AppState, FairInfo, PublishedChain};
use crate::ledger::batcher::TransferBatcher;
use crate::ledger::{Ledger, LedgerError, RoundStatus, SqliteLedger};
use crate::protocol::PastRound;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be created: check `data_dir` and permissions.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Fair(#[from] FairError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A task of the server panicked: a bug.
    #[error("a server task failed: {0}")]
    Task(String),
}

/// A running embedded server.
pub struct Server {
    pub local_addr: SocketAddr,
    shutdown: CancellationToken,
    ready: Arc<AtomicBool>,
    engines: JoinSet<Result<(), EngineError>>,
    gateway: Gateway,
    ledger: Arc<dyn Ledger>,
}

/// Runs the embedded server until `shutdown` resolves, then stops it gracefully.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    let server = Server::start(config).await?;
    tracing::info!("aloft is up: open http://{}/", server.local_addr);
    shutdown.await;
    server.stop().await
}

impl Server {
    pub async fn start(config: Config) -> Result<Server, ServerError> {
        let config = Arc::new(config);
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let ledger: Arc<dyn Ledger> = Arc::new(SqliteLedger::open(
            &config.data_dir.join(&config.ledger.sqlite_file),
        )?);
        let chains = load_chains(&config, ledger.as_ref()).await?;
        let salt = fair_salt(&config)?;
        let tokens = Arc::new(TokenKeys::load_or_create(
            &config.auth.jwt_secret,
            &config.data_dir,
        )?);
        let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(MemoryBusLimits {
            event_buffer_events_max: config.bus.event_buffer_events_max,
            command_queue_commands_max: config.bus.command_queue_commands_max,
            reply_queue_replies_max: config.bus.reply_queue_replies_max,
        }));
        let shutdown = CancellationToken::new();
        let ready = Arc::new(AtomicBool::new(false));
        let history = load_history(&config, ledger.as_ref()).await?;
        let server_ledger = ledger.clone();

        let app = Arc::new(AppState {
            config: config.clone(),
            ledger: ledger.clone(),
            grants: TransferBatcher::spawn(ledger.clone()),
            tokens,
            fair: FairInfo {
                salt: salt.clone(),
                house_edge_bp: config.fair.house_edge_bp,
                chain_length: config.fair.chain_length,
                chains: chains
                    .iter()
                    .map(|(room, chain)| {
                        let published = PublishedChain {
                            commitment: chain.commitment(),
                            first_round: chain.first_round(),
                        };
                        (room.clone(), published)
                    })
                    .collect(),
            },
            metrics: crate::metrics::install(),
            ready: ready.clone(),
        });
        let shared = Arc::new(GatewayShared {
            id: format!("gw-{}", hex::encode(rand::random::<[u8; 4]>())),
            config: config.gateway.clone(),
            rooms: config.rooms.clone(),
            bus: bus.clone(),
            ledger: ledger.clone(),
            players: dashmap::DashMap::new(),
            growth_rate_per_ms_millionths: config.engine.growth_rate_per_ms_millionths,
        });
        let gateway = Gateway::start(GatewayStart {
            shared,
            listen: config.listen,
            shard_count: config.shard_count(),
            history,
            make_router: Box::new(move |shard| crate::http::router(app.clone(), shard)),
            shutdown: shutdown.clone(),
        })
        .await?;
        // Engines start once the gateway is subscribed, so it sees every event from seq 1.
        let mut engines = JoinSet::new();
        for room in &config.rooms {
            let settings = RoomSettings {
                room: room.clone(),
                salt: salt.clone(),
                house_edge_bp: config.fair.house_edge_bp,
                engine: config.engine.clone(),
            };
            let deps = EngineDeps {
                bus: bus.clone(),
                ledger: ledger.clone(),
                chain: chains[room].clone(),
                clock: Arc::new(SystemClock),
            };
            engines.spawn(crate::engine::run_room(settings, deps, shutdown.clone()));
        }

        ready.store(true, Ordering::Release);
        Ok(Server {
            local_addr: gateway.local_addr,
            shutdown,
            ready,
            engines,
            gateway,
            ledger: server_ledger,
        })
    }

    /// The ledger, for operators' checks and tests.
    pub fn ledger(&self) -> Arc<dyn Ledger> {
        self.ledger.clone()
    }

    /// Stops the server: engines settle their rounds, sockets are closed, shards end.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        self.ready.store(false, Ordering::Release);
        self.shutdown.cancel();
        let mut first_error = None;
        while let Some(joined) = self.engines.join_next().await {
            let result = joined
                .map_err(|error| ServerError::Task(error.to_string()))
                .and_then(|result| result.map_err(ServerError::from));
            if let Err(error) = result {
                tracing::error!(%error, "engine stopped with an error");
                first_error.get_or_insert(error);
            }
        }
        let gateway = self.gateway;
        tokio::task::spawn_blocking(move || gateway.join())
            .await
            .map_err(|error| ServerError::Task(error.to_string()))?;
        first_error.map_or(Ok(()), Err)
    }
}

/// Each room has its own chain (its own seed file), so a hash revealed in one room says
/// nothing about another room's rounds.
async fn load_chains(
    config: &Config,
    ledger: &dyn Ledger,
) -> Result<HashMap<String, Arc<FairChain>>, ServerError> {
    let mut chains = HashMap::new();
    for room in &config.rooms {
        let newest = ledger.recent_rounds(room, 1).await?;
        let next_round = newest.first().map_or(1, |record| record.round + 1);
        let seed_path = config.data_dir.join("fair").join(format!("{room}.seed"));
        let chain_length = config.fair.chain_length;
        let chain = tokio::task::spawn_blocking(move || {
            FairChain::load_or_create(&seed_path, chain_length, next_round)
        })
        .await
        .map_err(|error| ServerError::Task(error.to_string()))??;
        chains.insert(room.clone(), Arc::new(chain));
    }
    Ok(chains)
}

fn fair_salt(config: &Config) -> Result<String, ServerError> {
    if !config.fair.salt.is_empty() {
        return Ok(config.fair.salt.clone());
    }
    let path = config.data_dir.join("fair_salt");
    crate::fair::load_or_create_hex_secret(&path).map_err(|source| {
        ServerError::Fair(FairError::Seed {
            path: path.display().to_string(),
            source,
        })
    })
}

/// Crashed rounds per room, newest first, for the first snapshots.
async fn load_history(
    config: &Config,
    ledger: &dyn Ledger,
) -> Result<HashMap<String, Vec<PastRound>>, ServerError> {
    let mut history = HashMap::new();
    for room in &config.rooms {
        let records = ledger
            .recent_rounds(room, config.gateway.snapshot_history_rounds + 1)
            .await?;
        let past = records
            .into_iter()
            .filter(|record| record.status == RoundStatus::Crashed)
            .take(config.gateway.snapshot_history_rounds)
            .map(|record| PastRound {
                round: record.round,
                m: record.crash_hundredths,
                hash: record.hash,
            })
            .collect();
        history.insert(room.clone(), past);
    }
    Ok(history)
}
