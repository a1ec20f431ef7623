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

    /// Where the store lives instead of the embedded SQLite file in
    /// `data_dir`: a `postgres://` URL, shared by every relay node.
    #[arg(long, env = "KEFU_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Redis for fan-out and presence across relay nodes (`redis://...`).
    /// Without it the relay is a single node.
    #[arg(long, env = "KEFU_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis channel and key this relay uses, so several
    /// Kefu clusters (or tests) can share one Redis.
    #[arg(long, env = "KEFU_REDIS_PREFIX", default_value = "kefu")]
    pub redis_prefix: String,

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

    /// WebSocket connections one address may open per minute, after its
    /// burst. Generous by default: many visitors can share one address
    /// behind a NAT. 0 turns the limit off.
    #[arg(long, env = "KEFU_CONNECTIONS_PER_MINUTE_PER_IP", default_value_t = 1_200)]
    pub connections_per_minute_per_ip: u32,

    /// WebSocket connections one address may open at once before the
    /// per-minute rate applies.
    #[arg(long, env = "KEFU_CONNECTION_BURST", default_value_t = 500)]
    pub connection_burst: u32,

    /// Login attempts one address may make per minute, and at once: each
    /// costs an argon2 hash, and a password must not be guessed by brute
    /// force. 0 turns the limit off.
    #[arg(long, env = "KEFU_LOGINS_PER_MINUTE_PER_IP", default_value_t = 30)]
    pub logins_per_minute_per_ip: u32,

    /// Frames one connection may send per second, after its burst
    /// (heartbeat answers are not counted). Excess frames are refused with
    /// `RateLimited`, not acted on; a connection that keeps flooding is
    /// closed. 0 turns the limit off.
    #[arg(long, env = "KEFU_FRAMES_PER_SECOND", default_value_t = 100)]
    pub frames_per_second: u32,

    /// Frames one connection may send at once before the per-second rate
    /// applies: enough for a client resending its whole outbox after a
    /// reconnect.
    #[arg(long, env = "KEFU_FRAME_BURST", default_value_t = 1_000)]
    pub frame_burst: u32,

    /// How long a client may take to send a request's headers, in
    /// milliseconds; slower ones are cut off (slowloris).
    #[arg(long, env = "KEFU_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,

    /// How long a new WebSocket may take to say hello, in milliseconds.
    #[arg(long, env = "KEFU_HELLO_TIMEOUT_MS", default_value_t = 10_000)]
    pub hello_timeout_ms: u64,

    /// Threads of the async runtime; 0 means one per CPU core. The
    /// benchmarks run the relay on one (`cargo xtask bench`).
    #[arg(long, env = "KEFU_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,

    /// How long one write to a client may take, in milliseconds; a client
    /// that stops reading is disconnected once its buffers are full.
    #[arg(long, env = "KEFU_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub write_timeout_ms: u64,

    /// Open conversations in which nobody wrote are deleted once they, and
    /// their visitor's last connection, are older than this many seconds
    /// (checked every minute); 0 keeps them forever.
    #[arg(long, env = "KEFU_EMPTY_CONVERSATION_TTL_SECS", default_value_t = 86_400)]
    pub empty_conversation_ttl_secs: u64,
}

impl Config {
    /// The defaults, with the store in `data_dir`: for tests and embedding.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        let mut config = Config::parse_from(["kefu-relay"]);
        config.data_dir = data_dir.into();
        config
    }
}
