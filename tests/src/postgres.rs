//! Relays on either store backend: the embedded SQLite file, or a fresh
//! PostgreSQL database per test (`--database-url`).
//!
//! The server is found at `KEFU_TEST_POSTGRES_URL` (an admin connection,
//! e.g. `postgres://postgres@127.0.0.1:5432/postgres`), else on
//! 127.0.0.1:5432 as the OS user, `postgres` or `root`, on database `test`
//! or `postgres`. Databases are created and dropped with `psql`, which
//! keeps this crate free of a database driver of its own.

use std::ops::{Deref, DerefMut};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use crate::Relay;

/// Which store a test relay writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `kefu.db` in the relay's data dir: the default.
    Sqlite,
    /// A database of its own on the test PostgreSQL server.
    Postgres,
}

impl Relay {
    /// A relay on `backend` with extra flags, as [`Relay::start_with`].
    /// [`Relay::restart`] comes back on the same database.
    pub async fn start_on(backend: Backend, args: &[&str]) -> Result<BackendRelay> {
        match backend {
            Backend::Sqlite => Ok(BackendRelay { relay: Relay::start_with(args).await?, database: None }),
            Backend::Postgres => {
                let database = Database::create().await?;
                let mut with_url = vec!["--database-url", database.url()];
                with_url.extend_from_slice(args);
                let relay = Relay::start_with(&with_url).await?;
                Ok(BackendRelay { relay, database: Some(database) })
            }
        }
    }
}

/// A relay and the PostgreSQL database it stores into, if any. Derefs to
/// the [`Relay`]; the relay is killed before its database is dropped.
#[derive(Debug)]
pub struct BackendRelay {
    relay: Relay,
    database: Option<Database>,
}

impl BackendRelay {
    /// The PostgreSQL database, if the relay stores into one.
    pub fn database(&self) -> Option<&Database> {
        self.database.as_ref()
    }
}

impl Deref for BackendRelay {
    type Target = Relay;

    fn deref(&self) -> &Relay {
        &self.relay
    }
}

impl DerefMut for BackendRelay {
    fn deref_mut(&mut self) -> &mut Relay {
        &mut self.relay
    }
}

/// A fresh database on the test PostgreSQL server, dropped (best effort,
/// also when the test fails) when this is.
#[derive(Debug)]
pub struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    /// Creates `kefu_e2e_<random>`.
    pub async fn create() -> Result<Database> {
        let admin = admin_url().await?;
        let name = format!("kefu_e2e_{:016x}", rand_u64());
        psql(&admin, &format!("CREATE DATABASE {name}")).await?;
        let url = withdatabase(&admin, &name);
        Ok(Database { admin, name, url })
    }

    /// Its `postgres://` URL, for `--database-url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's `host:port`, as the URL names it.
    pub fn server(&self) -> String {
        let (_, server, _) = split_server(&self.url);
        if server.rsplit_once(':').is_some_and(|(_, port)| port.chars().all(|c| c.is_ascii_digit())) {
            server.to_owned()
        } else {
            format!("{server}:5432")
        }
    }

    /// Its URL with the server replaced by `server`: a proxy in front.
    pub fn url_via(&self, server: std::net::SocketAddr) -> String {
        let (before, _, after) = split_server(&self.url);
        format!("{before}{server}{after}")
    }

    /// The database stops answering, as it does when its server goes
    /// away: new connections to it are refused and open ones are ended.
    pub async fn cut_off(&self) -> Result<()> {
        psql(&self.admin, &format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", self.name)).await?;
        let terminate = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        );
        psql(&self.admin, &terminate).await
    }

    /// Takes connections again after [`Database::cut_off`].
    pub async fn restore(&self) -> Result<()> {
        psql(&self.admin, &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.name)).await
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // FORCE ends connections of a relay that is still shutting down.
        let dropped = std::process::Command::new("psql")
            .args([self.admin.as_str(), "-qc", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .stdout(Stdio::null())
            .status();
        if !matches!(dropped, Ok(status) if status.success()) {
            eprintln!("could not drop the test database {}: {dropped:?}", self.name);
        }
    }
}

/// Runs one statement as the admin.
async fn psql(admin: &str, sql: &str) -> Result<()> {
    let output = Command::new("psql")
        .args([admin, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .await
        .context("running psql (is the PostgreSQL client installed?)")?;
    if !output.status.success() {
        bail!("psql `{sql}` failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// The first admin connection that works.
async fn admin_url() -> Result<String> {
    let candidates = match std::env::var("KEFU_TEST_POSTGRES_URL") {
        Ok(url) => vec![url],
        Err(_) => {
            let mut users: Vec<String> = std::env::var("USER").into_iter().collect();
            users.extend(["postgres".to_owned(), "root".to_owned()]);
            let mut candidates = Vec::new();
            for user in &users {
                for database in ["test", "postgres"] {
                    candidates.push(format!("postgres://{user}@127.0.0.1:5432/{database}"));
                }
            }
            candidates
        }
    };
    for url in &candidates {
        if psql(url, "SELECT 1").await.is_ok() {
            return Ok(url.clone());
        }
    }
    bail!("no PostgreSQL server for the tests at any of {candidates:?}; set KEFU_TEST_POSTGRES_URL")
}

/// `url` as what comes before its `host:port`, the `host:port`, and the
/// rest (`/database?...`).
fn split_server(url: &str) -> (&str, &str, &str) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let host = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    (&url[..host], &url[host..end], &url[end..])
}

/// `url` with its database replaced by `name`.
fn withdatabase(url: &str, name: &str) -> String {
    let without_query = url.split_once('?').map_or(url, |(base, _)| base);
    let server = without_query.rsplit_once('/').map_or(without_query, |(server, _)| server);
    format!("{server}/{name}")
}

/// Random enough for a database name no other test run picks.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.write_u32(std::process::id());
    hasher.finish()
}
