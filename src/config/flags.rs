//! The command line as a configuration source: the keys its flags set, merged last.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::Serialized;
use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider};
use serde::Serialize;

/// The configuration keys the command line sets (`--listen`, `--data-dir`,
/// `--redis-url`, `--database-url`, and `aloft verify`'s `--salt`, `--house-edge-bp`):
/// the last source merged, so a flag beats the environment, which beats the file. A flag
/// not given leaves its key alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CommandLine {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "FairFlags::is_empty")]
    pub fair: FairFlags,
}

/// The `fair.*` keys the command line sets (`aloft verify`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FairFlags {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub house_edge_bp: Option<u32>,
}

impl FairFlags {
    fn is_empty(&self) -> bool {
        self.salt.is_none() && self.house_edge_bp.is_none()
    }
}

impl Provider for CommandLine {
    fn metadata(&self) -> Metadata {
        Metadata::named("command-line flags")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(self).data()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Config;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own large error.
    fn flags_beat_the_environment_which_beats_the_file_and_the_merge_is_validated() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "listen = \"127.0.0.1:9000\"\nredis_url = \"redis://file\"\n\
                 database_url = \"postgres://file\"\n[engine]\ntick_interval_ms = 50\n\
                 [fair]\nsalt = \"file-salt\"\n",
            )?;
            jail.set_env("ALOFT_LISTEN", "127.0.0.1:9001");
            jail.set_env("ALOFT_DATA_DIR", "/tmp/from-env");
            jail.set_env("ALOFT_REDIS_URL", "redis://env");
            let flags = CommandLine {
                listen: Some("127.0.0.1:9002".parse().unwrap()),
                database_url: Some("postgres://flag".to_owned()),
                fair: FairFlags {
                    salt: Some("flag-salt".to_owned()),
                    house_edge_bp: None,
                },
                ..CommandLine::default()
            };
            let config = Config::load(Some(Path::new("c.toml")), &flags).unwrap();
            assert_eq!(config.listen.port(), 9002, "a flag beats env and file");
            assert_eq!(
                config.database_url, "postgres://flag",
                "a flag beats the file"
            );
            assert_eq!(
                config.fair.salt, "flag-salt",
                "a nested flag beats the file"
            );
            assert_eq!(config.redis_url, "redis://env", "env beats the file");
            assert_eq!(
                config.data_dir,
                PathBuf::from("/tmp/from-env"),
                "no flag: env"
            );
            assert_eq!(
                config.engine.tick_interval_ms, 50,
                "no flag, no env: the file"
            );
            assert_eq!(config.fair.house_edge_bp, 100, "set nowhere: the default");

            // The file and the environment alone may be invalid if a flag fixes them: the
            // merge is validated, once.
            jail.set_env("ALOFT_FAIR__HOUSE_EDGE_BP", "6000");
            let error = Config::load(Some(Path::new("c.toml")), &flags)
                .unwrap_err()
                .to_string();
            assert!(error.contains("fair.house_edge_bp"), "{error}");
            let fixed = CommandLine {
                fair: FairFlags {
                    house_edge_bp: Some(200),
                    ..flags.fair.clone()
                },
                ..flags.clone()
            };
            let config = Config::load(Some(Path::new("c.toml")), &fixed).unwrap();
            assert_eq!(config.fair.house_edge_bp, 200);
            let invalid = CommandLine {
                fair: FairFlags {
                    house_edge_bp: Some(5001),
                    salt: None,
                },
                ..CommandLine::default()
            };
            jail.set_env("ALOFT_FAIR__HOUSE_EDGE_BP", "100");
            let error = Config::load(Some(Path::new("c.toml")), &invalid)
                .unwrap_err()
                .to_string();
            assert!(error.contains("fair.house_edge_bp"), "{error}");
            Ok(())
        });
    }
}
