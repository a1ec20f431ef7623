//! Memory of idle connections: starts a relay, opens N visitor WebSockets
//! that say hello and then stay idle, and prints the relay's RSS per
//! connection.
//!
//! ```sh
//! cargo build --release -p kefu-relay
//! cargo run --release -p kefu-tests --example idle_connections -- 1000
//! ```
//!
//! Needs an open-file limit above N (`ulimit -n`).

use anyhow::{Context, Result};
use kefu_tests::Relay;
use kefu_tests::raw::Raw;

#[tokio::main]
async fn main() -> Result<()> {
    let count: usize = std::env::args().nth(1).map_or(Ok(1000), |n| n.parse())?;
    // Every connection comes from 127.0.0.1: the per-address limit would
    // refuse most of them.
    let relay = Relay::start_with(&["--connections-per-minute-per-ip", "0"]).await?;
    // Warm up: the first connections pay for pools and caches that do not
    // grow with the number of connections.
    let mut held = Vec::with_capacity(count + 10);
    for _ in 0..10 {
        held.push(Raw::visitor(&relay.ws_url(), "demo").await?.0);
    }
    settle().await;
    let before = rss_kib(relay.pid())?;
    for _ in 0..count {
        held.push(Raw::visitor(&relay.ws_url(), "demo").await?.0);
    }
    settle().await;
    let after = rss_kib(relay.pid())?;
    let per = (after.saturating_sub(before)) as f64 / count as f64;
    println!(
        "relay RSS: {before} KiB with 10 connections, {after} KiB with {} -> {per:.1} KiB per idle connection",
        count + 10
    );
    drop(held);
    Ok(())
}

async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
}
