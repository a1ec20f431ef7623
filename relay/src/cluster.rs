//! Several relay nodes as one: fan-out, presence and the assignment lock
//! over Redis.
//!
//! # What Redis is for, and what it is not
//!
//! The store is the only source of truth. Redis carries what one node
//! publishes to the connections of the others, which agents each node has,
//! and a short lock that keeps assignment passes of one site from running
//! on two nodes at once. If Redis goes away every node keeps serving its own
//! clients; when it comes back, every node re-subscribes and *nudges* each
//! conversation it has followers for: it hands its connections the newest
//! stored message, and a connection that is behind reads the gap from the
//! store (see `ws::connection`). So nothing acknowledged is lost, only late.
//!
//! # Channels
//!
//! - `{prefix}:c:{conversation}`: messages, typing and receipts of one
//!   conversation. A node subscribes while it has a follower of it.
//! - `{prefix}:a:{site}` / `{prefix}:v:{site}`: frames for a site's agents
//!   (queue, roster, visitor profiles) and for its visitors (availability).
//! - `{prefix}:presence`: every node's agents, announced on change and every
//!   [`PRESENCE_INTERVAL`]; a node not heard from for [`PRESENCE_EXPIRY`]
//!   counts as gone, so a node killed without a goodbye drops out.
//! - `{prefix}:revoke`: agent logins that ended or changed (a logout, a
//!   deactivation, a role or password change): every node closes its
//!   connections of them. One lost with an outage is caught by each
//!   connection's own checks against the store (see `crate::hub`'s
//!   revocation).
//! - `{prefix}:hours`: a site whose business hours were saved: every node
//!   reads them and tells its visitors at once. One lost with an outage is
//!   read at the node's next look at the hours (`team::keep_hours`).
//!
//! Each node subscribes once per channel however many of its connections
//! follow it, and fans out locally. A payload is the origin node's id
//! followed by the postcard frame; a node ignores its own, which it
//! delivered locally already.
//!
//! # Order
//!
//! A subscription only sees what is published after it is confirmed, so
//! once Redis confirms a conversation's subscription the node nudges that
//! conversation too: anything committed before is then read from the store.
//! Commits of one conversation on two nodes can arrive out of order; the
//! connection orders them by seq and fills gaps from the store.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use kefu_protocol::frame::Limits;
use kefu_protocol::ids::{ConversationId, SiteId};
use kefu_protocol::{ServerFrame, codec};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};
use tokio::time::{Instant, MissedTickBehavior};

use crate::dispatcher::{Pass, SharedLock};
use crate::hub::{Audience, Bridge, Command, Revocation, SitePresence, Target};
use crate::state::AppState;
use crate::team;

/// How often a node announces its agents.
pub const PRESENCE_INTERVAL: Duration = Duration::from_secs(2);

/// How long a node's announcement counts: three missed announcements and
/// its agents are offline.
pub const PRESENCE_EXPIRY: Duration = Duration::from_secs(6);

/// How long a dead Redis is left alone before the next try.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// How long one Redis command may take before the link counts as broken.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Publishes sent to Redis in one round trip at most.
const PIPELINE: usize = 256;

/// How long an assignment lock is held at most if its node dies holding it.
const LOCK_LEASE_MS: u64 = 5_000;

/// How long a node waits for another node's assignment pass.
const LOCK_PATIENCE: Duration = Duration::from_secs(3);

/// Frames between nodes can be bigger than a client's (a roster of a large
/// team); they come from our own nodes, so the limit only guards memory.
const PEER_LIMITS: Limits = Limits { max_frame_bytes: 16 * 1024 * 1024, max_body_bytes: 16 * 1024 * 1024 };

/// A node's announcement on the presence channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Announcement {
    sites: Vec<(SiteId, SitePresence)>,
    /// Set by a node that just (re)joined: every node answers with its own.
    asking: bool,
}

/// The cluster as the rest of the relay uses it: the assignment lock.
#[derive(Debug)]
pub struct Cluster {
    client: redis::Client,
    prefix: String,
    /// A connection for request and reply commands (the lock); dropped when
    /// it fails and made again on the next use.
    commands: Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// Whether the fan-out link is subscribed right now; shared with the
    /// hub's bridge, so readiness can tell without knowing the cluster.
    linked: Arc<AtomicBool>,
}

/// Joins the cluster at `url`: this node's hub starts publishing through
/// Redis and receiving the other nodes' frames. Returns at once; the link
/// is made (and remade) in the background.
pub fn join(state: &AppState, url: &str, prefix: &str) -> Result<Arc<Cluster>, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let linked = Arc::new(AtomicBool::new(false));
    let cluster = Arc::new(Cluster {
        client,
        prefix: prefix.to_owned(),
        commands: Mutex::new(None),
        linked: Arc::clone(&linked),
    });
    let (commands, queue) = mpsc::unbounded_channel();
    let node = rand::thread_rng().r#gen::<u64>();
    state.hub.bridge(Bridge { commands, up: linked });
    let link = Link { state: state.clone(), cluster: Arc::clone(&cluster), node, queue };
    tokio::spawn(link.run());
    Ok(cluster)
}

impl Cluster {
    /// Whether this node's fan-out link to Redis is up.
    pub fn linked(&self) -> bool {
        self.linked.load(Ordering::Relaxed)
    }

    /// Runs `pass` while holding the cluster-wide lock named `name`, so the
    /// same pass cannot run on two nodes at once. If Redis cannot be
    /// reached the pass runs anyway: the node's own lock still serialises
    /// it locally, and the store's compare-and-set keeps a conversation
    /// from being given twice; only a capacity limit could then be passed
    /// by a race across nodes.
    pub async fn exclusive<T>(&self, name: &str, pass: impl Future<Output = T>) -> T {
        let key = format!("{}:lock:{name}", self.prefix);
        let token = rand::thread_rng().r#gen::<u64>().to_string();
        let held = self.acquire(&key, &token).await;
        let result = pass.await;
        if held {
            self.release(&key, &token).await;
        }
        result
    }

    async fn acquire(&self, key: &str, token: &str) -> bool {
        let deadline = Instant::now() + LOCK_PATIENCE;
        loop {
            let set = redis::cmd("SET").arg(key).arg(token).arg("NX").arg("PX").arg(LOCK_LEASE_MS).clone();
            match self.query::<Option<String>>(set).await {
                Ok(Some(_)) => return true,
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
                Ok(None) => {
                    tracing::warn!(key, "another node held the assignment lock too long; going ahead");
                    return false;
                }
                Err(error) => {
                    tracing::warn!(%error, key, "no Redis for the assignment lock; going ahead on this node's lock");
                    return false;
                }
            }
        }
    }

    async fn release(&self, key: &str, token: &str) {
        // Delete only our own lock: it may have expired and been taken.
        let script = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
        );
        let mut invocation = script.key(key);
        invocation.arg(token);
        let mut slot = self.commands.lock().await;
        if let Ok(connection) = self.connection(&mut slot).await {
            let released: Result<Result<i64, _>, _> =
                tokio::time::timeout(COMMAND_TIMEOUT, invocation.invoke_async(connection)).await;
            if !matches!(released, Ok(Ok(_))) {
                *slot = None;
            }
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Result<T, redis::RedisError> {
        let mut slot = self.commands.lock().await;
        let connection = self.connection(&mut slot).await?;
        let reply = tokio::time::timeout(COMMAND_TIMEOUT, command.query_async(connection)).await;
        match reply {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                *slot = None;
                Err(error)
            }
            Err(_) => {
                *slot = None;
                Err(redis::RedisError::from((redis::ErrorKind::Io, "Redis did not answer in time")))
            }
        }
    }

    async fn connection<'a>(
        &self,
        slot: &'a mut Option<redis::aio::MultiplexedConnection>,
    ) -> Result<&'a mut redis::aio::MultiplexedConnection, redis::RedisError> {
        if slot.is_none() {
            let made = tokio::time::timeout(COMMAND_TIMEOUT, self.client.get_multiplexed_async_connection()).await;
            *slot = Some(made.map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "Redis unreachable")))??);
        }
        slot.as_mut().ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "Redis unreachable")))
    }
}

impl SharedLock for Cluster {
    fn exclusive<'a>(&'a self, name: &'a str, pass: Pass<'a>) -> Pass<'a> {
        Box::pin(Cluster::exclusive(self, name, pass))
    }
}

/// The task that keeps the fan-out link: publishing, subscriptions,
/// presence, and catching up after an outage.
struct Link {
    state: AppState,
    cluster: Arc<Cluster>,
    node: u64,
    queue: mpsc::UnboundedReceiver<Command>,
}

/// The link is broken; drop it and make it again.
struct Broken;

impl From<redis::RedisError> for Broken {
    fn from(error: redis::RedisError) -> Broken {
        tracing::warn!(%error, "Redis link lost; serving this node's clients alone until it is back");
        Broken
    }
}

impl Link {
    async fn run(mut self) {
        let shutdown = self.state.shutdown.clone();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                Err(Broken) = self.session() => {}
            }
            self.cluster.linked.store(false, Ordering::Relaxed);
            self.state.metrics.redis_link(false);
            // While Redis is away the queue still fills: subscriptions are
            // rebuilt from the hub on the next link, publishes are made up
            // for by the nudge.
            let pause = tokio::time::sleep(RETRY_AFTER);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    () = &mut pause => break,
                    () = shutdown.cancelled() => return,
                    command = self.queue.recv() => if command.is_none() { return },
                }
            }
        }
    }

    /// One life of the link, from connecting until it breaks.
    async fn session(&mut self) -> Result<(), Broken> {
        let client = &self.cluster.client;
        let (mut sink, mut stream) = timeout(client.get_async_pubsub()).await?.split();
        let mut publisher = timeout(client.get_multiplexed_async_connection()).await?;
        timeout(sink.subscribe(self.channel_presence())).await?;
        timeout(sink.subscribe(self.channel_revoke())).await?;
        timeout(sink.subscribe(self.channel_hours())).await?;
        // Whatever the queue says now, the hub knows what is wanted.
        while self.queue.try_recv().is_ok() {}
        let wanted = self.state.hub.wanted();
        let mut subscribed = HashSet::new();
        for target in &wanted {
            timeout(sink.subscribe(self.channel(*target))).await?;
            subscribed.insert(*target);
        }
        self.cluster.linked.store(true, Ordering::Relaxed);
        self.state.metrics.redis_link(true);
        tracing::info!(channels = subscribed.len() + 3, "Redis link up");
        self.announce(&mut publisher, true).await?;
        // Everything published while the link was down (or before it was
        // first made) is in the store: let each connection catch up.
        for target in wanted {
            if let Target::Conversation(conversation) = target {
                self.nudge(conversation).await;
            }
        }

        let mut heartbeat = tokio::time::interval(PRESENCE_INTERVAL);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = self.queue.recv() => {
                    let Some(command) = command else { return Ok(()) };
                    let mut publishes = Vec::new();
                    let mut presence_changed = false;
                    let mut next = Some(command);
                    while let Some(command) = next {
                        match command {
                            Command::Publish(target, frame) => {
                                publishes.push((self.channel(target), codec::encode(&*frame)));
                            }
                            Command::Revoke(revocation) => {
                                // In line with the publishes, so nothing
                                // published after it reaches the other
                                // nodes before it.
                                let body = postcard::to_allocvec(&revocation).unwrap_or_default();
                                publishes.push((self.channel_revoke(), body));
                            }
                            Command::HoursChanged(site) => {
                                publishes.push((self.channel_hours(), postcard::to_allocvec(&site).unwrap_or_default()));
                            }
                            Command::PresenceChanged => presence_changed = true,
                            Command::Subscribe(target) => {
                                self.flush(&mut publisher, &mut publishes).await?;
                                if subscribed.insert(target) {
                                    timeout(sink.subscribe(self.channel(target))).await?;
                                    if let Target::Conversation(conversation) = target {
                                        self.nudge(conversation).await;
                                    }
                                }
                            }
                            Command::Unsubscribe(target) => {
                                self.flush(&mut publisher, &mut publishes).await?;
                                if subscribed.remove(&target) {
                                    timeout(sink.unsubscribe(self.channel(target))).await?;
                                }
                            }
                        }
                        next = if publishes.len() < PIPELINE { self.queue.try_recv().ok() } else { None };
                    }
                    self.flush(&mut publisher, &mut publishes).await?;
                    if presence_changed {
                        self.announce(&mut publisher, false).await?;
                    }
                }
                message = stream.next() => {
                    let Some(message) = message else {
                        return Err(Broken::from(redis::RedisError::from((redis::ErrorKind::Io, "subscription closed"))));
                    };
                    self.receive(&message, &mut publisher).await?;
                }
                _ = heartbeat.tick() => {
                    self.announce(&mut publisher, false).await?;
                    for site in self.state.hub.expire_remote(Instant::now()) {
                        self.roster_changed(site);
                    }
                }
            }
        }
    }

    /// Publishes what is gathered, in order, as (channel, body) pairs.
    async fn flush(
        &self,
        publisher: &mut redis::aio::MultiplexedConnection,
        publishes: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<(), Broken> {
        if publishes.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (channel, body) in publishes.drain(..) {
            pipe.cmd("PUBLISH").arg(channel).arg(self.payload(&body)).ignore();
        }
        let started = Instant::now();
        timeout(pipe.query_async::<()>(publisher)).await?;
        self.state.metrics.redis_published(started.elapsed());
        Ok(())
    }

    async fn announce(&self, publisher: &mut redis::aio::MultiplexedConnection, asking: bool) -> Result<(), Broken> {
        let announcement = Announcement { sites: self.state.hub.local_presence(), asking };
        let body = postcard::to_allocvec(&announcement).unwrap_or_default();
        let publish = redis::cmd("PUBLISH").arg(self.channel_presence()).arg(self.payload(&body)).clone();
        timeout(publish.query_async::<()>(publisher)).await?;
        Ok(())
    }

    async fn receive(
        &self,
        message: &redis::Msg,
        publisher: &mut redis::aio::MultiplexedConnection,
    ) -> Result<(), Broken> {
        let Some((origin, body)) = split_payload(message.get_payload_bytes()) else {
            tracing::warn!(channel = message.get_channel_name(), "payload without an origin; ignored");
            return Ok(());
        };
        if origin == self.node {
            return Ok(());
        }
        let channel = message.get_channel_name();
        if channel == self.channel_presence() {
            let Ok(announcement) = postcard::from_bytes::<Announcement>(body) else {
                tracing::warn!("unreadable presence announcement; ignored");
                return Ok(());
            };
            let expires = Instant::now() + PRESENCE_EXPIRY;
            for site in self.state.hub.set_remote(origin, announcement.sites, expires) {
                self.roster_changed(site);
            }
            if announcement.asking {
                self.announce(publisher, false).await?;
            }
            return Ok(());
        }
        if channel == self.channel_revoke() {
            match postcard::from_bytes::<Revocation>(body) {
                Ok(revocation) => self.state.hub.revoke_here(&revocation),
                Err(_) => tracing::warn!("unreadable revocation from another node; ignored"),
            }
            return Ok(());
        }
        if channel == self.channel_hours() {
            match postcard::from_bytes::<SiteId>(body) {
                Ok(site) => self.hours_changed(site),
                Err(_) => tracing::warn!("unreadable hours change from another node; ignored"),
            }
            return Ok(());
        }
        let Some(target) = self.parse_channel(channel) else { return Ok(()) };
        match codec::decode::<ServerFrame>(body, &PEER_LIMITS) {
            Ok(frame) => self.state.hub.deliver_here(target, Arc::new(frame)),
            Err(error) => tracing::warn!(%error, channel, "unreadable frame from another node; ignored"),
        }
        Ok(())
    }

    /// Hands this node's followers of `conversation` its newest stored
    /// message; a connection that is behind reads the rest from the store.
    async fn nudge(&self, conversation: ConversationId) {
        match self.state.store.newest_message_for_followers(conversation).await {
            Ok(Some(message)) => {
                let target = Target::Conversation(conversation);
                self.state.hub.deliver_here(target, Arc::new(ServerFrame::Message(message)));
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, ?conversation, "could not read a conversation to catch up"),
        }
    }

    /// Another node's agents came, went or changed status: this node's
    /// agents of `site` get a fresh roster.
    fn hours_changed(&self, site: SiteId) {
        let state = self.state.clone();
        tokio::spawn(async move {
            if let Err(error) = team::hours_changed(&state, site).await {
                tracing::warn!(%error, ?site, "could not weigh hours saved on another node");
            }
        });
    }

    fn roster_changed(&self, site: SiteId) {
        let state = self.state.clone();
        tokio::spawn(async move {
            if let Err(error) = team::publish_roster_here(&state, site).await {
                tracing::warn!(%error, ?site, "could not send the roster");
            }
        });
    }

    fn payload(&self, body: &[u8]) -> Vec<u8> {
        let mut payload = Vec::with_capacity(8 + body.len());
        payload.extend_from_slice(&self.node.to_be_bytes());
        payload.extend_from_slice(body);
        payload
    }

    fn channel(&self, target: Target) -> String {
        let prefix = &self.cluster.prefix;
        match target {
            Target::Conversation(conversation) => format!("{prefix}:c:{}", conversation.0),
            Target::Site(site, Audience::Agents) => format!("{prefix}:a:{}", site.0),
            Target::Site(site, Audience::Visitors) => format!("{prefix}:v:{}", site.0),
        }
    }

    fn channel_presence(&self) -> String {
        format!("{}:presence", self.cluster.prefix)
    }

    fn channel_revoke(&self) -> String {
        format!("{}:revoke", self.cluster.prefix)
    }

    fn channel_hours(&self) -> String {
        format!("{}:hours", self.cluster.prefix)
    }

    fn parse_channel(&self, channel: &str) -> Option<Target> {
        let rest = channel.strip_prefix(self.cluster.prefix.as_str())?.strip_prefix(':')?;
        let (kind, id) = rest.split_once(':')?;
        let id: u64 = id.parse().ok()?;
        match kind {
            "c" => Some(Target::Conversation(ConversationId(id))),
            "a" => Some(Target::Site(SiteId(id), Audience::Agents)),
            "v" => Some(Target::Site(SiteId(id), Audience::Visitors)),
            _ => None,
        }
    }
}

fn split_payload(payload: &[u8]) -> Option<(u64, &[u8])> {
    let (origin, body) = payload.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*origin), body))
}

async fn timeout<T>(future: impl Future<Output = Result<T, redis::RedisError>>) -> Result<T, Broken> {
    match tokio::time::timeout(COMMAND_TIMEOUT, future).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Broken::from(redis::RedisError::from((redis::ErrorKind::Io, "Redis did not answer in time")))),
    }
}
