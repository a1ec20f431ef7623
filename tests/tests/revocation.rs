//! Revocation reaches live WebSockets: a logout, a deactivation, a role
//! change and a password change close the agent's open connections (the
//! ones of that session, or all of that agent's) with a reason the client
//! understands, on every node; and a privileged action sent just before
//! the close is refused, even when the revocation itself never arrived.
//!
//! Each test watches raw agent sockets that follow a visitor's
//! conversation. Right after the revocation one of them asks to take the
//! chat; then the visitor writes a marker line. Every revoked socket must
//! close without the marker (nothing is sent to a revoked agent), the idle
//! ones too, which only the revocation can close; a socket that was not
//! revoked receives it. The take is refused in any case; that the relay
//! asks the store before acting, not only waits for the revocation, is
//! shown on two nodes whose Redis is down, where no revocation can travel.

use anyhow::{Context, Result, bail, ensure};
use kefu_protocol::frame::{Body, Change, CloseReason, Closing, Credentials, Join, ReplayComplete, Update};
use kefu_protocol::ids::{AgentToken, ConversationId, Seq};
use kefu_protocol::{ClientFrame, ServerFrame};
use kefu_sdk::Client;
use kefu_tests::cluster::{Nodes, RedisServer, SHARED_REDIS};
use kefu_tests::raw::{Next, Raw, hello};
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Relay};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SIGNED_OUT: Closing = Closing { reason: CloseReason::SignedOut, reconnect_after_ms: None };
const ACCESS_CHANGED: Closing = Closing { reason: CloseReason::AccessChanged, reconnect_after_ms: Some(0) };
/// RFC 6455 policy violation: what the relay closes a revoked socket with.
const POLICY: u16 = 1008;
const MARKER: &str = "written after the revocation";

/// Calls the relay's HTTP API with a bearer token.
async fn call(base: &str, method: Method, path: &str, token: &str, body: Option<Value>) -> Result<(StatusCode, Value)> {
    let mut request = reqwest::Client::new().request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

async fn login(base: &str, email: &str, password: &str) -> Result<String> {
    Ok(kefu_sdk::login(base, email, password).await?.token)
}

/// Creates an agent on the admin's site; returns its id.
async fn create_agent(base: &str, admin: &str, email: &str, password: &str) -> Result<u64> {
    let body = json!({ "email": email, "name": "Ann", "password": password });
    let (status, agent) = call(base, Method::POST, "/api/agents", admin, Some(body)).await?;
    ensure!(status == StatusCode::CREATED, "creating {email}: {status} {agent}");
    agent["id"].as_u64().context("an agent id")
}

async fn patch_agent(base: &str, admin: &str, id: u64, change: Value) -> Result<()> {
    let (status, body) = call(base, Method::PATCH, &format!("/api/agents/{id}"), admin, Some(change)).await?;
    ensure!(status == StatusCode::OK, "changing agent {id}: {status} {body}");
    Ok(())
}

async fn logout(base: &str, token: &str) -> Result<()> {
    let (status, _) = call(base, Method::POST, "/api/logout", token, None).await?;
    ensure!(status == StatusCode::NO_CONTENT, "logout: {status}");
    Ok(())
}

async fn me_status(base: &str, token: &str) -> Result<StatusCode> {
    Ok(call(base, Method::GET, "/api/me", token, None).await?.0)
}

/// A visitor with one conversation that has a first line in it.
struct Visitor {
    client: Client,
    conversation: ConversationId,
}

impl Visitor {
    async fn start(ws_url: String) -> Result<Visitor> {
        let (client, _events) = Client::visitor(ws_url, "demo")?;
        let conversation = client.conversation().await?;
        client.send(conversation, Body::Text("hello".into())).await?;
        Ok(Visitor { client, conversation })
    }

    /// Writes the marker line and waits until it is stored (and so
    /// published to every follower that is still there).
    async fn mark(&self) -> Result<()> {
        self.client.send(self.conversation, Body::Text(MARKER.into())).await?;
        Ok(())
    }
}

/// An agent's raw connection, following `conversation` (replay done).
async fn agent_socket(ws_url: &str, token: &str, conversation: ConversationId) -> Result<Raw> {
    let mut raw = Raw::connect(ws_url).await?;
    raw.send(&hello(Credentials::Agent { token: AgentToken::new(token)? })).await?;
    raw.until(|frame| matches!(frame, ServerFrame::Welcome(_)).then_some(())).await?;
    raw.send(&ClientFrame::Join(Join { conversation, after: Seq::ZERO })).await?;
    raw.until(|frame| match frame {
        ServerFrame::ReplayComplete(ReplayComplete { conversation: done, .. }) => (*done == conversation).then_some(()),
        _ => None,
    })
    .await?;
    Ok(raw)
}

fn is_marker(frame: &ServerFrame) -> bool {
    matches!(frame, ServerFrame::Message(message) if message.body == Body::Text(MARKER.into()))
}

/// Reads `raw` until its `Closing`, which must be `closing`, then the
/// close, with code 1008; the marker must not come first, nor a system
/// line (a take that went through).
async fn expect_revoked(raw: &mut Raw, closing: Closing) -> Result<()> {
    let seen = raw.until(|frame| match frame {
        ServerFrame::Closing(closing) => Some(Ok(*closing)),
        ServerFrame::Message(message) if matches!(message.body, Body::Event(_)) || is_marker(frame) => {
            Some(Err(message.clone()))
        }
        _ => None,
    });
    match seen.await? {
        Ok(seen) => ensure!(seen == closing, "expected {closing:?}, got {seen:?}"),
        Err(message) => bail!("a revoked socket was sent {message:?}: still open after the revocation"),
    }
    match raw.next().await? {
        Next::Closed(code) => ensure!(code == Some(POLICY), "close code {code:?}"),
        Next::Frame(frame) => bail!("a frame after the Closing: {frame:?}"),
    }
    Ok(())
}

/// `raw` was not revoked: it receives the marker and stays open.
async fn expect_still_open(raw: &mut Raw) -> Result<()> {
    raw.until(|frame| is_marker(frame).then_some(())).await.context("the socket that was not revoked")
}

/// Takes `conversation` over `raw`, right after a revocation and before
/// its close was read.
async fn try_to_take(raw: &mut Raw, conversation: ConversationId) -> Result<()> {
    raw.send(&ClientFrame::Update(Update { conversation, change: Change::Take })).await
}

/// Nobody took `conversation`: no system line in it.
async fn expect_untaken(base: &str, admin: &str, conversation: ConversationId) -> Result<()> {
    let path = format!("/api/conversations/{}/messages", conversation.0);
    let (status, messages) = call(base, Method::GET, &path, admin, None).await?;
    ensure!(status == StatusCode::OK, "{status}");
    let events: Vec<&Value> =
        messages.as_array().context("messages")?.iter().filter(|m| m["body"].get("Event").is_some()).collect();
    ensure!(events.is_empty(), "the revoked agent's take went through: {events:?}");
    Ok(())
}

#[tokio::test]
async fn logout_closes_the_sockets_of_that_session_only() -> Result<()> {
    let relay = Relay::start().await?;
    let base = relay.http_url();
    let visitor = Visitor::start(relay.ws_url()).await?;
    let ending = login(&base, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let other = login(&base, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let mut ending_socket = agent_socket(&relay.ws_url(), &ending, visitor.conversation).await?;
    let mut ending_idle = agent_socket(&relay.ws_url(), &ending, visitor.conversation).await?;
    let mut other_socket = agent_socket(&relay.ws_url(), &other, visitor.conversation).await?;

    logout(&base, &ending).await?;
    try_to_take(&mut ending_socket, visitor.conversation).await?;
    visitor.mark().await?;
    expect_revoked(&mut ending_socket, SIGNED_OUT).await?;
    expect_revoked(&mut ending_idle, SIGNED_OUT).await?;
    expect_still_open(&mut other_socket).await?;
    expect_untaken(&base, &other, visitor.conversation).await?;

    // Signed out is signed out: the same token cannot connect again.
    let mut again = Raw::connect(&relay.ws_url()).await?;
    again.send(&hello(Credentials::Agent { token: AgentToken::new(&ending)? })).await?;
    let refused = again.until(|frame| match frame {
        ServerFrame::Error(error) => Some(error.clone()),
        _ => None,
    });
    ensure!(!refused.await?.reconnect, "a signed-out token is refused for good");
    Ok(())
}

#[tokio::test]
async fn deactivation_closes_every_socket_of_the_agent() -> Result<()> {
    let relay = Relay::start().await?;
    let base = relay.http_url();
    let admin = login(&base, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let ann = create_agent(&base, &admin, "ann@kefu.test", "ann's password").await?;
    let visitor = Visitor::start(relay.ws_url()).await?;
    let phone = login(&base, "ann@kefu.test", "ann's password").await?;
    let laptop = login(&base, "ann@kefu.test", "ann's password").await?;
    let mut phone_socket = agent_socket(&relay.ws_url(), &phone, visitor.conversation).await?;
    let mut laptop_socket = agent_socket(&relay.ws_url(), &laptop, visitor.conversation).await?;
    let mut admin_socket = agent_socket(&relay.ws_url(), &admin, visitor.conversation).await?;

    patch_agent(&base, &admin, ann, json!({ "active": false })).await?;
    try_to_take(&mut phone_socket, visitor.conversation).await?;
    visitor.mark().await?;
    expect_revoked(&mut phone_socket, SIGNED_OUT).await?;
    expect_revoked(&mut laptop_socket, SIGNED_OUT).await?;
    expect_still_open(&mut admin_socket).await?;
    expect_untaken(&base, &admin, visitor.conversation).await?;
    ensure!(me_status(&base, &phone).await? == StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn a_role_change_makes_the_agents_sockets_reconnect_with_the_new_role() -> Result<()> {
    let relay = Relay::start().await?;
    let base = relay.http_url();
    let admin = login(&base, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let ann = create_agent(&base, &admin, "ann@kefu.test", "ann's password").await?;
    let visitor = Visitor::start(relay.ws_url()).await?;
    let token = login(&base, "ann@kefu.test", "ann's password").await?;
    let mut socket = agent_socket(&relay.ws_url(), &token, visitor.conversation).await?;
    let mut idle = agent_socket(&relay.ws_url(), &token, visitor.conversation).await?;

    patch_agent(&base, &admin, ann, json!({ "name": "Ann Lee" })).await?;
    patch_agent(&base, &admin, ann, json!({ "role": "admin" })).await?;
    try_to_take(&mut socket, visitor.conversation).await?;
    visitor.mark().await?;
    expect_revoked(&mut socket, ACCESS_CHANGED).await?;
    expect_revoked(&mut idle, ACCESS_CHANGED).await?;
    expect_untaken(&base, &admin, visitor.conversation).await?;
    // The session itself goes on: reconnecting works, with the new rights.
    ensure!(me_status(&base, &token).await? == StatusCode::OK);
    let mut again = agent_socket(&relay.ws_url(), &token, visitor.conversation).await?;
    visitor.mark().await?;
    expect_still_open(&mut again).await?;
    Ok(())
}

#[tokio::test]
async fn a_new_password_signs_out_every_other_session_http_and_websocket() -> Result<()> {
    let relay = Relay::start().await?;
    let base = relay.http_url();
    let admin = login(&base, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let admin_elsewhere = login(&base, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let me = call(&base, Method::GET, "/api/me", &admin, None).await?.1["agent"]["id"].as_u64().context("my id")?;
    let ann = create_agent(&base, &admin, "ann@kefu.test", "ann's password").await?;
    let visitor = Visitor::start(relay.ws_url()).await?;
    let ann_token = login(&base, "ann@kefu.test", "ann's password").await?;
    let mut ann_socket = agent_socket(&relay.ws_url(), &ann_token, visitor.conversation).await?;
    let mut admin_socket = agent_socket(&relay.ws_url(), &admin, visitor.conversation).await?;
    let mut elsewhere_socket = agent_socket(&relay.ws_url(), &admin_elsewhere, visitor.conversation).await?;

    // An admin sets Ann a new password: every session of Ann's ends.
    patch_agent(&base, &admin, ann, json!({ "password": "ann's new password" })).await?;
    // The admin changes their own: every session but this one ends.
    patch_agent(&base, &admin, me, json!({ "password": "the admin's new password" })).await?;
    try_to_take(&mut ann_socket, visitor.conversation).await?;
    visitor.mark().await?;
    expect_revoked(&mut ann_socket, SIGNED_OUT).await?;
    expect_revoked(&mut elsewhere_socket, SIGNED_OUT).await?;
    expect_still_open(&mut admin_socket).await?;
    expect_untaken(&base, &admin, visitor.conversation).await?;
    ensure!(me_status(&base, &ann_token).await? == StatusCode::UNAUTHORIZED, "Ann's HTTP session ended");
    ensure!(me_status(&base, &admin_elsewhere).await? == StatusCode::UNAUTHORIZED, "the admin's other one too");
    ensure!(me_status(&base, &admin).await? == StatusCode::OK, "the admin's own session goes on");
    login(&base, "ann@kefu.test", "ann's new password").await?;
    Ok(())
}

#[tokio::test]
async fn a_logout_on_one_node_closes_the_session_on_the_other() -> Result<()> {
    let nodes = Nodes::start(SHARED_REDIS).await?;
    let (a, b) = (nodes.a.http_url(), nodes.b.http_url());
    let visitor = Visitor::start(nodes.a.ws_url()).await?;
    let ending = login(&a, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let other = login(&b, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let mut on_b = agent_socket(&nodes.b.ws_url(), &ending, visitor.conversation).await?;
    let mut other_on_b = agent_socket(&nodes.b.ws_url(), &other, visitor.conversation).await?;

    logout(&a, &ending).await?;
    // The marker goes through Redis after the revocation, from the same
    // node: node B hears the revocation first.
    visitor.mark().await?;
    expect_revoked(&mut on_b, SIGNED_OUT).await?;
    expect_still_open(&mut other_on_b).await?;
    Ok(())
}

#[tokio::test]
async fn revocations_the_other_node_never_heard_of_still_refuse_its_next_take() -> Result<()> {
    let mut redis = RedisServer::start().await?;
    let nodes = Nodes::start(&redis.url()).await?;
    let (a, b) = (nodes.a.http_url(), nodes.b.http_url());
    let admin = login(&a, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let visitor = Visitor::start(nodes.b.ws_url()).await?;
    // One agent per kind of revocation, each connected to node B.
    let mut agents = Vec::new();
    for kind in ["logout", "deactivation", "role", "password"] {
        let email = format!("{kind}@kefu.test");
        let id = create_agent(&a, &admin, &email, "a password").await?;
        let token = login(&b, &email, "a password").await?;
        let socket = agent_socket(&nodes.b.ws_url(), &token, visitor.conversation).await?;
        agents.push((kind, id, token, socket));
    }

    // Without Redis no revocation reaches node B; the store still knows,
    // and B asks it before acting.
    redis.stop().await?;
    for (kind, id, token, _) in &agents {
        match *kind {
            "logout" => logout(&a, token).await?,
            "deactivation" => patch_agent(&a, &admin, *id, json!({ "active": false })).await?,
            "role" => patch_agent(&a, &admin, *id, json!({ "role": "admin" })).await?,
            _ => patch_agent(&a, &admin, *id, json!({ "password": "a new password" })).await?,
        }
    }
    for (kind, _, _, socket) in &mut agents {
        try_to_take(socket, visitor.conversation).await?;
        let closing = if *kind == "role" { ACCESS_CHANGED } else { SIGNED_OUT };
        expect_revoked(socket, closing).await.with_context(|| format!("after the {kind}"))?;
    }
    expect_untaken(&b, &admin, visitor.conversation).await?;
    Ok(())
}
