//! The spine's promise, end to end: a real relay process on a real store,
//! real WebSockets, the real SDK. No message lost, none doubled, order
//! kept, through cuts, offline sends and `kill -9`.
//!
//! Every test runs twice, `sqlite::name` on the embedded file and
//! `postgres::name` on a fresh PostgreSQL database (see
//! `kefu_tests::postgres`): the promise is the store's, whichever it is.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kefu_protocol::frame::{Author, Body, Identity};
use kefu_protocol::ids::ConversationId;
use kefu_sdk::{Client, Event, Events, LinkState, Message, SessionConfig};
use kefu_tests::postgres::Backend;
use kefu_tests::{PATIENCE, Proxy, Relay, collect, events_until, message, message_saying, messages, text};

/// Makes `sqlite::name` and `postgres::name` tests of each
/// `async fn name(backend: Backend) -> Result<()>`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(kefu_tests::postgres::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(kefu_tests::postgres::Backend::Postgres).await
                }
            )*
        }
    };
}

fn body(text: impl Into<String>) -> Body {
    Body::Text(text.into())
}

/// An agent that follows every conversation of the demo site.
async fn agent(relay: &Relay) -> Result<(Client, Events)> {
    let token = relay.admin_token().await?;
    Ok(Client::agent(relay.ws_url(), &token)?)
}

/// Messages of `conversation` written by the visitor or the agent.
fn in_conversation(conversation: ConversationId) -> impl FnMut(Event) -> Option<Message> {
    move |event| message(event).filter(|m| m.conversation == conversation)
}

async fn visitor_and_agent_round_trip(backend: Backend) -> Result<()> {
    let relay = Relay::start_on(backend, &[]).await?;
    let (agent, mut agent_events) = agent(&relay).await?;
    let (visitor, mut visitor_events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;

    let accepted = visitor.send(conversation, body("Hi, is anyone there?")).await?;
    assert_eq!(accepted.seq.0, 1);
    let got = collect(&mut agent_events, 1, in_conversation(conversation)).await?;
    assert_eq!(text(&got[0]), "Hi, is anyone there?");
    assert!(matches!(got[0].author, Author::Visitor(_)));

    agent.send(conversation, body("Hello! How can I help?")).await?;
    let seen = collect(&mut visitor_events, 2, in_conversation(conversation)).await?;
    assert_eq!(seen.iter().map(text).collect::<Vec<_>>(), ["Hi, is anyone there?", "Hello! How can I help?"]);
    assert!(matches!(seen[1].author, Author::Agent(_)));
    assert_eq!(seen[1].seq.0, 2);
    Ok(())
}

async fn visitor_cut_off_while_agent_sends_100_gets_all_once_in_order(backend: Backend) -> Result<()> {
    let relay = Relay::start_on(backend, &[]).await?;
    let proxy = Proxy::start(relay.addr()).await?;
    let (agent, _agent_events) = agent(&relay).await?;
    let (visitor, mut visitor_events) = Client::visitor(proxy.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    // The visitor's first line makes the conversation (a hello stores
    // nothing); it comes back to the visitor as seq 1.
    visitor.send(conversation, body("hello")).await?;
    collect(&mut visitor_events, 1, in_conversation(conversation)).await?;

    proxy.offline(); // cuts the visitor's TCP connection and refuses new ones
    for n in 1..=100 {
        agent.send(conversation, body(format!("agent {n}"))).await?;
    }
    proxy.online();

    let got = collect(&mut visitor_events, 100, in_conversation(conversation)).await?;
    let texts: Vec<_> = got.iter().map(text).collect();
    let expected: Vec<_> = (1..=100).map(|n| format!("agent {n}")).collect();
    assert_eq!(texts, expected);
    let seqs: Vec<u64> = got.iter().map(|m| m.seq.0).collect();
    assert_eq!(seqs, (2..=101).collect::<Vec<_>>());
    // No late copies: nothing between the hundredth and a message after it.
    agent.send(conversation, body("the end")).await?;
    let extra = messages(events_until(&mut visitor_events, message_saying("the end")).await?);
    assert!(extra.is_empty(), "unexpected extra messages: {extra:?}");
    Ok(())
}

async fn visitor_sends_20_while_offline_each_stored_once_in_order(backend: Backend) -> Result<()> {
    let relay = Relay::start_on(backend, &[]).await?;
    let proxy = Proxy::start(relay.addr()).await?;
    let (_agent, mut agent_events) = agent(&relay).await?;
    let (visitor, _visitor_events) = Client::visitor(proxy.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;

    proxy.offline();
    visitor.wait_link(|link| !matches!(link, LinkState::Live)).await?;
    let sends: Vec<_> = (1..=20)
        .map(|n| {
            let visitor = visitor.clone();
            tokio::spawn(async move { visitor.send(conversation, body(format!("offline {n}"))).await })
        })
        .collect();
    // All twenty wait in the outbox while the link is down.
    visitor.wait_outbox(|queued| *queued == 20).await?;
    assert!(!matches!(visitor.link(), LinkState::Live), "the link came up before all twenty were queued");
    proxy.online();
    for send in sends {
        send.await??;
    }

    let got = collect(&mut agent_events, 20, in_conversation(conversation)).await?;
    let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
    for message in &got {
        *copies.entry(text(message)).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = (1..=20).map(|n| (format!("offline {n}"), 1)).collect();
    let copies: BTreeMap<String, usize> = copies.into_iter().map(|(text, n)| (text.to_owned(), n)).collect();
    assert_eq!(copies, expected, "each message once");
    // Sent from 20 tasks, so their relative order is the order the tasks
    // reached the client; what matters is seqs 1..=20 without gaps and
    // the stored order matching the delivered order.
    assert_eq!(got.iter().map(|m| m.seq.0).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
    let stored = stored_messages(&relay, conversation, 20).await?;
    assert_eq!(stored, got);
    Ok(())
}

async fn offline_sends_keep_the_order_they_were_made_in(backend: Backend) -> Result<()> {
    let relay = Relay::start_on(backend, &[]).await?;
    let proxy = Proxy::start(relay.addr()).await?;
    let (visitor, _events) = Client::visitor(proxy.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    proxy.offline();
    visitor.wait_link(|link| !matches!(link, LinkState::Live)).await?;
    // One task queues the sends one after another without waiting for
    // acks: `join_all` first polls them in order, so they reach the
    // client in that order.
    let sender = visitor.clone();
    let sends = tokio::spawn(futures_util::future::join_all((1..=20).map(move |n| {
        let sender = sender.clone();
        async move { sender.send(conversation, body(format!("queued {n}"))).await }
    })));
    visitor.wait_outbox(|queued| *queued == 20).await?;
    assert!(!matches!(visitor.link(), LinkState::Live), "the link came up before all twenty were queued");
    proxy.online();
    for (n, accepted) in sends.await?.into_iter().enumerate() {
        assert_eq!(accepted?.seq.0, n as u64 + 1, "queued order is stored order");
    }
    let stored = stored_messages(&relay, conversation, 20).await?;
    let texts: Vec<_> = stored.iter().map(text).collect();
    assert_eq!(texts, (1..=20).map(|n| format!("queued {n}")).collect::<Vec<_>>());
    Ok(())
}

async fn kill_9_during_a_burst_loses_no_acknowledged_message_and_stores_each_once(backend: Backend) -> Result<()> {
    let mut relay = Relay::start_on(backend, &[]).await?;
    let proxy = Proxy::start(relay.addr()).await?;
    let (visitor, _events) = Client::visitor(proxy.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;

    const TOTAL: usize = 300;
    let (acked_tx, mut acked) = tokio::sync::mpsc::unbounded_channel();
    let burst = {
        let visitor = visitor.clone();
        tokio::spawn(async move {
            let mut sends = Vec::new();
            for n in 0..TOTAL {
                let visitor = visitor.clone();
                let acked_tx = acked_tx.clone();
                sends.push(tokio::spawn(async move {
                    let accepted = visitor.send(conversation, body(format!("burst {n}"))).await?;
                    let _ = acked_tx.send((n, accepted));
                    Ok::<_, kefu_sdk::Error>(())
                }));
                // Spread the burst over ~0.6 s so the kill lands inside it.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            sends
        })
    };
    // Kill once some, but not all, are acknowledged.
    let mut before_kill = Vec::new();
    while before_kill.len() < 20 {
        before_kill.push(acked.recv().await.context("burst ended early")?);
    }
    relay.kill9().await?;
    while let Ok(item) = acked.try_recv() {
        before_kill.push(item);
    }
    let acked_at_kill = before_kill.len();
    assert!(acked_at_kill < TOTAL, "the kill must land inside the burst");
    relay.restart().await?;
    proxy.set_upstream(relay.addr());
    proxy.cut(); // connections to the dead relay are already broken; be sure

    for send in burst.await? {
        send.await??;
    }
    let mut all = before_kill;
    while let Ok(item) = acked.try_recv() {
        all.push(item);
    }
    assert_eq!(all.len(), TOTAL);

    let stored = stored_messages(&relay, conversation, TOTAL).await?;
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq.0).collect();
    assert_eq!(seqs, (1..=TOTAL as u64).collect::<Vec<_>>(), "contiguous seqs");
    let distinct: HashSet<&str> = stored.iter().map(text).collect();
    assert_eq!(distinct.len(), TOTAL, "every message stored exactly once");
    for (n, accepted) in &all {
        let message = &stored[accepted.seq.0 as usize - 1];
        assert_eq!(text(message), format!("burst {n}"), "an acknowledged seq kept its message");
        assert_eq!(message.id, accepted.id);
    }
    eprintln!("{acked_at_kill} of {TOTAL} were acknowledged before kill -9; all {TOTAL} stored once after restart");
    Ok(())
}

async fn a_client_that_stops_answering_is_dropped_at_the_deadline(backend: Backend) -> Result<()> {
    use kefu_protocol::ServerFrame;
    use kefu_protocol::frame::{CloseReason, Closing};
    let relay = Relay::start_on(backend, &["--heartbeat-interval-ms", "200", "--heartbeat-grace-ms", "300"]).await?;
    // A raw client that says hello and then never answers a ping. The
    // clock starts before the hello: the relay last heard it after that.
    let mut silent = kefu_tests::raw::Raw::connect(&relay.ws_url()).await?;
    let started = std::time::Instant::now();
    let welcome = silent.hello_visitor("demo").await?;
    assert_eq!((welcome.heartbeat.interval_ms, welcome.heartbeat.grace_ms), (200, 300));
    let deadline = Duration::from_millis(200 + 300);
    let (frames, code) = silent.drain_to_close().await?;
    let dropped_after = started.elapsed();
    let pings = frames.iter().filter(|f| matches!(f, ServerFrame::Ping(_))).count();
    assert!(pings >= 1, "the relay pinged before giving up: {frames:?}");
    // The relay declared the link dead, for silence, with the policy close
    // code, and not before the deadline it announced. (No upper bound: a
    // loaded machine may be late; the test's patience bounds it.)
    assert_eq!(
        frames.last(),
        Some(&ServerFrame::Closing(Closing { reason: CloseReason::HeartbeatTimeout, reconnect_after_ms: Some(0) })),
        "closed for silence: {frames:?}"
    );
    assert_eq!(code, Some(1008), "closed with the policy code");
    assert!(dropped_after >= deadline, "dropped after {dropped_after:?}, before the {deadline:?} deadline");
    Ok(())
}

async fn a_frozen_relay_is_detected_and_the_client_comes_back_when_it_thaws(backend: Backend) -> Result<()> {
    let relay = Relay::start_on(backend, &["--heartbeat-interval-ms", "200", "--heartbeat-grace-ms", "300"]).await?;
    let (agent, mut agent_events) = agent(&relay).await?;
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.wait_link(|link| matches!(link, LinkState::Live)).await?;

    relay.signal("STOP")?;
    let detected = tokio::time::timeout(PATIENCE, visitor.wait_link(|link| !matches!(link, LinkState::Live))).await;
    relay.signal("CONT")?;
    detected.context("the client never noticed the frozen relay")??;

    tokio::time::timeout(PATIENCE, visitor.wait_link(|link| matches!(link, LinkState::Live))).await??;
    visitor.send(conversation, body("still here")).await?;
    let got = collect(&mut agent_events, 1, in_conversation(conversation)).await?;
    assert_eq!(text(&got[0]), "still here");
    drop(agent);
    Ok(())
}

async fn a_returning_visitor_resumes_the_same_conversation_with_its_history(backend: Backend) -> Result<()> {
    let relay = Relay::start_on(backend, &[]).await?;
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, body("before the reload")).await?;
    let credentials = visitor.returning_credentials().await?;
    visitor.stop();

    let (again, mut events) = Client::connect(relay.ws_url(), credentials, SessionConfig::default());
    let Identity::Visitor { conversation: resumed, .. } = again.identity().await? else {
        anyhow::bail!("not a visitor")
    };
    assert_eq!(resumed, conversation);
    let history = collect(&mut events, 1, in_conversation(conversation)).await?;
    assert_eq!(text(&history[0]), "before the reload");
    Ok(())
}

/// What the store holds for `conversation`, read by a fresh agent from
/// seq 0: the replay path, the same one every reconnect uses.
async fn stored_messages(relay: &Relay, conversation: ConversationId, expected: usize) -> Result<Vec<Message>> {
    let (agent, mut events) = agent(relay).await?;
    agent.join(conversation)?;
    let mut messages = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            match events.next().await.context("agent stopped")? {
                Event::Message(m) if m.conversation == conversation => messages.push(m),
                Event::ReplayComplete(done) if done.conversation == conversation && messages.len() >= expected => {
                    return Ok::<_, anyhow::Error>(());
                }
                _ => {}
            }
        }
    })
    .await??;
    agent.stop();
    ensure!(messages.len() == expected, "stored {} messages, expected {expected}", messages.len());
    Ok(messages)
}

async fn sigterm_drains_clients_who_resume_on_the_restarted_relay(backend: Backend) -> Result<()> {
    let mut relay = Relay::start_on(backend, &[]).await?;
    let proxy = Proxy::start(relay.addr()).await?;
    let (visitor, mut events) = Client::visitor(proxy.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, body("before the restart")).await?;

    relay.signal("TERM")?;
    let closing = collect(&mut events, 1, |event| match event {
        Event::Closing(closing) => Some(closing),
        _ => None,
    })
    .await?;
    assert_eq!(closing[0].reason, kefu_protocol::frame::CloseReason::ShuttingDown);
    assert!(closing[0].reconnect_after_ms.is_some(), "told to come back");
    let status = relay.wait_exit().await?;
    assert!(status.success(), "graceful exit: {status}");

    relay.restart().await?;
    proxy.set_upstream(relay.addr());
    visitor.send(conversation, body("after the restart")).await?;
    let (agent, mut agent_events) = agent(&relay).await?;
    let got = collect(&mut agent_events, 2, in_conversation(conversation)).await?;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["before the restart", "after the restart"]);
    drop(agent);
    Ok(())
}

async fn healthz_reports_the_store(backend: Backend) -> Result<()> {
    let relay = Relay::start_on(backend, &[]).await?;
    let response = reqwest::get(format!("{}/healthz", relay.http_url())).await?;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["store"], "ok");
    Ok(())
}

/// A store that stops answering makes `/healthz` say 503, so a balancer
/// takes the node out; once the store is back, so is the node. On
/// PostgreSQL, which can go away under a running relay (the embedded
/// SQLite file cannot).
#[tokio::test]
async fn healthz_says_503_while_the_database_does_not_answer() -> Result<()> {
    let relay = Relay::start_on(Backend::Postgres, &[]).await?;
    let database = relay.database().context("a relay on PostgreSQL")?;
    let url = format!("{}/healthz", relay.http_url());
    assert_eq!(reqwest::get(&url).await?.status(), 200);

    database.cut_off().await?;
    let response = reqwest::get(&url).await?;
    assert_eq!(response.status(), 503, "healthy without a database");
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["status"], "unavailable", "{body}");
    ensure!(body["store"].as_str().is_some_and(|why| !why.is_empty()), "says why: {body}");

    database.restore().await?;
    let back = tokio::time::timeout(PATIENCE, async {
        while reqwest::get(&url).await.map(|response| response.status()).ok() != Some(reqwest::StatusCode::OK) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    back.await.context("/healthz stayed unhealthy after the database came back")?;
    Ok(())
}

async fn login_refuses_a_wrong_password_and_an_unknown_email(backend: Backend) -> Result<()> {
    let relay = Relay::start_on(backend, &[]).await?;
    for (email, password) in [(kefu_tests::ADMIN_EMAIL, "wrong"), ("nobody@kefu.test", kefu_tests::ADMIN_PASSWORD)] {
        let error = kefu_sdk::login(&relay.http_url(), email, password).await.expect_err("must be refused");
        assert!(error.to_string().contains("401"), "{error}");
    }
    assert!(!relay.admin_token().await?.is_empty());
    Ok(())
}

async fn read_marks_come_back_after_a_reconnect(backend: Backend) -> Result<()> {
    use kefu_protocol::frame::ReceiptKind;
    let relay = Relay::start_on(backend, &[]).await?;
    let (agent, mut agent_events) = agent(&relay).await?;
    let (visitor, mut visitor_events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, body("did you read this?")).await?;
    let seq = collect(&mut agent_events, 1, in_conversation(conversation)).await?[0].seq;
    agent.ack(conversation, ReceiptKind::Read, seq)?;
    let read_by_agent = |event| match event {
        Event::Receipt(r) if r.kind == ReceiptKind::Read && matches!(r.by, Author::Agent(_)) => Some(r.up_to),
        _ => None,
    };
    assert_eq!(collect(&mut visitor_events, 1, read_by_agent).await?, [seq], "live");

    // A reload: a new client with the same identity.
    let credentials = visitor.returning_credentials().await?;
    visitor.stop();
    let (_again, mut events) = Client::connect(relay.ws_url(), credentials, SessionConfig::default());
    assert_eq!(collect(&mut events, 1, read_by_agent).await?, [seq], "after the replay");
    Ok(())
}

/// The chaos run found it: a visitor's link broke after the relay read
/// its last sends and before their commits came back, and the agents
/// never heard of them (the visitor's resends were duplicates, which
/// publish nothing, and no later message made anyone read the gap).
async fn sends_whose_sender_vanished_before_the_acknowledgements_still_reach_the_agents(
    backend: Backend,
) -> Result<()> {
    use kefu_protocol::ClientFrame;
    use kefu_protocol::ServerFrame;
    use kefu_protocol::frame::{Identity, Send};
    use kefu_protocol::ids::ClientMessageId;
    use kefu_tests::raw::Raw;
    const BURST: u128 = 30;
    let relay = Relay::start_on(backend, &[]).await?;
    let (_agent, mut agent_events) = agent(&relay).await?;
    let (mut visitor, welcome) = Raw::visitor(&relay.ws_url(), "demo").await?;
    let Identity::Visitor { conversation, .. } = welcome.identity else { anyhow::bail!("a visitor identity") };
    let send = |n: u128| {
        ClientFrame::Send(Send { conversation, client_id: ClientMessageId(n), body: body(format!("line {n}")) })
    };
    visitor.send(&send(0)).await?;
    visitor.until(|frame| matches!(frame, ServerFrame::Accepted(_)).then_some(())).await?;
    collect(&mut agent_events, 1, in_conversation(conversation)).await?;

    // A burst, and the link goes without a goodbye while its commits are
    // still on the way.
    for n in 1..=BURST {
        visitor.send(&send(n)).await?;
    }
    drop(visitor);

    let got = collect(&mut agent_events, usize::try_from(BURST)?, in_conversation(conversation)).await?;
    let expected: Vec<String> = (1..=BURST).map(|n| format!("line {n}")).collect();
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), expected, "every stored line, live, once, in order");
    Ok(())
}

on_both_backends![
    visitor_and_agent_round_trip,
    visitor_cut_off_while_agent_sends_100_gets_all_once_in_order,
    visitor_sends_20_while_offline_each_stored_once_in_order,
    offline_sends_keep_the_order_they_were_made_in,
    kill_9_during_a_burst_loses_no_acknowledged_message_and_stores_each_once,
    a_client_that_stops_answering_is_dropped_at_the_deadline,
    a_frozen_relay_is_detected_and_the_client_comes_back_when_it_thaws,
    a_returning_visitor_resumes_the_same_conversation_with_its_history,
    sigterm_drains_clients_who_resume_on_the_restarted_relay,
    healthz_reports_the_store,
    login_refuses_a_wrong_password_and_an_unknown_email,
    read_marks_come_back_after_a_reconnect,
    sends_whose_sender_vanished_before_the_acknowledgements_still_reach_the_agents,
];
