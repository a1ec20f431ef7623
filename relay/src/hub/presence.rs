//! Which agents are connected: this node's from its mailboxes, the other
//! nodes' from what they announce (over the cluster's presence channel).
//!
//! When an agent said `Online` travels with the announcement, not through
//! the store: presence is already live state each node announces and
//! forgets when the node goes quiet, and "said Online after the site
//! closed" decides assignment out of hours on whichever node a visitor
//! writes to, so every node must know it for every node's agents.

use std::collections::HashMap;

use kefu_protocol::frame::AgentStatus;
use kefu_protocol::ids::{AgentId, SessionId, SiteId};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// One site's agents on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SitePresence {
    /// Agent connections, whatever their status (visitors are told only
    /// of `agents` who are `Online`).
    pub connections: u32,
    /// Each connected agent once, `Online` if any of its connections is.
    pub agents: Vec<(AgentId, AgentStatus)>,
    /// Each `Online` agent with the latest time one of its connections
    /// said so (ms since 1970): out of hours only an Online said after the
    /// site closed counts, on any node.
    pub online_since: Vec<(AgentId, u64)>,
}

/// What the other nodes said about their agents, per node.
#[derive(Debug, Default)]
pub(crate) struct RemotePresence {
    nodes: HashMap<u64, (Instant, HashMap<SiteId, SitePresence>)>,
}

impl RemotePresence {
    /// Replaces what `node` said; returns the sites whose agents changed.
    pub(crate) fn set(&mut self, node: u64, sites: Vec<(SiteId, SitePresence)>, expires: Instant) -> Vec<SiteId> {
        let sites: HashMap<SiteId, SitePresence> = sites.into_iter().collect();
        let old = self.nodes.insert(node, (expires, sites.clone())).map(|(_, old)| old).unwrap_or_default();
        changed_sites(&old, &sites)
    }

    /// Forgets nodes not heard from in time; returns the sites they had
    /// agents on.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<SiteId> {
        let mut gone = Vec::new();
        self.nodes.retain(|_, (expires, sites)| {
            let alive = *expires > now;
            if !alive {
                gone.extend(sites.keys().copied());
            }
            alive
        });
        gone
    }

    /// Agents of `site` on other nodes with their best status.
    pub(crate) fn agents(&self, site: SiteId) -> impl Iterator<Item = (AgentId, AgentStatus)> + '_ {
        self.nodes.values().filter_map(move |(_, sites)| sites.get(&site)).flat_map(|s| s.agents.iter().copied())
    }

    /// Agents of `site` on other nodes who said `Online` at or after
    /// `closed` (ms since 1970).
    pub(crate) fn online_since(&self, site: SiteId, closed: u64) -> impl Iterator<Item = AgentId> + '_ {
        self.nodes
            .values()
            .filter_map(move |(_, sites)| sites.get(&site))
            .flat_map(|s| s.online_since.iter())
            .filter(move |&&(_, since)| since >= closed)
            .map(|&(agent, _)| agent)
    }
}

fn changed_sites(old: &HashMap<SiteId, SitePresence>, new: &HashMap<SiteId, SitePresence>) -> Vec<SiteId> {
    let mut changed: Vec<SiteId> = old.keys().chain(new.keys()).copied().filter(|s| old.get(s) != new.get(s)).collect();
    changed.sort_unstable_by_key(|site| site.0);
    changed.dedup();
    changed
}

/// This node's agents of `site`, each once with its best status.
pub(crate) fn local_best_status(
    agents: &HashMap<SessionId, (SiteId, AgentId, AgentStatus)>,
    site: SiteId,
) -> HashMap<AgentId, AgentStatus> {
    let mut present = HashMap::new();
    for &(at, agent, status) in agents.values() {
        if at == site {
            raise(&mut present, agent, status);
        }
    }
    present
}

/// Counts `agent` as present, `Online` if this or an earlier connection is.
pub(crate) fn raise(present: &mut HashMap<AgentId, AgentStatus>, agent: AgentId, status: AgentStatus) {
    let best = present.entry(agent).or_insert(status);
    if status == AgentStatus::Online {
        *best = AgentStatus::Online;
    }
}
