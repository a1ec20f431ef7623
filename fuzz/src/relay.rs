//! The `relay_frames` harness: a real relay, real WebSockets, fuzzed frames.
//!
//! One relay runs per fuzz process, started on first use on `127.0.0.1:0`
//! with a temporary store, on a runtime kept for the life of the process.
//! Each input opens one connection: the input picks how it opens (usually a
//! valid hello of a known visitor or the admin agent, sometimes a refused
//! one) and then a sequence of frames, mostly well-formed frames about the
//! conversations that exist, sometimes raw bytes or text. A final ping
//! marks the end: its pong means the relay handled everything before it.
//!
//! What must hold (a failed check panics, and libFuzzer's panic hook turns
//! a panic on any thread, the relay's included, into a crash):
//!
//! - the relay sends only binary messages that decode as `ServerFrame`s
//!   under the clients' limits;
//! - a frame sequence that breaks no rule is answered to the end (the
//!   final pong comes), and no fatal error comes;
//! - one that breaks a rule (a second hello, bytes that do not decode, a
//!   text message, a frame over the size limit, a refused hello) ends with
//!   exactly the `ErrorFrame` for it (`reconnect: false`), then at most a
//!   `Closing`, then a WebSocket close with 1009 for a frame too large and
//!   1008 otherwise;
//! - other errors are refusals a client can live with (`Forbidden`,
//!   `Conflict`, with `reconnect: true`), never `Internal`, and every error
//!   has a text;
//! - a visitor sees only its own conversation, never a private note, never
//!   the agents' frames; acknowledgements and pongs answer what was sent;
//! - every [`HEALTH_EVERY`] inputs a fresh visitor connects, sends a
//!   message, and gets it accepted and delivered.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use arbitrary::{Result as Drawn, Unstructured};
use futures_util::{SinkExt, StreamExt};
use kefu_protocol::codec;
use kefu_protocol::frame::{
    Ack, AgentRef, AgentStatus, Attribute, Attributes, Body, Change, CloseReason, ConversationEvent, Credentials,
    Cursor, ErrorCode, Hello, Identify, Identity, Join, Limits, Ping, Pong, ReceiptKind, ReturningVisitor, Send,
    Typing, Update, Visit,
};
use kefu_protocol::ids::{AgentId, AgentToken, ClientMessageId, ConversationId, Seq, SiteKey, VisitorId, VisitorToken};
use kefu_protocol::{ClientFrame, DEFAULT_LIMITS, PROTOCOL_VERSION, ServerFrame};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Inputs between two health checks.
pub const HEALTH_EVERY: u64 = 32;
/// Known visitors the inputs connect as; a health check replaces one.
const POOL: usize = 4;
/// Frames per input after the hello.
const MAX_STEPS: usize = 24;
/// Longest wait for the relay's next answer before calling it hung.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The nonce of the ping that ends every script.
const LAST_PING: u64 = 0x6b65_6675_5f65_6e64;
const ADMIN_EMAIL: &str = "fuzz@example.com";
const ADMIN_PASSWORD: &str = "fuzz-admin-password";

/// What the relay decodes client frames with (see `ws::connection`): it
/// checks message bodies itself, so only the frame size counts.
const RELAY_LIMITS: Limits =
    Limits { max_frame_bytes: DEFAULT_LIMITS.max_frame_bytes, max_body_bytes: DEFAULT_LIMITS.max_frame_bytes };

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The relay and what the inputs know about its data, for the process.
struct Harness {
    runtime: Runtime,
    addr: SocketAddr,
    agent: AgentToken,
    agent_id: AgentId,
    /// Short critical sections, never held across an await: a std mutex.
    shared: Mutex<Shared>,
    inputs: AtomicU64,
    /// The store and the (empty) web folder, removed when the process ends.
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

#[derive(Debug, Default)]
struct Shared {
    pool: Vec<PoolVisitor>,
    next_slot: usize,
    /// The highest seq seen per conversation, so a resume can start near
    /// the end rather than replay a history that grows all run long.
    last_seq: HashMap<ConversationId, Seq>,
}

#[derive(Debug, Clone)]
struct PoolVisitor {
    visitor: VisitorId,
    token: VisitorToken,
    conversation: ConversationId,
}

/// Runs one fuzz input against the process's relay; panics on any failed check.
pub fn run_input(data: &[u8]) {
    let harness = harness();
    let n = harness.inputs.fetch_add(1, Ordering::Relaxed);
    harness.runtime.block_on(async {
        let input = run_script(harness, data);
        if tokio::time::timeout(ANSWER_TIMEOUT * 3, input).await.is_err() {
            panic!("the input took longer than {:?}", ANSWER_TIMEOUT * 3);
        }
        if n % HEALTH_EVERY == HEALTH_EVERY - 1 {
            health_check(harness).await;
        }
    });
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(start_relay)
}

fn start_relay() -> Harness {
    // The store goes through sqlx's `Any`, whose drivers the process
    // installs once; `install_default_drivers` is idempotent.
    sqlx::any::install_default_drivers();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
    // In memory where there is a tmpfs: every connection writes to the
    // store, and fsyncs on a disk would dominate the time per input.
    let shm = std::path::Path::new("/dev/shm");
    let data = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
    let data = data.expect("a temporary store folder");
    let web = tempfile::tempdir().expect("a temporary web folder");
    let mut config = kefu_relay::Config::with_data_dir(data.path());
    config.web_dir = Some(web.path().to_path_buf());
    config.admin_email = ADMIN_EMAIL.into();
    config.admin_password = Some(ADMIN_PASSWORD.into());
    // Every input is a connection from 127.0.0.1: far more than one
    // address opens in real life.
    config.connections_per_minute_per_ip = 0;
    let (addr, agent, agent_id, pool) = runtime.block_on(async {
        let listener = nodelay_listener();
        let addr = listener.local_addr().expect("the relay's address");
        tokio::spawn(async move {
            if let Err(error) = kefu_relay::run(listener, config, std::future::pending()).await {
                panic!("the relay stopped: {error}");
            }
        });
        let (agent, agent_id) = login(addr).await;
        let mut pool = Vec::new();
        for _ in 0..POOL {
            pool.push(healthy_new_visitor(addr).await);
        }
        (addr, agent, agent_id, pool)
    });
    Harness {
        runtime,
        addr,
        agent,
        agent_id,
        shared: Mutex::new(Shared { pool, ..Shared::default() }),
        inputs: AtomicU64::new(0),
        _dirs: (data, web),
    }
}

/// A listener on `127.0.0.1:0` whose connections (on Linux, which copies
/// the option to accepted sockets) send small frames without waiting for
/// a delayed ACK.
fn nodelay_listener() -> TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_nodelay(true).expect("TCP_NODELAY");
    socket.bind(([127, 0, 0, 1], 0).into()).expect("a port for the relay");
    socket.listen(1024).expect("a listening socket")
}

impl Harness {
    fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Logs the admin in over plain HTTP/1.1 and returns its bearer token.
async fn login(addr: SocketAddr) -> (AgentToken, AgentId) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = serde_json::json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }).to_string();
    let request = format!(
        "POST /api/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.expect("the relay accepts HTTP");
    stream.write_all(request.as_bytes()).await.expect("the login request is sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("the login answer");
    let json = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|_| panic!("login failed: {response}"));
    let token = value["token"].as_str().and_then(|t| AgentToken::new(t).ok()).expect("a token in the login answer");
    let id = value["agent"]["id"].as_u64().expect("the agent's id in the login answer");
    (token, AgentId(id))
}

async fn connect(addr: SocketAddr) -> Ws {
    // Without TCP_NODELAY a small frame after another waits for a delayed ACK (40 ms).
    let (ws, _) = tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/ws"), None, true)
        .await
        .expect("the relay upgrades /ws");
    ws
}

async fn send(ws: &mut Ws, frame: &ClientFrame) {
    ws.send(WsMessage::Binary(codec::encode(frame).into())).await.expect("a frame goes out");
}

/// The next frame, skipping transport pings; `None` once the relay closed.
async fn next_frame(ws: &mut Ws) -> Option<ServerFrame> {
    loop {
        let message = tokio::time::timeout(ANSWER_TIMEOUT, ws.next()).await.expect("the relay answers in time");
        match message {
            Some(Ok(WsMessage::Binary(bytes))) => return Some(server_frame(&bytes)),
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
            Some(Ok(other)) if !matches!(other, WsMessage::Close(_)) => panic!("the relay sent {other:?}"),
            _ => return None,
        }
    }
}

fn server_frame(bytes: &[u8]) -> ServerFrame {
    codec::decode::<ServerFrame>(bytes, &DEFAULT_LIMITS)
        .unwrap_or_else(|error| panic!("the relay sent a frame clients refuse ({error}): {bytes:02x?}"))
}

fn visitor_hello(returning: Option<ReturningVisitor>, resume: Vec<Cursor>) -> ClientFrame {
    let site = SiteKey::new("demo").expect("a valid site key");
    ClientFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        credentials: Credentials::Visitor { site, returning },
        resume,
    })
}

/// A new visitor says hello, sends a message, and gets it accepted and
/// delivered: the relay still works for a newcomer.
async fn healthy_new_visitor(addr: SocketAddr) -> PoolVisitor {
    let mut ws = connect(addr).await;
    send(&mut ws, &visitor_hello(None, Vec::new())).await;
    let visitor = loop {
        match next_frame(&mut ws).await {
            Some(ServerFrame::Welcome(welcome)) => match welcome.identity {
                Identity::Visitor { visitor, token, conversation, .. } => {
                    break PoolVisitor { visitor, token, conversation };
                }
                Identity::Agent { .. } => panic!("a visitor was welcomed as an agent"),
            },
            Some(ServerFrame::Error(error)) => panic!("a new visitor was refused: {error:?}"),
            Some(_) => {}
            None => panic!("the relay closed on a new visitor"),
        }
    };
    let client_id = ClientMessageId(u128::from(visitor.visitor.0) << 64 | 0x4845_414c_5448);
    let body = Body::Text("health check".into());
    let frame = Send { conversation: visitor.conversation, client_id, body: body.clone() };
    send(&mut ws, &ClientFrame::Send(frame)).await;
    let (mut accepted, mut delivered) = (false, false);
    while !(accepted && delivered) {
        match next_frame(&mut ws).await {
            Some(ServerFrame::Accepted(a)) if a.client_id == client_id => accepted = true,
            Some(ServerFrame::Message(m)) if m.client_id == Some(client_id) => {
                assert_eq!(m.body, body, "the health message came back changed");
                delivered = true;
            }
            Some(ServerFrame::Rejected(rejected)) => panic!("the health message was rejected: {rejected:?}"),
            Some(ServerFrame::Error(error)) => panic!("the health check got an error: {error:?}"),
            Some(_) => {}
            None => panic!("the relay closed during the health check"),
        }
    }
    let _ = ws.close(None).await;
    visitor
}

async fn health_check(harness: &Harness) {
    let fresh = healthy_new_visitor(harness.addr).await;
    let mut shared = harness.shared();
    let slot = shared.next_slot % POOL;
    shared.pool[slot] = fresh;
    shared.next_slot += 1;
}

/// How the connection must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Every frame is handled; the final ping is answered.
    Live,
    /// The relay refuses the connection with this error.
    Fatal(ErrorCode),
    /// A hello from raw bytes: whatever its credentials get.
    Unknown,
}

/// Who the connection speaks as, once welcomed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Visitor { visitor: VisitorId, conversation: ConversationId },
    Agent,
}

/// What frames are generated about.
struct Context {
    role: Role,
    agent_id: AgentId,
    pool: Vec<PoolVisitor>,
    last_seq: HashMap<ConversationId, Seq>,
    sent_ids: Vec<ClientMessageId>,
    next_id: u128,
}

async fn run_script(harness: &Harness, data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (pool, last_seq) = {
        let shared = harness.shared();
        (shared.pool.clone(), shared.last_seq.clone())
    };
    let (opening, expect) = opening(&mut u, harness, &pool, &last_seq).unwrap_or_else(|_| {
        let own = &pool[0];
        let returning = ReturningVisitor { visitor: own.visitor, token: own.token.clone() };
        (WsMessage::Binary(codec::encode(&visitor_hello(Some(returning), Vec::new())).into()), Expect::Live)
    });

    let mut ws = connect(harness.addr).await;
    ws.send(opening).await.expect("the opening goes out");
    let mut log = Log::default();
    let role = loop {
        match next_frame(&mut ws).await {
            Some(ServerFrame::Welcome(welcome)) => {
                if let Expect::Fatal(code) = expect {
                    panic!("expected {code:?} but the relay welcomed the client: {welcome:?}");
                }
                break match welcome.identity {
                    Identity::Visitor { visitor, conversation, .. } => Role::Visitor { visitor, conversation },
                    Identity::Agent { .. } => Role::Agent,
                };
            }
            Some(frame) => log.frames.push(frame),
            None => {
                log.ending = Ending::Closed;
                check_log(harness, None, &log, expect, &HashSet::new(), &HashSet::new());
                return;
            }
        }
    };
    if expect == Expect::Unknown {
        return; // a raw hello that happened to be valid; nothing more to predict.
    }

    let mut context = Context {
        role,
        agent_id: harness.agent_id,
        pool,
        last_seq,
        sent_ids: Vec::new(),
        next_id: u128::from(harness.inputs.load(Ordering::Relaxed)) << 32,
    };
    let mut steps = Vec::new();
    let mut expect = Expect::Live;
    while steps.len() < MAX_STEPS && !u.is_empty() {
        let Ok((message, fatal)) = step(&mut u, &mut context) else { break };
        steps.push(message);
        if let Some(code) = fatal {
            expect = Expect::Fatal(code);
            break;
        }
    }
    // What the steps say, however they were made (raw bytes can be frames too).
    let mut pings = HashSet::new();
    let mut sent = HashSet::new();
    for message in &steps {
        let WsMessage::Binary(bytes) = message else { continue };
        match codec::decode::<ClientFrame>(bytes, &RELAY_LIMITS) {
            Ok(ClientFrame::Ping(Ping { nonce })) => _ = pings.insert(nonce),
            Ok(ClientFrame::Send(send)) => _ = sent.insert(send.client_id),
            _ => {}
        }
    }
    if expect == Expect::Live {
        pings.insert(LAST_PING);
        steps.push(WsMessage::Binary(codec::encode(&ClientFrame::Ping(Ping { nonce: LAST_PING })).into()));
    }

    let (mut sink, mut stream) = ws.split();
    let writer = async move {
        for message in steps {
            // Once the relay has closed, writes fail; the reader judges that.
            if sink.send(message).await.is_err() {
                break;
            }
        }
        sink
    };
    let reader = async {
        loop {
            let message = match tokio::time::timeout(ANSWER_TIMEOUT, stream.next()).await {
                Err(_) => {
                    log.ending = Ending::TimedOut;
                    break;
                }
                Ok(message) => message,
            };
            match message {
                Some(Ok(WsMessage::Binary(bytes))) => {
                    let frame = server_frame(&bytes);
                    let last = matches!(frame, ServerFrame::Pong(Pong { nonce: LAST_PING }));
                    log.frames.push(frame);
                    if last {
                        log.ending = Ending::Pong;
                        break;
                    }
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                Some(Ok(WsMessage::Close(close))) => {
                    log.close_code = close.map(|c| u16::from(c.code));
                    log.ending = Ending::Closed;
                    break;
                }
                Some(Ok(other)) => panic!("the relay sent a non-binary message: {other:?}"),
                Some(Err(_)) | None => {
                    log.ending = Ending::Closed;
                    break;
                }
            }
        }
    };
    let (sink, ()) = tokio::join!(writer, reader);
    check_log(harness, Some(role), &log, expect, &sent, &pings);
    if let Ok(mut ws) = sink.reunite(stream) {
        let _ = tokio::time::timeout(Duration::from_millis(100), ws.close(None)).await;
    }
}

/// Picks how the connection opens: the first message and how the relay
/// must take it.
fn opening(
    u: &mut Unstructured<'_>,
    harness: &Harness,
    pool: &[PoolVisitor],
    last_seq: &HashMap<ConversationId, Seq>,
) -> Drawn<(WsMessage, Expect)> {
    let frame = |frame: &ClientFrame| WsMessage::Binary(codec::encode(frame).into());
    let own = &pool[u.choose_index(pool.len())?];
    let returning = ReturningVisitor { visitor: own.visitor, token: own.token.clone() };
    let cursor = |u: &mut Unstructured<'_>| -> Drawn<Cursor> {
        let conversation = match u.int_in_range(0..=3u8)? {
            0 | 1 => own.conversation,
            2 => pool[u.choose_index(pool.len())?].conversation,
            _ => ConversationId(u.arbitrary()?),
        };
        let last = last_seq.get(&conversation).copied().unwrap_or(Seq::ZERO);
        Ok(Cursor { conversation, seq: seq_near(u, last)? })
    };
    let mut resume = vec![Cursor { conversation: own.conversation, seq: own_last(own, last_seq) }];
    Ok(match u.int_in_range(0..=31u8)? {
        // A known visitor; mostly resuming near the end of its conversation.
        0..=17 => {
            if u.ratio(1, 3)? {
                resume = (0..u.int_in_range(0..=3)?).map(|_| cursor(u)).collect::<Drawn<_>>()?;
            }
            (frame(&visitor_hello(Some(returning), resume)), Expect::Live)
        }
        // The admin agent, following a few conversations.
        18..=25 => {
            let resume = (0..u.int_in_range(0..=2)?).map(|_| cursor(u)).collect::<Drawn<_>>()?;
            let credentials = Credentials::Agent { token: harness.agent.clone() };
            let hello = Hello { version: PROTOCOL_VERSION, credentials, resume };
            (frame(&ClientFrame::Hello(hello)), Expect::Live)
        }
        // A new visitor: rare, since every one opens a conversation that
        // every agent hello lists afterwards.
        26 => (frame(&visitor_hello(None, Vec::new())), Expect::Live),
        // Hellos the relay must refuse.
        27 | 28 => {
            let hello = match u.int_in_range(0..=4u8)? {
                0 => {
                    let version = u.arbitrary::<u16>()?;
                    let version = if version == PROTOCOL_VERSION { version.wrapping_add(1) } else { version };
                    let ClientFrame::Hello(hello) = visitor_hello(Some(returning), resume) else { unreachable!() };
                    let hello = Hello { version, ..hello };
                    return Ok((frame(&ClientFrame::Hello(hello)), Expect::Fatal(ErrorCode::UnsupportedVersion)));
                }
                1 => {
                    let site = SiteKey::new("no-such-site").expect("a valid site key");
                    Hello {
                        version: PROTOCOL_VERSION,
                        credentials: Credentials::Visitor { site, returning: None },
                        resume,
                    }
                }
                2 => {
                    let token = VisitorToken::new("wrong-token").expect("a valid token");
                    let ClientFrame::Hello(hello) =
                        visitor_hello(Some(ReturningVisitor { visitor: own.visitor, token }), resume)
                    else {
                        unreachable!()
                    };
                    hello
                }
                3 => {
                    let token = AgentToken::new("wrong-token").expect("a valid token");
                    Hello { version: PROTOCOL_VERSION, credentials: Credentials::Agent { token }, resume }
                }
                _ => Hello { version: PROTOCOL_VERSION, credentials: Credentials::AgentCookie, resume },
            };
            (frame(&ClientFrame::Hello(hello)), Expect::Fatal(ErrorCode::Unauthorized))
        }
        // Any frame first: one not a hello, or a hello of another version, is refused.
        29 => {
            let mut context = Context {
                role: Role::Visitor { visitor: own.visitor, conversation: own.conversation },
                agent_id: harness.agent_id,
                pool: pool.to_vec(),
                last_seq: last_seq.clone(),
                sent_ids: Vec::new(),
                next_id: 0,
            };
            let frame = client_frame(u, &mut context)?;
            let expect = match first_frame_fate(&codec::encode(&frame)) {
                Some(code) => Expect::Fatal(code),
                None => Expect::Unknown,
            };
            (WsMessage::Binary(codec::encode(&frame).into()), expect)
        }
        30 => (WsMessage::Text(u.arbitrary::<String>()?.into()), Expect::Fatal(ErrorCode::Malformed)),
        // Raw bytes: refused as the relay's handshake reads them.
        _ => {
            let bytes: Vec<u8> = u.arbitrary()?;
            let expect = match first_frame_fate(&bytes) {
                Some(code) => Expect::Fatal(code),
                None => Expect::Unknown,
            };
            (WsMessage::Binary(bytes.into()), expect)
        }
    })
}

fn own_last(own: &PoolVisitor, last_seq: &HashMap<ConversationId, Seq>) -> Seq {
    last_seq.get(&own.conversation).copied().unwrap_or(Seq::ZERO)
}

/// The error the handshake answers a first message with; `None` for a
/// hello, whose fate depends on its credentials.
fn first_frame_fate(bytes: &[u8]) -> Option<ErrorCode> {
    match codec::decode::<ClientFrame>(bytes, &RELAY_LIMITS) {
        Ok(ClientFrame::Hello(hello)) if hello.version != PROTOCOL_VERSION => Some(ErrorCode::UnsupportedVersion),
        Ok(ClientFrame::Hello(_)) => None,
        Ok(_) => Some(ErrorCode::HelloExpected),
        Err(error) => {
            let version = match error {
                codec::DecodeError::Malformed(_) | codec::DecodeError::TrailingBytes(_) => {
                    codec::peek_hello_version(bytes)
                }
                codec::DecodeError::FrameTooLarge { .. } | codec::DecodeError::BodyTooLarge { .. } => None,
            };
            match version {
                Some(version) if version != PROTOCOL_VERSION => Some(ErrorCode::UnsupportedVersion),
                _ => Some(error.code()),
            }
        }
    }
}

/// The error that ends an established connection on this message, if any.
fn live_fate(bytes: &[u8]) -> Option<ErrorCode> {
    match codec::decode::<ClientFrame>(bytes, &RELAY_LIMITS) {
        Ok(ClientFrame::Hello(_)) => Some(ErrorCode::HelloExpected),
        Ok(_) => None,
        Err(error) => Some(error.code()),
    }
}

/// The next message of a script, and the error it must end the connection with.
fn step(u: &mut Unstructured<'_>, context: &mut Context) -> Drawn<(WsMessage, Option<ErrorCode>)> {
    let bytes = match u.int_in_range(0..=63u8)? {
        0 => return Ok((WsMessage::Text(u.arbitrary::<String>()?.into()), Some(ErrorCode::Malformed))),
        1 | 2 => u.arbitrary::<Vec<u8>>()?,
        _ => codec::encode(&client_frame(u, context)?),
    };
    let fate = live_fate(&bytes);
    Ok((WsMessage::Binary(bytes.into()), fate))
}

fn client_frame(u: &mut Unstructured<'_>, context: &mut Context) -> Drawn<ClientFrame> {
    Ok(match u.int_in_range(0..=40u8)? {
        0 => {
            let credentials = match u.int_in_range(0..=2u8)? {
                0 => Credentials::Visitor { site: SiteKey::new("demo").expect("a valid site key"), returning: None },
                1 => Credentials::AgentCookie,
                _ => Credentials::Agent { token: AgentToken::new("x").expect("a valid token") },
            };
            ClientFrame::Hello(Hello { version: u.arbitrary()?, credentials, resume: Vec::new() })
        }
        1..=12 => {
            let conversation = conversation(u, context)?;
            let client_id = if !context.sent_ids.is_empty() && u.ratio(1, 4)? {
                context.sent_ids[u.choose_index(context.sent_ids.len())?]
            } else {
                context.next_id += 1;
                ClientMessageId(context.next_id ^ u128::from(u.arbitrary::<u32>()?) << 96)
            };
            context.sent_ids.push(client_id);
            ClientFrame::Send(Send { conversation, client_id, body: body(u, context)? })
        }
        13..=16 => {
            let conversation = conversation(u, context)?;
            ClientFrame::Join(Join { conversation, after: seq_near(u, context.last(conversation))? })
        }
        17 | 18 => {
            let conversation = conversation(u, context)?;
            let kind = if u.arbitrary()? { ReceiptKind::Read } else { ReceiptKind::Delivered };
            ClientFrame::Ack(Ack { conversation, kind, up_to: seq_near(u, context.last(conversation))? })
        }
        19..=21 => {
            let draft = if u.arbitrary()? { Some(text(u)?) } else { None };
            ClientFrame::Typing(Typing { conversation: conversation(u, context)?, active: u.arbitrary()?, draft })
        }
        22 => {
            let nonce = u.arbitrary::<u64>()?;
            ClientFrame::Ping(Ping { nonce: if nonce == LAST_PING { nonce ^ 1 } else { nonce } })
        }
        23 => ClientFrame::Pong(Pong { nonce: u.arbitrary()? }),
        24..=26 => ClientFrame::Visit(Visit {
            url: text(u)?,
            title: text(u)?,
            referrer: if u.arbitrary()? { Some(text(u)?) } else { None },
        }),
        27 | 28 => ClientFrame::Identify(Identify {
            user_id: text(u)?,
            name: if u.arbitrary()? { Some(text(u)?) } else { None },
            email: if u.arbitrary()? { Some(text(u)?) } else { None },
            hash: if u.arbitrary()? { Some(u.arbitrary()?) } else { None },
        }),
        29 | 30 => {
            let count = u.int_in_range(0..=60usize)?;
            let set = (0..count)
                .map(|_| Ok(Attribute { key: u.arbitrary()?, value: u.arbitrary()? }))
                .collect::<Drawn<_>>()?;
            ClientFrame::Attributes(Attributes { set })
        }
        31..=37 => {
            let change = match u.int_in_range(0..=3u8)? {
                0 => Change::Take,
                1 => {
                    let to = if u.arbitrary()? { context.agent_id } else { AgentId(u.int_in_range(0..=8)?) };
                    Change::Transfer { to, note: text(u)? }
                }
                2 => Change::Close,
                _ => Change::Reopen,
            };
            ClientFrame::Update(Update { conversation: conversation(u, context)?, change })
        }
        _ => ClientFrame::Status(if u.arbitrary()? { AgentStatus::Online } else { AgentStatus::Away }),
    })
}

impl Context {
    fn last(&self, conversation: ConversationId) -> Seq {
        self.last_seq.get(&conversation).copied().unwrap_or(Seq::ZERO)
    }
}

fn conversation(u: &mut Unstructured<'_>, context: &Context) -> Drawn<ConversationId> {
    let own = match context.role {
        Role::Visitor { conversation, .. } => conversation,
        Role::Agent => context.pool[0].conversation,
    };
    Ok(match u.int_in_range(0..=7u8)? {
        0..=3 => own,
        4 => context.pool[u.choose_index(context.pool.len())?].conversation,
        5 => ConversationId(0),
        6 => ConversationId(u.int_in_range(0..=64)?),
        _ => ConversationId(u.arbitrary()?),
    })
}

/// A seq at, just before or past `last`, or anywhere.
fn seq_near(u: &mut Unstructured<'_>, last: Seq) -> Drawn<Seq> {
    Ok(match u.int_in_range(0..=7u8)? {
        0..=3 => last,
        4 => Seq(last.0.saturating_sub(u.int_in_range(1..=5)?)),
        5 => Seq(last.0 + u.int_in_range(1..=3)?),
        6 => Seq::ZERO,
        _ => Seq(u.arbitrary()?),
    })
}

/// User text: usually short and arbitrary; sometimes blank, or at, over or
/// far over the body limit.
fn text(u: &mut Unstructured<'_>) -> Drawn<String> {
    let max = DEFAULT_LIMITS.max_body_bytes as usize;
    Ok(match u.int_in_range(0..=31u8)? {
        0 => String::new(),
        1 => " \n\t\u{3000}".into(),
        2 => "é".repeat(max / 2),
        3 => "a".repeat(max + 1),
        4 => "b".repeat(70_000),
        _ => u.arbitrary()?,
    })
}

fn body(u: &mut Unstructured<'_>, context: &Context) -> Drawn<Body> {
    Ok(match u.int_in_range(0..=9u8)? {
        0..=6 => Body::Text(text(u)?),
        7 | 8 => Body::Note(text(u)?),
        _ => {
            let agent = AgentRef { id: context.agent_id, name: u.arbitrary()? };
            Body::Event(match u.int_in_range(0..=3u8)? {
                0 => ConversationEvent::Assigned { to: agent, by: None },
                1 => ConversationEvent::Transferred { from: agent.clone(), to: agent },
                2 => ConversationEvent::Closed { by: agent },
                _ => ConversationEvent::Reopened { by: Some(agent) },
            })
        }
    })
}

/// What came back on one connection.
#[derive(Debug, Default)]
struct Log {
    frames: Vec<ServerFrame>,
    ending: Ending,
    close_code: Option<u16>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The final ping was answered.
    Pong,
    /// The relay closed the connection (or it broke).
    #[default]
    Closed,
    /// Nothing came for `ANSWER_TIMEOUT`.
    TimedOut,
}

/// Checks everything the relay sent on one connection; `role` is `None`
/// when it was never welcomed.
fn check_log(
    harness: &Harness,
    role: Option<Role>,
    log: &Log,
    expect: Expect,
    sent: &HashSet<ClientMessageId>,
    pings: &HashSet<u64>,
) {
    let context = || format!("expected {expect:?}, ended {:?}, got {:#?}", log.ending, log.frames);
    assert!(log.ending != Ending::TimedOut, "the relay stopped answering: {}", context());
    let mut fatal = None;
    for (i, frame) in log.frames.iter().enumerate() {
        if let Some(code) = fatal {
            // After the fatal error only a Closing may come.
            let ServerFrame::Closing(closing) = frame else {
                panic!("{frame:?} after the fatal {code:?}: {}", context());
            };
            assert_eq!(closing.reason, CloseReason::ProtocolViolation, "{}", context());
            assert_eq!(closing.reconnect_after_ms, None, "{}", context());
            assert_eq!(i, log.frames.len() - 1, "more after Closing: {}", context());
            continue;
        }
        match frame {
            ServerFrame::Error(error) => {
                assert!(!error.text.is_empty(), "an error without a text: {error:?}");
                assert!(error.code != ErrorCode::Internal, "the relay failed: {error:?}: {}", context());
                if error.reconnect {
                    assert!(
                        matches!(error.code, ErrorCode::Forbidden | ErrorCode::Conflict),
                        "a refusal that lets the client go on with {error:?}: {}",
                        context()
                    );
                } else {
                    if expect != Expect::Unknown {
                        assert_eq!(expect, Expect::Fatal(error.code), "an unexpected fatal {error:?}: {}", context());
                    }
                    fatal = Some(error.code);
                }
            }
            ServerFrame::Closing(closing) => panic!("closed without an error: {closing:?}: {}", context()),
            ServerFrame::Welcome(_) => panic!("a second welcome: {}", context()),
            ServerFrame::Accepted(accepted) => {
                assert!(sent.contains(&accepted.client_id), "accepted an id never sent: {}", context());
            }
            ServerFrame::Rejected(rejected) => {
                assert!(sent.contains(&rejected.client_id), "rejected an id never sent: {}", context());
            }
            ServerFrame::Pong(pong) => assert!(pings.contains(&pong.nonce), "a pong for no ping: {}", context()),
            ServerFrame::Message(message) => {
                assert!(message.prev < message.seq, "prev {} >= seq {}", message.prev, message.seq);
            }
            _ => {}
        }
        if let Some(Role::Visitor { visitor, conversation }) = role {
            check_visitor_sees(visitor, conversation, frame);
        }
    }
    match expect {
        Expect::Live => assert_eq!(log.ending, Ending::Pong, "the final ping went unanswered: {}", context()),
        Expect::Fatal(code) => {
            assert_eq!(fatal, Some(code), "no fatal error: {}", context());
            assert_eq!(log.ending, Ending::Closed, "{}", context());
            if let Some(close) = log.close_code {
                let wanted = if code == ErrorCode::FrameTooLarge { 1009 } else { 1008 };
                assert_eq!(close, wanted, "close code after {code:?}");
            }
        }
        Expect::Unknown => {}
    }
    let mut shared = harness.shared();
    for frame in &log.frames {
        let (conversation, seq) = match frame {
            ServerFrame::Accepted(a) => (a.conversation, a.seq),
            ServerFrame::Message(m) => (m.conversation, m.seq),
            _ => continue,
        };
        let last = shared.last_seq.entry(conversation).or_default();
        *last = (*last).max(seq);
    }
}

/// A visitor is shown its own conversation only, no private notes, and
/// none of the agents' frames.
fn check_visitor_sees(visitor: VisitorId, own: ConversationId, frame: &ServerFrame) {
    let conversation = match frame {
        ServerFrame::Message(message) => {
            assert!(message.body.is_for_visitors(), "a visitor was sent a private note: {message:?}");
            Some(message.conversation)
        }
        ServerFrame::ReplayComplete(complete) => Some(complete.conversation),
        ServerFrame::Receipt(receipt) => Some(receipt.conversation),
        ServerFrame::Typing(typing) => {
            assert!(typing.draft.is_none(), "a visitor was sent a draft: {typing:?}");
            Some(typing.conversation)
        }
        ServerFrame::Conversation(_) | ServerFrame::Roster(_) => panic!("a visitor was sent {frame:?}"),
        ServerFrame::Visitor(profile) => {
            assert_eq!(profile.visitor, visitor, "a visitor was sent another's profile");
            None
        }
        _ => None,
    };
    if let Some(conversation) = conversation {
        assert_eq!(conversation, own, "a visitor was sent another conversation: {frame:?}");
    }
}
