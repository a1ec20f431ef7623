//! The relay's configuration, from flags, environment variables or the
//! settings file (`cli::settings`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;
use ipnet::IpNet;

/// How a relay runs. Every field has a flag, an environment variable and a
/// default, so `kefu-relay` with no arguments is a working deployment; the
/// settings file (`--config`) takes the same names as the flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "kefu-relay", version, about = "Kefu's relay: live chat server")]
pub struct Config {
    /// Address to listen on for HTTP and WebSocket.
    #[arg(long, env = "KEFU_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Serve HTTPS and `wss://` with this certificate chain (PEM: the
    /// server's certificate first, then its intermediates) instead of
    /// plain HTTP; needs `--tls-key`. Both files are read again on SIGHUP,
    /// for new connections (open ones keep theirs). Unset: plain HTTP, for
    /// a proxy in front that terminates TLS.
    #[arg(long, env = "KEFU_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "KEFU_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Serve `/metrics` (Prometheus) on this address instead of the main
    /// one, which then has none. The page reveals traffic volumes, so give
    /// it a private address (loopback, or the network Prometheus scrapes
    /// from). Unset: `/metrics` on the main listener, for anyone who
    /// reaches the relay.
    #[arg(long, env = "KEFU_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// The address browsers reach the relay at, e.g.
    /// `https://chat.example.com`, whether TLS ends at the relay
    /// (`--tls-cert`) or at a proxy in front. When it is https the session
    /// cookie is `Secure`, whatever the proxy says; and pages of this
    /// origin count as the relay's own even when the proxy passes another
    /// `Host`. Unset: each request's `Host`, and `Secure` only with
    /// `--tls-cert` or behind a proxy that sends `X-Forwarded-Proto: https`.
    #[arg(long, env = "KEFU_PUBLIC_URL", value_parser = PublicUrl::parse)]
    pub public_url: Option<PublicUrl>,

    /// A proxy or load balancer in front of the relay, as an address or a
    /// CIDR block (`10.0.0.0/8`); repeatable, or comma-separated in the
    /// environment variable. A request from inside one of them is counted
    /// by the right-most address of its `X-Forwarded-For` that is not a
    /// trusted proxy too, so the per-address limits see the real client.
    /// Unset: `X-Forwarded-For` is never read, as any client can write it.
    #[arg(long = "trusted-proxy", env = "KEFU_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxies: Vec<IpNet>,

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

    /// Owners of the deployment besides the first admin: they see every
    /// site, create sites and step into any (the console's Sites page).
    /// Login emails; repeatable, or comma-separated in the environment
    /// variable. Added on each start; never removed by leaving one out.
    #[arg(long = "owner-email", env = "KEFU_OWNER_EMAILS", value_delimiter = ',')]
    pub owner_emails: Vec<String>,

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

    /// Serve the web apps from this folder (`cargo xtask build-web` writes
    /// `target/web`) instead of the copy built into the binary: for
    /// development, as a new build is served without a restart. Unset: the
    /// embedded copy.
    #[arg(long, env = "KEFU_WEB_DIR")]
    pub web_dir: Option<PathBuf>,

    /// The web build compiled into the binary (`build.rs`; `main.rs` sets
    /// it). Empty in the library's own uses, such as tests.
    #[arg(skip)]
    pub embedded_web: crate::web::EmbeddedWeb,

    /// How long a relay told to stop (SIGTERM) waits for its WebSockets to
    /// close, in milliseconds. Meanwhile it still answers HTTP, `/readyz`
    /// and new WebSocket upgrades with 503, so a balancer in front moves
    /// clients to another node; it stops listening once the last WebSocket
    /// has gone or this time is up.
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

    /// Login attempts per hour on one account (email), from any address,
    /// after a burst of as many: guessing one agent's password from many
    /// addresses is held back too. The right password passes only within
    /// the budget as well, so an attacker cannot tell it by the answer.
    /// 0 turns the limit off.
    #[arg(long, env = "KEFU_LOGINS_PER_HOUR_PER_ACCOUNT", default_value_t = 20)]
    pub logins_per_hour_per_account: u32,

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

    /// The SMTP server that sends the relay's mail: `smtp://host:port`
    /// (plain; add `?tls=required` for STARTTLS), `smtps://host:465`
    /// (TLS from the start), with `user:pass@` before the host to log in.
    /// Needs `--mail-from`. Unset: the relay sends no mail, queues none,
    /// and the console says so.
    #[arg(long, env = "KEFU_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// The sender of the relay's mail, `Kefu <kefu@chat.example.com>` or
    /// a bare address; also the `Reply-To` of sites that set none, and the
    /// domain of every mail's `Message-ID`.
    #[arg(long, env = "KEFU_MAIL_FROM")]
    pub mail_from: Option<String>,

    /// How long a mail the SMTP server did not take waits before its
    /// first retry, in seconds; each further retry waits twice as long,
    /// up to an hour.
    #[arg(long, env = "KEFU_MAIL_RETRY_SECS", default_value_t = 30)]
    pub mail_retry_secs: u64,

    /// Attempts at sending one mail before it is marked failed, its last
    /// error kept for the admins' outbox.
    #[arg(long, env = "KEFU_MAIL_ATTEMPTS", default_value_t = 8)]
    pub mail_attempts: u32,

    /// How long a node holds a mail it claimed, in seconds: a node that
    /// dies while sending leaves its mail to the others (or to itself,
    /// restarted) for this long. Longer than an SMTP exchange (30 s).
    #[arg(long, env = "KEFU_MAIL_LEASE_SECS", default_value_t = 120)]
    pub mail_lease_secs: u64,

    /// The largest file anyone may upload, in megabytes (10^6 bytes): the
    /// ceiling over every site's own limit (20 MB unless a site sets
    /// less).
    #[arg(long, env = "KEFU_ATTACHMENT_LIMIT_MB", default_value_t = 100)]
    pub attachment_limit_mb: u64,

    /// The folder uploads are kept in; unset, `attachments` in the data
    /// folder.
    #[arg(long, env = "KEFU_ATTACHMENTS_DIR", value_name = "DIR")]
    pub attachments_dir: Option<PathBuf>,

    /// How the log on stderr is written: `text` for people, `json` (one
    /// object a line) for a log collector. Which lines: `RUST_LOG`.
    #[arg(long, env = "KEFU_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The log's format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The relay's public address: its origin, and whether it is https.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host[:port]`, lowercase, the default port left out: what
    /// browsers send as `Origin` from the relay's own pages.
    pub origin: String,
    pub https: bool,
}

impl PublicUrl {
    /// An `http://` or `https://` URL; any path is ignored.
    pub fn parse(value: &str) -> Result<PublicUrl, String> {
        let url = url::Url::parse(value.trim()).map_err(|error| format!("not a URL: {error}"))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(format!("the public URL must be http:// or https://, not {other}://")),
        };
        if url.host_str().is_none() {
            return Err("the public URL needs a host".into());
        }
        Ok(PublicUrl { origin: url.origin().ascii_serialization(), https })
    }
}

/// An address (a block of one) or a CIDR block.
fn parse_cidr(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    if let Ok(block) = value.parse::<IpNet>() {
        return Ok(block.trunc());
    }
    value.parse::<IpAddr>().map(IpNet::from).map_err(|_| format!("{value:?} is neither an address nor a CIDR block"))
}

impl Config {
    /// The defaults, with the store in `data_dir`: for tests and embedding.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        let mut config = Config::parse_from(["kefu-relay"]);
        config.data_dir = data_dir.into();
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_url_keeps_its_origin_and_says_whether_it_is_https() {
        let url = PublicUrl::parse("https://Chat.Example.com:443/console").unwrap();
        assert_eq!(url, PublicUrl { origin: "https://chat.example.com".into(), https: true });
        let plain = PublicUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(plain, PublicUrl { origin: "http://127.0.0.1:8080".into(), https: false });
        assert!(PublicUrl::parse("ftp://chat.example.com").is_err());
        assert!(PublicUrl::parse("chat.example.com").is_err());
    }

    #[test]
    fn trusted_proxies_are_addresses_or_blocks_given_once_or_many_times() {
        let config = Config::parse_from(["kefu-relay", "--trusted-proxy", "10.1.2.3/8", "--trusted-proxy", "::1"]);
        let blocks: Vec<String> = config.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(blocks, ["10.0.0.0/8", "::1/128"]);
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("proxy.internal").is_err());
        assert!(Config::parse_from(["kefu-relay"]).trusted_proxies.is_empty());
    }
}
