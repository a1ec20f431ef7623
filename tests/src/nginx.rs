//! Debian's nginx (`nginx-light`) in front of relay nodes, running the
//! shipped `dist/nginx.conf`: docs/src/cluster.md shows that file and [`SHIPPED`]
//! is it, so what a site owner copies is what the tests run.
//!
//! - [`for_test`]: the shipped text with only its addresses changed: the
//!   two `server` lines of the upstream become the test's nodes, `listen
//!   80;` a free port of 127.0.0.1.
//! - [`Nginx`]: nginx as a child process on such a config. The shipped
//!   file is the part that goes into `/etc/nginx/conf.d/`; what Debian's
//!   `/etc/nginx/nginx.conf` puts around it (`events`, `http`, temp paths)
//!   is written to a temp dir of its own, so it runs without root paths.
//! - [`links_to`]: how many TCP connections a node holds now, to tell
//!   which node a client's WebSocket went to.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::PATIENCE;

/// `dist/nginx.conf`, as shipped and shown in docs/src/cluster.md.
pub const SHIPPED: &str = include_str!("../../dist/nginx.conf");

/// Where Debian's `nginx-light` puts nginx.
const NGINX: &str = "/usr/sbin/nginx";

/// The upstream's nodes in the shipped file, replaced by the test's.
const NODES: [&str; 2] = ["server 127.0.0.1:8081;", "server 127.0.0.1:8082;"];

/// The shipped file's listen line, replaced by the test's port.
const LISTEN: &str = "listen 80;";

/// `config` (the text of `dist/nginx.conf`) with the upstream's two nodes
/// at `nodes` and nginx on `listen`; nothing else changes. Fails if the
/// text does not hold each line it replaces exactly once.
pub fn for_test(config: &str, nodes: [SocketAddr; 2], listen: SocketAddr) -> Result<String> {
    let mut config = config.to_owned();
    for (line, node) in NODES.iter().zip(nodes) {
        config = replace_once(&config, line, &format!("server {node};"))?;
    }
    replace_once(&config, LISTEN, &format!("listen {listen};"))
}

fn replace_once(text: &str, from: &str, to: &str) -> Result<String> {
    let found = text.matches(from).count();
    ensure!(found == 1, "dist/nginx.conf holds `{from}` {found} times; the nginx tests put their addresses there");
    Ok(text.replacen(from, to, 1))
}

/// `N` different addresses of 127.0.0.1 nothing listens on now, for
/// nodes and nginx that must know each other's ports before they start.
/// Another process could take one before its owner binds it; tests on
/// one machine rarely do.
pub fn free_addrs<const N: usize>() -> Result<[SocketAddr; N]> {
    // Held until all are picked, so no two are the same.
    let probes: Vec<TcpListener> =
        (0..N).map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0))).collect::<Result<_, _>>()?;
    let addrs: Vec<SocketAddr> = probes.iter().map(TcpListener::local_addr).collect::<Result<_, _>>()?;
    addrs.try_into().map_err(|_| anyhow::anyhow!("picked the wrong number of ports"))
}

/// nginx, master and worker, on a config of its own in a temp dir;
/// stopped (fast shutdown, workers included) when dropped.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Runs `config` (see [`for_test`]) in front of `nodes` on `addr`
    /// (of 127.0.0.1), and waits until it accepts connections.
    pub async fn start(config: &str, nodes: [SocketAddr; 2], addr: SocketAddr) -> Result<Nginx> {
        if !Path::new(NGINX).is_file() {
            bail!(
                "{NGINX} is missing: install Debian's nginx-light (`apt-get install -y nginx-light`; `.ci/run` does)"
            );
        }
        let dir = tempfile::Builder::new().prefix("kefu-nginx-").tempdir()?;
        // Run as root, nginx's worker runs as `nobody`, which must reach
        // the temp paths the master makes for it in here.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let site = dir.path().join("kefu.conf");
        std::fs::write(&site, for_test(config, nodes, addr)?)?;
        let main = dir.path().join("nginx.conf");
        std::fs::write(&main, main_config(dir.path(), &site))?;
        let globals = format!("daemon off; pid {}; error_log stderr;", dir.path().join("nginx.pid").display());
        let mut child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&main)
            .args(["-g", &globals])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawning nginx")?;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while TcpStream::connect(addr).await.is_err() {
            if let Some(status) = child.try_wait()? {
                bail!("nginx exited before it listened on {addr}: {status} (its error log is above)");
            }
            ensure!(tokio::time::Instant::now() < deadline, "nginx did not listen on {addr} within {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(Nginx { child, addr, dir })
    }

    /// `http://127.0.0.1:port`: pages, the HTTP API and logins through nginx.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:port/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Every request nginx answered so far, a line each: `STATUS METHOD
    /// PATH NODES`, where NODES lists each node it tried, in turn (`A, B`
    /// when A failed it and B answered). A WebSocket is logged when it
    /// closes, a refused upgrade at once.
    pub fn access_log(&self) -> Result<Vec<String>> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).context("nginx's access log")?;
        Ok(log.lines().map(ToOwned::to_owned).collect())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL would leave the worker behind, holding the port: SIGTERM
        // makes the master stop it first.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            for _ in 0..200 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.start_kill();
    }
}

/// What Debian's `/etc/nginx/nginx.conf` does around `conf.d/`, with
/// every path nginx writes under `dir`, and an access log there that
/// says which nodes each request was tried on.
fn main_config(dir: &Path, site: &Path) -> String {
    let dir = dir.display();
    format!(
        "worker_processes 1;
events {{
    worker_connections 1024;
}}
http {{
    log_format kefu_test '$status $request_method $uri $upstream_addr';
    access_log {dir}/access.log kefu_test;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {site};
}}
",
        site = site.display()
    )
}

/// How many established TCP connections the node listening on `node`
/// holds now (from `/proc/net/tcp`): behind nginx, which keeps no idle
/// links to the nodes, those are its clients' WebSockets and requests in
/// flight.
pub fn links_to(node: SocketAddr) -> Result<usize> {
    let table = std::fs::read_to_string("/proc/net/tcp").context("reading /proc/net/tcp")?;
    let port = format!(":{:04X}", node.port());
    // Columns: slot, local address:port, remote address:port, state (01 is
    // ESTABLISHED), ...
    Ok(table
        .lines()
        .skip(1)
        .filter(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            columns.len() > 3 && columns[1].ends_with(&port) && columns[3] == "01"
        })
        .count())
}
