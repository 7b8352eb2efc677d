//! A PostgreSQL database of a test's own: created on the test server and dropped (with
//! the connections still open to it) when the guard is dropped. The server is a local
//! PostgreSQL with trust auth, unless `ALOFT_TEST_DATABASE_URL` names another; a missing
//! server fails the test with that message, never skips it.
//!
//! Only tokio-postgres and rand: the integration tests compile this file into their own
//! crate (`#[path]`), since a library's `#[cfg(test)]` items are not visible to them.

use tokio_postgres::NoTls;

/// The server the tests create their scratch databases on, unless
/// `ALOFT_TEST_DATABASE_URL` names another: a local PostgreSQL with trust auth.
const TEST_DATABASE_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own for one test, dropped when this guard is dropped.
pub struct ScratchDatabase {
    /// The server's URL, naming a database that always exists (`postgres`).
    pub admin_url: String,
    pub name: String,
    /// Connection settings of the scratch database itself.
    pub config: tokio_postgres::Config,
}

/// Connects to `url`, failing the test with a message naming the URL: a missing server
/// must fail these tests loudly, never skip them.
async fn connect_or_fail(url: &str, config: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config.connect(NoTls).await.unwrap_or_else(|error| {
        let cause = std::error::Error::source(&error)
            .map(|cause| format!(" ({cause})"))
            .unwrap_or_default();
        panic!(
            "PostgreSQL is not reachable at {url}: {error}{cause}. These tests need \
             PostgreSQL 15 running there (trust auth, user postgres), or \
             ALOFT_TEST_DATABASE_URL naming another server"
        )
    });
    tokio::spawn(connection);
    client
}

impl ScratchDatabase {
    pub async fn create() -> ScratchDatabase {
        let admin_url = std::env::var("ALOFT_TEST_DATABASE_URL")
            .unwrap_or_else(|_| TEST_DATABASE_URL_DEFAULT.to_owned());
        let admin_config: tokio_postgres::Config = admin_url
            .parse()
            .unwrap_or_else(|error| panic!("bad test database URL {admin_url}: {error}"));
        let admin = connect_or_fail(&admin_url, &admin_config).await;
        let name = format!("aloft_test_{:016x}", rand::random::<u64>());
        // template0: nobody connects to it, so parallel CREATEs never find it in use.
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"
            ))
            .await
            .unwrap_or_else(|error| panic!("cannot create {name} at {admin_url}: {error}"));
        let mut config = admin_config;
        config.dbname(&name);
        ScratchDatabase {
            admin_url,
            name,
            config,
        }
    }

    /// A plain connection for SQL behind the ledger's back.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect_or_fail(&self.admin_url, &self.config).await
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop cannot await, and the test's runtime may be the current thread: drop
        // the database from a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, NoTls)
                    .await
                    .map_err(|error| error.to_string())?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|error| error.to_string())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!(
                "warning: could not drop test database {}: {dropped:?}",
                self.name
            );
        }
    }
}
