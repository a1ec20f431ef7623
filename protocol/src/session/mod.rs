//! The client's side of a connection, without I/O.
//!
//! A [`Session`] is fed what happened (the transport opened or closed, a
//! frame arrived, time passed, the user did something) and answers with
//! [`Action`]s for the host to carry out: open or close the transport,
//! transmit a frame, show an event. The host owns the socket and the timer,
//! so the same logic runs in the browser (wasm, no threads, no clock but the
//! one the page hands in) and in the native SDK, and tests drive it with a
//! fake clock.
//!
//! This is where Kefu keeps its promise on the client side: an outbox
//! resends every unacknowledged message on every new link until the relay
//! acknowledges it, and per-conversation cursors hand messages on exactly
//! once, in seq order, asking for a replay when they see a hole. A send the
//! relay defers for its frame budget (`Deferred`) stays in the outbox: it
//! and everything queued after it go out again, in order, once the relay's
//! wait is over.
//!
//! # Driving a session
//!
//! 1. `start`, then carry out the actions: `Connect` means open a transport.
//! 2. Report the transport opening with `connected`, each decoded frame
//!    with `receive`, and the transport closing or failing with
//!    `disconnected`.
//! 3. Call `tick` at `next_wakeup` (re-read it after every call), and
//!    `wake` when the device is back online or the page becomes visible.
//! 4. After carrying out a `Disconnect`, forget that transport entirely: do
//!    not report its close or any frame it still delivers. The session has
//!    already counted it as gone and may be opening the next one.
//!
//! Time is [`Millis`] from any monotonic clock the host has; the session
//! only compares and adds them.

mod backoff;
mod cursors;
mod heartbeat;
mod outbox;
mod rng;

use std::collections::BTreeSet;

use crate::codec::{self, DEFAULT_LIMITS, Frame, PROTOCOL_VERSION};
use crate::frame::{
    Accepted, Ack, Body, ClientFrame, Closing, ConversationUpdate, Credentials, Deferred, ErrorCode, ErrorFrame, Hello,
    Identity, Join, Limits, Message, Pong, Receipt, ReceiptKind, Rejected, ReplayComplete, ReturningVisitor,
    ServerFrame, Typing, TypingNotice, Welcome,
};
use crate::frame::{
    AgentStatus, Attribute, Attributes, Availability, Change, Identify, MailTranscript, Rate, Roster, TranscriptMailed,
    Update, Visit, VisitorProfile,
};
use crate::ids::{ClientMessageId, ConversationId, Seq};

use backoff::Backoff;
use cursors::{Arrival, Cursors};
use heartbeat::Deadline;
use outbox::Outbox;
use rng::Rng;

pub use outbox::Pending;

/// A point in time in milliseconds, from the host's monotonic clock.
///
/// The origin does not matter (page load, process start); only differences
/// do. It is not wall-clock time, so it must not be stored across restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// `ms` later, saturating at the end of time rather than wrapping.
    #[must_use]
    pub fn add_ms(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Timings of a session; `Default` has the values the relay is tuned for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The ceiling of the first reconnect delay; it doubles per attempt.
    pub backoff_initial_ms: u64,
    /// The highest ceiling a reconnect delay can reach.
    pub backoff_max_ms: u64,
    /// A link that stayed live this long counts as healthy: when it drops,
    /// backoff starts over from the first attempt.
    pub stable_after_ms: u64,
    /// From `Connect` to the relay's `Welcome`; past it the attempt is
    /// abandoned and retried, so a half-open socket cannot hang a client.
    pub handshake_timeout_ms: u64,
    /// Follow every conversation the relay announces to an agent (bots,
    /// consoles), instead of only those passed to `Session::join`.
    pub auto_join: bool,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            backoff_initial_ms: 500,
            backoff_max_ms: 20_000,
            stable_after_ms: 10_000,
            handshake_timeout_ms: 10_000,
            auto_join: false,
        }
    }
}

/// What the host must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a new transport to the relay; report it with
    /// `Session::connected` or `Session::disconnected`.
    Connect,
    /// Encode the frame and send it on the open transport.
    Transmit(ClientFrame),
    /// Close the transport and forget it: do not report its close.
    Disconnect,
    /// Tell the application.
    Emit(Event),
}

/// The state of the link to the relay, as the UI shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// A transport is opening, or the hello is waiting for its welcome.
    Connecting,
    /// Welcomed: sends go out at once.
    Live,
    /// The link is down; a reconnect is due at `retry_at`. `attempt` counts
    /// the reconnects scheduled since the last healthy link, from 1.
    Waiting {
        /// Which consecutive attempt the scheduled reconnect is.
        attempt: u32,
        /// When `tick` will open the next transport.
        retry_at: Millis,
    },
    /// Not started, stopped by the user, or refused for good by the relay;
    /// nothing reconnects until `Session::start`.
    Stopped,
}

/// What the application hears about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The link state changed.
    Link(LinkState),
    /// The relay accepted the hello. A visitor's host persists the identity
    /// in it to come back as the same visitor after a reload.
    Welcome(Welcome),
    /// The next message of a conversation: each seq once, in order, no gaps.
    Message(Message),
    /// A pending message is stored; it left the outbox.
    Accepted(Accepted),
    /// A pending message will never be stored; it left the outbox.
    Rejected(Rejected),
    /// A replay of a conversation finished; what follows is live.
    ReplayComplete(ReplayComplete),
    /// Someone's delivered or read mark moved.
    Receipt(Receipt),
    /// Someone started or stopped typing.
    Typing(TypingNotice),
    /// An agent's view of a conversation changed.
    Conversation(ConversationUpdate),
    /// The relay reported an error.
    Error(ErrorFrame),
    /// The relay is closing the link.
    Closing(Closing),
    /// What is known of a visitor changed (agents; a visitor gets its own).
    Visitor(VisitorProfile),
    /// How many agents can answer now (visitors).
    Availability(Availability),
    /// The site's agents and their presence changed (agents).
    Roster(Roster),
    /// The transcript the visitor asked for is queued for its address.
    TranscriptMailed(TranscriptMailed),
}

/// Where the connection stands; `LinkState` is its public face.
#[derive(Debug, Clone)]
enum Phase {
    Stopped,
    Connecting {
        /// Started at `Connect`; never refreshed.
        handshake: Deadline,
        /// Set once `connected` sent the hello: the transport is open.
        hello_sent: bool,
    },
    Live {
        since: Millis,
        /// `None` if the relay announced no heartbeat.
        silence: Option<Deadline>,
    },
    Waiting {
        attempt: u32,
        retry_at: Millis,
    },
}

/// One client's connection to the relay across any number of transports.
/// See the [module documentation](self) for how a host drives it.
#[derive(Debug, Clone)]
pub struct Session {
    credentials: Credentials,
    config: SessionConfig,
    rng: Rng,
    backoff: Backoff,
    phase: Phase,
    outbox: Outbox,
    cursors: Cursors,
    identity: Option<Identity>,
    /// What the relay accepts, from the last welcome.
    limits: Limits,
    /// Followed after this link's hello went out, so its resume missed them;
    /// they are joined once the welcome arrives.
    joined_during_handshake: BTreeSet<ConversationId>,
    /// What a visitor's host said about its visitor, repeated after every
    /// welcome so a page view or `setUser` made offline still arrives.
    profile: ProfileFrames,
    /// The relay deferred a send on this link: it and every entry after it
    /// wait for `retry_at`; nothing is transmitted before then.
    deferral: Option<Deferral>,
}

/// Sends set aside by the relay for its frame budget.
///
/// The relay answers only the first deferred send and ignores every later
/// send of the link until that one comes back, so the entries from `from`
/// to the end of the outbox are exactly those not on their way: resending
/// them in outbox order keeps the order the user typed in.
#[derive(Debug, Clone, Copy)]
struct Deferral {
    from: ClientMessageId,
    retry_at: Millis,
}

/// What the host said about its user: a visitor's latest page, identity
/// and attributes, an agent's status.
#[derive(Debug, Clone, Default)]
struct ProfileFrames {
    visit: Option<Visit>,
    identify: Option<Identify>,
    attributes: Vec<Attribute>,
    status: Option<AgentStatus>,
}

impl ProfileFrames {
    fn frames(&self) -> impl Iterator<Item = ClientFrame> + '_ {
        let attributes = (!self.attributes.is_empty()).then(|| Attributes { set: self.attributes.clone() });
        self.visit
            .clone()
            .map(ClientFrame::Visit)
            .into_iter()
            .chain(self.identify.clone().map(ClientFrame::Identify))
            .chain(attributes.map(ClientFrame::Attributes))
            .chain(self.status.map(ClientFrame::Status))
    }
}

impl Session {
    /// A stopped session; `start` connects it.
    ///
    /// `seed` feeds the backoff jitter and the client message ids. Give
    /// every session fresh entropy (`getrandom`, `crypto.getRandomValues`):
    /// a session that reuses an earlier one's seed reuses its message ids,
    /// and the relay would take its new messages for resends of old ones.
    pub fn new(credentials: Credentials, config: SessionConfig, seed: u64) -> Session {
        let backoff = Backoff::new(config.backoff_initial_ms, config.backoff_max_ms);
        Session {
            credentials,
            config,
            rng: Rng::new(seed),
            backoff,
            phase: Phase::Stopped,
            outbox: Outbox::default(),
            cursors: Cursors::default(),
            identity: None,
            limits: DEFAULT_LIMITS,
            joined_during_handshake: BTreeSet::new(),
            profile: ProfileFrames::default(),
            deferral: None,
        }
    }

    /// Connects a stopped session (new, stopped by the user or refused by
    /// the relay); does nothing to one that is already running.
    pub fn start(&mut self, now: Millis) -> Vec<Action> {
        let mut out = Vec::new();
        if matches!(self.phase, Phase::Stopped) {
            self.backoff.reset();
            self.begin_connect(now, &mut out);
        }
        out
    }

    /// The transport opened: say hello, resuming every followed
    /// conversation from its cursor.
    pub fn connected(&mut self, _now: Millis) -> Vec<Action> {
        let mut out = Vec::new();
        if let Phase::Connecting { hello_sent, .. } = &mut self.phase
            && !*hello_sent
        {
            *hello_sent = true;
            self.joined_during_handshake.clear();
            let hello = Hello {
                version: PROTOCOL_VERSION,
                credentials: self.credentials.clone(),
                resume: self.cursors.resume(),
            };
            out.push(Action::Transmit(ClientFrame::Hello(hello)));
        }
        out
    }

    /// The transport closed or failed to open: schedule a reconnect.
    pub fn disconnected(&mut self, now: Millis) -> Vec<Action> {
        let mut out = Vec::new();
        if matches!(self.phase, Phase::Connecting { .. } | Phase::Live { .. }) {
            self.schedule_reconnect(now, 0, &mut out);
        }
        out
    }

    /// A frame arrived on the open transport.
    pub fn receive(&mut self, now: Millis, frame: ServerFrame) -> Vec<Action> {
        let mut out = Vec::new();
        match &mut self.phase {
            Phase::Connecting { hello_sent: true, .. } => {
                // The relay answers a hello with a welcome or a refusal and
                // sends nothing else before it; anything else is ignored
                // rather than acted on before the link is established.
                let handshake_frame = matches!(
                    frame,
                    ServerFrame::Welcome(_) | ServerFrame::Error(_) | ServerFrame::Closing(_) | ServerFrame::Ping(_)
                );
                if !handshake_frame {
                    return out;
                }
            }
            Phase::Live { silence, .. } => {
                if let Some(silence) = silence {
                    silence.heard(now);
                }
            }
            // No transport is open: a late frame from a closed one.
            Phase::Connecting { .. } | Phase::Waiting { .. } | Phase::Stopped => return out,
        }
        match frame {
            ServerFrame::Welcome(welcome) => self.on_welcome(now, welcome, &mut out),
            ServerFrame::Accepted(accepted) => {
                if self.outbox.remove(accepted.client_id).is_some() {
                    out.push(Action::Emit(Event::Accepted(accepted)));
                }
            }
            ServerFrame::Rejected(rejected) => {
                if self.outbox.remove(rejected.client_id).is_some() {
                    out.push(Action::Emit(Event::Rejected(rejected)));
                }
            }
            ServerFrame::Deferred(deferred) => self.on_deferred(now, deferred),
            ServerFrame::Message(message) => self.on_message(message, &mut out),
            ServerFrame::ReplayComplete(complete) => {
                out.push(Action::Emit(Event::ReplayComplete(complete)));
                if let Some(after) = self.cursors.replay_complete(complete.conversation) {
                    out.push(join_frame(complete.conversation, after));
                }
            }
            ServerFrame::Receipt(receipt) => out.push(Action::Emit(Event::Receipt(receipt))),
            ServerFrame::Typing(typing) => out.push(Action::Emit(Event::Typing(typing))),
            ServerFrame::Conversation(update) => {
                out.push(Action::Emit(Event::Conversation(update)));
                if self.config.auto_join {
                    self.follow(update.conversation, &mut out);
                }
            }
            ServerFrame::Ping(ping) => {
                out.push(Action::Transmit(ClientFrame::Pong(Pong { nonce: ping.nonce })));
            }
            ServerFrame::Pong(_) => {}
            ServerFrame::Visitor(profile) => out.push(Action::Emit(Event::Visitor(profile))),
            ServerFrame::Availability(availability) => out.push(Action::Emit(Event::Availability(availability))),
            ServerFrame::Roster(roster) => out.push(Action::Emit(Event::Roster(roster))),
            ServerFrame::TranscriptMailed(mailed) => out.push(Action::Emit(Event::TranscriptMailed(mailed))),
            ServerFrame::Error(error) => {
                let fatal = !error.reconnect;
                out.push(Action::Emit(Event::Error(error)));
                if fatal {
                    self.stop_link(&mut out);
                }
            }
            ServerFrame::Closing(closing) => {
                out.push(Action::Emit(Event::Closing(closing)));
                match closing.reconnect_after_ms {
                    Some(ms) => {
                        out.push(Action::Disconnect);
                        self.schedule_reconnect(now, u64::from(ms), &mut out);
                    }
                    None => self.stop_link(&mut out),
                }
            }
        }
        out
    }

    /// Fires the timer that is due, if any: a reconnect, a handshake that
    /// took too long, or a heartbeat deadline.
    pub fn tick(&mut self, now: Millis) -> Vec<Action> {
        let mut out = Vec::new();
        let expired = match &self.phase {
            Phase::Stopped => false,
            Phase::Waiting { retry_at, .. } => {
                if now >= *retry_at {
                    self.begin_connect(now, &mut out);
                }
                false
            }
            Phase::Connecting { handshake, .. } => handshake.expired(now),
            Phase::Live { silence, .. } => silence.is_some_and(|s| s.expired(now)),
        };
        if expired {
            out.push(Action::Disconnect);
            self.schedule_reconnect(now, 0, &mut out);
        } else if let Some(deferral) = self.deferral
            && self.is_live()
            && now >= deferral.retry_at
        {
            self.deferral = None;
            // From the deferred entry on; if it left the outbox meanwhile
            // (a stale deferral of an entry stored since), everything held
            // behind it goes: resends are idempotent, a held entry left
            // in the outbox would go out after newer ones.
            let from = Some(deferral.from).filter(|&from| self.outbox.contains(from));
            let resend = self.outbox.iter().skip_while(|pending| from.is_some_and(|from| pending.client_id != from));
            out.extend(resend.map(|pending| Action::Transmit(ClientFrame::Send(pending.to_send()))));
        }
        out
    }

    /// When `tick` must be called next; `None` when no timer runs.
    pub fn next_wakeup(&self) -> Option<Millis> {
        match &self.phase {
            Phase::Stopped => None,
            Phase::Connecting { handshake, .. } => Some(handshake.expires_at()),
            Phase::Live { silence, .. } => {
                let resend = self.deferral.map(|deferral| deferral.retry_at);
                silence.map(|s| s.expires_at()).into_iter().chain(resend).min()
            }
            Phase::Waiting { retry_at, .. } => Some(*retry_at),
        }
    }

    /// The device is back online or the page became visible: reconnect now
    /// instead of at the end of the backoff. A live link is left alone,
    /// unless its deadline passed while the page slept.
    pub fn wake(&mut self, now: Millis) -> Vec<Action> {
        let mut out = self.tick(now);
        if matches!(self.phase, Phase::Waiting { .. }) {
            self.begin_connect(now, &mut out);
        }
        out
    }

    /// Queues a message in the outbox and transmits it if the link is live;
    /// otherwise it goes out on the next welcome. Returns the id that the
    /// `Accepted` or `Rejected` for it will carry.
    ///
    /// A message over the relay's limits is rejected at once (an
    /// `Event::Rejected`) and never queued: resent on every reconnect, it
    /// would be refused every time, or have the link closed every time.
    pub fn send(&mut self, now: Millis, conversation: ConversationId, body: Body) -> (ClientMessageId, Vec<Action>) {
        let client_id = self.fresh_client_id();
        let out = self.enqueue(Pending { client_id, conversation, body, queued_at: now });
        (client_id, out)
    }

    /// Puts back a message that an earlier session (before a page reload)
    /// left unacknowledged, with its original id so the relay stores it
    /// once. Does nothing if that id is already pending.
    pub fn requeue(
        &mut self,
        now: Millis,
        client_id: ClientMessageId,
        conversation: ConversationId,
        body: Body,
    ) -> Vec<Action> {
        if self.outbox.contains(client_id) {
            return Vec::new();
        }
        self.enqueue(Pending { client_id, conversation, body, queued_at: now })
    }

    /// Follows a conversation from its cursor (seq 0 if new): joined now if
    /// live, else resumed by the next hello. Following one already followed
    /// does nothing.
    ///
    /// A visitor's host that persisted the conversation from an earlier
    /// welcome joins it before `start`, so the first hello replays its
    /// history.
    pub fn join(&mut self, _now: Millis, conversation: ConversationId) -> Vec<Action> {
        let mut out = Vec::new();
        self.follow(conversation, &mut out);
        out
    }

    /// Sends a delivered or read mark if live. Marks are not queued: the
    /// next one covers everything before it.
    pub fn ack(&mut self, conversation: ConversationId, kind: ReceiptKind, up_to: Seq) -> Vec<Action> {
        self.transmit_if_live(ClientFrame::Ack(Ack { conversation, kind, up_to }))
    }

    /// Sends a typing indicator if live. Not queued: a stale one is wrong.
    /// A draft over the body limit is left out, since the relay would
    /// refuse the whole frame.
    pub fn typing(&mut self, conversation: ConversationId, active: bool, draft: Option<String>) -> Vec<Action> {
        let max = self.limits.max_body_bytes as usize;
        let draft = draft.filter(|draft| draft.len() <= max);
        self.transmit_if_live(ClientFrame::Typing(Typing { conversation, active, draft }))
    }

    /// The visitor is on a new page. Kept and sent again after every
    /// reconnect, so the relay always ends up with the latest.
    ///
    /// Profile frames over the relay's limits are never sent: the relay
    /// would close the link for good, and they would go out again after
    /// every welcome.
    pub fn visit(&mut self, visit: Visit) -> Vec<Action> {
        self.profile.visit = Some(visit.clone());
        self.transmit_profile(ClientFrame::Visit(visit))
    }

    /// The site says who the visitor is (`setUser`). Kept like `visit`.
    pub fn identify(&mut self, identify: Identify) -> Vec<Action> {
        self.profile.identify = Some(identify.clone());
        self.transmit_profile(ClientFrame::Identify(identify))
    }

    /// Sets custom attributes (`setAttributes`); later values of a key
    /// replace earlier ones. Kept like `visit`; a value over the body limit
    /// is left out, like a typing draft, so the others still arrive.
    pub fn set_attributes(&mut self, mut set: Vec<Attribute>) -> Vec<Action> {
        let max = self.limits.max_body_bytes as usize;
        set.retain(|attribute| attribute.value.len() <= max);
        if set.is_empty() {
            return Vec::new();
        }
        for attribute in &set {
            self.profile.attributes.retain(|kept| kept.key != attribute.key);
            self.profile.attributes.push(attribute.clone());
        }
        self.transmit_profile(ClientFrame::Attributes(Attributes { set }))
    }

    /// An agent changes a conversation (take, transfer, close, reopen).
    /// Sent only if live, never queued: acting on a conversation seen
    /// before a drop could undo what someone else did since. The outcome
    /// arrives as a `Conversation` update, or an `Error` with `Conflict`.
    pub fn update(&mut self, conversation: ConversationId, change: Change) -> Vec<Action> {
        let frame = ClientFrame::Update(Update { conversation, change });
        if self.fits(&frame) { self.transmit_if_live(frame) } else { Vec::new() }
    }

    /// The visitor rates a closed conversation (the satisfaction survey).
    /// Sent only if live, never queued: the relay's `Rated` line is the
    /// answer, and a visitor without it can press again.
    pub fn rate(&mut self, conversation: ConversationId, score: u8, comment: String) -> Vec<Action> {
        let frame = ClientFrame::Rate(Rate { conversation, score, comment });
        if self.fits(&frame) { self.transmit_if_live(frame) } else { Vec::new() }
    }

    /// The visitor asks for the conversation's transcript by mail. Sent
    /// only if live, never queued, like [`Session::rate`]: the relay's
    /// [`Event::TranscriptMailed`] (or its error) is the answer.
    pub fn mail_transcript(&mut self, conversation: ConversationId) -> Vec<Action> {
        self.transmit_if_live(ClientFrame::MailTranscript(MailTranscript { conversation }))
    }

    /// An agent is online or away. Kept like `visit` and sent again after
    /// every reconnect.
    pub fn set_status(&mut self, status: AgentStatus) -> Vec<Action> {
        self.profile.status = Some(status);
        self.transmit_profile(ClientFrame::Status(status))
    }

    /// The user closed the chat: disconnect and do not reconnect. The
    /// outbox is kept; `pending` still lists what never got through.
    pub fn stop(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        self.stop_link(&mut out);
        out
    }

    /// The link state now.
    pub fn link(&self) -> LinkState {
        match &self.phase {
            Phase::Stopped => LinkState::Stopped,
            Phase::Connecting { .. } => LinkState::Connecting,
            Phase::Live { .. } => LinkState::Live,
            Phase::Waiting { attempt, retry_at } => LinkState::Waiting { attempt: *attempt, retry_at: *retry_at },
        }
    }

    /// Who the relay said this client is in the last welcome.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// What the next hello presents. After a visitor's first welcome it
    /// carries the visitor's id and token, so reconnects resume the same
    /// visitor.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The last seq held of a conversation with nothing missing before it;
    /// `Seq::ZERO` if none or not followed.
    pub fn cursor(&self, conversation: ConversationId) -> Seq {
        self.cursors.cursor(conversation)
    }

    /// Whether messages of the conversation are being followed.
    pub fn is_following(&self, conversation: ConversationId) -> bool {
        self.cursors.is_followed(conversation)
    }

    /// Messages not yet acknowledged by the relay, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &Pending> {
        self.outbox.iter()
    }

    /// Adds a message to the outbox, and transmits it if the link is live.
    fn enqueue(&mut self, pending: Pending) -> Vec<Action> {
        if let Some(rejected) = self.refusal(&pending) {
            return vec![Action::Emit(Event::Rejected(rejected))];
        }
        let mut out = Vec::new();
        // While a deferral waits, a new entry waits behind the deferred
        // ones and goes out with them.
        if self.is_live() && self.deferral.is_none() {
            out.push(Action::Transmit(ClientFrame::Send(pending.to_send())));
        }
        self.outbox.push(pending);
        out
    }

    /// The relay set aside `deferred` and every send after it on this link.
    fn on_deferred(&mut self, now: Millis, deferred: Deferred) {
        if !self.outbox.contains(deferred.client_id) {
            return;
        }
        let retry_at = now.add_ms(u64::from(deferred.retry_after_ms));
        self.deferral = Some(Deferral { from: deferred.client_id, retry_at });
    }

    /// Why the relay would refuse a message for its size, if it would.
    fn refusal(&self, pending: &Pending) -> Option<Rejected> {
        let body = pending.body.len_bytes();
        let (code, text) = if body > self.limits.max_body_bytes as usize {
            (ErrorCode::BodyTooLarge, format!("messages are limited to {} bytes", self.limits.max_body_bytes))
        } else if codec::encode(&ClientFrame::Send(pending.to_send())).len() > self.limits.max_frame_bytes as usize {
            (ErrorCode::FrameTooLarge, format!("frames are limited to {} bytes", self.limits.max_frame_bytes))
        } else {
            return None;
        };
        Some(Rejected { conversation: pending.conversation, client_id: pending.client_id, code, text })
    }

    fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Live { .. })
    }

    fn transmit_if_live(&self, frame: ClientFrame) -> Vec<Action> {
        if self.is_live() { vec![Action::Transmit(frame)] } else { Vec::new() }
    }

    fn transmit_profile(&self, frame: ClientFrame) -> Vec<Action> {
        if self.fits(&frame) { self.transmit_if_live(frame) } else { Vec::new() }
    }

    /// Whether the relay's decoder takes `frame` under the last limits.
    fn fits(&self, frame: &ClientFrame) -> bool {
        frame.largest_text() <= self.limits.max_body_bytes as usize
            && codec::encode(frame).len() <= self.limits.max_frame_bytes as usize
    }

    fn set_phase(&mut self, phase: Phase, out: &mut Vec<Action>) {
        let before = self.link();
        self.phase = phase;
        let after = self.link();
        if after != before {
            out.push(Action::Emit(Event::Link(after)));
        }
    }

    fn begin_connect(&mut self, now: Millis, out: &mut Vec<Action>) {
        out.push(Action::Connect);
        let phase =
            Phase::Connecting { handshake: Deadline::new(self.config.handshake_timeout_ms, now), hello_sent: false };
        self.set_phase(phase, out);
    }

    /// The transport is gone (or being closed by an action already in
    /// `out`): wait `extra_ms` plus a backoff delay, then reconnect.
    fn schedule_reconnect(&mut self, now: Millis, extra_ms: u64, out: &mut Vec<Action>) {
        if let Phase::Live { since, .. } = self.phase
            && now.since(since) >= self.config.stable_after_ms
        {
            self.backoff.reset();
        }
        self.cursors.new_link();
        self.joined_during_handshake.clear();
        self.deferral = None;
        let delay = self.backoff.next_delay(&mut self.rng);
        let phase = Phase::Waiting { attempt: self.backoff.attempt(), retry_at: now.add_ms(extra_ms).add_ms(delay) };
        self.set_phase(phase, out);
    }

    fn stop_link(&mut self, out: &mut Vec<Action>) {
        if matches!(self.phase, Phase::Connecting { .. } | Phase::Live { .. }) {
            out.push(Action::Disconnect);
        }
        self.cursors.new_link();
        self.joined_during_handshake.clear();
        self.deferral = None;
        self.set_phase(Phase::Stopped, out);
    }

    fn on_welcome(&mut self, now: Millis, welcome: Welcome, out: &mut Vec<Action>) {
        if !matches!(self.phase, Phase::Connecting { .. }) {
            // The relay welcomes once per link; a second one changes nothing.
            return;
        }
        let deadline_ms = welcome.heartbeat.deadline_ms();
        self.set_phase(
            Phase::Live {
                since: now,
                // A relay that announces no interval does not ping; a zero
                // deadline would otherwise drop every link at once.
                silence: (deadline_ms > 0).then(|| Deadline::new(deadline_ms, now)),
            },
            out,
        );
        if let Identity::Visitor { visitor, token, conversation, .. } = &welcome.identity {
            if let Credentials::Visitor { returning, .. } = &mut self.credentials {
                *returning = Some(ReturningVisitor { visitor: *visitor, token: token.clone() });
            }
            // The relay subscribes a visitor to its own conversation and
            // replays it from the resumed cursor (or the start), unasked.
            self.cursors.follow(*conversation);
        }
        self.identity = Some(welcome.identity.clone());
        self.limits = welcome.limits;
        out.push(Action::Emit(Event::Welcome(welcome)));

        // Limits may have shrunk since these were queued.
        let refused: Vec<Rejected> = self.outbox.iter().filter_map(|pending| self.refusal(pending)).collect();
        for rejected in refused {
            self.outbox.remove(rejected.client_id);
            out.push(Action::Emit(Event::Rejected(rejected)));
        }

        for conversation in std::mem::take(&mut self.joined_during_handshake) {
            let after = self.cursors.cursor(conversation);
            self.cursors.expect_replay(conversation);
            out.push(join_frame(conversation, after));
        }
        for pending in self.outbox.iter() {
            out.push(Action::Transmit(ClientFrame::Send(pending.to_send())));
        }
        // Limits may have shrunk here too.
        out.extend(self.profile.frames().filter(|frame| self.fits(frame)).map(Action::Transmit));
    }

    fn on_message(&mut self, message: Message, out: &mut Vec<Action>) {
        let conversation = message.conversation;
        match self.cursors.offer(conversation, message.prev, message.seq) {
            Arrival::Deliver => out.push(Action::Emit(Event::Message(message))),
            Arrival::Duplicate => {}
            Arrival::Gap { join_after } => {
                if let Some(after) = join_after {
                    out.push(join_frame(conversation, after));
                }
            }
        }
    }

    /// Starts following a conversation and tells the relay when it can hear.
    fn follow(&mut self, conversation: ConversationId, out: &mut Vec<Action>) {
        if !self.cursors.follow(conversation) {
            return;
        }
        match &self.phase {
            Phase::Live { .. } => {
                self.cursors.expect_replay(conversation);
                out.push(join_frame(conversation, Seq::ZERO));
            }
            Phase::Connecting { hello_sent: true, .. } => {
                self.joined_during_handshake.insert(conversation);
            }
            // The next hello's resume includes it.
            Phase::Connecting { .. } | Phase::Waiting { .. } | Phase::Stopped => {}
        }
    }

    fn fresh_client_id(&mut self) -> ClientMessageId {
        loop {
            let id = ClientMessageId(self.rng.next_u128());
            // 2^-128 odds, but a clash would merge two messages into one.
            if !self.outbox.contains(id) {
                return id;
            }
        }
    }
}

fn join_frame(conversation: ConversationId, after: Seq) -> Action {
    Action::Transmit(ClientFrame::Join(Join { conversation, after }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_saturate_instead_of_wrapping() {
        assert_eq!(Millis(5).add_ms(10), Millis(15));
        assert_eq!(Millis(u64::MAX - 1).add_ms(10), Millis(u64::MAX));
        assert_eq!(Millis(15).since(Millis(5)), 10);
        assert_eq!(Millis(5).since(Millis(15)), 0);
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let config = SessionConfig::default();
        assert_eq!(
            (config.backoff_initial_ms, config.backoff_max_ms, config.stable_after_ms, config.handshake_timeout_ms),
            (500, 20_000, 10_000, 10_000)
        );
        assert!(!config.auto_join);
    }
}
