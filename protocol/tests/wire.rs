//! The wire format, pinned byte by byte.
//!
//! Widgets already loaded in browsers, native clients and relay nodes of
//! another release all read these bytes, so a change to them must be
//! deliberate: every frame and every enum variant inside one has its exact
//! postcard encoding written out here, and any changed byte fails a test.
//!
//! Reading the bytes: postcard writes an enum as its variant index, a
//! struct as its fields in order, a newtype as what it wraps, `bool` as
//! 0 or 1, `Option` as 0 (`None`) or 1 and the value, a string or `Vec` as
//! its length and then its contents, and every integer wider than a byte as
//! a varint (LEB128: seven bits per byte, low bits first, the high bit set
//! on every byte but the last).

use kefu_protocol::codec::peek_hello_version;
use kefu_protocol::frame::{
    Accepted, Ack, AgentRef, AgentStatus, Attribute, Attributes, Author, Availability, Body, Change, CloseReason,
    Closing, ConversationEvent, ConversationStatus, ConversationUpdate, Credentials, Cursor, Deferred, ErrorCode,
    ErrorFrame, FileRef, Files, Heartbeat, Hello, Identify, Identity, Join, Limits, MailTranscript, Message, Ping,
    Pong, Presence, Rate, Receipt, ReceiptKind, Rejected, ReplayComplete, ReturningVisitor, Roster, Send, TeamMember,
    TranscriptMailed, Typing, TypingNotice, Update, Visit, VisitorProfile, Welcome,
};
use kefu_protocol::ids::{
    AgentId, AgentToken, AttachmentId, ClientMessageId, ConversationId, MessageId, Seq, SessionId, SiteId, SiteKey,
    Timestamp, VisitorId, VisitorToken,
};
use kefu_protocol::{ClientFrame, DEFAULT_LIMITS, DecodeError, PROTOCOL_VERSION, ServerFrame};
use kefu_protocol::{decode, encode};
use proptest::prelude::*;

/// 300 as a varint: 0b10_0101100 -> 0x2C with "more", then 0x02.
const V300: &[u8] = &[0xAC, 0x02];
/// 1_000_000 as a varint (the client message id used below).
const V1M: &[u8] = &[0xC0, 0x84, 0x3D];
/// `Timestamp(1_700_000_000_000)`, November 2023, as a varint.
const TS: &[u8] = &[0x80, 0xD0, 0x95, 0xFF, 0xBC, 0x31];
/// `DEFAULT_LIMITS`: 65_536 = 4 << 14, then 16_384 = 1 << 14.
const LIMITS: &[u8] = &[0x80, 0x80, 0x04, 0x80, 0x80, 0x01];

const CID: ClientMessageId = ClientMessageId(1_000_000);
const TIME: Timestamp = Timestamp(1_700_000_000_000);

fn site(key: &str) -> SiteKey {
    SiteKey::new(key).expect("a valid site key")
}

fn text(s: &str) -> Body {
    Body::Text(s.to_owned())
}

fn attribute(key: &str, value: &str) -> Attribute {
    Attribute { key: key.to_owned(), value: value.to_owned() }
}

/// The variant index each `ClientFrame` must have. Adding a variant breaks
/// this match, which is the reminder to pin its bytes below.
fn client_index(frame: &ClientFrame) -> u8 {
    match frame {
        ClientFrame::Hello(_) => 0,
        ClientFrame::Send(_) => 1,
        ClientFrame::Join(_) => 2,
        ClientFrame::Ack(_) => 3,
        ClientFrame::Typing(_) => 4,
        ClientFrame::Ping(_) => 5,
        ClientFrame::Pong(_) => 6,
        ClientFrame::Visit(_) => 7,
        ClientFrame::Identify(_) => 8,
        ClientFrame::Attributes(_) => 9,
        ClientFrame::Update(_) => 10,
        ClientFrame::Status(_) => 11,
        ClientFrame::Rate(_) => 12,
        ClientFrame::MailTranscript(_) => 13,
    }
}
const CLIENT_VARIANTS: u8 = 14;

fn server_index(frame: &ServerFrame) -> u8 {
    match frame {
        ServerFrame::Welcome(_) => 0,
        ServerFrame::Accepted(_) => 1,
        ServerFrame::Rejected(_) => 2,
        ServerFrame::Message(_) => 3,
        ServerFrame::ReplayComplete(_) => 4,
        ServerFrame::Receipt(_) => 5,
        ServerFrame::Typing(_) => 6,
        ServerFrame::Ping(_) => 7,
        ServerFrame::Pong(_) => 8,
        ServerFrame::Error(_) => 9,
        ServerFrame::Closing(_) => 10,
        ServerFrame::Conversation(_) => 11,
        ServerFrame::Visitor(_) => 12,
        ServerFrame::Availability(_) => 13,
        ServerFrame::Roster(_) => 14,
        ServerFrame::Deferred(_) => 15,
        ServerFrame::TranscriptMailed(_) => 16,
    }
}
const SERVER_VARIANTS: u8 = 17;

fn error_code_index(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::Malformed => 0,
        ErrorCode::FrameTooLarge => 1,
        ErrorCode::BodyTooLarge => 2,
        ErrorCode::UnsupportedVersion => 3,
        ErrorCode::HelloExpected => 4,
        ErrorCode::Unauthorized => 5,
        ErrorCode::Forbidden => 6,
        ErrorCode::RateLimited => 7,
        ErrorCode::Internal => 8,
        ErrorCode::Conflict => 9,
    }
}
const ERROR_CODES: [ErrorCode; 10] = [
    ErrorCode::Malformed,
    ErrorCode::FrameTooLarge,
    ErrorCode::BodyTooLarge,
    ErrorCode::UnsupportedVersion,
    ErrorCode::HelloExpected,
    ErrorCode::Unauthorized,
    ErrorCode::Forbidden,
    ErrorCode::RateLimited,
    ErrorCode::Internal,
    ErrorCode::Conflict,
];

fn close_reason_index(reason: CloseReason) -> u8 {
    match reason {
        CloseReason::ShuttingDown => 0,
        CloseReason::TooSlow => 1,
        CloseReason::HeartbeatTimeout => 2,
        CloseReason::ProtocolViolation => 3,
        CloseReason::SignedOut => 4,
        CloseReason::AccessChanged => 5,
    }
}
const CLOSE_REASONS: [CloseReason; 6] = [
    CloseReason::ShuttingDown,
    CloseReason::TooSlow,
    CloseReason::HeartbeatTimeout,
    CloseReason::ProtocolViolation,
    CloseReason::SignedOut,
    CloseReason::AccessChanged,
];

/// Every client frame variant, and every variant of the enums inside them,
/// with the bytes it must encode to.
fn client_fixtures() -> Vec<(&'static str, ClientFrame, Vec<u8>)> {
    vec![
        (
            "hello from a new visitor",
            ClientFrame::Hello(Hello {
                version: 1,
                credentials: Credentials::Visitor { site: site("demo"), returning: None },
                resume: vec![],
            }),
            [
                &[0x00, 0x01][..], // Hello, version 1
                &[0x00, 0x04],     // Credentials::Visitor, site key of 4 bytes
                b"demo",
                &[0x00, 0x00], // returning: None, resume: 0 cursors
            ]
            .concat(),
        ),
        (
            "hello from a returning visitor resuming two conversations",
            ClientFrame::Hello(Hello {
                version: 1,
                credentials: Credentials::Visitor {
                    site: site("demo"),
                    returning: Some(ReturningVisitor {
                        visitor: VisitorId(7),
                        token: VisitorToken::new("tok").expect("a valid token"),
                    }),
                },
                resume: vec![
                    Cursor { conversation: ConversationId(3), seq: Seq(300) },
                    Cursor { conversation: ConversationId(4), seq: Seq::ZERO },
                ],
            }),
            [
                &[0x00, 0x01, 0x00, 0x04][..],
                b"demo",
                &[0x01, 0x07, 0x03], // Some, visitor 7, token of 3 bytes
                b"tok",
                &[0x02, 0x03], // 2 cursors; conversation 3 at seq 300
                V300,
                &[0x04, 0x00], // conversation 4 at seq 0
            ]
            .concat(),
        ),
        (
            "hello from an agent",
            ClientFrame::Hello(Hello {
                version: 1,
                credentials: Credentials::Agent { token: AgentToken::new("secret").expect("a valid token") },
                resume: vec![],
            }),
            [&[0x00, 0x01, 0x01, 0x06][..], b"secret", &[0x00]].concat(),
        ),
        (
            "hello from the console",
            ClientFrame::Hello(Hello { version: 1, credentials: Credentials::AgentCookie, resume: vec![] }),
            vec![0x00, 0x01, 0x02, 0x00],
        ),
        (
            "send",
            ClientFrame::Send(Send { conversation: ConversationId(3), client_id: CID, body: text("hi") }),
            [&[0x01, 0x03][..], V1M, &[0x00, 0x02], b"hi"].concat(), // Body::Text
        ),
        (
            "join",
            ClientFrame::Join(Join { conversation: ConversationId(3), after: Seq(300) }),
            [&[0x02, 0x03][..], V300].concat(),
        ),
        (
            "ack delivered",
            ClientFrame::Ack(Ack { conversation: ConversationId(3), kind: ReceiptKind::Delivered, up_to: Seq(5) }),
            vec![0x03, 0x03, 0x00, 0x05],
        ),
        (
            "ack read",
            ClientFrame::Ack(Ack { conversation: ConversationId(3), kind: ReceiptKind::Read, up_to: Seq(300) }),
            [&[0x03, 0x03, 0x01][..], V300].concat(),
        ),
        (
            "typing with a draft",
            ClientFrame::Typing(Typing { conversation: ConversationId(3), active: true, draft: Some("he".into()) }),
            [&[0x04, 0x03, 0x01, 0x01, 0x02][..], b"he"].concat(),
        ),
        (
            "stopped typing",
            ClientFrame::Typing(Typing { conversation: ConversationId(3), active: false, draft: None }),
            vec![0x04, 0x03, 0x00, 0x00],
        ),
        (
            "ping with the largest nonce",
            ClientFrame::Ping(Ping { nonce: u64::MAX }),
            // 64 bits: nine bytes of seven ones, then the last bit.
            [&[0x05][..], &[0xFF; 9], &[0x01]].concat(),
        ),
        ("pong", ClientFrame::Pong(Pong { nonce: 42 }), vec![0x06, 0x2A]),
        (
            "visit from a link",
            ClientFrame::Visit(Visit { url: "/a".into(), title: "A".into(), referrer: Some("b".into()) }),
            [
                &[0x07, 0x02][..], // Visit, url of 2 bytes
                b"/a",
                &[0x01], // title of 1
                b"A",
                &[0x01, 0x01], // referrer: Some, of 1
                b"b",
            ]
            .concat(),
        ),
        (
            "visit typed in",
            ClientFrame::Visit(Visit { url: "/".into(), title: String::new(), referrer: None }),
            [&[0x07, 0x01][..], b"/", &[0x00, 0x00]].concat(), // empty title, referrer: None
        ),
        (
            "identify with a name and a hash",
            ClientFrame::Identify(Identify {
                user_id: "u1".into(),
                name: Some("Ann".into()),
                email: None,
                hash: Some("ab".into()),
            }),
            [
                &[0x08, 0x02][..], // Identify, user id of 2
                b"u1",
                &[0x01, 0x03], // name: Some, of 3
                b"Ann",
                &[0x00, 0x01, 0x02], // email: None, hash: Some, of 2
                b"ab",
            ]
            .concat(),
        ),
        (
            "identify with an email only",
            ClientFrame::Identify(Identify { user_id: "u".into(), name: None, email: Some("a@b".into()), hash: None }),
            [&[0x08, 0x01][..], b"u", &[0x00, 0x01, 0x03], b"a@b", &[0x00]].concat(),
        ),
        (
            "attributes",
            ClientFrame::Attributes(Attributes { set: vec![attribute("plan", "pro"), attribute("n", "")] }),
            [
                &[0x09, 0x02, 0x04][..], // Attributes, 2 of them, key of 4
                b"plan",
                &[0x03], // value of 3
                b"pro",
                &[0x01], // key of 1
                b"n",
                &[0x00], // empty value
            ]
            .concat(),
        ),
        ("no attributes", ClientFrame::Attributes(Attributes { set: vec![] }), vec![0x09, 0x00]),
        (
            "a private note",
            ClientFrame::Send(Send { conversation: ConversationId(3), client_id: CID, body: Body::Note("n".into()) }),
            [&[0x01, 0x03][..], V1M, &[0x01, 0x01], b"n"].concat(), // Body::Note of 1
        ),
        (
            "files with a caption, named by id only",
            ClientFrame::Send(Send {
                conversation: ConversationId(3),
                client_id: CID,
                body: Body::Files(Files { caption: "c".into(), files: vec![FileRef::by_id(AttachmentId(1))] }),
            }),
            // Body::Files, caption of 1, one file: id 1 as a u128 varint,
            // empty name and type, size 0, no image size.
            [&[0x01, 0x03][..], V1M, &[0x03, 0x01], b"c", &[0x01, 0x01, 0x00, 0x00, 0x00, 0x00]].concat(),
        ),
        (
            "take",
            ClientFrame::Update(Update { conversation: ConversationId(3), change: Change::Take }),
            vec![0x0A, 0x03, 0x00],
        ),
        (
            "transfer",
            ClientFrame::Update(Update {
                conversation: ConversationId(3),
                change: Change::Transfer { to: AgentId(5), note: "vip".into() },
            }),
            [&[0x0A, 0x03, 0x01, 0x05, 0x03][..], b"vip"].concat(),
        ),
        (
            "close",
            ClientFrame::Update(Update { conversation: ConversationId(3), change: Change::Close }),
            vec![0x0A, 0x03, 0x02],
        ),
        (
            "reopen",
            ClientFrame::Update(Update { conversation: ConversationId(3), change: Change::Reopen }),
            vec![0x0A, 0x03, 0x03],
        ),
        ("online", ClientFrame::Status(AgentStatus::Online), vec![0x0B, 0x00]),
        ("away", ClientFrame::Status(AgentStatus::Away), vec![0x0B, 0x01]),
        (
            "rate",
            ClientFrame::Rate(Rate { conversation: ConversationId(3), score: 4, comment: "ok".into() }),
            [&[0x0C, 0x03, 0x04, 0x02][..], b"ok"].concat(),
        ),
        (
            "mail transcript",
            ClientFrame::MailTranscript(MailTranscript { conversation: ConversationId(3) }),
            vec![0x0D, 0x03],
        ),
    ]
}

fn server_fixtures() -> Vec<(&'static str, ServerFrame, Vec<u8>)> {
    let message = Message {
        conversation: ConversationId(3),
        seq: Seq(1),
        prev: Seq(0),
        id: MessageId(77),
        client_id: Some(CID),
        author: Author::Visitor(VisitorId(7)),
        body: text("hi"),
        sent_at: TIME,
    };
    vec![
        (
            "welcome to a visitor",
            ServerFrame::Welcome(Welcome {
                session: SessionId(9),
                identity: Identity::Visitor {
                    visitor: VisitorId(7),
                    token: VisitorToken::new("tok").expect("a valid token"),
                    site: SiteId(2),
                    conversation: ConversationId(3),
                },
                heartbeat: Heartbeat { interval_ms: 25_000, grace_ms: 5_000 },
                server_time: TIME,
                limits: DEFAULT_LIMITS,
            }),
            [
                &[0x00, 0x09][..],   // Welcome, session 9
                &[0x00, 0x07, 0x03], // Identity::Visitor, visitor 7, token of 3
                b"tok",
                &[0x02, 0x03],                   // site 2, conversation 3
                &[0xA8, 0xC3, 0x01, 0x88, 0x27], // 25_000 ms, 5_000 ms
                TS,
                LIMITS,
            ]
            .concat(),
        ),
        (
            "welcome to an agent",
            ServerFrame::Welcome(Welcome {
                session: SessionId(300),
                identity: Identity::Agent { agent: AgentId(5), site: SiteId(2), name: "Ann".into() },
                heartbeat: Heartbeat { interval_ms: 1, grace_ms: 0 },
                server_time: Timestamp(0),
                limits: Limits { max_frame_bytes: 1, max_body_bytes: 0 },
            }),
            [&[0x00][..], V300, &[0x01, 0x05, 0x02, 0x03], b"Ann", &[0x01, 0x00, 0x00, 0x01, 0x00]].concat(),
        ),
        (
            "accepted",
            ServerFrame::Accepted(Accepted {
                conversation: ConversationId(3),
                client_id: CID,
                id: MessageId(77),
                seq: Seq(300),
                sent_at: TIME,
            }),
            [&[0x01, 0x03][..], V1M, &[0x4D], V300, TS].concat(),
        ),
        (
            "rejected",
            ServerFrame::Rejected(Rejected {
                conversation: ConversationId(3),
                client_id: ClientMessageId(1),
                code: ErrorCode::Forbidden,
                text: "no".into(),
            }),
            [&[0x02, 0x03, 0x01, 0x06, 0x02][..], b"no"].concat(),
        ),
        (
            "message from a visitor",
            ServerFrame::Message(message.clone()),
            [
                &[0x03, 0x03, 0x01, 0x00, 0x4D, 0x01][..], // conversation 3, seq 1, prev 0, id 77, Some(
                V1M,                                       // client id)
                &[0x00, 0x07, 0x00, 0x02],                 // Author::Visitor(7), Body::Text of 2
                b"hi",
                TS,
            ]
            .concat(),
        ),
        (
            "message from an agent",
            ServerFrame::Message(Message { author: Author::Agent(AgentId(5)), ..message.clone() }),
            [&[0x03, 0x03, 0x01, 0x00, 0x4D, 0x01][..], V1M, &[0x01, 0x05, 0x00, 0x02], b"hi", TS].concat(),
        ),
        (
            "message from the relay",
            ServerFrame::Message(Message { client_id: None, author: Author::System, ..message.clone() }),
            [&[0x03, 0x03, 0x01, 0x00, 0x4D, 0x00, 0x02, 0x00, 0x02][..], b"hi", TS].concat(),
        ),
        (
            "a note after a hidden seq",
            ServerFrame::Message(Message {
                seq: Seq(3),
                prev: Seq(1),
                author: Author::Agent(AgentId(5)),
                body: Body::Note("n".into()),
                ..message.clone()
            }),
            [&[0x03, 0x03, 0x03, 0x01, 0x4D, 0x01][..], V1M, &[0x01, 0x05, 0x01, 0x01], b"n", TS].concat(),
        ),
        (
            "a system line: assigned by the relay",
            ServerFrame::Message(Message {
                client_id: None,
                author: Author::System,
                body: Body::Event(ConversationEvent::Assigned {
                    to: AgentRef { id: AgentId(5), name: "Ann".into() },
                    by: None,
                }),
                ..message.clone()
            }),
            // Body::Event, Assigned, agent 5 named Ann, by: None
            [&[0x03, 0x03, 0x01, 0x00, 0x4D, 0x00, 0x02, 0x02, 0x00, 0x05, 0x03][..], b"Ann", &[0x00], TS].concat(),
        ),
        (
            "a system line: transferred",
            ServerFrame::Message(Message {
                client_id: None,
                author: Author::System,
                body: Body::Event(ConversationEvent::Transferred {
                    from: AgentRef { id: AgentId(5), name: "A".into() },
                    to: AgentRef { id: AgentId(6), name: "B".into() },
                }),
                ..message.clone()
            }),
            [&[0x03, 0x03, 0x01, 0x00, 0x4D, 0x00, 0x02, 0x02, 0x01, 0x05, 0x01][..], b"A", &[0x06, 0x01], b"B", TS]
                .concat(),
        ),
        (
            "a system line: closed",
            ServerFrame::Message(Message {
                client_id: None,
                author: Author::System,
                body: Body::Event(ConversationEvent::Closed { by: AgentRef { id: AgentId(5), name: "A".into() } }),
                ..message.clone()
            }),
            [&[0x03, 0x03, 0x01, 0x00, 0x4D, 0x00, 0x02, 0x02, 0x02, 0x05, 0x01][..], b"A", TS].concat(),
        ),
        (
            "a system line: reopened by the visitor",
            ServerFrame::Message(Message {
                client_id: None,
                author: Author::System,
                body: Body::Event(ConversationEvent::Reopened { by: None }),
                ..message.clone()
            }),
            [&[0x03, 0x03, 0x01, 0x00, 0x4D, 0x00, 0x02, 0x02, 0x03, 0x00][..], TS].concat(),
        ),
        (
            "a system line: rated by the visitor",
            ServerFrame::Message(Message {
                client_id: None,
                author: Author::System,
                body: Body::Event(ConversationEvent::Rated { score: 5, comment: "ok".into() }),
                ..message
            }),
            [&[0x03, 0x03, 0x01, 0x00, 0x4D, 0x00, 0x02, 0x02, 0x04, 0x05, 0x02][..], b"ok", TS].concat(),
        ),
        (
            "replay complete",
            ServerFrame::ReplayComplete(ReplayComplete { conversation: ConversationId(3), last_seq: Seq(300) }),
            [&[0x04, 0x03][..], V300].concat(),
        ),
        (
            "receipt",
            ServerFrame::Receipt(Receipt {
                conversation: ConversationId(3),
                by: Author::Agent(AgentId(5)),
                kind: ReceiptKind::Delivered,
                up_to: Seq(4),
            }),
            vec![0x05, 0x03, 0x01, 0x05, 0x00, 0x04],
        ),
        (
            "typing notice",
            ServerFrame::Typing(TypingNotice {
                conversation: ConversationId(3),
                by: Author::Visitor(VisitorId(7)),
                active: true,
                draft: Some("he".into()),
            }),
            [&[0x06, 0x03, 0x00, 0x07, 0x01, 0x01, 0x02][..], b"he"].concat(),
        ),
        ("ping", ServerFrame::Ping(Ping { nonce: 1 }), vec![0x07, 0x01]),
        ("pong", ServerFrame::Pong(Pong { nonce: 300 }), [&[0x08][..], V300].concat()),
        (
            "error",
            ServerFrame::Error(ErrorFrame { code: ErrorCode::Unauthorized, text: "bad".into(), reconnect: false }),
            [&[0x09, 0x05, 0x03][..], b"bad", &[0x00]].concat(),
        ),
        (
            "closing, come back later",
            ServerFrame::Closing(Closing { reason: CloseReason::ShuttingDown, reconnect_after_ms: Some(1_500) }),
            vec![0x0A, 0x00, 0x01, 0xDC, 0x0B],
        ),
        (
            "closing for good",
            ServerFrame::Closing(Closing { reason: CloseReason::ProtocolViolation, reconnect_after_ms: None }),
            vec![0x0A, 0x03, 0x00],
        ),
        (
            "closing: the agent was signed out",
            ServerFrame::Closing(Closing { reason: CloseReason::SignedOut, reconnect_after_ms: None }),
            vec![0x0A, 0x04, 0x00],
        ),
        (
            "closing: the agent's rights changed, come back now",
            ServerFrame::Closing(Closing { reason: CloseReason::AccessChanged, reconnect_after_ms: Some(0) }),
            vec![0x0A, 0x05, 0x01, 0x00],
        ),
        (
            "open conversation",
            ServerFrame::Conversation(ConversationUpdate {
                conversation: ConversationId(3),
                visitor: VisitorId(7),
                status: ConversationStatus::Open,
                last_seq: Seq(300),
                updated_at: TIME,
                assignee: Some(AgentId(5)),
                waiting_since: Some(TIME),
            }),
            [&[0x0B, 0x03, 0x07, 0x00][..], V300, TS, &[0x01, 0x05, 0x01], TS].concat(),
        ),
        (
            "closed conversation",
            ServerFrame::Conversation(ConversationUpdate {
                conversation: ConversationId(3),
                visitor: VisitorId(7),
                status: ConversationStatus::Closed,
                last_seq: Seq(0),
                updated_at: Timestamp(0),
                assignee: None,
                waiting_since: None,
            }),
            vec![0x0B, 0x03, 0x07, 0x01, 0x00, 0x00, 0x00, 0x00],
        ),
        (
            "profile of an identified visitor",
            ServerFrame::Visitor(VisitorProfile {
                visitor: VisitorId(7),
                verified: true,
                user_id: Some("u1".into()),
                name: Some("Ann".into()),
                email: Some("a@b".into()),
                attributes: vec![attribute("plan", "pro")],
                page: Some(Visit { url: "/a".into(), title: "A".into(), referrer: None }),
                page_since: Some(TIME),
            }),
            [
                &[0x0C, 0x07, 0x01, 0x01, 0x02][..], // Visitor, visitor 7, verified, user id: Some, of 2
                b"u1",
                &[0x01, 0x03], // name: Some, of 3
                b"Ann",
                &[0x01, 0x03], // email: Some, of 3
                b"a@b",
                &[0x01, 0x04], // 1 attribute, key of 4
                b"plan",
                &[0x03], // value of 3
                b"pro",
                &[0x01, 0x02], // page: Some, url of 2
                b"/a",
                &[0x01], // title of 1
                b"A",
                &[0x00, 0x01], // referrer: None; page_since: Some
                TS,
            ]
            .concat(),
        ),
        (
            "profile of an anonymous visitor",
            ServerFrame::Visitor(VisitorProfile {
                visitor: VisitorId(300),
                verified: false,
                user_id: None,
                name: None,
                email: None,
                attributes: vec![],
                page: None,
                page_since: None,
            }),
            // Not verified, three Nones, no attributes, two Nones.
            [&[0x0C][..], V300, &[0x00; 7]].concat(),
        ),
        ("no agent online", ServerFrame::Availability(Availability::in_hours(0)), vec![0x0D, 0x00, 0x00, 0x00]),
        (
            "agents online",
            ServerFrame::Availability(Availability::in_hours(300)),
            [&[0x0D][..], V300, &[0x00, 0x00]].concat(),
        ),
        (
            "out of hours, opening later",
            ServerFrame::Availability(Availability {
                agents_online: 1,
                out_of_hours: true,
                opens_at: Some(Timestamp(300)),
            }),
            [&[0x0D, 0x01, 0x01, 0x01][..], V300].concat(),
        ),
        (
            "roster",
            ServerFrame::Roster(Roster {
                agents: vec![
                    TeamMember {
                        agent: AgentId(5),
                        name: "A".into(),
                        presence: Presence::Online,
                        open: 2,
                        capacity: 3,
                    },
                    TeamMember { agent: AgentId(6), name: "B".into(), presence: Presence::Away, open: 0, capacity: 1 },
                    TeamMember {
                        agent: AgentId(7),
                        name: "C".into(),
                        presence: Presence::Offline,
                        open: 0,
                        capacity: 0,
                    },
                ],
            }),
            [
                &[0x0E, 0x03, 0x05, 0x01][..],
                b"A",
                &[0x00, 0x02, 0x03, 0x06, 0x01],
                b"B",
                &[0x01, 0x00, 0x01, 0x07, 0x01],
                b"C",
                &[0x02, 0x00, 0x00],
            ]
            .concat(),
        ),
        ("empty roster", ServerFrame::Roster(Roster { agents: vec![] }), vec![0x0E, 0x00]),
        (
            "deferred",
            ServerFrame::Deferred(Deferred { conversation: ConversationId(3), client_id: CID, retry_after_ms: 300 }),
            [&[0x0F, 0x03][..], V1M, V300].concat(),
        ),
        (
            "transcript mailed",
            ServerFrame::TranscriptMailed(TranscriptMailed { conversation: ConversationId(3), to: "a@b.c".into() }),
            [&[0x10, 0x03, 0x05][..], b"a@b.c"].concat(),
        ),
    ]
}

#[test]
fn client_frames_are_pinned() {
    let mut covered = [false; CLIENT_VARIANTS as usize];
    for (name, frame, bytes) in client_fixtures() {
        assert_eq!(bytes[0], client_index(&frame), "variant index of {name}");
        assert_eq!(encode(&frame), bytes, "bytes of {name}");
        assert_eq!(decode::<ClientFrame>(&bytes, &DEFAULT_LIMITS), Ok(frame), "{name}");
        covered[usize::from(bytes[0])] = true;
    }
    assert!(covered.iter().all(|&c| c), "a ClientFrame variant has no pinned bytes");
}

#[test]
fn server_frames_are_pinned() {
    let mut covered = [false; SERVER_VARIANTS as usize];
    for (name, frame, bytes) in server_fixtures() {
        assert_eq!(bytes[0], server_index(&frame), "variant index of {name}");
        assert_eq!(encode(&frame), bytes, "bytes of {name}");
        assert_eq!(decode::<ServerFrame>(&bytes, &DEFAULT_LIMITS), Ok(frame), "{name}");
        covered[usize::from(bytes[0])] = true;
    }
    assert!(covered.iter().all(|&c| c), "a ServerFrame variant has no pinned bytes");
}

#[test]
fn every_error_code_is_pinned() {
    let indices: Vec<u8> = ERROR_CODES.iter().map(|&c| error_code_index(c)).collect();
    assert_eq!(indices, (0..10).collect::<Vec<u8>>(), "ERROR_CODES lists each variant once");
    for code in ERROR_CODES {
        let frame = ServerFrame::Error(ErrorFrame { code, text: "x".into(), reconnect: true });
        let bytes = [0x09, error_code_index(code), 0x01, b'x', 0x01];
        assert_eq!(encode(&frame), bytes, "{code:?}");
        assert_eq!(decode::<ServerFrame>(&bytes, &DEFAULT_LIMITS), Ok(frame));
    }
}

#[test]
fn every_close_reason_is_pinned() {
    let indices: Vec<u8> = CLOSE_REASONS.iter().map(|&r| close_reason_index(r)).collect();
    assert_eq!(indices, [0, 1, 2, 3, 4, 5], "CLOSE_REASONS lists each variant once");
    for reason in CLOSE_REASONS {
        let frame = ServerFrame::Closing(Closing { reason, reconnect_after_ms: Some(0) });
        let bytes = [0x0A, close_reason_index(reason), 0x01, 0x00];
        assert_eq!(encode(&frame), bytes, "{reason:?}");
        assert_eq!(decode::<ServerFrame>(&bytes, &DEFAULT_LIMITS), Ok(frame));
    }
}

#[test]
fn client_message_ids_use_all_128_bits() {
    let frame = ClientFrame::Send(Send {
        conversation: ConversationId(0),
        client_id: ClientMessageId(u128::MAX),
        body: text(""),
    });
    // 128 bits: eighteen bytes of seven ones, then the last two bits.
    let bytes = [&[0x01, 0x00][..], &[0xFF; 18], &[0x03, 0x00, 0x00]].concat();
    assert_eq!(encode(&frame), bytes);
    assert_eq!(decode::<ClientFrame>(&bytes, &DEFAULT_LIMITS), Ok(frame));
}

#[test]
fn the_version_is_the_first_field_of_the_hello() {
    assert_eq!(PROTOCOL_VERSION, 2);
    for (name, frame, bytes) in client_fixtures() {
        let expected = match frame {
            ClientFrame::Hello(hello) => Some(hello.version),
            _ => None,
        };
        assert_eq!(peek_hello_version(&bytes), expected, "{name}");
    }
}

#[test]
fn a_hello_of_another_version_still_shows_its_version() {
    // Hello, version 99, then bytes this crate cannot read.
    let bytes = [0x00, 0x63, 0xFF, 0xFF];
    assert_eq!(peek_hello_version(&bytes), Some(99));
    assert!(decode::<ClientFrame>(&bytes, &DEFAULT_LIMITS).is_err());
    // Version 300 needs a two-byte varint.
    assert_eq!(peek_hello_version(&[0x00, 0xAC, 0x02]), Some(300));
    assert_eq!(peek_hello_version(&[]), None);
    assert_eq!(peek_hello_version(&[0x00]), None);
    assert_eq!(peek_hello_version(&[0x00, 0xFF, 0xFF, 0xFF]), None, "over u16");
    assert_eq!(peek_hello_version(&[0x01, 0x01]), None, "a Send, not a Hello");
}

fn malformed<T: std::fmt::Debug>(result: Result<T, DecodeError>) -> bool {
    matches!(result, Err(DecodeError::Malformed(_)))
}

#[test]
fn empty_input_is_malformed() {
    assert!(malformed(decode::<ClientFrame>(&[], &DEFAULT_LIMITS)));
    assert!(malformed(decode::<ServerFrame>(&[], &DEFAULT_LIMITS)));
}

#[test]
fn garbage_is_malformed() {
    for bytes in [
        &[0xFF; 16][..],
        &[CLIENT_VARIANTS],                    // one past the last client variant
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80], // an endless varint
        b"GET / HTTP/1.1\r\n",
    ] {
        assert!(malformed(decode::<ClientFrame>(bytes, &DEFAULT_LIMITS)), "{bytes:?}");
    }
    assert!(malformed(decode::<ServerFrame>(&[SERVER_VARIANTS], &DEFAULT_LIMITS)));
    assert!(malformed(decode::<ServerFrame>(&[0xFF; 16], &DEFAULT_LIMITS)));
}

#[test]
fn every_truncation_of_every_frame_is_malformed() {
    for (name, _, bytes) in client_fixtures() {
        for len in 0..bytes.len() {
            let result = decode::<ClientFrame>(&bytes[..len], &DEFAULT_LIMITS);
            assert!(malformed(result), "{name} cut to {len} bytes");
        }
    }
    for (name, _, bytes) in server_fixtures() {
        for len in 0..bytes.len() {
            let result = decode::<ServerFrame>(&bytes[..len], &DEFAULT_LIMITS);
            assert!(malformed(result), "{name} cut to {len} bytes");
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    for (name, _, mut bytes) in client_fixtures() {
        bytes.extend_from_slice(&[0x00, 0x01]);
        let result = decode::<ClientFrame>(&bytes, &DEFAULT_LIMITS);
        assert_eq!(result, Err(DecodeError::TrailingBytes(2)), "{name}");
    }
    for (name, _, mut bytes) in server_fixtures() {
        bytes.push(0x00);
        let result = decode::<ServerFrame>(&bytes, &DEFAULT_LIMITS);
        assert_eq!(result, Err(DecodeError::TrailingBytes(1)), "{name}");
    }
}

#[test]
fn a_frame_over_the_limit_is_refused_before_parsing() {
    let limits = Limits { max_frame_bytes: 4, max_body_bytes: 4 };
    let join = [&[0x02, 0x03][..], V300].concat();
    assert!(decode::<ClientFrame>(&join, &limits).is_ok(), "exactly at the limit");
    let ping = [&[0x05][..], &[0xFF; 9], &[0x01]].concat();
    assert_eq!(decode::<ClientFrame>(&ping, &limits), Err(DecodeError::FrameTooLarge { len: 11, max: 4 }));
    // Garbage is not even looked at when there is too much of it.
    let huge = vec![0xFF; 64 * 1024 + 1];
    assert_eq!(
        decode::<ServerFrame>(&huge, &DEFAULT_LIMITS),
        Err(DecodeError::FrameTooLarge { len: 64 * 1024 + 1, max: 64 * 1024 })
    );
}

#[test]
fn a_body_draft_or_visitor_text_over_the_limit_is_refused() {
    let max = DEFAULT_LIMITS.max_body_bytes as usize;
    let too_long = BodyTooLarge(max + 1);
    let send = |len: usize| {
        ClientFrame::Send(Send { conversation: ConversationId(1), client_id: CID, body: Body::Text("a".repeat(len)) })
    };
    let typing = |len: usize| {
        ClientFrame::Typing(Typing { conversation: ConversationId(1), active: true, draft: Some("a".repeat(len)) })
    };
    let message = |len: usize| {
        ServerFrame::Message(Message {
            conversation: ConversationId(1),
            seq: Seq(1),
            prev: Seq(0),
            id: MessageId(1),
            client_id: None,
            author: Author::System,
            body: Body::Text("a".repeat(len)),
            sent_at: TIME,
        })
    };
    let notice = |len: usize| {
        ServerFrame::Typing(TypingNotice {
            conversation: ConversationId(1),
            by: Author::System,
            active: true,
            draft: Some("a".repeat(len)),
        })
    };
    let visit_url =
        |len: usize| ClientFrame::Visit(Visit { url: "a".repeat(len), title: String::new(), referrer: None });
    let visit_title =
        |len: usize| ClientFrame::Visit(Visit { url: "/".into(), title: "a".repeat(len), referrer: None });
    let identify =
        |len: usize| ClientFrame::Identify(Identify { user_id: "a".repeat(len), name: None, email: None, hash: None });
    // The longest value counts, wherever it is in the list.
    let attributes = |len: usize| {
        ClientFrame::Attributes(Attributes {
            set: vec![attribute("plan", "pro"), attribute("notes", &"a".repeat(len)), attribute("n", "")],
        })
    };
    let client: [fn(usize) -> ClientFrame; 6] = [send, typing, visit_url, visit_title, identify, attributes];
    for make in client {
        assert_eq!(decode(&encode(&make(max)), &DEFAULT_LIMITS), Ok(make(max)));
        too_long.check(decode::<ClientFrame>(&encode(&make(max + 1)), &DEFAULT_LIMITS));
    }
    let server: [fn(usize) -> ServerFrame; 2] = [message, notice];
    for make in server {
        assert_eq!(decode(&encode(&make(max)), &DEFAULT_LIMITS), Ok(make(max)));
        too_long.check(decode::<ServerFrame>(&encode(&make(max + 1)), &DEFAULT_LIMITS));
    }
}

/// The error a body of this many bytes must get.
struct BodyTooLarge(usize);

impl BodyTooLarge {
    fn check<T: std::fmt::Debug>(&self, result: Result<T, DecodeError>) {
        let expected = DecodeError::BodyTooLarge { len: self.0, max: DEFAULT_LIMITS.max_body_bytes };
        assert_eq!(result.expect_err("decoded an oversized body"), expected);
        assert_eq!(expected.code(), ErrorCode::BodyTooLarge);
    }
}

#[test]
fn invalid_utf8_in_a_text_is_malformed() {
    // A Send whose two-byte body is a broken UTF-8 sequence.
    let bytes = [&[0x01, 0x03][..], V1M, &[0x00, 0x02, 0xC3, 0x28]].concat();
    assert!(malformed(decode::<ClientFrame>(&bytes, &DEFAULT_LIMITS)));
    // The same in a typing draft and in an agent's name.
    assert!(malformed(decode::<ClientFrame>(&[0x04, 0x03, 0x01, 0x01, 0x01, 0xFF], &DEFAULT_LIMITS)));
    let welcome = [&[0x00, 0x01, 0x01, 0x05, 0x02, 0x01, 0x80][..], &[0x01, 0x00], TS, LIMITS].concat();
    assert!(malformed(decode::<ServerFrame>(&welcome, &DEFAULT_LIMITS)));
    // A visit url and an attribute key.
    assert!(malformed(decode::<ClientFrame>(&[0x07, 0x01, 0xFF, 0x00, 0x00], &DEFAULT_LIMITS)));
    assert!(malformed(decode::<ClientFrame>(&[0x09, 0x01, 0x01, 0xFF, 0x00], &DEFAULT_LIMITS)));
}

#[test]
fn invalid_keys_and_tokens_in_a_hello_are_malformed() {
    let hello = |credentials: &[u8]| [&[0x00, 0x01][..], credentials, &[0x00]].concat();
    for credentials in [
        [&[0x00, 0x09][..], b"has space", &[0x00]].concat(), // site key with a space
        vec![0x00, 0x00, 0x00],                              // empty site key
        [&[0x00, 0x41][..], &[b'a'; 65], &[0x00]].concat(),  // site key over 64
        [&[0x00, 0x04][..], b"demo", &[0x01, 0x07, 0x00]].concat(), // empty visitor token
        [&[0x01, 0x03][..], b"a/b"].concat(),                // agent token with a slash
    ] {
        let bytes = hello(&credentials);
        assert!(malformed(decode::<ClientFrame>(&bytes, &DEFAULT_LIMITS)), "{bytes:?}");
    }
    // The longest valid site key is fine.
    let bytes = hello(&[&[0x00, 0x40][..], &[b'a'; 64], &[0x00]].concat());
    assert!(decode::<ClientFrame>(&bytes, &DEFAULT_LIMITS).is_ok());
}

#[test]
fn out_of_range_bools_and_options_are_malformed() {
    // Typing with active = 2.
    assert!(malformed(decode::<ClientFrame>(&[0x04, 0x03, 0x02, 0x00], &DEFAULT_LIMITS)));
    // Typing whose draft option tag is 2.
    assert!(malformed(decode::<ClientFrame>(&[0x04, 0x03, 0x01, 0x02], &DEFAULT_LIMITS)));
    // Ack with a receipt kind past Read.
    assert!(malformed(decode::<ClientFrame>(&[0x03, 0x03, 0x02, 0x05], &DEFAULT_LIMITS)));
    // Visit whose referrer option tag is 2.
    assert!(malformed(decode::<ClientFrame>(&[0x07, 0x01, b'/', 0x00, 0x02], &DEFAULT_LIMITS)));
    // A visitor profile with verified = 2.
    assert!(malformed(decode::<ServerFrame>(&[0x0C, 0x07, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], &DEFAULT_LIMITS)));
}

#[test]
fn decode_errors_map_to_wire_codes() {
    assert_eq!(DecodeError::TrailingBytes(1).code(), ErrorCode::Malformed);
    let Err(error) = decode::<ClientFrame>(&[], &DEFAULT_LIMITS) else {
        panic!("empty input decoded");
    };
    assert_eq!(error.code(), ErrorCode::Malformed);
    let too_large = DecodeError::FrameTooLarge { len: 2, max: 1 };
    assert_eq!(too_large.code(), ErrorCode::FrameTooLarge);
}

// ---- generated frames ----

fn site_key() -> impl Strategy<Value = SiteKey> {
    "[A-Za-z0-9_-]{1,64}".prop_map(|s| SiteKey::new(s).expect("the regex makes valid keys"))
}

fn visitor_token() -> impl Strategy<Value = VisitorToken> {
    "[A-Za-z0-9_-]{1,128}".prop_map(|s| VisitorToken::new(s).expect("the regex makes valid keys"))
}

fn agent_token() -> impl Strategy<Value = AgentToken> {
    "[A-Za-z0-9_-]{1,128}".prop_map(|s| AgentToken::new(s).expect("the regex makes valid keys"))
}

fn conversation() -> impl Strategy<Value = ConversationId> {
    any::<u64>().prop_map(ConversationId)
}

fn seq() -> impl Strategy<Value = Seq> {
    any::<u64>().prop_map(Seq)
}

fn client_id() -> impl Strategy<Value = ClientMessageId> {
    any::<u128>().prop_map(ClientMessageId)
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    any::<u64>().prop_map(Timestamp)
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![any::<String>().prop_map(Body::Text), any::<String>().prop_map(Body::Note)]
}

fn agent_ref() -> impl Strategy<Value = AgentRef> {
    (any::<u64>(), any::<String>()).prop_map(|(id, name)| AgentRef { id: AgentId(id), name })
}

fn event() -> impl Strategy<Value = ConversationEvent> {
    prop_oneof![
        (agent_ref(), proptest::option::of(agent_ref())).prop_map(|(to, by)| ConversationEvent::Assigned { to, by }),
        (agent_ref(), agent_ref()).prop_map(|(from, to)| ConversationEvent::Transferred { from, to }),
        agent_ref().prop_map(|by| ConversationEvent::Closed { by }),
        proptest::option::of(agent_ref()).prop_map(|by| ConversationEvent::Reopened { by }),
        (any::<u8>(), any::<String>()).prop_map(|(score, comment)| ConversationEvent::Rated { score, comment }),
    ]
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        Just(Change::Take),
        (any::<u64>(), any::<String>()).prop_map(|(to, note)| Change::Transfer { to: AgentId(to), note }),
        Just(Change::Close),
        Just(Change::Reopen),
    ]
}

fn presence() -> impl Strategy<Value = Presence> {
    prop_oneof![Just(Presence::Online), Just(Presence::Away), Just(Presence::Offline)]
}

fn author() -> impl Strategy<Value = Author> {
    prop_oneof![
        any::<u64>().prop_map(|id| Author::Visitor(VisitorId(id))),
        any::<u64>().prop_map(|id| Author::Agent(AgentId(id))),
        Just(Author::System),
    ]
}

fn receipt_kind() -> impl Strategy<Value = ReceiptKind> {
    prop_oneof![Just(ReceiptKind::Delivered), Just(ReceiptKind::Read)]
}

fn credentials() -> impl Strategy<Value = Credentials> {
    let returning =
        (any::<u64>(), visitor_token()).prop_map(|(id, token)| ReturningVisitor { visitor: VisitorId(id), token });
    prop_oneof![
        (site_key(), proptest::option::of(returning))
            .prop_map(|(site, returning)| Credentials::Visitor { site, returning }),
        agent_token().prop_map(|token| Credentials::Agent { token }),
        Just(Credentials::AgentCookie),
    ]
}

fn identity() -> impl Strategy<Value = Identity> {
    prop_oneof![
        (any::<u64>(), visitor_token(), any::<u64>(), conversation()).prop_map(
            |(visitor, token, site, conversation)| Identity::Visitor {
                visitor: VisitorId(visitor),
                token,
                site: SiteId(site),
                conversation,
            }
        ),
        (any::<u64>(), any::<u64>(), any::<String>())
            .prop_map(|(agent, site, name)| { Identity::Agent { agent: AgentId(agent), site: SiteId(site), name } }),
    ]
}

prop_compose! {
    fn hello()(
        version in any::<u16>(),
        credentials in credentials(),
        resume in proptest::collection::vec(
            (conversation(), seq()).prop_map(|(conversation, seq)| Cursor { conversation, seq }),
            0..8,
        ),
    ) -> Hello {
        Hello { version, credentials, resume }
    }
}

prop_compose! {
    fn welcome()(
        session in any::<u64>(),
        identity in identity(),
        interval_ms in any::<u32>(),
        grace_ms in any::<u32>(),
        server_time in timestamp(),
        max_frame_bytes in any::<u32>(),
        max_body_bytes in any::<u32>(),
    ) -> Welcome {
        Welcome {
            session: SessionId(session),
            identity,
            heartbeat: Heartbeat { interval_ms, grace_ms },
            server_time,
            limits: Limits { max_frame_bytes, max_body_bytes },
        }
    }
}

prop_compose! {
    fn message()(
        conversation in conversation(),
        seq in seq(),
        prev in seq(),
        id in any::<u64>(),
        client_id in proptest::option::of(client_id()),
        author in author(),
        body in prop_oneof![body(), event().prop_map(Body::Event)],
        sent_at in timestamp(),
    ) -> Message {
        Message { conversation, seq, prev, id: MessageId(id), client_id, author, body, sent_at }
    }
}

fn attribute_strategy() -> impl Strategy<Value = Attribute> {
    (any::<String>(), any::<String>()).prop_map(|(key, value)| Attribute { key, value })
}

fn attribute_list() -> impl Strategy<Value = Vec<Attribute>> {
    proptest::collection::vec(attribute_strategy(), 0..4)
}

fn visit() -> impl Strategy<Value = Visit> {
    (any::<String>(), any::<String>(), proptest::option::of(any::<String>())).prop_map(|(url, title, referrer)| Visit {
        url,
        title,
        referrer,
    })
}

fn identify() -> impl Strategy<Value = Identify> {
    let text = || proptest::option::of(any::<String>());
    (any::<String>(), text(), text(), text()).prop_map(|(user_id, name, email, hash)| Identify {
        user_id,
        name,
        email,
        hash,
    })
}

prop_compose! {
    fn visitor_profile()(
        visitor in any::<u64>(),
        verified in any::<bool>(),
        user_id in proptest::option::of(any::<String>()),
        name in proptest::option::of(any::<String>()),
        email in proptest::option::of(any::<String>()),
        attributes in attribute_list(),
        page in proptest::option::of(visit()),
        page_since in proptest::option::of(timestamp()),
    ) -> VisitorProfile {
        VisitorProfile { visitor: VisitorId(visitor), verified, user_id, name, email, attributes, page, page_since }
    }
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        hello().prop_map(ClientFrame::Hello),
        (conversation(), client_id(), body())
            .prop_map(|(conversation, client_id, body)| { ClientFrame::Send(Send { conversation, client_id, body }) }),
        (conversation(), seq()).prop_map(|(conversation, after)| ClientFrame::Join(Join { conversation, after })),
        (conversation(), receipt_kind(), seq())
            .prop_map(|(conversation, kind, up_to)| { ClientFrame::Ack(Ack { conversation, kind, up_to }) }),
        (conversation(), any::<bool>(), proptest::option::of(any::<String>()))
            .prop_map(|(conversation, active, draft)| { ClientFrame::Typing(Typing { conversation, active, draft }) }),
        any::<u64>().prop_map(|nonce| ClientFrame::Ping(Ping { nonce })),
        any::<u64>().prop_map(|nonce| ClientFrame::Pong(Pong { nonce })),
        visit().prop_map(ClientFrame::Visit),
        identify().prop_map(ClientFrame::Identify),
        attribute_list().prop_map(|set| ClientFrame::Attributes(Attributes { set })),
        (conversation(), change())
            .prop_map(|(conversation, change)| ClientFrame::Update(Update { conversation, change })),
        prop_oneof![Just(AgentStatus::Online), Just(AgentStatus::Away)].prop_map(ClientFrame::Status),
        (conversation(), any::<u8>(), any::<String>())
            .prop_map(|(conversation, score, comment)| ClientFrame::Rate(Rate { conversation, score, comment })),
        conversation().prop_map(|conversation| ClientFrame::MailTranscript(MailTranscript { conversation })),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let error_code = proptest::sample::select(ERROR_CODES.to_vec());
    let close_reason = proptest::sample::select(CLOSE_REASONS.to_vec());
    let status = prop_oneof![Just(ConversationStatus::Open), Just(ConversationStatus::Closed)];
    prop_oneof![
        welcome().prop_map(ServerFrame::Welcome),
        (conversation(), client_id(), any::<u64>(), seq(), timestamp()).prop_map(
            |(conversation, client_id, id, seq, sent_at)| {
                ServerFrame::Accepted(Accepted { conversation, client_id, id: MessageId(id), seq, sent_at })
            }
        ),
        (conversation(), client_id(), error_code.clone(), any::<String>()).prop_map(
            |(conversation, client_id, code, text)| {
                ServerFrame::Rejected(Rejected { conversation, client_id, code, text })
            }
        ),
        message().prop_map(ServerFrame::Message),
        (conversation(), seq()).prop_map(|(conversation, last_seq)| {
            ServerFrame::ReplayComplete(ReplayComplete { conversation, last_seq })
        }),
        (conversation(), author(), receipt_kind(), seq()).prop_map(|(conversation, by, kind, up_to)| {
            ServerFrame::Receipt(Receipt { conversation, by, kind, up_to })
        }),
        (conversation(), author(), any::<bool>(), proptest::option::of(any::<String>())).prop_map(
            |(conversation, by, active, draft)| {
                ServerFrame::Typing(TypingNotice { conversation, by, active, draft })
            }
        ),
        any::<u64>().prop_map(|nonce| ServerFrame::Ping(Ping { nonce })),
        any::<u64>().prop_map(|nonce| ServerFrame::Pong(Pong { nonce })),
        (error_code, any::<String>(), any::<bool>())
            .prop_map(|(code, text, reconnect)| { ServerFrame::Error(ErrorFrame { code, text, reconnect }) }),
        (close_reason, proptest::option::of(any::<u32>()))
            .prop_map(|(reason, reconnect_after_ms)| { ServerFrame::Closing(Closing { reason, reconnect_after_ms }) }),
        (
            conversation(),
            any::<u64>(),
            status,
            seq(),
            timestamp(),
            proptest::option::of(any::<u64>()),
            proptest::option::of(timestamp())
        )
            .prop_map(|(conversation, visitor, status, last_seq, updated_at, assignee, waiting_since)| {
                ServerFrame::Conversation(ConversationUpdate {
                    conversation,
                    visitor: VisitorId(visitor),
                    status,
                    last_seq,
                    updated_at,
                    assignee: assignee.map(AgentId),
                    waiting_since,
                })
            }),
        visitor_profile().prop_map(ServerFrame::Visitor),
        (any::<u32>(), any::<bool>(), proptest::option::of(any::<u64>())).prop_map(
            |(agents_online, out_of_hours, opens_at)| ServerFrame::Availability(Availability {
                agents_online,
                out_of_hours,
                opens_at: opens_at.map(Timestamp),
            })
        ),
        proptest::collection::vec(
            (any::<u64>(), any::<String>(), presence(), any::<u32>(), any::<u32>()).prop_map(
                |(agent, name, presence, open, capacity)| TeamMember {
                    agent: AgentId(agent),
                    name,
                    presence,
                    open,
                    capacity
                }
            ),
            0..4
        )
        .prop_map(|agents| ServerFrame::Roster(Roster { agents })),
        (conversation(), client_id(), any::<u32>()).prop_map(|(conversation, client_id, retry_after_ms)| {
            ServerFrame::Deferred(Deferred { conversation, client_id, retry_after_ms })
        }),
        (conversation(), any::<String>())
            .prop_map(|(conversation, to)| ServerFrame::TranscriptMailed(TranscriptMailed { conversation, to })),
    ]
}

proptest! {
    #[test]
    fn client_frames_round_trip(frame in client_frame()) {
        let bytes = encode(&frame);
        prop_assert_eq!(bytes[0], client_index(&frame));
        prop_assert_eq!(decode::<ClientFrame>(&bytes, &DEFAULT_LIMITS), Ok(frame));
    }

    #[test]
    fn server_frames_round_trip(frame in server_frame()) {
        let bytes = encode(&frame);
        prop_assert_eq!(bytes[0], server_index(&frame));
        prop_assert_eq!(decode::<ServerFrame>(&bytes, &DEFAULT_LIMITS), Ok(frame));
    }

    #[test]
    fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_any_bytes(&bytes)?;
    }

    #[test]
    fn damaged_client_frames_decode_without_panicking(
        frame in client_frame(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = encode(&frame);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        check_any_bytes(&bytes)?;
    }

    #[test]
    fn damaged_server_frames_decode_without_panicking(
        frame in server_frame(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = encode(&frame);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        check_any_bytes(&bytes)?;
    }
}

/// Decoding `bytes` as either frame returns, and whatever it returns
/// survives a round trip.
fn check_any_bytes(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(frame) = decode::<ClientFrame>(bytes, &DEFAULT_LIMITS) {
        prop_assert_eq!(decode::<ClientFrame>(&encode(&frame), &DEFAULT_LIMITS), Ok(frame));
    }
    if let Ok(frame) = decode::<ServerFrame>(bytes, &DEFAULT_LIMITS) {
        prop_assert_eq!(decode::<ServerFrame>(&encode(&frame), &DEFAULT_LIMITS), Ok(frame));
    }
    let _ = peek_hello_version(bytes);
    Ok(())
}
