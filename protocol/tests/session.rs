//! The client session driven through its public API with a fake clock:
//! one scenario per rule it must keep.

use kefu_protocol::PROTOCOL_VERSION;
use kefu_protocol::frame::{
    Accepted, Ack, Attribute, Attributes, Author, Availability, Body, CloseReason, Closing, ConversationStatus,
    ConversationUpdate, Credentials, Cursor, ErrorCode, ErrorFrame, Heartbeat, Hello, Identify, Identity, Join,
    Message, Ping, Pong, ReceiptKind, Rejected, ReplayComplete, ReturningVisitor, Send, Typing, Visit, VisitorProfile,
    Welcome,
};
use kefu_protocol::ids::{
    AgentId, AgentToken, ClientMessageId, ConversationId, MessageId, Seq, SessionId, SiteId, SiteKey, Timestamp,
    VisitorId, VisitorToken,
};
use kefu_protocol::session::{Action, Event, LinkState, Millis, Session, SessionConfig};
use kefu_protocol::{ClientFrame, DEFAULT_LIMITS, ServerFrame};

const C: ConversationId = ConversationId(3);
const D: ConversationId = ConversationId(4);
/// The heartbeat the fake relay announces: silence for 30 s kills a link.
const HEARTBEAT: Heartbeat = Heartbeat { interval_ms: 25_000, grace_ms: 5_000 };

fn t(ms: u64) -> Millis {
    Millis(ms)
}

fn agent() -> Credentials {
    Credentials::Agent { token: AgentToken::new("agent-token").expect("a valid token") }
}

fn new_visitor() -> Credentials {
    Credentials::Visitor { site: SiteKey::new("demo").expect("a valid key"), returning: None }
}

fn visitor_token() -> VisitorToken {
    VisitorToken::new("visitor-token").expect("a valid token")
}

fn welcome(identity: Identity) -> ServerFrame {
    ServerFrame::Welcome(Welcome {
        session: SessionId(1),
        identity,
        heartbeat: HEARTBEAT,
        server_time: Timestamp(1_700_000_000_000),
        limits: DEFAULT_LIMITS,
    })
}

fn agent_welcome() -> ServerFrame {
    welcome(Identity::Agent { agent: AgentId(5), site: SiteId(2), name: "Ann".into() })
}

fn visitor_welcome(conversation: ConversationId) -> ServerFrame {
    welcome(Identity::Visitor { visitor: VisitorId(7), token: visitor_token(), site: SiteId(2), conversation })
}

fn message(conversation: ConversationId, seq: u64) -> Message {
    Message {
        conversation,
        seq: Seq(seq),
        prev: Seq(seq.saturating_sub(1)),
        id: MessageId(1_000 + seq),
        client_id: None,
        author: Author::Agent(AgentId(6)),
        body: Body::Text(format!("message {seq}")),
        sent_at: Timestamp(1_700_000_000_000 + seq),
    }
}

fn text(s: &str) -> Body {
    Body::Text(s.to_owned())
}

fn accepted(conversation: ConversationId, client_id: ClientMessageId, seq: u64) -> ServerFrame {
    ServerFrame::Accepted(Accepted {
        conversation,
        client_id,
        id: MessageId(seq),
        seq: Seq(seq),
        sent_at: Timestamp(0),
    })
}

fn frames(actions: &[Action]) -> Vec<ClientFrame> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Transmit(frame) => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

fn events(actions: &[Action]) -> Vec<Event> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Emit(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

fn delivered(actions: &[Action]) -> Vec<u64> {
    events(actions)
        .into_iter()
        .filter_map(|event| match event {
            Event::Message(message) => Some(message.seq.0),
            _ => None,
        })
        .collect()
}

fn join(conversation: ConversationId, after: u64) -> ClientFrame {
    ClientFrame::Join(Join { conversation, after: Seq(after) })
}

/// An agent session, live since `t(0)`, following `C` from the start.
fn live_agent(config: SessionConfig, seed: u64) -> Session {
    let mut session = Session::new(agent(), config, seed);
    session.join(t(0), C);
    session.start(t(0));
    session.connected(t(0));
    session.receive(t(0), agent_welcome());
    session.receive(t(0), ServerFrame::ReplayComplete(ReplayComplete { conversation: C, last_seq: Seq::ZERO }));
    assert_eq!(session.link(), LinkState::Live);
    session
}

/// Drops the link of a live session at `now` and returns when it retries.
fn drop_link(session: &mut Session, now: Millis) -> Millis {
    let actions = session.disconnected(now);
    let Some(Action::Emit(Event::Link(LinkState::Waiting { retry_at, .. }))) = actions.last() else {
        panic!("expected to wait after a drop: {actions:?}");
    };
    *retry_at
}

#[test]
fn a_new_session_is_stopped_until_started() {
    let mut session = Session::new(agent(), SessionConfig::default(), 1);
    assert_eq!(session.link(), LinkState::Stopped);
    assert_eq!(session.next_wakeup(), None);
    assert!(session.tick(t(1_000_000)).is_empty());
    assert!(session.connected(t(0)).is_empty(), "no transport was asked for");

    let actions = session.start(t(5));
    assert_eq!(actions, [Action::Connect, Action::Emit(Event::Link(LinkState::Connecting))]);
    assert_eq!(session.next_wakeup(), Some(t(10_005)), "the handshake deadline");
    assert!(session.start(t(6)).is_empty(), "starting twice does nothing");
}

#[test]
fn the_hello_resumes_every_followed_conversation() {
    let mut session = Session::new(agent(), SessionConfig::default(), 1);
    session.join(t(0), D);
    session.join(t(0), C);
    session.start(t(0));
    let actions = session.connected(t(10));
    assert_eq!(
        frames(&actions),
        [ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            credentials: agent(),
            resume: vec![Cursor { conversation: C, seq: Seq::ZERO }, Cursor { conversation: D, seq: Seq::ZERO },],
        })]
    );
    assert!(session.connected(t(11)).is_empty(), "one hello per link");
}

#[test]
fn a_welcome_makes_the_link_live() {
    let mut session = Session::new(agent(), SessionConfig::default(), 1);
    session.start(t(0));
    session.connected(t(0));
    let actions = session.receive(t(200), agent_welcome());
    let ServerFrame::Welcome(frame) = agent_welcome() else { unreachable!() };
    assert_eq!(actions, [Action::Emit(Event::Link(LinkState::Live)), Action::Emit(Event::Welcome(frame))]);
    assert_eq!(session.identity(), Some(&Identity::Agent { agent: AgentId(5), site: SiteId(2), name: "Ann".into() }));
    assert_eq!(session.credentials(), &agent());
    assert_eq!(session.next_wakeup(), Some(t(30_200)), "the heartbeat deadline");
}

#[test]
fn a_visitor_comes_back_as_the_same_visitor() {
    let mut session = Session::new(new_visitor(), SessionConfig::default(), 1);
    session.start(t(0));
    session.connected(t(0));
    let actions = session.receive(t(0), visitor_welcome(C));
    assert!(frames(&actions).is_empty(), "the relay subscribes a visitor itself: no Join");
    assert!(session.is_following(C));
    assert_eq!(session.cursor(C), Seq::ZERO);

    let retry_at = drop_link(&mut session, t(1_000));
    session.tick(retry_at);
    let hello = frames(&session.connected(retry_at));
    assert_eq!(
        hello,
        [ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            credentials: Credentials::Visitor {
                site: SiteKey::new("demo").expect("a valid key"),
                returning: Some(ReturningVisitor { visitor: VisitorId(7), token: visitor_token() }),
            },
            resume: vec![Cursor { conversation: C, seq: Seq::ZERO }],
        })]
    );
}

#[test]
fn sends_while_waiting_go_out_in_order_with_their_ids_after_reconnect() {
    let mut session = live_agent(SessionConfig::default(), 7);
    let retry_at = drop_link(&mut session, t(1_000));

    let mut ids = Vec::new();
    for i in 0..20 {
        let (id, actions) = session.send(t(1_000 + i), C, text(&format!("hello {i}")));
        assert!(actions.is_empty(), "nothing goes out while the link is down");
        ids.push(id);
    }
    let pending: Vec<_> = session.pending().map(|p| p.client_id).collect();
    assert_eq!(pending, ids);
    assert_eq!(session.pending().next().map(|p| p.queued_at), Some(t(1_000)));

    assert_eq!(session.tick(retry_at), [Action::Connect, Action::Emit(Event::Link(LinkState::Connecting))]);
    session.connected(retry_at);
    let actions = session.receive(retry_at, agent_welcome());
    let expected: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, &client_id)| {
            ClientFrame::Send(Send { conversation: C, client_id, body: text(&format!("hello {i}")) })
        })
        .collect();
    assert_eq!(frames(&actions), expected);

    for (seq, &id) in ids.iter().enumerate() {
        let actions = session.receive(retry_at, accepted(C, id, seq as u64 + 1));
        assert!(matches!(&events(&actions)[..], [Event::Accepted(a)] if a.client_id == id));
    }
    assert_eq!(session.pending().count(), 0);
}

#[test]
fn unacknowledged_sends_survive_any_number_of_drops() {
    let mut session = live_agent(SessionConfig::default(), 8);
    let (first, actions) = session.send(t(0), C, text("one"));
    assert_eq!(frames(&actions).len(), 1, "sent at once while live");
    let (second, _) = session.send(t(0), C, text("two"));

    let mut now = t(0);
    for _ in 0..5 {
        let retry_at = drop_link(&mut session, now);
        session.tick(retry_at);
        session.connected(retry_at);
        let resent = frames(&session.receive(retry_at, agent_welcome()));
        let ids: Vec<_> = resent
            .iter()
            .map(|frame| match frame {
                ClientFrame::Send(send) => send.client_id,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(ids, [first, second]);
        now = retry_at;
    }
    session.receive(now, accepted(C, second, 2));
    let pending: Vec<_> = session.pending().map(|p| p.client_id).collect();
    assert_eq!(pending, [first]);
}

#[test]
fn accepted_and_rejected_only_answer_pending_sends() {
    let mut session = live_agent(SessionConfig::default(), 9);
    let (id, _) = session.send(t(0), C, text("hi"));
    let (bad, _) = session.send(t(0), C, text("not allowed"));
    let rejected = Rejected { conversation: C, client_id: bad, code: ErrorCode::Forbidden, text: "no".into() };

    assert_eq!(events(&session.receive(t(1), ServerFrame::Rejected(rejected.clone()))), [Event::Rejected(rejected)]);
    assert_eq!(events(&session.receive(t(1), accepted(C, id, 1))).len(), 1);
    assert!(session.receive(t(2), accepted(C, id, 1)).is_empty(), "a second answer is not news");
    assert!(session.receive(t(2), accepted(C, ClientMessageId(99), 2)).is_empty());
    assert_eq!(session.pending().count(), 0);
}

#[test]
fn requeued_sends_keep_their_id() {
    let mut session = Session::new(new_visitor(), SessionConfig::default(), 1);
    let id = ClientMessageId(0xABCD);
    assert!(session.requeue(t(0), id, C, text("from before the reload")).is_empty());
    assert!(session.requeue(t(0), id, C, text("from before the reload")).is_empty());
    assert_eq!(session.pending().count(), 1, "queued once");
    session.start(t(0));
    session.connected(t(0));
    let sent = frames(&session.receive(t(0), visitor_welcome(C)));
    assert_eq!(
        sent,
        [ClientFrame::Send(Send { conversation: C, client_id: id, body: text("from before the reload") })]
    );
}

#[test]
fn messages_are_delivered_once_in_order() {
    let mut session = live_agent(SessionConfig::default(), 1);
    for seq in 1..=3 {
        assert_eq!(delivered(&session.receive(t(0), ServerFrame::Message(message(C, seq)))), [seq]);
    }
    for seq in [3, 1, 2, 0] {
        assert!(session.receive(t(0), ServerFrame::Message(message(C, seq))).is_empty(), "duplicate {seq}");
    }
    assert_eq!(session.cursor(C), Seq(3));
}

#[test]
fn a_gap_is_repaired_by_one_replay() {
    let mut session = live_agent(SessionConfig::default(), 1);
    for seq in 1..=2 {
        session.receive(t(0), ServerFrame::Message(message(C, seq)));
    }
    let actions = session.receive(t(0), ServerFrame::Message(message(C, 5)));
    assert_eq!(actions, [Action::Transmit(join(C, 2))], "held back, and a replay asked for");
    assert!(session.receive(t(0), ServerFrame::Message(message(C, 6))).is_empty(), "no second Join");
    assert_eq!(session.cursor(C), Seq(2));

    let mut seqs = Vec::new();
    for seq in 3..=6 {
        seqs.extend(delivered(&session.receive(t(0), ServerFrame::Message(message(C, seq)))));
    }
    assert_eq!(seqs, [3, 4, 5, 6]);
    let complete = ReplayComplete { conversation: C, last_seq: Seq(6) };
    let actions = session.receive(t(0), ServerFrame::ReplayComplete(complete));
    assert_eq!(actions, [Action::Emit(Event::ReplayComplete(complete))]);

    // Resynced: a new gap asks again.
    assert_eq!(frames(&session.receive(t(0), ServerFrame::Message(message(C, 9)))), [join(C, 6)]);
}

#[test]
fn a_replay_that_misses_a_seen_message_is_asked_again() {
    let mut session = live_agent(SessionConfig::default(), 1);
    session.receive(t(0), ServerFrame::Message(message(C, 3)));
    session.receive(t(0), ServerFrame::Message(message(C, 1)));
    let complete = ReplayComplete { conversation: C, last_seq: Seq(1) };
    let actions = session.receive(t(0), ServerFrame::ReplayComplete(complete));
    assert_eq!(frames(&actions), [join(C, 1)], "seq 3 exists, so the replay must go on");
}

#[test]
fn messages_of_an_unfollowed_conversation_start_it_at_zero() {
    let mut session = live_agent(SessionConfig::default(), 1);
    assert!(!session.is_following(D));
    assert_eq!(delivered(&session.receive(t(0), ServerFrame::Message(message(D, 1)))), [1]);
    assert!(session.is_following(D));
    let mut other = live_agent(SessionConfig::default(), 1);
    assert_eq!(frames(&other.receive(t(0), ServerFrame::Message(message(D, 4)))), [join(D, 0)]);
}

#[test]
fn pings_are_answered_at_once() {
    let mut session = live_agent(SessionConfig::default(), 1);
    let actions = session.receive(t(5), ServerFrame::Ping(Ping { nonce: 77 }));
    assert_eq!(actions, [Action::Transmit(ClientFrame::Pong(Pong { nonce: 77 }))]);
}

#[test]
fn silence_past_the_heartbeat_deadline_drops_the_link() {
    let mut session = live_agent(SessionConfig::default(), 1);
    session.receive(t(20_000), ServerFrame::Ping(Ping { nonce: 1 }));
    assert_eq!(session.next_wakeup(), Some(t(50_000)));
    assert!(session.tick(t(49_999)).is_empty());

    let actions = session.tick(t(50_000));
    assert_eq!(actions.first(), Some(&Action::Disconnect));
    let Some(Action::Emit(Event::Link(LinkState::Waiting { attempt: 1, retry_at }))) = actions.get(1) else {
        panic!("expected to wait: {actions:?}");
    };
    assert!(*retry_at <= t(50_500));
    assert!(session.receive(t(50_001), ServerFrame::Ping(Ping { nonce: 2 })).is_empty(), "the old link is gone");
    assert!(session.disconnected(t(50_002)).is_empty(), "its close was already counted");
}

#[test]
fn any_frame_counts_as_a_sign_of_life() {
    let mut session = live_agent(SessionConfig::default(), 1);
    session.receive(t(29_000), ServerFrame::Message(message(C, 1)));
    assert!(session.tick(t(30_000)).is_empty());
    assert_eq!(session.next_wakeup(), Some(t(59_000)));
}

#[test]
fn a_relay_without_heartbeat_sets_no_deadline() {
    let mut session = Session::new(agent(), SessionConfig::default(), 1);
    session.start(t(0));
    session.connected(t(0));
    let ServerFrame::Welcome(mut frame) = agent_welcome() else { unreachable!() };
    frame.heartbeat = Heartbeat { interval_ms: 0, grace_ms: 0 };
    session.receive(t(0), ServerFrame::Welcome(frame));
    assert_eq!(session.next_wakeup(), None);
    assert!(session.tick(t(u64::MAX)).is_empty());
}

#[test]
fn a_handshake_that_takes_too_long_is_retried() {
    let mut session = Session::new(agent(), SessionConfig::default(), 1);
    session.start(t(0));
    session.connected(t(100));
    assert!(session.tick(t(9_999)).is_empty());
    let actions = session.tick(t(10_000));
    assert_eq!(actions.first(), Some(&Action::Disconnect));
    assert!(matches!(session.link(), LinkState::Waiting { attempt: 1, .. }));

    // A transport that never even opens is given up the same way.
    let retry_at = session.next_wakeup().expect("a retry");
    session.tick(retry_at);
    let actions = session.tick(retry_at.add_ms(10_000));
    assert_eq!(actions.first(), Some(&Action::Disconnect));
    assert!(matches!(session.link(), LinkState::Waiting { attempt: 2, .. }));
}

#[test]
fn a_transport_that_fails_to_open_is_retried_with_growing_backoff() {
    let mut session = Session::new(agent(), SessionConfig::default(), 3);
    session.start(t(0));
    let mut now = t(0);
    let ceilings = [500, 1_000, 2_000, 4_000, 8_000, 16_000, 20_000, 20_000, 20_000];
    for (i, ceiling) in ceilings.into_iter().enumerate() {
        let retry_at = drop_link(&mut session, now);
        assert_eq!(session.link(), LinkState::Waiting { attempt: i as u32 + 1, retry_at });
        assert!(retry_at.since(now) <= ceiling, "attempt {} waited {}", i + 1, retry_at.since(now));
        if retry_at > now {
            assert!(session.tick(Millis(retry_at.0 - 1)).is_empty(), "not due yet");
        }
        assert_eq!(session.tick(retry_at)[0], Action::Connect);
        now = retry_at;
    }
}

#[test]
fn backoff_delays_use_the_whole_window() {
    // Full jitter: over many sessions the first delay covers 0..=500.
    let delays: Vec<u64> = (0..500)
        .map(|seed| {
            let mut session = Session::new(agent(), SessionConfig::default(), seed);
            session.start(t(0));
            drop_link(&mut session, t(0)).0
        })
        .collect();
    assert!(delays.iter().all(|&d| d <= 500));
    assert!(delays.iter().any(|&d| d < 50) && delays.iter().any(|&d| d > 450), "{delays:?}");
}

#[test]
fn a_stable_link_resets_the_backoff() {
    let mut session = live_agent(SessionConfig::default(), 4);
    // Three quick failures in a row climb the backoff.
    let mut now = t(0);
    for _ in 0..3 {
        now = drop_link(&mut session, now);
        session.tick(now);
        session.connected(now);
        session.receive(now, agent_welcome());
    }
    // Live for less than stable_after_ms: the count goes on.
    now = now.add_ms(9_999);
    drop_link(&mut session, now);
    assert!(matches!(session.link(), LinkState::Waiting { attempt: 4, .. }));

    now = session.next_wakeup().expect("a retry");
    session.tick(now);
    session.connected(now);
    session.receive(now, agent_welcome());
    session.receive(now.add_ms(5_000), ServerFrame::Ping(Ping { nonce: 1 }));
    // Live for stable_after_ms: it starts over.
    drop_link(&mut session, now.add_ms(10_000));
    assert!(matches!(session.link(), LinkState::Waiting { attempt: 1, .. }));
}

#[test]
fn waking_reconnects_at_once_but_leaves_a_live_link_alone() {
    let mut session = live_agent(SessionConfig::default(), 1);
    assert!(session.wake(t(1_000)).is_empty());

    session.disconnected(t(1_000));
    let actions = session.wake(t(1_001));
    assert_eq!(actions, [Action::Connect, Action::Emit(Event::Link(LinkState::Connecting))]);
    assert!(session.wake(t(1_002)).is_empty(), "already connecting");

    // A page that slept through its deadline finds the link dead on waking.
    session.connected(t(2_000));
    session.receive(t(2_000), agent_welcome());
    let actions = session.wake(t(500_000));
    assert_eq!(actions.first(), Some(&Action::Disconnect));
    assert!(actions.contains(&Action::Connect));
    assert_eq!(session.link(), LinkState::Connecting);
}

#[test]
fn a_fatal_error_stops_the_session() {
    let mut session = live_agent(SessionConfig::default(), 1);
    let error = ErrorFrame { code: ErrorCode::Unauthorized, text: "expired".into(), reconnect: false };
    let actions = session.receive(t(0), ServerFrame::Error(error.clone()));
    assert_eq!(
        actions,
        [Action::Emit(Event::Error(error)), Action::Disconnect, Action::Emit(Event::Link(LinkState::Stopped))]
    );
    assert_eq!(session.next_wakeup(), None);
    assert!(session.tick(t(1_000_000)).is_empty());
    assert!(session.wake(t(1_000_000)).is_empty());
    assert!(session.disconnected(t(1_000_000)).is_empty());
    assert!(session.send(t(0), C, text("later")).1.is_empty());
    assert_eq!(session.pending().count(), 1, "kept for the host to save");
}

#[test]
fn a_fatal_error_during_the_handshake_stops_it_too() {
    let mut session = Session::new(new_visitor(), SessionConfig::default(), 1);
    session.start(t(0));
    session.connected(t(0));
    let error = ErrorFrame { code: ErrorCode::UnsupportedVersion, text: String::new(), reconnect: false };
    let actions = session.receive(t(0), ServerFrame::Error(error));
    assert!(actions.contains(&Action::Disconnect));
    assert_eq!(session.link(), LinkState::Stopped);
}

#[test]
fn a_passing_error_is_only_reported() {
    let mut session = live_agent(SessionConfig::default(), 1);
    let error = ErrorFrame { code: ErrorCode::RateLimited, text: "slow down".into(), reconnect: true };
    assert_eq!(session.receive(t(0), ServerFrame::Error(error.clone())), [Action::Emit(Event::Error(error))]);
    assert_eq!(session.link(), LinkState::Live);
}

#[test]
fn closing_with_a_delay_reconnects_after_it() {
    let mut session = live_agent(SessionConfig::default(), 1);
    let closing = Closing { reason: CloseReason::ShuttingDown, reconnect_after_ms: Some(3_000) };
    let actions = session.receive(t(1_000), ServerFrame::Closing(closing));
    assert_eq!(actions[..2], [Action::Emit(Event::Closing(closing)), Action::Disconnect]);
    let LinkState::Waiting { retry_at, .. } = session.link() else { panic!("not waiting") };
    assert!(retry_at >= t(4_000) && retry_at <= t(4_500), "{retry_at:?}");
}

#[test]
fn closing_for_good_stops() {
    let mut session = live_agent(SessionConfig::default(), 1);
    let closing = Closing { reason: CloseReason::ProtocolViolation, reconnect_after_ms: None };
    let actions = session.receive(t(0), ServerFrame::Closing(closing));
    assert_eq!(
        actions,
        [Action::Emit(Event::Closing(closing)), Action::Disconnect, Action::Emit(Event::Link(LinkState::Stopped))]
    );
}

#[test]
fn stop_disconnects_for_good_and_start_resumes() {
    let mut session = live_agent(SessionConfig::default(), 1);
    session.receive(t(0), ServerFrame::Message(message(C, 1)));
    assert_eq!(session.stop(), [Action::Disconnect, Action::Emit(Event::Link(LinkState::Stopped))]);
    assert!(session.stop().is_empty());

    session.start(t(100));
    let hello = frames(&session.connected(t(100)));
    assert!(matches!(&hello[..], [ClientFrame::Hello(h)] if h.resume == [Cursor { conversation: C, seq: Seq(1) }]));

    // Stopping while waiting has no transport to close.
    session.disconnected(t(200));
    assert_eq!(session.stop(), [Action::Emit(Event::Link(LinkState::Stopped))]);
}

#[test]
fn acks_and_typing_go_out_only_while_live() {
    let mut session = live_agent(SessionConfig::default(), 1);
    assert_eq!(
        frames(&session.ack(C, ReceiptKind::Read, Seq(4))),
        [ClientFrame::Ack(Ack { conversation: C, kind: ReceiptKind::Read, up_to: Seq(4) })]
    );
    assert_eq!(
        frames(&session.typing(C, true, Some("he".into()))),
        [ClientFrame::Typing(Typing { conversation: C, active: true, draft: Some("he".into()) })]
    );
    session.disconnected(t(0));
    assert!(session.ack(C, ReceiptKind::Delivered, Seq(4)).is_empty());
    assert!(session.typing(C, false, None).is_empty());
    session.tick(t(1_000));
    session.connected(t(1_000));
    assert!(frames(&session.receive(t(1_000), agent_welcome())).is_empty(), "not queued for later");
}

#[test]
fn joining_follows_now_or_on_the_next_hello() {
    let mut session = live_agent(SessionConfig::default(), 1);
    assert_eq!(frames(&session.join(t(0), D)), [join(D, 0)]);
    assert!(session.join(t(0), D).is_empty(), "already followed");

    let e = ConversationId(5);
    session.disconnected(t(0));
    assert!(session.join(t(0), e).is_empty());
    session.tick(t(1_000));
    let hello = frames(&session.connected(t(1_000)));
    let [ClientFrame::Hello(hello)] = &hello[..] else { panic!("{hello:?}") };
    let resumed: Vec<_> = hello.resume.iter().map(|c| c.conversation).collect();
    assert_eq!(resumed, [C, D, e]);

    // Followed between the hello and the welcome: joined after the welcome.
    let f = ConversationId(6);
    assert!(session.join(t(1_000), f).is_empty());
    assert_eq!(frames(&session.receive(t(1_000), agent_welcome())), [join(f, 0)]);
}

#[test]
fn auto_join_follows_announced_conversations() {
    let update = ConversationUpdate {
        conversation: D,
        visitor: VisitorId(7),
        status: ConversationStatus::Open,
        last_seq: Seq(2),
        updated_at: Timestamp(0),
        assignee: None,
        waiting_since: None,
    };
    let mut bot = live_agent(SessionConfig { auto_join: true, ..SessionConfig::default() }, 1);
    let actions = bot.receive(t(0), ServerFrame::Conversation(update));
    assert_eq!(actions, [Action::Emit(Event::Conversation(update)), Action::Transmit(join(D, 0))]);
    assert_eq!(bot.receive(t(0), ServerFrame::Conversation(update)).len(), 1, "joined once");

    let mut console = live_agent(SessionConfig::default(), 1);
    assert_eq!(console.receive(t(0), ServerFrame::Conversation(update)), [Action::Emit(Event::Conversation(update))]);
    assert!(!console.is_following(D));
}

#[test]
fn late_frames_from_a_closed_transport_are_ignored() {
    let mut session = live_agent(SessionConfig::default(), 1);
    session.disconnected(t(0));
    assert!(session.receive(t(1), ServerFrame::Message(message(C, 1))).is_empty());
    assert_eq!(session.cursor(C), Seq::ZERO);
    session.tick(t(1_000));
    assert!(session.receive(t(1_000), agent_welcome()).is_empty(), "the new transport is not open yet");
}

#[test]
fn the_same_seed_and_inputs_give_the_same_outputs() {
    let run = |seed| {
        let mut session = Session::new(new_visitor(), SessionConfig::default(), seed);
        let mut all = session.start(t(0));
        all.extend(session.connected(t(10)));
        all.extend(session.receive(t(20), visitor_welcome(C)));
        all.extend(session.send(t(30), C, text("hi")).1);
        all.extend(session.disconnected(t(40)));
        all.extend(session.send(t(50), C, text("again")).1);
        all.extend(session.tick(t(10_000)));
        all.extend(session.disconnected(t(10_001)));
        all.extend(session.wake(t(10_002)));
        all
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}

#[test]
fn a_replay_asked_for_on_a_dead_link_does_not_block_the_next() {
    let mut session = live_agent(SessionConfig::default(), 1);
    session.receive(t(0), ServerFrame::Message(message(C, 1)));
    assert_eq!(frames(&session.receive(t(0), ServerFrame::Message(message(C, 3)))), [join(C, 1)]);
    // The link dies before that replay completes.
    let retry_at = drop_link(&mut session, t(0));
    session.tick(retry_at);
    session.connected(retry_at);
    session.receive(retry_at, agent_welcome());
    let complete = ReplayComplete { conversation: C, last_seq: Seq(1) };
    assert!(frames(&session.receive(retry_at, ServerFrame::ReplayComplete(complete))).is_empty());
    // Only the hello's replay was outstanding on this link; a hole now is new.
    assert_eq!(frames(&session.receive(retry_at, ServerFrame::Message(message(C, 3)))), [join(C, 1)]);
}

#[test]
fn an_oversized_message_is_rejected_at_once_and_never_queued() {
    let mut session = live_agent(SessionConfig::default(), 1);
    let max = DEFAULT_LIMITS.max_body_bytes as usize;
    let (id, actions) = session.send(t(0), C, Body::Text("a".repeat(max + 1)));
    let [Action::Emit(Event::Rejected(rejected))] = &actions[..] else { panic!("{actions:?}") };
    assert_eq!((rejected.client_id, rejected.code), (id, ErrorCode::BodyTooLarge));
    assert_eq!(session.pending().count(), 0);

    let (_, actions) = session.send(t(0), C, Body::Text("a".repeat(max)));
    assert_eq!(frames(&actions).len(), 1, "exactly at the limit is fine");
}

#[test]
fn a_welcome_with_smaller_limits_rejects_what_no_longer_fits() {
    let mut session = Session::new(agent(), SessionConfig::default(), 1);
    let (long, _) = session.send(t(0), C, text("a long message"));
    let (short, _) = session.send(t(0), C, text("short"));
    session.start(t(0));
    session.connected(t(0));
    let ServerFrame::Welcome(mut frame) = agent_welcome() else { unreachable!() };
    frame.limits.max_body_bytes = 8;
    let actions = session.receive(t(0), ServerFrame::Welcome(frame));
    assert!(matches!(&events(&actions)[2], Event::Rejected(r) if r.client_id == long));
    assert_eq!(frames(&actions), [ClientFrame::Send(Send { conversation: C, client_id: short, body: text("short") })]);
    let pending: Vec<_> = session.pending().map(|p| p.client_id).collect();
    assert_eq!(pending, [short]);
}

#[test]
fn a_draft_too_long_to_send_is_left_out() {
    let mut session = live_agent(SessionConfig::default(), 1);
    let draft = "a".repeat(DEFAULT_LIMITS.max_body_bytes as usize + 1);
    assert_eq!(
        frames(&session.typing(C, true, Some(draft))),
        [ClientFrame::Typing(Typing { conversation: C, active: true, draft: None })]
    );
}

// ---- what a visitor's host says about its visitor ----

fn page(url: &str) -> Visit {
    Visit { url: url.to_owned(), title: format!("title of {url}"), referrer: None }
}

fn user(user_id: &str) -> Identify {
    Identify { user_id: user_id.to_owned(), name: Some("Ann".into()), email: None, hash: Some("ab12".into()) }
}

fn attribute(key: &str, value: &str) -> Attribute {
    Attribute { key: key.to_owned(), value: value.to_owned() }
}

/// A visitor session, live since `t(0)` in conversation `C`.
fn live_visitor(seed: u64) -> Session {
    let mut session = Session::new(new_visitor(), SessionConfig::default(), seed);
    session.start(t(0));
    session.connected(t(0));
    session.receive(t(0), visitor_welcome(C));
    assert_eq!(session.link(), LinkState::Live);
    session
}

/// Drops the link and brings it back; returns what the welcome sent.
fn reconnect(session: &mut Session, now: Millis) -> Vec<ClientFrame> {
    let retry_at = drop_link(session, now);
    session.tick(retry_at);
    session.connected(retry_at);
    frames(&session.receive(retry_at, visitor_welcome(C)))
}

#[test]
fn profile_frames_go_out_at_once_while_live() {
    let mut session = live_visitor(1);
    assert_eq!(session.visit(page("/pricing")), [Action::Transmit(ClientFrame::Visit(page("/pricing")))]);
    assert_eq!(session.identify(user("u1")), [Action::Transmit(ClientFrame::Identify(user("u1")))]);
    // Sent as given, even a key twice; the relay applies them in order.
    let set = vec![attribute("plan", "free"), attribute("plan", "pro")];
    assert_eq!(session.set_attributes(set.clone()), [Action::Transmit(ClientFrame::Attributes(Attributes { set }))]);
}

#[test]
fn profile_frames_go_out_only_on_a_live_link() {
    let mut session = Session::new(new_visitor(), SessionConfig::default(), 1);
    let say_everything = |session: &mut Session| {
        let mut actions = session.visit(page("/"));
        actions.extend(session.identify(user("u1")));
        actions.extend(session.set_attributes(vec![attribute("plan", "pro")]));
        actions
    };
    assert!(say_everything(&mut session).is_empty(), "stopped");
    session.start(t(0));
    assert!(say_everything(&mut session).is_empty(), "connecting");
    session.connected(t(0));
    assert!(say_everything(&mut session).is_empty(), "waiting for the welcome");
    session.receive(t(0), visitor_welcome(C));
    session.disconnected(t(0));
    assert!(say_everything(&mut session).is_empty(), "waiting to reconnect");
}

#[test]
fn a_profile_set_before_the_first_welcome_follows_it() {
    let mut session = Session::new(new_visitor(), SessionConfig::default(), 1);
    session.visit(page("/"));
    session.start(t(0));
    session.connected(t(0));
    let actions = session.receive(t(0), visitor_welcome(C));
    assert!(matches!(&events(&actions)[..], [Event::Link(LinkState::Live), Event::Welcome(_)]));
    assert_eq!(frames(&actions), [ClientFrame::Visit(page("/"))]);
}

#[test]
fn the_latest_profile_follows_every_welcome_after_the_resends() {
    let mut session = live_visitor(2);
    session.visit(page("/"));
    session.identify(user("u1"));
    session.set_attributes(vec![attribute("plan", "free"), attribute("seats", "1")]);

    // Offline: a navigation, a login and an upgrade, and a message.
    let retry_at = drop_link(&mut session, t(1_000));
    assert!(session.visit(page("/checkout")).is_empty());
    assert!(session.identify(user("u2")).is_empty());
    assert!(session.set_attributes(vec![attribute("plan", "pro"), attribute("coupon", "x")]).is_empty());
    let (id, _) = session.send(retry_at, C, text("I upgraded"));

    session.tick(retry_at);
    session.connected(retry_at);
    let sent = frames(&session.receive(retry_at, visitor_welcome(C)));
    let [
        ClientFrame::Send(send),
        ClientFrame::Visit(visit),
        ClientFrame::Identify(identify),
        ClientFrame::Attributes(Attributes { set }),
    ] = &sent[..]
    else {
        panic!("expected the resend, then visit, identify and attributes: {sent:?}");
    };
    assert_eq!(send.client_id, id);
    assert_eq!((visit, identify), (&page("/checkout"), &user("u2")));
    let mut merged: Vec<_> = set.iter().map(|a| (a.key.as_str(), a.value.as_str())).collect();
    merged.sort_unstable();
    assert_eq!(merged, [("coupon", "x"), ("plan", "pro"), ("seats", "1")], "one value per key, the latest");

    // And again on the next link, acknowledged message or not.
    session.receive(retry_at, accepted(C, id, 1));
    let again = reconnect(&mut session, retry_at);
    assert_eq!(again[..2], [ClientFrame::Visit(page("/checkout")), ClientFrame::Identify(user("u2"))]);
    assert!(matches!(&again[2..], [ClientFrame::Attributes(a)] if a.set.len() == 3));
}

#[test]
fn a_session_told_nothing_sends_no_profile() {
    let mut session = live_visitor(3);
    assert!(reconnect(&mut session, t(1_000)).is_empty());
    assert!(session.set_attributes(vec![]).is_empty(), "nothing to set");
}

#[test]
fn profile_text_over_the_limit_is_never_sent() {
    let mut session = live_visitor(4);
    let long = "a".repeat(DEFAULT_LIMITS.max_body_bytes as usize + 1);

    // The relay would close the link for good over these.
    assert!(session.visit(Visit { url: long.clone(), title: String::new(), referrer: None }).is_empty());
    assert!(session.identify(Identify { user_id: long.clone(), name: None, email: None, hash: None }).is_empty());
    // An oversized value is left out; the rest still goes.
    assert_eq!(
        frames(&session.set_attributes(vec![attribute("notes", &long), attribute("plan", "pro")])),
        [ClientFrame::Attributes(Attributes { set: vec![attribute("plan", "pro")] })]
    );
    assert!(session.set_attributes(vec![attribute("notes", &long)]).is_empty());
    assert_eq!(
        reconnect(&mut session, t(1_000)),
        [ClientFrame::Attributes(Attributes { set: vec![attribute("plan", "pro")] })],
        "nor resent after a welcome"
    );

    // Exactly at the limit is fine.
    let max = "a".repeat(DEFAULT_LIMITS.max_body_bytes as usize);
    let at_limit = Visit { url: max, title: String::new(), referrer: None };
    assert_eq!(frames(&session.visit(at_limit.clone())), [ClientFrame::Visit(at_limit)]);
}

#[test]
fn a_welcome_with_smaller_limits_holds_back_what_no_longer_fits() {
    let mut session = Session::new(new_visitor(), SessionConfig::default(), 1);
    session.visit(page("/a-rather-long-path"));
    session.identify(user("u1"));
    session.start(t(0));
    session.connected(t(0));
    let ServerFrame::Welcome(mut frame) = visitor_welcome(C) else { unreachable!() };
    frame.limits.max_body_bytes = 8;
    let sent = frames(&session.receive(t(0), ServerFrame::Welcome(frame)));
    assert_eq!(sent, [ClientFrame::Identify(user("u1"))]);
}

#[test]
fn visitor_profiles_and_availability_are_reported() {
    let profile = VisitorProfile {
        visitor: VisitorId(7),
        verified: true,
        user_id: Some("u1".into()),
        name: Some("Ann".into()),
        email: None,
        attributes: vec![attribute("plan", "pro")],
        page: Some(page("/pricing")),
        page_since: Some(Timestamp(1_700_000_000_000)),
    };
    let mut agent = live_agent(SessionConfig::default(), 1);
    assert_eq!(
        agent.receive(t(0), ServerFrame::Visitor(profile.clone())),
        [Action::Emit(Event::Visitor(profile.clone()))]
    );
    assert!(!agent.is_following(D), "a profile follows no conversation");

    let mut visitor = live_visitor(1);
    assert_eq!(visitor.receive(t(0), ServerFrame::Visitor(profile.clone())), [Action::Emit(Event::Visitor(profile))]);
    for agents_online in [0, 3] {
        let availability = Availability::in_hours(agents_online);
        assert_eq!(
            visitor.receive(t(0), ServerFrame::Availability(availability)),
            [Action::Emit(Event::Availability(availability))]
        );
    }
    // Like every frame, a sign of life.
    visitor.receive(t(29_000), ServerFrame::Availability(Availability::in_hours(1)));
    assert!(visitor.tick(t(30_000)).is_empty());
}

#[test]
fn availability_before_the_welcome_is_ignored() {
    let mut session = Session::new(new_visitor(), SessionConfig::default(), 1);
    session.start(t(0));
    session.connected(t(0));
    assert!(session.receive(t(0), ServerFrame::Availability(Availability::in_hours(1))).is_empty());
}
