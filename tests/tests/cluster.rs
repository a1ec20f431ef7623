//! Several relay nodes behave as one: two `kefu-relay` processes on one
//! PostgreSQL database and one Redis, clients on either node, no sticky
//! sessions. Each test has its own database and its own Redis key prefix.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use kefu_protocol::frame::{AgentStatus, Author, Body, Change, CloseReason, ConversationEvent, ErrorCode, Identity};
use kefu_protocol::ids::{AgentId, ConversationId};
use kefu_sdk::{Client, Event, Events, Message};
use kefu_tests::cluster::{Balancer, Nodes, RedisServer, SHARED_REDIS};
use kefu_tests::{ADMIN_PASSWORD, PATIENCE, Relay, collect, events_until, message, text};

fn body(text: impl Into<String>) -> Body {
    Body::Text(text.into())
}

fn in_conversation(conversation: ConversationId) -> impl FnMut(Event) -> Option<Message> {
    move |event| message(event).filter(|m| m.conversation == conversation && matches!(m.body, Body::Text(_)))
}

/// The admin, signed in over HTTP on `login_on`, connected to `ws_url`.
async fn admin(login_on: &Relay, ws_url: String) -> Result<(Client, Events)> {
    let token = login_on.admin_token().await?;
    Ok(Client::agent(ws_url, &token)?)
}

/// Waits until `events` show a message from `from` in `conversation`; the
/// agent's console has then heard of it across nodes.
async fn texts(events: &mut Events, conversation: ConversationId, count: usize) -> Result<Vec<String>> {
    let got = collect(events, count, in_conversation(conversation)).await?;
    Ok(got.iter().map(|m| text(m).to_owned()).collect())
}

#[tokio::test]
async fn a_visitor_on_one_node_and_an_agent_on_another_chat_both_ways_typing_included() -> Result<()> {
    let nodes = Nodes::start(SHARED_REDIS).await?;
    let (agent, mut agent_events) = admin(&nodes.b, nodes.b.ws_url()).await?;
    agent.wait_link(|link| matches!(link, kefu_sdk::LinkState::Live)).await?;
    let (visitor, mut visitor_events) = Client::visitor(nodes.a.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;

    visitor.send(conversation, body("hello from node A")).await?;
    assert_eq!(texts(&mut agent_events, conversation, 1).await?, ["hello from node A"]);
    agent.join(conversation)?;

    agent.typing(conversation, true, None)?;
    let typing = collect(&mut visitor_events, 1, |event| match event {
        Event::Typing(notice) if notice.conversation == conversation => Some(notice),
        _ => None,
    })
    .await?;
    assert!(typing[0].active && matches!(typing[0].by, Author::Agent(_)));

    // The visitor's own first line came back before the typing notice and
    // was passed over while waiting for it.
    agent.send(conversation, body("hello from node B")).await?;
    assert_eq!(texts(&mut visitor_events, conversation, 1).await?, ["hello from node B"]);

    visitor.typing(conversation, true, None)?;
    let typing = collect(&mut agent_events, 1, |event| match event {
        Event::Typing(notice) if notice.conversation == conversation => Some(notice),
        _ => None,
    })
    .await?;
    assert!(matches!(typing[0].by, Author::Visitor(_)));

    for n in 1..=20 {
        visitor.send(conversation, body(format!("visitor {n}"))).await?;
        agent.send(conversation, body(format!("agent {n}"))).await?;
    }
    let visitor_saw = texts(&mut visitor_events, conversation, 40).await?;
    let agent_saw = texts(&mut agent_events, conversation, 40).await?;
    assert_eq!(visitor_saw, agent_saw, "both parties see one order");
    Ok(())
}

#[tokio::test]
async fn a_node_killed_mid_conversation_loses_nothing_for_the_visitor_who_moves_to_the_other() -> Result<()> {
    let mut nodes = Nodes::start(SHARED_REDIS).await?;
    // The balancer sends the first connection to node A.
    let balancer = Balancer::start(&[nodes.a.addr(), nodes.b.addr()]).await?;
    let (visitor, mut visitor_events) = Client::visitor(balancer.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    let (agent, mut agent_events) = admin(&nodes.b, nodes.b.ws_url()).await?;
    visitor.send(conversation, body("visitor 0")).await?;
    texts(&mut agent_events, conversation, 1).await?;
    agent.join(conversation)?;

    nodes.a.kill9().await?;
    // While the visitor finds its way to node B, both go on writing.
    let mut sends = Vec::new();
    for n in 1..=20 {
        agent.send(conversation, body(format!("agent {n}"))).await?;
        let visitor = visitor.clone();
        sends.push(tokio::spawn(async move { visitor.send(conversation, body(format!("visitor {n}"))).await }));
    }
    for send in sends {
        send.await??;
    }

    let mut expected_agent: Vec<String> = (1..=20).map(|n| format!("agent {n}")).collect();
    let seen = texts(&mut visitor_events, conversation, 41).await?;
    let agent_lines: Vec<&String> = seen.iter().filter(|t| t.starts_with("agent")).collect();
    assert_eq!(agent_lines, expected_agent.iter().collect::<Vec<_>>(), "every agent line once, in order");
    let visitor_lines: Vec<&String> = seen.iter().filter(|t| t.starts_with("visitor")).collect();
    let expected_visitor: Vec<String> = (0..=20).map(|n| format!("visitor {n}")).collect();
    assert_eq!(visitor_lines, expected_visitor.iter().collect::<Vec<_>>(), "offline sends keep their order");

    let agent_seen = texts(&mut agent_events, conversation, 40).await?;
    expected_agent.extend((1..=20).map(|n| format!("visitor {n}")));
    let mut both: Vec<String> = agent_seen.clone();
    both.sort();
    expected_agent.sort();
    assert_eq!(both, expected_agent, "the agent got everything once");
    assert_eq!(&seen[1..], &agent_seen[..], "one order for both parties");
    Ok(())
}

#[tokio::test]
async fn redis_stopped_for_ten_seconds_during_traffic_loses_nothing_and_everyone_catches_up() -> Result<()> {
    let mut redis = RedisServer::start().await?;
    let nodes = Nodes::start(&redis.url()).await?;
    let (agent, mut agent_events) = admin(&nodes.b, nodes.b.ws_url()).await?;
    let (visitor, mut visitor_events) = Client::visitor(nodes.a.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, body("visitor 0")).await?;
    texts(&mut agent_events, conversation, 1).await?;
    agent.join(conversation)?;

    // Traffic both ways, every 100 ms, for 14 s; Redis is away for 10 s of
    // it. Every send must be acknowledged (the store is up all along).
    let traffic = {
        let (visitor, agent) = (visitor.clone(), agent.clone());
        tokio::spawn(async move {
            for n in 1..=140 {
                visitor.send(conversation, body(format!("visitor {n}"))).await?;
                agent.send(conversation, body(format!("agent {n}"))).await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok::<_, anyhow::Error>(())
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.stop().await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    redis.restart().await?;
    traffic.await??;

    let visitor_saw = texts(&mut visitor_events, conversation, 281).await?;
    let agent_saw = texts(&mut agent_events, conversation, 280).await?;
    assert_eq!(&visitor_saw[1..], &agent_saw[..], "both parties caught up, in one order");
    let unique: HashSet<&String> = visitor_saw.iter().collect();
    assert_eq!(unique.len(), 281, "nothing twice");
    for n in 1..=140 {
        ensure!(unique.contains(&format!("visitor {n}")) && unique.contains(&format!("agent {n}")), "{n} is missing");
    }
    // No late duplicate or stray line: a marker sent now from the other
    // node is the next message the visitor hears.
    agent.send(conversation, body("marker")).await?;
    let after = texts(&mut visitor_events, conversation, 1).await?;
    assert_eq!(after, ["marker"], "a message arrived after catching up and before the marker");
    Ok(())
}

#[tokio::test]
async fn agents_on_two_nodes_racing_to_take_one_chat_never_both_get_it() -> Result<()> {
    let nodes = Nodes::start(SHARED_REDIS).await?;
    let admin_token = nodes.a.admin_token().await?;
    let mut on_a = Agent::create(&nodes.a, &admin_token, "ana@example.com").await?;
    let mut on_b = Agent::create(&nodes.b, &admin_token, "ben@example.com").await?;

    for round in 0..10 {
        let relay = if round % 2 == 0 { &nodes.a } else { &nodes.b };
        let (visitor, _visitor_events) = Client::visitor(relay.ws_url(), "demo")?;
        let conversation = visitor.conversation().await?;
        visitor.send(conversation, body(format!("round {round}"))).await?;
        on_a.client.update(conversation, Change::Take)?;
        on_b.client.update(conversation, Change::Take)?;
        let a_refused = on_a.refused(conversation).await?;
        let b_refused = on_b.refused(conversation).await?;
        ensure!(
            a_refused != b_refused,
            "round {round}: exactly one must win (a refused: {a_refused}, b refused: {b_refused})"
        );
        let winner = if a_refused { on_b.id } else { on_a.id };

        // One system line says who got it, on both nodes' replay: the
        // whole replay, up to its end, is the visitor's message and it.
        for (name, node) in [("a", &nodes.a), ("b", &nodes.b)] {
            let (reader, mut reader_events) = admin(node, node.ws_url()).await?;
            reader.join(conversation)?;
            let replay_done =
                |event: &Event| matches!(event, Event::ReplayComplete(done) if done.conversation == conversation);
            let lines: Vec<Message> = events_until(&mut reader_events, replay_done)
                .await?
                .into_iter()
                .filter_map(|event| message(event).filter(|m| m.conversation == conversation))
                .collect();
            ensure!(lines.len() == 2, "round {round}, node {name}: expected two lines, got {lines:?}");
            match &lines[1].body {
                Body::Event(ConversationEvent::Assigned { to, .. }) => assert_eq!(to.id, winner),
                other => bail!("round {round}, node {name}: expected one assignment line, got {other:?}"),
            }
            reader.stop();
        }
        visitor.stop();
    }
    Ok(())
}

#[tokio::test]
async fn auto_assignment_keeps_capacity_when_chats_arrive_on_both_nodes_at_once() -> Result<()> {
    let nodes = Nodes::start(SHARED_REDIS).await?;
    let admin_token = nodes.a.admin_token().await?;
    let mut agent = Agent::create_with_capacity(&nodes.b, &admin_token, "cara@example.com", 1).await?;
    agent.client.set_status(AgentStatus::Online)?;
    // Node A hears of the online agent through Redis.
    let (watcher, mut watcher_events) = Client::visitor(nodes.a.ws_url(), "demo")?;
    collect(&mut watcher_events, 1, |event| match event {
        Event::Availability(a) if a.agents_online >= 1 => Some(()),
        _ => None,
    })
    .await?;
    watcher.stop();

    let mut visitors = Vec::new();
    for n in 0..6 {
        let relay = if n % 2 == 0 { &nodes.a } else { &nodes.b };
        let (visitor, events) = Client::visitor(relay.ws_url(), "demo")?;
        visitors.push((visitor, events));
    }
    let mut sends = Vec::new();
    for (n, (visitor, _)) in visitors.iter().enumerate() {
        let visitor = visitor.clone();
        sends.push(tokio::spawn(async move {
            let conversation = visitor.conversation().await?;
            visitor.send(conversation, body(format!("visitor {n}"))).await?;
            Ok::<_, anyhow::Error>(conversation)
        }));
    }
    let mut conversations = Vec::new();
    for send in sends {
        conversations.push(send.await??);
    }
    // No timer decides when the passes are over. The agent gets one chat;
    // then a second agent comes online and takes the others. Once every
    // chat has an assignee no pass on either node can change who has
    // which (auto-assignment only takes an unassigned chat), so the count
    // read then is final.
    let first = agent.assigned_one_of(&conversations).await?;
    let mut second = Agent::create(&nodes.a, &admin_token, "dan@example.com").await?;
    second.client.set_status(AgentStatus::Online)?;
    let assignees = second.until_all_assigned(&conversations).await?;
    ensure!(assignees[&first] == agent.id, "{first:?} went from cara to {:?}", assignees[&first]);
    let mine = assigned_to(&nodes.a, agent.id, &conversations).await?;
    assert_eq!(mine, 1, "an agent with capacity 1 gets exactly one chat: {assignees:?}");
    Ok(())
}

#[tokio::test]
async fn a_node_draining_on_sigterm_sends_its_clients_to_the_other_which_replays_what_they_missed() -> Result<()> {
    let mut nodes = Nodes::start(SHARED_REDIS).await?;
    let balancer = Balancer::start(&[nodes.a.addr(), nodes.b.addr()]).await?;
    let (visitor, mut visitor_events) = Client::visitor(balancer.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    let (agent, mut agent_events) = admin(&nodes.b, nodes.b.ws_url()).await?;
    visitor.send(conversation, body("visitor 0")).await?;
    texts(&mut agent_events, conversation, 1).await?;
    agent.join(conversation)?;

    nodes.a.signal("TERM")?;
    let closing = collect(&mut visitor_events, 1, |event| match event {
        Event::Closing(closing) => Some(closing),
        _ => None,
    })
    .await?;
    assert_eq!(closing[0].reason, CloseReason::ShuttingDown);
    for n in 1..=10 {
        agent.send(conversation, body(format!("agent {n}"))).await?;
    }
    assert!(nodes.a.wait_exit().await?.success(), "node A exits cleanly");
    visitor.send(conversation, body("visitor 1")).await?;

    // "visitor 0" came back before the notice and was passed over; the
    // node that takes the visitor over must not send it again.
    let seen = texts(&mut visitor_events, conversation, 11).await?;
    let mut expected: Vec<String> = (1..=10).map(|n| format!("agent {n}")).collect();
    expected.push("visitor 1".to_owned());
    assert_eq!(seen, expected);
    Ok(())
}

#[tokio::test]
async fn presence_crosses_nodes_and_a_killed_node_s_agents_go_offline() -> Result<()> {
    let mut nodes = Nodes::start(SHARED_REDIS).await?;
    let (visitor, mut visitor_events) = Client::visitor(nodes.a.ws_url(), "demo")?;
    visitor.conversation().await?;
    let (agent, _agent_events) = admin(&nodes.b, nodes.b.ws_url()).await?;
    agent.set_status(AgentStatus::Online)?;
    let availability = |want: u32| {
        move |event| match event {
            Event::Availability(a) if a.agents_online == want => Some(()),
            _ => None,
        }
    };
    collect(&mut visitor_events, 1, availability(1)).await?;

    // No goodbye: the node's announcements stop and expire.
    nodes.b.kill9().await?;
    collect(&mut visitor_events, 1, availability(0)).await?;
    Ok(())
}

#[tokio::test]
async fn out_of_hours_an_agent_who_said_online_on_one_node_takes_a_chat_written_on_the_other() -> Result<()> {
    let nodes = Nodes::start(SHARED_REDIS).await?;
    let admin_token = nodes.a.admin_token().await?;
    // Open every day from two to three hours from now (UTC): closed now,
    // and it last closed yesterday, before anyone here said anything.
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let now = chrono::DateTime::from_timestamp(i64::try_from(since_epoch.as_secs())?, 0).context("time")?;
    let from = (now + chrono::Duration::hours(2)).format("%H:%M").to_string();
    let to = (now + chrono::Duration::hours(3)).format("%H:%M").to_string();
    let day = || serde_json::json!([{ "from": from, "to": to }]);
    let week = serde_json::json!({
        "mon": day(), "tue": day(), "wed": day(), "thu": day(), "fri": day(), "sat": day(), "sun": day()
    });
    let response = reqwest::Client::new()
        .put(format!("{}/api/site/hours", nodes.a.http_url()))
        .bearer_auth(&admin_token)
        .json(&serde_json::json!({ "enabled": true, "calendar": { "zone": "UTC", "week": week } }))
        .send()
        .await?;
    ensure!(response.status() == 200, "saving hours: {}", response.text().await?);

    // Both agents on node A: Ann is only connected, Bob chooses Online.
    let mut ann = Agent::create(&nodes.a, &admin_token, "ann@kefu.test").await?;
    let mut bob = Agent::create(&nodes.a, &admin_token, "bob@kefu.test").await?;
    let (visitor, mut visitor_events) = Client::visitor(nodes.b.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    bob.client.set_status(AgentStatus::Online)?;
    // Node B hears of the hours saved on node A and of Bob's Online, and
    // tells its visitor: out of hours, Bob (who said Online after closing,
    // on node A) is there.
    collect(&mut visitor_events, 1, |event| match event {
        Event::Availability(a) if a.out_of_hours && a.agents_online == 1 => Some(()),
        _ => None,
    })
    .await?;

    // Written on node B, decided there: the chat goes to Bob.
    visitor.send(conversation, body("anyone there at night?")).await?;
    assert_eq!(bob.assigned_one_of(&[conversation]).await?, conversation);
    // Ann hears the same assignment, to Bob: nothing was handed to her.
    let bob_id = bob.id;
    let seen = collect(&mut ann.events, 1, |event| match event {
        Event::Conversation(update) if update.conversation == conversation && update.assignee.is_some() => {
            Some(update.assignee)
        }
        _ => None,
    })
    .await?;
    assert_eq!(seen, vec![Some(bob_id)], "only the agent who chose Online out of hours is given chats");
    Ok(())
}

#[tokio::test]
async fn hours_saved_on_one_node_reach_the_visitors_of_the_other_at_once() -> Result<()> {
    let nodes = Nodes::start(SHARED_REDIS).await?;
    let admin_token = nodes.a.admin_token().await?;
    let (_visitor, mut visitor_events) = Client::visitor(nodes.b.ws_url(), "demo")?;
    collect(&mut visitor_events, 1, |event| match event {
        Event::Availability(a) if !a.out_of_hours => Some(()),
        _ => None,
    })
    .await?;
    // Saved on node A: no interval in the week, closed from now on.
    let response = reqwest::Client::new()
        .put(format!("{}/api/site/hours", nodes.a.http_url()))
        .bearer_auth(&admin_token)
        .json(&serde_json::json!({ "enabled": true, "calendar": { "zone": "UTC" } }))
        .send()
        .await?;
    ensure!(response.status() == 200, "saving hours: {}", response.text().await?);
    // Node B's visitor is told without writing, long before node B's own
    // look at the hours (minutes away).
    collect(&mut visitor_events, 1, |event| match event {
        Event::Availability(a) if a.out_of_hours => Some(()),
        _ => None,
    })
    .await?;
    Ok(())
}

/// An agent of the demo site signed in over the SDK on one node.
struct Agent {
    id: AgentId,
    client: Client,
    events: Events,
}

impl Agent {
    async fn create(relay: &Relay, admin_token: &str, email: &str) -> Result<Agent> {
        Agent::create_with_capacity(relay, admin_token, email, 10).await
    }

    async fn create_with_capacity(relay: &Relay, admin_token: &str, email: &str, capacity: u32) -> Result<Agent> {
        let response = reqwest::Client::new()
            .post(format!("{}/api/agents", relay.http_url()))
            .bearer_auth(admin_token)
            .json(&serde_json::json!({
                "email": email, "name": email.split('@').next().unwrap_or(email),
                "password": ADMIN_PASSWORD, "role": "agent", "capacity": capacity,
            }))
            .send()
            .await?;
        ensure!(response.status() == 201, "creating {email}: {}", response.text().await?);
        let token = kefu_sdk::login(&relay.http_url(), email, ADMIN_PASSWORD).await?.token;
        let (client, events) = Client::agent(relay.ws_url(), &token)?;
        let id = match client.identity().await? {
            Identity::Agent { agent, .. } => agent,
            other => bail!("{email} welcomed as {other:?}"),
        };
        Ok(Agent { id, client, events })
    }

    /// Waits until one of `conversations` is assigned to this agent, and
    /// returns it.
    async fn assigned_one_of(&mut self, conversations: &[ConversationId]) -> Result<ConversationId> {
        let me = self.id;
        let got = collect(&mut self.events, 1, |event| match event {
            Event::Conversation(update)
                if conversations.contains(&update.conversation) && update.assignee == Some(me) =>
            {
                Some(update.conversation)
            }
            _ => None,
        })
        .await?;
        Ok(got[0])
    }

    /// Waits until every one of `conversations` has an assignee, as this
    /// agent's console hears it (the list on connect, then updates), and
    /// returns who has which.
    async fn until_all_assigned(
        &mut self,
        conversations: &[ConversationId],
    ) -> Result<HashMap<ConversationId, AgentId>> {
        let mut assignees = HashMap::new();
        tokio::time::timeout(PATIENCE, async {
            while assignees.len() < conversations.len() {
                if let Event::Conversation(update) = self.events.next().await.context("agent stopped")?
                    && let Some(to) = update.assignee
                    && conversations.contains(&update.conversation)
                {
                    assignees.insert(update.conversation, to);
                }
            }
            Ok::<_, anyhow::Error>(())
        })
        .await
        .with_context(|| format!("only {} of {} chats were assigned", assignees.len(), conversations.len()))??;
        Ok(assignees)
    }

    /// Whether this agent's take of `conversation` was refused as a
    /// conflict (`false`: it was assigned to this agent).
    async fn refused(&mut self, conversation: ConversationId) -> Result<bool> {
        let me = self.id;
        tokio::time::timeout(PATIENCE, async {
            loop {
                match self.events.next().await.context("agent stopped")? {
                    Event::Error(error) if error.code == ErrorCode::Conflict => return Ok(true),
                    Event::Conversation(update)
                        if update.conversation == conversation && update.assignee == Some(me) =>
                    {
                        return Ok(false);
                    }
                    _ => {}
                }
            }
        })
        .await?
    }
}

/// How many of `conversations` are assigned to `agent`, as an admin's
/// console on `relay` sees them.
async fn assigned_to(relay: &Relay, agent: AgentId, conversations: &[ConversationId]) -> Result<usize> {
    let (admin, mut events) = admin(relay, relay.ws_url()).await?;
    let wanted: HashSet<ConversationId> = conversations.iter().copied().collect();
    let mut assignee = std::collections::HashMap::new();
    for &conversation in conversations {
        admin.join(conversation)?;
    }
    // The replay of each conversation ends with its assignment lines.
    let mut complete = HashSet::new();
    tokio::time::timeout(PATIENCE, async {
        while complete.len() < wanted.len() {
            match events.next().await.context("admin stopped")? {
                Event::Message(m) if wanted.contains(&m.conversation) => {
                    if let Body::Event(ConversationEvent::Assigned { to, .. }) = &m.body {
                        assignee.insert(m.conversation, to.id);
                    }
                }
                Event::ReplayComplete(done) if wanted.contains(&done.conversation) => {
                    complete.insert(done.conversation);
                }
                _ => {}
            }
        }
        Ok::<_, anyhow::Error>(())
    })
    .await??;
    admin.stop();
    Ok(assignee.values().filter(|&&to| to == agent).count())
}
