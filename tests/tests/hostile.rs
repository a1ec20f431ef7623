//! Hostile input beyond `bad_input.rs`: floods, slow and half-open
//! clients, forged credentials and cursors, another site's agent, odd
//! paths. In every test the relay stays up, a healthy visitor and agent
//! keep chatting, and nothing is stored that should not be.
//!
//! Covered elsewhere and not repeated here: garbage, text, oversized and
//! wrong-version hellos, a forged visitor token, another visitor's Join and
//! Send, oversized and blank bodies (`bad_input.rs`); a client that stops
//! answering pings (`spine.rs`); a forged identity hash
//! (`visitor_profile.rs`); another site's agent and non-admins on every
//! HTTP route (`http_api.rs`).

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use kefu_protocol::frame::{
    Ack, AgentStatus, Attribute, Attributes, Body, Change, CloseReason, Closing, ConversationEvent, Credentials,
    Cursor, ErrorCode, ErrorFrame, Hello, Identify, Identity, Join, Message, ReceiptKind, ReturningVisitor, Send,
    Typing, Update, Visit,
};
use kefu_protocol::ids::{AgentToken, ClientMessageId, ConversationId, Seq, SiteKey};
use kefu_protocol::{ClientFrame, PROTOCOL_VERSION, ServerFrame, codec};
use kefu_sdk::{Client, Events};
use kefu_tests::raw::{Raw, hello};
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, PATIENCE, Relay, collect, message, text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A visitor and an agent chatting through the SDK: the bystanders every
/// test checks on at the end.
struct Pair {
    agent: Client,
    agent_events: Events,
    visitor: Client,
    _visitor_events: Events,
    conversation: ConversationId,
    said: usize,
}

impl Pair {
    async fn start(relay: &Relay) -> Result<Pair> {
        let token = relay.admin_token().await?;
        let (agent, agent_events) = Client::agent(relay.ws_url(), &token)?;
        let (visitor, visitor_events) = Client::visitor(relay.ws_url(), "demo")?;
        let conversation = visitor.conversation().await?;
        let mut pair = Pair { agent, agent_events, visitor, _visitor_events: visitor_events, conversation, said: 0 };
        pair.still_chatting().await?;
        Ok(pair)
    }

    /// The visitor says something and the agent hears it, as the next
    /// message of the conversation: nothing else got stored in between.
    async fn still_chatting(&mut self) -> Result<()> {
        self.said += 1;
        let line = format!("healthy line {}", self.said);
        self.visitor.send(self.conversation, Body::Text(line.clone())).await?;
        let conversation = self.conversation;
        let got = collect(&mut self.agent_events, 1, |e| message(e).filter(|m| m.conversation == conversation)).await?;
        ensure!(text(&got[0]) == line, "the agent heard {:?}, not {line:?}", text(&got[0]));
        ensure!(got[0].seq.0 == self.said as u64, "seq {} for line {}", got[0].seq.0, self.said);
        Ok(())
    }
}

fn send(conversation: ConversationId, n: u128, text: &str) -> ClientFrame {
    ClientFrame::Send(Send { conversation, client_id: ClientMessageId(n), body: Body::Text(text.into()) })
}

/// Every message stored in `conversation`, read by the admin over HTTP.
async fn stored(relay: &Relay, conversation: ConversationId) -> Result<Vec<Message>> {
    let token = relay.admin_token().await?;
    let url = format!("{}/api/conversations/{}/messages?limit=100", relay.http_url(), conversation.0);
    let response = reqwest::Client::new().get(url).bearer_auth(token).send().await?.error_for_status()?;
    Ok(response.json().await?)
}

fn visitor_identity(welcome_identity: Identity) -> Result<(kefu_protocol::ids::VisitorId, ConversationId)> {
    match welcome_identity {
        Identity::Visitor { visitor, conversation, .. } => Ok((visitor, conversation)),
        Identity::Agent { .. } => bail!("not a visitor"),
    }
}

/// Reads to the close; returns the frames and the close code.
async fn to_close(raw: &mut Raw) -> Result<(Vec<ServerFrame>, Option<u16>)> {
    raw.drain_to_close().await
}

/// The first error frame among `frames`.
fn first_error(frames: &[ServerFrame]) -> Option<&ErrorFrame> {
    frames.iter().find_map(|f| match f {
        ServerFrame::Error(e) => Some(e),
        _ => None,
    })
}

/// The next error frame, skipping anything else; fails on a close.
async fn next_error(raw: &mut Raw) -> Result<ErrorFrame> {
    raw.until(|f| match f {
        ServerFrame::Error(e) => Some(e.clone()),
        _ => None,
    })
    .await
}

// ---------------------------------------------------------------------
// 1. Rate limits

#[tokio::test]
async fn a_connection_flood_from_one_address_is_answered_429_and_the_pair_keeps_chatting() -> Result<()> {
    let relay = Relay::start_with(&["--connections-per-minute-per-ip", "1", "--connection-burst", "6"]).await?;
    // The pair's two links take two of the six.
    let mut pair = Pair::start(&relay).await?;
    let mut open = Vec::new();
    let mut refused = None;
    for _ in 0..20 {
        match Raw::try_connect(&relay.ws_url()).await? {
            Ok(raw) => open.push(raw),
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    assert_eq!(refused, Some(429), "the flood was refused with 429");
    assert_eq!(open.len(), 4, "the burst, minus the pair's two links, got through");
    // The refusal says how long to wait, over plain HTTP too.
    let response = reqwest::Client::new()
        .get(relay.ws_url().replace("ws://", "http://"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await?;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers().get("retry-after").context("retry-after")?.to_str()?.parse()?;
    assert!((1..=60).contains(&retry_after), "retry after {retry_after} s");
    assert!(response.text().await?.contains("too many connections"));
    // The links that were let in work, and plain HTTP is not limited by it.
    let welcome = open[0].hello_visitor("demo").await?;
    assert!(matches!(welcome.identity, Identity::Visitor { .. }));
    reqwest::get(format!("{}/healthz", relay.http_url())).await?.error_for_status()?;
    pair.still_chatting().await
}

#[tokio::test]
async fn login_attempts_are_limited_per_address_even_with_the_right_password() -> Result<()> {
    let relay = Relay::start_with(&["--logins-per-minute-per-ip", "3"]).await?;
    let mut pair = Pair::start(&relay).await?; // one login
    let login = |password: &'static str| {
        let url = format!("{}/api/login", relay.http_url());
        async move {
            let body = serde_json::json!({ "email": ADMIN_EMAIL, "password": password });
            reqwest::Client::new().post(url).json(&body).send().await
        }
    };
    assert_eq!(login("guess 1").await?.status(), 401);
    assert_eq!(login("guess 2").await?.status(), 401);
    let limited = login(ADMIN_PASSWORD).await?;
    assert_eq!(limited.status(), 429, "the fourth attempt in a minute is refused before the password is checked");
    assert!(limited.headers().contains_key("retry-after"));
    let body: serde_json::Value = limited.json().await?;
    assert!(body["error"].as_str().is_some_and(|e| e.contains("too many login attempts")), "{body}");
    pair.still_chatting().await
}

/// Tries to log in as `email` from the local address `from` (any of
/// 127.0.0.0/8 reaches the relay), optionally through a proxy that says
/// `X-Forwarded-For: forwarded`; returns the status and the error text.
async fn login_from(
    relay: &Relay,
    from: [u8; 4],
    forwarded: Option<&str>,
    email: &str,
    password: &str,
) -> Result<(u16, String)> {
    let client = reqwest::Client::builder().local_address(std::net::IpAddr::from(from)).build()?;
    let mut request = client
        .post(format!("{}/api/login", relay.http_url()))
        .json(&serde_json::json!({ "email": email, "password": password }));
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    Ok((status, body["error"].as_str().unwrap_or_default().to_owned()))
}

#[tokio::test]
async fn login_attempts_on_one_account_are_limited_whatever_the_address() -> Result<()> {
    let relay = Relay::start_with(&["--logins-per-hour-per-account", "3"]).await?;
    let admin = relay.admin_token().await?;
    let ann = serde_json::json!({ "email": "ann@kefu.test", "name": "Ann", "password": "ann's password" });
    let created =
        reqwest::Client::new().post(format!("{}/api/agents", relay.http_url())).bearer_auth(&admin).json(&ann).send();
    ensure!(created.await?.status() == 201);

    // Three guesses from three addresses: each its first from there.
    for (n, from) in [[127, 0, 0, 2], [127, 0, 0, 3], [127, 0, 0, 4]].into_iter().enumerate() {
        let (status, _) = login_from(&relay, from, None, "ann@kefu.test", &format!("guess {n}")).await?;
        ensure!(status == 401, "guess {n}: {status}");
    }
    let (status, error) = login_from(&relay, [127, 0, 0, 5], None, "ANN@kefu.test", "ann's password").await?;
    ensure!(status == 429, "the account's fourth attempt within the hour, right password and fresh address: {status}");
    ensure!(error.contains("for this account"), "{error}");
    let (status, _) = login_from(&relay, [127, 0, 0, 5], None, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    ensure!(status == 200, "another account from the same address: {status}");
    Ok(())
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget_and_nobody_else_is_believed() -> Result<()> {
    let relay = Relay::start_with(&["--trusted-proxy", "127.0.0.1/32", "--logins-per-minute-per-ip", "2"]).await?;
    let proxy = [127, 0, 0, 1];
    let guess = |from, forwarded: &'static str| login_from(&relay, from, Some(forwarded), ADMIN_EMAIL, "guess");

    ensure!(guess(proxy, "203.0.113.1").await?.0 == 401);
    ensure!(guess(proxy, "203.0.113.1").await?.0 == 401);
    let (status, error) = guess(proxy, "203.0.113.1").await?;
    ensure!(status == 429 && error.contains("from this address"), "the client behind the proxy: {status} {error}");
    ensure!(guess(proxy, "203.0.113.2").await?.0 == 401, "another client behind the same proxy has its own budget");
    ensure!(
        guess(proxy, "198.51.100.7, 203.0.113.1").await?.0 == 429,
        "what the client wrote left of the proxy's entry is not believed"
    );

    // Not a trusted proxy: its X-Forwarded-For is ignored, it is counted
    // as itself however it names itself.
    let stranger = [127, 0, 0, 2];
    ensure!(guess(stranger, "192.0.2.1").await?.0 == 401);
    ensure!(guess(stranger, "192.0.2.2").await?.0 == 401);
    ensure!(guess(stranger, "192.0.2.3").await?.0 == 429, "a forged X-Forwarded-For buys no fresh budget");
    Ok(())
}

#[tokio::test]
async fn a_frame_flood_is_refused_without_storing_then_closed_with_1008() -> Result<()> {
    let relay = Relay::start_with(&["--frames-per-second", "5", "--frame-burst", "10"]).await?;
    let mut pair = Pair::start(&relay).await?;
    let (mut flood, welcome) = Raw::visitor(&relay.ws_url(), "demo").await?;
    let (_, own) = visitor_identity(welcome.identity)?;

    // Typing notices past the burst are refused with an error each; the
    // connection stays up while the flood is short.
    for _ in 0..12 {
        flood.send(&ClientFrame::Typing(Typing { conversation: own, active: true, draft: None })).await?;
    }
    let error = next_error(&mut flood).await?;
    assert_eq!(error.code, ErrorCode::RateLimited);
    assert!(error.reconnect);
    assert!(error.text.contains("slow down"), "{}", error.text);

    // Wait for the bucket to refill, then flood with sends: past the
    // burst one send is deferred (to be sent again later, not lost) and
    // every later one is set aside unanswered, since storing it would put
    // it before the deferred one. Then flood with typing notices, which
    // are refused and, kept up, closed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for n in 0..100 {
        flood.send(&send(own, n, &format!("flood {n}"))).await?;
    }
    let mut typed = 0;
    for _ in 0..100 {
        if flood.send(&ClientFrame::Typing(Typing { conversation: own, active: true, draft: None })).await.is_err() {
            break;
        }
        typed += 1;
    }
    let (frames, code) = to_close(&mut flood).await?;
    let accepted: Vec<_> = frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Accepted(a) => Some(a.seq),
            _ => None,
        })
        .collect();
    let deferred: Vec<_> = frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Deferred(d) => Some(d.client_id.0),
            _ => None,
        })
        .collect();
    assert!((10..=13).contains(&accepted.len()), "about the burst was accepted: {} of 100", accepted.len());
    assert_eq!(deferred, [accepted.len() as u128], "the first send past the burst is deferred, once: {frames:?}");
    assert!(!frames.iter().any(|f| matches!(f, ServerFrame::Rejected(_))), "nothing is rejected: {frames:?}");
    assert_eq!(first_error(&frames).map(|e| e.code), Some(ErrorCode::RateLimited), "{frames:?}");
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, ServerFrame::Closing(Closing { reason: CloseReason::ProtocolViolation, .. }))),
        "{frames:?}"
    );
    assert_eq!(code, Some(1008));
    let refused = frames.iter().filter(|f| matches!(f, ServerFrame::Error(_))).count();
    assert!(refused < typed, "the typing flood was cut off before it was all answered: {refused} of {typed}");

    // Exactly what was accepted is stored, nothing of what was refused.
    let kept = stored(&relay, own).await?;
    assert_eq!(kept.iter().map(|m| m.seq).collect::<Vec<_>>(), accepted);
    assert!(kept.iter().enumerate().all(|(n, m)| text(m) == format!("flood {n}")));
    pair.still_chatting().await
}

// ---------------------------------------------------------------------
// 2. Slow clients

/// Writes `head` one byte at a time, `every` apart, until the relay closes
/// the connection; returns how long that took, or fails if it never does.
async fn drip(addr: std::net::SocketAddr, head: &[u8], every: Duration) -> Result<Duration> {
    let started = std::time::Instant::now();
    let stream = TcpStream::connect(addr).await?;
    let (mut read, mut write) = stream.into_split();
    let closed = async move {
        let mut buffer = [0u8; 256];
        // EOF, a reset, or a 408 then EOF: all mean "cut off".
        loop {
            match read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let dripping = async move {
        for byte in head {
            tokio::time::sleep(every).await;
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = closed => Ok(started.elapsed()),
        () = dripping => bail!("unreachable"),
        () = tokio::time::sleep(PATIENCE) => bail!("the relay waited {PATIENCE:?} for the headers"),
    }
}

#[tokio::test]
async fn slowloris_headers_and_a_websocket_that_never_says_hello_are_cut_off() -> Result<()> {
    let relay = Relay::start_with(&["--header-read-timeout-ms", "1000", "--hello-timeout-ms", "1000"]).await?;
    let mut pair = Pair::start(&relay).await?;
    let get = b"GET /healthz HTTP/1.1\r\nHost: kefu.test\r\nX-Slow: 1234567890123456789012345678901234567890\r\n\r\n";
    let upgrade = b"GET /ws HTTP/1.1\r\nHost: kefu.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Slow: 1234567890\r\n\r\n";
    let every = Duration::from_millis(100);
    // A few at once: each is cut off on its own clock, and the relay keeps
    // serving others meanwhile.
    let (plain, ws, silent, idle) = tokio::join!(
        drip(relay.addr(), get, every),
        drip(relay.addr(), upgrade, every),
        drip(relay.addr(), b"", every),
        async {
            // A keep-alive connection that goes idle after one request.
            let mut stream = TcpStream::connect(relay.addr()).await?;
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: kefu.test\r\n\r\n").await?;
            let started = std::time::Instant::now();
            let mut buffer = vec![0u8; 4096];
            let n = stream.read(&mut buffer).await?;
            ensure!(buffer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buffer[..n]));
            let rest =
                tokio::time::timeout(PATIENCE, async { while stream.read(&mut buffer).await.is_ok_and(|n| n > 0) {} });
            rest.await.context("an idle keep-alive connection was kept forever")?;
            Ok::<_, anyhow::Error>(started.elapsed())
        },
    );
    for (what, took) in [("slow GET", plain?), ("slow upgrade", ws?), ("silent", silent?), ("idle", idle?)] {
        eprintln!("{what} cut off after {took:?}");
        assert!(took < Duration::from_secs(5), "{what} took {took:?} to be cut off");
    }

    // Upgraded, then never a hello: dropped at the hello timeout.
    let mut mute = Raw::connect(&relay.ws_url()).await?;
    let started = std::time::Instant::now();
    let (frames, _) = to_close(&mut mute).await?;
    assert!(frames.is_empty(), "{frames:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    pair.still_chatting().await
}

#[tokio::test]
async fn a_visitor_that_never_reads_is_disconnected_and_the_sender_is_not_held_up() -> Result<()> {
    // The relay never gives up on a write or a silent peer during this
    // test, so nothing but a full queue can end the stuck visitor's link:
    // a sender held up until that visitor was dropped would be held up
    // for good, and the test fails instead of passing slowly.
    let relay = Relay::start_with(&[
        "--write-timeout-ms",
        "600000",
        "--heartbeat-interval-ms",
        "600000",
        "--outbound-queue",
        "16",
        "--frames-per-second",
        "10000",
        "--frame-burst",
        "10000",
    ])
    .await?;
    let mut pair = Pair::start(&relay).await?;
    let mut stuck = Raw::connect_with_receive_buffer(&relay.ws_url(), 4096).await?;
    let welcome = stuck.hello_visitor("demo").await?;
    let (_, stuck_conversation) = visitor_identity(welcome.identity)?;
    // Its first line makes its conversation (a hello stores nothing).
    stuck.send(&send(stuck_conversation, 1, "hello")).await?;
    stuck.until(|f| matches!(f, ServerFrame::Accepted(_)).then_some(())).await?;

    // The agent writes far more into the stuck visitor's conversation than
    // the kernel buffers and the visitor's queue hold, without waiting on
    // the visitor.
    let token = relay.admin_token().await?;
    let (agent, _events) = Client::agent(relay.ws_url(), &token)?;
    // More than the relay's send buffer (up to 4 MiB on Linux) holds.
    const TOTAL: usize = 500;
    let line = "x".repeat(15 * 1024);
    let all_accepted = async {
        for n in 0..TOTAL {
            agent.send(stuck_conversation, Body::Text(format!("{n} {line}"))).await?;
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout(PATIENCE, all_accepted).await.context("the sender was held up by the stuck visitor")??;
    // And the others chat on while the stuck visitor is still connected
    // (it has not read a byte yet, so its link cannot have ended).
    pair.still_chatting().await?;

    // Once it reads, the relay's blocked write goes through and the relay
    // finds the queue overflowed: what the buffers held, then the end.
    let (frames, code) = to_close(&mut stuck).await?;
    let got = frames.iter().filter(|f| matches!(f, ServerFrame::Message(_))).count();
    eprintln!("the stuck visitor got {got} of {TOTAL} before being cut off (close {code:?})");
    assert!(got < TOTAL, "the stuck visitor was disconnected, not waited for");
    let last = frames.last().map(|frame| format!("{frame:?}").chars().take(120).collect::<String>());
    assert!(
        frames.last()
            == Some(&ServerFrame::Closing(Closing { reason: CloseReason::TooSlow, reconnect_after_ms: Some(1_000) })),
        "not told it was too slow, last; the last frame: {last:?}"
    );
    assert_eq!(code, Some(1013), "closed with try-again-later");
    // Nothing was lost: it is all stored, for the visitor's next visit.
    let newest = stored(&relay, stuck_conversation).await?;
    // (After the visitor's own first line.)
    assert_eq!(newest.last().map(|m| m.seq), Some(Seq(TOTAL as u64 + 1)));
    pair.still_chatting().await
}

/// A TCP forwarder that can freeze: stop passing bytes both ways while
/// keeping both sockets open, the way a client behind a dead NAT or a
/// pulled cable looks to the relay (no FIN, no RST). Reports when the
/// relay closes its end.
struct Freezer {
    addr: std::net::SocketAddr,
    frozen: tokio::sync::watch::Sender<bool>,
    relay_closed: tokio::sync::oneshot::Receiver<()>,
}

impl Freezer {
    async fn start(upstream: std::net::SocketAddr) -> Result<Freezer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (frozen, frozen_rx) = tokio::sync::watch::channel(false);
        let (closed_tx, relay_closed) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let Ok((client, _)) = listener.accept().await else { return };
            let Ok(server) = TcpStream::connect(upstream).await else { return };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let up_frozen = frozen_rx.clone();
            let up = tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                while let Ok(n @ 1..) = client_read.read(&mut buffer).await {
                    if *up_frozen.borrow() {
                        continue; // swallowed
                    }
                    if server_write.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
                // Keep the relay's side open: no FIN while frozen.
                std::future::pending::<()>().await;
            });
            let mut buffer = vec![0u8; 16 * 1024];
            while let Ok(n @ 1..) = server_read.read(&mut buffer).await {
                if !*frozen_rx.borrow() {
                    let _ = client_write.write_all(&buffer[..n]).await;
                }
            }
            let _ = closed_tx.send(());
            up.abort();
        });
        Ok(Freezer { addr, frozen, relay_closed })
    }
}

#[tokio::test]
async fn a_half_open_client_is_dropped_at_the_heartbeat_deadline() -> Result<()> {
    let relay = Relay::start_with(&["--heartbeat-interval-ms", "300", "--heartbeat-grace-ms", "300"]).await?;
    let mut pair = Pair::start(&relay).await?;
    let freezer = Freezer::start(relay.addr()).await?;
    let (mut client, welcome) = Raw::visitor(&format!("ws://{}/ws", freezer.addr), "demo").await?;
    let (_, conversation) = visitor_identity(welcome.identity)?;
    // Alive while it answers.
    let ping = client
        .until(|f| match f {
            ServerFrame::Ping(p) => Some(*p),
            _ => None,
        })
        .await?;
    client.send(&ClientFrame::Pong(kefu_protocol::frame::Pong { nonce: ping.nonce })).await?;
    client.send(&send(conversation, 1, "before the cable was pulled")).await?;
    client.until(|f| matches!(f, ServerFrame::Accepted(_)).then_some(())).await?;

    let frozen_at = std::time::Instant::now();
    freezer.frozen.send_replace(true);
    // The client still writes into the void; the relay must not count it.
    let _ = client.send(&send(conversation, 2, "never arrives")).await;
    tokio::time::timeout(Duration::from_secs(10), freezer.relay_closed)
        .await
        .context("the relay kept a half-open connection past its heartbeat deadline")?
        .context("forwarder ended")?;
    let took = frozen_at.elapsed();
    eprintln!("half-open client dropped {took:?} after it went silent (deadline 600 ms)");
    assert!(took >= Duration::from_millis(300), "not before the deadline: {took:?}");
    let kept = stored(&relay, conversation).await?;
    assert_eq!(kept.iter().map(text).collect::<Vec<_>>(), ["before the cable was pulled"]);
    pair.still_chatting().await
}

// ---------------------------------------------------------------------
// 3. Malformed frames, forged credentials and cursors

/// `frame` encoded, with `marker`'s bytes replaced by invalid UTF-8 of the
/// same length.
fn with_bad_utf8(frame: &ClientFrame, marker: &str) -> Result<Vec<u8>> {
    let mut bytes = codec::encode(frame);
    let at = bytes.windows(marker.len()).position(|w| w == marker.as_bytes()).context("marker not encoded")?;
    for (i, byte) in bytes[at..at + marker.len()].iter_mut().enumerate() {
        *byte = [0xff, 0xc3, 0x28, 0xa0][i % 4];
    }
    Ok(bytes)
}

#[tokio::test]
async fn invalid_utf8_inside_frames_is_malformed_and_nothing_is_stored() -> Result<()> {
    let relay = Relay::start().await?;
    let mut pair = Pair::start(&relay).await?;

    // In a send's text.
    let (mut raw, welcome) = Raw::visitor(&relay.ws_url(), "demo").await?;
    let (_, own) = visitor_identity(welcome.identity)?;
    raw.send(&send(own, 1, "valid first")).await?;
    raw.until(|f| matches!(f, ServerFrame::Accepted(_)).then_some(())).await?;
    raw.send_bytes(with_bad_utf8(&send(own, 2, "MARKMARK"), "MARKMARK")?).await?;
    let (frames, code) = to_close(&mut raw).await?;
    assert_eq!(first_error(&frames).map(|e| e.code), Some(ErrorCode::Malformed), "{frames:?}");
    assert_eq!(code, Some(1008));
    assert!(!frames.iter().any(|f| matches!(f, ServerFrame::Accepted(_))), "{frames:?}");
    assert_eq!(stored(&relay, own).await?.iter().map(text).collect::<Vec<_>>(), ["valid first"]);

    // In a hello's site key.
    let mut raw = Raw::connect(&relay.ws_url()).await?;
    let visitor_hello = hello(Credentials::Visitor { site: SiteKey::new("demoMARK")?, returning: None });
    raw.send_bytes(with_bad_utf8(&visitor_hello, "demoMARK")?).await?;
    let (frames, code) = to_close(&mut raw).await?;
    assert_eq!(first_error(&frames).map(|e| e.code), Some(ErrorCode::Malformed), "{frames:?}");
    assert_eq!(code, Some(1008));

    // In a visitor's reported name.
    let (mut raw, welcome) = Raw::visitor(&relay.ws_url(), "demo").await?;
    let (visitor, conversation) = visitor_identity(welcome.identity)?;
    // Written first, so the visitor is stored and its panel can be read.
    raw.send(&send(conversation, 1, "hello")).await?;
    raw.until(|f| matches!(f, ServerFrame::Accepted(_)).then_some(())).await?;
    let identify = ClientFrame::Identify(Identify {
        user_id: "u1".into(),
        name: Some("NAMENAME".into()),
        email: None,
        hash: None,
    });
    raw.send_bytes(with_bad_utf8(&identify, "NAMENAME")?).await?;
    let (frames, _) = to_close(&mut raw).await?;
    assert_eq!(first_error(&frames).map(|e| e.code), Some(ErrorCode::Malformed), "{frames:?}");
    let token = relay.admin_token().await?;
    let panel: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/visitors/{}", relay.http_url(), visitor.0))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert!(panel["profile"]["name"].is_null(), "nothing of it was stored: {panel}");
    pair.still_chatting().await
}

#[tokio::test]
async fn tampered_revoked_and_foreign_tokens_are_refused() -> Result<()> {
    let relay = Relay::start().await?;
    add_beta_site(&relay).await?;
    let mut pair = Pair::start(&relay).await?;
    let refused = |credentials: Credentials| {
        let url = relay.ws_url();
        async move {
            let mut raw = Raw::connect(&url).await?;
            raw.send(&hello(credentials)).await?;
            let (frames, code) = to_close(&mut raw).await?;
            ensure!(!frames.iter().any(|f| matches!(f, ServerFrame::Welcome(_))), "welcomed: {frames:?}");
            let error = first_error(&frames).cloned().context("no error frame")?;
            Ok::<_, anyhow::Error>((error, code))
        }
    };

    // A real agent token with one character changed.
    let token = relay.admin_token().await?;
    let last = token.chars().last().context("empty token")?;
    let tampered = format!("{}{}", &token[..token.len() - 1], if last == '0' { '1' } else { '0' });
    let (error, code) = refused(Credentials::Agent { token: AgentToken::new(tampered)? }).await?;
    assert_eq!(error.code, ErrorCode::Unauthorized);
    assert!(!error.reconnect);
    assert_eq!(code, Some(1008));

    // A token after its logout.
    let revoked = relay.admin_token().await?;
    let logout =
        reqwest::Client::new().post(format!("{}/api/logout", relay.http_url())).bearer_auth(&revoked).send().await?;
    ensure!(logout.status().is_success(), "logout: {}", logout.status());
    let (error, _) = refused(Credentials::Agent { token: AgentToken::new(revoked)? }).await?;
    assert_eq!(error.code, ErrorCode::Unauthorized);

    // A real visitor of site demo, with its real token, at site beta.
    let credentials = pair.visitor.returning_credentials().await?;
    let Credentials::Visitor { returning: Some(ReturningVisitor { visitor, token }), .. } = credentials else {
        bail!("not a returning visitor: {credentials:?}")
    };
    let at_beta = Credentials::Visitor {
        site: SiteKey::new("beta")?,
        returning: Some(ReturningVisitor { visitor, token: token.clone() }),
    };
    let (error, _) = refused(at_beta).await?;
    assert_eq!(error.code, ErrorCode::Unauthorized, "a visitor token is good for its own site only");
    // ... and the same credentials still work at demo.
    let mut raw = Raw::connect(&relay.ws_url()).await?;
    raw.send(&hello(Credentials::Visitor {
        site: SiteKey::new("demo")?,
        returning: Some(ReturningVisitor { visitor, token }),
    }))
    .await?;
    let welcome = raw.until(|f| match f {
        ServerFrame::Welcome(w) => Some(w.clone()),
        _ => None,
    });
    let (_, conversation) = visitor_identity(welcome.await?.identity)?;
    assert_eq!(conversation, pair.conversation);
    drop(raw);
    pair.still_chatting().await
}

#[tokio::test]
async fn cursors_past_the_end_or_into_another_conversation_leak_and_hide_nothing() -> Result<()> {
    let relay = Relay::start().await?;
    let mut pair = Pair::start(&relay).await?; // the victim's conversation has line 1

    // A resume cursor for another visitor's conversation, in the hello.
    let mut raw = Raw::connect(&relay.ws_url()).await?;
    raw.send(&ClientFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        credentials: Credentials::Visitor { site: SiteKey::new("demo")?, returning: None },
        resume: vec![Cursor { conversation: pair.conversation, seq: Seq::ZERO }],
    }))
    .await?;
    let mut own = None;
    let error = raw
        .until(|f| match f {
            ServerFrame::Welcome(w) => {
                own = visitor_identity(w.identity.clone()).ok().map(|(_, c)| c);
                None
            }
            ServerFrame::Message(m) => Some(Err(format!("LEAKED {m:?}"))),
            ServerFrame::Error(e) => Some(Ok(e.clone())),
            _ => None,
        })
        .await?
        .map_err(anyhow::Error::msg)?;
    assert_eq!(error.code, ErrorCode::Forbidden);
    let own = own.context("no welcome")?;

    // A join far past the end of its own conversation: the replay says
    // where the end really is, and new messages still arrive.
    raw.send(&send(own, 1, "one")).await?;
    raw.until(|f| matches!(f, ServerFrame::Accepted(_)).then_some(())).await?;
    raw.send(&ClientFrame::Join(Join { conversation: own, after: Seq(u64::MAX) })).await?;
    let last = raw
        .until(|f| match f {
            ServerFrame::ReplayComplete(r) if r.conversation == own => Some(r.last_seq),
            _ => None,
        })
        .await?;
    assert_eq!(last, Seq(1), "the cursor is clamped to the last message");
    let token = relay.admin_token().await?;
    let (agent, _events) = Client::agent(relay.ws_url(), &token)?;
    agent.send(own, Body::Text("answer after the bogus cursor".into())).await?;
    let answer = raw
        .until(|f| match f {
            ServerFrame::Message(m) if m.conversation == own => Some(m.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(text(&answer), "answer after the bogus cursor");
    assert_eq!((answer.seq, answer.prev), (Seq(2), Seq(1)));

    // A read mark far past the end marks only what exists.
    raw.send(&ClientFrame::Ack(Ack { conversation: own, kind: ReceiptKind::Read, up_to: Seq(u64::MAX) })).await?;
    let receipt = raw
        .until(|f| match f {
            ServerFrame::Receipt(r) if r.conversation == own => Some(*r),
            _ => None,
        })
        .await?;
    assert_eq!(receipt.up_to, Seq(2));
    assert_eq!(stored(&relay, own).await?.len(), 2);
    pair.still_chatting().await
}

// ---------------------------------------------------------------------
// 4. Another site's agent, and visitors, on the WebSocket

/// A second site, "beta", with an agent, written into the relay's store
/// beside the running relay (no HTTP route creates sites).
async fn add_beta_site(relay: &Relay) -> Result<()> {
    use kefu_relay::store::{Role, Store};
    reqwest::get(format!("{}/healthz", relay.http_url())).await?.error_for_status()?;
    let store = Store::open(relay.data_dir()).await?;
    let site = store.create_site(&SiteKey::new("beta")?, "Beta").await?;
    let hash = kefu_relay::auth::hash_password("beta password").map_err(|e| anyhow::anyhow!("{e}"))?;
    store.create_agent(site.id, "bo@beta.test", "Beta Agent", &hash, Role::Admin).await?;
    store.close().await;
    Ok(())
}

#[tokio::test]
async fn another_sites_agent_and_visitors_cannot_act_on_a_conversation_over_the_websocket() -> Result<()> {
    let relay = Relay::start().await?;
    add_beta_site(&relay).await?;
    let mut pair = Pair::start(&relay).await?;
    let target = pair.conversation;

    let beta_token = kefu_sdk::login(&relay.http_url(), "bo@beta.test", "beta password").await?.token;
    let mut beta = Raw::connect(&relay.ws_url()).await?;
    beta.send(&hello(Credentials::Agent { token: AgentToken::new(beta_token)? })).await?;
    beta.until(|f| matches!(f, ServerFrame::Welcome(_)).then_some(())).await?;

    let demo_agent_id = match pair.agent.identity().await? {
        Identity::Agent { agent, .. } => agent,
        Identity::Visitor { .. } => bail!("not an agent"),
    };
    let attempts = [
        ClientFrame::Join(Join { conversation: target, after: Seq::ZERO }),
        ClientFrame::Typing(Typing { conversation: target, active: true, draft: None }),
        ClientFrame::Ack(Ack { conversation: target, kind: ReceiptKind::Read, up_to: Seq(1) }),
        ClientFrame::Update(Update { conversation: target, change: Change::Take }),
        ClientFrame::Update(Update { conversation: target, change: Change::Close }),
        ClientFrame::Update(Update { conversation: target, change: Change::Reopen }),
        ClientFrame::Update(Update {
            conversation: target,
            change: Change::Transfer { to: demo_agent_id, note: "BETA-NOTE".into() },
        }),
    ];
    for attempt in &attempts {
        beta.send(attempt).await?;
        let answer = beta
            .until(|f| match f {
                ServerFrame::Error(e) => Some(Ok(e.code)),
                ServerFrame::Message(m) if m.conversation == target => Some(Err(format!("LEAKED {m:?}"))),
                ServerFrame::Conversation(c) if c.conversation == target => Some(Err(format!("LEAKED {c:?}"))),
                ServerFrame::Receipt(r) if r.conversation == target => Some(Err(format!("LEAKED {r:?}"))),
                _ => None,
            })
            .await?
            .map_err(anyhow::Error::msg)?;
        assert_eq!(answer, ErrorCode::Forbidden, "{attempt:?}");
    }
    beta.send(&send(target, 5, "BETA-INJECTED")).await?;
    let rejected = beta
        .until(|f| match f {
            ServerFrame::Rejected(r) => Some(r.clone()),
            _ => None,
        })
        .await?;
    assert_eq!((rejected.code, rejected.client_id), (ErrorCode::Forbidden, ClientMessageId(5)));
    // Profile reports are for visitors only.
    for frame in [
        ClientFrame::Visit(Visit { url: "https://x/BETA".into(), title: "BETA".into(), referrer: None }),
        ClientFrame::Identify(Identify { user_id: "BETA".into(), name: None, email: None, hash: None }),
        ClientFrame::Attributes(Attributes { set: vec![Attribute { key: "BETA".into(), value: "1".into() }] }),
    ] {
        beta.send(&frame).await?;
        assert_eq!(next_error(&mut beta).await?.code, ErrorCode::Forbidden, "{frame:?}");
    }

    // A visitor sending agents' frames.
    let (mut visitor, welcome) = Raw::visitor(&relay.ws_url(), "demo").await?;
    let (_, own) = visitor_identity(welcome.identity)?;
    for frame in [
        ClientFrame::Update(Update { conversation: own, change: Change::Take }),
        ClientFrame::Update(Update { conversation: own, change: Change::Close }),
        ClientFrame::Update(Update { conversation: target, change: Change::Close }),
        ClientFrame::Status(AgentStatus::Online),
    ] {
        visitor.send(&frame).await?;
        assert_eq!(next_error(&mut visitor).await?.code, ErrorCode::Forbidden, "{frame:?}");
    }
    // A visitor sending a private note or a system line.
    for (n, body) in [(1, Body::Note("NOTE".into())), (2, Body::Event(ConversationEvent::Reopened { by: None }))] {
        visitor.send(&ClientFrame::Send(Send { conversation: own, client_id: ClientMessageId(n), body })).await?;
        let rejected = visitor
            .until(|f| match f {
                ServerFrame::Rejected(r) => Some(r.code),
                _ => None,
            })
            .await?;
        assert_eq!(rejected, ErrorCode::Forbidden);
    }

    // Nothing changed: the conversation still holds only the pair's lines,
    // is still open and nobody took it.
    pair.still_chatting().await?;
    let kept = stored(&relay, target).await?;
    assert!(kept.iter().all(|m| text(m).starts_with("healthy line")), "{kept:?}");
    // The visitor's refused sends did not even make its conversation.
    let url = format!("{}/api/conversations/{}/messages", relay.http_url(), own.0);
    let own_status = reqwest::Client::new().get(url).bearer_auth(relay.admin_token().await?).send().await?.status();
    assert_eq!(own_status, 404, "the visitor's refused sends were stored");
    let token = relay.admin_token().await?;
    let list: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/conversations", relay.http_url()))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    let row = list
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"].as_u64() == Some(target.0)))
        .context("the conversation is listed")?;
    assert_eq!(row["status"], "open", "{row}");
    ensure!(!list.to_string().contains("BETA"), "{list}");
    Ok(())
}

// ---------------------------------------------------------------------
// 6. Odd paths on the static routes

/// One raw HTTP/1.1 request with `path` exactly as given (HTTP clients
/// normalise `..` away); returns the status and the body.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: kefu.test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await??;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).with_context(|| format!("no status: {answer:?}"))?;
    Ok((status, answer))
}

#[tokio::test]
async fn odd_paths_on_the_static_routes_never_reach_outside_the_web_dir() -> Result<()> {
    // A web dir of our own, with a secret beside it (and one inside
    // `assets/`' parent, where `assets/..` leads).
    let dir = tempfile::tempdir()?;
    let web = dir.path().join("web");
    std::fs::create_dir_all(web.join("assets"))?;
    std::fs::write(dir.path().join("secret.txt"), "TOP-SECRET-OUTSIDE")?;
    std::fs::write(web.join("private.txt"), "TOP-SECRET-WEB-ROOT")?;
    std::fs::write(web.join("assets").join("app.js"), "console.log('app')")?;
    for page in ["widget.html", "demo.html", "console.html", "kefu.js"] {
        std::fs::write(web.join(page), format!("page {page}"))?;
    }
    let web_dir = web.to_str().context("utf-8 path")?;
    let relay = Relay::start_with(&["--web-dir", web_dir]).await?;
    let mut pair = Pair::start(&relay).await?;

    assert_eq!(raw_get(relay.addr(), "/assets/app.js").await?.0, 200, "the web dir is served");
    let long = format!("/assets/{}", "a/".repeat(4000));
    let long_name = format!("/assets/{}", "x".repeat(10_000));
    let paths = [
        "/assets/../secret.txt",
        "/assets/../../secret.txt",
        "/assets/../private.txt",
        "/assets/%2e%2e/private.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/assets/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets/..%5c..%5csecret.txt",
        "/assets/..\\..\\secret.txt",
        "/assets/%252e%252e%252fprivate.txt",
        "/assets/app.js%00.txt",
        "/assets/%00/../private.txt",
        "/assets//../private.txt",
        "/assets/%c0%ae%c0%ae/private.txt",
        "/assets/.%2e/private.txt",
        "//assets/../private.txt",
        "/assets/./../private.txt",
        "/assets/app.js/../../private.txt",
        "/widget/../../secret.txt",
        "/widget/../private.txt",
        "/widget/../../Cargo.toml",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/private.txt",
        "/kefu.js/../private.txt",
        "/demo/%2e%2e/private.txt",
        "/assets/%2fetc%2fpasswd",
        "/assets//etc/passwd",
        "/assets/C:%5cWindows%5cwin.ini",
        long.as_str(),
        long_name.as_str(),
    ];
    for path in paths {
        let (status, answer) = raw_get(relay.addr(), path).await?;
        let shown: String = path.chars().take(60).collect();
        ensure!(!answer.contains("TOP-SECRET"), "{shown} leaked a file: {answer}");
        ensure!(!answer.contains("root:"), "{shown} leaked /etc/passwd");
        ensure!(matches!(status, 400 | 404 | 414 | 431), "{shown}: {status}");
    }
    // The full-screen widget takes any site key, and serves only its page.
    for path in ["/c/..%2f..%2fsecret.txt", "/c/%2e%2e", "/c/%00"] {
        let (status, answer) = raw_get(relay.addr(), path).await?;
        ensure!(!answer.contains("TOP-SECRET"), "{path} leaked a file: {answer}");
        ensure!(status == 404 || answer.contains("page widget.html"), "{path}: {status} {answer}");
    }
    pair.still_chatting().await
}
