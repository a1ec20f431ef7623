//! In-process fan-out: who follows which conversation and which site.
//!
//! Each connection has a [`Mailbox`]: a bounded queue the hub pushes into
//! without ever waiting. When the queue is full the connection is too slow
//! to keep up; the hub trips its `too_slow` token and the connection closes
//! with a reason, so one stuck reader can never make the relay buffer
//! without bound or delay anybody else. What a slow client misses it gets
//! back by replay from the store when it reconnects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kefu_protocol::ServerFrame;
use kefu_protocol::frame::{AgentStatus, Availability};
use kefu_protocol::ids::{AgentId, ConversationId, SessionId, SiteId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The fan-out registry. Cloning is shallow: every clone is the same hub.
#[derive(Clone, Debug, Default)]
pub struct Hub {
    routes: Arc<Mutex<Routes>>,
}

// A std mutex, not tokio's: it is held only to push into queues without
// waiting, never across an `.await`, and that is cheaper than an async lock.
#[derive(Debug, Default)]
struct Routes {
    conversations: HashMap<ConversationId, Vec<Subscriber>>,
    sites: HashMap<(SiteId, Audience), Vec<Subscriber>>,
    /// Agent connections with the status each announced: presence.
    agents: HashMap<SessionId, (SiteId, AgentId, AgentStatus)>,
}

/// Who of a site a site-wide frame is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Agent connections: the queue, visitor profiles.
    Agents,
    /// Visitor connections: whether an agent is online.
    Visitors,
}

impl Routes {
    fn offer_site(&self, site: SiteId, audience: Audience, frame: &Arc<ServerFrame>) {
        for subscriber in self.sites.get(&(site, audience)).into_iter().flatten() {
            subscriber.offer(frame);
        }
    }

    fn agents_online(&self, site: SiteId) -> u32 {
        let count = self.sites.get(&(site, Audience::Agents)).map_or(0, Vec::len);
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Tells the site's visitors how many agents are connected now.
    fn announce_availability(&self, site: SiteId) {
        let frame = Arc::new(ServerFrame::Availability(Availability { agents_online: self.agents_online(site) }));
        self.offer_site(site, Audience::Visitors, &frame);
    }
}

#[derive(Debug, Clone)]
struct Subscriber {
    session: SessionId,
    queue: mpsc::Sender<Arc<ServerFrame>>,
    too_slow: CancellationToken,
}

impl Subscriber {
    fn offer(&self, frame: &Arc<ServerFrame>) {
        match self.queue.try_send(Arc::clone(frame)) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.too_slow.cancel(),
        }
    }
}

/// One connection's receiving end, and its registrations in the hub.
/// Dropping it removes every registration.
#[derive(Debug)]
pub struct Mailbox {
    hub: Hub,
    me: Subscriber,
    queue: mpsc::Receiver<Arc<ServerFrame>>,
    conversations: Vec<ConversationId>,
    sites: Vec<(SiteId, Audience)>,
}

impl Hub {
    /// A mailbox for a new connection holding at most `capacity` frames.
    pub fn mailbox(&self, session: SessionId, capacity: usize) -> Mailbox {
        let (sender, queue) = mpsc::channel(capacity.max(1));
        Mailbox {
            hub: self.clone(),
            me: Subscriber { session, queue: sender, too_slow: CancellationToken::new() },
            queue,
            conversations: Vec::new(),
            sites: Vec::new(),
        }
    }

    /// Offers `frame` to every connection following `conversation`.
    pub fn publish(&self, conversation: ConversationId, frame: ServerFrame) {
        let frame = Arc::new(frame);
        let routes = self.lock();
        for subscriber in routes.conversations.get(&conversation).into_iter().flatten() {
            subscriber.offer(&frame);
        }
    }

    /// Offers `frame` to every connection of `site` in `audience`.
    pub fn publish_site(&self, site: SiteId, audience: Audience, frame: ServerFrame) {
        self.lock().offer_site(site, audience, &Arc::new(frame));
    }

    /// How many agent connections `site` has now.
    pub fn agents_online(&self, site: SiteId) -> u32 {
        self.lock().agents_online(site)
    }

    /// The agents of `site` connected now, each once: `Online` if any of
    /// its connections said so, else `Away`.
    pub fn presence(&self, site: SiteId) -> HashMap<AgentId, AgentStatus> {
        let mut present = HashMap::new();
        for &(at, agent, status) in self.lock().agents.values() {
            if at == site {
                let best = present.entry(agent).or_insert(status);
                if status == AgentStatus::Online {
                    *best = AgentStatus::Online;
                }
            }
        }
        present
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
        routes.conversations.entry(conversation).or_default().push(self.me.clone());
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
        routes.sites.entry((site, audience)).or_default().push(self.me.clone());
        if audience == Audience::Agents {
            routes.announce_availability(site);
        }
    }

    /// Counts this connection as `agent` of `site` for presence, with
    /// `status`. A connection that never says is `Away`: only consoles that
    /// announce `Online` are given chats.
    pub fn attend(&mut self, site: SiteId, agent: AgentId, status: AgentStatus) {
        self.hub.lock().agents.insert(self.me.session, (site, agent, status));
    }

    /// Whether this connection follows `conversation`.
    pub fn follows(&self, conversation: ConversationId) -> bool {
        self.conversations.contains(&conversation)
    }

    /// The next published frame; `None` never happens while the mailbox
    /// lives, because it holds a sender itself.
    pub async fn recv(&mut self) -> Option<Arc<ServerFrame>> {
        self.queue.recv().await
    }

    /// Cancelled when the queue overflowed.
    pub fn too_slow(&self) -> CancellationToken {
        self.me.too_slow.clone()
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let session = self.me.session;
        let mut routes = self.hub.lock();
        routes.agents.remove(&session);
        for conversation in &self.conversations {
            if let Some(list) = routes.conversations.get_mut(conversation) {
                list.retain(|s| s.session != session);
                if list.is_empty() {
                    routes.conversations.remove(conversation);
                }
            }
        }
        for &(site, audience) in &self.sites {
            if let Some(list) = routes.sites.get_mut(&(site, audience)) {
                list.retain(|s| s.session != session);
                if list.is_empty() {
                    routes.sites.remove(&(site, audience));
                }
            }
            if audience == Audience::Agents {
                routes.announce_availability(site);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(*a.recv().await.unwrap(), ping(1));
        assert!(b.queue.try_recv().is_err());
        assert!(a.queue.try_recv().is_err(), "following twice must not deliver twice");
    }

    #[tokio::test]
    async fn overflow_trips_too_slow_instead_of_buffering() {
        let hub = Hub::default();
        let mut slow = hub.mailbox(SessionId(1), 2);
        slow.follow(ConversationId(1));
        let too_slow = slow.too_slow();
        for n in 0..5 {
            hub.publish(ConversationId(1), ping(n));
        }
        assert!(too_slow.is_cancelled());
        assert_eq!(*slow.recv().await.unwrap(), ping(0));
        assert_eq!(*slow.recv().await.unwrap(), ping(1));
        assert!(slow.queue.try_recv().is_err());
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
    async fn visitors_learn_when_agents_come_and_go() {
        let hub = Hub::default();
        let mut visitor = hub.mailbox(SessionId(1), 8);
        visitor.follow_site(SiteId(1), Audience::Visitors);
        let availability = |n| ServerFrame::Availability(Availability { agents_online: n });
        let mut agent = hub.mailbox(SessionId(2), 8);
        agent.follow_site(SiteId(1), Audience::Agents);
        agent.attend(SiteId(1), AgentId(5), AgentStatus::Away);
        assert_eq!(hub.agents_online(SiteId(1)), 1);
        assert_eq!(hub.presence(SiteId(1)), HashMap::from([(AgentId(5), AgentStatus::Away)]));
        let mut second_console = hub.mailbox(SessionId(4), 8);
        second_console.attend(SiteId(1), AgentId(5), AgentStatus::Online);
        assert_eq!(hub.presence(SiteId(1)), HashMap::from([(AgentId(5), AgentStatus::Online)]));
        drop(second_console);
        assert_eq!(*visitor.recv().await.unwrap(), availability(1));
        drop(agent);
        assert_eq!(hub.agents_online(SiteId(1)), 0);
        assert!(hub.presence(SiteId(1)).is_empty());
        assert_eq!(*visitor.recv().await.unwrap(), availability(0));
        let mut other_site = hub.mailbox(SessionId(3), 8);
        other_site.follow_site(SiteId(2), Audience::Agents);
        assert!(visitor.queue.try_recv().is_err(), "another site's agents do not count");
    }
}
