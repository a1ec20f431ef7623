//! Working as a team, end to end with the real relay and SDK clients:
//! auto-assignment within capacity, taking races, transfers with a note,
//! closing and reopening, and private notes that never reach a visitor.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use kefu_protocol::frame::{
    AgentStatus, Author, Body, Change, ConversationEvent, ConversationStatus, ConversationUpdate, ErrorCode, Presence,
};
use kefu_protocol::ids::{AgentId, ConversationId};
use kefu_sdk::{Client, Event, Events, Message};
use kefu_tests::{ADMIN_PASSWORD, PATIENCE, Relay, collect, events_until, message, message_saying, messages, text};

/// An agent of the demo site, signed in over the SDK.
struct Agent {
    id: AgentId,
    client: Client,
    events: Events,
    /// The latest state of each conversation this agent heard of.
    seen: HashMap<ConversationId, ConversationUpdate>,
    /// Errors the relay reported, oldest first, not yet looked at.
    errors: Vec<ErrorCode>,
}

impl Agent {
    /// Creates an agent with `capacity` through the admin API and signs it in.
    async fn create(relay: &Relay, admin_token: &str, email: &str, capacity: u32) -> Result<Agent> {
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
            kefu_protocol::frame::Identity::Agent { agent, .. } => agent,
            other => bail!("{email} welcomed as {other:?}"),
        };
        Ok(Agent { id, client, events, seen: HashMap::new(), errors: Vec::new() })
    }

    /// Reads events until `done` holds for the conversations seen so far.
    async fn until(
        &mut self,
        mut done: impl FnMut(&HashMap<ConversationId, ConversationUpdate>) -> bool,
    ) -> Result<()> {
        tokio::time::timeout(PATIENCE, async {
            while !done(&self.seen) {
                match self.events.next().await.context("agent stopped")? {
                    Event::Conversation(update) => {
                        self.seen.insert(update.conversation, update);
                    }
                    Event::Error(error) => self.errors.push(error.code),
                    _ => {}
                }
            }
            Ok::<_, anyhow::Error>(())
        })
        .await
        .context("the conversations never reached the expected state")?
    }

    /// Reads events (keeping track of the conversations) until the message
    /// saying `marker`; the relay published everything before it first.
    async fn until_message(&mut self, marker: &str) -> Result<()> {
        for event in events_until(&mut self.events, message_saying(marker)).await? {
            match event {
                Event::Conversation(update) => {
                    self.seen.insert(update.conversation, update);
                }
                Event::Error(error) => self.errors.push(error.code),
                _ => {}
            }
        }
        Ok(())
    }

    /// The next error the relay reports to this agent, if one comes soon.
    async fn error(&mut self, within: Duration) -> Option<ErrorCode> {
        if !self.errors.is_empty() {
            return Some(self.errors.remove(0));
        }
        tokio::time::timeout(within, async {
            loop {
                match self.events.next().await? {
                    Event::Error(error) => return Some(error.code),
                    Event::Conversation(update) => {
                        self.seen.insert(update.conversation, update);
                    }
                    _ => {}
                }
            }
        })
        .await
        .ok()
        .flatten()
    }
}

/// A visitor that has sent its first message, so it waits for an agent.
async fn waiting_visitor(relay: &Relay, first: &str) -> Result<(Client, Events, ConversationId)> {
    let (client, events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = client.conversation().await?;
    client.send(conversation, Body::Text(first.into())).await?;
    Ok((client, events, conversation))
}

fn assignee(seen: &HashMap<ConversationId, ConversationUpdate>, conversation: ConversationId) -> Option<AgentId> {
    seen.get(&conversation).and_then(|update| update.assignee)
}

fn system_line(message: &Message) -> Option<&ConversationEvent> {
    match &message.body {
        Body::Event(event) => Some(event),
        _ => None,
    }
}

#[tokio::test]
async fn auto_assignment_respects_capacity_and_a_freed_slot_takes_the_waiting_chat() -> Result<()> {
    let relay = Relay::start().await?;
    let admin = relay.admin_token().await?;
    let mut ann = Agent::create(&relay, &admin, "ann@kefu.test", 1).await?;
    let mut bob = Agent::create(&relay, &admin, "bob@kefu.test", 1).await?;
    ann.client.set_status(AgentStatus::Online)?;
    bob.client.set_status(AgentStatus::Online)?;

    let (_v1, mut v1_events, c1) = waiting_visitor(&relay, "first").await?;
    let (_v2, _v2_events, c2) = waiting_visitor(&relay, "second").await?;
    let (_v3, _v3_events, c3) = waiting_visitor(&relay, "third").await?;
    ann.until(|seen| {
        [c1, c2].iter().all(|c| assignee(seen, *c).is_some())
            && seen.get(&c3).is_some_and(|u| u.waiting_since.is_some())
    })
    .await?;
    let (a1, a2) = (assignee(&ann.seen, c1), assignee(&ann.seen, c2));
    let mut both = [a1, a2];
    both.sort();
    let mut expected = [Some(ann.id), Some(bob.id)];
    expected.sort();
    assert_eq!(both, expected, "one chat each, within capacity 1");
    // The third waits. To know that it waits for good: Ann says she is
    // online again, which runs an assignment pass while the third is
    // waiting, and her relay handles her next frame only after that pass.
    // That frame is a message: whatever the pass published reaches Ann
    // before it.
    let ann_has = if a1 == Some(ann.id) { c1 } else { c2 };
    ann.client.set_status(AgentStatus::Online)?;
    ann.client.send(ann_has, Body::Text("after the pass".into())).await?;
    ann.until_message("after the pass").await?;
    assert_eq!(assignee(&ann.seen, c3), None, "nobody has room for the third");

    // The first visitor is told who took the chat.
    let lines = collect(&mut v1_events, 2, message).await?;
    let Some(ConversationEvent::Assigned { to, by: None }) = system_line(&lines[1]) else {
        bail!("expected an automatic assignment line, got {:?}", lines[1]);
    };
    assert_eq!(Some(to.id), a1);

    // Whoever has c1 closes it: c3 goes to them, the only one with room.
    let closer = if a1 == Some(ann.id) { &mut ann } else { &mut bob };
    closer.client.update(c1, Change::Close)?;
    let closer_id = closer.id;
    closer
        .until(|seen| {
            seen.get(&c1).is_some_and(|u| u.status == ConversationStatus::Closed)
                && assignee(seen, c3) == Some(closer_id)
        })
        .await?;
    Ok(())
}

#[tokio::test]
async fn two_agents_racing_to_take_a_chat_never_share_it() -> Result<()> {
    let relay = Relay::start().await?;
    let admin = relay.admin_token().await?;
    // Away (the SDK's default): no auto-assignment, only the race.
    let mut ann = Agent::create(&relay, &admin, "ann@kefu.test", 5).await?;
    let mut bob = Agent::create(&relay, &admin, "bob@kefu.test", 5).await?;
    for round in 0..10 {
        let (visitor, mut visitor_events, conversation) = waiting_visitor(&relay, &format!("race {round}")).await?;
        ann.until(|seen| seen.contains_key(&conversation)).await?;
        bob.until(|seen| seen.contains_key(&conversation)).await?;
        ann.client.update(conversation, Change::Take)?;
        bob.client.update(conversation, Change::Take)?;
        ann.until(|seen| assignee(seen, conversation).is_some()).await?;
        bob.until(|seen| assignee(seen, conversation).is_some()).await?;
        let winner = assignee(&ann.seen, conversation).context("assigned")?;
        assert_eq!(assignee(&bob.seen, conversation), Some(winner), "both see the same owner");
        let loser = if winner == ann.id { &mut bob } else { &mut ann };
        assert_eq!(loser.error(PATIENCE).await, Some(ErrorCode::Conflict), "round {round}: the loser is told");

        // Exactly one assignment line: the visitor's message, then it, then
        // the visitor's next message, written after both takes were
        // handled (the loser heard so).
        let marker = format!("after race {round}");
        visitor.send(conversation, Body::Text(marker.clone())).await?;
        let lines = messages(events_until(&mut visitor_events, message_saying(&marker)).await?);
        assert_eq!(lines.len(), 2, "round {round}: one line between the message and the marker: {lines:?}");
        assert!(matches!(system_line(&lines[1]), Some(ConversationEvent::Assigned { to, .. }) if to.id == winner));
    }
    Ok(())
}

#[tokio::test]
async fn a_transfer_hands_over_history_and_a_note_only_agents_see() -> Result<()> {
    let relay = Relay::start().await?;
    let admin = relay.admin_token().await?;
    let mut ann = Agent::create(&relay, &admin, "ann@kefu.test", 3).await?;
    let mut bob = Agent::create(&relay, &admin, "bob@kefu.test", 3).await?;
    let (_visitor, mut visitor_events, conversation) = waiting_visitor(&relay, "my order is late").await?;
    ann.until(|seen| seen.contains_key(&conversation)).await?;
    ann.client.update(conversation, Change::Take)?;
    let ann_id = ann.id;
    ann.until(|seen| assignee(seen, conversation) == Some(ann_id)).await?;
    ann.client.send(conversation, Body::Text("Let me check.".into())).await?;
    ann.client.update(conversation, Change::Transfer { to: bob.id, note: "VIP, order 1234".into() })?;
    let bob_id = bob.id;
    ann.until(|seen| assignee(seen, conversation) == Some(bob_id)).await?;

    // Bob has the whole history: message, assignment, reply, transfer, note.
    let got = collect(&mut bob.events, 5, |e| message(e).filter(|m| m.conversation == conversation)).await?;
    assert_eq!(text(&got[0]), "my order is late");
    assert!(matches!(system_line(&got[1]), Some(ConversationEvent::Assigned { .. })));
    assert_eq!(text(&got[2]), "Let me check.");
    assert!(matches!(
        system_line(&got[3]),
        Some(ConversationEvent::Transferred { from, to }) if from.id == ann.id && to.id == bob_id
    ));
    assert_eq!(got[4].body, Body::Note("VIP, order 1234".into()));
    assert_eq!(got[4].author, Author::Agent(ann.id));

    // The visitor sees the transfer line but never the note, and the reply
    // after it arrives in order with nothing missing.
    bob.client.send(conversation, Body::Text("Hi, I'm Bob.".into())).await?;
    let seen = collect(&mut visitor_events, 5, message).await?;
    let kinds: Vec<_> = seen.iter().map(|m| (m.seq.0, text(m).to_owned())).collect();
    assert_eq!(kinds.iter().map(|k| k.0).collect::<Vec<_>>(), [1, 2, 3, 4, 6], "seq 5 is the note: {kinds:?}");
    assert_eq!(seen[4].prev.0, 4, "the visitor's chain skips the note");
    assert_eq!(text(&seen[4]), "Hi, I'm Bob.");
    assert!(seen.iter().all(|m| !matches!(m.body, Body::Note(_))));

    // Only the assignee or an admin may transfer: Ann no longer may.
    ann.client.update(conversation, Change::Transfer { to: ann.id, note: String::new() })?;
    assert_eq!(ann.error(PATIENCE).await, Some(ErrorCode::Forbidden));
    Ok(())
}

#[tokio::test]
async fn private_notes_never_reach_the_visitor_live_or_on_replay() -> Result<()> {
    let relay = Relay::start().await?;
    let admin = relay.admin_token().await?;
    let ann = Agent::create(&relay, &admin, "ann@kefu.test", 3).await?;
    let (visitor, mut visitor_events, conversation) = waiting_visitor(&relay, "hello").await?;
    ann.client.join(conversation)?;
    ann.client.send(conversation, Body::Note("angry customer, be nice".into())).await?;
    ann.client.send(conversation, Body::Text("Hi! How can I help?".into())).await?;
    ann.client.send(conversation, Body::Note("second note".into())).await?;
    visitor.send(conversation, Body::Text("my order".into())).await?;

    let live = collect(&mut visitor_events, 3, message).await?;
    assert_eq!(live.iter().map(text).collect::<Vec<_>>(), ["hello", "Hi! How can I help?", "my order"]);
    assert_eq!(live.iter().map(|m| (m.prev.0, m.seq.0)).collect::<Vec<_>>(), [(0, 1), (1, 3), (3, 5)]);

    // A returning visitor (a reload) replays from the start: still no note.
    let returning = visitor.returning_credentials().await?;
    visitor.stop();
    let (again, mut again_events) = Client::connect(relay.ws_url(), returning, kefu_sdk::SessionConfig::default());
    // The whole replay, up to its end: the three, nothing else.
    let replay_done = |event: &Event| matches!(event, Event::ReplayComplete(done) if done.conversation == conversation);
    let replayed = messages(events_until(&mut again_events, replay_done).await?);
    assert_eq!(replayed, live);

    // A visitor may not write a note.
    let refused = again.send(conversation, Body::Note("me too".into())).await;
    assert!(refused.is_err(), "a visitor's note must be refused: {refused:?}");
    Ok(())
}

#[tokio::test]
async fn closing_frees_the_agent_and_a_visitor_writing_again_reopens_the_chat() -> Result<()> {
    let relay = Relay::start().await?;
    let admin = relay.admin_token().await?;
    let mut ann = Agent::create(&relay, &admin, "ann@kefu.test", 1).await?;
    ann.client.set_status(AgentStatus::Online)?;
    let (visitor, mut visitor_events, conversation) = waiting_visitor(&relay, "question").await?;
    let ann_id = ann.id;
    ann.until(|seen| assignee(seen, conversation) == Some(ann_id)).await?;
    ann.client.update(conversation, Change::Close)?;
    ann.until(|seen| seen.get(&conversation).is_some_and(|u| u.status == ConversationStatus::Closed)).await?;

    visitor.send(conversation, Body::Text("one more thing".into())).await?;
    ann.until(|seen| {
        seen.get(&conversation).is_some_and(|u| u.status == ConversationStatus::Open && u.assignee == Some(ann_id))
    })
    .await?;
    let lines = collect(&mut visitor_events, 6, message).await?;
    let events: Vec<_> = lines.iter().map(|m| system_line(m).cloned()).collect();
    assert!(matches!(events[1], Some(ConversationEvent::Assigned { .. })), "{lines:?}");
    assert!(matches!(events[2], Some(ConversationEvent::Closed { .. })), "{lines:?}");
    assert_eq!(text(&lines[3]), "one more thing");
    assert!(matches!(events[4], Some(ConversationEvent::Reopened { by: None })), "{lines:?}");
    assert!(matches!(events[5], Some(ConversationEvent::Assigned { .. })), "{lines:?}");
    Ok(())
}

/// Reads rosters until `watched` has `want`; returns `me`'s presence then.
async fn roster_until(events: &mut Events, watched: AgentId, want: Presence, me: AgentId) -> Result<Option<Presence>> {
    let presence_of =
        |roster: &kefu_protocol::frame::Roster, id| roster.agents.iter().find(|m| m.agent == id).map(|m| m.presence);
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Event::Roster(roster) = events.next().await.context("agent stopped")?
                && presence_of(&roster, watched) == Some(want)
            {
                return Ok(presence_of(&roster, me));
            }
        }
    })
    .await
    .context("the roster never showed it")?
}

#[tokio::test]
async fn the_roster_shows_who_is_online_away_and_gone() -> Result<()> {
    let relay = Relay::start().await?;
    let admin = relay.admin_token().await?;
    let mut ann = Agent::create(&relay, &admin, "ann@kefu.test", 2).await?;
    let bob = Agent::create(&relay, &admin, "bob@kefu.test", 2).await?;
    bob.client.set_status(AgentStatus::Online)?;
    let me = roster_until(&mut ann.events, bob.id, Presence::Online, ann.id).await?;
    assert_eq!(me, Some(Presence::Away), "connected without saying online");
    bob.client.set_status(AgentStatus::Away)?;
    roster_until(&mut ann.events, bob.id, Presence::Away, ann.id).await?;
    bob.client.stop();
    roster_until(&mut ann.events, bob.id, Presence::Offline, ann.id).await?;
    Ok(())
}
