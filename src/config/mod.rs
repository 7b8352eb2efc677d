//! Configuration: typed, one struct per concern, merged from four sources, each
//! overriding the one before: built-in defaults, then `config/aloft.toml` (or
//! `--config FILE`), then `ALOFT_*` environment variables (`ALOFT_LISTEN`,
//! `ALOFT_DATA_DIR`, nested keys with a double underscore:
//! `ALOFT_ENGINE__TICK_INTERVAL_MS=50`), then command-line flags ([`CommandLine`]).
//! The merged result is validated once; errors name the failing key.
//!
//! Every limit carries its unit in its name. `config/aloft.toml` documents each option
//! with its default; keep the two in step.
//!
//! One file per section, each with its struct, its defaults and its own checks:
//! `gateway`, `engine`, `ledger`, `fair`, `auth`, `bus`, `cluster`, `limits`, `operator`; `flags`
//! is the command line as a source.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod auth;
mod bus;
mod cluster;
mod engine;
mod fair;
mod flags;
mod gateway;
mod ledger;
mod limits;
mod operator;

pub use auth::AuthConfig;
pub use bus::BusConfig;
pub use cluster::ClusterConfig;
pub use engine::{EngineConfig, PUBLIC_ITEMS_PER_TICK_MAX};
pub use fair::FairConfig;
pub use flags::{CommandLine, FairFlags};
pub use gateway::{
    CLOSE_DRAIN_BYTES_MAX, GatewayConfig, RECOVERY_WINDOW_EVENTS_MAX, SNAPSHOT_BETS_MAX,
};
pub use ledger::LedgerConfig;
pub use limits::{GUEST_EXPIRY_MARGIN_SECONDS, LimitsConfig};
pub use operator::{OPERATOR_TOKEN_BYTES_MIN, OperatorConfig};

/// The whole configuration of a process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP + WebSocket listener.
    pub listen: SocketAddr,
    /// Address of the Prometheus listener (`/metrics`), kept off the player port; every
    /// role has one. Port 0 picks a free port (logged at start).
    pub metrics_listen: SocketAddr,
    /// Directory for the SQLite ledger, the fairness seed and the token secret.
    pub data_dir: PathBuf,
    /// Rooms this process runs; players pick one with `/ws?room=NAME` (default: first).
    pub rooms: Vec<String>,
    /// Log format: `pretty` for a terminal, `json` for production.
    pub log_format: LogFormat,
    /// Redis of the cluster roles (`aloft engine`, `aloft gateway`); `ALOFT_REDIS_URL`.
    pub redis_url: String,
    /// PostgreSQL ledger of the cluster roles; `ALOFT_DATABASE_URL`.
    pub database_url: String,
    pub gateway: GatewayConfig,
    pub engine: EngineConfig,
    pub ledger: LedgerConfig,
    pub fair: FairConfig,
    pub auth: AuthConfig,
    pub bus: BusConfig,
    pub cluster: ClusterConfig,
    pub limits: LimitsConfig,
    pub operator: OperatorConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("valid literal address"),
            metrics_listen: "127.0.0.1:9100".parse().expect("valid literal address"),
            data_dir: PathBuf::from("data"),
            rooms: vec!["main".to_owned()],
            log_format: LogFormat::Pretty,
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            database_url: "postgres://postgres@127.0.0.1:5432/aloft".to_owned(),
            gateway: GatewayConfig::default(),
            engine: EngineConfig::default(),
            ledger: LedgerConfig::default(),
            fair: FairConfig::default(),
            auth: AuthConfig::default(),
            bus: BusConfig::default(),
            cluster: ClusterConfig::default(),
            limits: LimitsConfig::default(),
            operator: OperatorConfig::default(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has the wrong type or an unknown name; the message names the key and the
    /// source (file, environment variable or command-line flags).
    #[error("configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// A value is out of its allowed range.
    #[error("configuration: {key}: {reason}")]
    OutOfRange { key: &'static str, reason: String },
}

impl Config {
    /// Defaults, then `file` if given (else `config/aloft.toml` when it exists), then
    /// `ALOFT_*` environment variables, then `flags`: merged, then validated once.
    pub fn load(file: Option<&Path>, flags: &CommandLine) -> Result<Config, ConfigError> {
        let config: Config = Config::figment(file)
            .merge(flags)
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// The sources below the command line: defaults, the file, the environment.
    fn figment(file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => {
                let default_path = Path::new("config/aloft.toml");
                if default_path.exists() {
                    figment = figment.merge(Toml::file_exact(default_path));
                }
            }
        }
        figment.merge(Env::prefixed("ALOFT_").split("__"))
    }

    /// Checks the relationships between values that serde cannot express, section by
    /// section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        require(!self.rooms.is_empty(), "rooms", "at least one room")?;
        require(
            self.rooms.iter().all(|room| valid_room_name(room)),
            "rooms",
            "names are 1-32 characters of a-z, 0-9, - and _",
        )?;
        self.engine.validate()?;
        self.gateway.validate()?;
        self.fair.validate()?;
        self.ledger.validate()?;
        self.bus.validate()?;
        self.limits.validate(&self.auth)?;
        self.auth.validate()?;
        self.operator.validate()?;
        self.cluster.validate()
    }

    /// Checks what the cluster roles need beyond `validate`: the secrets every process
    /// of a cluster must share (a random per-process default would split the cluster).
    pub fn validate_for_cluster(&self) -> Result<(), ConfigError> {
        let shared = [
            ("auth.jwt_secret", self.auth.jwt_secret.is_empty()),
            ("fair.salt", self.fair.salt.is_empty()),
            ("fair.chain_secret", self.fair.chain_secret.is_empty()),
        ];
        for (key, missing) in shared {
            if missing {
                return Err(ConfigError::OutOfRange {
                    key,
                    reason: "must be set (the same in every process of the cluster)".to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Shards to run: the configured count, or one per core.
    pub fn shard_count(&self) -> usize {
        if self.gateway.shards > 0 {
            self.gateway.shards
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

fn require(ok: bool, key: &'static str, reason: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            key,
            reason: reason.to_owned(),
        })
    }
}

/// Room names appear in URLs, keys and logs: keep them plain.
pub fn valid_room_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn shipped_config_file_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/aloft.toml");
        let from_file: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file_exact(&path))
            .extract()
            .unwrap();
        assert_eq!(from_file, Config::default());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own large error.
    fn environment_overrides_file_and_errors_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "listen = \"127.0.0.1:9000\"\n[engine]\ntick_interval_ms = 50\n",
            )?;
            jail.set_env("ALOFT_DATA_DIR", "/tmp/x");
            jail.set_env("ALOFT_ENGINE__BETTING_DURATION_MS", "7000");
            let config = Config::load(Some(Path::new("c.toml")), &CommandLine::default()).unwrap();
            assert_eq!(config.listen.port(), 9000);
            assert_eq!(config.engine.tick_interval_ms, 50);
            assert_eq!(config.engine.betting_duration_ms, 7000);
            assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));

            jail.set_env("ALOFT_ENGINE__TICK_INTERVAL_MS", "fast");
            let error = Config::load(Some(Path::new("c.toml")), &CommandLine::default())
                .unwrap_err()
                .to_string();
            assert!(
                error.to_lowercase().contains("engine.tick_interval_ms"),
                "{error}"
            );

            jail.set_env("ALOFT_ENGINE__TICK_INTERVAL_MS", "1");
            let error = Config::load(Some(Path::new("c.toml")), &CommandLine::default())
                .unwrap_err()
                .to_string();
            assert!(error.contains("engine.tick_interval_ms"), "{error}");
            Ok(())
        });
    }
}
