//! Wires the roles that serve players into a process: [`Server::start`] is the embedded
//! mode (the SQLite ledger, the in-memory bus, one engine per room and the gateway with
//! its HTTP surface); [`Server::start_gateway`] is the cluster gateway (PostgreSQL, Redis,
//! no engine: `cluster` runs those).
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

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::admin::{AdminError, RoomController};
use crate::admission::ConnectionLimits;
use crate::admission::address_rate::AddressRate;
use crate::auth::{AuthError, TokenKeys};
use crate::bus::memory::MemoryBusLimits;
use crate::bus::{Bus, BusError, MemoryBus, RedisBus, RedisBusOptions};
use crate::cashier::{Cashier, GuestTerms};
use crate::clock::SystemClock;
use crate::config::ConfigError;
use crate::engine::{EngineDeps, EngineError, RoomSettings};
use crate::fair::{FairChain, FairError};
use crate::gateway::traffic::Traffic;
use crate::gateway::{FollowedEvent, Gateway, GatewayError, GatewayShared, GatewayStart};
use crate::http::{AppState, FairInfo, PublishedChain};
use crate::ledger::{Ledger, LedgerError, PostgresLedger, RoundStatus, SqliteLedger};
use crate::metrics::{Exported, MetricsListener, Role};
use crate::operator::feed::{Feed, FeedSources, RoomRules};
use crate::operator::{AdminReach, OperatorConsole};
use crate::protocol::PastRound;
use crate::status::LeadingRooms;
use crate::status::publisher::Reporter;

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
    Config(#[from] ConfigError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Fair(#[from] FairError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// The admin channel of this process could not be opened on the bus.
    #[error("admin channel: {0}")]
    Admin(#[from] AdminError),
    /// A task of the server panicked: a bug.
    #[error("a server task failed: {0}")]
    Task(String),
}

/// A running embedded server.
pub struct Server {
    pub local_addr: SocketAddr,
    /// Where `/metrics` is served (`metrics_listen`).
    pub metrics_addr: SocketAddr,
    metrics: MetricsListener,
    shutdown: CancellationToken,
    ready: Arc<AtomicBool>,
    engines: JoinSet<Result<(), EngineError>>,
    /// The periodic removal of unused guests (`limits.guest_unused_expiry_seconds`).
    guest_expiry: tokio::task::JoinHandle<()>,
    gateway: Gateway,
    ledger: Arc<dyn Ledger>,
    /// The operator token `aloft serve` made because `operator.token` was empty (printed
    /// at start); `None` when one was configured.
    pub operator_token_generated: Option<String>,
    /// The operator console's feed task and sockets, waited for at shutdown.
    operator_feed: tokio::task::JoinHandle<()>,
    /// The reader of this process's admin channel (`admin::RoomController`).
    admin_answers: tokio::task::JoinHandle<()>,
    operator: Arc<OperatorConsole>,
    bus: Arc<dyn Bus>,
    /// Publishes this process's status reports (`crate::status`) until shutdown.
    status_publisher: tokio::task::JoinHandle<()>,
}

/// Runs the embedded server until `shutdown` resolves, then stops it gracefully.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    let server = Server::start(config).await?;
    tracing::info!("aloft is up: open http://{}/", server.local_addr);
    shutdown.await;
    server.stop().await
}

/// What a process's roles share: money, transport and the fairness parameters.
struct Backends {
    ledger: Arc<dyn Ledger>,
    bus: Arc<dyn Bus>,
    chains: HashMap<String, Arc<FairChain>>,
    salt: String,
    tokens: Arc<TokenKeys>,
}

impl Server {
    /// The embedded mode: every role in this process, on SQLite and the in-memory bus.
    /// Without `operator.token`, a random one is made for this run.
    pub async fn start(mut config: Config) -> Result<Server, ServerError> {
        let operator_token_generated = config.operator.token.is_empty().then(|| {
            config.operator.token = crate::operator::random_token();
            config.operator.token.clone()
        });
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let ledger: Arc<dyn Ledger> = Arc::new(SqliteLedger::open(
            &config.data_dir.join(&config.ledger.sqlite_file),
        )?);
        let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(MemoryBusLimits {
            event_buffer_events_max: config.bus.event_buffer_events_max,
            command_queue_commands_max: config.bus.command_queue_commands_max,
            reply_queue_replies_max: config.bus.reply_queue_replies_max,
        }));
        let backends = Backends {
            chains: load_chains(&config, ledger.as_ref()).await?,
            salt: fair_salt(&config)?,
            tokens: Arc::new(TokenKeys::load_or_create(&config.auth, &config.data_dir)?),
            ledger,
            bus,
        };
        let mut server = Server::start_roles(Arc::new(config), backends, true).await?;
        server.operator_token_generated = operator_token_generated;
        Ok(server)
    }

    /// The cluster gateway: sockets and HTTP only, on PostgreSQL and Redis; the rooms'
    /// engines run in `aloft engine` processes.
    pub async fn start_gateway(config: Config) -> Result<Server, ServerError> {
        config.validate_for_cluster()?;
        let ledger: Arc<dyn Ledger> = Arc::new(
            PostgresLedger::connect(
                &config.database_url,
                config.ledger.postgres_pool_connections_max,
            )
            .await?,
        );
        let bus = RedisBus::connect(&config.redis_url, redis_options(&config, "gateway")).await?;
        let backends = Backends {
            chains: load_chains(&config, ledger.as_ref()).await?,
            salt: config.fair.salt.clone(),
            tokens: Arc::new(TokenKeys::new(
                config.auth.jwt_secret.as_bytes(),
                config.auth.token_lifetime_seconds_max,
            )?),
            ledger,
            bus: Arc::new(bus),
        };
        Server::start_roles(Arc::new(config), backends, false).await
    }

    async fn start_roles(
        config: Arc<Config>,
        backends: Backends,
        with_engines: bool,
    ) -> Result<Server, ServerError> {
        let shutdown = CancellationToken::new();
        let ready = Arc::new(AtomicBool::new(false));
        let history = load_history(&config, backends.ledger.as_ref()).await?;
        let metrics = start_metrics(&config, with_engines, &shutdown).await?;
        let limits = Arc::new(ConnectionLimits::new(&config.limits));
        let cashier = Cashier::spawn(backends.ledger.clone(), GuestTerms::from_config(&config));
        let app = app_state(&config, &backends, &cashier, limits.clone(), ready.clone());
        let traffic = Arc::new(Traffic::new(config.shard_count()));
        let (operator_events, followed) = mpsc::channel(crate::operator::FEED_EVENTS_QUEUE_MAX);
        let gateway_id = format!("gw-{}", hex::encode(rand::random::<[u8; 4]>()));
        let sources = (followed, limits.clone());
        let (operator, operator_feed, admin_answers) =
            start_operator(&config, &backends, &gateway_id, sources, &shutdown).await?;
        let console = operator.clone();
        let sharing = (gateway_id, limits, traffic, operator_events);
        let shared = gateway_shared(&config, &backends, sharing);
        let gateway = Gateway::start(GatewayStart {
            shared: shared.clone(),
            listen: config.listen,
            shard_count: config.shard_count(),
            history,
            make_router: Box::new(move |shard| {
                let operator_routes = crate::operator::routes::router(console.clone());
                crate::http::router(app.clone(), shard).merge(operator_routes)
            }),
            shutdown: shutdown.clone(),
        })
        .await?;
        // Engines start once the gateway is subscribed, so it sees every event from seq 1.
        let (engines, status_publisher) =
            start_engines(&config, &backends, &shared, with_engines, &shutdown);
        let guest_expiry = tokio::spawn(cashier.run_guest_expiry(shutdown.clone()));
        ready.store(true, Ordering::Release);
        Ok(Server {
            local_addr: gateway.local_addr,
            metrics_addr: metrics.local_addr,
            metrics,
            shutdown,
            ready,
            engines,
            guest_expiry,
            gateway,
            ledger: backends.ledger,
            operator_token_generated: None,
            operator_feed,
            admin_answers,
            operator,
            bus: backends.bus,
            status_publisher,
        })
    }

    /// Whether the operator console is on (`operator.token` set or made at start).
    pub fn operator_console_enabled(&self) -> bool {
        self.operator.keys.is_some()
    }

    /// The ledger, for operators' checks and tests.
    pub fn ledger(&self) -> Arc<dyn Ledger> {
        self.ledger.clone()
    }

    /// The bus, for the operators' room controls (`admin::RoomController`) and tests.
    pub fn bus(&self) -> Arc<dyn Bus> {
        self.bus.clone()
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
        (self.gateway.join().await).map_err(|error| ServerError::Task(error.to_string()))?;
        if let Err(error) = self.operator_feed.await {
            tracing::error!(%error, "operator feed panicked");
        }
        if let Err(error) = self.status_publisher.await {
            tracing::error!(%error, "status publisher panicked");
        }
        if let Err(error) = self.admin_answers.await {
            tracing::error!(%error, "admin channel reader panicked");
        }
        self.operator.sockets.close();
        self.operator.sockets.wait().await;
        self.metrics.join().await;
        if let Err(error) = self.guest_expiry.await {
            tracing::error!(%error, "guest expiry sweep panicked");
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The `/metrics` listener of this process's role.
async fn start_metrics(
    config: &Config,
    with_engines: bool,
    shutdown: &CancellationToken,
) -> Result<MetricsListener, ServerError> {
    let role = if with_engines {
        Role::Serve
    } else {
        Role::Gateway
    };
    let exported = Exported::new(role, &config.rooms, config.shard_count());
    Ok(MetricsListener::start(config.metrics_listen, exported, shutdown.clone()).await?)
}

/// The engines of an embedded process (`with_engines`; none for a cluster gateway) and
/// the task publishing the process's status reports: its gateway's and its engines'
/// (named after the gateway: `gw-1a2b3c4d` runs `engine-1a2b3c4d`).
fn start_engines(
    config: &Config,
    backends: &Backends,
    gateway: &GatewayShared,
    with_engines: bool,
    shutdown: &CancellationToken,
) -> (
    JoinSet<Result<(), EngineError>>,
    tokio::task::JoinHandle<()>,
) {
    let mut reporters = vec![Reporter::Gateway {
        id: gateway.id.clone(),
        traffic: gateway.traffic.clone(),
    }];
    let mut engines = JoinSet::new();
    if with_engines {
        let leading = Arc::new(LeadingRooms::default());
        engines = spawn_engines(config, backends, &leading, shutdown);
        let id = gateway.id.replacen("gw-", "engine-", 1);
        reporters.push(Reporter::Engine { id, rooms: leading });
    }
    let bus = backends.bus.clone();
    let publisher = crate::status::publisher::run(bus, reporters, shutdown.clone());
    (engines, tokio::spawn(publisher))
}

/// One engine per room of `config`, on this process's backends.
fn spawn_engines(
    config: &Config,
    backends: &Backends,
    leading: &Arc<LeadingRooms>,
    shutdown: &CancellationToken,
) -> JoinSet<Result<(), EngineError>> {
    let mut engines = JoinSet::new();
    for room in &config.rooms {
        let deps = EngineDeps {
            bus: backends.bus.clone(),
            ledger: backends.ledger.clone(),
            chain: backends.chains[room].clone(),
            clock: Arc::new(SystemClock),
            codec: Arc::new(crate::protocol::JsonCodec),
            leading: leading.clone(),
        };
        let settings = room_settings(config, room, &backends.salt);
        engines.spawn(crate::engine::run_room(settings, deps, shutdown.clone()));
    }
    engines
}

/// The HTTP layer's state: the API's backends and cashier, the published fairness chains, the
/// admission limits and the readiness flag.
fn app_state(
    config: &Arc<Config>,
    backends: &Backends,
    cashier: &Cashier,
    limits: Arc<ConnectionLimits>,
    ready: Arc<AtomicBool>,
) -> Arc<AppState> {
    let chains = backends.chains.iter().map(|(room, chain)| {
        let published = PublishedChain {
            commitment: chain.commitment(),
            first_round: chain.first_round(),
        };
        (room.clone(), published)
    });
    Arc::new(AppState {
        config: config.clone(),
        ledger: backends.ledger.clone(),
        cashier: cashier.clone(),
        tokens: backends.tokens.clone(),
        fair: FairInfo {
            salt: backends.salt.clone(),
            house_edge_bp: config.fair.house_edge_bp,
            chain_length: config.fair.chain_length,
            chains: chains.collect(),
        },
        limits,
        guest_rate: AddressRate::guests(&config.limits),
        ready,
    })
}

/// What a process's console follows and acts on: the events the gateway copies for it,
/// the gateway's admission (its banned players).
type ConsoleSources = (mpsc::Receiver<FollowedEvent>, Arc<ConnectionLimits>);

/// The operator console of this process, its feed's task, which follows the events the
/// gateway copies to `followed` and the bus's status reports until `shutdown`, and the
/// reader of the process's admin channel (its room controls' answers, opened under the
/// gateway's id).
async fn start_operator(
    config: &Config,
    backends: &Backends,
    gateway_id: &str,
    (followed, limits): ConsoleSources,
    shutdown: &CancellationToken,
) -> Result<
    (
        Arc<OperatorConsole>,
        tokio::task::JoinHandle<()>,
        tokio::task::JoinHandle<()>,
    ),
    ServerError,
> {
    let statuses = backends.bus.subscribe_status().await?;
    let (controller, admin_answers) =
        RoomController::open(backends.bus.clone(), gateway_id, shutdown.clone()).await?;
    let admin = AdminReach {
        controller,
        bus: backends.bus.clone(),
        limits,
    };
    let rules = RoomRules {
        cap_minor: config.engine.round_profit_max_minor,
        growth_per_ms_millionths: config.engine.growth_rate_per_ms_millionths,
    };
    let feed = Arc::new(Feed::new(
        &config.rooms,
        rules,
        config.operator.queue_frames_max,
    ));
    let sources = FeedSources {
        ledger: backends.ledger.clone(),
        house_edge_bp: config.fair.house_edge_bp,
    };
    let task = tokio::spawn(crate::operator::feed::run(
        feed.clone(),
        followed,
        statuses,
        sources,
        shutdown.clone(),
    ));
    let sources = (feed, backends.ledger.clone());
    let console = OperatorConsole::new(config, sources, admin, shutdown.clone());
    Ok((Arc::new(console), task, admin_answers))
}

/// The gateway's id and what it shares with the rest of the process: its admission (with
/// the HTTP layer and the console), its traffic and the console's copy of the events.
type GatewaySources = (
    String,
    Arc<ConnectionLimits>,
    Arc<Traffic>,
    mpsc::Sender<FollowedEvent>,
);

/// The state every shard of this process's gateway shares.
fn gateway_shared(
    config: &Config,
    backends: &Backends,
    (id, limits, traffic, operator_events): GatewaySources,
) -> Arc<GatewayShared> {
    Arc::new(GatewayShared {
        id,
        config: config.gateway.clone(),
        rooms: config.rooms.clone(),
        bus: backends.bus.clone(),
        ledger: backends.ledger.clone(),
        players: dashmap::DashMap::new(),
        limits,
        requests: crate::gateway::requests::RequestsInFlight::new(
            config.gateway.requests_in_flight_max,
            std::time::Duration::from_millis(config.gateway.request_timeout_ms),
        ),
        growth_rate_per_ms_millionths: config.engine.growth_rate_per_ms_millionths,
        traffic,
        operator_events: Some(operator_events),
    })
}

/// The rules of `room`'s rounds.
pub(crate) fn room_settings(config: &Config, room: &str, salt: &str) -> RoomSettings {
    RoomSettings {
        room: room.to_owned(),
        salt: salt.to_owned(),
        house_edge_bp: config.fair.house_edge_bp,
        engine: config.engine.clone(),
    }
}

/// The Redis bus settings of a cluster process; `consumer_name` names it in the rooms'
/// command consumer groups.
pub(crate) fn redis_options(config: &Config, consumer_name: &str) -> RedisBusOptions {
    let bus = &config.bus;
    RedisBusOptions {
        cluster: bus.redis_cluster,
        event_history_events_max: bus.event_buffer_events_max,
        command_stream_commands_max: bus.command_queue_commands_max,
        consumer_name: consumer_name.to_owned(),
        key_prefix: bus.redis_key_prefix.clone(),
        subscriber_buffer_events_max: bus.event_buffer_events_max,
        reply_buffer_replies_max: bus.reply_queue_replies_max,
        command_claim_idle_ms: bus.command_claim_idle_ms,
    }
}

/// Each room has its own chain, so a hash revealed in one room says nothing about
/// another room's rounds: derived from `fair.chain_secret` when it is set (what every
/// engine of a cluster shares), else from the room's own seed file.
pub(crate) async fn load_chains(
    config: &Config,
    ledger: &dyn Ledger,
) -> Result<HashMap<String, Arc<FairChain>>, ServerError> {
    let mut chains = HashMap::new();
    for room in &config.rooms {
        let next_round = crate::engine::runner::next_round(ledger, room).await?;
        if !config.fair.chain_secret.is_empty() {
            let chain = FairChain::derive(
                &config.fair.chain_secret,
                room,
                next_round,
                config.fair.chain_length,
            )?;
            chains.insert(room.clone(), Arc::new(chain));
            continue;
        }
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
