//! In-process fan-out: who follows which conversation and which site.
//!
//! Each connection has a [`Mailbox`]: a bounded queue the hub pushes into
//! without ever waiting. When the queue is full the connection is too slow
//! to keep up; its mailbox says so instead of the next frame and the
//! connection closes with a reason, so one stuck reader can never make the
//! relay buffer without bound or delay anybody else. What a slow client misses it gets
//! back by replay from the store when it reconnects.
//!
//! With several relay nodes the hub is also bridged to the others (see
//! [`crate::cluster`]): what is published here goes to this node's
//! connections at once and to Redis for the other nodes; what they publish
//! comes back through [`Hub::deliver_here`]. The hub tells the bridge when a
//! conversation or site gets its first follower here and loses its last,
//! so a node subscribes once per channel it needs.
//!
//! Agent connections also register the login they were opened with, so a
//! [`Revocation`] (a logout, a deactivation, a role or password change)
//! can interrupt their mailboxes here and, through the bridge, on every
//! other node.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kefu_protocol::ServerFrame;
use kefu_protocol::frame::{AgentStatus, Availability};
use kefu_protocol::ids::{AgentId, ConversationId, SessionId, SiteId, Timestamp};
use tokio::time::Instant;

mod bridge;
mod presence;
mod queue;
mod revocation;

pub use bridge::{Bridge, Command, Target};
pub use presence::SitePresence;
pub use queue::Interrupted;
pub use revocation::{Login, Logins, Revocation, Revoked};

use presence::{RemotePresence, local_best_status, raise};
use queue::Queue;

/// The fan-out registry. Cloning is shallow: every clone is the same hub.
#[derive(Clone, Debug, Default)]
pub struct Hub {
    routes: Arc<Mutex<Routes>>,
    /// Set once when the node joins a cluster.
    bridge: Arc<OnceLock<Bridge>>,
}

// A std mutex, not tokio's: it is held only to push into queues without
// waiting, never across an `.await`, and that is cheaper than an async lock.
#[derive(Debug, Default)]
struct Routes {
    conversations: HashMap<ConversationId, Vec<Subscriber>>,
    sites: HashMap<(SiteId, Audience), Vec<Subscriber>>,
    /// Agent connections with the status each announced: presence.
    agents: HashMap<SessionId, (SiteId, AgentId, AgentStatus)>,
    /// When each agent connection that is `Online` last said so (ms
    /// since 1970): out of business hours only a status said after the
    /// site closed counts.
    online_since: HashMap<SessionId, u64>,
    /// Sites out of business hours now; `team` keeps it.
    after_hours: HashMap<SiteId, AfterHours>,
    /// The agents of other nodes, as they announced them.
    remote: RemotePresence,
    /// Agent connections by the login they were opened with: whom a
    /// revocation reaches.
    logins: HashMap<SessionId, (Login, Arc<Queue>)>,
}

/// A site out of its business hours, as presence weighs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterHours {
    /// When it closed, ms since 1970 (0 if it never was open): only an
    /// Online said since counts.
    pub closed: u64,
    /// When it opens next, ms since 1970, if it does.
    pub opens_at: Option<u64>,
}

/// Who of a site a site-wide frame is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Agent connections: the queue, visitor profiles.
    Agents,
    /// Visitor connections: whether an agent is online.
    Visitors,
}

/// A frame on its way to the connections following its target: one for
/// all of them, with room for its wire bytes. The first connection that
/// sends it unchanged encodes it (`ws::socket`, the only place that knows
/// the codec) and the others send the same bytes, so a message to a room
/// of a hundred is encoded once, not a hundred times.
#[derive(Debug)]
pub struct Published {
    pub frame: Arc<ServerFrame>,
    pub(crate) encoded: OnceLock<Bytes>,
}

impl Routes {
    fn offer(&self, target: Target, frame: &Arc<ServerFrame>) {
        let followers = match target {
            Target::Conversation(conversation) => self.conversations.get(&conversation),
            Target::Site(site, audience) => self.sites.get(&(site, audience)),
        };
        let Some(followers) = followers else { return };
        let published = Arc::new(Published { frame: Arc::clone(frame), encoded: OnceLock::new() });
        for subscriber in followers {
            subscriber.offer(&published);
        }
    }

    /// Agent connections of `site` on this node.
    fn local_agents_online(&self, site: SiteId) -> u32 {
        let count = self.sites.get(&(site, Audience::Agents)).map_or(0, Vec::len);
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Agents of `site` who take chats now, on any node, each once: those
    /// whose best status is `Online`. An Away agent will not answer, and a
    /// bot that never says it is Online (the SDK's default) is not counted
    /// as someone there.
    ///
    /// Out of hours only agents who said `Online` after the site closed
    /// count, on any node (each node announces when its agents said it):
    /// an Online left over from the afternoon is nobody there.
    fn agents_online(&self, site: SiteId) -> u32 {
        if let Some(after) = self.after_hours.get(&site) {
            let online = self.online_since_closing(site, after.closed).len();
            return u32::try_from(online).unwrap_or(u32::MAX);
        }
        let mut present = local_best_status(&self.agents, site);
        for (agent, status) in self.remote.agents(site) {
            raise(&mut present, agent, status);
        }
        let online = present.values().filter(|&&status| status == AgentStatus::Online).count();
        u32::try_from(online).unwrap_or(u32::MAX)
    }

    /// Agents of `site` on any node who said `Online` at or after `closed`.
    fn online_since_closing(&self, site: SiteId, closed: u64) -> HashSet<AgentId> {
        let here = self.local_online_since(site).into_iter().filter(|&(_, since)| since >= closed);
        here.map(|(agent, _)| agent).chain(self.remote.online_since(site, closed)).collect()
    }

    /// This node's `Online` agents of `site`, each with the latest time
    /// one of its connections said so.
    fn local_online_since(&self, site: SiteId) -> HashMap<AgentId, u64> {
        let mut latest: HashMap<AgentId, u64> = HashMap::new();
        for (session, &(at, agent, status)) in &self.agents {
            if at != site || status != AgentStatus::Online {
                continue;
            }
            if let Some(&since) = self.online_since.get(session) {
                let best = latest.entry(agent).or_insert(since);
                *best = (*best).max(since);
            }
        }
        latest
    }

    fn availability(&self, site: SiteId) -> Availability {
        let after = self.after_hours.get(&site);
        Availability {
            agents_online: self.agents_online(site),
            out_of_hours: after.is_some(),
            opens_at: after.and_then(|after| after.opens_at).map(Timestamp),
        }
    }

    /// Tells the site's visitors how many agents can answer now.
    fn announce_availability(&self, site: SiteId) {
        let frame = Arc::new(ServerFrame::Availability(self.availability(site)));
        self.offer(Target::Site(site, Audience::Visitors), &frame);
    }
}

/// Now as milliseconds since 1970, as business hours count.
fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug, Clone)]
struct Subscriber {
    session: SessionId,
    queue: Arc<Queue>,
}

impl Subscriber {
    fn offer(&self, published: &Arc<Published>) {
        self.queue.push(published);
    }
}

/// One connection's receiving end, and its registrations in the hub.
/// Dropping it removes every registration.
#[derive(Debug)]
pub struct Mailbox {
    hub: Hub,
    me: Subscriber,
    conversations: Vec<ConversationId>,
    sites: Vec<(SiteId, Audience)>,
}

impl Hub {
    /// A mailbox for a new connection holding at most `capacity` frames.
    pub fn mailbox(&self, session: SessionId, capacity: usize) -> Mailbox {
        Mailbox {
            hub: self.clone(),
            me: Subscriber { session, queue: Arc::new(Queue::new(capacity)) },
            conversations: Vec::new(),
            sites: Vec::new(),
        }
    }

    /// Offers `frame` to every connection following `conversation`, on
    /// every node.
    pub fn publish(&self, conversation: ConversationId, frame: ServerFrame) {
        self.publish_to(Target::Conversation(conversation), Arc::new(frame));
    }

    /// Offers `frame` to every connection of `site` in `audience`, on every
    /// node.
    pub fn publish_site(&self, site: SiteId, audience: Audience, frame: ServerFrame) {
        self.publish_to(Target::Site(site, audience), Arc::new(frame));
    }

    fn publish_to(&self, target: Target, frame: Arc<ServerFrame>) {
        self.lock().offer(target, &frame);
        self.tell_bridge(|| Command::Publish(target, frame));
    }

    /// Offers `frame` to this node's connections only: what another node
    /// published, or what only this node's connections need.
    pub fn deliver_here(&self, target: Target, frame: Arc<ServerFrame>) {
        self.lock().offer(target, &frame);
    }

    /// Ends the connections `revocation` covers, on every node.
    pub fn revoke(&self, revocation: Revocation) {
        self.revoke_here(&revocation);
        self.tell_bridge(|| Command::Revoke(revocation));
    }

    /// Tells the other nodes that `site`'s hours were saved.
    pub fn hours_changed_elsewhere(&self, site: SiteId) {
        self.tell_bridge(|| Command::HoursChanged(site));
    }

    /// Ends the connections `revocation` covers on this node only: what
    /// another node revoked.
    pub fn revoke_here(&self, revocation: &Revocation) {
        let routes = self.lock();
        for (login, queue) in routes.logins.values() {
            if revocation.covers(login) {
                queue.revoke(revocation.why);
            }
        }
    }

    /// Bridges this hub to the other nodes. Only the first call counts.
    pub(crate) fn bridge(&self, bridge: Bridge) {
        let _ = self.bridge.set(bridge);
    }

    /// Whether the bridge to the other nodes is up; `None` on a node that
    /// is not bridged (a single node).
    pub fn bridge_up(&self) -> Option<bool> {
        self.bridge.get().map(|bridge| bridge.up.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn tell_bridge(&self, command: impl FnOnce() -> Command) {
        if let Some(bridge) = self.bridge.get() {
            // Fails only once the link task has ended, at shutdown.
            let _ = bridge.commands.send(command());
        }
    }

    /// Every conversation and site audience with a follower on this node:
    /// the channels this node needs.
    pub(crate) fn wanted(&self) -> Vec<Target> {
        let routes = self.lock();
        let conversations = routes.conversations.keys().map(|&c| Target::Conversation(c));
        let sites = routes.sites.keys().map(|&(site, audience)| Target::Site(site, audience));
        conversations.chain(sites).collect()
    }

    /// This node's agents per site, for the other nodes.
    pub(crate) fn local_presence(&self) -> Vec<(SiteId, SitePresence)> {
        let routes = self.lock();
        let mut sites: HashMap<SiteId, SitePresence> = HashMap::new();
        for &(site, audience) in routes.sites.keys() {
            if audience == Audience::Agents {
                sites.entry(site).or_default().connections = routes.local_agents_online(site);
            }
        }
        let mut sorted: Vec<(SiteId, SitePresence)> = sites
            .into_iter()
            .map(|(site, mut presence)| {
                let mut agents: Vec<_> = local_best_status(&routes.agents, site).into_iter().collect();
                agents.sort_unstable_by_key(|(agent, _)| agent.0);
                presence.agents = agents;
                let mut online_since: Vec<_> = routes.local_online_since(site).into_iter().collect();
                online_since.sort_unstable_by_key(|(agent, _)| agent.0);
                presence.online_since = online_since;
                (site, presence)
            })
            .collect();
        sorted.sort_unstable_by_key(|(site, _)| site.0);
        sorted
    }

    /// Takes what another node announced about its agents; returns the
    /// sites whose agents changed, and tells their visitors here.
    pub(crate) fn set_remote(&self, node: u64, sites: Vec<(SiteId, SitePresence)>, expires: Instant) -> Vec<SiteId> {
        let mut routes = self.lock();
        let changed = routes.remote.set(node, sites, expires);
        for site in &changed {
            routes.announce_availability(*site);
        }
        changed
    }

    /// Forgets nodes not heard from in time; returns the sites they had
    /// agents on, and tells their visitors here.
    pub(crate) fn expire_remote(&self, now: Instant) -> Vec<SiteId> {
        let mut routes = self.lock();
        let gone = routes.remote.expire(now);
        for site in &gone {
            routes.announce_availability(*site);
        }
        gone
    }

    /// How many agents of `site` take chats now (`Online`), on every node.
    pub fn agents_online(&self, site: SiteId) -> u32 {
        self.lock().agents_online(site)
    }

    /// The agents of `site` connected now to any node, each once: `Online`
    /// if any of its connections said so, else `Away`.
    pub fn presence(&self, site: SiteId) -> HashMap<AgentId, AgentStatus> {
        let routes = self.lock();
        let mut present = local_best_status(&routes.agents, site);
        for (agent, status) in routes.remote.agents(site) {
            raise(&mut present, agent, status);
        }
        present
    }

    /// Marks `site` out of business hours, or back in hours with `None`;
    /// its visitors are told when that changes.
    pub fn set_after_hours(&self, site: SiteId, after: Option<AfterHours>) {
        let mut routes = self.lock();
        if routes.after_hours.get(&site) == after.as_ref() {
            return;
        }
        match after {
            Some(after) => routes.after_hours.insert(site, after),
            None => routes.after_hours.remove(&site),
        };
        routes.announce_availability(site);
    }

    /// What `site`'s visitors are told about who can answer.
    pub fn availability(&self, site: SiteId) -> Availability {
        self.lock().availability(site)
    }

    /// The agents of `site` on any node who said `Online` at or after
    /// `closed` (ms since 1970): who takes chats out of hours.
    pub fn online_since_closing(&self, site: SiteId, closed: u64) -> HashSet<AgentId> {
        self.lock().online_since_closing(site, closed)
    }

    /// Connections currently registered for `conversation`.
    pub fn followers(&self, conversation: ConversationId) -> usize {
        self.lock().conversations.get(&conversation).map_or(0, Vec::len)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Routes> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters (each change is one push or retain), so a
        // poisoned lock is still usable.
        self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Mailbox {
    /// Starts receiving what is published to `conversation`. Idempotent.
    pub fn follow(&mut self, conversation: ConversationId) {
        if self.conversations.contains(&conversation) {
            return;
        }
        self.conversations.push(conversation);
        let mut routes = self.hub.lock();
        let followers = routes.conversations.entry(conversation).or_default();
        followers.push(self.me.clone());
        if followers.len() == 1 {
            self.hub.tell_bridge(|| Command::Subscribe(Target::Conversation(conversation)));
        }
    }

    /// Starts receiving what is published to `audience` of `site`. An
    /// agent joining changes the site's availability, which its visitors
    /// are told. Idempotent.
    pub fn follow_site(&mut self, site: SiteId, audience: Audience) {
        if self.sites.contains(&(site, audience)) {
            return;
        }
        self.sites.push((site, audience));
        let mut routes = self.hub.lock();
        let followers = routes.sites.entry((site, audience)).or_default();
        followers.push(self.me.clone());
        if followers.len() == 1 {
            self.hub.tell_bridge(|| Command::Subscribe(Target::Site(site, audience)));
        }
        if audience == Audience::Agents {
            routes.announce_availability(site);
            self.hub.tell_bridge(|| Command::PresenceChanged);
        }
    }

    /// Counts this connection as `agent` of `site` for presence, with
    /// `status`. A connection that never says is `Away`: only consoles that
    /// announce `Online` are given chats.
    pub fn attend(&mut self, site: SiteId, agent: AgentId, status: AgentStatus) {
        let mut routes = self.hub.lock();
        let before = routes.agents.insert(self.me.session, (site, agent, status));
        if status == AgentStatus::Online {
            // Each time, even unchanged: saying Online again out of hours
            // is the agent choosing to take chats now.
            routes.online_since.insert(self.me.session, wall_clock_ms());
        } else {
            routes.online_since.remove(&self.me.session);
        }
        // Out of hours even the same status said again can change who counts.
        if before != Some((site, agent, status)) || routes.after_hours.contains_key(&site) {
            // Going Online or Away changes whether visitors have someone.
            routes.announce_availability(site);
        }
        self.hub.tell_bridge(|| Command::PresenceChanged);
    }

    /// Registers the login this agent connection was opened with, so a
    /// revocation of it reaches the connection.
    pub fn sign_in(&mut self, login: Login) {
        let queue = Arc::clone(&self.me.queue);
        self.hub.lock().logins.insert(self.me.session, (login, queue));
    }

    /// Whether this connection follows `conversation`.
    pub fn follows(&self, conversation: ConversationId) -> bool {
        self.conversations.contains(&conversation)
    }

    /// The next published frame, once there is one; as soon as the queue
    /// has overflowed or the connection's login was revoked, why it must
    /// end instead, before the frames still in it.
    pub async fn recv(&mut self) -> Result<Arc<Published>, Interrupted> {
        let queue = &self.me.queue;
        std::future::poll_fn(|cx| {
            if let Some(published) = queue.pop().transpose() {
                return Poll::Ready(published);
            }
            queue.waker.register(cx.waker());
            // A frame pushed before the waker was registered woke nobody.
            queue.pop().transpose().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }

    /// The next published frame if one is waiting.
    #[cfg(test)]
    fn try_recv(&mut self) -> Option<Arc<Published>> {
        self.me.queue.pop().ok().flatten()
    }

    /// Whether more frames are waiting: the connection holds back its
    /// flush until they are written too.
    pub fn has_queued(&self) -> bool {
        !self.me.queue.state().frames.is_empty()
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let session = self.me.session;
        let hub = &self.hub;
        let mut routes = hub.lock();
        routes.logins.remove(&session);
        routes.online_since.remove(&session);
        if let Some((site, _, _)) = routes.agents.remove(&session) {
            routes.announce_availability(site);
            hub.tell_bridge(|| Command::PresenceChanged);
        }
        for &conversation in &self.conversations {
            if let Some(list) = routes.conversations.get_mut(&conversation) {
                list.retain(|s| s.session != session);
                if list.is_empty() {
                    routes.conversations.remove(&conversation);
                    hub.tell_bridge(|| Command::Unsubscribe(Target::Conversation(conversation)));
                }
            }
        }
        for &(site, audience) in &self.sites {
            if let Some(list) = routes.sites.get_mut(&(site, audience)) {
                list.retain(|s| s.session != session);
                if list.is_empty() {
                    routes.sites.remove(&(site, audience));
                    hub.tell_bridge(|| Command::Unsubscribe(Target::Site(site, audience)));
                }
            }
            if audience == Audience::Agents {
                routes.announce_availability(site);
                hub.tell_bridge(|| Command::PresenceChanged);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use kefu_protocol::frame::{Ping, ServerFrame};

    fn ping(nonce: u64) -> ServerFrame {
        ServerFrame::Ping(Ping { nonce })
    }

    #[tokio::test]
    async fn delivers_to_followers_only() {
        let hub = Hub::default();
        let mut a = hub.mailbox(SessionId(1), 8);
        let mut b = hub.mailbox(SessionId(2), 8);
        a.follow(ConversationId(7));
        a.follow(ConversationId(7));
        b.follow(ConversationId(8));
        hub.publish(ConversationId(7), ping(1));
        assert_eq!(*a.recv().await.unwrap().frame, ping(1));
        assert!(b.try_recv().is_none());
        assert!(a.try_recv().is_none(), "following twice must not deliver twice");
    }

    #[tokio::test]
    async fn followers_share_one_published_frame() {
        let hub = Hub::default();
        let mut a = hub.mailbox(SessionId(1), 8);
        let mut b = hub.mailbox(SessionId(2), 8);
        a.follow(ConversationId(7));
        b.follow(ConversationId(7));
        hub.publish(ConversationId(7), ping(1));
        assert!(a.has_queued());
        let (a, b) = (a.recv().await.unwrap(), b.recv().await.unwrap());
        assert!(Arc::ptr_eq(&a, &b), "one frame, and so one encoding, for every follower");
    }

    #[tokio::test]
    async fn overflow_says_too_slow_instead_of_buffering() {
        let hub = Hub::default();
        let mut slow = hub.mailbox(SessionId(1), 2);
        slow.follow(ConversationId(1));
        hub.publish(ConversationId(1), ping(0));
        hub.publish(ConversationId(1), ping(1));
        assert_eq!(*slow.recv().await.unwrap().frame, ping(0), "not full yet");
        for n in 2..5 {
            hub.publish(ConversationId(1), ping(n));
        }
        assert_eq!(slow.recv().await.err(), Some(Interrupted::TooSlow), "said before the frames still queued");
    }

    #[tokio::test]
    async fn a_revocation_interrupts_the_logins_it_covers_before_their_queued_frames() {
        let hub = Hub::default();
        let (commands, mut bridge) = tokio::sync::mpsc::unbounded_channel();
        hub.bridge(Bridge { commands, up: Arc::default() });
        let login = |hash: &str| Login { agent: AgentId(5), token_hash: hash.to_owned() };
        let mut phone = hub.mailbox(SessionId(1), 8);
        let mut laptop = hub.mailbox(SessionId(2), 8);
        phone.sign_in(login("phone"));
        laptop.sign_in(login("laptop"));
        phone.follow(ConversationId(1));
        laptop.follow(ConversationId(1));
        while bridge.try_recv().is_ok() {}
        hub.publish(ConversationId(1), ping(1));
        let logout = Revocation { agent: AgentId(5), logins: Logins::One("phone".into()), why: Revoked::SignedOut };
        hub.revoke(logout.clone());
        assert_eq!(phone.recv().await.err(), Some(Interrupted::Revoked(Revoked::SignedOut)));
        assert_eq!(*laptop.recv().await.unwrap().frame, ping(1), "the other login goes on");
        assert!(matches!(bridge.try_recv(), Ok(Command::Publish(..))));
        assert!(matches!(bridge.try_recv(), Ok(Command::Revoke(r)) if r == logout), "and to the other nodes");

        let demoted = Revocation { agent: AgentId(5), logins: Logins::All, why: Revoked::AccessChanged };
        hub.revoke_here(&demoted);
        assert_eq!(laptop.recv().await.err(), Some(Interrupted::Revoked(Revoked::AccessChanged)));
        assert!(bridge.try_recv().is_err(), "what came from another node is not sent back");
        drop((phone, laptop));
        assert!(hub.lock().logins.is_empty());
    }

    #[test]
    fn dropping_a_mailbox_unregisters_it() {
        let hub = Hub::default();
        let mut a = hub.mailbox(SessionId(1), 8);
        a.follow(ConversationId(1));
        a.follow_site(SiteId(1), Audience::Agents);
        assert_eq!(hub.followers(ConversationId(1)), 1);
        drop(a);
        assert_eq!(hub.followers(ConversationId(1)), 0);
        assert!(hub.lock().sites.is_empty());
    }

    #[tokio::test]
    async fn a_bridged_hub_subscribes_once_per_channel_and_publishes_what_is_local() {
        let hub = Hub::default();
        let (commands, mut bridge) = tokio::sync::mpsc::unbounded_channel();
        hub.bridge(Bridge { commands, up: Arc::default() });
        let conversation = Target::Conversation(ConversationId(7));
        let mut a = hub.mailbox(SessionId(1), 8);
        let mut b = hub.mailbox(SessionId(2), 8);
        a.follow(ConversationId(7));
        b.follow(ConversationId(7));
        assert!(matches!(bridge.try_recv(), Ok(Command::Subscribe(t)) if t == conversation));
        assert!(bridge.try_recv().is_err(), "the second follower needs no second subscription");

        hub.publish(ConversationId(7), ping(1));
        assert!(matches!(bridge.try_recv(), Ok(Command::Publish(t, _)) if t == conversation));
        hub.deliver_here(conversation, Arc::new(ping(2)));
        assert!(bridge.try_recv().is_err(), "what came from another node is not sent back");
        assert_eq!(*a.recv().await.unwrap().frame, ping(1));
        assert_eq!(*a.recv().await.unwrap().frame, ping(2));

        drop(a);
        assert!(bridge.try_recv().is_err(), "b still follows");
        drop(b);
        assert!(matches!(bridge.try_recv(), Ok(Command::Unsubscribe(t)) if t == conversation));
    }

    #[test]
    fn other_nodes_agents_count_until_their_node_goes_quiet() {
        let hub = Hub::default();
        let mut visitor = hub.mailbox(SessionId(1), 8);
        visitor.follow_site(SiteId(1), Audience::Visitors);
        let there =
            SitePresence { connections: 2, agents: vec![(AgentId(5), AgentStatus::Online)], online_since: vec![] };
        let now = Instant::now();
        let changed = hub.set_remote(99, vec![(SiteId(1), there.clone())], now + Duration::from_secs(6));
        assert_eq!(changed, [SiteId(1)]);
        assert_eq!(hub.agents_online(SiteId(1)), 1, "one agent, Online, on two connections");
        assert_eq!(hub.presence(SiteId(1)), HashMap::from([(AgentId(5), AgentStatus::Online)]));
        assert!(hub.set_remote(99, vec![(SiteId(1), there)], now + Duration::from_secs(8)).is_empty());
        assert!(hub.expire_remote(now + Duration::from_secs(7)).is_empty(), "renewed in time");
        assert_eq!(hub.expire_remote(now + Duration::from_secs(9)), [SiteId(1)]);
        assert_eq!(hub.agents_online(SiteId(1)), 0);
        let announced: Vec<_> = std::iter::from_fn(|| visitor.try_recv().map(|p| Arc::clone(&p.frame))).collect();
        let availability = |n| Arc::new(ServerFrame::Availability(Availability::in_hours(n)));
        assert_eq!(announced, [availability(1), availability(0)]);
    }

    #[tokio::test]
    async fn visitors_learn_when_agents_come_and_go() {
        let hub = Hub::default();
        let mut visitor = hub.mailbox(SessionId(1), 64);
        visitor.follow_site(SiteId(1), Audience::Visitors);
        // The last availability announced since the last look.
        let mut told = move || {
            std::iter::from_fn(|| visitor.try_recv()).last().map(|p| match *p.frame {
                ServerFrame::Availability(a) => a.agents_online,
                ref other => panic!("{other:?}"),
            })
        };
        let mut agent = hub.mailbox(SessionId(2), 8);
        agent.follow_site(SiteId(1), Audience::Agents);
        agent.attend(SiteId(1), AgentId(5), AgentStatus::Away);
        assert_eq!(hub.agents_online(SiteId(1)), 0, "an Away agent answers nobody");
        assert_eq!(told(), Some(0));
        assert_eq!(hub.presence(SiteId(1)), HashMap::from([(AgentId(5), AgentStatus::Away)]));
        let mut second_console = hub.mailbox(SessionId(4), 8);
        second_console.attend(SiteId(1), AgentId(5), AgentStatus::Online);
        assert_eq!(told(), Some(1), "going Online is announced");
        assert_eq!(hub.presence(SiteId(1)), HashMap::from([(AgentId(5), AgentStatus::Online)]));
        second_console.attend(SiteId(1), AgentId(5), AgentStatus::Away);
        assert_eq!(told(), Some(0), "going Away is announced");
        second_console.attend(SiteId(1), AgentId(5), AgentStatus::Online);
        assert_eq!(told(), Some(1));
        drop(second_console);
        assert_eq!(told(), Some(0), "the Online console is gone");
        drop(agent);
        assert_eq!(hub.agents_online(SiteId(1)), 0);
        assert!(hub.presence(SiteId(1)).is_empty());
        assert_eq!(told(), Some(0));
        let mut other_site = hub.mailbox(SessionId(3), 8);
        other_site.follow_site(SiteId(2), Audience::Agents);
        other_site.attend(SiteId(2), AgentId(6), AgentStatus::Online);
        assert_eq!(told(), None, "another site's agents are not announced here");
        assert_eq!(hub.agents_online(SiteId(1)), 0);
    }
}
