//! `kefu-relay check`: can this relay, with these flags, run here?
//!
//! One line per check, `ok` or `FAIL` and what was found, in the order a
//! start needs them; the exit code is non-zero when any failed. The
//! checks only read, except that opening the store creates the data dir
//! and applies pending migrations, as `serve` would on start.

use std::path::Path;

use crate::Config;
use crate::store::Store;
use crate::web::WebFiles;

/// One check's outcome.
struct Outcome {
    name: &'static str,
    result: Result<String, String>,
}

/// Runs every check and prints them; `false` when one failed.
pub async fn run(config: &Config) -> bool {
    let mut outcomes = vec![Outcome { name: "data dir", result: data_dir_writable(config) }];
    outcomes.push(Outcome { name: "store", result: store(config).await });
    if let Some(url) = &config.redis_url {
        outcomes.push(Outcome { name: "redis", result: redis(url).await });
    }
    outcomes.push(Outcome { name: "web apps", result: web(config) });
    if config.tls_cert.is_some() || config.tls_key.is_some() {
        outcomes.push(Outcome { name: "tls", result: tls(config) });
    }
    outcomes.push(Outcome { name: "listen", result: listen(config).await });
    let mut passed = true;
    for outcome in &outcomes {
        match &outcome.result {
            Ok(detail) => println!("ok    {}: {detail}", outcome.name),
            Err(detail) => {
                passed = false;
                println!("FAIL  {}: {detail}", outcome.name);
            }
        }
    }
    passed
}

/// The SQLite store's folder can hold files (creating it if missing);
/// not needed with PostgreSQL.
fn data_dir_writable(config: &Config) -> Result<String, String> {
    let dir = &config.data_dir;
    if config.database_url.is_some() {
        return Ok(format!("not used ({} holds the store)", "--database-url"));
    }
    std::fs::create_dir_all(dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let probe = dir.join(format!(".kefu-check-{}", std::process::id()));
    std::fs::write(&probe, b"check").map_err(|error| format!("cannot write in {}: {error}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(format!("{} is writable", absolute(dir).display()))
}

/// The store opens (migrations applied) and answers a query.
async fn store(config: &Config) -> Result<String, String> {
    let store = Store::connect(config.database_url.as_deref(), &config.data_dir)
        .await
        .map_err(|error| format!("cannot open the store: {error}"))?;
    let answer = async {
        store.health().await?;
        store.site_count().await
    }
    .await;
    store.close().await;
    let sites = answer.map_err(|error| format!("the store does not answer: {error}"))?;
    let kind = if config.database_url.is_some() { "PostgreSQL" } else { "SQLite" };
    Ok(format!("{kind} reachable, migrations applied, {sites} site(s)"))
}

/// Redis answers a PING.
async fn redis(url: &str) -> Result<String, String> {
    let client = redis::Client::open(url).map_err(|error| format!("bad --redis-url: {error}"))?;
    let mut connection =
        tokio::time::timeout(std::time::Duration::from_secs(5), client.get_multiplexed_async_connection())
            .await
            .map_err(|_| "no answer within 5 s".to_owned())?
            .map_err(|error| format!("cannot connect: {error}"))?;
    let pong: String =
        redis::cmd("PING").query_async(&mut connection).await.map_err(|error| format!("PING failed: {error}"))?;
    Ok(format!("reachable ({pong})"))
}

/// There is a web build to serve, from the binary or `--web-dir`.
fn web(config: &Config) -> Result<String, String> {
    let files = WebFiles::from_config(config);
    if files.is_built() {
        Ok(files.describe())
    } else {
        Err(format!("{}: {}", files.describe(), crate::web::NOT_BUILT))
    }
}

/// The certificate and its key load, as `serve` would load them.
fn tls(config: &Config) -> Result<String, String> {
    let files = crate::tls::Files::from_config(config).map_err(|error| error.to_string())?;
    let Some(files) = files else { return Ok("not used".into()) };
    files.load().map_err(|error| error.to_string())?;
    Ok(format!("{} with its key {}", files.cert.display(), files.key.display()))
}

/// Nothing else listens on the address (bound, then let go).
async fn listen(config: &Config) -> Result<String, String> {
    match tokio::net::TcpListener::bind(config.listen).await {
        Ok(_) => Ok(format!("{} is free", config.listen)),
        Err(error) => Err(format!("cannot listen on {}: {error}", config.listen)),
    }
}

fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}
