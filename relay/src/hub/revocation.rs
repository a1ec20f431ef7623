//! Ending an agent's live connections when its access ends or changes:
//! a logout, a deactivation, a role or password change. The HTTP handler
//! that made the change tells the hub, the hub interrupts every matching
//! mailbox on this node and the bridge carries the revocation to the other
//! nodes, whose hubs do the same. Each connection then closes with a reason
//! its client understands (see `ws::connection`).
//!
//! This is the fast path, not the only one: a connection also asks the
//! store about its session before every privileged action and at every
//! heartbeat, so a revocation lost with a Redis outage still takes effect.

use kefu_protocol::ids::AgentId;
use serde::{Deserialize, Serialize};

/// An agent connection as revocations name it: whose it is and which
/// login (session) it was opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub agent: AgentId,
    /// The session token's hash, as the store keeps it (`auth::token_hash`).
    pub token_hash: String,
}

/// Which of an agent's connections to end, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub agent: AgentId,
    pub logins: Logins,
    pub why: Revoked,
}

/// Which of an agent's logins a revocation covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Logins {
    /// One session (a logout), by its token hash.
    One(String),
    /// Every session of the agent (deactivation, role change).
    All,
    /// Every session but the one that asked (a password change keeps the
    /// session it was made in).
    AllBut(String),
}

/// Why connections are ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Revoked {
    /// The session is over (logged out, deactivated, password changed):
    /// it must not reconnect with it.
    SignedOut,
    /// The agent's rights changed (its role): it may reconnect at once and
    /// gets the new ones.
    AccessChanged,
}

impl Revocation {
    /// Whether this revocation ends a connection opened with `login`.
    pub fn covers(&self, login: &Login) -> bool {
        login.agent == self.agent
            && match &self.logins {
                Logins::One(token_hash) => *token_hash == login.token_hash,
                Logins::All => true,
                Logins::AllBut(token_hash) => *token_hash != login.token_hash,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_covers_the_logins_it_names_of_its_agent_only() {
        let login = |agent, hash: &str| Login { agent: AgentId(agent), token_hash: hash.to_owned() };
        let revoke = |logins| Revocation { agent: AgentId(1), logins, why: Revoked::SignedOut };
        let one = revoke(Logins::One("a".into()));
        assert!(one.covers(&login(1, "a")));
        assert!(!one.covers(&login(1, "b")));
        assert!(!one.covers(&login(2, "a")), "another agent's session of the same hash");
        assert!(revoke(Logins::All).covers(&login(1, "b")));
        assert!(!revoke(Logins::All).covers(&login(2, "b")));
        let all_but = revoke(Logins::AllBut("a".into()));
        assert!(!all_but.covers(&login(1, "a")));
        assert!(all_but.covers(&login(1, "b")));
    }
}
