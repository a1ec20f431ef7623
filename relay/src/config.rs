//! The relay's configuration, from flags or environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// How a relay runs. Every field has a flag, an environment variable and a
/// default, so `kefu-relay` with no arguments is a working deployment.
#[derive(Debug, Clone, Parser)]
#[command(name = "kefu-relay", version, about = "Kefu's relay: live chat server")]
pub struct Config {
    /// Address to listen on for HTTP and WebSocket.
    #[arg(long, env = "KEFU_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Folder for the SQLite store; created if missing.
    #[arg(long, env = "KEFU_DATA_DIR", default_value = "./kefu-data")]
    pub data_dir: PathBuf,

    /// Email of the admin agent created on the first start.
    #[arg(long, env = "KEFU_ADMIN_EMAIL", default_value = "admin@example.com")]
    pub admin_email: String,

    /// Password of the admin agent created on the first start; when unset,
    /// one is generated and printed once.
    #[arg(long, env = "KEFU_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// How often the relay pings each client, in milliseconds. Announced
    /// in the welcome; clients use it for their own deadline.
    #[arg(long, env = "KEFU_HEARTBEAT_INTERVAL_MS", default_value_t = 25_000)]
    pub heartbeat_interval_ms: u32,

    /// Silence tolerated past the interval before a link counts as dead.
    #[arg(long, env = "KEFU_HEARTBEAT_GRACE_MS", default_value_t = 10_000)]
    pub heartbeat_grace_ms: u32,

    /// Frames a connection may have queued for sending before it counts
    /// as too slow and is disconnected.
    #[arg(long, env = "KEFU_OUTBOUND_QUEUE", default_value_t = 1024)]
    pub outbound_queue: usize,

    /// Folder with the built web apps (`cargo xtask build-web` writes it):
    /// kefu.js, the widget page and its hashed assets, the demo page.
    #[arg(long, env = "KEFU_WEB_DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/web"))]
    pub web_dir: PathBuf,

    /// How long shutdown waits for connections to close, in milliseconds.
    #[arg(long, env = "KEFU_DRAIN_MS", default_value_t = 5_000)]
    pub drain_ms: u64,
}

impl Config {
    /// The defaults, with the store in `data_dir`: for tests and embedding.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        let mut config = Config::parse_from(["kefu-relay"]);
        config.data_dir = data_dir.into();
        config
    }
}
