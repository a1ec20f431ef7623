//! `kefu-bench`: Kefu's relay measured against Socket.IO and nchan on one
//! machine, in one run. Started by `cargo xtask bench [--quick]`.
//!
//! # Layout
//!
//! - `main.rs`: arguments, pinning this process to core 1 and raising its
//!   open-file limit, the order of scenarios, repeats and medians.
//! - `load`: the Kefu side of the load: the relay as a pinned child
//!   process on a seeded store, and a lean client on the protocol codec.
//! - `peers`: Socket.IO and nchan servers and their clients.
//! - `scenarios`: idle memory, fan-out sweep, live chat, two nodes,
//!   reconnect storm; each measures one point on a fresh server.
//! - `measure`: RSS and CPU from `/proc`, latency histograms.
//! - `report`: `results.md` and the SVG plots.

mod load;
mod measure;
mod peers;
mod report;
mod scenarios;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use crate::measure::{Latency, median};
use crate::report::Results;
use crate::scenarios::{ChatPoint, FanoutPoint, IdlePoint, StormPoint, System};

/// The load runs on this core; servers are started with `taskset -c 0`.
const LOAD_CORE: usize = 1;

#[derive(Debug, Parser)]
#[command(name = "kefu-bench", about = "Kefu against Socket.IO and nchan, side by side")]
struct Args {
    /// A scaled-down smoke run of every scenario (a few minutes).
    #[arg(long)]
    quick: bool,
    /// Where results.md and the plots go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Only this scenario: idle, fanout, chat, nodes, storm.
    #[arg(long)]
    only: Option<String>,
    /// Runs of each point; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Only these systems (kefu, socketio, nchan); all by default.
    #[arg(long, value_delimiter = ',')]
    systems: Vec<String>,
}

/// How big each scenario is.
#[derive(Debug)]
struct Plan {
    idle: Vec<usize>,
    /// Kefu's extra idle point: as many connections as the open-file limit
    /// allows, up to 50,000.
    idle_kefu_max: usize,
    rooms: usize,
    members: usize,
    rates: Vec<f64>,
    window: Duration,
    chat_conversations: usize,
    chat_rate: f64,
    nodes_conversations: usize,
    /// Messages per second, a point each: where two nodes keep up and
    /// where they stop.
    nodes_rates: Vec<f64>,
    storm_clients: usize,
    storm_rate: f64,
}

impl Plan {
    fn new(quick: bool, fd_limit: u64) -> Plan {
        // The relay and this process each hold one descriptor per
        // connection, plus a few hundred of their own.
        let fit = usize::try_from(fd_limit.saturating_sub(1_000)).unwrap_or(usize::MAX);
        if quick {
            Plan {
                idle: vec![1_000, 2_000],
                idle_kefu_max: 5_000.min(fit),
                rooms: 10,
                members: 100,
                rates: vec![5_000.0, 20_000.0],
                window: Duration::from_secs(3),
                chat_conversations: 500,
                chat_rate: 500.0,
                nodes_conversations: 200,
                nodes_rates: vec![1_000.0],
                storm_clients: 1_000,
                storm_rate: 200.0,
            }
        } else {
            Plan {
                idle: vec![5_000, 10_000],
                idle_kefu_max: 50_000.min(fit),
                rooms: 50,
                members: 100,
                rates: vec![5_000.0, 10_000.0, 20_000.0, 35_000.0, 50_000.0],
                window: Duration::from_secs(10),
                chat_conversations: 5_000,
                chat_rate: 2_000.0,
                nodes_conversations: 1_000,
                nodes_rates: vec![1_000.0, 2_500.0, 5_000.0],
                storm_clients: 10_000,
                storm_rate: 500.0,
            }
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Threads inherit the affinity: set it before the runtime starts.
    let mut cores = rustix::thread::CpuSet::new();
    cores.set(LOAD_CORE);
    if let Err(error) = rustix::thread::sched_setaffinity(None, &cores) {
        eprintln!("could not pin the load to core {LOAD_CORE}: {error}");
    }
    let fd_limit = raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(run(args, fd_limit))
}

/// Up to the hard limit; returns the limit now in force.
fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(1 << 20)
}

async fn run(args: Args, fd_limit: u64) -> Result<()> {
    let plan = Plan::new(args.quick, fd_limit);
    let repeat = args.repeat.max(1);
    let wants = |scenario: &str| args.only.as_deref().is_none_or(|only| only == scenario);
    let systems: Vec<System> = [System::Kefu, System::SocketIo, System::Nchan]
        .into_iter()
        .filter(|s| {
            args.systems.is_empty()
                || args.systems.iter().any(|w| {
                    let w = w.to_ascii_lowercase();
                    matches!(
                        (s, w.as_str()),
                        (System::Kefu, "kefu") | (System::SocketIo, "socketio") | (System::Nchan, "nchan")
                    )
                })
        })
        .collect();
    let mut results =
        Results { quick: args.quick, repeat, fanout_shape: (plan.rooms, plan.members), ..Results::default() };
    eprintln!("kefu-bench: {plan:?}, repeat {repeat}, open-file limit {fd_limit}, systems {systems:?}");
    if !args.quick && fd_limit < 50_000 + 1_000 {
        results.notes.push(format!(
            "The open-file limit here is {fd_limit} (hard), so the largest idle point for Kefu is {} connections, \
             not 50,000: each process holds one descriptor per connection.",
            plan.idle_kefu_max
        ));
    }

    if wants("idle") {
        for &system in &systems {
            let mut counts = plan.idle.clone();
            if system == System::Kefu && plan.idle_kefu_max > counts.last().copied().unwrap_or(0) {
                counts.push(plan.idle_kefu_max);
            }
            for count in counts {
                let label = format!("idle {} x{count}", system.name());
                let point = repeated(&label, repeat, || async move {
                    match system.peer() {
                        None => scenarios::idle_kefu(count).await,
                        Some(kind) => scenarios::idle_peer(kind, count).await,
                    }
                })
                .await;
                match point {
                    Ok(points) => results.idle.push((system, median_idle(&points))),
                    Err(error) => results.notes.push(format!("{label}: {error:#}")),
                }
            }
        }
    }

    if wants("fanout") {
        for &system in &systems {
            let label = format!("fan-out {}", system.name());
            let (rooms, members, rates, window) = (plan.rooms, plan.members, plan.rates.clone(), plan.window);
            let sweeps = repeated(&label, repeat, || {
                let rates = rates.clone();
                async move {
                    match system.peer() {
                        None => scenarios::fanout_kefu(rooms, members, &rates, window).await,
                        Some(kind) => scenarios::fanout_peer(kind, rooms, members, &rates, window).await,
                    }
                }
            })
            .await;
            match sweeps {
                Ok(sweeps) => {
                    for (n, _) in plan.rates.iter().enumerate() {
                        let points: Vec<FanoutPoint> = sweeps.iter().filter_map(|s| s.get(n).copied()).collect();
                        results.fanout.push((system, median_fanout(&points)));
                    }
                }
                Err(error) => results.notes.push(format!("{label}: {error:#}")),
            }
        }
    }

    if wants("chat") && systems.contains(&System::Kefu) {
        let (count, rate, window) = (plan.chat_conversations, plan.chat_rate, plan.window);
        match repeated("live chat", repeat, || scenarios::live_chat(count, rate, window)).await {
            Ok(points) => results.live_chat = Some(median_chat(&points)),
            Err(error) => results.notes.push(format!("live chat: {error:#}")),
        }
    }

    if wants("nodes") && systems.contains(&System::Kefu) {
        let (count, window) = (plan.nodes_conversations, plan.window);
        for &rate in &plan.nodes_rates {
            match repeated("two nodes", repeat, || scenarios::two_nodes(count, rate, window)).await {
                Ok(points) => results.two_nodes.push(median_chat(&points)),
                Err(error) => results.notes.push(format!("two nodes at {rate}/s: {error:#}")),
            }
        }
    }

    if wants("storm") && systems.contains(&System::Kefu) {
        let (clients, rate) = (plan.storm_clients, plan.storm_rate);
        match repeated("reconnect storm", repeat, || scenarios::storm(clients, rate)).await {
            Ok(points) => results.storm = Some(median_storm(&points)),
            Err(error) => results.notes.push(format!("reconnect storm: {error:#}")),
        }
    }

    report::write(&args.out, &results).with_context(|| format!("writing {}", args.out.display()))?;
    println!("{}", report::markdown(&results));
    eprintln!("kefu-bench: wrote {}", args.out.join("results.md").display());
    Ok(())
}

/// Runs `point` `repeat` times, each bounded to 15 minutes, printing each
/// outcome as it comes.
async fn repeated<T: std::fmt::Debug, F: Future<Output = Result<T>>>(
    label: &str,
    repeat: usize,
    mut point: impl FnMut() -> F,
) -> Result<Vec<T>> {
    let mut points = Vec::with_capacity(repeat);
    for run in 1..=repeat {
        eprintln!("kefu-bench: {label}, run {run}/{repeat} ...");
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(900), point()).await.context("timed out")??;
        eprintln!("kefu-bench: {label}, run {run}: {outcome:?} ({:.0} s)", started.elapsed().as_secs_f64());
        points.push(outcome);
        // Let sockets in TIME_WAIT and the previous server's memory go.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(points)
}

fn med<P>(points: &[P], field: impl Fn(&P) -> f64) -> f64 {
    median(&points.iter().map(field).collect::<Vec<_>>())
}

fn median_latency<P>(points: &[P], latency: impl Fn(&P) -> Latency) -> Latency {
    Latency {
        delivered: med(points, |p| latency(p).delivered as f64) as u64,
        p50_ms: med(points, |p| latency(p).p50_ms),
        p99_ms: med(points, |p| latency(p).p99_ms),
        p999_ms: med(points, |p| latency(p).p999_ms),
    }
}

fn median_idle(points: &[IdlePoint]) -> IdlePoint {
    IdlePoint {
        connections: points.first().map_or(0, |p| p.connections),
        before_kib: med(points, |p| p.before_kib),
        after_kib: med(points, |p| p.after_kib),
        per_connection_kib: med(points, |p| p.per_connection_kib),
        connect_seconds: med(points, |p| p.connect_seconds),
    }
}

fn median_fanout(points: &[FanoutPoint]) -> FanoutPoint {
    FanoutPoint {
        target_per_second: points.first().map_or(0.0, |p| p.target_per_second),
        delivered_per_second: med(points, |p| p.delivered_per_second),
        loss_percent: med(points, |p| p.loss_percent),
        latency: median_latency(points, |p| p.latency),
        rss_mib: med(points, |p| p.rss_mib),
        cpu_percent: med(points, |p| p.cpu_percent),
        load_cpu_percent: med(points, |p| p.load_cpu_percent),
    }
}

fn median_chat(points: &[ChatPoint]) -> ChatPoint {
    ChatPoint {
        conversations: points.first().map_or(0, |p| p.conversations),
        target_per_second: points.first().map_or(0.0, |p| p.target_per_second),
        delivered_per_second: med(points, |p| p.delivered_per_second),
        loss_percent: med(points, |p| p.loss_percent),
        latency: median_latency(points, |p| p.latency),
        rss_mib: med(points, |p| p.rss_mib),
        cpu_percent: med(points, |p| p.cpu_percent),
    }
}

fn median_storm(points: &[StormPoint]) -> StormPoint {
    StormPoint {
        clients: points.first().map_or(0, |p| p.clients),
        back_seconds: med(points, |p| p.back_seconds),
        replayed_percent: med(points, |p| p.replayed_percent),
        acknowledged: med(points, |p| p.acknowledged as f64) as u64,
        // Any loss or duplicate in any run is reported, not a median.
        lost: points.iter().map(|p| p.lost).max().unwrap_or(0),
        duplicated: points.iter().map(|p| p.duplicated).max().unwrap_or(0),
    }
}
