//! The console's side of the link: the protocol's [`Session`] as an agent
//! that follows every open conversation of its site (`auto_join`), hosted
//! on a WebSocket by [`kefu_webclient`]. Reconnects, replay, dedup and
//! order are the session's; this module feeds the model, sends the
//! delivered and read acks, and carries out what the agent does.

use std::collections::{BTreeMap, BTreeSet};

use kefu_protocol::frame::{AgentStatus, Body, Change, CloseReason, Closing, Credentials, ErrorCode, ReceiptKind};
use kefu_protocol::ids::{ConversationId, Seq};
use kefu_protocol::session::{Action, Event, LinkState, Millis, Session, SessionConfig};
use kefu_webclient::{App, Link, relay_url, seed};
use leptos::prelude::{RwSignal, Update, WithUntracked};

pub use kefu_webclient::{now, wall_clock};

use crate::model::Model;

/// A handle on the connection; cloning is shallow, every clone drives the
/// same socket and session.
#[derive(Debug, Clone)]
pub struct Connection(Link<Agent>);

impl Connection {
    /// Starts connecting as the signed-in agent: the browser sends the
    /// session cookie with the upgrade, the hello only says so.
    pub fn start(model: RwSignal<Model>, status: AgentStatus) -> Connection {
        let config = SessionConfig { auto_join: true, ..SessionConfig::default() };
        let agent = Agent {
            session: Session::new(Credentials::AgentCookie, config, seed()),
            model,
            caught_up: BTreeSet::new(),
            acked_delivered: BTreeMap::new(),
            acked_read: BTreeMap::new(),
        };
        Connection(Link::start(relay_url(), agent, |agent| {
            // Kept by the session and said again after every reconnect.
            let mut actions = agent.session.set_status(status);
            actions.extend(agent.session.start(now()));
            actions
        }))
    }

    /// The agent sends a reply or a private note in `conversation`; it
    /// shows at once and goes out as soon as the link allows.
    pub fn send(&self, conversation: ConversationId, body: Body) {
        self.0.with(|agent| {
            let (client_id, actions) = agent.session.send(now(), conversation, body.clone());
            agent.change(|model| model.queue(conversation, client_id, &body, wall_clock()));
            actions
        });
    }

    /// Takes, transfers, closes or reopens a conversation. Only while
    /// live: a change decided on a stale screen must not go out later.
    pub fn update(&self, conversation: ConversationId, change: Change) {
        self.0.with(|agent| {
            if agent.session.link() != LinkState::Live {
                agent.change(|model| {
                    model.toast("Not connected: try again once the console is back online.".to_owned())
                });
                return Vec::new();
            }
            agent.session.update(conversation, change)
        });
    }

    /// Online (takes new chats) or away.
    pub fn set_status(&self, status: AgentStatus) {
        self.0.with(|agent| {
            agent.change(|model| model.set_status(status));
            agent.session.set_status(status)
        });
    }

    /// Tells the visitor the agent is typing, or stopped.
    pub fn typing(&self, conversation: ConversationId, active: bool) {
        self.0.with(|agent| agent.session.typing(conversation, active, None));
    }

    /// Reconnect now rather than at the end of the backoff (back online,
    /// the tab shown again).
    pub fn wake(&self) {
        self.0.wake();
    }

    /// A change of what is on screen (selection, visibility): read acks may
    /// follow.
    pub fn view_changed(&self, change: impl FnOnce(&mut Model)) {
        self.0.with(|agent| {
            agent.change(change);
            Vec::new()
        });
    }

    /// Logout: closes the link for good.
    pub fn stop(&self) {
        self.0.stop();
    }
}

/// The console as the link's [`App`].
struct Agent {
    session: Session,
    model: RwSignal<Model>,
    /// Conversations whose replay finished on the current link: acks wait
    /// for it, so one ack covers a whole replay.
    caught_up: BTreeSet<ConversationId>,
    acked_delivered: BTreeMap<ConversationId, Seq>,
    acked_read: BTreeMap<ConversationId, Seq>,
}

impl Agent {
    /// Changes the model; the views that read what changed follow.
    fn change<R: Default>(&self, change: impl FnOnce(&mut Model) -> R) -> R {
        self.model.try_update(change).unwrap_or_default()
    }
}

impl App for Agent {
    fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    fn event(&mut self, event: Event, _out: &mut Vec<Action>) {
        match event {
            Event::Link(link) => {
                if link != LinkState::Live {
                    self.caught_up.clear();
                }
                self.change(|model| model.link(link));
            }
            Event::Welcome(welcome) => self.change(|model| model.welcome(welcome.server_time)),
            Event::Message(message) => {
                if let Some(news) = self.change(|model| model.message(&message)) {
                    crate::notify::alert(&news);
                }
            }
            Event::Accepted(accepted) => self.change(|model| model.accepted(&accepted)),
            Event::Rejected(rejected) => self.change(|model| model.rejected(rejected.conversation, rejected.client_id)),
            Event::ReplayComplete(complete) => {
                self.caught_up.insert(complete.conversation);
            }
            Event::Receipt(receipt) => self.change(|model| model.receipt(&receipt)),
            Event::Typing(notice) => self.change(|model| model.typing(&notice, now())),
            Event::Conversation(update) => self.change(|model| model.conversation_update(&update)),
            Event::Visitor(profile) => self.change(|model| model.visitor(profile)),
            Event::Roster(roster) => self.change(|model| model.roster(roster.agents)),
            Event::Error(error) => {
                if error.code == ErrorCode::Unauthorized && !error.reconnect {
                    // The session expired, was ended or the agent was
                    // deactivated: log in again.
                    self.change(Model::sign_out);
                } else if error.reconnect {
                    // A refused change (someone else took the chat, the
                    // colleague is full): the link goes on.
                    let text = if error.text.is_empty() { "The relay refused that.".to_owned() } else { error.text };
                    self.change(|model| model.toast(text));
                }
            }
            // An admin signed this agent out (or deactivated it, or set a
            // new password): the session stops itself; back to the login
            // screen rather than a console that cannot reconnect.
            Event::Closing(Closing { reason: CloseReason::SignedOut, .. }) => self.change(Model::sign_out),
            // A new role: the session reconnects at once, but the console
            // shown (the admin pages or not) is the old role's. Load it
            // again as the agent is now.
            Event::Closing(Closing { reason: CloseReason::AccessChanged, .. }) => {
                let _ = leptos::prelude::window().location().reload();
            }
            Event::Closing(_) | Event::Availability(_) | Event::TranscriptMailed(_) => {}
        }
    }

    /// Delivered acks for what arrived, read acks for what is on screen,
    /// and the end of typing indicators.
    fn settle(&mut self, out: &mut Vec<Action>) {
        let now = now();
        if self.model.with_untracked(|m| m.typing_until().is_some_and(|until| until <= now)) {
            self.change(|model| model.expire_typing(now));
        }
        if self.session.link() != LinkState::Live {
            return;
        }
        let read: Vec<(ConversationId, Seq)> = self.model.with_untracked(|m| m.read_marks().collect());
        for &conversation in &self.caught_up {
            let cursor = self.session.cursor(conversation);
            if cursor > self.acked_delivered.get(&conversation).copied().unwrap_or(Seq::ZERO) {
                let actions = self.session.ack(conversation, ReceiptKind::Delivered, cursor);
                if !actions.is_empty() {
                    self.acked_delivered.insert(conversation, cursor);
                    out.extend(actions);
                }
            }
        }
        for (conversation, read) in read {
            if !self.caught_up.contains(&conversation) {
                continue;
            }
            if read > self.acked_read.get(&conversation).copied().unwrap_or(Seq::ZERO) {
                let actions = self.session.ack(conversation, ReceiptKind::Read, read);
                if !actions.is_empty() {
                    self.acked_read.insert(conversation, read);
                    out.extend(actions);
                }
            }
        }
    }

    fn deadline(&self) -> Option<Millis> {
        self.model.with_untracked(Model::typing_until)
    }
}
