//! The widget's side of the link: the protocol's I/O-free [`Session`] as
//! a visitor, hosted on a WebSocket by [`kefu_webclient`]. It tells the
//! session what the visitor did and the model what the session reports.
//! Reliability is the session's; this module only keeps what it must
//! across reloads, in [`Store`].

use kefu_protocol::frame::{Attribute, Body, Credentials, ErrorCode, Identity, ReceiptKind, ReturningVisitor};
use kefu_protocol::ids::{ClientMessageId, ConversationId, Seq, SiteKey};
use kefu_protocol::session::{Action, Event, LinkState, Millis, Session, SessionConfig};
use kefu_webclient::{App, Link, relay_url, seed, wall_clock};
use leptos::prelude::{RwSignal, Update, WithUntracked};

pub use kefu_webclient::now;

use crate::bridge::Parent;
use crate::model::{Model, TranscriptAsk};
use crate::persist::{HISTORY_ROWS, Store, StoredPending, StoredVisitor, merge_outbox};

/// A handle on the connection; cloning is shallow, every clone drives the
/// same socket and session.
#[derive(Debug, Clone)]
pub struct Connection(Link<Host>);

impl Connection {
    /// Starts connecting as the visitor stored for `site` (or as a new
    /// one), with the messages a previous page left unsent queued again.
    pub fn start(site: SiteKey, model: RwSignal<Model>, parent: Parent) -> Connection {
        let store = Store::open(&site, parent.origin());
        let stored = store.visitor();
        let conversation = stored.as_ref().map(|s| s.conversation);
        let returning = stored.map(|s| ReturningVisitor { visitor: s.visitor, token: s.token });
        let has_identity = returning.is_some();
        let credentials = Credentials::Visitor { site: site.clone(), returning };
        let host = Host {
            session: Session::new(credentials, SessionConfig::default(), seed()),
            site,
            model,
            parent,
            store,
            conversation,
            has_identity,
            unaddressed: Vec::new(),
            settled: Vec::new(),
            replaying: false,
            acked_delivered: Seq::ZERO,
            acked_read: Seq::ZERO,
            forget_identity: false,
            outbox_changed: false,
            history_changed: false,
            unread_posted: None,
        };
        Connection(Link::start(relay_url(), host, Host::begin))
    }

    /// The visitor sends `text`; it shows at once and goes out as soon as
    /// the link allows.
    pub fn send(&self, text: String) {
        self.0.with(|host| host.send(text));
    }

    /// Tells agents the visitor is typing (with the draft) or stopped.
    pub fn typing(&self, active: bool, draft: Option<String>) {
        self.0.with(|host| match host.conversation {
            Some(conversation) => host.session.typing(conversation, active, draft),
            None => Vec::new(),
        });
    }

    /// Runs one of the session's own calls (`visit`, `identify`, ...) and
    /// carries out what it returns.
    pub fn with_session(&self, call: impl FnOnce(&mut Session) -> Vec<Action>) {
        self.0.with(|host| call(&mut host.session));
    }

    /// The visitor filled in a form (`form`: `"prechat"` or `"contact"`):
    /// its values go to the relay as attributes, now and after every
    /// reload until the first message is stored, and the form is not
    /// asked again.
    pub fn answer_form(&self, form: &str, set: Vec<Attribute>) {
        self.0.with(|host| {
            let mut kept = host.store.form_attributes();
            for attribute in &set {
                kept.retain(|old| old.key != attribute.key);
                kept.push(attribute.clone());
            }
            host.store.set_form_attributes(&kept);
            host.store.set_answered(form);
            host.session.set_attributes(set)
        });
    }

    /// Whether the visitor filled in `form` on this or an earlier page.
    pub fn answered(&self, form: &str) -> bool {
        self.0.read(|host| host.store.answered(form))
    }

    /// The visitor rates the closed conversation. The relay's `Rated`
    /// line, which the model follows, is the answer.
    pub fn rate(&self, score: u8, comment: String) {
        self.0.with(|host| match host.conversation {
            Some(conversation) => host.session.rate(conversation, score, comment),
            None => Vec::new(),
        });
    }

    /// The visitor asks for the chat by mail. The relay's
    /// `TranscriptMailed`, or its error, is the answer the model keeps.
    pub fn mail_transcript(&self) {
        self.0.with(|host| {
            let Some(conversation) = host.conversation else { return Vec::new() };
            let actions = host.session.mail_transcript(conversation);
            let sent = !actions.is_empty();
            host.change(|model| model.ask_transcript(sent));
            actions
        });
    }

    /// Back online, or the page became visible: reconnect now rather than
    /// at the end of the backoff.
    pub fn wake(&self) {
        self.0.wake();
    }

    /// The panel was opened or closed, or the page shown or hidden: read
    /// marks and the unread count may change.
    pub fn view_changed(&self, change: impl FnOnce(&mut Model)) {
        self.0.with(|host| {
            host.change(change);
            Vec::new()
        });
    }
}

/// The widget as the link's [`App`].
struct Host {
    session: Session,
    site: SiteKey,
    model: RwSignal<Model>,
    parent: Parent,
    store: Store,
    /// The visitor's conversation: from the last welcome, or stored.
    conversation: Option<ConversationId>,
    /// The credentials carry a stored identity the relay may refuse.
    has_identity: bool,
    /// Written before the relay first named a conversation; queued in the
    /// session at the next welcome.
    unaddressed: Vec<StoredPending>,
    /// Sends the relay answered on this page, so no stale copy of them is
    /// stored again from another tab's outbox. A list: a page sends a few
    /// hundred messages at most, and a set type would add its own code to
    /// the wasm.
    settled: Vec<ClientMessageId>,
    /// Between a welcome and its replay's end: marks wait until the replay
    /// is in, so one ack covers it all.
    replaying: bool,
    acked_delivered: Seq,
    acked_read: Seq,
    forget_identity: bool,
    outbox_changed: bool,
    /// A stored message came or moved: the kept history follows.
    history_changed: bool,
    unread_posted: Option<u32>,
}

impl Host {
    fn begin(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        let now = now();
        let read = self.store.read();
        self.change(|model| model.raise_read(read));
        // The last page's chat, shown at once: offline it is all there is.
        if self.has_identity {
            let history = self.store.history();
            self.change(|model| model.restore(history));
        }
        for pending in self.store.outbox() {
            self.change(|model| model.queue(pending.client_id, pending.text.clone(), wall_clock()));
            match (pending.conversation, self.conversation) {
                (Some(conversation), Some(ours)) if conversation == ours => {
                    let actions = self.session.requeue(now, pending.client_id, conversation, pending.body());
                    out.extend(actions);
                }
                _ => self.unaddressed.push(pending),
            }
        }
        let answered = self.store.form_attributes();
        if !answered.is_empty() {
            // Profile frames are kept by the session and go out after
            // every welcome, before the outbox.
            out.extend(self.session.set_attributes(answered));
        }
        out.extend(self.session.start(now));
        out
    }

    fn send(&mut self, text: String) -> Vec<Action> {
        if text.trim().is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let at = wall_clock();
        match self.conversation {
            Some(conversation) => {
                let (client_id, actions) = self.session.send(now(), conversation, Body::Text(text.clone()));
                // Shown before the actions run: they may already refuse it.
                self.change(|model| model.queue(client_id, text, at));
                out.extend(actions);
            }
            None => {
                let client_id = ClientMessageId(u128::from(seed()) << 64 | u128::from(seed()));
                self.change(|model| model.queue(client_id, text.clone(), at));
                self.unaddressed.push(StoredPending { client_id, conversation: None, text });
            }
        }
        self.outbox_changed = true;
        out
    }

    fn on_welcome(&mut self, now: Millis, identity: &Identity, out: &mut Vec<Action>) {
        let Some(stored) = StoredVisitor::from_identity(identity) else {
            return;
        };
        self.store.set_visitor(Some(&stored));
        self.has_identity = true;
        self.replaying = true;
        self.conversation = Some(stored.conversation);
        self.change(|model| model.welcome(stored.visitor));
        for pending in std::mem::take(&mut self.unaddressed) {
            let actions = self.session.requeue(now, pending.client_id, stored.conversation, pending.body());
            out.extend(actions);
            self.outbox_changed = true;
        }
    }

    /// The relay refused the stored identity: start over as a new visitor,
    /// taking the unsent messages along to the new conversation.
    fn become_new_visitor(&mut self, now: Millis, out: &mut Vec<Action>) {
        self.store.set_visitor(None);
        self.store.set_read(Seq::ZERO);
        self.store.set_history(&[]);
        self.has_identity = false;
        self.conversation = None;
        for pending in self.session.pending() {
            // A visitor's outbox holds only text.
            if let Body::Text(text) = &pending.body {
                self.unaddressed.push(StoredPending {
                    client_id: pending.client_id,
                    conversation: None,
                    text: text.clone(),
                });
            }
        }
        self.outbox_changed = true;
        self.change(Model::forget_visitor);
        let credentials = Credentials::Visitor { site: self.site.clone(), returning: None };
        self.session = Session::new(credentials, SessionConfig::default(), seed());
        self.acked_delivered = Seq::ZERO;
        self.acked_read = Seq::ZERO;
        out.extend(self.session.start(now));
    }

    fn store_outbox(&mut self) {
        let mine: Vec<StoredPending> = self
            .session
            .pending()
            .filter_map(|pending| match &pending.body {
                Body::Text(text) => Some(StoredPending {
                    client_id: pending.client_id,
                    conversation: Some(pending.conversation),
                    text: text.clone(),
                }),
                Body::Note(_) | Body::Event(_) | Body::Files(_) => None,
            })
            .chain(self.unaddressed.iter().cloned())
            .collect();
        let merged = merge_outbox(self.store.outbox(), mine, |id| self.settled.contains(&id));
        self.store.set_outbox(&merged);
    }

    /// Changes the model; the views that read what changed follow.
    fn change<R: Default>(&self, change: impl FnOnce(&mut Model) -> R) -> R {
        self.model.try_update(change).unwrap_or_default()
    }

    /// Changes the model only if `needed` says so: `settle` runs after
    /// every frame, and most frames change none of what it looks at.
    fn change_if(&self, needed: impl FnOnce(&Model) -> bool, change: impl FnOnce(&mut Model)) {
        if self.model.with_untracked(needed) {
            self.change(change);
        }
    }
}

impl App for Host {
    fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    fn event(&mut self, event: Event, out: &mut Vec<Action>) {
        let now = now();
        match event {
            Event::Link(link) => self.change(|model| model.link(link)),
            Event::Welcome(welcome) => self.on_welcome(now, &welcome.identity, out),
            Event::Message(message) => {
                self.history_changed = true;
                let arrived = self.change(|model| model.message(&message));
                if let Some(arrived) = arrived {
                    self.parent.message(&arrived);
                }
            }
            Event::Accepted(accepted) => {
                self.history_changed = true;
                if let Some(arrived) = self.change(|model| model.accepted(&accepted)) {
                    self.parent.message(&arrived);
                }
                self.settled.push(accepted.client_id);
                self.outbox_changed = true;
                // Stored with the visitor's first message: done.
                self.store.set_form_attributes(&[]);
            }
            Event::Rejected(rejected) => {
                self.outbox_changed = true;
                // Written for a conversation that has since closed: the
                // relay never stored it, so it goes to the current one.
                if rejected.code == ErrorCode::Forbidden
                    && let Some(current) = self.conversation
                    && current != rejected.conversation
                    && let Some(text) = self.model.with_untracked(|m| m.unsent_text(rejected.client_id))
                {
                    let actions = self.session.requeue(now, rejected.client_id, current, Body::Text(text));
                    out.extend(actions);
                    return;
                }
                self.change(|model| model.rejected(rejected.client_id, rejected.code));
                self.settled.push(rejected.client_id);
            }
            Event::ReplayComplete(complete) => {
                if Some(complete.conversation) == self.conversation {
                    self.replaying = false;
                    self.change(|model| model.replay_complete(complete.last_seq));
                }
            }
            Event::Receipt(receipt) => self.change(|model| model.receipt(&receipt)),
            Event::Typing(notice) => self.change(|model| model.typing(&notice, now)),
            Event::Availability(availability) => self.change(|model| model.availability(&availability)),
            Event::TranscriptMailed(mailed) => self.change(|model| model.transcript_mailed(mailed.to)),
            Event::Error(error) => {
                self.change_if(
                    |model| *model.transcript() == TranscriptAsk::Asking,
                    |model| model.transcript_refused(error.code),
                );
                if error.code == ErrorCode::Unauthorized && !error.reconnect && self.has_identity {
                    // The stored visitor is unknown here (data deleted, a
                    // different relay): become a new visitor once the
                    // session has finished stopping.
                    self.forget_identity = true;
                }
            }
            Event::Closing(_) | Event::Conversation(_) | Event::Visitor(_) | Event::Roster(_) => {}
        }
    }

    /// What follows from the state after a batch of actions: a refused
    /// identity, read and delivered marks, the typing indicator's end.
    fn settle(&mut self, out: &mut Vec<Action>) {
        let now = now();
        if std::mem::take(&mut self.forget_identity) {
            self.become_new_visitor(now, out);
            return;
        }
        if self.session.link() == LinkState::Stopped {
            self.change_if(|model| !model.unavailable(), Model::set_unavailable);
        }
        self.change_if(
            |model| model.typing_until().is_some_and(|until| until <= now),
            |model| model.expire_typing(now),
        );
        let seen = self.model.with_untracked(Model::unseen) && self.change(Model::see);
        let read = self.model.with_untracked(Model::read);
        if seen {
            self.store.set_read(read);
        }
        let Some(conversation) = self.conversation else {
            return;
        };
        if self.session.link() != LinkState::Live || self.replaying {
            return;
        }
        let cursor = self.session.cursor(conversation);
        if cursor > self.acked_delivered {
            let actions = self.session.ack(conversation, ReceiptKind::Delivered, cursor);
            if !actions.is_empty() {
                self.acked_delivered = cursor;
                out.extend(actions);
            }
        }
        if read > self.acked_read {
            let actions = self.session.ack(conversation, ReceiptKind::Read, read);
            if !actions.is_empty() {
                self.acked_read = read;
                out.extend(actions);
            }
        }
    }

    /// The stored outbox and the parent page's unread count follow what
    /// the batch changed.
    fn settled(&mut self) {
        if std::mem::take(&mut self.outbox_changed) {
            self.store_outbox();
        }
        if !self.replaying && std::mem::take(&mut self.history_changed) {
            self.model.with_untracked(|model| self.store.set_history(model.history(HISTORY_ROWS)));
        }
        let unread = self.model.with_untracked(Model::unread);
        if self.unread_posted != Some(unread) {
            self.unread_posted = Some(unread);
            self.parent.unread(unread);
        }
    }

    fn deadline(&self) -> Option<Millis> {
        self.model.with_untracked(Model::typing_until)
    }
}
