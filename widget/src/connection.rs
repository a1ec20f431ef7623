//! The only place that touches the WebSocket. It hosts the protocol's
//! I/O-free [`Session`]: it reports what happened (the socket opened or
//! closed, a frame arrived, the timer fired, the visitor did something) and
//! carries out the session's actions (connect, transmit, disconnect, tell
//! the model). Reliability is the session's; this module only keeps what
//! it must across reloads, in [`Store`].
//!
//! Everything runs on the page's one thread: the host is an
//! `Rc<RefCell<_>>`, borrowed by each browser callback for the length of
//! that callback. Browser events never arrive while one is running, so a
//! borrow is never contended.

use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::rc::{Rc, Weak};

use js_sys::{ArrayBuffer, Uint8Array};
use kefu_protocol::frame::{Body, Credentials, ErrorCode, Identity, ReceiptKind, ReturningVisitor};
use kefu_protocol::ids::{ClientMessageId, ConversationId, Seq, SiteKey, Timestamp};
use kefu_protocol::session::{Action, Event, LinkState, Millis, Session, SessionConfig};
use kefu_protocol::{DEFAULT_LIMITS, ServerFrame, decode, encode};
use leptos::prelude::{RwSignal, Update, WithUntracked};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, MessageEvent, WebSocket};

use crate::bridge::Parent;
use crate::model::Model;
use crate::persist::{Store, StoredPending, StoredVisitor, merge_outbox};

/// A handle on the connection; cloning is shallow, every clone drives the
/// same socket and session.
#[derive(Clone)]
pub struct Connection(Rc<RefCell<Host>>);

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connection")
    }
}

impl Connection {
    /// Starts connecting as the visitor stored for `site` (or as a new
    /// one), with the messages a previous page left unsent queued again.
    pub fn start(site: SiteKey, model: RwSignal<Model>, parent: Parent) -> Connection {
        let store = Store::open(&site);
        let stored = store.visitor();
        let conversation = stored.as_ref().map(|s| s.conversation);
        let returning = stored.map(|s| ReturningVisitor { visitor: s.visitor, token: s.token });
        let has_identity = returning.is_some();
        let credentials = Credentials::Visitor { site: site.clone(), returning };
        let host = Rc::new_cyclic(|me: &Weak<RefCell<Host>>| {
            let timer_host = me.clone();
            let timer = Closure::<dyn FnMut()>::new(move || {
                if let Some(host) = timer_host.upgrade() {
                    host.borrow_mut().on_timer();
                }
            });
            RefCell::new(Host {
                session: Session::new(credentials, SessionConfig::default(), seed()),
                site,
                url: relay_url(),
                model,
                parent,
                store,
                me: me.clone(),
                socket: None,
                generation: 0,
                timer,
                timer_handle: None,
                conversation,
                has_identity,
                unaddressed: Vec::new(),
                settled: BTreeSet::new(),
                replaying: false,
                acked_delivered: Seq::ZERO,
                acked_read: Seq::ZERO,
                forget_identity: false,
                outbox_changed: false,
                unread_posted: None,
                queue: VecDeque::new(),
            })
        });
        host.borrow_mut().begin();
        Connection(host)
    }

    /// The visitor sends `text`; it shows at once and goes out as soon as
    /// the link allows.
    pub fn send(&self, text: String) {
        self.0.borrow_mut().send(text);
    }

    /// Tells agents the visitor is typing (with the draft) or stopped.
    pub fn typing(&self, active: bool, draft: Option<String>) {
        let mut host = self.0.borrow_mut();
        if let Some(conversation) = host.conversation {
            let actions = host.session.typing(conversation, active, draft);
            host.run(actions);
        }
    }

    /// Runs one of the session's own calls (`visit`, `identify`, ...) and
    /// carries out what it returns.
    pub fn with_session(&self, call: impl FnOnce(&mut Session) -> Vec<Action>) {
        let mut host = self.0.borrow_mut();
        let actions = call(&mut host.session);
        host.run(actions);
    }

    /// Back online, or the page became visible: reconnect now rather than
    /// at the end of the backoff.
    pub fn wake(&self) {
        let mut host = self.0.borrow_mut();
        let actions = host.session.wake(now());
        host.run(actions);
    }

    /// The panel was opened or closed, or the page shown or hidden: read
    /// marks and the unread count may change.
    pub fn view_changed(&self, change: impl FnOnce(&mut Model)) {
        let mut host = self.0.borrow_mut();
        host.change(change);
        host.run(Vec::new());
    }
}

struct Host {
    session: Session,
    site: SiteKey,
    url: String,
    model: RwSignal<Model>,
    parent: Parent,
    store: Store,
    me: Weak<RefCell<Host>>,
    socket: Option<Socket>,
    /// Counts sockets, so a callback of a socket already given up is
    /// recognised and ignored.
    generation: u64,
    /// One callback for every timeout, so rescheduling allocates nothing.
    timer: Closure<dyn FnMut()>,
    timer_handle: Option<(i32, Millis)>,
    /// The visitor's conversation: from the last welcome, or stored.
    conversation: Option<ConversationId>,
    /// The credentials carry a stored identity the relay may refuse.
    has_identity: bool,
    /// Written before the relay first named a conversation; queued in the
    /// session at the next welcome.
    unaddressed: Vec<StoredPending>,
    /// Sends the relay answered on this page, so no stale copy of them is
    /// stored again from another tab's outbox.
    settled: BTreeSet<ClientMessageId>,
    /// Between a welcome and its replay's end: marks wait until the replay
    /// is in, so one ack covers it all.
    replaying: bool,
    acked_delivered: Seq,
    acked_read: Seq,
    forget_identity: bool,
    outbox_changed: bool,
    unread_posted: Option<u32>,
    /// Actions not carried out yet; events can add more.
    queue: VecDeque<Action>,
}

/// An open (or opening) WebSocket and the callbacks it holds.
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut()>,
}

impl Host {
    fn begin(&mut self) {
        let now = now();
        let read = self.store.read();
        self.change(|model| model.raise_read(read));
        for pending in self.store.outbox() {
            self.change(|model| model.queue(pending.client_id, pending.text.clone(), wall_clock()));
            match (pending.conversation, self.conversation) {
                (Some(conversation), Some(ours)) if conversation == ours => {
                    let actions = self.session.requeue(now, pending.client_id, conversation, pending.body());
                    self.queue.extend(actions);
                }
                _ => self.unaddressed.push(pending),
            }
        }
        let actions = self.session.start(now);
        self.run(actions);
    }

    fn send(&mut self, text: String) {
        if text.trim().is_empty() {
            return;
        }
        let at = wall_clock();
        match self.conversation {
            Some(conversation) => {
                let (client_id, actions) = self.session.send(now(), conversation, Body::Text(text.clone()));
                // Shown before the actions run: they may already refuse it.
                self.change(|model| model.queue(client_id, text, at));
                self.queue.extend(actions);
            }
            None => {
                let client_id = ClientMessageId(u128::from(seed()) << 64 | u128::from(seed()));
                self.change(|model| model.queue(client_id, text.clone(), at));
                self.unaddressed.push(StoredPending { client_id, conversation: None, text });
            }
        }
        self.outbox_changed = true;
        self.run(Vec::new());
    }

    /// Carries out `actions` and everything they lead to, then brings the
    /// marks, the stored outbox, the parent page and the timer up to date.
    fn run(&mut self, actions: Vec<Action>) {
        self.queue.extend(actions);
        loop {
            while let Some(action) = self.queue.pop_front() {
                self.carry_out(action);
            }
            self.settle();
            if self.queue.is_empty() {
                break;
            }
        }
        if std::mem::take(&mut self.outbox_changed) {
            self.store_outbox();
        }
        let unread = self.model.with_untracked(Model::unread);
        if self.unread_posted != Some(unread) {
            self.unread_posted = Some(unread);
            self.parent.unread(unread);
        }
        self.schedule();
    }

    fn carry_out(&mut self, action: Action) {
        match action {
            Action::Connect => self.open_socket(),
            Action::Transmit(frame) => {
                if let Some(socket) = &self.socket {
                    // A failed send means the socket is closing; its close
                    // event tells the session, which resends what matters.
                    let _ = socket.ws.send_with_u8_array(&encode(&frame));
                }
            }
            Action::Disconnect => self.close_socket(),
            Action::Emit(event) => self.on_event(event),
        }
    }

    fn on_event(&mut self, event: Event) {
        let now = now();
        match event {
            Event::Link(link) => self.change(|model| model.link(link)),
            Event::Welcome(welcome) => self.on_welcome(now, &welcome.identity),
            Event::Message(message) => {
                let arrived = self.change(|model| model.message(&message));
                if let Some(arrived) = arrived {
                    self.parent.message(&arrived);
                }
            }
            Event::Accepted(accepted) => {
                if let Some(arrived) = self.change(|model| model.accepted(&accepted)) {
                    self.parent.message(&arrived);
                }
                self.settled.insert(accepted.client_id);
                self.outbox_changed = true;
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
                    self.queue.extend(actions);
                    return;
                }
                self.change(|model| model.rejected(rejected.client_id));
                self.settled.insert(rejected.client_id);
            }
            Event::ReplayComplete(complete) => {
                if Some(complete.conversation) == self.conversation {
                    self.replaying = false;
                    self.change(|model| model.replay_complete(complete.last_seq));
                }
            }
            Event::Receipt(receipt) => self.change(|model| model.receipt(&receipt)),
            Event::Typing(notice) => self.change(|model| model.typing(&notice, now)),
            Event::Availability(availability) => self.change(|model| model.availability(availability.agents_online)),
            Event::Error(error) => {
                if error.code == ErrorCode::Unauthorized && !error.reconnect && self.has_identity {
                    // The stored visitor is unknown here (data deleted, a
                    // different relay): become a new visitor once the
                    // session has finished stopping.
                    self.forget_identity = true;
                }
            }
            Event::Closing(_) | Event::Conversation(_) | Event::Visitor(_) => {}
        }
    }

    fn on_welcome(&mut self, now: Millis, identity: &Identity) {
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
            self.queue.extend(actions);
            self.outbox_changed = true;
        }
    }

    /// What follows from the state after a batch of actions: a refused
    /// identity, read and delivered marks, the typing indicator's end.
    fn settle(&mut self) {
        let now = now();
        if std::mem::take(&mut self.forget_identity) {
            self.become_new_visitor(now);
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
                self.queue.extend(actions);
            }
        }
        if read > self.acked_read {
            let actions = self.session.ack(conversation, ReceiptKind::Read, read);
            if !actions.is_empty() {
                self.acked_read = read;
                self.queue.extend(actions);
            }
        }
    }

    /// The relay refused the stored identity: start over as a new visitor,
    /// taking the unsent messages along to the new conversation.
    fn become_new_visitor(&mut self, now: Millis) {
        self.store.set_visitor(None);
        self.store.set_read(Seq::ZERO);
        self.has_identity = false;
        self.conversation = None;
        for pending in self.session.pending() {
            self.unaddressed.push(StoredPending {
                client_id: pending.client_id,
                conversation: None,
                text: match &pending.body {
                    Body::Text(text) => text.clone(),
                },
            });
        }
        self.outbox_changed = true;
        self.change(Model::forget_visitor);
        let credentials = Credentials::Visitor { site: self.site.clone(), returning: None };
        self.session = Session::new(credentials, SessionConfig::default(), seed());
        self.acked_delivered = Seq::ZERO;
        self.acked_read = Seq::ZERO;
        let actions = self.session.start(now);
        self.queue.extend(actions);
    }

    fn store_outbox(&mut self) {
        let mine: Vec<StoredPending> = self
            .session
            .pending()
            .map(|pending| StoredPending {
                client_id: pending.client_id,
                conversation: Some(pending.conversation),
                text: match &pending.body {
                    Body::Text(text) => text.clone(),
                },
            })
            .chain(self.unaddressed.iter().cloned())
            .collect();
        let merged = merge_outbox(self.store.outbox(), mine, |id| self.settled.contains(&id));
        self.store.set_outbox(&merged);
    }

    fn open_socket(&mut self) {
        self.close_socket();
        self.generation += 1;
        let generation = self.generation;
        let Ok(ws) = WebSocket::new(&self.url) else {
            let actions = self.session.disconnected(now());
            self.queue.extend(actions);
            return;
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        let on_open = self.callback(generation, |host| host.session.connected(now()));
        let on_close = self.callback(generation, |host| {
            host.close_socket();
            host.session.disconnected(now())
        });
        let me = self.me.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let Some(host) = me.upgrade() else {
                return;
            };
            let mut host = host.borrow_mut();
            if host.generation != generation {
                return;
            }
            let Ok(buffer) = event.data().dyn_into::<ArrayBuffer>() else {
                return; // text: not this protocol
            };
            let bytes = Uint8Array::new(&buffer).to_vec();
            // A frame this build cannot read (a newer relay) is skipped;
            // if it held a message, the seq gap brings a replay.
            if let Ok(frame) = decode::<ServerFrame>(&bytes, &DEFAULT_LIMITS) {
                let actions = host.session.receive(now(), frame);
                host.run(actions);
            }
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        self.socket = Some(Socket { ws, _on_open: on_open, _on_message: on_message, _on_close: on_close });
    }

    /// A socket callback that reaches the host only while its socket is
    /// the current one.
    fn callback(
        &self,
        generation: u64,
        mut call: impl FnMut(&mut Host) -> Vec<Action> + 'static,
    ) -> Closure<dyn FnMut()> {
        let me = self.me.clone();
        Closure::<dyn FnMut()>::new(move || {
            let Some(host) = me.upgrade() else {
                return;
            };
            let mut host = host.borrow_mut();
            if host.generation == generation {
                let actions = call(&mut host);
                host.run(actions);
            }
        })
    }

    /// Closes the socket and forgets it, as the session asks: none of its
    /// events reach the session any more.
    fn close_socket(&mut self) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        self.generation += 1;
        socket.ws.set_onopen(None);
        socket.ws.set_onmessage(None);
        socket.ws.set_onclose(None);
        let _ = socket.ws.close();
        // This may run inside one of the socket's own callbacks: free them
        // once it has returned.
        leptos::prelude::set_timeout(move || drop(socket), std::time::Duration::ZERO);
    }

    fn on_timer(&mut self) {
        self.timer_handle = None;
        let actions = self.session.tick(now());
        self.run(actions);
    }

    /// One timeout for the session's next deadline and the typing
    /// indicator's end, whichever is first. A deadline that moved later
    /// keeps the earlier timeout: it fires, finds nothing due, and the
    /// timeout is set again.
    fn schedule(&mut self) {
        let typing = self.model.with_untracked(Model::typing_until);
        let next = match (self.session.next_wakeup(), typing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(window) = web_sys::window() else {
            return;
        };
        if let Some((handle, at)) = self.timer_handle {
            if next.is_some_and(|next| next >= at) {
                return;
            }
            window.clear_timeout_with_handle(handle);
            self.timer_handle = None;
        }
        let Some(next) = next else {
            return;
        };
        let delay = i32::try_from(next.since(now())).unwrap_or(i32::MAX);
        if let Ok(handle) =
            window.set_timeout_with_callback_and_timeout_and_arguments_0(self.timer.as_ref().unchecked_ref(), delay)
        {
            self.timer_handle = Some((handle, next));
        }
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

/// `ws://` or `wss://` to the host that served the widget page.
fn relay_url() -> String {
    let location = web_sys::window().map(|window| window.location());
    let secure = location.as_ref().and_then(|l| l.protocol().ok()).is_some_and(|p| p == "https:");
    let host = location.and_then(|l| l.host().ok()).unwrap_or_default();
    format!("{}://{host}/ws", if secure { "wss" } else { "ws" })
}

/// The page's monotonic clock.
pub fn now() -> Millis {
    let ms = web_sys::window().and_then(|w| w.performance()).map_or_else(js_sys::Date::now, |p| p.now());
    // Milliseconds since page load: positive and far below 2^53.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Millis(ms as u64)
}

/// The device's wall clock, for times shown before the relay's is known.
fn wall_clock() -> Timestamp {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Timestamp(js_sys::Date::now() as u64)
}

/// 64 bits from the browser's cryptographic generator; the session's ids
/// and jitter come from it.
fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    let filled = web_sys::window()
        .and_then(|window| window.crypto().ok())
        .is_some_and(|crypto| crypto.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        // No Web Crypto (very old browsers): mix two Math.random draws.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let draw = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
        return draw() << 32 | draw();
    }
    u64::from_le_bytes(bytes)
}
