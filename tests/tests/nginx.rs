//! Debian's nginx as the reverse proxy and load balancer in front of two
//! relay nodes on one PostgreSQL database and one Redis, running the
//! shipped `dist/nginx.conf` (docs/src/cluster.md shows it; a test here keeps the
//! two the same). Every client knows only nginx's address.
//!
//! What each party received is checked as the chaos suite checks it
//! ([`kefu_tests::chaos::check`]): the frames the relay sent, link by
//! link, before any client dropped a duplicate (the SDK's tap; for the
//! widget, the frames Chromium saw on its WebSocket), against what the
//! store holds at the end, read back over HTTP through nginx.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use kefu_protocol::frame::{CloseReason, Credentials};
use kefu_protocol::ids::{AgentToken, ConversationId, Seq, SiteKey};
use kefu_protocol::{ClientFrame, ServerFrame};
use kefu_sdk::{Body, Client, Event, LinkState, Message, SessionConfig, Wire};
use kefu_tests::browser::Browser;
use kefu_tests::chaos::{Outcome, PartyLog, Role, Sent, check};
use kefu_tests::cluster::{SHARED_REDIS, redis_prefix};
use kefu_tests::nginx::{self, Nginx, links_to};
use kefu_tests::postgres::Database;
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, PATIENCE, Relay};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The chat bubbles of the full-page widget, its greeting included.
const BUBBLES: &str =
    "[...document.querySelectorAll('.kefu-row:not(.kefu-from-system) .kefu-bubble')].map(e => e.textContent)";

/// Bubbles of messages still waiting for the relay.
const PENDING: &str = "document.querySelectorAll('.kefu-mark-sending').length";

#[test]
fn the_book_shows_dist_nginx_conf_as_it_is() -> Result<()> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/src/cluster.md"))?;
    let blocks: Vec<&str> =
        readme.split("```nginx\n").skip(1).map(|rest| rest.split("```").next().unwrap_or("")).collect();
    ensure!(
        blocks.len() == 1,
        "docs/src/cluster.md should show one nginx config, dist/nginx.conf; it shows {}",
        blocks.len()
    );
    ensure!(
        blocks[0] == nginx::SHIPPED,
        "docs/src/cluster.md's nginx block differs from dist/nginx.conf, which the nginx tests run: copy the file into it"
    );
    Ok(())
}

#[test]
fn the_test_changes_only_the_addresses_of_the_shipped_config() -> Result<()> {
    let [a, b, listen] = ["127.0.0.1:41001", "127.0.0.1:41002", "127.0.0.1:41000"].map(|addr| addr.parse().unwrap());
    let config = nginx::for_test(nginx::SHIPPED, [a, b], listen)?;
    let changed: Vec<(&str, &str)> =
        nginx::SHIPPED.lines().zip(config.lines()).filter(|(shipped, run)| shipped != run).collect();
    assert_eq!(
        changed,
        [
            ("    server 127.0.0.1:8081;", "    server 127.0.0.1:41001;"),
            ("    server 127.0.0.1:8082;", "    server 127.0.0.1:41002;"),
            ("    listen 80;", "    listen 127.0.0.1:41000;"),
        ]
    );
    assert_eq!(config.lines().count(), nginx::SHIPPED.lines().count());
    Ok(())
}

#[tokio::test]
async fn a_visitor_in_chromium_and_an_agent_chat_through_nginx_across_a_kill_9_of_the_visitors_node() -> Result<()> {
    let mut site = Site::start().await?;
    let agent = site.agent().await?;
    tokio::time::timeout(PATIENCE, agent.client.wait_link(|link| matches!(link, LinkState::Live)))
        .await
        .context("the agent's WebSocket through nginx never came up")??;
    let agent_node = site.only_link().await?;

    let browser = Browser::start().await?;
    let mut page_wire = browser.websocket_frames();
    browser.goto(&format!("{}/c/demo", site.nginx.http_url())).await?;
    type_in_page(&browser, "visitor 1").await?;
    let conversation = agent.wait_for_text("visitor 1").await?.conversation;
    agent.client.join(conversation)?;
    browser.wait_for(None, &format!("{PENDING} === 0")).await?;
    agent.send(conversation, "agent 1").await?;
    wait_for_bubbles(&browser, &["visitor 1", "agent 1"]).await?;

    // The visitor's WebSocket is the one link besides the agent's.
    let visitor_node = site.visitor_node(agent_node).await?;
    eprintln!("agent on node {agent_node}, visitor on node {visitor_node}: kill -9 of node {visitor_node}");
    site.nodes[visitor_node].kill9().await?;
    let killed = Instant::now();

    // Both write on while the widget finds its way to the other node.
    for n in 2..=4 {
        type_in_page(&browser, &format!("visitor {n}")).await?;
    }
    for n in 2..=4 {
        agent.send(conversation, &format!("agent {n}")).await?;
    }
    let expected = ["visitor 1", "agent 1", "visitor 2", "visitor 3", "visitor 4", "agent 2", "agent 3", "agent 4"];
    let mut both_sides: Vec<&str> = expected.to_vec();
    both_sides.sort_unstable();
    let (browser_ref, both_sides) = (&browser, &both_sides);
    wait_until("the widget to show every line, none pending", move || async move {
        let mut shown = bubbles(browser_ref).await?;
        shown.sort_unstable();
        let done = shown == *both_sides && browser_ref.eval(&format!("{PENDING} === 0")).await? == true;
        Ok(done.then_some(()))
    })
    .await?;
    for n in 2..=4 {
        agent.wait_for_text(&format!("visitor {n}")).await?;
    }
    let caught_up = killed.elapsed();

    // Anything sent again would come before these.
    agent.send(conversation, "agent marker").await?;
    type_in_page(&browser, "visitor marker").await?;
    agent.wait_for_text("visitor marker").await?;
    let page_wire = read_until_both_markers(&mut page_wire).await?;
    agent.wait_for_wire_text("agent marker").await?;
    agent.wait_for_wire_text("visitor marker").await?;

    let stored = site.stored(&agent.token, conversation).await?;
    let texts = texts_of(&stored);
    eprintln!("stored: {texts:?}");
    let visitor_lines: Vec<&str> = texts.iter().copied().filter(|t| t.starts_with("visitor")).collect();
    let agent_lines: Vec<&str> = texts.iter().copied().filter(|t| t.starts_with("agent")).collect();
    assert_eq!(visitor_lines, ["visitor 1", "visitor 2", "visitor 3", "visitor 4", "visitor marker"]);
    assert_eq!(agent_lines, ["agent 1", "agent 2", "agent 3", "agent 4", "agent marker"]);
    assert_eq!(texts.len(), 10, "nothing else is stored: {texts:?}");
    wait_for_bubbles(&browser, &texts).await.context("the widget shows the store's order")?;
    browser.screenshot("nginx-after-kill-9").await?;

    // The widget moved, through nginx, once; the agent only if it was on
    // the same node.
    let hellos = |wire: &[Wire]| wire.iter().filter(|w| matches!(w, Wire::Sent(ClientFrame::Hello(_)))).count();
    assert_eq!(hellos(&page_wire), 2, "the widget's links: the first and the one after the kill");
    assert_eq!(hellos(&agent.wire()), if agent_node == visitor_node { 2 } else { 1 }, "the agent's links");

    let visitor = page_party(&page_wire, conversation);
    let on_the_page: HashSet<_> = page_wire
        .iter()
        .filter_map(|wire| match wire {
            Wire::Received(ServerFrame::Message(message)) => Some(message.id),
            _ => None,
        })
        .collect();
    let missing: Vec<&str> = stored
        .values()
        .flatten()
        .filter(|m| !on_the_page.contains(&m.id))
        .map(kefu_tests::text)
        .filter(|t| !t.is_empty())
        .collect();
    ensure!(missing.is_empty(), "the relay never sent the widget {missing:?}");
    assert_clean(&[agent.log_following(conversation), visitor], conversation, stored, caught_up)?;
    // Whatever reached the dead node went on to the other one: nobody was
    // answered with an error and left to retry.
    let log = site.nginx.access_log()?;
    let failed: Vec<&String> = log.iter().filter(|line| line.starts_with('5')).collect();
    ensure!(failed.is_empty(), "nginx answered with errors: {failed:?}");
    ensure!(browser.errors().is_empty(), "the page reported errors: {:?}", browser.errors());
    Ok(())
}

#[tokio::test]
async fn a_rolling_restart_behind_nginx_moves_every_client_and_loses_nothing() -> Result<()> {
    let mut site = Site::start().await?;
    let agent = site.agent().await?;
    let credentials = Credentials::Visitor { site: SiteKey::new("demo")?, returning: None };
    let visitor = Party::connect("visitor", Role::Visitor, &site.nginx.ws_url(), credentials, SessionConfig::default());
    let conversation = tokio::time::timeout(PATIENCE, visitor.client.conversation())
        .await
        .context("the visitor's WebSocket through nginx never came up")??;
    visitor.send(conversation, "visitor 0").await?;
    agent.wait_for_text("visitor 0").await?;
    agent.client.join(conversation)?;

    // Both write all along, one after the other, each send waiting for
    // its acknowledgement: the store's order is known.
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0_u32);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let writer = {
        let (visitor, agent) = (visitor.clone(), agent.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !*stopped.borrow_and_update() {
                n += 1;
                visitor.send(conversation, &format!("visitor {n}")).await?;
                agent.send(conversation, &format!("agent {n}")).await?;
                progress_tx.send_replace(n);
                // A pace, not a wait for anything: about 30 pairs a second.
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            Ok::<_, anyhow::Error>(n)
        })
    };
    let mut written = wait_for_progress(&mut progress, 10).await?;
    let started = Instant::now();
    for node in 0..2 {
        site.nodes[node].signal("TERM")?;
        ensure!(site.nodes[node].wait_exit().await?.success(), "node {node} exits cleanly on SIGTERM");
        // While it is down, the other node carries the traffic.
        written = wait_for_progress(&mut progress, written + 10).await?;
        site.nodes[node].restart().await?;
        site.nodes[node].wait_healthy().await?;
        eprintln!("node {node} drained and restarted; {written} pairs written so far");
    }
    written = wait_for_progress(&mut progress, written + 10).await?;
    stop.send_replace(true);
    let last = writer.await??;
    eprintln!("{last} pairs written in all ({written} when the last node was back)");
    let caught_up = started.elapsed();

    visitor.send(conversation, "visitor marker").await?;
    agent.send(conversation, "agent marker").await?;
    for party in [&visitor, &agent] {
        party.wait_for_wire_text("agent marker").await?;
    }

    let stored = site.stored(&agent.token, conversation).await?;
    let mut expected = vec!["visitor 0".to_owned()];
    for n in 1..=last {
        expected.extend([format!("visitor {n}"), format!("agent {n}")]);
    }
    expected.extend(["visitor marker".to_owned(), "agent marker".to_owned()]);
    assert_eq!(texts_of(&stored), expected, "every line stored once, in the order written");

    // Each client was told to move by each node it was on when that node
    // drained, and reconnected (through nginx: it knows no other address)
    // once for each notice, and for nothing else.
    for party in [&visitor, &agent] {
        let wire = party.wire();
        let hellos = wire.iter().filter(|w| matches!(w, Wire::Sent(ClientFrame::Hello(_)))).count();
        let closings = wire
            .iter()
            .filter(|w| matches!(w, Wire::Received(ServerFrame::Closing(c)) if c.reason == CloseReason::ShuttingDown))
            .count();
        eprintln!("{}: {closings} drain notices, {hellos} hellos", party.name);
        ensure!(closings >= 1, "{}: never told to move, so it never moved", party.name);
        ensure!(hellos == closings + 1, "{}: {hellos} hellos for {closings} drain notices", party.name);
    }
    // A node restarted moments ago may still be out of nginx's rotation
    // (fail_timeout) when the other drains, so a reconnect may be answered
    // 502 and retried: seen, not asserted.
    let log = site.nginx.access_log()?;
    eprintln!("answered 5xx: {:?}", log.iter().filter(|line| line.starts_with('5')).collect::<Vec<_>>());
    assert_clean(
        &[agent.log_following(conversation), visitor.log_following(conversation)],
        conversation,
        stored,
        caught_up,
    )
}

/// Two relay nodes on one fresh PostgreSQL database and the machine's
/// Redis (a key prefix of their own), each on a fixed port so a restart
/// comes back where nginx expects it, and nginx in front on the shipped
/// config.
struct Site {
    /// Killed before the database is dropped.
    nodes: [Relay; 2],
    nginx: Nginx,
    _database: Database,
}

impl Site {
    async fn start() -> Result<Site> {
        let database = Database::create().await?;
        let prefix = redis_prefix();
        let [a, b, front] = nginx::free_addrs::<3>()?;
        let public_url = format!("http://{front}");
        let mut nodes = Vec::new();
        for addr in [a, b] {
            let addr = addr.to_string();
            let node = Relay::start_with(&[
                "--listen",
                &addr,
                "--database-url",
                database.url(),
                "--redis-url",
                SHARED_REDIS,
                "--redis-prefix",
                &prefix,
                "--trusted-proxy",
                "127.0.0.1",
                "--public-url",
                &public_url,
            ])
            .await?;
            // The first node creates the demo site and the admin; the
            // second finds them.
            node.wait_healthy().await?;
            nodes.push(node);
        }
        let nodes: [Relay; 2] = nodes.try_into().map_err(|_| anyhow::anyhow!("two nodes"))?;
        let nginx = Nginx::start(nginx::SHIPPED, [a, b], front).await?;
        Ok(Site { nodes, nginx, _database: database })
    }

    /// The admin, signed in over HTTP and connected, both through nginx,
    /// following every conversation as a console does.
    async fn agent(&self) -> Result<Party> {
        let token = kefu_sdk::login(&self.nginx.http_url(), ADMIN_EMAIL, ADMIN_PASSWORD).await?.token;
        let credentials = Credentials::Agent { token: AgentToken::new(&token)? };
        let config = SessionConfig { auto_join: true, ..SessionConfig::default() };
        let mut agent = Party::connect("agent", Role::Agent, &self.nginx.ws_url(), credentials, config);
        agent.token = token;
        Ok(agent)
    }

    /// How many links each node holds.
    fn links(&self) -> Result<[usize; 2]> {
        Ok([links_to(self.nodes[0].addr())?, links_to(self.nodes[1].addr())?])
    }

    /// Waits until the nodes hold one link between them, and says which
    /// holds it.
    async fn only_link(&self) -> Result<usize> {
        wait_until("one link to the nodes", move || async move {
            let links = self.links()?;
            Ok((links[0] + links[1] == 1).then(|| if links[0] == 1 { 0 } else { 1 }))
        })
        .await
    }

    /// Waits until the nodes hold two links, the agent's on `agent_node`
    /// and the visitor's, and says which node holds the visitor's.
    async fn visitor_node(&self, agent_node: usize) -> Result<usize> {
        wait_until("the agent's and the visitor's links to the nodes", move || async move {
            let links = self.links()?;
            let node = if links[agent_node] == 2 { agent_node } else { 1 - agent_node };
            Ok((links[0] + links[1] == 2).then_some(node))
        })
        .await
    }

    /// Every message of `conversation` as stored, read back page by page
    /// over the HTTP API through nginx.
    async fn stored(
        &self,
        token: &str,
        conversation: ConversationId,
    ) -> Result<BTreeMap<ConversationId, Vec<Message>>> {
        let http = reqwest::Client::new();
        let mut messages: Vec<Message> = Vec::new();
        loop {
            let mut url = format!("{}/api/conversations/{}/messages?limit=200", self.nginx.http_url(), conversation.0);
            if let Some(oldest) = messages.first() {
                url.push_str(&format!("&before={}", oldest.seq.0));
            }
            let page: Vec<Message> = http.get(url).bearer_auth(token).send().await?.error_for_status()?.json().await?;
            if page.is_empty() {
                break;
            }
            messages.splice(0..0, page);
            if messages.first().is_some_and(|m| m.seq == Seq(1)) {
                break;
            }
        }
        Ok(BTreeMap::from([(conversation, messages)]))
    }
}

/// An SDK client through nginx, and what it sent, was handed and what
/// crossed its wire, kept as it happens.
#[derive(Clone)]
struct Party {
    name: &'static str,
    client: Client,
    log: Arc<Mutex<PartyLog>>,
    /// An agent's HTTP token (empty for a visitor).
    token: String,
}

impl Party {
    fn connect(name: &'static str, role: Role, url: &str, credentials: Credentials, config: SessionConfig) -> Party {
        let (client, mut events, mut tap) = Client::connect_tapped(url, credentials, config);
        let log = Arc::new(Mutex::new(PartyLog {
            name: name.to_owned(),
            role,
            follows: Vec::new(),
            sent: Vec::new(),
            received: Vec::new(),
            wire: Vec::new(),
        }));
        let handed = Arc::clone(&log);
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if let Event::Message(message) = event {
                    lock(&handed).received.push(message);
                }
            }
        });
        let crossed = Arc::clone(&log);
        tokio::spawn(async move {
            while let Some(wire) = tap.next().await {
                lock(&crossed).wire.push(wire);
            }
        });
        Party { name, client, log, token: String::new() }
    }

    /// Sends `text` and waits until it is stored.
    async fn send(&self, conversation: ConversationId, text: &str) -> Result<()> {
        let accepted = tokio::time::timeout(PATIENCE, self.client.send(conversation, Body::Text(text.to_owned())))
            .await
            .with_context(|| format!("{}: {text:?} not acknowledged within {PATIENCE:?}", self.name))??;
        let sent = Sent { conversation, text: text.to_owned(), outcome: Outcome::Accepted(accepted) };
        lock(&self.log).sent.push(sent);
        Ok(())
    }

    /// Waits until the client hands on a message saying `text`.
    async fn wait_for_text(&self, text: &str) -> Result<Message> {
        let log = &self.log;
        wait_until(&format!("{} to be handed {text:?}", self.name), move || async move {
            Ok(lock(log).received.iter().find(|m| kefu_tests::text(m) == text).cloned())
        })
        .await
    }

    /// Waits until the relay sent this client a message saying `text`.
    async fn wait_for_wire_text(&self, text: &str) -> Result<()> {
        let log = &self.log;
        wait_until(&format!("the relay to send {} {text:?}", self.name), move || async move {
            Ok(lock(log).wire.iter().any(|wire| is_message_saying(wire, text)).then_some(()))
        })
        .await
    }

    fn wire(&self) -> Vec<Wire> {
        lock(&self.log).wire.clone()
    }

    /// Its log so far, as following `conversation`.
    fn log_following(&self, conversation: ConversationId) -> PartyLog {
        let mut log = lock(&self.log).clone();
        log.follows = vec![conversation];
        log
    }
}

/// The widget's side for the checker, from the frames its WebSocket
/// carried: each send once (by its client id) with the relay's answer,
/// and the wire. Its event stream is the page: [`wait_for_bubbles`]
/// checks that, so it follows nothing here.
fn page_party(wire: &[Wire], conversation: ConversationId) -> PartyLog {
    let accepted: HashMap<_, _> = wire
        .iter()
        .filter_map(|w| match w {
            Wire::Received(ServerFrame::Accepted(accepted)) => Some((accepted.client_id, *accepted)),
            _ => None,
        })
        .collect();
    let mut seen = HashSet::new();
    let sent = wire
        .iter()
        .filter_map(|w| match w {
            Wire::Sent(ClientFrame::Send(send)) if send.conversation == conversation && seen.insert(send.client_id) => {
                let text = match &send.body {
                    Body::Text(text) => text.clone(),
                    other => format!("{other:?}"),
                };
                let outcome = accepted.get(&send.client_id).map_or(Outcome::Pending, |a| Outcome::Accepted(*a));
                Some(Sent { conversation, text, outcome })
            }
            _ => None,
        })
        .collect();
    PartyLog {
        name: "visitor in Chromium".to_owned(),
        role: Role::Visitor,
        follows: Vec::new(),
        sent,
        received: Vec::new(),
        wire: wire.to_vec(),
    }
}

/// Nothing lost, doubled or out of order for any of `parties`, on the
/// wire or in what they were handed, against the store.
fn assert_clean(
    parties: &[PartyLog],
    conversation: ConversationId,
    stored: BTreeMap<ConversationId, Vec<Message>>,
    caught_up: Duration,
) -> Result<()> {
    let mut figures = check(parties, &stored);
    figures.conversations = 1;
    figures.visitors = parties.iter().filter(|p| p.role == Role::Visitor).count();
    figures.agents = parties.len() - figures.visitors;
    // From the first node going away until everyone held everything.
    figures.under_fire = caught_up;
    figures.catch_up = Some(caught_up);
    eprintln!("{conversation:?}:\n{figures}");
    figures.assert_clean()
}

fn texts_of(stored: &BTreeMap<ConversationId, Vec<Message>>) -> Vec<&str> {
    stored.values().flatten().map(kefu_tests::text).filter(|t| !t.is_empty()).collect()
}

fn is_message_saying(wire: &Wire, text: &str) -> bool {
    matches!(wire, Wire::Received(ServerFrame::Message(m)) if kefu_tests::text(m) == text)
}

/// Reads the page's frames until the relay has sent it both markers.
async fn read_until_both_markers(frames: &mut mpsc::UnboundedReceiver<Wire>) -> Result<Vec<Wire>> {
    let mut wire = Vec::new();
    let mut markers = HashSet::new();
    tokio::time::timeout(PATIENCE, async {
        while markers.len() < 2 {
            let frame = frames.recv().await.context("the browser is gone")?;
            for marker in ["agent marker", "visitor marker"] {
                if is_message_saying(&frame, marker) {
                    markers.insert(marker);
                }
            }
            wire.push(frame);
        }
        Ok::<_, anyhow::Error>(())
    })
    .await
    .with_context(|| format!("the page's WebSocket never carried both markers; it carried {wire:?}"))??;
    Ok(wire)
}

/// Focuses the full page's composer, types `text` and presses Enter.
async fn type_in_page(browser: &Browser, text: &str) -> Result<()> {
    let focused = "(() => { const t = document.querySelector('textarea'); if (t) t.focus(); \
                   return !!t && document.activeElement === t; })()";
    browser.wait_for(None, focused).await?;
    browser.type_text(text).await?;
    browser.press_enter().await
}

/// The bubbles the page shows that this test wrote (the greeting aside).
async fn bubbles(browser: &Browser) -> Result<Vec<String>> {
    let shown = browser.eval(BUBBLES).await?;
    Ok(shown
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|text| text.starts_with("visitor ") || text.starts_with("agent "))
        .map(ToOwned::to_owned)
        .collect())
}

/// Waits until the page shows exactly `expected`, in this order.
async fn wait_for_bubbles(browser: &Browser, expected: &[&str]) -> Result<()> {
    wait_until(&format!("the widget to show {expected:?}"), move || async move {
        Ok((bubbles(browser).await? == expected).then_some(()))
    })
    .await
}

/// Polls `done` until it finds something, and returns it; fails after
/// [`PATIENCE`], naming `what`.
async fn wait_until<T, F, Fut>(what: &str, mut done: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + PATIENCE;
    let mut last_error = None;
    loop {
        match done().await {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if Instant::now() >= deadline {
            match last_error {
                Some(error) => bail!("waited {PATIENCE:?} for {what}; last error: {error:#}"),
                None => bail!("waited {PATIENCE:?} for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the writer has written `at_least` pairs; returns how many.
async fn wait_for_progress(progress: &mut tokio::sync::watch::Receiver<u32>, at_least: u32) -> Result<u32> {
    let reached = tokio::time::timeout(PATIENCE, progress.wait_for(|n| *n >= at_least))
        .await
        .with_context(|| format!("the writer stalled before {at_least} pairs"))?
        .context("the writer stopped")?;
    Ok(*reached)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
