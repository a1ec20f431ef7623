//! The start of a connection: a hello in, who the client is, a welcome out.

use std::time::Duration;

use axum::extract::ws::WebSocket;
use kefu_protocol::codec::DecodeError;
use kefu_protocol::frame::{
    Attribute, Credentials, Cursor, ErrorCode, ErrorFrame, Heartbeat, Hello, Identify, Identity, Limits,
    ReturningVisitor, Visit, Welcome,
};
use kefu_protocol::ids::{ConversationId, SessionId, SiteId, VisitorId, VisitorToken};
use kefu_protocol::{ClientFrame, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION, codec, frame::Author};

use super::socket::{self, Incoming};
use crate::auth::{self, SignedIn, visitor_token};
use crate::state::AppState;
use crate::store;
use crate::store::now;

/// Who is on the other end of an established connection.
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    Visitor {
        visitor: VisitorId,
        site: SiteId,
        conversation: ConversationId,
    },
    /// An agent as it was when last checked against the store, and the
    /// session it connected with (for revocations and those checks).
    Agent {
        agent: store::Agent,
        token_hash: String,
    },
}

impl Peer {
    pub(crate) fn author(&self) -> Author {
        match self {
            Peer::Visitor { visitor, .. } => Author::Visitor(*visitor),
            Peer::Agent { agent, .. } => Author::Agent(agent.id),
        }
    }

    /// `visitor` or `agent`, for logs.
    pub(crate) fn role(&self) -> &'static str {
        match self {
            Peer::Visitor { .. } => "visitor",
            Peer::Agent { .. } => "agent",
        }
    }

    /// The site this peer belongs to: every store call it makes is
    /// scoped to it.
    pub(crate) fn site(&self) -> SiteId {
        match self {
            Peer::Visitor { site, .. } => *site,
            Peer::Agent { agent, .. } => agent.site,
        }
    }
}

/// A client that said a valid hello and was welcomed.
#[derive(Debug)]
pub(crate) struct Established {
    pub(crate) peer: Peer,
    /// The protocol version the peer said: what it can decode.
    pub(crate) version: u16,
    pub(crate) resume: Vec<Cursor>,
    /// For a visitor that has not written yet: its rows are made with its
    /// first message, and hold this.
    pub(crate) unsaved: Option<Box<Unsaved>>,
}

/// A visitor whose rows wait for its first message (see `store::ids`):
/// its hello stored nothing, so a flood of hellos costs no rows. What it
/// reports of itself until then is held here and stored with its rows.
#[derive(Debug, Default)]
pub(crate) struct Unsaved {
    pub(crate) token_hash: String,
    pub(crate) user_agent: Option<String>,
    pub(crate) language: Option<String>,
    pub(crate) visits: Vec<Visit>,
    pub(crate) identify: Option<Identify>,
    pub(crate) attributes: Vec<Attribute>,
}

impl Unsaved {
    /// The address the visitor gave so far, by `setUser` or a form's
    /// `email` field, as the follow-up mail would read it once stored.
    pub(crate) fn email(&self) -> Option<&str> {
        let identified = self.identify.as_ref().and_then(|identify| identify.email.as_deref());
        let asked = || self.attributes.iter().find(|a| a.key == "email").map(|a| a.value.as_str());
        identified.or_else(asked).map(str::trim).filter(|email| !email.is_empty())
    }
}

/// Why a handshake ended without a connection. `Some` error is sent to the
/// client before closing.
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) Option<ErrorFrame>);

fn refuse(code: ErrorCode, text: impl Into<String>) -> Refused {
    Refused(Some(ErrorFrame { code, text: text.into(), reconnect: matches!(code, ErrorCode::Internal) }))
}

impl From<store::Error> for Refused {
    fn from(error: store::Error) -> Refused {
        tracing::error!(%error, "store failed during handshake");
        refuse(ErrorCode::Internal, "the relay could not reach its store; try again")
    }
}

/// What the WebSocket upgrade request said that the handshake needs.
#[derive(Debug, Default)]
pub(crate) struct Upgrade {
    /// The agent the session cookie belongs to, if it came with one from
    /// the relay's own origin.
    pub(crate) cookie_agent: Option<SignedIn>,
    /// For the visitor panel.
    pub(crate) user_agent: Option<String>,
    pub(crate) language: Option<String>,
}

/// Reads the hello, authenticates it and sends the welcome.
pub(crate) async fn handshake(
    socket: &mut WebSocket,
    state: &AppState,
    session: SessionId,
    limits: &Limits,
    upgrade: Upgrade,
) -> Result<Established, Refused> {
    // A client that has not said hello by then is dropped.
    let hello_timeout = Duration::from_millis(state.config.hello_timeout_ms);
    let hello = match tokio::time::timeout(hello_timeout, socket::read_frame(socket, limits)).await {
        Err(_) | Ok(Incoming::Closed) => return Err(Refused(None)),
        Ok(Incoming::Frame(ClientFrame::Hello(hello))) => hello,
        Ok(Incoming::Frame(_)) => return Err(refuse(ErrorCode::HelloExpected, "the first frame must be a hello")),
        Ok(Incoming::Text) => return Err(refuse(ErrorCode::Malformed, "frames are binary (postcard), not text")),
        Ok(Incoming::Invalid(error, bytes)) => {
            // A hello of another version may not parse with these types;
            // name the version rather than calling it garbage.
            let version = match error {
                DecodeError::Malformed(_) | DecodeError::TrailingBytes(_) => codec::peek_hello_version(&bytes),
                DecodeError::FrameTooLarge { .. } | DecodeError::BodyTooLarge { .. } => None,
            };
            return Err(match version {
                Some(version) if !spoken(version) => unsupported(version),
                _ => refuse(error.code(), error.to_string()),
            });
        }
    };
    if !spoken(hello.version) {
        return Err(unsupported(hello.version));
    }
    let Hello { version, credentials, resume } = hello;
    let (peer, identity, unsaved) = authenticate(state, credentials, upgrade).await?;
    let config = &state.config;
    let welcome = Welcome {
        session,
        identity,
        heartbeat: Heartbeat { interval_ms: config.heartbeat_interval_ms, grace_ms: config.heartbeat_grace_ms },
        server_time: now(),
        limits: kefu_protocol::DEFAULT_LIMITS,
    };
    let write_timeout = Duration::from_millis(config.write_timeout_ms);
    socket::write_frame(socket, &kefu_protocol::ServerFrame::Welcome(welcome), write_timeout)
        .await
        .map_err(|_| Refused(None))?;
    Ok(Established { peer, version, resume, unsaved })
}

fn agent_peer(SignedIn { agent, token_hash }: SignedIn) -> Authenticated {
    let identity = Identity::Agent { agent: agent.id, site: agent.site, name: agent.name.clone() };
    (Peer::Agent { agent, token_hash }, identity, None)
}

type Authenticated = (Peer, Identity, Option<Box<Unsaved>>);

/// Whether this relay talks to a peer of `version`: each one from the
/// oldest it still downgrades frames for to its own.
fn spoken(version: u16) -> bool {
    (OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version)
}

fn unsupported(version: u16) -> Refused {
    refuse(
        ErrorCode::UnsupportedVersion,
        format!(
            "protocol version {version} is not supported; this relay speaks {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"
        ),
    )
}

async fn authenticate(state: &AppState, credentials: Credentials, upgrade: Upgrade) -> Result<Authenticated, Refused> {
    let store = &state.store;
    match credentials {
        Credentials::AgentCookie => {
            let Some(signed_in) = upgrade.cookie_agent else {
                return Err(refuse(ErrorCode::Unauthorized, "no valid session cookie from this origin; log in again"));
            };
            Ok(agent_peer(signed_in))
        }
        Credentials::Agent { token } => {
            let Some(signed_in) = auth::signed_in(store, token.as_str()).await? else {
                return Err(refuse(ErrorCode::Unauthorized, "unknown or expired agent token; log in again"));
            };
            Ok(agent_peer(signed_in))
        }
        Credentials::Visitor { site, returning } => {
            let Some(site) = store.site_by_key(&site).await? else {
                return Err(refuse(ErrorCode::Unauthorized, format!("no site with key {:?}", site.as_str())));
            };
            let (visitor, token, conversation, saved) = visitor(state, site.id, returning).await?;
            let unsaved = if saved {
                store.touch_visitor(site.id, visitor).await?;
                store
                    .record_visitor_client(site.id, visitor, upgrade.user_agent.as_deref(), upgrade.language.as_deref())
                    .await?;
                None
            } else {
                Some(Box::new(Unsaved {
                    token_hash: auth::token_hash(token.as_str()),
                    user_agent: upgrade.user_agent,
                    language: upgrade.language,
                    ..Unsaved::default()
                }))
            };
            let peer = Peer::Visitor { visitor, site: site.id, conversation };
            let identity = Identity::Visitor { visitor, token, site: site.id, conversation };
            Ok((peer, identity, unsaved))
        }
    }
}

/// Who a visitor is, its token, its conversation, and whether its rows
/// exist. A new visitor gets ids and a token and nothing is stored; a
/// returning one proves itself with its token.
async fn visitor(
    state: &AppState,
    site: SiteId,
    returning: Option<ReturningVisitor>,
) -> Result<(VisitorId, VisitorToken, ConversationId, bool), Refused> {
    let store = &state.store;
    let wrong_token = || refuse(ErrorCode::Unauthorized, "unknown visitor or wrong visitor token");
    match returning {
        None => {
            let (visitor, conversation) = (store.new_visitor_id().await?, store.new_conversation_id().await?);
            let key = state.visitor_keys.get(store, site).await?;
            Ok((visitor, visitor_token::mint(&key, site, visitor, conversation), conversation, false))
        }
        Some(ReturningVisitor { visitor, token }) if visitor_token::is_signed(&token) => {
            let key = state.visitor_keys.get(store, site).await?;
            let Some(promised) = visitor_token::verify(&key, site, visitor, &token) else {
                return moved_visitor(state, site, visitor, token).await?.ok_or_else(wrong_token);
            };
            Ok(match store.visitor_conversation(site, visitor).await? {
                Some(conversation) => (visitor, token, conversation.id, true),
                None => (visitor, token, promised, false),
            })
        }
        // A token from before signed tokens: its visitor has rows.
        Some(ReturningVisitor { visitor, token }) => {
            let stored = store.visitor_token_hash(site, visitor).await?;
            if stored.as_deref() != Some(auth::token_hash(token.as_str()).as_str()) {
                return moved_visitor(state, site, visitor, token).await?.ok_or_else(wrong_token);
            }
            let conversation = store.open_conversation(site, visitor).await?;
            Ok((visitor, token, conversation.id, true))
        }
    }
}

/// A visitor whose site moved here from another server (`kefu-relay
/// import`), showing the id and token it had there: its visitor here, a
/// token for its ids here (which the welcome hands it, so it comes back
/// as itself from now on) and its conversation. `None` if the token is
/// not one the old server gave that visitor.
async fn moved_visitor(
    state: &AppState,
    site: SiteId,
    old: VisitorId,
    token: VisitorToken,
) -> Result<Option<(VisitorId, VisitorToken, ConversationId, bool)>, Refused> {
    let store = &state.store;
    let hash = auth::token_hash(token.as_str());
    for moved in store.moved_visitor(site, old).await? {
        let proven = if visitor_token::is_signed(&token) {
            let key = moved.old_token_key.as_deref();
            key.is_some_and(|key| visitor_token::verify(key, moved.old_site, old, &token).is_some())
        } else {
            store.visitor_token_hash(site, moved.visitor).await?.as_deref() == Some(hash.as_str())
        };
        if !proven {
            continue;
        }
        let visitor = moved.visitor;
        let (conversation, saved) = match store.visitor_conversation(site, visitor).await? {
            Some(conversation) => (conversation.id, true),
            None => (store.new_conversation_id().await?, false),
        };
        let key = state.visitor_keys.get(store, site).await?;
        return Ok(Some((visitor, visitor_token::mint(&key, site, visitor, conversation), conversation, saved)));
    }
    Ok(None)
}
