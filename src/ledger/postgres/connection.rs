//! Connections to the ledger database: the pool and its timeouts, how the database is
//! named in errors (never with its password), and the READ COMMITTED transactions every
//! write runs in.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, Runtime, Transaction};
use tokio_postgres::config::Host;
use tokio_postgres::{IsolationLevel, NoTls};

use crate::ledger::LedgerError;

/// How long a call waits for a free pooled connection, in milliseconds.
const POOL_WAIT_TIMEOUT_MS: u64 = 10_000;

/// How long opening one connection may take when the URL sets no `connect_timeout`, in
/// milliseconds.
const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// The pool of connections to the database `config` names (at most `pool_size_max`),
/// and the database's name for errors. Connections open lazily: the first call
/// connects, and a lost connection is replaced by the pool on a later call.
pub(super) fn pool(
    mut config: tokio_postgres::Config,
    pool_size_max: usize,
) -> Result<(Pool, String), LedgerError> {
    let url = describe(&config);
    let connect_error = |source| error(&url, source);
    if pool_size_max == 0 {
        return Err(connect_error("pool_size_max must be at least 1".into()));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS));
    }
    if config.get_application_name().is_none() {
        config.application_name("aloft");
    }
    // Statements are prepared once per connection, and PostgreSQL then settles on a
    // generic plan after five runs. On a young ledger that plan is made while the
    // tables are nearly empty (a sequential scan), and it stays until autovacuum next
    // analyzes them, making `id = ANY(...)` cost a scan of every transfer meanwhile.
    // Planning each run afresh costs microseconds and always sees the real table size.
    let options = format!(
        "{} -c plan_cache_mode=force_custom_plan",
        config.get_options().unwrap_or("")
    );
    config.options(options.trim_start());
    let manager = Manager::from_config(config, NoTls, ManagerConfig::default());
    let pool = Pool::builder(manager)
        .max_size(pool_size_max)
        .wait_timeout(Some(Duration::from_millis(POOL_WAIT_TIMEOUT_MS)))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|error| connect_error(Box::new(error)))?;
    Ok((pool, url))
}

/// The error of a database that cannot be reached (or a pool that cannot be built), naming
/// it by `url` (without its password).
pub(super) fn error(url: &str, source: Box<dyn std::error::Error + Send + Sync>) -> LedgerError {
    LedgerError::Connect {
        url: url.to_owned(),
        source,
    }
}

/// Every write transaction is READ COMMITTED, whatever the server's default: the locking
/// arguments above and in `check_fence` are made for it.
pub(super) async fn read_committed(client: &mut Object) -> Result<Transaction<'_>, LedgerError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await?)
}

/// The connection target as `postgres://user@host:port/database`, never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let name = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(index).or(config.get_ports().first()) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use crate::ledger::LedgerError;
    use crate::ledger::PostgresLedger;

    #[tokio::test]
    async fn an_unreachable_server_is_named_without_its_password() {
        let url = "postgres://aloft:secret@127.0.0.1:1/ledger?connect_timeout=2";
        let error = PostgresLedger::connect(url, 1)
            .await
            .err()
            .expect("nothing listens on port 1");
        let message = error.to_string();
        assert!(matches!(error, LedgerError::Connect { .. }), "{message}");
        assert!(
            message.contains("postgres://aloft@127.0.0.1:1/ledger"),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
    }
}
