//! The browser side of a Kefu client, shared by the visitor widget and the
//! agent console: a WebSocket that hosts the protocol's I/O-free
//! [`Session`]. The host reports what happened (the socket opened or
//! closed, a frame arrived, the timer fired) and carries out the session's
//! actions; what the actions mean for a screen is the [`App`]'s.
//!
//! # Layout
//!
//! - [`App`]: what a web app adds to the session: how it reacts to the
//!   session's events, the acks it settles after every batch, its own
//!   deadline (a typing indicator running out).
//! - [`Link`]: the handle the app's UI holds; [`Link::with`] calls into
//!   the app and carries out the actions that come back.
//! - `Host`: the socket, its callbacks and the one timer; the only place
//!   that touches bytes.
//! - [`now`], [`wall_clock`], [`seed`], [`relay_url`]: the browser's
//!   clocks, randomness and the relay's address.
//! - [`limit`]: how long a message the composers take, counted as the
//!   browser counts.
//! - [`crash`]: the panic hook both apps install, so a panic is logged and
//!   shown instead of leaving a page that silently stops.
//!
//! Everything runs on the page's one thread: the host is an
//! `Rc<RefCell<_>>`, borrowed by each browser callback for the length of
//! that callback. Browser events never arrive while one is running, so a
//! borrow is never contended.

pub mod crash;
pub mod limit;

pub use crash::report_panics;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use js_sys::{ArrayBuffer, Uint8Array};
use kefu_protocol::ids::Timestamp;
use kefu_protocol::session::{Action, Event, Millis, Session};
use kefu_protocol::{DEFAULT_LIMITS, ServerFrame, decode, encode};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, MessageEvent, WebSocket};

/// What a web app adds to the hosted session.
pub trait App: 'static {
    fn session(&mut self) -> &mut Session;

    /// Something the session reports; actions that follow go to `out`.
    fn event(&mut self, event: Event, out: &mut Vec<Action>);

    /// Runs after every batch of actions, again while it adds more: the
    /// delivered and read acks, expired typing indicators.
    fn settle(&mut self, out: &mut Vec<Action>);

    /// Runs once everything is carried out (persisting, telling a parent
    /// page).
    fn settled(&mut self) {}

    /// The app's own next deadline, if any; the timer fires at it or at the
    /// session's, whichever comes first, and `settle` runs.
    fn deadline(&self) -> Option<Millis> {
        None
    }
}

/// A handle on the connection; cloning is shallow, every clone drives the
/// same socket, session and app.
pub struct Link<A: App>(Rc<RefCell<Host<A>>>);

impl<A: App> Clone for Link<A> {
    fn clone(&self) -> Link<A> {
        Link(Rc::clone(&self.0))
    }
}

impl<A: App> std::fmt::Debug for Link<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Link")
    }
}

impl<A: App> Link<A> {
    /// Hosts `app` on a socket to `url`; `first` runs before anything else
    /// (typically queueing what a previous page left, then
    /// `session.start`).
    pub fn start(url: String, app: A, first: impl FnOnce(&mut A) -> Vec<Action>) -> Link<A> {
        let host = Rc::new_cyclic(|me: &Weak<RefCell<Host<A>>>| {
            let timer_host = me.clone();
            let timer = Closure::<dyn FnMut()>::new(move || {
                if let Some(host) = timer_host.upgrade() {
                    host.borrow_mut().on_timer();
                }
            });
            RefCell::new(Host {
                app,
                url,
                me: me.clone(),
                socket: None,
                generation: 0,
                timer,
                timer_handle: None,
                queue: VecDeque::new(),
            })
        });
        let link = Link(host);
        link.with(first);
        link
    }

    /// Calls into the app (send, typing, a change of what is on screen) and
    /// carries out the actions it returns and all that follows.
    pub fn with(&self, call: impl FnOnce(&mut A) -> Vec<Action>) {
        let mut host = self.0.borrow_mut();
        let actions = call(&mut host.app);
        host.run(actions);
    }

    /// Reads the app without acting.
    pub fn read<R>(&self, read: impl FnOnce(&A) -> R) -> R {
        read(&self.0.borrow().app)
    }

    /// Reconnect now rather than at the end of the backoff (back online,
    /// the page shown again).
    pub fn wake(&self) {
        self.with(|app| app.session().wake(now()));
    }

    /// Closes the link for good and clears the timer.
    pub fn stop(&self) {
        let mut host = self.0.borrow_mut();
        let actions = host.app.session().stop();
        host.run(actions);
        if let (Some((handle, _)), Some(window)) = (host.timer_handle.take(), web_sys::window()) {
            window.clear_timeout_with_handle(handle);
        }
    }
}

struct Host<A: App> {
    app: A,
    url: String,
    me: Weak<RefCell<Host<A>>>,
    socket: Option<Socket>,
    /// Counts sockets, so a callback of a socket already given up is
    /// recognised and ignored.
    generation: u64,
    /// One callback for every timeout, so rescheduling allocates nothing.
    timer: Closure<dyn FnMut()>,
    timer_handle: Option<(i32, Millis)>,
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

impl<A: App> Host<A> {
    /// Carries out `actions` and everything they lead to, lets the app
    /// settle, then sets the timer.
    fn run(&mut self, actions: Vec<Action>) {
        self.queue.extend(actions);
        let mut out = Vec::new();
        loop {
            while let Some(action) = self.queue.pop_front() {
                self.carry_out(action, &mut out);
                self.queue.extend(out.drain(..));
            }
            self.app.settle(&mut out);
            if out.is_empty() {
                break;
            }
            self.queue.extend(out.drain(..));
        }
        self.app.settled();
        self.schedule();
    }

    fn carry_out(&mut self, action: Action, out: &mut Vec<Action>) {
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
            Action::Emit(event) => self.app.event(event, out),
        }
    }

    fn open_socket(&mut self) {
        self.close_socket();
        self.generation += 1;
        let generation = self.generation;
        let Ok(ws) = WebSocket::new(&self.url) else {
            let actions = self.app.session().disconnected(now());
            self.queue.extend(actions);
            return;
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        let on_open = self.callback(generation, |host| host.app.session().connected(now()));
        let on_close = self.callback(generation, |host| {
            host.close_socket();
            host.app.session().disconnected(now())
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
                let actions = host.app.session().receive(now(), frame);
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
        mut call: impl FnMut(&mut Host<A>) -> Vec<Action> + 'static,
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
        let free = Closure::once_into_js(move || drop(socket));
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(free.unchecked_ref(), 0);
        }
    }

    fn on_timer(&mut self) {
        self.timer_handle = None;
        let actions = self.app.session().tick(now());
        self.run(actions);
    }

    /// One timeout for the session's next deadline and the app's, whichever
    /// is first. A deadline that moved later keeps the earlier timeout: it
    /// fires, finds nothing due, and the timeout is set again.
    fn schedule(&mut self) {
        let next = match (self.app.session().next_wakeup(), self.app.deadline()) {
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
}

/// `ws://` or `wss://` to the host that served the page.
pub fn relay_url() -> String {
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
pub fn seed() -> u64 {
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
