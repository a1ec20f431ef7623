//! The five scenarios of issue 7. Each `run_*` measures one point once on
//! a fresh server; `main` repeats points and takes medians.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt, stream};
use kefu_protocol::ids::ConversationId;
use tokio::sync::mpsc;

use crate::load::{self, Counters, KefuConn, KefuRelay, RelayOptions, Site};
use crate::measure::{self, CpuWindow, Latency, Recorder};
use crate::peers::{PeerKind, PeerMember, PeerServer};

/// Connections opened at once while setting up.
const CONNECT_CONCURRENCY: usize = 128;

/// Bytes of every published payload, for every system.
pub(crate) const PAYLOAD_BYTES: usize = 64;

/// The systems compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum System {
    Kefu,
    SocketIo,
    Nchan,
}

impl System {
    /// The peer behind a system, if it is one.
    pub(crate) fn peer(self) -> Option<PeerKind> {
        match self {
            System::Kefu => None,
            System::SocketIo => Some(PeerKind::SocketIo),
            System::Nchan => Some(PeerKind::Nchan),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            System::Kefu => "Kefu",
            System::SocketIo => "Socket.IO 4.8",
            System::Nchan => "nchan",
        }
    }
}

/// A fresh SQLite data dir and `sites` seeded sites.
async fn kefu_sqlite(sites: usize) -> Result<(tempfile::TempDir, KefuRelay, Vec<Site>)> {
    let dir = tempfile::tempdir()?;
    let seeded = load::seed(None, dir.path(), sites).await?;
    let relay = KefuRelay::start(dir.path(), RelayOptions::default()).await?;
    Ok((dir, relay, seeded))
}

// ---------------------------------------------------------------- idle

/// Scenario 1: memory of idle connections.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IdlePoint {
    pub(crate) connections: usize,
    pub(crate) before_kib: f64,
    pub(crate) after_kib: f64,
    pub(crate) per_connection_kib: f64,
    pub(crate) connect_seconds: f64,
}

/// `count` idle Kefu visitors, each a real hello and welcome (a new
/// visitor and its conversation stored).
pub(crate) async fn idle_kefu(count: usize) -> Result<IdlePoint> {
    let (_dir, relay, sites) = kefu_sqlite(1).await?;
    let counters = Arc::new(Counters::default());
    let site = &sites[0];
    // Warm-up: pools and caches that do not grow with connections.
    let mut held = Vec::with_capacity(count + 20);
    for n in 0..20 {
        held.push(load::connect(relay.addr(), load::source(n), load::visitor(site), None, counters.clone()).await?);
    }
    settle().await;
    let before = measure::rss_kib(relay.pid())? as f64;
    let started = Instant::now();
    let addr = relay.addr();
    let opened: Vec<Result<KefuConn>> = stream::iter(0..count)
        .map(|n| load::connect(addr, load::source(n), load::visitor(site), None, counters.clone()))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let connect_seconds = started.elapsed().as_secs_f64();
    for conn in opened {
        held.push(conn?);
    }
    settle().await;
    let after = measure::rss_kib(relay.pid())? as f64;
    let dropped = counters.dropped.load(Ordering::Relaxed);
    if dropped > 0 {
        bail!("{dropped} idle connections were dropped");
    }
    Ok(IdlePoint {
        connections: count,
        before_kib: before,
        after_kib: after,
        per_connection_kib: (after - before) / count as f64,
        connect_seconds,
    })
}

/// `count` idle members of a peer, in rooms of 100.
pub(crate) async fn idle_peer(kind: PeerKind, count: usize) -> Result<IdlePoint> {
    let server = PeerServer::start(kind, 0).await?;
    eprintln!("kefu-bench: {} listening on port {}", server.kind().name(), server.port());
    // The process that holds the connections: Node, or nginx's worker.
    let (port, pid) = (server.port(), server.pid());
    let rss = || measure::rss_kib(pid).map_or(f64::NAN, |kib| kib as f64);
    let mut held = Vec::with_capacity(count + 20);
    for n in 0..20 {
        held.push(PeerMember::join(kind, port, "warm-up", load::source(n)).await?);
    }
    settle().await;
    let before = rss();
    let started = Instant::now();
    let opened: Vec<Result<(PeerMember, mpsc::UnboundedReceiver<Vec<u8>>)>> = stream::iter(0..count)
        .map(|n| async move { PeerMember::join(kind, port, &format!("idle-{}", n / 100), load::source(n)).await })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let connect_seconds = started.elapsed().as_secs_f64();
    for member in opened {
        held.push(member?);
    }
    settle().await;
    let after = rss();
    Ok(IdlePoint {
        connections: count,
        before_kib: before,
        after_kib: after,
        per_connection_kib: (after - before) / count as f64,
        connect_seconds,
    })
}

async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

// ------------------------------------------------------------- fan-out

/// Scenario 2: one point of the fan-out sweep.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FanoutPoint {
    pub(crate) target_per_second: f64,
    pub(crate) delivered_per_second: f64,
    pub(crate) loss_percent: f64,
    pub(crate) latency: Latency,
    pub(crate) rss_mib: f64,
    pub(crate) cpu_percent: f64,
    /// This load generator's own CPU (% of its one core): near 100, the
    /// figures are the client's limit, not the server's.
    pub(crate) load_cpu_percent: f64,
}

/// One member of a room: publishes into it, and hears everything
/// published there (its own messages included).
#[derive(Debug)]
pub(crate) enum Member {
    Kefu {
        conn: KefuConn,
        conversation: ConversationId,
    },
    /// An agent connection that answers several conversations.
    Shared {
        conn: Arc<KefuConn>,
        conversation: ConversationId,
    },
    Peer(PeerMember),
}

impl Member {
    async fn publish(&self, payload: &[u8]) -> Result<()> {
        match self {
            Member::Kefu { conn, conversation } => conn.publish(*conversation, payload),
            Member::Shared { conn, conversation } => conn.publish(*conversation, payload),
            Member::Peer(member) => member.publish(payload).await,
        }
    }
}

/// Rooms set up on a running server, with what they hear going to one
/// recorder.
#[derive(Debug)]
pub(crate) struct Rooms {
    pub(crate) rooms: Vec<Vec<Member>>,
    pub(crate) recorder: Recorder,
}

/// Hands every payload a member hears to the recorder.
fn record_into(recorder: &Recorder, mut payloads: mpsc::UnboundedReceiver<Vec<u8>>, skip_tag: Option<u8>) {
    let recorder = recorder.clone();
    tokio::spawn(async move {
        while let Some(payload) = payloads.recv().await {
            if skip_tag.is_some() && payload.get(21).copied() == skip_tag {
                continue; // this member's own message coming back
            }
            recorder.record(&payload);
        }
    });
}

/// Kefu rooms: a room is one site's visitor conversation followed by the
/// visitor and `members - 1` agent connections that join it. Every
/// message is stored durably before it is delivered.
pub(crate) async fn kefu_rooms(relay: &KefuRelay, sites: &[Site], members: usize) -> Result<Rooms> {
    let recorder = Recorder::new();
    let counters = Arc::new(Counters::default());
    let addr = relay.addr();
    let mut rooms = Vec::with_capacity(sites.len());
    let mut n = 0;
    for site in sites {
        let (tx, rx) = mpsc::unbounded_channel();
        record_into(&recorder, rx, None);
        let visitor = load::connect(addr, load::source(n), load::visitor(site), Some(tx), counters.clone()).await?;
        n += 1;
        let conversation = visitor.open_conversation().await?;
        let agents: Vec<Result<Member>> = stream::iter(1..members)
            .map(|i| {
                let (tx, rx) = mpsc::unbounded_channel();
                record_into(&recorder, rx, None);
                let counters = counters.clone();
                let credentials = load::agent(site);
                async move {
                    let conn = load::connect(addr, load::source(n + i), credentials, Some(tx), counters).await?;
                    conn.join(conversation).await?;
                    Ok(Member::Kefu { conn, conversation })
                }
            })
            .buffer_unordered(CONNECT_CONCURRENCY)
            .collect()
            .await;
        n += members;
        let mut room = vec![Member::Kefu { conn: visitor, conversation }];
        for agent in agents {
            room.push(agent?);
        }
        rooms.push(room);
    }
    Ok(Rooms { rooms, recorder })
}

/// Publishes at `per_second` for `duration`, round robin over rooms and
/// over the members of each; returns how many were published.
async fn pace(rooms: &[Vec<Member>], per_second: f64, duration: Duration, tag: u8, next: &AtomicU64) -> Result<u64> {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(5));
    let mut sent: u64 = 0;
    while started.elapsed() < duration {
        ticks.tick().await;
        let due = (per_second * started.elapsed().as_secs_f64().min(duration.as_secs_f64())) as u64;
        while sent < due {
            let room = &rooms[(sent % rooms.len() as u64) as usize];
            let member = &room[((sent / rooms.len() as u64) % room.len() as u64) as usize];
            member.publish(&measure::payload(PAYLOAD_BYTES, next.fetch_add(1, Ordering::Relaxed), tag)).await?;
            sent += 1;
        }
    }
    Ok(sent)
}

/// Measures one rate on rooms that are already set up: a warm-up, a
/// window, and a drain for late deliveries.
pub(crate) async fn fanout_point(
    rooms: &Rooms,
    server_pids: &[u32],
    deliveries_per_second: f64,
    window: Duration,
) -> Result<FanoutPoint> {
    let members = rooms.rooms.first().map_or(1, Vec::len) as f64;
    let publishes = deliveries_per_second / members;
    let next = AtomicU64::new(0);
    pace(&rooms.rooms, publishes, Duration::from_secs(1), b'r', &next).await?;
    rooms.recorder.open_window();
    let cpu = CpuWindow::start(server_pids);
    let load_cpu = CpuWindow::start(&[std::process::id()]);
    let started = Instant::now();
    let published = pace(&rooms.rooms, publishes, window, b'r', &next).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_percent = cpu.percent();
    let load_cpu_percent = load_cpu.percent();
    let expected = published as f64 * members;
    // Late deliveries still count, for loss; not for the rate.
    let delivered_in_window = rooms.recorder.latency().delivered as f64;
    measure::wait_until(Duration::from_secs(5), || rooms.recorder.latency().delivered as f64 >= expected).await;
    let latency = rooms.recorder.latency();
    let rss_mib = server_pids.iter().filter_map(|&pid| measure::rss_kib(pid).ok()).sum::<u64>() as f64 / 1024.0;
    Ok(FanoutPoint {
        target_per_second: deliveries_per_second,
        delivered_per_second: delivered_in_window / elapsed,
        loss_percent: ((expected - latency.delivered as f64) / expected.max(1.0) * 100.0).max(0.0),
        latency,
        rss_mib,
        cpu_percent,
        load_cpu_percent,
    })
}

/// The whole sweep on one fresh Kefu relay.
pub(crate) async fn fanout_kefu(
    rooms: usize,
    members: usize,
    rates: &[f64],
    window: Duration,
) -> Result<Vec<FanoutPoint>> {
    let (_dir, relay, sites) = kefu_sqlite(rooms).await?;
    let set_up = kefu_rooms(&relay, &sites, members).await?;
    let mut points = Vec::new();
    for &rate in rates {
        points.push(fanout_point(&set_up, &[relay.pid()], rate, window).await?);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(points)
}

/// Peer rooms: `rooms` rooms of `members` members each.
pub(crate) async fn peer_rooms(kind: PeerKind, port: u16, rooms: usize, members: usize) -> Result<Rooms> {
    let recorder = Recorder::new();
    let mut all = Vec::with_capacity(rooms);
    for r in 0..rooms {
        let room = format!("room-{r}");
        let joined: Vec<Result<Member>> = stream::iter(0..members)
            .map(|m| {
                let (room, recorder) = (room.clone(), recorder.clone());
                async move {
                    let (member, payloads) = PeerMember::join(kind, port, &room, load::source(r * members + m)).await?;
                    record_into(&recorder, payloads, None);
                    Ok(Member::Peer(member))
                }
            })
            .buffer_unordered(CONNECT_CONCURRENCY)
            .collect()
            .await;
        all.push(joined.into_iter().collect::<Result<Vec<_>>>()?);
    }
    Ok(Rooms { rooms: all, recorder })
}

/// The whole sweep on one fresh peer server.
pub(crate) async fn fanout_peer(
    kind: PeerKind,
    rooms: usize,
    members: usize,
    rates: &[f64],
    window: Duration,
) -> Result<Vec<FanoutPoint>> {
    let server = PeerServer::start(kind, 0).await?;
    let set_up = peer_rooms(kind, server.port(), rooms, members).await?;
    let mut points = Vec::new();
    for &rate in rates {
        points.push(fanout_point(&set_up, &server.pids(), rate, window).await?);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(points)
}

// ----------------------------------------------------------- live chat

/// Scenarios 3 and 4: conversations of a visitor and an agent, messages
/// both ways, latency measured at the other party.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChatPoint {
    pub(crate) conversations: usize,
    pub(crate) target_per_second: f64,
    pub(crate) delivered_per_second: f64,
    pub(crate) loss_percent: f64,
    pub(crate) latency: Latency,
    pub(crate) rss_mib: f64,
    pub(crate) cpu_percent: f64,
}

/// Visitors on `visitor_node`, agents on `agent_node`: `per_site`
/// conversations in each site, each agent connection following
/// `per_agent` of them. Returns pairs (visitor side, agent side) as
/// one-member "rooms" for each direction.
async fn chat_pairs(
    visitor_node: SocketAddr,
    agent_node: SocketAddr,
    sites: &[Site],
    per_site: usize,
    per_agent: usize,
    recorder: &Recorder,
) -> Result<(Vec<Vec<Member>>, Vec<Vec<Member>>)> {
    let counters = Arc::new(Counters::default());
    let mut from_visitors = Vec::new();
    let mut from_agents = Vec::new();
    let mut n = 0;
    for site in sites {
        let visitors: Vec<Result<KefuConn>> = stream::iter(0..per_site)
            .map(|i| {
                let (tx, rx) = mpsc::unbounded_channel();
                record_into(recorder, rx, Some(b'v'));
                load::connect(visitor_node, load::source(n + i), load::visitor(site), Some(tx), counters.clone())
            })
            .buffer_unordered(CONNECT_CONCURRENCY)
            .collect()
            .await;
        n += per_site;
        let mut conversations = Vec::new();
        for visitor in visitors {
            let visitor = visitor?;
            let conversation = visitor.open_conversation().await?;
            conversations.push(conversation);
            from_visitors.push(vec![Member::Kefu { conn: visitor, conversation }]);
        }
        for chunk in conversations.chunks(per_agent.max(1)) {
            let (tx, rx) = mpsc::unbounded_channel();
            record_into(recorder, rx, Some(b'a'));
            let conn = Arc::new(
                load::connect(agent_node, load::source(n), load::agent(site), Some(tx), counters.clone()).await?,
            );
            n += 1;
            for &conversation in chunk {
                conn.join(conversation).await?;
            }
            for &conversation in chunk {
                from_agents.push(vec![Member::Shared { conn: conn.clone(), conversation }]);
            }
        }
    }
    Ok((from_visitors, from_agents))
}

/// Runs both directions at `per_second` messages in all for `window`.
async fn chat_traffic(
    from_visitors: &[Vec<Member>],
    from_agents: &[Vec<Member>],
    recorder: &Recorder,
    pids: &[u32],
    per_second: f64,
    window: Duration,
) -> Result<ChatPoint> {
    let next = AtomicU64::new(0);
    let half = per_second / 2.0;
    let warm = Duration::from_secs(1);
    tokio::try_join!(pace(from_visitors, half, warm, b'v', &next), pace(from_agents, half, warm, b'a', &next))?;
    recorder.open_window();
    let cpu = CpuWindow::start(pids);
    let started = Instant::now();
    let (a, b) =
        tokio::try_join!(pace(from_visitors, half, window, b'v', &next), pace(from_agents, half, window, b'a', &next))?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_percent = cpu.percent();
    let expected = (a + b) as f64;
    let in_window = recorder.latency().delivered as f64;
    measure::wait_until(Duration::from_secs(5), || recorder.latency().delivered as f64 >= expected).await;
    let latency = recorder.latency();
    let rss_mib = pids.iter().filter_map(|&pid| measure::rss_kib(pid).ok()).sum::<u64>() as f64 / 1024.0;
    Ok(ChatPoint {
        conversations: from_visitors.len(),
        target_per_second: per_second,
        delivered_per_second: in_window / elapsed,
        loss_percent: ((expected - latency.delivered as f64) / expected.max(1.0) * 100.0).max(0.0),
        latency,
        rss_mib,
        cpu_percent,
    })
}

/// Scenario 3 on one relay: `conversations` chats in 50 sites, each agent
/// connection handling 5 of them.
pub(crate) async fn live_chat(conversations: usize, per_second: f64, window: Duration) -> Result<ChatPoint> {
    let site_count = 50.min(conversations);
    let (_dir, relay, sites) = kefu_sqlite(site_count).await?;
    let recorder = Recorder::new();
    let per_site = conversations / site_count;
    let (from_visitors, from_agents) = chat_pairs(relay.addr(), relay.addr(), &sites, per_site, 5, &recorder).await?;
    chat_traffic(&from_visitors, &from_agents, &recorder, &[relay.pid()], per_second, window).await
}

/// Scenario 4: two relays on one PostgreSQL database and Redis, visitors
/// on one, their agents on the other: every delivery crosses nodes.
pub(crate) async fn two_nodes(conversations: usize, per_second: f64, window: Duration) -> Result<ChatPoint> {
    let database = kefu_tests::postgres::Database::create().await?;
    let dir = tempfile::tempdir()?;
    let site_count = 20.min(conversations);
    let sites = load::seed(Some(database.url()), dir.path(), site_count).await?;
    let options = RelayOptions {
        database_url: Some(database.url().to_owned()),
        redis_url: Some(kefu_tests::cluster::SHARED_REDIS.to_owned()),
        redis_prefix: Some(kefu_tests::cluster::redis_prefix()),
        core: 0,
    };
    let dir_b = tempfile::tempdir()?;
    let node_a = KefuRelay::start(dir.path(), options.clone()).await?;
    let node_b = KefuRelay::start(dir_b.path(), options).await?;
    let recorder = Recorder::new();
    let per_site = conversations / site_count;
    let per_agent = per_site.div_ceil(2);
    let (from_visitors, from_agents) =
        chat_pairs(node_a.addr(), node_b.addr(), &sites, per_site, per_agent, &recorder).await?;
    let point =
        chat_traffic(&from_visitors, &from_agents, &recorder, &[node_a.pid(), node_b.pid()], per_second, window).await;
    drop((from_visitors, from_agents));
    drop((node_a, node_b));
    point
}

// ----------------------------------------------------- reconnect storm

/// Scenario 5: every client of one node cut at once by `kill -9`, while
/// the other node's agent keeps writing to them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StormPoint {
    pub(crate) clients: usize,
    pub(crate) back_seconds: f64,
    /// Of the messages the visitors heard after the kill, the share that
    /// reached them by replay: written while they were away.
    pub(crate) replayed_percent: f64,
    /// Messages the relays acknowledged to their senders.
    pub(crate) acknowledged: u64,
    /// Stored messages some visitor never heard.
    pub(crate) lost: u64,
    /// Messages a visitor heard twice.
    pub(crate) duplicated: u64,
}

/// What one SDK client heard, for the checker.
#[derive(Debug, Default)]
struct Heard {
    /// Seqs of its own conversation, in arrival order.
    seqs: Vec<u64>,
    replaying: bool,
    replayed: u64,
    after_kill: u64,
}

/// `clients` SDK visitors on node A, each in its own conversation, and one
/// agent connection on node B; visitors and agent write at `per_second` in
/// all. Node A is killed and restarted on the same port and database; what
/// the agent wrote meanwhile the visitors must get by replay, nothing lost
/// or heard twice.
pub(crate) async fn storm(clients: usize, per_second: f64) -> Result<StormPoint> {
    use kefu_sdk::{Body, Client, Event, LinkState};
    use std::sync::Mutex;

    let database = kefu_tests::postgres::Database::create().await?;
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let sites = load::seed(Some(database.url()), dir_a.path(), 1).await?;
    let options = RelayOptions {
        database_url: Some(database.url().to_owned()),
        redis_url: Some(kefu_tests::cluster::SHARED_REDIS.to_owned()),
        redis_prefix: Some(kefu_tests::cluster::redis_prefix()),
        core: 0,
    };
    let mut node_a = KefuRelay::start(dir_a.path(), options.clone()).await?;
    let node_b = KefuRelay::start(dir_b.path(), options).await?;
    let site = sites[0].key.as_str().to_owned();
    let url = node_a.ws_url();
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut all = Vec::with_capacity(clients);
    let mut heard = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, mut events) = Client::visitor(url.clone(), &site)?;
        let record = Arc::new(Mutex::new(Heard::default()));
        let (into, killed) = (record.clone(), killed.clone());
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let mut heard = into.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match event {
                    Event::Welcome(_) => heard.replaying = killed.load(Ordering::Relaxed),
                    Event::ReplayComplete(_) => heard.replaying = false,
                    Event::Message(message) => {
                        heard.seqs.push(message.seq.0);
                        if killed.load(Ordering::Relaxed) {
                            heard.after_kill += 1;
                            if heard.replaying {
                                heard.replayed += 1;
                            }
                        }
                    }
                    _ => {}
                }
            }
        });
        all.push(client);
        heard.push(record);
    }
    let live = |all: &[Client]| all.iter().all(|c| c.link() == LinkState::Live);
    if !measure::wait_until(Duration::from_secs(120), || live(&all)).await {
        bail!("not every storm client connected");
    }
    // Each visitor's first line makes its conversation, so the agent can
    // write there.
    let conversations: Vec<ConversationId> = stream::iter(&all)
        .map(|client| async move {
            let conversation = client.conversation().await?;
            client.send(conversation, Body::Text("hello".into())).await?;
            anyhow::Ok(conversation)
        })
        .buffered(CONNECT_CONCURRENCY)
        .try_collect()
        .await?;
    let agent_counters = Arc::new(Counters::default());
    let agent = Arc::new(
        load::connect(node_b.addr(), load::source(clients), load::agent(&sites[0]), None, agent_counters.clone())
            .await?,
    );
    let clients_arc: Arc<Vec<Client>> = Arc::new(all);
    let acknowledged = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (clients_arc, acknowledged, stop) = (clients_arc.clone(), acknowledged.clone(), stop.clone());
        let (agent, conversations) = (agent.clone(), conversations.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut sent = 0u64;
            let mut sends = tokio::task::JoinSet::new();
            let mut ticks = tokio::time::interval(Duration::from_millis(5));
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(300) {
                ticks.tick().await;
                let due = (per_second * started.elapsed().as_secs_f64()) as u64;
                while sent < due {
                    let n = (sent as usize * 7919) % clients_arc.len();
                    let conversation = conversations[n];
                    // Every other message is the agent's: it keeps coming
                    // while the visitors' node is down.
                    if sent.is_multiple_of(2) {
                        let _ = agent.publish(conversation, format!("agent {sent}").as_bytes());
                    } else {
                        let (client, acknowledged) = (clients_arc[n].clone(), acknowledged.clone());
                        sends.spawn(async move {
                            if client.send(conversation, Body::Text(format!("storm {sent}"))).await.is_ok() {
                                acknowledged.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                    }
                    sent += 1;
                }
                while sends.try_join_next().is_some() {}
            }
            let _ = tokio::time::timeout(Duration::from_secs(60), async { while sends.join_next().await.is_some() {} })
                .await;
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    killed.store(true, Ordering::Relaxed);
    let cut = Instant::now();
    node_a.kill9_and_restart().await?;
    // Each client's link must first go down, then come back.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let back = measure::wait_until(Duration::from_secs(120), || live(&clients_arc)).await;
    let back_seconds = cut.elapsed().as_secs_f64();
    if !back {
        bail!("not every client came back within 120 s");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    sender.await?;
    // The agent's last sends are answered within moments; then what is
    // stored is final, and every visitor must hear all of its own.
    let answered = || agent_counters.accepted.load(Ordering::Relaxed) + agent_counters.rejected.load(Ordering::Relaxed);
    measure::wait_until(Duration::from_secs(10), || answered() >= agent.sent()).await;
    let stored = stored_seqs(database.url(), &sites[0].key, &conversations).await?;
    let lost = || {
        let mut lost = 0u64;
        for (n, stored) in stored.iter().enumerate() {
            let heard = heard[n].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            lost += stored.iter().filter(|seq| !heard.seqs.contains(seq)).count() as u64;
        }
        lost
    };
    measure::wait_until(Duration::from_secs(30), || lost() == 0).await;
    let lost = lost();
    let (mut duplicated, mut replayed, mut after_kill) = (0u64, 0u64, 0u64);
    for record in &heard {
        let heard = record.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut seen = std::collections::HashSet::new();
        duplicated += heard.seqs.iter().filter(|seq| !seen.insert(**seq)).count() as u64;
        replayed += heard.replayed;
        after_kill += heard.after_kill;
    }
    for client in clients_arc.iter() {
        client.stop();
    }
    Ok(StormPoint {
        clients,
        back_seconds,
        replayed_percent: replayed as f64 / after_kill.max(1) as f64 * 100.0,
        acknowledged: acknowledged.load(Ordering::Relaxed) + agent_counters.accepted.load(Ordering::Relaxed),
        lost,
        duplicated,
    })
}

/// Every conversation's stored seqs, read from the database itself; the
/// conversations are of the site with key `site`.
async fn stored_seqs(
    database_url: &str,
    site: &kefu_protocol::ids::SiteKey,
    conversations: &[ConversationId],
) -> Result<Vec<Vec<u64>>> {
    let store = kefu_relay::store::Store::connect(Some(database_url), std::path::Path::new(".")).await?;
    let site = store.site_by_key(site).await?.context("the seeded site is gone")?.id;
    let mut all = Vec::with_capacity(conversations.len());
    for &conversation in conversations {
        let messages = store.messages_after(site, conversation, kefu_protocol::ids::Seq::ZERO, u32::MAX).await?;
        all.push(messages.iter().map(|message| message.seq.0).collect());
    }
    store.close().await;
    Ok(all)
}
