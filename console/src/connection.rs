//! The only place that touches the WebSocket. It hosts the protocol's
//! I/O-free [`Session`] as an agent that follows every open conversation
//! of its site (`auto_join`): it reports what happened (socket opened or
//! closed, a frame arrived, the timer fired, the agent did something) and
//! carries out the session's actions. Reconnects, replay, dedup and order
//! are the session's; this module adds the delivered and read acks.
//!
//! Everything runs on the page's one thread: the host is an
//! `Rc<RefCell<_>>`, borrowed by each browser callback for the length of
//! that callback, so a borrow is never contended.
//
// The socket hosting follows `widget/src/connection.rs`; the two could
// share one host crate once the console has settled.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::{Rc, Weak};

use js_sys::{ArrayBuffer, Uint8Array};
use kefu_protocol::frame::{Body, Credentials, ErrorCode, ReceiptKind};
use kefu_protocol::ids::{AgentToken, ConversationId, Seq, Timestamp};
use kefu_protocol::session::{Action, Event, LinkState, Millis, Session, SessionConfig};
use kefu_protocol::{DEFAULT_LIMITS, ServerFrame, decode, encode};
use leptos::prelude::{RwSignal, Update, WithUntracked};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, MessageEvent, WebSocket};

use crate::model::Model;

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
    /// Starts connecting as the agent `token` belongs to. `None` when the
    /// token cannot even be a token: the caller signs out.
    pub fn start(token: &str, model: RwSignal<Model>) -> Option<Connection> {
        let token = AgentToken::new(token).ok()?;
        let config = SessionConfig { auto_join: true, ..SessionConfig::default() };
        let host = Rc::new_cyclic(|me: &Weak<RefCell<Host>>| {
            let timer_host = me.clone();
            let timer = Closure::<dyn FnMut()>::new(move || {
                if let Some(host) = timer_host.upgrade() {
                    host.borrow_mut().on_timer();
                }
            });
            RefCell::new(Host {
                session: Session::new(Credentials::Agent { token }, config, seed()),
                url: relay_url(),
                model,
                me: me.clone(),
                socket: None,
                generation: 0,
                timer,
                timer_handle: None,
                caught_up: BTreeSet::new(),
                acked_delivered: BTreeMap::new(),
                acked_read: BTreeMap::new(),
                queue: VecDeque::new(),
            })
        });
        let actions = host.borrow_mut().session.start(now());
        host.borrow_mut().run(actions);
        Some(Connection(host))
    }

    /// The agent sends `text` in `conversation`; it shows at once and goes
    /// out as soon as the link allows.
    pub fn send(&self, conversation: ConversationId, text: String) {
        if text.trim().is_empty() {
            return;
        }
        let mut host = self.0.borrow_mut();
        let (client_id, actions) = host.session.send(now(), conversation, Body::Text(text.clone()));
        host.change(|model| model.queue(conversation, client_id, text, wall_clock()));
        host.run(actions);
    }

    /// Tells the visitor the agent is typing, or stopped.
    pub fn typing(&self, conversation: ConversationId, active: bool) {
        let mut host = self.0.borrow_mut();
        let actions = host.session.typing(conversation, active, None);
        host.run(actions);
    }

    /// Reconnect now rather than at the end of the backoff (back online,
    /// the tab shown again).
    pub fn wake(&self) {
        let mut host = self.0.borrow_mut();
        let actions = host.session.wake(now());
        host.run(actions);
    }

    /// A change of what is on screen (selection, visibility): read acks may
    /// follow.
    pub fn view_changed(&self, change: impl FnOnce(&mut Model)) {
        let mut host = self.0.borrow_mut();
        host.change(change);
        host.run(Vec::new());
    }

    /// Logout: closes the link for good.
    pub fn stop(&self) {
        let mut host = self.0.borrow_mut();
        let actions = host.session.stop();
        host.run(actions);
        if let (Some((handle, _)), Some(window)) = (host.timer_handle.take(), web_sys::window()) {
            window.clear_timeout_with_handle(handle);
        }
    }
}

struct Host {
    session: Session,
    url: String,
    model: RwSignal<Model>,
    me: Weak<RefCell<Host>>,
    socket: Option<Socket>,
    /// Counts sockets, so a callback of a socket already given up is
    /// recognised and ignored.
    generation: u64,
    /// One callback for every timeout, so rescheduling allocates nothing.
    timer: Closure<dyn FnMut()>,
    timer_handle: Option<(i32, Millis)>,
    /// Conversations whose replay finished on the current link: acks wait
    /// for it, so one ack covers a whole replay.
    caught_up: BTreeSet<ConversationId>,
    acked_delivered: BTreeMap<ConversationId, Seq>,
    acked_read: BTreeMap<ConversationId, Seq>,
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
    /// Carries out `actions` and everything they lead to, then brings the
    /// acks and the timer up to date.
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
        match event {
            Event::Link(link) => {
                if link != LinkState::Live {
                    self.caught_up.clear();
                }
                self.change(|model| model.link(link));
            }
            Event::Message(message) => self.change(|model| model.message(&message)),
            Event::Accepted(accepted) => self.change(|model| model.accepted(&accepted)),
            Event::Rejected(rejected) => self.change(|model| model.rejected(rejected.conversation, rejected.client_id)),
            Event::ReplayComplete(complete) => {
                self.caught_up.insert(complete.conversation);
            }
            Event::Receipt(receipt) => self.change(|model| model.receipt(&receipt)),
            Event::Typing(notice) => self.change(|model| model.typing(&notice, now())),
            Event::Conversation(update) => self.change(|model| model.conversation_update(&update)),
            Event::Visitor(profile) => self.change(|model| model.visitor(profile)),
            Event::Error(error) => {
                if error.code == ErrorCode::Unauthorized && !error.reconnect {
                    // The token expired or was revoked: log in again.
                    self.change(Model::sign_out);
                }
            }
            Event::Welcome(_) | Event::Closing(_) | Event::Availability(_) => {}
        }
    }

    /// Delivered acks for what arrived, read acks for what is on screen,
    /// and the end of typing indicators.
    fn settle(&mut self) {
        let now = now();
        if self.model.with_untracked(|m| m.typing_until().is_some_and(|until| until <= now)) {
            self.change(|model| model.expire_typing(now));
        }
        if self.session.link() != LinkState::Live {
            return;
        }
        let read: Vec<(ConversationId, Seq)> = self.model.with_untracked(|m| m.read_marks().collect());
        for conversation in self.caught_up.clone() {
            let cursor = self.session.cursor(conversation);
            if cursor > self.acked_delivered.get(&conversation).copied().unwrap_or(Seq::ZERO) {
                let actions = self.session.ack(conversation, ReceiptKind::Delivered, cursor);
                if !actions.is_empty() {
                    self.acked_delivered.insert(conversation, cursor);
                    self.queue.extend(actions);
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
                    self.queue.extend(actions);
                }
            }
        }
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

    /// Closes the socket and forgets it: none of its events reach the
    /// session any more.
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

    /// One timeout for the session's next deadline and the first typing
    /// indicator's end, whichever comes first.
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
}

/// `ws://` or `wss://` to the host that served the console.
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
pub fn wall_clock() -> Timestamp {
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
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let draw = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
        return draw() << 32 | draw();
    }
    u64::from_le_bytes(bytes)
}
