//! One client's connection after the handshake: replay, live traffic,
//! heartbeats and closing.
//!
//! Replay and live fan-out meet here. Following a conversation registers in
//! the hub first and reads the store second, so nothing committed in between
//! is missed; `positions` remembers the last seq this connection passed per
//! conversation, so what arrives both ways is sent once, and a live message
//! that jumps ahead of it makes the connection read the gap from the store
//! first. Visitors are not sent private notes: each message carries the
//! seq of the one before it that this client was sent (`prev`), so the
//! client sees one unbroken chain either way.
//!
//! - this file: the connection's life (open, start, the loop, finish) and
//!   the dispatch of each incoming frame;
//! - `replay`: following a conversation, replay and live merged;
//! - `sends`: sends, their acknowledgements, receipts, typing;
//! - `profile`: what a visitor reports of itself;
//! - `agent`: take, transfer, close, reopen, status, and the checks that
//!   the agent may still do them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::WebSocket;
use futures_util::stream::FuturesOrdered;
use kefu_protocol::frame::{
    AgentStatus, CloseReason, Closing, ConversationStatus, ConversationUpdate, Cursor, ErrorCode, ErrorFrame, Join,
    Limits, Ping, Pong,
};
use kefu_protocol::ids::{ClientMessageId, ConversationId, Seq, SessionId, SiteId};
use kefu_protocol::{ClientFrame, DEFAULT_LIMITS, ServerFrame};
use tokio::time::Instant;

use self::sends::next_append;
use super::handshake::{self, Established, Peer};
use super::socket::{self, Incoming};
use crate::hub::{Audience, Interrupted, Login, Mailbox, Published, Revoked};
use crate::limits::{ClientAddress, FrameLimit, Verdict};
use crate::metrics::{self, Limit};
use crate::state::AppState;
use crate::store::{self, AppendTicket};
use crate::team;

mod agent;
mod profile;
mod replay;
mod sends;

/// Open conversations an agent's connection is sent when it starts: the
/// most recently active ones. A site may have thousands open; the console
/// pages back through the rest over HTTP (`GET /api/conversations?status=open`),
/// and live updates of any of them still arrive.
const AGENT_FIRST_PAGE: u32 = 100;

/// Sends waiting for their commit, per connection. Past this the relay
/// stops reading the socket until commits catch up (back pressure).
const MAX_APPENDS_IN_FLIGHT: usize = 256;

/// WebSocket close codes (RFC 6455).
mod close_code {
    pub(super) const POLICY: u16 = 1008;
    pub(super) const TOO_BIG: u16 = 1009;
    pub(super) const ERROR: u16 = 1011;
    pub(super) const RESTART: u16 = 1012;
    pub(super) const TRY_LATER: u16 = 1013;
}

/// Serves one WebSocket from hello to close.
///
/// The big steps (handshake, start, each frame's handling, finish) are
/// boxed: awaited inline, the largest of them would size this task's
/// future, and so every idle connection (9.3 KiB, measured with heaptrack).
/// For the same reason this is not an `async fn`: its arguments, and the
/// parts a `Connection` is built from, would keep their own room in the
/// future for the connection's whole life though they are moved into the
/// `Connection` at once (1.3 KiB more). So `open` runs boxed, and what an
/// idle connection keeps is the `Connection` and what `run` waits on.
///
/// An established connection logs one line (info) when it opens and one
/// when it closes, with why: who (visitor or agent), of which site, from
/// where; never what it said nor its credentials.
pub(super) fn serve(
    socket: WebSocket,
    state: AppState,
    upgrade: handshake::Upgrade,
    address: ClientAddress,
) -> impl Future<Output = ()> {
    let opening = Box::pin(open(socket, state, upgrade));
    async move {
        let Some((session, mut connection, resume)) = opening.await else {
            return;
        };
        let who = &connection.peer;
        tracing::info!(%session, role = who.role(), site = %who.site(), peer = %address, "websocket open");
        let agent = match &connection.peer {
            Peer::Agent { agent, .. } => Some(agent.site),
            Peer::Visitor { .. } => None,
        };
        let role = if agent.is_some() { metrics::Role::Agent } else { metrics::Role::Visitor };
        let counted = connection.state.metrics.connection_opened(role);
        let end = match Box::pin(connection.start(resume)).await {
            Ok(()) => connection.run().await,
            Err(end) => end,
        };
        let reason = end.reason();
        Box::pin(connection.finish(end)).await;
        let who = &connection.peer;
        tracing::info!(%session, role = who.role(), site = %who.site(), peer = %address, %reason, "websocket closed");
        let state = connection.state.clone();
        drop(connection);
        drop(counted);
        if let Some(site) = agent {
            // The mailbox is gone, so the agent counts as gone if this was
            // its last console.
            if let Err(error) = Box::pin(team::publish_roster(&state, site)).await {
                tracing::warn!(%error, "could not publish the roster");
            }
        }
    }
}

/// The handshake and, if the client is let in, its connection and the
/// conversations it asked to resume.
async fn open(
    mut socket: WebSocket,
    state: AppState,
    upgrade: handshake::Upgrade,
) -> Option<(SessionId, Connection, Vec<Cursor>)> {
    let session = state.next_session();
    // Bodies are checked by the connection rather than the codec, so an
    // oversized send is answered with `Rejected` for its client id.
    let limits = Limits { max_body_bytes: DEFAULT_LIMITS.max_frame_bytes, ..DEFAULT_LIMITS };
    let write_timeout = Duration::from_millis(state.config.write_timeout_ms);
    let handshake = Box::pin(handshake::handshake(&mut socket, &state, session, &limits, upgrade));
    let established = match handshake.await {
        Ok(established) => established,
        Err(handshake::Refused(error)) => {
            if let Some(error) = error {
                tracing::debug!(?session, code = ?error.code, "handshake refused");
                let code =
                    if error.code == ErrorCode::FrameTooLarge { close_code::TOO_BIG } else { close_code::POLICY };
                let _ = socket::write_frame(&mut socket, &ServerFrame::Error(error), write_timeout).await;
                socket::close(&mut socket, code, "refused", write_timeout).await;
            }
            return None;
        }
    };
    let Established { peer, version, resume, unsaved } = established;
    let mut mailbox = state.hub.mailbox(session, state.config.outbound_queue);
    if let Peer::Agent { agent, token_hash } = &peer {
        mailbox.sign_in(Login { agent: agent.id, token_hash: token_hash.clone() });
        mailbox.attend(agent.site, agent.id, AgentStatus::Away);
    }
    let frame_limit = FrameLimit::new(state.config.frames_per_second, state.config.frame_burst)
        .counted_in(state.metrics.refusals(Limit::Frames));
    let connection = Connection {
        state,
        socket,
        limits,
        write_timeout,
        frame_limit,
        peer,
        version,
        mailbox,
        positions: HashMap::new(),
        conversations: HashMap::new(),
        appends: None,
        deferred: None,
        unsaved,
        last_heard: Instant::now(),
        nonce: 0,
    };
    Some((session, connection, resume))
}

/// How far a connection has got in a conversation.
#[derive(Debug, Clone, Copy, Default)]
struct Position {
    /// The last seq passed on or skipped (a note, for a visitor).
    passed: Seq,
    /// The last seq actually sent: the next message's `prev`.
    sent: Seq,
}

/// What a conversation means to this connection, cached after the first
/// access check.
#[derive(Debug, Clone, Copy)]
struct Access {
    site: SiteId,
}

/// Why a connection ends.
#[derive(Debug)]
enum End {
    /// The client closed or the transport broke: nothing more to say.
    Gone,
    /// Tell the client why, then close.
    Close(Closing, u16, &'static str),
    /// Report the error, then close.
    Fail(ErrorFrame, Closing, u16),
}

impl End {
    /// Why, for the log: the text sent with the close, or the error's.
    fn reason(&self) -> Cow<'static, str> {
        match self {
            End::Gone => "client left".into(),
            End::Close(_, _, text) => (*text).into(),
            End::Fail(error, _, _) => format!("{:?}: {}", error.code, error.text).into(),
        }
    }

    fn protocol(code: ErrorCode, text: impl Into<String>) -> End {
        let close = if code == ErrorCode::FrameTooLarge { close_code::TOO_BIG } else { close_code::POLICY };
        End::Fail(
            ErrorFrame { code, text: text.into(), reconnect: false },
            Closing { reason: CloseReason::ProtocolViolation, reconnect_after_ms: None },
            close,
        )
    }

    /// The client went on flooding after its frames were refused.
    fn flood() -> End {
        End::Fail(
            ErrorFrame {
                code: ErrorCode::RateLimited,
                text: "too many frames, long after being told to slow down".into(),
                reconnect: true,
            },
            Closing { reason: CloseReason::ProtocolViolation, reconnect_after_ms: Some(10_000) },
            close_code::POLICY,
        )
    }

    /// The agent's session ended or its rights changed: say which, so a
    /// signed-out client stops and one with new rights reconnects.
    fn revoked(why: Revoked) -> End {
        let (reason, reconnect_after_ms, text) = match why {
            Revoked::SignedOut => (CloseReason::SignedOut, None, "signed out"),
            Revoked::AccessChanged => (CloseReason::AccessChanged, Some(0), "access changed"),
        };
        End::Close(Closing { reason, reconnect_after_ms }, close_code::POLICY, text)
    }

    fn store(error: &store::Error) -> End {
        tracing::error!(%error, "store failed; closing the connection so the client resends");
        End::Fail(
            ErrorFrame {
                code: ErrorCode::Internal,
                text: "the relay could not store or read messages; reconnect and resend".into(),
                reconnect: true,
            },
            Closing { reason: CloseReason::ShuttingDown, reconnect_after_ms: Some(1_000) },
            close_code::ERROR,
        )
    }
}

impl From<socket::WriteFailed> for End {
    fn from(_: socket::WriteFailed) -> End {
        End::Gone
    }
}

struct Connection {
    state: AppState,
    socket: WebSocket,
    limits: Limits,
    write_timeout: Duration,
    frame_limit: FrameLimit,
    peer: Peer,
    /// The peer's protocol version: messages it could not decode are
    /// sent as it can read them (`kefu_protocol::compat`).
    version: u16,
    mailbox: Mailbox,
    /// Per followed conversation, how far this connection has got.
    positions: HashMap<ConversationId, Position>,
    /// Conversations this peer may use, with what the checks need.
    conversations: HashMap<ConversationId, Access>,
    /// Sends handed to the store, answered in the order they were made.
    /// Made by the first send: it allocates, and most connections of
    /// visitors only listen.
    appends: Option<FuturesOrdered<AppendTicket>>,
    /// The send answered with `Deferred`: until it comes back, this
    /// connection's other sends are set aside unanswered (see `sends`).
    deferred: Option<ClientMessageId>,
    /// A visitor that has not written yet: its rows are made by its first
    /// send (`save_visitor`).
    unsaved: Option<Box<handshake::Unsaved>>,
    last_heard: Instant,
    nonce: u64,
}

impl Connection {
    /// Replays what the client asked for in its hello and, for agents,
    /// lists the site's open conversations.
    async fn start(&mut self, resume: Vec<Cursor>) -> Result<(), End> {
        match self.peer.clone() {
            Peer::Visitor { site, conversation, .. } => {
                self.mailbox.follow_site(site, Audience::Visitors);
                let availability = self.state.hub.availability(site);
                self.write(&ServerFrame::Availability(availability)).await?;
                self.conversations.insert(conversation, Access { site });
                let after = resume
                    .iter()
                    .find(|cursor| cursor.conversation == conversation)
                    .map_or(Seq::ZERO, |cursor| cursor.seq);
                self.follow(conversation, after).await?;
            }
            Peer::Agent { agent, .. } => {
                // Signed in to the hub (in `open`) before this check, so a
                // revocation made since the handshake is either seen here
                // or reaches the mailbox.
                self.recheck_agent().await?;
                // Register before listing, so a conversation opened in
                // between is announced rather than missed.
                self.mailbox.follow_site(agent.site, Audience::Agents);
            }
        }
        for cursor in resume {
            if !self.mailbox.follows(cursor.conversation) {
                self.join(Join { conversation: cursor.conversation, after: cursor.seq }).await?;
            }
        }
        if let Peer::Agent { agent, .. } = self.peer.clone() {
            let first_page = store::ConversationPage {
                status: Some(ConversationStatus::Open),
                before: None,
                before_id: None,
                limit: AGENT_FIRST_PAGE,
            };
            let open = self.state.store.conversation_page(agent.site, &first_page).await.map_err(|e| End::store(&e))?;
            // Oldest of the page first, as they happened.
            for summary in open.into_iter().rev() {
                let update = ConversationUpdate {
                    conversation: summary.id,
                    visitor: summary.visitor,
                    status: summary.status,
                    last_seq: summary.last_seq,
                    updated_at: summary.updated_at,
                    assignee: summary.assignee,
                    waiting_since: summary.waiting_since,
                };
                self.write(&ServerFrame::Conversation(update)).await?;
            }
            // Everyone, this console included, hears that the agent is here;
            // and an agent arriving may take a waiting chat.
            team::publish_roster(&self.state, agent.site).await.map_err(|e| End::store(&e))?;
            self.state.connections.spawn(team::dispatch_logged(self.state.clone(), agent.site));
        }
        Ok(())
    }

    async fn run(&mut self) -> End {
        let heartbeat = Duration::from_millis(u64::from(self.state.config.heartbeat_interval_ms));
        let deadline = heartbeat + Duration::from_millis(u64::from(self.state.config.heartbeat_grace_ms));
        let mut pings = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        let shutdown = self.state.shutdown.clone();
        loop {
            // Frames are fed unflushed while more wait in the mailbox, so a
            // burst of fan-out leaves in a few writes rather than one
            // system call per frame; nothing fed waits past this point.
            if !self.mailbox.has_queued()
                && let Err(failed) = socket::flush(&mut self.socket, self.write_timeout).await
            {
                return failed.into();
            }
            let result = tokio::select! {
                biased;
                () = shutdown.cancelled() => return End::Close(
                    Closing { reason: CloseReason::ShuttingDown, reconnect_after_ms: Some(0) },
                    close_code::RESTART,
                    "relay restarting",
                ),
                () = tokio::time::sleep_until(self.last_heard + deadline) => return End::Close(
                    Closing { reason: CloseReason::HeartbeatTimeout, reconnect_after_ms: Some(0) },
                    close_code::POLICY,
                    "heartbeat timeout",
                ),
                Some(appended) = next_append(&mut self.appends), if self.appends_in_flight() > 0 => {
                    Box::pin(self.on_appended(appended)).await
                }
                frame = self.mailbox.recv() => match frame {
                    Ok(frame) => Box::pin(self.deliver(&frame)).await,
                    Err(Interrupted::TooSlow) => {
                        self.state.metrics.too_slow_disconnect();
                        return End::Close(
                            Closing { reason: CloseReason::TooSlow, reconnect_after_ms: Some(1_000) },
                            close_code::TRY_LATER,
                            "too slow",
                        );
                    }
                    Err(Interrupted::Revoked(why)) => return End::revoked(why),
                },
                incoming = socket::read_frame(&mut self.socket, &self.limits),
                    if self.appends_in_flight() < MAX_APPENDS_IN_FLIGHT => {
                    self.last_heard = Instant::now();
                    Box::pin(self.on_incoming(incoming)).await
                }
                _ = pings.tick() => Box::pin(self.heartbeat()).await,
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    async fn finish(&mut self, end: End) {
        self.settle_appends(!matches!(end, End::Gone)).await;
        match end {
            End::Gone => {}
            End::Close(closing, code, reason) => {
                let _ = self.write(&ServerFrame::Closing(closing)).await;
                socket::close(&mut self.socket, code, reason, self.write_timeout).await;
            }
            End::Fail(error, closing, code) => {
                let _ = self.write(&ServerFrame::Error(error)).await;
                let _ = self.write(&ServerFrame::Closing(closing)).await;
                socket::close(&mut self.socket, code, "error", self.write_timeout).await;
            }
        }
    }

    /// Pings the client and, for an agent, checks its session is still
    /// good: the revocation that should have closed this connection may
    /// have been lost with a Redis outage.
    async fn heartbeat(&mut self) -> Result<(), End> {
        self.recheck_agent().await?;
        self.nonce += 1;
        self.write(&ServerFrame::Ping(Ping { nonce: self.nonce })).await
    }

    /// Feeds a frame to the socket; `run` flushes before it waits, and
    /// `finish` by closing.
    async fn write(&mut self, frame: &ServerFrame) -> Result<(), End> {
        Ok(socket::feed_frame(&mut self.socket, frame, self.write_timeout).await?)
    }

    /// Feeds a frame from the hub unchanged, in the bytes it shares with
    /// every other recipient.
    async fn write_published(&mut self, published: &Published) -> Result<(), End> {
        Ok(socket::feed_published(&mut self.socket, published, self.write_timeout).await?)
    }

    async fn on_incoming(&mut self, incoming: Incoming) -> Result<(), End> {
        let frame = match incoming {
            Incoming::Frame(frame) => frame,
            Incoming::Closed => return Err(End::Gone),
            Incoming::Text => {
                return Err(End::protocol(ErrorCode::Malformed, "frames are binary (postcard), not text"));
            }
            Incoming::Invalid(error, _) => return Err(End::protocol(error.code(), error.to_string())),
        };
        if let ClientFrame::Send(send) = &frame
            && self.set_aside(send)
        {
            return Ok(());
        }
        // Heartbeat answers are never refused: that would end the link.
        if !matches!(frame, ClientFrame::Pong(_)) {
            match self.frame_limit.check() {
                Verdict::Pass => {}
                Verdict::Refuse { retry_after } => return self.rate_limited(&frame, retry_after).await,
                Verdict::Close => return Err(End::flood()),
            }
        }
        match frame {
            ClientFrame::Send(send) => self.on_send(send).await,
            ClientFrame::Join(join) => self.join(join).await,
            ClientFrame::Ack(ack) => self.on_ack(ack).await,
            ClientFrame::Typing(typing) => self.on_typing(typing).await,
            ClientFrame::Ping(Ping { nonce }) => self.write(&ServerFrame::Pong(Pong { nonce })).await,
            ClientFrame::Pong(_) => Ok(()),
            ClientFrame::Visit(visit) => self.on_visit(visit).await,
            ClientFrame::Identify(identify) => self.on_identify(identify).await,
            ClientFrame::Attributes(attributes) => self.on_attributes(attributes).await,
            ClientFrame::Update(update) => self.on_update(update).await,
            ClientFrame::Status(status) => self.on_status(status).await,
            ClientFrame::Rate(rate) => self.on_rate(rate).await,
            ClientFrame::MailTranscript(ask) => self.on_mail_transcript(ask).await,
            ClientFrame::Hello(_) => Err(End::protocol(ErrorCode::HelloExpected, "hello was already said")),
        }
    }

    /// Checks that this peer may use `conversation`, caching the answer.
    async fn access(&mut self, conversation: ConversationId) -> Result<Option<Access>, End> {
        if let Some(access) = self.conversations.get(&conversation) {
            return Ok(Some(*access));
        }
        let found = self.state.store.conversation(self.peer.site(), conversation).await.map_err(|e| End::store(&e))?;
        let Some(found) = found else {
            return Ok(None);
        };
        let allowed = match &self.peer {
            Peer::Visitor { visitor, site, .. } => found.visitor == *visitor && found.site == *site,
            Peer::Agent { agent, .. } => found.site == agent.site,
        };
        if !allowed {
            return Ok(None);
        }
        let access = Access { site: found.site };
        self.conversations.insert(conversation, access);
        Ok(Some(access))
    }

    async fn forbidden(&mut self, conversation: ConversationId) -> Result<(), End> {
        self.write(&ServerFrame::Error(ErrorFrame {
            code: ErrorCode::Forbidden,
            text: format!("conversation {conversation} does not exist or is not yours"),
            reconnect: true,
        }))
        .await
    }
}
