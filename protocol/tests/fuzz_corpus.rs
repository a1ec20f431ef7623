//! The `decode_frame` fuzz target's seeds, replayed on the stable toolchain
//! through the target's own checks (`fuzz/src/decode.rs`, included below),
//! so CI runs them without cargo-fuzz or nightly.
//!
//! The seeds are one encoded frame of every client and server variant plus
//! the edges of the decoder: limits, truncations, trailing bytes, bad UTF-8,
//! endless varints, another version's hello. They are committed in
//! `fuzz/seeds/decode_frame`; after a wire change, rewrite them with
//! `cargo test -p kefu-protocol --test fuzz_corpus -- --ignored`.

#[path = "../../fuzz/src/decode.rs"]
#[allow(unreachable_pub)]
mod decode;

use std::fs;
use std::path::PathBuf;

use kefu_protocol::frame::{
    Accepted, Ack, AgentRef, AgentStatus, Attribute, Attributes, Author, Availability, Body, Change, CloseReason,
    Closing, ConversationEvent, ConversationStatus, ConversationUpdate, Credentials, Cursor, Deferred, ErrorCode,
    ErrorFrame, Heartbeat, Hello, Identify, Identity, Join, Message, Ping, Pong, Presence, Receipt, ReceiptKind,
    Rejected, ReplayComplete, ReturningVisitor, Roster, Send, TeamMember, Typing, TypingNotice, Update, Visit,
    VisitorProfile, Welcome,
};
use kefu_protocol::ids::{
    AgentId, AgentToken, ClientMessageId, ConversationId, MessageId, Seq, SessionId, SiteId, SiteKey, Timestamp,
    VisitorId, VisitorToken,
};
use kefu_protocol::{ClientFrame, DEFAULT_LIMITS, PROTOCOL_VERSION, ServerFrame, encode};

/// Committed corpora stay small: the fuzzer grows its own in `fuzz/corpus`.
const MAX_CORPUS_BYTES: u64 = 200 * 1024;

fn seed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/decode_frame")
}

#[test]
fn every_committed_seed_passes_the_decode_checks() {
    let mut entries: Vec<_> = fs::read_dir(seed_dir())
        .expect("fuzz/seeds/decode_frame exists")
        .map(|entry| entry.expect("a readable entry").path())
        .collect();
    entries.sort();
    let mut total = 0;
    for path in &entries {
        let bytes = fs::read(path).expect("a readable seed");
        total += bytes.len() as u64;
        decode::check_bytes(&bytes);
    }
    assert!(entries.len() >= seeds().len(), "{} seeds committed, {} defined", entries.len(), seeds().len());
    assert!(total <= MAX_CORPUS_BYTES, "the committed corpus is {total} bytes");
}

#[test]
fn the_committed_seeds_are_the_current_encodings() {
    for (name, bytes) in seeds() {
        let path = seed_dir().join(&name);
        let committed = fs::read(&path).unwrap_or_default();
        assert!(
            committed == bytes,
            "{name} is missing or stale; rewrite the seeds with \
             `cargo test -p kefu-protocol --test fuzz_corpus -- --ignored`"
        );
    }
}

#[test]
fn the_seeds_decode_as_intended() {
    // Valid frames stay valid and edge cases stay edge cases; otherwise the
    // fuzzer would start from less than it seems.
    for (name, bytes) in seeds() {
        let client = kefu_protocol::decode::<ClientFrame>(&bytes, &DEFAULT_LIMITS);
        let server = kefu_protocol::decode::<ServerFrame>(&bytes, &DEFAULT_LIMITS);
        if name.starts_with("client-") {
            assert!(client.is_ok(), "{name}: {client:?}");
        } else if name.starts_with("server-") {
            assert!(server.is_ok(), "{name}: {server:?}");
        } else {
            assert!(client.is_err() && server.is_err(), "{name} decodes");
        }
    }
}

#[test]
#[ignore = "writes fuzz/seeds/decode_frame; run after a wire change"]
fn write_the_seeds() {
    let dir = seed_dir();
    fs::create_dir_all(&dir).expect("the seed folder");
    for (name, bytes) in seeds() {
        fs::write(dir.join(name), bytes).expect("a written seed");
    }
}

/// Every seed, by file name: `client-*` and `server-*` decode as that
/// side's frame; `edge-*` decode as neither.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, frame) in client_frames() {
        seeds.push((format!("client-{name}"), encode(&frame)));
    }
    for (name, frame) in server_frames() {
        seeds.push((format!("server-{name}"), encode(&frame)));
    }
    let send = encode(&ClientFrame::Send(Send { conversation: C, client_id: CID, body: text("hello") }));
    let welcome = encode(&server_frames().swap_remove(0).1);
    let body = |len: usize| ClientFrame::Send(Send { conversation: C, client_id: CID, body: text(&"a".repeat(len)) });
    let max_body = DEFAULT_LIMITS.max_body_bytes as usize;
    let edges: [(&str, Vec<u8>); 12] = [
        ("empty", Vec::new()),
        ("send-cut-short", send[..send.len() - 1].to_vec()),
        ("welcome-cut-short", welcome[..welcome.len() / 2].to_vec()),
        ("send-trailing-byte", [&send[..], &[0]].concat()),
        ("send-body-over-limit", encode(&body(max_body + 1))),
        ("send-invalid-utf8", [&send[..send.len() - 2], &[0xC3, 0x28]].concat()),
        ("endless-varint", vec![0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
        ("unknown-variant", vec![0x7F, 0x00]),
        ("hello-version-99", [&[0x00, 99][..], b"garbage"].concat()),
        ("hello-empty-site-key", vec![0x00, 0x01, 0x00, 0x00, 0x00, 0x00]),
        ("bool-out-of-range", vec![0x04, 0x03, 0x02, 0x00]),
        ("http-request", b"GET /ws HTTP/1.1\r\n\r\n".to_vec()),
    ];
    seeds.extend(edges.into_iter().map(|(name, bytes)| (format!("edge-{name}"), bytes)));
    seeds.push(("client-send-body-at-limit".into(), encode(&body(max_body))));
    seeds
}

const C: ConversationId = ConversationId(42);
const CID: ClientMessageId = ClientMessageId(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
const TIME: Timestamp = Timestamp(1_700_000_000_000);

fn text(s: &str) -> Body {
    Body::Text(s.into())
}

fn agent(id: u64, name: &str) -> AgentRef {
    AgentRef { id: AgentId(id), name: name.into() }
}

fn client_frames() -> Vec<(&'static str, ClientFrame)> {
    let site = SiteKey::new("demo").expect("a valid key");
    let returning = ReturningVisitor { visitor: VisitorId(7), token: VisitorToken::new("tok_en-1").expect("valid") };
    vec![
        (
            "hello-visitor",
            ClientFrame::Hello(Hello {
                version: PROTOCOL_VERSION,
                credentials: Credentials::Visitor { site: site.clone(), returning: Some(returning) },
                resume: vec![Cursor { conversation: C, seq: Seq(300) }, Cursor { conversation: C, seq: Seq(0) }],
            }),
        ),
        (
            "hello-new-visitor",
            ClientFrame::Hello(Hello {
                version: PROTOCOL_VERSION,
                credentials: Credentials::Visitor { site, returning: None },
                resume: Vec::new(),
            }),
        ),
        (
            "hello-agent",
            ClientFrame::Hello(Hello {
                version: PROTOCOL_VERSION,
                credentials: Credentials::Agent { token: AgentToken::new("agent-token").expect("valid") },
                resume: Vec::new(),
            }),
        ),
        (
            "hello-cookie",
            ClientFrame::Hello(Hello {
                version: PROTOCOL_VERSION,
                credentials: Credentials::AgentCookie,
                resume: Vec::new(),
            }),
        ),
        ("send-text", ClientFrame::Send(Send { conversation: C, client_id: CID, body: text("héllo 👋") })),
        ("send-note", ClientFrame::Send(Send { conversation: C, client_id: CID, body: Body::Note("psst".into()) })),
        (
            "send-files",
            ClientFrame::Send(Send {
                conversation: C,
                client_id: CID,
                body: Body::Files(kefu_protocol::frame::Files {
                    caption: "the error".into(),
                    files: vec![kefu_protocol::frame::FileRef::by_id(kefu_protocol::ids::AttachmentId(0xfeed))],
                }),
            }),
        ),
        (
            "send-event",
            ClientFrame::Send(Send {
                conversation: C,
                client_id: CID,
                body: Body::Event(ConversationEvent::Transferred { from: agent(1, "Ann"), to: agent(2, "Bo") }),
            }),
        ),
        ("join", ClientFrame::Join(Join { conversation: C, after: Seq(129) })),
        ("ack", ClientFrame::Ack(Ack { conversation: C, kind: ReceiptKind::Read, up_to: Seq(u64::MAX) })),
        ("typing", ClientFrame::Typing(Typing { conversation: C, active: true, draft: Some("I was wond".into()) })),
        ("ping", ClientFrame::Ping(Ping { nonce: 1 << 40 })),
        ("pong", ClientFrame::Pong(Pong { nonce: 0 })),
        (
            "visit",
            ClientFrame::Visit(Visit {
                url: "https://example.com/pricing?x=1".into(),
                title: "Pricing".into(),
                referrer: Some("https://search.example/".into()),
            }),
        ),
        (
            "identify",
            ClientFrame::Identify(Identify {
                user_id: "user-1".into(),
                name: Some("Ada".into()),
                email: None,
                hash: Some("ab".repeat(32)),
            }),
        ),
        (
            "attributes",
            ClientFrame::Attributes(Attributes {
                set: vec![
                    Attribute { key: "plan".into(), value: "pro".into() },
                    Attribute { key: "".into(), value: "".into() },
                ],
            }),
        ),
        ("update-take", ClientFrame::Update(Update { conversation: C, change: Change::Take })),
        (
            "update-transfer",
            ClientFrame::Update(Update {
                conversation: C,
                change: Change::Transfer { to: AgentId(3), note: "billing question".into() },
            }),
        ),
        ("update-close", ClientFrame::Update(Update { conversation: C, change: Change::Close })),
        ("status", ClientFrame::Status(AgentStatus::Away)),
    ]
}

fn server_frames() -> Vec<(&'static str, ServerFrame)> {
    let message = |seq: u64, prev: u64, body: Body| Message {
        conversation: C,
        seq: Seq(seq),
        prev: Seq(prev),
        id: MessageId(9_000 + seq),
        client_id: Some(CID),
        author: Author::Visitor(VisitorId(7)),
        body,
        sent_at: TIME,
    };
    vec![
        (
            "welcome-visitor",
            ServerFrame::Welcome(Welcome {
                session: SessionId(5),
                identity: Identity::Visitor {
                    visitor: VisitorId(7),
                    token: VisitorToken::new("tok_en-1").expect("valid"),
                    site: SiteId(1),
                    conversation: C,
                },
                heartbeat: Heartbeat { interval_ms: 25_000, grace_ms: 10_000 },
                server_time: TIME,
                limits: DEFAULT_LIMITS,
            }),
        ),
        (
            "welcome-agent",
            ServerFrame::Welcome(Welcome {
                session: SessionId(6),
                identity: Identity::Agent { agent: AgentId(1), site: SiteId(1), name: "Ann".into() },
                heartbeat: Heartbeat { interval_ms: 0, grace_ms: 0 },
                server_time: TIME,
                limits: DEFAULT_LIMITS,
            }),
        ),
        (
            "accepted",
            ServerFrame::Accepted(Accepted {
                conversation: C,
                client_id: CID,
                id: MessageId(1),
                seq: Seq(3),
                sent_at: TIME,
            }),
        ),
        (
            "rejected",
            ServerFrame::Rejected(Rejected {
                conversation: C,
                client_id: CID,
                code: ErrorCode::BodyTooLarge,
                text: "too long".into(),
            }),
        ),
        ("deferred", ServerFrame::Deferred(Deferred { conversation: C, client_id: CID, retry_after_ms: 250 })),
        ("message-text", ServerFrame::Message(message(5, 2, text("hi")))),
        (
            "message-event",
            ServerFrame::Message(Message {
                client_id: None,
                author: Author::System,
                ..message(6, 5, Body::Event(ConversationEvent::Assigned { to: agent(1, "Ann"), by: None }))
            }),
        ),
        ("replay-complete", ServerFrame::ReplayComplete(ReplayComplete { conversation: C, last_seq: Seq(6) })),
        (
            "receipt",
            ServerFrame::Receipt(Receipt {
                conversation: C,
                by: Author::Agent(AgentId(1)),
                kind: ReceiptKind::Delivered,
                up_to: Seq(6),
            }),
        ),
        (
            "typing",
            ServerFrame::Typing(TypingNotice {
                conversation: C,
                by: Author::Visitor(VisitorId(7)),
                active: false,
                draft: None,
            }),
        ),
        ("ping", ServerFrame::Ping(Ping { nonce: 77 })),
        ("pong", ServerFrame::Pong(Pong { nonce: u64::MAX })),
        (
            "error",
            ServerFrame::Error(ErrorFrame {
                code: ErrorCode::HelloExpected,
                text: "the first frame must be a hello".into(),
                reconnect: false,
            }),
        ),
        (
            "closing",
            ServerFrame::Closing(Closing { reason: CloseReason::ShuttingDown, reconnect_after_ms: Some(1_000) }),
        ),
        (
            "conversation",
            ServerFrame::Conversation(ConversationUpdate {
                conversation: C,
                visitor: VisitorId(7),
                status: ConversationStatus::Open,
                last_seq: Seq(6),
                updated_at: TIME,
                assignee: Some(AgentId(1)),
                waiting_since: Some(TIME),
            }),
        ),
        (
            "visitor",
            ServerFrame::Visitor(VisitorProfile {
                visitor: VisitorId(7),
                verified: true,
                user_id: Some("user-1".into()),
                name: Some("Ada".into()),
                email: Some("ada@example.com".into()),
                attributes: vec![Attribute { key: "plan".into(), value: "pro".into() }],
                page: Some(Visit { url: "/".into(), title: "Home".into(), referrer: None }),
                page_since: Some(TIME),
            }),
        ),
        ("availability", ServerFrame::Availability(Availability::in_hours(2))),
        (
            "availability-after-hours",
            ServerFrame::Availability(Availability { agents_online: 0, out_of_hours: true, opens_at: Some(TIME) }),
        ),
        (
            "roster",
            ServerFrame::Roster(Roster {
                agents: vec![
                    TeamMember {
                        agent: AgentId(1),
                        name: "Ann".into(),
                        presence: Presence::Online,
                        open: 2,
                        capacity: 5,
                    },
                    TeamMember {
                        agent: AgentId(2),
                        name: "Bo".into(),
                        presence: Presence::Offline,
                        open: 0,
                        capacity: 0,
                    },
                ],
            }),
        ),
    ]
}
