//! The `aloft` binary: parses the command line, sets up logging and runs a role.
//! Everything else lives in the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use aloft::Config;
use aloft::config::{CommandLine, FairFlags};
use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "aloft",
    version,
    about = "Real-time WebSocket server for multiplayer crash rounds"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run every role in one process (the default): in-memory bus, SQLite ledger.
    Serve(ServeArgs),
    /// Cluster: run the round engines, leading the rooms whose lease this process holds
    /// and standing by for the others (Redis + PostgreSQL).
    Engine(EngineArgs),
    /// Cluster: serve players (HTTP + WebSocket) on Redis + PostgreSQL; no engine.
    Gateway(GatewayArgs),
    /// Apply the PostgreSQL ledger's migrations and exit.
    Migrate(MigrateArgs),
    /// Recompute the crash point of a round from its revealed hash.
    Verify(VerifyArgs),
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// Configuration file (default: config/aloft.toml when present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [env: ALOFT_LISTEN].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Directory for the ledger and secrets [env: ALOFT_DATA_DIR].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl ServeArgs {
    fn load(self) -> anyhow::Result<Config> {
        let flags = CommandLine {
            listen: self.listen,
            data_dir: self.data_dir,
            ..CommandLine::default()
        };
        Ok(Config::load(self.config.as_deref(), &flags)?)
    }
}

/// Where a cluster process finds its configuration, Redis and PostgreSQL.
#[derive(clap::Args)]
struct ClusterArgs {
    /// Configuration file (default: config/aloft.toml when present; see config/cluster.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Redis of the cluster [env: ALOFT_REDIS_URL].
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// PostgreSQL ledger database [env: ALOFT_DATABASE_URL].
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

impl ClusterArgs {
    /// The configuration with these flags and the role's own (`more`) merged last.
    fn load(self, more: CommandLine) -> anyhow::Result<Config> {
        let flags = CommandLine {
            redis_url: self.redis_url,
            database_url: self.database_url,
            ..more
        };
        Ok(Config::load(self.config.as_deref(), &flags)?)
    }
}

#[derive(clap::Args)]
struct EngineArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Name of this engine in leases and logs (default: engine-<pid>).
    #[arg(long, value_name = "ID")]
    id: Option<String>,
}

#[derive(clap::Args)]
struct GatewayArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Address to listen on [env: ALOFT_LISTEN].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

#[derive(clap::Args)]
struct MigrateArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// The round hash revealed in the round's `crash` event (64 hex characters).
    round_hash: String,
    /// The public salt from /api/fair (default: this installation's salt).
    #[arg(long)]
    salt: Option<String>,
    /// House edge in basis points (default: from the configuration).
    #[arg(long)]
    house_edge_bp: Option<u32>,
    /// Configuration file, to find the salt and edge.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args),
        Command::Engine(args) => engine(args),
        Command::Gateway(args) => gateway(args),
        Command::Migrate(args) => migrate(args),
        Command::Verify(args) => verify(args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.load()?;
    init_logging(config.log_format);
    current_thread_runtime()?.block_on(async {
        let server = aloft::Server::start(config).await?;
        println!("aloft is running: open http://{}/", server.local_addr);
        print_operator_console(&server);
        wait_for_signal().await;
        tracing::info!("shutting down");
        server.stop().await?;
        anyhow::Ok(())
    })
}

/// Where the operator console is, and the token `aloft serve` made for this run when
/// `operator.token` was empty.
fn print_operator_console(server: &aloft::Server) {
    if !server.operator_console_enabled() {
        println!("operator console: disabled until operator.token is set");
        return;
    }
    println!("operator console: http://{}/dashboard", server.local_addr);
    match &server.operator_token_generated {
        Some(token) => {
            println!("operator token (this run only; set operator.token to keep one): {token}")
        }
        None => println!("operator token: the one configured (operator.token)"),
    }
}

/// The shards run on their own threads; this runtime hosts the engines and the bus.
fn current_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

fn engine(args: EngineArgs) -> anyhow::Result<()> {
    let config = args.cluster.load(CommandLine::default())?;
    init_logging(config.log_format);
    let engine_id = args
        .id
        .unwrap_or_else(|| format!("engine-{}", std::process::id()));
    current_thread_runtime()?.block_on(async {
        // The engine has no player port: its metrics listener is its only HTTP.
        let metrics_shutdown = tokio_util::sync::CancellationToken::new();
        let role = aloft::metrics::Role::Engine;
        let exported = aloft::metrics::Exported::new(role, &config.rooms, 0);
        let metrics = aloft::metrics::MetricsListener::start(
            config.metrics_listen,
            exported,
            metrics_shutdown.clone(),
        )
        .await?;
        let node = aloft::cluster::EngineNode::start(config, engine_id).await?;
        println!("aloft engine {} is standing by", node.engine_id);
        wait_for_signal().await;
        tracing::info!("handing the rooms over");
        node.stop().await;
        metrics_shutdown.cancel();
        metrics.join().await;
        anyhow::Ok(())
    })
}

fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let config = args.cluster.load(CommandLine {
        listen: args.listen,
        ..CommandLine::default()
    })?;
    init_logging(config.log_format);
    current_thread_runtime()?.block_on(async {
        let server = aloft::Server::start_gateway(config).await?;
        println!(
            "aloft gateway is running: open http://{}/",
            server.local_addr
        );
        print_operator_console(&server);
        wait_for_signal().await;
        tracing::info!("shutting down");
        server.stop().await?;
        anyhow::Ok(())
    })
}

fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let config = args.cluster.load(CommandLine::default())?;
    init_logging(config.log_format);
    current_thread_runtime()?.block_on(async {
        // Connecting applies the migrations (under an advisory lock).
        aloft::ledger::PostgresLedger::connect(&config.database_url, 1).await?;
        println!("ledger schema is up to date");
        anyhow::Ok(())
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_logging(format: aloft::config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // PostgreSQL's notices ("relation already exists, skipping") are not news.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_postgres=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        aloft::config::LogFormat::Json => builder.json().init(),
        aloft::config::LogFormat::Pretty => builder.init(),
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.round_hash.len() == 64 && args.round_hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "a round hash is 64 hex characters"
    );
    let flags = CommandLine {
        fair: FairFlags {
            salt: args.salt,
            house_edge_bp: args.house_edge_bp,
        },
        ..CommandLine::default()
    };
    let config = Config::load(args.config.as_deref(), &flags)?;
    let salt = if config.fair.salt.is_empty() {
        std::fs::read_to_string(config.data_dir.join("fair_salt"))
            .map(|text| text.trim().to_owned())
            .context("no --salt given and no fair_salt in the data directory")?
    } else {
        config.fair.salt.clone()
    };
    let edge = config.fair.house_edge_bp;
    let round_hash = args.round_hash.to_ascii_lowercase();
    let crash = aloft::fair::crash_point_hundredths(&round_hash, &salt, edge);
    println!("round hash      {round_hash}");
    println!("salt            {salt}");
    println!("house edge      {edge} bp");
    println!(
        "crash point     {}.{:02}x ({crash} hundredths)",
        crash / 100,
        crash % 100
    );
    println!(
        "previous round  {} (sha256 of this hash; for round 1, the published commitment)",
        aloft::fair::sha256_hex(&round_hash)
    );
    Ok(())
}
