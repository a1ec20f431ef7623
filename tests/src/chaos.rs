//! The chaos suite: many visitors and agents chatting through a network
//! that cuts, stalls and slows their connections, to a relay that is
//! `kill -9`ed and restarted now and then, and a checker that counts
//! everything that went wrong against what the store holds.
//!
//! # Layout
//!
//! - [`ChaosConfig`]: how many clients, for how long, under how much fire;
//!   [`ChaosConfig::ci`] is the CI run, [`ChaosConfig::soak`] the long one.
//! - [`run`]: the whole run, in phases:
//!   1. setup: a relay, a [`FaultProxy`] in front of it, agents created
//!      over HTTP, every client connected through the proxy;
//!   2. fire: visitors send numbered messages, agents reply in the
//!      conversations they follow, while proxy faults and relay kills
//!      are drawn from the seed;
//!   3. calm: faults stop, traffic stops, every send must be acknowledged
//!      and every party must catch up to the store, within a bound;
//!   4. the relay is killed and the store is read straight from its file.
//! - [`check`]: what every party sent and received against the store:
//!   pure, so its own tests feed it broken histories. What a party
//!   received is looked at twice: the frames the relay sent it, off the
//!   SDK's [`Tap`] before the session drops duplicates and holes (the
//!   relay's promise), and the messages its event stream handed on (the
//!   application's view).
//! - [`Figures`]: the counts, printed as a table, asserted by the tests.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use kefu_protocol::frame::{Author, Credentials};
use kefu_protocol::ids::{AgentToken, ConversationId, MessageId, Seq, SiteKey};
use kefu_protocol::{ClientFrame, ServerFrame};
use kefu_sdk::{Accepted, Body, Client, Event, Events, Message, SessionConfig, Tap, Wire};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::faults::{FaultMix, FaultProxy};
use crate::{PATIENCE, Relay};

/// The site every chaos visitor comes to.
const SITE: &str = "demo";

/// The password of the agents a run creates.
const AGENT_PASSWORD: &str = "chaos agent password";

/// Most problems the figures spell out; the counts include the rest.
const MAX_PROBLEMS: usize = 25;

/// How many clients, for how long, and how much goes wrong.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Seeds every random choice: the fault schedule, kill times, pauses,
    /// which messages agents answer.
    pub seed: u64,
    /// Visitors, each in a conversation of its own.
    pub visitors: usize,
    /// Agents; each conversation is followed by two of them (one if
    /// there is only one).
    pub agents: usize,
    /// How long traffic runs under fire.
    pub duration: Duration,
    /// How many times the relay is `kill -9`ed and restarted during it.
    pub kills: u32,
    /// The gap between two proxy faults is drawn from this range.
    pub fault_gap: (Duration, Duration),
    /// Which proxy faults, how bad.
    pub mix: FaultMix,
    /// A visitor's pause before each message is drawn from this range.
    pub send_pause: (Duration, Duration),
    /// How many sends a client has waiting for acknowledgement at most.
    pub window: usize,
    /// A visitor sends at most this many messages.
    pub max_per_visitor: u32,
    /// The chance that an agent answers a visitor's message.
    pub reply_chance: f64,
    /// After the faults stop: how long every send may take to be
    /// acknowledged, and then every party to catch up, each.
    pub settle: Duration,
    /// The relay's heartbeat interval and grace, in milliseconds: short, so
    /// that stalls past them are noticed as dead links.
    pub heartbeat_ms: (u32, u32),
}

impl ChaosConfig {
    /// The CI run: 20 visitors, 4 agents, 40 s under fire with 3 kills
    /// and about a hundred proxy faults; about a minute on two cores.
    pub fn ci(seed: u64) -> ChaosConfig {
        ChaosConfig {
            seed,
            visitors: 20,
            agents: 4,
            duration: Duration::from_secs(40),
            kills: 3,
            fault_gap: (Duration::from_millis(150), Duration::from_millis(600)),
            mix: FaultMix::default(),
            send_pause: (Duration::from_millis(100), Duration::from_millis(900)),
            window: 3,
            max_per_visitor: 500,
            reply_chance: 0.5,
            settle: Duration::from_secs(60),
            heartbeat_ms: (1_000, 1_500),
        }
    }

    /// A long run: a kill about every 20 s, a proxy fault every 50-400 ms,
    /// visitors pausing longer so that hundreds of them stay a sane load.
    pub fn soak(seed: u64, seconds: u64, visitors: usize, agents: usize) -> ChaosConfig {
        ChaosConfig {
            duration: Duration::from_secs(seconds),
            visitors,
            agents,
            kills: u32::try_from(seconds / 20).unwrap_or(u32::MAX).max(1),
            fault_gap: (Duration::from_millis(50), Duration::from_millis(400)),
            send_pause: (Duration::from_millis(300), Duration::from_millis(3_000)),
            max_per_visitor: 10_000,
            settle: Duration::from_secs(120),
            ..ChaosConfig::ci(seed)
        }
    }

    fn session(&self) -> SessionConfig {
        // Quicker than the defaults so a run spends its time under fire,
        // not in backoff; the logic is the same.
        SessionConfig {
            backoff_initial_ms: 200,
            backoff_max_ms: 2_000,
            stable_after_ms: 3_000,
            handshake_timeout_ms: 4_000,
            auto_join: false,
        }
    }

    /// An RNG of its own for each part of the run, all from the one seed.
    fn rng(&self, stream: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

/// What a run counted. Everything from `lost` to `rejected` must be zero.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// The seed the run was drawn from.
    pub seed: u64,
    /// Visitors.
    pub visitors: usize,
    /// Agents.
    pub agents: usize,
    /// Conversations (one per visitor).
    pub conversations: usize,
    /// How long traffic ran under fire.
    pub under_fire: Duration,
    /// Messages the clients asked to send.
    pub sent: usize,
    /// Of those, acknowledged (`Accepted`) by the relay.
    pub acknowledged: usize,
    /// Messages in the store at the end, system lines included.
    pub stored: usize,
    /// Connections the proxy cut.
    pub cuts: u64,
    /// Connections the proxy stalled.
    pub stalls: u64,
    /// Connections the proxy slowed down.
    pub delays: u64,
    /// Times the relay was `kill -9`ed and restarted.
    pub kills: u32,
    /// Acknowledged messages the store does not hold as acknowledged
    /// (missing, or another message at their seq).
    pub lost: usize,
    /// Extra copies in the store of one client message (same client id,
    /// or same text, from the same author).
    pub duplicated_stored: usize,
    /// Messages sent to a party again that it had not asked for again:
    /// on the wire, a message the relay sent on a link after it had sent
    /// it there already, or that the hello's cursor or a join said the
    /// client held; in the event stream, one handed to the application
    /// twice (also a copy stored at a seq of its own, by its text).
    pub duplicated_delivered: usize,
    /// Order breaks: on the wire, a message whose `prev` is not the one
    /// the relay sent before it on that link (nor the start of a replay
    /// the client asked for); a party's seqs not strictly increasing in
    /// its event stream; a sender's messages stored in another order than
    /// sent; holes in the store's seqs.
    pub out_of_order: usize,
    /// Messages in the store a party may see but never got, after the
    /// catch-up.
    pub missing: usize,
    /// Messages a party got that the store does not hold like that, and
    /// stored texts nobody sent.
    pub phantom: usize,
    /// Sends still waiting for their acknowledgement at the end.
    pub unacknowledged: usize,
    /// Sends the relay refused.
    pub rejected: usize,
    /// From the last fault until every send was acknowledged and every
    /// party held everything stored for it; `None` if that never happened
    /// within the bound.
    pub catch_up: Option<Duration>,
    /// The first problems found, spelled out.
    pub problems: Vec<String>,
}

impl Figures {
    /// `Ok` when nothing was lost, doubled, reordered or left behind.
    pub fn assert_clean(&self) -> Result<()> {
        let bad = [
            ("lost", self.lost),
            ("duplicated in the store", self.duplicated_stored),
            ("delivered twice", self.duplicated_delivered),
            ("out of order", self.out_of_order),
            ("missing after catch-up", self.missing),
            ("phantom", self.phantom),
            ("unacknowledged", self.unacknowledged),
            ("rejected", self.rejected),
        ];
        let failed: Vec<String> =
            bad.iter().filter(|(_, count)| *count > 0).map(|(what, count)| format!("{count} {what}")).collect();
        if !failed.is_empty() || self.catch_up.is_none() {
            let caught_up = if self.catch_up.is_none() { "; parties never caught up" } else { "" };
            bail!("chaos seed {}: {}{caught_up}\n{self}", self.seed, failed.join(", "));
        }
        Ok(())
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let catch_up = self.catch_up.map_or_else(|| "never".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
        let rows: [(&str, String); 19] = [
            ("seed", self.seed.to_string()),
            (
                "clients",
                format!("{} ({} visitors, {} agents)", self.visitors + self.agents, self.visitors, self.agents),
            ),
            ("conversations", self.conversations.to_string()),
            ("under fire", format!("{:.0} s", self.under_fire.as_secs_f64())),
            ("messages sent", self.sent.to_string()),
            ("acknowledged", self.acknowledged.to_string()),
            ("stored", self.stored.to_string()),
            ("proxy cuts", self.cuts.to_string()),
            ("proxy stalls", self.stalls.to_string()),
            ("proxy delays", self.delays.to_string()),
            ("relay kill -9 restarts", self.kills.to_string()),
            ("lost", self.lost.to_string()),
            ("duplicated stored", self.duplicated_stored.to_string()),
            ("duplicated delivered", self.duplicated_delivered.to_string()),
            ("out of order", self.out_of_order.to_string()),
            ("missing after catch-up", self.missing.to_string()),
            ("phantom", self.phantom.to_string()),
            ("unacknowledged / rejected", format!("{} / {}", self.unacknowledged, self.rejected)),
            ("time to catch up", catch_up),
        ];
        writeln!(f, "| {:<26} | {:<28} |", "chaos", "")?;
        writeln!(f, "|{:-<28}|{:-<30}|", "", "")?;
        for (name, value) in rows {
            writeln!(f, "| {name:<26} | {value:<28} |")?;
        }
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

/// Whether a party is a visitor or an agent: what it may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sees its own conversation, without private notes.
    Visitor,
    /// Sees the conversations it follows, notes included.
    Agent,
}

/// What one client did and saw, for [`check`].
#[derive(Debug, Clone)]
pub struct PartyLog {
    /// For the problem lines: `visitor 3`, `agent 1`.
    pub name: String,
    /// What it may see.
    pub role: Role,
    /// The conversations it follows.
    pub follows: Vec<ConversationId>,
    /// Every send it made, in the order it made them.
    pub sent: Vec<Sent>,
    /// Every message its event stream handed it, in order.
    pub received: Vec<Message>,
    /// What crossed its wire, in order: the hellos and joins it sent, and
    /// the messages and replay ends the relay sent it (see [`on_the_wire`]).
    pub wire: Vec<Wire>,
}

/// Whether the checker needs this frame: the requests that say what the
/// relay owes a link, and what it sent on it.
pub fn on_the_wire(wire: &Wire) -> bool {
    matches!(
        wire,
        Wire::Sent(ClientFrame::Hello(_) | ClientFrame::Join(_))
            | Wire::Received(ServerFrame::Message(_) | ServerFrame::ReplayComplete(_))
    )
}

/// One send and how it ended.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Where.
    pub conversation: ConversationId,
    /// What; unique in a run.
    pub text: String,
    /// The acknowledgement, the refusal, or still nothing.
    pub outcome: Outcome,
}

/// How a send ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// No answer yet.
    Pending,
    /// Stored, with this seq and id.
    Accepted(Accepted),
    /// Refused or failed, for this reason.
    Refused(String),
}

/// Runs the whole thing and returns what it counted; fails only if the
/// run itself could not be carried out (the relay did not start, say).
/// Whether the figures are clean is the caller's to assert.
pub async fn run(config: &ChaosConfig) -> Result<Figures> {
    ensure!(config.visitors > 0 && config.agents > 0, "a run needs visitors and agents");
    let (interval, grace) = config.heartbeat_ms;
    let relay = Relay::start_with(&[
        "--heartbeat-interval-ms",
        &interval.to_string(),
        "--heartbeat-grace-ms",
        &grace.to_string(),
    ])
    .await
    .context("starting the relay")?;
    relay.wait_healthy().await?;
    let proxy = FaultProxy::start(relay.addr()).await?;
    let admin = relay.admin_token().await.context("logging the admin in")?;
    let stop = watch::channel(false);
    let mut crew = Crew::default();

    // Setup: visitors first, so the agents know what to follow.
    let mut conversations = Vec::with_capacity(config.visitors);
    for index in 0..config.visitors {
        conversations.push(crew.visitor(config, &proxy, index, &stop.1).await?);
    }
    for index in 0..config.agents {
        let token = create_agent(&relay, &admin, index).await.with_context(|| format!("creating agent {index}"))?;
        let follows: Vec<ConversationId> = conversations
            .iter()
            .enumerate()
            .filter(|(n, _)| n % config.agents == index || (n + 1) % config.agents == index)
            .map(|(_, conversation)| *conversation)
            .collect();
        crew.agent(config, &proxy, index, &token, follows, &stop.1)?;
    }

    // Fire.
    let started = Instant::now();
    let until = started + config.duration;
    let faults = tokio::spawn(fault_loop(proxy.clone(), config.mix.clone(), config.fault_gap, config.rng(1), until));
    let killer = tokio::spawn(kill_loop(relay, proxy.clone(), kill_schedule(config), started));
    faults.await?;
    let (relay, kills) = killer.await?.context("killing and restarting the relay")?;

    // Calm: no more faults; no new messages; everything must settle.
    proxy.heal();
    let calm = Instant::now();
    let _ = stop.0.send(true);
    let acknowledged_in_time = crew.finish_sends(config.settle).await;
    let caught_up_in_time = acknowledged_in_time
        && crew.catch_up(&relay, &admin, &conversations, config.settle).await.context("reading the last seqs")?;
    let catch_up = caught_up_in_time.then(|| calm.elapsed());

    // The store, read from the file of a relay that is gone.
    let logs = crew.stop().await;
    let mut relay = relay;
    relay.kill9().await?;
    let stored = read_store(relay.data_dir(), &conversations).await.context("reading the store")?;

    let counts = proxy.counts();
    let mut figures = check(&logs, &stored);
    figures.seed = config.seed;
    figures.visitors = config.visitors;
    figures.agents = config.agents;
    figures.conversations = conversations.len();
    figures.under_fire = config.duration;
    figures.cuts = counts.cuts;
    figures.stalls = counts.stalls;
    figures.delays = counts.delays;
    figures.kills = kills;
    figures.catch_up = catch_up;
    Ok(figures)
}

/// Every client of a run with its tasks and its log.
#[derive(Debug, Default)]
struct Crew {
    parties: Vec<Party>,
}

#[derive(Debug)]
struct Party {
    client: Client,
    log: Arc<Mutex<PartyLog>>,
    /// Feeds its sends; ends once the traffic stops and every send it
    /// made is answered.
    sender: JoinHandle<()>,
    /// Records its events; ends when the client stops.
    reader: JoinHandle<()>,
    /// Records its wire; ends when the client stops.
    wiretap: JoinHandle<()>,
}

impl Crew {
    /// Connects visitor `index` and starts its traffic; returns its
    /// conversation.
    async fn visitor(
        &mut self,
        config: &ChaosConfig,
        proxy: &FaultProxy,
        index: usize,
        stop: &watch::Receiver<bool>,
    ) -> Result<ConversationId> {
        let credentials = Credentials::Visitor { site: SiteKey::new(SITE)?, returning: None };
        let (client, events, tap) = Client::connect_tapped(proxy.ws_url(), credentials, config.session());
        let conversation =
            tokio::time::timeout(PATIENCE, client.conversation()).await.context("a visitor got no welcome")??;
        let log = party_log(format!("visitor {index}"), Role::Visitor, vec![conversation]);
        // The relay stores nothing of a visitor until it writes: the first
        // line makes the conversation, before the agents follow it.
        let first = format!("visitor {index} says 0");
        let accepted = tokio::time::timeout(PATIENCE, client.send(conversation, Body::Text(first.clone())))
            .await
            .context("a visitor's first line was not stored")??;
        lock(&log).sent.push(Sent { conversation, text: first, outcome: Outcome::Accepted(accepted) });
        let (texts, queue) = mpsc::channel(1);
        let mut rng = config.rng(1_000 + index as u64);
        let (pause, max, mut stop_sending) = (config.send_pause, config.max_per_visitor, stop.clone());
        tokio::spawn(async move {
            for n in 1..=max {
                tokio::select! {
                    () = tokio::time::sleep(between(&mut rng, pause)) => {}
                    _ = stop_sending.wait_for(|stop| *stop) => break,
                }
                tokio::select! {
                    sent = texts.send((conversation, format!("visitor {index} says {n}"))) => if sent.is_err() { break },
                    _ = stop_sending.wait_for(|stop| *stop) => break,
                }
            }
        });
        let sender = tokio::spawn(send_loop(client.clone(), queue, config.window, Arc::clone(&log)));
        let reader = tokio::spawn(read_events(events, Arc::clone(&log), None));
        let wiretap = tokio::spawn(read_wire(tap, Arc::clone(&log)));
        self.parties.push(Party { client, log, sender, reader, wiretap });
        Ok(conversation)
    }

    /// Connects agent `index`, has it follow `follows`, and answers some
    /// of the visitors' messages there.
    fn agent(
        &mut self,
        config: &ChaosConfig,
        proxy: &FaultProxy,
        index: usize,
        token: &str,
        follows: Vec<ConversationId>,
        stop: &watch::Receiver<bool>,
    ) -> Result<()> {
        let credentials = Credentials::Agent { token: AgentToken::new(token)? };
        let (client, events, tap) = Client::connect_tapped(proxy.ws_url(), credentials, config.session());
        for conversation in &follows {
            client.join(*conversation)?;
        }
        let log = party_log(format!("agent {index}"), Role::Agent, follows);
        // Bounded, and fed with `try_send`: a reply that does not fit is
        // one the agent chose not to write.
        let (replies, queue) = mpsc::channel(256);
        let replier = Replier {
            agent: index,
            replies,
            rng: config.rng(100_000 + index as u64),
            chance: config.reply_chance,
            stop: stop.clone(),
            written: 0,
        };
        let sender = tokio::spawn(send_loop(client.clone(), queue, config.window, Arc::clone(&log)));
        let reader = tokio::spawn(read_events(events, Arc::clone(&log), Some(replier)));
        let wiretap = tokio::spawn(read_wire(tap, Arc::clone(&log)));
        self.parties.push(Party { client, log, sender, reader, wiretap });
        Ok(())
    }

    /// Waits for every sender to end with all its sends answered;
    /// `false` if that took longer than `bound`.
    async fn finish_sends(&mut self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        for party in &mut self.parties {
            if tokio::time::timeout_at(deadline, &mut party.sender).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Waits until every party holds, in each conversation it follows,
    /// the store's last seq; `false` if that took longer than `bound`.
    async fn catch_up(
        &self,
        relay: &Relay,
        admin: &str,
        conversations: &[ConversationId],
        bound: Duration,
    ) -> Result<bool> {
        let mut last = HashMap::new();
        for conversation in conversations {
            last.insert(*conversation, last_seq(relay, admin, *conversation).await?);
        }
        let deadline = Instant::now() + bound;
        loop {
            let behind = self.parties.iter().any(|party| {
                let log = lock(&party.log);
                log.follows.iter().any(|conversation| {
                    let held = log.received.iter().filter(|m| m.conversation == *conversation).map(|m| m.seq).max();
                    held.unwrap_or(Seq::ZERO) < last.get(conversation).copied().unwrap_or(Seq::ZERO)
                })
            });
            if !behind {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops every client and hands back the logs.
    async fn stop(self) -> Vec<PartyLog> {
        let mut logs = Vec::with_capacity(self.parties.len());
        for party in self.parties {
            party.client.stop();
            party.sender.abort();
            // The readers end once the stopped client closes its events
            // and its tap.
            let _ = tokio::time::timeout(PATIENCE, party.reader).await;
            let _ = tokio::time::timeout(PATIENCE, party.wiretap).await;
            logs.push(lock(&party.log).clone());
        }
        logs
    }
}

fn party_log(name: String, role: Role, follows: Vec<ConversationId>) -> Arc<Mutex<PartyLog>> {
    Arc::new(Mutex::new(PartyLog { name, role, follows, sent: Vec::new(), received: Vec::new(), wire: Vec::new() }))
}

fn lock(log: &Mutex<PartyLog>) -> MutexGuard<'_, PartyLog> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends what arrives on `queue`, with up to `window` sends unanswered,
/// and records each outcome; ends when the queue closes and every send is
/// answered.
///
/// The sends are polled for the first time in the order they were made
/// (`FuturesOrdered` runs new futures first-in, first-out), so they reach
/// the client's outbox, and the relay, in that order.
async fn send_loop(
    client: Client,
    mut queue: mpsc::Receiver<(ConversationId, String)>,
    window: usize,
    log: Arc<Mutex<PartyLog>>,
) {
    let mut in_flight = FuturesOrdered::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            next = queue.recv(), if open && in_flight.len() < window => match next {
                Some((conversation, text)) => {
                    let index = {
                        let mut log = lock(&log);
                        log.sent.push(Sent { conversation, text: text.clone(), outcome: Outcome::Pending });
                        log.sent.len() - 1
                    };
                    let client = client.clone();
                    in_flight.push_back(async move { (index, client.send(conversation, Body::Text(text)).await) });
                }
                None => open = false,
            },
            Some((index, result)) = in_flight.next(), if !in_flight.is_empty() => {
                lock(&log).sent[index].outcome = match result {
                    Ok(accepted) => Outcome::Accepted(accepted),
                    Err(error) => Outcome::Refused(error.to_string()),
                };
            }
        }
    }
}

/// An agent's habit of answering visitors.
#[derive(Debug)]
struct Replier {
    agent: usize,
    replies: mpsc::Sender<(ConversationId, String)>,
    rng: StdRng,
    chance: f64,
    stop: watch::Receiver<bool>,
    written: u64,
}

/// Records every message a client is handed; an agent's replier answers
/// some visitor messages until the traffic stops.
async fn read_events(mut events: Events, log: Arc<Mutex<PartyLog>>, mut replier: Option<Replier>) {
    loop {
        let stopping = async {
            match replier.as_mut() {
                Some(replier) => {
                    let _ = replier.stop.wait_for(|stop| *stop).await;
                }
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            event = events.next() => event,
            () = stopping => {
                // Dropping the queue's sender lets the agent's send loop end.
                replier = None;
                continue;
            }
        };
        let Some(event) = event else { return };
        let Event::Message(message) = event else { continue };
        if let Some(replier) = replier.as_mut()
            && matches!(message.author, Author::Visitor(_))
            && replier.rng.gen_bool(replier.chance)
        {
            replier.written += 1;
            let text = format!("agent {} answers {} in {}", replier.agent, replier.written, message.conversation.0);
            let _ = replier.replies.try_send((message.conversation, text));
        }
        lock(&log).received.push(message);
    }
}

/// Records what crossed a client's wire that the checker needs.
async fn read_wire(mut tap: Tap, log: Arc<Mutex<PartyLog>>) {
    while let Some(wire) = tap.next().await {
        if on_the_wire(&wire) {
            lock(&log).wire.push(wire);
        }
    }
}

/// Injects proxy faults at random gaps until `until`.
async fn fault_loop(proxy: FaultProxy, mix: FaultMix, gap: (Duration, Duration), mut rng: StdRng, until: Instant) {
    loop {
        let next = Instant::now() + between(&mut rng, gap);
        if next >= until {
            return;
        }
        tokio::time::sleep_until(next).await;
        let fault = mix.draw(&mut rng);
        proxy.inject(fault, rng.r#gen());
    }
}

/// When to kill the relay (from the start of the fire) and how long it
/// stays dead: one kill in the middle part of each equal slice of the run.
fn kill_schedule(config: &ChaosConfig) -> Vec<(Duration, Duration)> {
    let mut rng = config.rng(2);
    let slice = config.duration.as_secs_f64() / f64::from(config.kills.max(1));
    (0..config.kills)
        .map(|k| {
            let at = slice * (f64::from(k) + rng.gen_range(0.2..0.8));
            (Duration::from_secs_f64(at), Duration::from_millis(rng.gen_range(0..1_500)))
        })
        .collect()
}

/// Kills and restarts the relay on schedule, pointing the proxy at each
/// new one once it answers; returns the relay and how many kills there
/// were.
async fn kill_loop(
    mut relay: Relay,
    proxy: FaultProxy,
    schedule: Vec<(Duration, Duration)>,
    started: Instant,
) -> Result<(Relay, u32)> {
    let mut kills = 0;
    for (at, down) in schedule {
        tokio::time::sleep_until(started + at).await;
        relay.kill9().await?;
        kills += 1;
        tokio::time::sleep(down).await;
        relay.restart().await.context("restarting after kill -9")?;
        relay.wait_healthy().await?;
        proxy.set_upstream(relay.addr());
    }
    Ok((relay, kills))
}

/// Creates agent `index` with the admin's token and logs it in.
async fn create_agent(relay: &Relay, admin: &str, index: usize) -> Result<String> {
    let email = format!("chaos-agent-{index}@kefu.test");
    let body =
        serde_json::json!({ "email": email, "name": format!("Chaos agent {index}"), "password": AGENT_PASSWORD });
    let response = reqwest::Client::new()
        .post(format!("{}/api/agents", relay.http_url()))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await?;
    ensure!(response.status().is_success(), "creating {email}: {}", response.status());
    Ok(kefu_sdk::login(&relay.http_url(), &email, AGENT_PASSWORD).await?.token)
}

/// The seq of the newest message of `conversation`, over the HTTP API.
async fn last_seq(relay: &Relay, admin: &str, conversation: ConversationId) -> Result<Seq> {
    let response = reqwest::Client::new()
        .get(format!("{}/api/conversations/{}/messages?limit=1", relay.http_url(), conversation.0))
        .bearer_auth(admin)
        .send()
        .await?;
    ensure!(response.status().is_success(), "history of {conversation:?}: {}", response.status());
    let newest: Vec<Message> = response.json().await?;
    Ok(newest.last().map_or(Seq::ZERO, |message| message.seq))
}

/// Every message of `conversations`, read from the store's file.
async fn read_store(
    data_dir: &Path,
    conversations: &[ConversationId],
) -> Result<BTreeMap<ConversationId, Vec<Message>>> {
    let store = kefu_relay::store::Store::open(data_dir).await?;
    let site = store.site_by_key(&SiteKey::new(SITE)?).await?.context("the site is gone")?.id;
    let mut stored = BTreeMap::new();
    for conversation in conversations {
        let mut messages: Vec<Message> = Vec::new();
        loop {
            let after = messages.last().map_or(Seq::ZERO, |message| message.seq);
            let page = store.messages_after(site, *conversation, after, 500).await?;
            if page.is_empty() {
                break;
            }
            messages.extend(page);
        }
        stored.insert(*conversation, messages);
    }
    store.close().await;
    Ok(stored)
}

fn between(rng: &mut impl Rng, (low, high): (Duration, Duration)) -> Duration {
    if high <= low { low } else { rng.gen_range(low..=high) }
}

/// Compares what every party sent and received with what the store holds.
/// Fills in the message and problem counts of [`Figures`]; the rest is
/// the caller's.
pub fn check(parties: &[PartyLog], stored: &BTreeMap<ConversationId, Vec<Message>>) -> Figures {
    let mut figures = Figures { stored: stored.values().map(Vec::len).sum(), ..Figures::default() };
    let mut problems = Vec::new();
    let mut texts_sent = HashSet::new();

    // The store: seqs 1, 2, 3... and each client message once.
    for (conversation, messages) in stored {
        for (expected, message) in (1..).zip(messages) {
            if message.seq != Seq(expected) {
                figures.out_of_order += 1;
                problems.push(format!("store: {conversation:?} has seq {} where {expected} belongs", message.seq.0));
            }
        }
        let mut by_client_id = HashSet::new();
        let mut by_text = HashSet::new();
        for message in messages {
            let again_id = message.client_id.is_some_and(|id| !by_client_id.insert((message.author, id)));
            let again_text =
                matches!(&message.body, Body::Text(text) if !by_text.insert((message.author, text.clone())));
            if again_id || again_text {
                figures.duplicated_stored += 1;
                problems.push(format!("store: {conversation:?} seq {} repeats {:?}", message.seq.0, message.body));
            }
        }
    }

    for party in parties {
        check_wire(party, &mut figures, &mut problems);

        // What it sent: every send answered, every acknowledged one stored
        // as acknowledged, its own messages stored in the order it sent them.
        let mut last_own: HashMap<ConversationId, Seq> = HashMap::new();
        for sent in &party.sent {
            figures.sent += 1;
            texts_sent.insert((sent.conversation, sent.text.as_str()));
            match &sent.outcome {
                Outcome::Pending => {
                    figures.unacknowledged += 1;
                    problems.push(format!("{}: {:?} never acknowledged", party.name, sent.text));
                }
                Outcome::Refused(reason) => {
                    figures.rejected += 1;
                    problems.push(format!("{}: {:?} refused: {reason}", party.name, sent.text));
                }
                Outcome::Accepted(accepted) => {
                    figures.acknowledged += 1;
                    let at_seq = stored.get(&sent.conversation).and_then(|messages| at(messages, accepted.seq));
                    let kept = at_seq.is_some_and(|message| {
                        message.id == accepted.id && message.body == Body::Text(sent.text.clone())
                    });
                    if !kept {
                        figures.lost += 1;
                        problems.push(format!(
                            "{}: {:?} acknowledged as seq {} but the store has {:?} there",
                            party.name,
                            sent.text,
                            accepted.seq.0,
                            at_seq.map(|message| &message.body)
                        ));
                    }
                    let previous = last_own.insert(sent.conversation, accepted.seq);
                    if previous.is_some_and(|previous| previous >= accepted.seq) {
                        figures.out_of_order += 1;
                        problems.push(format!(
                            "{}: {:?} stored at seq {} before an earlier send",
                            party.name, sent.text, accepted.seq.0
                        ));
                    }
                }
            }
        }

        // What its application was handed: per conversation, each message
        // once, in strictly increasing seqs, as stored, and everything it
        // may see.
        for conversation in &party.follows {
            let empty = Vec::new();
            let messages = stored.get(conversation).unwrap_or(&empty);
            let mut seen = HashSet::new();
            // A copy stored at a seq of its own looks new to the client;
            // its text gives it away.
            let mut seen_texts = HashSet::new();
            let mut previous = Seq::ZERO;
            for message in party.received.iter().filter(|m| m.conversation == *conversation) {
                if !seen.insert(message.id) {
                    figures.duplicated_delivered += 1;
                    problems.push(format!("{}: handed seq {} of {conversation:?} again", party.name, message.seq.0));
                    continue;
                }
                if let Body::Text(text) = &message.body
                    && !seen_texts.insert((message.author, text))
                {
                    figures.duplicated_delivered += 1;
                    problems.push(format!("{}: handed {text:?} again, as seq {}", party.name, message.seq.0));
                }
                if message.seq <= previous {
                    figures.out_of_order += 1;
                    problems.push(format!(
                        "{}: handed seq {} of {conversation:?} after seq {}",
                        party.name, message.seq.0, previous.0
                    ));
                }
                previous = previous.max(message.seq);
                let same = at(messages, message.seq)
                    .is_some_and(|stored| stored.id == message.id && stored.body == message.body);
                if !same {
                    figures.phantom += 1;
                    problems.push(format!(
                        "{}: got seq {} of {conversation:?} ({:?}) that the store does not hold so",
                        party.name, message.seq.0, message.body
                    ));
                }
            }
            let visible = messages.iter().filter(|message| party.role == Role::Agent || message.body.is_for_visitors());
            for message in visible {
                if !seen.contains(&message.id) {
                    figures.missing += 1;
                    problems.push(format!("{}: never got seq {} of {conversation:?}", party.name, message.seq.0));
                }
            }
        }
    }

    // Stored texts nobody sent.
    for (conversation, messages) in stored {
        for message in messages {
            if let Body::Text(text) = &message.body
                && !texts_sent.contains(&(*conversation, text.as_str()))
            {
                figures.phantom += 1;
                problems.push(format!("store: {conversation:?} seq {} holds {text:?}, sent by nobody", message.seq.0));
            }
        }
    }

    figures.problems = problems.into_iter().take(MAX_PROBLEMS).collect();
    figures
}

/// What the relay owes one link in one conversation.
#[derive(Debug, Default)]
struct Owed {
    /// The seq the next message must name as its `prev`: the last one sent
    /// on this link, or the cursor the hello resumed from.
    last: Seq,
    /// Replays asked for (a join's `after`) whose `ReplayComplete` has not
    /// come yet, oldest first; `true` once its first message came.
    replays: VecDeque<(Seq, bool)>,
}

/// The frames the relay sent a party, link by link, against what the
/// party asked for. On one link the relay sends each conversation as a
/// chain: every message names the one before it as `prev`, except the
/// first of a replay, which names the join's `after` (and the first after
/// a hello, the resume cursor). Whatever breaks the chain is counted: as
/// delivered twice if the party had been sent that message before, as out
/// of order if not. The session would drop both quietly.
fn check_wire(party: &PartyLog, figures: &mut Figures, problems: &mut Vec<String>) {
    let mut links = 0;
    let mut owed: HashMap<ConversationId, Owed> = HashMap::new();
    let mut had: HashSet<MessageId> = HashSet::new();
    for wire in &party.wire {
        match wire {
            Wire::Sent(ClientFrame::Hello(hello)) => {
                links += 1;
                owed = hello
                    .resume
                    .iter()
                    .map(|cursor| {
                        // The resume is replayed like a join, and ends so.
                        let replays = VecDeque::from([(cursor.seq, true)]);
                        (cursor.conversation, Owed { last: cursor.seq, replays })
                    })
                    .collect();
            }
            Wire::Sent(ClientFrame::Join(join)) => {
                owed.entry(join.conversation).or_default().replays.push_back((join.after, false));
            }
            Wire::Received(ServerFrame::ReplayComplete(complete)) => {
                owed.entry(complete.conversation).or_default().replays.pop_front();
            }
            Wire::Received(ServerFrame::Message(message)) => {
                let link = owed.entry(message.conversation).or_default();
                let replay_starts = link.replays.iter_mut().find(|(_, started)| !started);
                let fits = if message.prev == link.last {
                    true
                } else if let Some((after, started)) = replay_starts
                    && *after == message.prev
                {
                    *started = true;
                    true
                } else {
                    false
                };
                let again = !had.insert(message.id);
                if fits {
                    link.last = message.seq;
                } else if again {
                    figures.duplicated_delivered += 1;
                    problems.push(format!(
                        "{}: the relay sent seq {} of {:?} again on link {links}, after seq {}",
                        party.name, message.seq.0, message.conversation, link.last.0
                    ));
                } else {
                    figures.out_of_order += 1;
                    problems.push(format!(
                        "{}: the relay sent seq {} (after {}) of {:?} on link {links}, after seq {}",
                        party.name, message.seq.0, message.prev.0, message.conversation, link.last.0
                    ));
                    link.last = message.seq;
                }
            }
            Wire::Sent(_) | Wire::Received(_) => {}
        }
    }
}

/// The stored message with `seq`, in a conversation's messages in seq order.
fn at(messages: &[Message], seq: Seq) -> Option<&Message> {
    messages.binary_search_by_key(&seq, |message| message.seq).ok().map(|index| &messages[index])
}

#[cfg(test)]
mod tests {
    use kefu_protocol::frame::{Cursor, Join, ReplayComplete};
    use kefu_protocol::ids::{ClientMessageId, Timestamp, VisitorId};

    use super::*;

    const CONVERSATION: ConversationId = ConversationId(1);

    fn message(seq: u64, id: u64, client_id: u128, text: &str) -> Message {
        Message {
            conversation: CONVERSATION,
            seq: Seq(seq),
            prev: Seq(seq - 1),
            id: MessageId(id),
            client_id: Some(ClientMessageId(client_id)),
            author: Author::Visitor(VisitorId(7)),
            body: Body::Text(text.to_owned()),
            sent_at: Timestamp(0),
        }
    }

    fn accepted(message: &Message) -> Outcome {
        Outcome::Accepted(Accepted {
            conversation: CONVERSATION,
            client_id: message.client_id.unwrap_or(ClientMessageId(0)),
            id: message.id,
            seq: message.seq,
            sent_at: message.sent_at,
        })
    }

    /// A visitor that sent "one" and "two", both acknowledged, and got
    /// back exactly what the store holds.
    fn clean() -> (Vec<PartyLog>, BTreeMap<ConversationId, Vec<Message>>) {
        let stored = vec![message(1, 10, 100, "one"), message(2, 11, 101, "two")];
        let visitor = PartyLog {
            name: "visitor 0".into(),
            role: Role::Visitor,
            follows: vec![CONVERSATION],
            sent: stored
                .iter()
                .map(|m| Sent { conversation: CONVERSATION, text: crate::text(m).to_owned(), outcome: accepted(m) })
                .collect(),
            received: stored.clone(),
            wire: [hello(&[])].into_iter().chain(stored.iter().map(sent_by_relay)).collect(),
        };
        (vec![visitor], BTreeMap::from([(CONVERSATION, stored)]))
    }

    /// A hello resuming `CONVERSATION` after each of `cursors`.
    fn hello(cursors: &[u64]) -> Wire {
        let credentials = Credentials::Visitor { site: SiteKey::new(SITE).expect("a valid key"), returning: None };
        let resume = cursors.iter().map(|seq| Cursor { conversation: CONVERSATION, seq: Seq(*seq) }).collect();
        let hello = kefu_protocol::frame::Hello { version: kefu_protocol::PROTOCOL_VERSION, credentials, resume };
        Wire::Sent(ClientFrame::Hello(hello))
    }

    fn sent_by_relay(message: &Message) -> Wire {
        Wire::Received(ServerFrame::Message(message.clone()))
    }

    fn join(after: u64) -> Wire {
        Wire::Sent(ClientFrame::Join(Join { conversation: CONVERSATION, after: Seq(after) }))
    }

    fn replay_complete(last: u64) -> Wire {
        Wire::Received(ServerFrame::ReplayComplete(ReplayComplete { conversation: CONVERSATION, last_seq: Seq(last) }))
    }

    /// The wire counts of `clean()`'s visitor with this wire instead.
    fn wire_counts(wire: Vec<Wire>) -> (usize, usize) {
        let (mut parties, stored) = clean();
        parties[0].wire = wire;
        let figures = check(&parties, &stored);
        (figures.duplicated_delivered, figures.out_of_order)
    }

    #[test]
    fn the_relay_sending_a_message_twice_on_a_link_is_counted_though_the_session_drops_it() {
        let (_, stored) = clean();
        let [one, two] = [&stored[&CONVERSATION][0], &stored[&CONVERSATION][1]];
        let twice = vec![hello(&[]), sent_by_relay(one), sent_by_relay(two), sent_by_relay(two)];
        assert_eq!(wire_counts(twice), (1, 0));
        // Past the resume cursor the hello gave, a message is a repeat too.
        let ignored_cursor = vec![hello(&[]), sent_by_relay(one), hello(&[1]), sent_by_relay(one), sent_by_relay(two)];
        assert_eq!(wire_counts(ignored_cursor), (1, 0));
        // A message skipped or sent early is out of order.
        let skipped = vec![hello(&[]), sent_by_relay(two), sent_by_relay(one)];
        assert_eq!(wire_counts(skipped), (0, 2));
    }

    #[test]
    fn what_the_client_asked_for_again_is_no_repeat() {
        let (_, stored) = clean();
        let [one, two] = [&stored[&CONVERSATION][0], &stored[&CONVERSATION][1]];
        // A join after 0 replays both, even while a live one is under way.
        let joined = vec![
            hello(&[]),
            sent_by_relay(one),
            join(0),
            sent_by_relay(two),
            sent_by_relay(one),
            sent_by_relay(two),
            replay_complete(2),
        ];
        assert_eq!(wire_counts(joined), (0, 0));
        // A new link resumes after the cursor.
        let resumed = vec![hello(&[]), sent_by_relay(one), hello(&[1]), sent_by_relay(two), replay_complete(2)];
        assert_eq!(wire_counts(resumed), (0, 0));
        // Once the replay is complete, its start is no excuse any more.
        let late = vec![hello(&[]), join(0), sent_by_relay(one), replay_complete(1), sent_by_relay(one)];
        assert_eq!(wire_counts(late), (1, 0));
    }

    #[test]
    fn a_clean_history_is_clean() -> Result<()> {
        let (parties, stored) = clean();
        let figures = Figures { catch_up: Some(Duration::ZERO), ..check(&parties, &stored) };
        assert_eq!((figures.sent, figures.acknowledged, figures.stored), (2, 2, 2));
        figures.assert_clean()
    }

    #[test]
    fn an_acknowledged_message_missing_from_the_store_is_lost() {
        let (mut parties, mut stored) = clean();
        stored.insert(CONVERSATION, vec![message(1, 10, 100, "one")]);
        parties[0].received.truncate(1);
        let figures = check(&parties, &stored);
        assert_eq!(figures.lost, 1);
    }

    #[test]
    fn a_resend_stored_again_is_a_duplicate() {
        let (mut parties, mut stored) = clean();
        let again = message(3, 12, 101, "two");
        if let Some(messages) = stored.get_mut(&CONVERSATION) {
            messages.push(again.clone());
        }
        parties[0].received.push(again);
        let figures = check(&parties, &stored);
        assert_eq!((figures.duplicated_stored, figures.duplicated_delivered), (1, 1));
    }

    #[test]
    fn delivered_twice_out_of_order_and_missing_are_counted() {
        let (mut parties, stored) = clean();
        let [one, two] = [parties[0].received[0].clone(), parties[0].received[1].clone()];
        parties[0].received = vec![two.clone(), one.clone(), one];
        let figures = check(&parties, &stored);
        assert_eq!((figures.duplicated_delivered, figures.out_of_order), (1, 1));

        parties[0].received = vec![two];
        assert_eq!(check(&parties, &stored).missing, 1);
    }

    #[test]
    fn an_unanswered_send_is_counted() {
        let (mut parties, stored) = clean();
        parties[0].sent[1].outcome = Outcome::Pending;
        assert_eq!(check(&parties, &stored).unacknowledged, 1);
    }
}
