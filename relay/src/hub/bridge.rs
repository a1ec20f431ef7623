//! What the hub says to the other nodes, and where: the queue to the
//! cluster's link (see [`crate::cluster`]), which carries it over Redis.
//! The hub only names targets and commands; how they travel is the
//! cluster's business.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kefu_protocol::ServerFrame;
use kefu_protocol::ids::{ConversationId, SiteId};
use tokio::sync::mpsc;

use super::Audience;
use super::revocation::Revocation;

/// Where a frame goes: one channel between nodes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The followers of a conversation.
    Conversation(ConversationId),
    /// A site's agents or visitors.
    Site(SiteId, Audience),
}

/// What the hub asks of the link to the other nodes. Sent in order through
/// one queue, so a subscribe and the unsubscribe after it cannot swap, and
/// a revocation goes out before anything published after it.
#[derive(Debug)]
pub enum Command {
    Subscribe(Target),
    Unsubscribe(Target),
    Publish(Target, Arc<ServerFrame>),
    /// This node's agents changed: announce them.
    PresenceChanged,
    /// End these agent connections on every other node too.
    Revoke(Revocation),
    /// This site's business hours were saved: the other nodes weigh them
    /// now rather than at their next look.
    HoursChanged(SiteId),
}

/// The hub's side of the link: the queue to it, and whether it is up.
#[derive(Debug, Clone)]
pub struct Bridge {
    pub commands: mpsc::UnboundedSender<Command>,
    /// Set by the link while it carries commands to the other nodes.
    pub up: Arc<AtomicBool>,
}
