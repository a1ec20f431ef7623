//! A native async client for Kefu, for bots, tests and Rust apps.
//!
//! It runs the protocol's I/O-free [`Session`] over a real WebSocket: the
//! session decides (backoff, heartbeats, outbox, replay cursors) and this
//! crate carries the decisions out. Messages survive disconnects: a send
//! stays in the outbox until the relay acknowledges it, and is resent with
//! the same client id after every reconnect.
//!
//! # Layout
//!
//! - [`Client`]: the handle an application holds (send, join, ack, typing).
//! - [`Events`]: what arrives, in order, deduplicated.
//! - [`Tap`]: every frame as it crossed the wire, before the session
//!   judged it; for tests and diagnostics ([`Client::connect_tapped`]).
//! - `driver`: the task that owns the socket and the session.
//! - [`Tls`]: the certificates trusted for `wss://` and `https://`.
//! - [`login`]: `POST /api/login` for agents.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kefu_sdk::Error> {
//! use kefu_sdk::{Client, Body, Event};
//! let (visitor, mut events) = Client::visitor("ws://127.0.0.1:8080/ws", "demo")?;
//! let conversation = visitor.conversation().await?;
//! visitor.send(conversation, Body::Text("hello".into())).await?;
//! while let Some(event) = events.next().await {
//!     if let Event::Message(message) = event { println!("{message:?}") }
//! }
//! # Ok(()) }
//! ```

mod driver;
mod tls;

use kefu_protocol::frame::{AgentStatus, Attribute, Change, Credentials, Identify, Identity, ReceiptKind, Visit};
use kefu_protocol::ids::{AgentToken, ConversationId, Seq, SiteKey};
use kefu_protocol::{ClientFrame, ServerFrame};
use tokio::sync::{mpsc, oneshot, watch};

pub use kefu_protocol;
pub use kefu_protocol::frame::{Accepted, Body, FileRef, Files, Message, Rejected};
pub use kefu_protocol::session::{Event, LinkState, SessionConfig};
pub use tls::Tls;

/// What can go wrong for a client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid key or token: {0}")]
    InvalidKey(#[from] kefu_protocol::ids::InvalidKey),
    #[error("the relay refused the message: {0:?}")]
    Rejected(Rejected),
    #[error("the client was stopped")]
    Stopped,
    #[error("login failed: {0}")]
    Login(String),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("tls: {0}")]
    Tls(String),
    /// The relay refused an upload: its HTTP status and why.
    #[error("upload refused ({0}): {1}")]
    Upload(u16, String),
}

/// A connection to a relay that keeps itself alive. Cloning is cheap; all
/// clones drive the same connection.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::UnboundedSender<driver::Command>,
    identity: watch::Receiver<Option<Identity>>,
    link: watch::Receiver<LinkState>,
    /// How many sends wait in the outbox for their acknowledgement.
    outbox: watch::Receiver<usize>,
    /// A visitor's site, to build returning credentials.
    site: Option<SiteKey>,
}

/// Everything the relay sends, after the session deduplicated and ordered
/// it. Read it: it is unbounded, so an application that never reads it
/// grows it.
#[derive(Debug)]
pub struct Events {
    events: mpsc::UnboundedReceiver<Event>,
}

impl Events {
    /// The next event; `None` once the client stopped for good.
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await
    }
}

/// One frame as it crossed the wire, seen by a [`Tap`].
// Frames are looked at one at a time; boxing them buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Wire {
    /// Written to the relay. A `Hello` starts a new link: what is received
    /// after it came on that link.
    Sent(ClientFrame),
    /// Read from the relay and decoded, before the session judged it: a
    /// duplicate or a message past a hole shows here, though [`Events`]
    /// never hands it on.
    Received(ServerFrame),
}

/// Every frame a client sends and receives, in the order it did, for
/// tests and diagnostics that check what the relay itself sent rather
/// than what the session made of it. Unbounded like [`Events`]: read it.
#[derive(Debug)]
pub struct Tap {
    frames: mpsc::UnboundedReceiver<Wire>,
}

impl Tap {
    /// The next frame; `None` once the client stopped for good.
    pub async fn next(&mut self) -> Option<Wire> {
        self.frames.recv().await
    }
}

impl Client {
    /// Connects with `credentials` to the relay's WebSocket `url`
    /// (`ws://host:port/ws`, or `wss://` trusting the public web's roots),
    /// in the background.
    pub fn connect(url: impl Into<String>, credentials: Credentials, config: SessionConfig) -> (Client, Events) {
        Client::start(url.into(), credentials, config, Tls::default(), None)
    }

    /// Like [`Client::connect`], checking a `wss://` relay's certificate
    /// with `tls` (for a relay with a private or self-signed CA).
    pub fn connect_with_tls(
        url: impl Into<String>,
        credentials: Credentials,
        config: SessionConfig,
        tls: Tls,
    ) -> (Client, Events) {
        Client::start(url.into(), credentials, config, tls, None)
    }

    /// Like [`Client::connect`], and hands every frame sent and received
    /// to the returned [`Tap`] as well.
    pub fn connect_tapped(
        url: impl Into<String>,
        credentials: Credentials,
        config: SessionConfig,
    ) -> (Client, Events, Tap) {
        let (tap, frames) = mpsc::unbounded_channel();
        let (client, events) = Client::start(url.into(), credentials, config, Tls::default(), Some(tap));
        (client, events, Tap { frames })
    }

    fn start(
        url: String,
        credentials: Credentials,
        config: SessionConfig,
        tls: Tls,
        tap: Option<mpsc::UnboundedSender<Wire>>,
    ) -> (Client, Events) {
        let site = match &credentials {
            Credentials::Visitor { site, .. } => Some(site.clone()),
            Credentials::Agent { .. } | Credentials::AgentCookie => None,
        };
        let driver::Handles { commands, identity, link, outbox, events } =
            driver::spawn(url, credentials, config, tls, tap);
        (Client { commands, identity, link, outbox, site }, Events { events })
    }

    /// A new visitor of the site with key `site`.
    pub fn visitor(url: impl Into<String>, site: &str) -> Result<(Client, Events), Error> {
        let credentials = Credentials::Visitor { site: SiteKey::new(site)?, returning: None };
        Ok(Client::connect(url, credentials, SessionConfig::default()))
    }

    /// An agent with a token from [`login`]. Follows every conversation
    /// of its site, as a bot or console would.
    pub fn agent(url: impl Into<String>, token: &str) -> Result<(Client, Events), Error> {
        let credentials = Credentials::Agent { token: AgentToken::new(token)? };
        let config = SessionConfig { auto_join: true, ..SessionConfig::default() };
        Ok(Client::connect(url, credentials, config))
    }

    /// Sends a message and returns once the relay has stored it. Survives
    /// reconnects: it is resent until acknowledged.
    pub async fn send(&self, conversation: ConversationId, body: Body) -> Result<Accepted, Error> {
        let (reply, accepted) = oneshot::channel();
        self.command(driver::Command::Send { conversation, body, reply })?;
        accepted.await.map_err(|_| Error::Stopped)?
    }

    /// Follows a conversation: its history after the last held seq, then
    /// live messages.
    pub fn join(&self, conversation: ConversationId) -> Result<(), Error> {
        self.command(driver::Command::Join(conversation))
    }

    /// Marks messages up to `up_to` delivered or read.
    pub fn ack(&self, conversation: ConversationId, kind: ReceiptKind, up_to: Seq) -> Result<(), Error> {
        self.command(driver::Command::Ack { conversation, kind, up_to })
    }

    /// Tells the others that this side is typing (with a visitor's draft).
    pub fn typing(&self, conversation: ConversationId, active: bool, draft: Option<String>) -> Result<(), Error> {
        self.command(driver::Command::Typing { conversation, active, draft })
    }

    /// Reports the page a visitor is on (kept and re-sent after reconnects).
    pub fn visit(&self, visit: Visit) -> Result<(), Error> {
        self.command(driver::Command::Visit(visit))
    }

    /// Tells the relay who the visitor is, with the site backend's HMAC
    /// of the user id as `hash` to have it marked verified.
    pub fn identify(&self, identify: Identify) -> Result<(), Error> {
        self.command(driver::Command::Identify(identify))
    }

    /// Sets custom attributes of the visitor.
    pub fn set_attributes(&self, set: Vec<Attribute>) -> Result<(), Error> {
        self.command(driver::Command::Attributes(set))
    }

    /// An agent takes, transfers, closes or reopens a conversation. Sent
    /// only while the link is up; the outcome arrives as a `Conversation`
    /// event, or an `Error` event with `ErrorCode::Conflict`.
    pub fn update(&self, conversation: ConversationId, change: Change) -> Result<(), Error> {
        self.command(driver::Command::Update(conversation, change))
    }

    /// A visitor asks for its conversation's transcript by mail, to the
    /// address the relay knows for it. Sent only while the link is up;
    /// the answer arrives as a `TranscriptMailed` event, or an `Error`
    /// event (`Forbidden`: no mail or no address; `RateLimited`: one was
    /// just queued).
    pub fn mail_transcript(&self, conversation: ConversationId) -> Result<(), Error> {
        self.command(driver::Command::MailTranscript(conversation))
    }

    /// An agent is online (gets new chats) or away; kept across reconnects.
    pub fn set_status(&self, status: AgentStatus) -> Result<(), Error> {
        self.command(driver::Command::Status(status))
    }

    /// Who the relay says this client is; waits for the first welcome.
    pub async fn identity(&self) -> Result<Identity, Error> {
        let mut identity = self.identity.clone();
        let found = identity.wait_for(Option::is_some).await.map_err(|_| Error::Stopped)?;
        found.clone().ok_or(Error::Stopped)
    }

    /// A visitor's conversation; waits for the first welcome.
    pub async fn conversation(&self) -> Result<ConversationId, Error> {
        match self.identity().await? {
            Identity::Visitor { conversation, .. } => Ok(conversation),
            Identity::Agent { .. } => Err(Error::Stopped),
        }
    }

    /// The credentials to come back as the same visitor later (after a
    /// "reload"); waits for the first welcome.
    pub async fn returning_credentials(&self) -> Result<Credentials, Error> {
        match self.identity().await? {
            Identity::Visitor { visitor, token, .. } => {
                let site = self.site.clone().ok_or(Error::Stopped)?;
                Ok(Credentials::Visitor {
                    site,
                    returning: Some(kefu_protocol::frame::ReturningVisitor { visitor, token }),
                })
            }
            Identity::Agent { .. } => Err(Error::Stopped),
        }
    }

    /// How this visitor uploads files ([`upload`]); waits for the first
    /// welcome.
    pub async fn uploader(&self) -> Result<Uploader, Error> {
        match self.returning_credentials().await? {
            Credentials::Visitor { site, returning: Some(returning) } => {
                Ok(Uploader::Visitor { site, visitor: returning.visitor, token: returning.token })
            }
            _ => Err(Error::Stopped),
        }
    }

    /// The link's state now.
    pub fn link(&self) -> LinkState {
        *self.link.borrow()
    }

    /// Waits until the link is in a state that `pred` accepts.
    pub async fn wait_link(&self, pred: impl FnMut(&LinkState) -> bool) -> Result<LinkState, Error> {
        let mut link = self.link.clone();
        let state = *link.wait_for(pred).await.map_err(|_| Error::Stopped)?;
        Ok(state)
    }

    /// How many sends wait in the outbox for their acknowledgement now.
    pub fn outbox(&self) -> usize {
        *self.outbox.borrow()
    }

    /// Waits until the number of sends waiting in the outbox is one that
    /// `pred` accepts: e.g. until sends made while offline are all queued.
    pub async fn wait_outbox(&self, pred: impl FnMut(&usize) -> bool) -> Result<usize, Error> {
        let mut outbox = self.outbox.clone();
        let queued = *outbox.wait_for(pred).await.map_err(|_| Error::Stopped)?;
        Ok(queued)
    }

    /// Closes the connection for good. Unacknowledged sends fail.
    pub fn stop(&self) {
        let _ = self.commands.send(driver::Command::Stop);
    }

    fn command(&self, command: driver::Command) -> Result<(), Error> {
        self.commands.send(command).map_err(|_| Error::Stopped)
    }
}

/// Who uploads a file: an agent by its token, or a visitor by its site,
/// id and token ([`Client::uploader`]).
#[derive(Debug, Clone)]
pub enum Uploader {
    Agent(String),
    Visitor { site: SiteKey, visitor: kefu_protocol::ids::VisitorId, token: kefu_protocol::ids::VisitorToken },
}

/// Uploads `bytes` as a file named `name` to the relay at `base`
/// (`http://host:port`); a message then sends it by the id in the answer:
/// `Body::Files(Files { caption, files: vec![FileRef::by_id(file.id)] })`.
pub async fn upload(base: &str, who: &Uploader, name: &str, bytes: Vec<u8>) -> Result<FileRef, Error> {
    let base = base.trim_end_matches('/');
    let client = Tls::default().http_client()?;
    let request = match who {
        Uploader::Agent(token) => client.post(format!("{base}/api/attachments")).bearer_auth(token),
        Uploader::Visitor { site, visitor, token } => client
            .post(format!("{base}/api/attachments"))
            .query(&[("site", site.as_str())])
            .header("authorization", format!("Visitor {visitor} {}", token.as_str())),
    };
    let response = request.query(&[("name", name)]).body(bytes).send().await?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        let why = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|body| body.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or(text);
        return Err(Error::Upload(status.as_u16(), why));
    }
    Ok(response.json().await?)
}

/// An agent's session from `POST /api/login`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Login {
    /// The token for [`Client::agent`].
    pub token: String,
}

/// Logs an agent in at the relay's HTTP base (`http://host:port`, or
/// `https://` trusting the public web's roots).
pub async fn login(base: &str, email: &str, password: &str) -> Result<Login, Error> {
    login_with_tls(base, email, password, &Tls::default()).await
}

/// Like [`login`], checking an `https://` relay's certificate with `tls`.
pub async fn login_with_tls(base: &str, email: &str, password: &str, tls: &Tls) -> Result<Login, Error> {
    let response = tls
        .http_client()?
        .post(format!("{}/api/login", base.trim_end_matches('/')))
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(Error::Login(format!("{}: {}", response.status(), response.text().await.unwrap_or_default())));
    }
    Ok(response.json().await?)
}
