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

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::WebSocket;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use kefu_protocol::codec::clip;
use kefu_protocol::frame::{
    Accepted, Ack, AgentStatus, Attribute, Attributes, Availability, Body, CloseReason, Closing, ConversationStatus,
    Cursor, ErrorCode, ErrorFrame, Identify, Join, Limits, Message, Ping, Pong, Receipt, Rejected, ReplayComplete,
    Send, Typing, TypingNotice, Update, Visit,
};
use kefu_protocol::ids::{ConversationId, Seq, SessionId, SiteId, VisitorId};
use kefu_protocol::{ClientFrame, DEFAULT_LIMITS, ServerFrame};
use tokio::time::Instant;

use super::handshake::{self, Established, Peer};
use super::socket::{self, Incoming};
use crate::auth;
use crate::hub::{Audience, Mailbox, Published, TooSlow};
use crate::limits::{FrameLimit, Verdict};
use crate::state::AppState;
use crate::store::{self, AppendTicket, NewMessage};
use crate::team;

/// Messages read from the store per query while replaying.
const REPLAY_PAGE: u32 = 256;

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
pub(super) fn serve(socket: WebSocket, state: AppState, upgrade: handshake::Upgrade) -> impl Future<Output = ()> {
    let opening = Box::pin(open(socket, state, upgrade));
    async move {
        let Some((session, mut connection, resume)) = opening.await else {
            return;
        };
        let agent = match &connection.peer {
            Peer::Agent(agent) => Some(agent.site),
            Peer::Visitor { .. } => None,
        };
        let end = match Box::pin(connection.start(resume)).await {
            Ok(()) => connection.run().await,
            Err(end) => end,
        };
        Box::pin(connection.finish(end)).await;
        let state = connection.state.clone();
        drop(connection);
        if let Some(site) = agent {
            // The mailbox is gone, so the agent counts as gone if this was
            // its last console.
            if let Err(error) = Box::pin(team::publish_roster(&state, site)).await {
                tracing::warn!(%error, "could not publish the roster");
            }
        }
        tracing::debug!(?session, "disconnected");
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
    let Established { peer, resume } = established;
    tracing::debug!(?session, ?peer, ?resume, "connected");
    let mut mailbox = state.hub.mailbox(session, state.config.outbound_queue);
    if let Peer::Agent(agent) = &peer {
        mailbox.attend(agent.site, agent.id, AgentStatus::Away);
    }
    let frame_limit = FrameLimit::new(state.config.frames_per_second, state.config.frame_burst);
    let connection = Connection {
        state,
        socket,
        limits,
        write_timeout,
        frame_limit,
        peer,
        mailbox,
        positions: HashMap::new(),
        conversations: HashMap::new(),
        appends: None,
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
    mailbox: Mailbox,
    /// Per followed conversation, how far this connection has got.
    positions: HashMap<ConversationId, Position>,
    /// Conversations this peer may use, with what the checks need.
    conversations: HashMap<ConversationId, Access>,
    /// Sends handed to the store, answered in the order they were made.
    /// Made by the first send: it allocates, and most connections of
    /// visitors only listen.
    appends: Option<FuturesOrdered<AppendTicket>>,
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
                let availability = Availability { agents_online: self.state.hub.agents_online(site) };
                self.write(&ServerFrame::Availability(availability)).await?;
                self.conversations.insert(conversation, Access { site });
                let after = resume
                    .iter()
                    .find(|cursor| cursor.conversation == conversation)
                    .map_or(Seq::ZERO, |cursor| cursor.seq);
                self.follow(conversation, after).await?;
            }
            Peer::Agent(agent) => {
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
        if let Peer::Agent(agent) = self.peer.clone() {
            let open = self.state.store.open_conversations(agent.site).await.map_err(|e| End::store(&e))?;
            for conversation in open {
                self.write(&ServerFrame::Conversation(conversation.update())).await?;
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
                    Err(TooSlow) => return End::Close(
                        Closing { reason: CloseReason::TooSlow, reconnect_after_ms: Some(1_000) },
                        close_code::TRY_LATER,
                        "too slow",
                    ),
                },
                incoming = socket::read_frame(&mut self.socket, &self.limits),
                    if self.appends_in_flight() < MAX_APPENDS_IN_FLIGHT => {
                    self.last_heard = Instant::now();
                    Box::pin(self.on_incoming(incoming)).await
                }
                _ = pings.tick() => {
                    self.nonce += 1;
                    Box::pin(self.write(&ServerFrame::Ping(Ping { nonce: self.nonce }))).await
                }
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    async fn finish(&mut self, end: End) {
        if !matches!(end, End::Gone) {
            self.settle_appends().await;
        }
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

    /// Answers the sends already handed to the store before saying
    /// goodbye, so a client closed mid-burst (a flood, a protocol error,
    /// a restart) knows which of its messages were kept and resends only
    /// the others.
    async fn settle_appends(&mut self) {
        while let Some(appended) = next_append(&mut self.appends).await {
            if self.on_appended(appended).await.is_err() {
                return;
            }
        }
    }

    fn appends_in_flight(&self) -> usize {
        self.appends.as_ref().map_or(0, FuturesOrdered::len)
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
        // Heartbeat answers are never refused: that would end the link.
        if !matches!(frame, ClientFrame::Pong(_)) {
            match self.frame_limit.check() {
                Verdict::Pass => {}
                Verdict::Refuse => return self.rate_limited(&frame).await,
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
            ClientFrame::Hello(_) => Err(End::protocol(ErrorCode::HelloExpected, "hello was already said")),
        }
    }

    /// Checks that this peer may use `conversation`, caching the answer.
    async fn access(&mut self, conversation: ConversationId) -> Result<Option<Access>, End> {
        if let Some(access) = self.conversations.get(&conversation) {
            return Ok(Some(*access));
        }
        let Some(found) = self.state.store.conversation(conversation).await.map_err(|e| End::store(&e))? else {
            return Ok(None);
        };
        let allowed = match &self.peer {
            Peer::Visitor { visitor, site, .. } => found.visitor == *visitor && found.site == *site,
            Peer::Agent(agent) => found.site == agent.site,
        };
        if !allowed {
            return Ok(None);
        }
        let access = Access { site: found.site };
        self.conversations.insert(conversation, access);
        Ok(Some(access))
    }

    /// Refuses a frame over the frame limit without acting on it: a send
    /// is rejected for its client id, so the client knows to send it again
    /// later; anything else gets an error.
    async fn rate_limited(&mut self, frame: &ClientFrame) -> Result<(), End> {
        let text = format!(
            "more than {} frames a second (after a burst of {}); slow down",
            self.state.config.frames_per_second, self.state.config.frame_burst
        );
        let code = ErrorCode::RateLimited;
        if let ClientFrame::Send(Send { conversation, client_id, .. }) = frame {
            let (conversation, client_id) = (*conversation, *client_id);
            return self.write(&ServerFrame::Rejected(Rejected { conversation, client_id, code, text })).await;
        }
        self.write(&ServerFrame::Error(ErrorFrame { code, text, reconnect: true })).await
    }

    async fn forbidden(&mut self, conversation: ConversationId) -> Result<(), End> {
        self.write(&ServerFrame::Error(ErrorFrame {
            code: ErrorCode::Forbidden,
            text: format!("conversation {conversation} does not exist or is not yours"),
            reconnect: true,
        }))
        .await
    }

    async fn on_send(&mut self, send: Send) -> Result<(), End> {
        let Send { conversation, client_id, body } = send;
        let refusal = if body.len_bytes() > DEFAULT_LIMITS.max_body_bytes as usize {
            Some((ErrorCode::BodyTooLarge, format!("messages are limited to {} bytes", DEFAULT_LIMITS.max_body_bytes)))
        } else if let Some(reason) = self.may_not_send(&body) {
            Some((ErrorCode::Forbidden, reason.to_owned()))
        } else if is_blank(&body) {
            Some((ErrorCode::Malformed, "empty message".to_owned()))
        } else if self.access(conversation).await?.is_none() {
            Some((ErrorCode::Forbidden, format!("conversation {conversation} does not exist or is not yours")))
        } else {
            None
        };
        if let Some((code, text)) = refusal {
            return self.write(&ServerFrame::Rejected(Rejected { conversation, client_id, code, text })).await;
        }
        let message = NewMessage { conversation, client_id: Some(client_id), author: self.peer.author(), body };
        let ticket = self.state.store.submit(message).await.map_err(|e| End::store(&e))?;
        self.appends.get_or_insert_with(FuturesOrdered::new).push_back(ticket);
        Ok(())
    }

    /// Why this peer may not send a body of this kind, if it may not.
    fn may_not_send(&self, body: &Body) -> Option<&'static str> {
        match (body, &self.peer) {
            (Body::Text(_), _) | (Body::Note(_), Peer::Agent(_)) => None,
            (Body::Note(_), Peer::Visitor { .. }) => Some("private notes are for agents"),
            (Body::Event(_), _) => Some("system lines are written by the relay"),
        }
    }

    async fn on_appended(&mut self, appended: Result<store::Appended, store::Error>) -> Result<(), End> {
        let appended = appended.map_err(|e| End::store(&e))?;
        if let Some(conversation) = &appended.conversation {
            team::publish(&self.state, conversation.site, &appended);
            // Only a closed or unassigned chat can need reopening or an
            // agent: most visitor messages skip the task entirely.
            let needs_team = conversation.status == ConversationStatus::Closed || conversation.assignee.is_none();
            if matches!(self.peer, Peer::Visitor { .. }) && needs_team {
                let (state, conversation) = (self.state.clone(), conversation.clone());
                self.state.connections.spawn(async move {
                    if let Err(error) = team::visitor_wrote(&state, &conversation).await {
                        tracing::error!(%error, "could not reopen or assign after a visitor's message");
                    }
                });
            }
        }
        let message = appended.message;
        let conversation = message.conversation;
        let Some(client_id) = message.client_id else {
            return Ok(());
        };
        self.write(&ServerFrame::Accepted(Accepted {
            conversation,
            client_id,
            id: message.id,
            seq: message.seq,
            sent_at: message.sent_at,
        }))
        .await
    }

    /// Follows a conversation from `after`: also how a client repairs a gap.
    async fn join(&mut self, join: Join) -> Result<(), End> {
        if self.access(join.conversation).await?.is_none() {
            return self.forbidden(join.conversation).await;
        }
        self.follow(join.conversation, join.after).await
    }

    async fn follow(&mut self, conversation: ConversationId, after: Seq) -> Result<(), End> {
        // A cursor past the end (corrupt, or from a forged resume) would
        // hide every new message until the conversation caught up with it:
        // start at the end instead; the replay's `last_seq` says where.
        let after = if after > Seq::ZERO {
            let found = self.state.store.conversation(conversation).await.map_err(|e| End::store(&e))?;
            found.map_or(Seq::ZERO, |found| after.min(found.last_seq))
        } else {
            after
        };
        // Register first, read second: see the module comment.
        self.mailbox.follow(conversation);
        self.positions.insert(conversation, Position { passed: after, sent: after });
        self.catch_up(conversation, None).await?;
        let last_seq = self.positions.get(&conversation).map_or(after, |position| position.sent);
        self.write(&ServerFrame::ReplayComplete(ReplayComplete { conversation, last_seq })).await?;
        // Marks are not messages and are not replayed with them; the
        // current ones come after, so a reloaded client shows them again.
        let receipts = self.state.store.receipts(conversation).await.map_err(|e| End::store(&e))?;
        for receipt in receipts {
            self.write(&ServerFrame::Receipt(receipt)).await?;
        }
        Ok(())
    }

    /// Sends stored messages after the last one sent, up to `until` (or
    /// to the end of the conversation).
    async fn catch_up(&mut self, conversation: ConversationId, until: Option<Seq>) -> Result<(), End> {
        loop {
            let after = self.positions.get(&conversation).map_or(Seq::ZERO, |position| position.passed);
            if until.is_some_and(|until| after >= until) {
                return Ok(());
            }
            let page =
                self.state.store.messages_after(conversation, after, REPLAY_PAGE).await.map_err(|e| End::store(&e))?;
            let full = page.len() == REPLAY_PAGE as usize;
            for message in page {
                self.pass_on(message).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Passes on what the hub published, in order and once.
    async fn deliver(&mut self, published: &Published) -> Result<(), End> {
        match &*published.frame {
            ServerFrame::Message(message) => self.deliver_message(published, message).await,
            ServerFrame::Typing(TypingNotice { by, .. }) if *by == self.peer.author() => Ok(()),
            _ => self.write_published(published).await,
        }
    }

    async fn deliver_message(&mut self, published: &Published, message: &Message) -> Result<(), End> {
        let Some(position) = self.positions.get(&message.conversation) else {
            return Ok(()); // followed through the site only
        };
        if message.seq <= position.passed {
            return Ok(()); // already sent by replay
        }
        if message.seq > position.passed.next() {
            // Commits of one conversation can be published out of order
            // by different connections; the store has them all.
            return self.catch_up(message.conversation, Some(message.seq)).await;
        }
        match self.advance(message) {
            None => Ok(()),
            // As published, a message says `prev: seq - 1`: what every
            // agent is sent, and a visitor with no note just before it.
            // Those share the published bytes.
            Some(prev) if prev == message.prev => self.write_published(published).await,
            Some(prev) => self.write(&ServerFrame::Message(Message { prev, ..message.clone() })).await,
        }
    }

    /// Sends the next message of a conversation, or skips it if this peer
    /// is not shown it.
    async fn pass_on(&mut self, mut message: Message) -> Result<(), End> {
        let Some(prev) = self.advance(&message) else {
            return Ok(());
        };
        message.prev = prev;
        self.write(&ServerFrame::Message(message)).await
    }

    /// Moves this connection's position past the next message of a
    /// conversation; returns its `prev` for this peer, or `None` if this
    /// peer is not shown it.
    fn advance(&mut self, message: &Message) -> Option<Seq> {
        let shown = matches!(self.peer, Peer::Agent(_)) || message.body.is_for_visitors();
        let position = self.positions.entry(message.conversation).or_default();
        position.passed = message.seq;
        if !shown {
            return None;
        }
        let prev = position.sent;
        position.sent = message.seq;
        Some(prev)
    }

    async fn on_ack(&mut self, ack: Ack) -> Result<(), End> {
        if self.access(ack.conversation).await?.is_none() {
            return self.forbidden(ack.conversation).await;
        }
        let by = self.peer.author();
        let recorded = self
            .state
            .store
            .record_receipt(ack.conversation, by, ack.kind, ack.up_to)
            .await
            .map_err(|e| End::store(&e))?;
        if let Some(up_to) = recorded {
            let receipt = Receipt { conversation: ack.conversation, by, kind: ack.kind, up_to };
            self.state.hub.publish(ack.conversation, ServerFrame::Receipt(receipt));
        }
        Ok(())
    }

    async fn on_typing(&mut self, typing: Typing) -> Result<(), End> {
        let Typing { conversation, active, draft } = typing;
        let Some(access) = self.access(conversation).await? else {
            return self.forbidden(conversation).await;
        };
        let draft = match self.peer {
            // Only visitors' drafts are previewed, only to agents (visitors
            // never follow other visitors' conversations), and only where
            // the site allows it.
            Peer::Visitor { .. } if active && draft.is_some() => {
                let settings = self.state.store.site_settings(access.site).await.map_err(|e| End::store(&e))?;
                draft.filter(|d| settings.draft_preview && d.len() <= DEFAULT_LIMITS.max_body_bytes as usize)
            }
            _ => None,
        };
        let notice = TypingNotice { conversation, by: self.peer.author(), active, draft };
        self.state.hub.publish(conversation, ServerFrame::Typing(notice));
        Ok(())
    }
}

/// What the relay keeps of visitor-reported text; longer values are cut
/// (at a character boundary), not refused: a long URL is no attack.
mod profile_limits {
    pub(super) const URL: usize = 2048;
    pub(super) const TITLE: usize = 512;
    pub(super) const FIELD: usize = 256;
    pub(super) const VALUE: usize = 1024;
    pub(super) const ATTRIBUTES: usize = 50;
}

impl Connection {
    /// The visitor sending profile frames, or an error for anyone else.
    async fn reporting_visitor(&mut self) -> Result<Option<(VisitorId, SiteId)>, End> {
        if let Peer::Visitor { visitor, site, .. } = self.peer {
            return Ok(Some((visitor, site)));
        }
        self.write(&ServerFrame::Error(ErrorFrame {
            code: ErrorCode::Forbidden,
            text: "only visitors report pages, identity and attributes".into(),
            reconnect: true,
        }))
        .await?;
        Ok(None)
    }

    /// Tells the site's agents, and this visitor, what is known of it now.
    async fn publish_profile(&mut self, visitor: VisitorId, site: SiteId) -> Result<(), End> {
        let profile = self.state.store.visitor_profile(visitor).await.map_err(|e| End::store(&e))?;
        self.state.hub.publish_site(site, Audience::Agents, ServerFrame::Visitor(profile.clone()));
        self.write(&ServerFrame::Visitor(profile)).await
    }

    async fn on_visit(&mut self, visit: Visit) -> Result<(), End> {
        let Some((visitor, site)) = self.reporting_visitor().await? else { return Ok(()) };
        let visit = Visit {
            url: clip(visit.url, profile_limits::URL),
            title: clip(visit.title, profile_limits::TITLE),
            referrer: visit.referrer.map(|r| clip(r, profile_limits::URL)),
        };
        self.state.store.record_visit(visitor, &visit).await.map_err(|e| End::store(&e))?;
        self.publish_profile(visitor, site).await
    }

    async fn on_identify(&mut self, identify: Identify) -> Result<(), End> {
        let Some((visitor, site)) = self.reporting_visitor().await? else { return Ok(()) };
        let secret = self.state.store.identity_secret(site).await.map_err(|e| End::store(&e))?;
        let verified =
            identify.hash.as_deref().is_some_and(|hash| auth::identity_hash_matches(&secret, &identify.user_id, hash));
        let user_id = clip(identify.user_id, profile_limits::FIELD);
        let name = identify.name.map(|n| clip(n, profile_limits::FIELD));
        let email = identify.email.map(|e| clip(e, profile_limits::FIELD));
        let identity = store::Identity { user_id: &user_id, name: name.as_deref(), email: email.as_deref(), verified };
        self.state.store.identify_visitor(visitor, &identity).await.map_err(|e| End::store(&e))?;
        self.publish_profile(visitor, site).await
    }

    async fn on_attributes(&mut self, attributes: Attributes) -> Result<(), End> {
        let Some((visitor, site)) = self.reporting_visitor().await? else { return Ok(()) };
        let set: Vec<_> = attributes
            .set
            .into_iter()
            .take(profile_limits::ATTRIBUTES)
            .map(|a| Attribute { key: clip(a.key, profile_limits::FIELD), value: clip(a.value, profile_limits::VALUE) })
            .collect();
        self.state.store.set_visitor_attributes(visitor, &set).await.map_err(|e| End::store(&e))?;
        self.publish_profile(visitor, site).await
    }
}

/// The next answer from the store, in the order of the sends; `None` if
/// no send waits for one.
async fn next_append(
    appends: &mut Option<FuturesOrdered<AppendTicket>>,
) -> Option<Result<store::Appended, store::Error>> {
    appends.as_mut()?.next().await
}

fn is_blank(body: &Body) -> bool {
    match body {
        Body::Text(text) | Body::Note(text) => text.trim().is_empty(),
        Body::Event(_) => false,
    }
}

impl Connection {
    /// The agent on this connection, or an error frame for a visitor.
    async fn acting_agent(&mut self) -> Result<Option<team::Actor>, End> {
        if let Peer::Agent(agent) = &self.peer {
            return Ok(Some(team::Actor {
                id: agent.id,
                site: agent.site,
                name: agent.name.clone(),
                admin: agent.role == store::Role::Admin,
            }));
        }
        self.write(&ServerFrame::Error(ErrorFrame {
            code: ErrorCode::Forbidden,
            text: "only agents assign, transfer, close and reopen chats".into(),
            reconnect: true,
        }))
        .await?;
        Ok(None)
    }

    async fn on_update(&mut self, update: Update) -> Result<(), End> {
        let Some(actor) = self.acting_agent().await? else { return Ok(()) };
        let outcome =
            team::change(&self.state, &actor, update.conversation, update.change).await.map_err(|e| End::store(&e))?;
        let (code, text) = match outcome {
            Ok(()) => return Ok(()),
            Err(team::Refusal::Conflict(text)) => (ErrorCode::Conflict, text),
            Err(team::Refusal::Forbidden(text)) => (ErrorCode::Forbidden, text),
        };
        self.write(&ServerFrame::Error(ErrorFrame { code, text, reconnect: true })).await
    }

    async fn on_status(&mut self, status: AgentStatus) -> Result<(), End> {
        let Some(actor) = self.acting_agent().await? else { return Ok(()) };
        self.mailbox.attend(actor.site, actor.id, status);
        team::set_status(&self.state, actor.site, actor.id, status).await.map_err(|e| End::store(&e))
    }
}
