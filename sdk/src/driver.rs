//! The task that owns the WebSocket and the session, and carries out the
//! session's actions.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kefu_protocol::frame::{
    Accepted, AgentStatus, Attribute, Body, Change, Credentials, Identify, Identity, ReceiptKind, Visit,
};
use kefu_protocol::ids::{ClientMessageId, ConversationId, Seq};
use kefu_protocol::session::{Action, Event, LinkState, Millis, Session, SessionConfig};
use kefu_protocol::{DEFAULT_LIMITS, ServerFrame, codec};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::{Error, Tls, Wire};

/// A connect or a write that takes longer than this counts as failed; the
/// session's backoff then decides when to try again.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Connecting = Pin<Box<dyn Future<Output = Option<Socket>> + Send>>;

/// What a [`crate::Client`] asks of its driver.
#[derive(Debug)]
pub(crate) enum Command {
    Send { conversation: ConversationId, body: Body, reply: oneshot::Sender<Result<Accepted, Error>> },
    Join(ConversationId),
    Ack { conversation: ConversationId, kind: ReceiptKind, up_to: Seq },
    Typing { conversation: ConversationId, active: bool, draft: Option<String> },
    Visit(Visit),
    Identify(Identify),
    Attributes(Vec<Attribute>),
    Update(ConversationId, Change),
    Status(AgentStatus),
    MailTranscript(ConversationId),
    Stop,
}

/// What a [`crate::Client`] holds of its driver.
pub(crate) struct Handles {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) identity: watch::Receiver<Option<Identity>>,
    pub(crate) link: watch::Receiver<LinkState>,
    pub(crate) outbox: watch::Receiver<usize>,
    pub(crate) events: mpsc::UnboundedReceiver<Event>,
}

/// Starts a driver on the current tokio runtime; with a `tap`, every frame
/// written and read goes there too.
pub(crate) fn spawn(
    url: String,
    credentials: Credentials,
    config: SessionConfig,
    tls: Tls,
    tap: Option<mpsc::UnboundedSender<Wire>>,
) -> Handles {
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let (identity_tx, identity) = watch::channel(None);
    let (link_tx, link) = watch::channel(LinkState::Connecting);
    let (outbox_tx, outbox) = watch::channel(0);
    let (events_tx, events) = mpsc::unbounded_channel();
    let driver = Driver {
        session: Session::new(credentials, config, rand::random()),
        url,
        tls,
        started: Instant::now(),
        socket: None,
        connecting: None,
        waiters: HashMap::new(),
        commands,
        events: events_tx,
        identity: identity_tx,
        link: link_tx,
        outbox: outbox_tx,
        tap,
    };
    tokio::spawn(driver.run());
    Handles { commands: commands_tx, identity, link, outbox, events }
}

struct Driver {
    session: Session,
    url: String,
    tls: Tls,
    started: Instant,
    socket: Option<Socket>,
    connecting: Option<Connecting>,
    /// Callers of `send` waiting for their acknowledgement.
    waiters: HashMap<ClientMessageId, oneshot::Sender<Result<Accepted, Error>>>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    identity: watch::Sender<Option<Identity>>,
    link: watch::Sender<LinkState>,
    outbox: watch::Sender<usize>,
    tap: Option<mpsc::UnboundedSender<Wire>>,
}

impl Driver {
    async fn run(mut self) {
        let start = self.session.start(self.now());
        self.apply(start).await;
        while !matches!(self.session.link(), LinkState::Stopped) {
            let wake = self.session.next_wakeup().map(|at| self.started + Duration::from_millis(at.0));
            let actions = tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => self.session.stop(), // every Client handle is gone
                },
                message = next_message(&mut self.socket) => self.on_message(message),
                socket = connect_done(&mut self.connecting) => {
                    self.connecting = None;
                    match socket {
                        Some(socket) => {
                            self.socket = Some(socket);
                            self.session.connected(self.now())
                        }
                        None => self.session.disconnected(self.now()),
                    }
                }
                () = sleep_until(wake) => self.session.tick(self.now()),
            };
            self.apply(actions).await;
            let queued = self.session.pending().count();
            self.outbox.send_if_modified(|outbox| std::mem::replace(outbox, queued) != queued);
        }
        for (_, waiter) in self.waiters.drain() {
            let _ = waiter.send(Err(Error::Stopped));
        }
        if let Some(mut socket) = self.socket.take() {
            let _ = tokio::time::timeout(IO_TIMEOUT, socket.close(None)).await;
        }
    }

    fn now(&self) -> Millis {
        Millis(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn on_command(&mut self, command: Command) -> Vec<Action> {
        match command {
            Command::Send { conversation, body, reply } => {
                let (client_id, actions) = self.session.send(self.now(), conversation, body);
                self.waiters.insert(client_id, reply);
                actions
            }
            Command::Join(conversation) => self.session.join(self.now(), conversation),
            Command::Ack { conversation, kind, up_to } => self.session.ack(conversation, kind, up_to),
            Command::Typing { conversation, active, draft } => self.session.typing(conversation, active, draft),
            Command::Visit(visit) => self.session.visit(visit),
            Command::Identify(identify) => self.session.identify(identify),
            Command::Attributes(set) => self.session.set_attributes(set),
            Command::Update(conversation, change) => self.session.update(conversation, change),
            Command::Status(status) => self.session.set_status(status),
            Command::MailTranscript(conversation) => self.session.mail_transcript(conversation),
            Command::Stop => self.session.stop(),
        }
    }

    fn on_message(&mut self, message: Option<WsMessage>) -> Vec<Action> {
        match message {
            Some(WsMessage::Binary(bytes)) => match codec::decode::<ServerFrame>(&bytes, &DEFAULT_LIMITS) {
                Ok(frame) => {
                    self.tap(|| Wire::Received(frame.clone()));
                    self.session.receive(self.now(), frame)
                }
                Err(error) => {
                    tracing::warn!(%error, "undecodable frame from the relay; reconnecting");
                    self.socket = None;
                    self.session.disconnected(self.now())
                }
            },
            Some(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Text(_) | WsMessage::Frame(_)) => Vec::new(),
            Some(WsMessage::Close(_)) | None => {
                self.socket = None;
                self.session.disconnected(self.now())
            }
        }
    }

    /// Carries out actions, and the actions that carrying them out causes
    /// (a failed write is a disconnect).
    async fn apply(&mut self, actions: Vec<Action>) {
        let mut queue = VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Connect => {
                    self.socket = None;
                    self.connecting = Some(Box::pin(connect(self.url.clone(), self.tls.connector())));
                }
                Action::Transmit(frame) => {
                    let Some(socket) = self.socket.as_mut() else { continue };
                    let bytes = codec::encode(&frame);
                    let sent = tokio::time::timeout(IO_TIMEOUT, socket.send(WsMessage::Binary(bytes.into()))).await;
                    if matches!(sent, Ok(Ok(()))) {
                        self.tap(|| Wire::Sent(frame));
                    } else {
                        self.socket = None;
                        queue.extend(self.session.disconnected(self.now()));
                    }
                }
                Action::Disconnect => {
                    self.connecting = None;
                    if let Some(mut socket) = self.socket.take() {
                        // Best effort: the link may be the thing that died.
                        let _ = tokio::time::timeout(Duration::from_millis(100), socket.close(None)).await;
                    }
                }
                Action::Emit(event) => self.emit(event),
            }
        }
    }

    /// Hands a frame to the tap, if there is one; builds it only then.
    fn tap(&self, frame: impl FnOnce() -> Wire) {
        if let Some(tap) = &self.tap {
            // A tap nobody reads any more is no reason to stop.
            let _ = tap.send(frame());
        }
    }

    fn emit(&mut self, event: Event) {
        match &event {
            Event::Link(state) => {
                self.link.send_replace(*state);
            }
            Event::Welcome(welcome) => {
                self.identity.send_replace(Some(welcome.identity.clone()));
            }
            Event::Accepted(accepted) => {
                if let Some(waiter) = self.waiters.remove(&accepted.client_id) {
                    let _ = waiter.send(Ok(*accepted));
                }
            }
            Event::Rejected(rejected) => {
                if let Some(waiter) = self.waiters.remove(&rejected.client_id) {
                    let _ = waiter.send(Err(Error::Rejected(rejected.clone())));
                }
            }
            _ => {}
        }
        // Nobody listening is fine: a bot may only care about sends.
        let _ = self.events.send(event);
    }
}

/// Opens a WebSocket; `tls` is used for `wss://` URLs only.
async fn connect(url: String, tls: Connector) -> Option<Socket> {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(2 * DEFAULT_LIMITS.max_frame_bytes as usize);
    let connecting = tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, Some(tls));
    match tokio::time::timeout(IO_TIMEOUT, connecting).await {
        Ok(Ok((socket, _response))) => Some(socket),
        Ok(Err(error)) => {
            tracing::debug!(%error, "connect failed");
            None
        }
        Err(_) => None,
    }
}

/// The next message of the socket, pending forever while there is none.
async fn next_message(socket: &mut Option<Socket>) -> Option<WsMessage> {
    match socket {
        Some(socket) => socket.next().await.and_then(Result::ok),
        None => std::future::pending().await,
    }
}

/// The connect attempt's outcome, pending forever while there is none.
async fn connect_done(connecting: &mut Option<Connecting>) -> Option<Socket> {
    match connecting {
        Some(connecting) => connecting.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
