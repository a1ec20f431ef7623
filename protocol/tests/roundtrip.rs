//! Every frame variant, with generated contents, through the codec.
//!
//! `wire.rs` pins exact bytes and round-trips frames drawn from one mixed
//! strategy. Here each variant gets its own test, so none is left to
//! chance, and each generated frame is checked at its edges:
//!
//! - it decodes to itself, and re-encodes to the same bytes;
//! - every truncation of its encoding fails cleanly as `Malformed`;
//! - one byte more fails as `TrailingBytes(1)`;
//! - under limits it meets exactly it decodes; one byte less of frame or
//!   of body and it is refused with `FrameTooLarge` or `BodyTooLarge`
//!   naming the sizes, the frame size being checked first;
//! - a hello's version can be peeked.
//!
//! Texts include multi-byte characters and bodies around the 16 KiB limit.

use std::fmt::Debug;

use kefu_protocol::codec::{DecodeError, Frame, peek_hello_version};
use kefu_protocol::frame::{
    Accepted, Ack, AgentRef, AgentStatus, Attribute, Attributes, Author, Availability, Body, Change, CloseReason,
    Closing, ConversationEvent, ConversationStatus, ConversationUpdate, Credentials, Cursor, Deferred, ErrorCode,
    ErrorFrame, Heartbeat, Hello, Identify, Identity, Join, Limits, MailTranscript, Message, Ping, Pong, Presence,
    Rate, Receipt, ReceiptKind, Rejected, ReplayComplete, ReturningVisitor, Roster, Send, TeamMember, TranscriptMailed,
    Typing, TypingNotice, Update, Visit, VisitorProfile, Welcome,
};
use kefu_protocol::ids::{
    AgentId, AgentToken, ClientMessageId, ConversationId, MessageId, Seq, SessionId, SiteId, SiteKey, Timestamp,
    VisitorId, VisitorToken,
};
use kefu_protocol::{ClientFrame, DEFAULT_LIMITS, ServerFrame, decode, encode};
use proptest::prelude::*;
use proptest::sample::Index;

const UNLIMITED: Limits = Limits { max_frame_bytes: u32::MAX, max_body_bytes: u32::MAX };

/// Checks one frame at every edge listed in the module comment.
fn check<F: Frame + Debug + PartialEq>(frame: &F) -> Result<(), TestCaseError> {
    let bytes = encode(frame);
    let len = bytes.len();
    let text = frame.largest_text();
    let exact = Limits { max_frame_bytes: len as u32, max_body_bytes: text as u32 };

    let decoded = decode::<F>(&bytes, &exact);
    prop_assert_eq!(decoded.as_ref(), Ok(frame), "round trip under limits it meets exactly");
    prop_assert_eq!(encode(frame), bytes.clone(), "encoding is deterministic");
    if len <= DEFAULT_LIMITS.max_frame_bytes as usize && text <= DEFAULT_LIMITS.max_body_bytes as usize {
        let decoded = decode::<F>(&bytes, &DEFAULT_LIMITS);
        prop_assert_eq!(decoded.as_ref(), Ok(frame), "round trip under the default limits");
    }

    for cut in truncations(len) {
        let result = decode::<F>(&bytes[..cut], &UNLIMITED);
        prop_assert!(matches!(result, Err(DecodeError::Malformed(_))), "cut to {} of {} bytes: {:?}", cut, len, result);
    }
    let longer = [&bytes[..], &[0]].concat();
    prop_assert_eq!(decode::<F>(&longer, &UNLIMITED).err(), Some(DecodeError::TrailingBytes(1)));

    let small_frame = Limits { max_frame_bytes: len as u32 - 1, ..exact };
    let too_large = DecodeError::FrameTooLarge { len, max: len as u32 - 1 };
    prop_assert_eq!(decode::<F>(&bytes, &small_frame).err(), Some(too_large.clone()));
    if text > 0 {
        let small_body = Limits { max_body_bytes: text as u32 - 1, ..exact };
        let body_too_large = DecodeError::BodyTooLarge { len: text, max: text as u32 - 1 };
        prop_assert_eq!(decode::<F>(&bytes, &small_body).err(), Some(body_too_large));
        // Both over: the size is checked before anything is parsed.
        let both = Limits { max_frame_bytes: len as u32 - 1, max_body_bytes: text as u32 - 1 };
        prop_assert_eq!(decode::<F>(&bytes, &both).err(), Some(too_large));
    }
    Ok(())
}

/// Every proper prefix length for short encodings; for long ones (bodies
/// near the limit) the first and last 64 and some in between.
fn truncations(len: usize) -> Vec<usize> {
    if len <= 256 {
        return (0..len).collect();
    }
    let mut cuts: Vec<usize> = (0..64).chain(len - 64..len).chain((64..len - 64).step_by(len / 32)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

fn check_client(frame: &ClientFrame) -> Result<(), TestCaseError> {
    check(frame)?;
    prop_assert_eq!(encode(frame)[0], client_variant(frame));
    let version = match frame {
        ClientFrame::Hello(hello) => Some(hello.version),
        _ => None,
    };
    prop_assert_eq!(peek_hello_version(&encode(frame)), version);
    Ok(())
}

fn check_server(frame: &ServerFrame) -> Result<(), TestCaseError> {
    check(frame)?;
    prop_assert_eq!(encode(frame)[0], server_variant(frame));
    Ok(())
}

/// The position of the variant, which postcard writes as the first byte.
/// No wildcard: a new variant does not compile here until it has a test.
fn client_variant(frame: &ClientFrame) -> u8 {
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

/// Like [`client_variant`], for the relay's frames.
fn server_variant(frame: &ServerFrame) -> u8 {
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

// ---- strategies ----

/// User text: mostly arbitrary Unicode, sometimes right around the body
/// limit in one- or two-byte characters.
fn text() -> impl Strategy<Value = String> {
    let max = DEFAULT_LIMITS.max_body_bytes as usize;
    prop_oneof![
        12 => any::<String>(),
        1 => (max - 2..=max + 2).prop_map(|n| "a".repeat(n)),
        1 => (max / 2 - 1..=max / 2 + 1).prop_map(|n| "é".repeat(n)),
    ]
}

fn short() -> impl Strategy<Value = String> {
    proptest::string::string_regex("\\PC{0,12}").expect("a valid regex")
}

fn key<T: Debug>(max: usize, make: fn(String) -> Option<T>) -> impl Strategy<Value = T> {
    proptest::string::string_regex(&format!("[A-Za-z0-9_-]{{1,{max}}}"))
        .expect("a valid regex")
        .prop_map(move |s| make(s).expect("the regex makes valid keys"))
}

fn site_key() -> impl Strategy<Value = SiteKey> {
    key(SiteKey::MAX_LEN, |s| SiteKey::new(s).ok())
}

fn visitor_token() -> impl Strategy<Value = VisitorToken> {
    key(VisitorToken::MAX_LEN, |s| VisitorToken::new(s).ok())
}

fn agent_token() -> impl Strategy<Value = AgentToken> {
    key(AgentToken::MAX_LEN, |s| AgentToken::new(s).ok())
}

/// Small, large and boundary numbers: varints change length at 2^7k.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![0..300u64, any::<u64>(), Just(u64::MAX), (1..64u32).prop_map(|bits| 1u64 << bits)]
}

fn conversation() -> impl Strategy<Value = ConversationId> {
    number().prop_map(ConversationId)
}

fn seq() -> impl Strategy<Value = Seq> {
    number().prop_map(Seq)
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    number().prop_map(Timestamp)
}

fn client_id() -> impl Strategy<Value = ClientMessageId> {
    prop_oneof![any::<u128>(), Just(0), Just(u128::MAX)].prop_map(ClientMessageId)
}

fn agent_ref() -> impl Strategy<Value = AgentRef> {
    (number(), short()).prop_map(|(id, name)| AgentRef { id: AgentId(id), name })
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

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![text().prop_map(Body::Text), text().prop_map(Body::Note), event().prop_map(Body::Event)]
}

fn author() -> impl Strategy<Value = Author> {
    prop_oneof![
        number().prop_map(|id| Author::Visitor(VisitorId(id))),
        number().prop_map(|id| Author::Agent(AgentId(id))),
        Just(Author::System),
    ]
}

fn receipt_kind() -> impl Strategy<Value = ReceiptKind> {
    prop_oneof![Just(ReceiptKind::Delivered), Just(ReceiptKind::Read)]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(vec![
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
    ])
}

fn credentials() -> impl Strategy<Value = Credentials> {
    let returning =
        (number(), visitor_token()).prop_map(|(id, token)| ReturningVisitor { visitor: VisitorId(id), token });
    prop_oneof![
        (site_key(), proptest::option::of(returning))
            .prop_map(|(site, returning)| Credentials::Visitor { site, returning }),
        agent_token().prop_map(|token| Credentials::Agent { token }),
        Just(Credentials::AgentCookie),
    ]
}

fn hello() -> impl Strategy<Value = Hello> {
    let cursor = (conversation(), seq()).prop_map(|(conversation, seq)| Cursor { conversation, seq });
    (any::<u16>(), credentials(), proptest::collection::vec(cursor, 0..6))
        .prop_map(|(version, credentials, resume)| Hello { version, credentials, resume })
}

fn attributes() -> impl Strategy<Value = Vec<Attribute>> {
    proptest::collection::vec((short(), text()).prop_map(|(key, value)| Attribute { key, value }), 0..4)
}

fn visit() -> impl Strategy<Value = Visit> {
    (text(), text(), proptest::option::of(short())).prop_map(|(url, title, referrer)| Visit { url, title, referrer })
}

fn identify() -> impl Strategy<Value = Identify> {
    let field = || proptest::option::of(short());
    (text(), field(), field(), field()).prop_map(|(user_id, name, email, hash)| Identify { user_id, name, email, hash })
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        Just(Change::Take),
        (number(), text()).prop_map(|(to, note)| Change::Transfer { to: AgentId(to), note }),
        Just(Change::Close),
        Just(Change::Reopen),
    ]
}

fn identity() -> impl Strategy<Value = Identity> {
    prop_oneof![
        (number(), visitor_token(), number(), conversation()).prop_map(|(visitor, token, site, conversation)| {
            Identity::Visitor { visitor: VisitorId(visitor), token, site: SiteId(site), conversation }
        }),
        (number(), number(), short()).prop_map(|(agent, site, name)| Identity::Agent {
            agent: AgentId(agent),
            site: SiteId(site),
            name
        }),
    ]
}

fn welcome() -> impl Strategy<Value = Welcome> {
    (number(), identity(), any::<(u32, u32)>(), timestamp(), any::<(u32, u32)>()).prop_map(
        |(session, identity, (interval_ms, grace_ms), server_time, (max_frame_bytes, max_body_bytes))| Welcome {
            session: SessionId(session),
            identity,
            heartbeat: Heartbeat { interval_ms, grace_ms },
            server_time,
            limits: Limits { max_frame_bytes, max_body_bytes },
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    (conversation(), seq(), seq(), number(), proptest::option::of(client_id()), author(), body(), timestamp()).prop_map(
        |(conversation, seq, prev, id, client_id, author, body, sent_at)| Message {
            conversation,
            seq,
            prev,
            id: MessageId(id),
            client_id,
            author,
            body,
            sent_at,
        },
    )
}

fn visitor_profile() -> impl Strategy<Value = VisitorProfile> {
    let field = || proptest::option::of(short());
    (
        number(),
        any::<bool>(),
        (field(), field(), field()),
        attributes(),
        proptest::option::of(visit()),
        proptest::option::of(timestamp()),
    )
        .prop_map(|(visitor, verified, (user_id, name, email), attributes, page, page_since)| VisitorProfile {
            visitor: VisitorId(visitor),
            verified,
            user_id,
            name,
            email,
            attributes,
            page,
            page_since,
        })
}

fn team_member() -> impl Strategy<Value = TeamMember> {
    let presence = prop_oneof![Just(Presence::Online), Just(Presence::Away), Just(Presence::Offline)];
    (number(), short(), presence, any::<u32>(), any::<u32>()).prop_map(|(agent, name, presence, open, capacity)| {
        TeamMember { agent: AgentId(agent), name, presence, open, capacity }
    })
}

// ---- one test per variant ----

proptest! {
    // 256 cases per variant take about half a second in all.
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn client_hello(hello in hello()) {
        check_client(&ClientFrame::Hello(hello))?;
    }

    #[test]
    fn client_send(conversation in conversation(), client_id in client_id(), body in body()) {
        check_client(&ClientFrame::Send(Send { conversation, client_id, body }))?;
    }

    #[test]
    fn client_join(conversation in conversation(), after in seq()) {
        check_client(&ClientFrame::Join(Join { conversation, after }))?;
    }

    #[test]
    fn client_ack(conversation in conversation(), kind in receipt_kind(), up_to in seq()) {
        check_client(&ClientFrame::Ack(Ack { conversation, kind, up_to }))?;
    }

    #[test]
    fn client_typing(conversation in conversation(), active in any::<bool>(), draft in proptest::option::of(text())) {
        check_client(&ClientFrame::Typing(Typing { conversation, active, draft }))?;
    }

    #[test]
    fn client_ping_and_pong(nonce in number()) {
        check_client(&ClientFrame::Ping(Ping { nonce }))?;
        check_client(&ClientFrame::Pong(Pong { nonce }))?;
    }

    #[test]
    fn client_visit(visit in visit()) {
        check_client(&ClientFrame::Visit(visit))?;
    }

    #[test]
    fn client_identify(identify in identify()) {
        check_client(&ClientFrame::Identify(identify))?;
    }

    #[test]
    fn client_attributes(set in attributes()) {
        check_client(&ClientFrame::Attributes(Attributes { set }))?;
    }

    #[test]
    fn client_update(conversation in conversation(), change in change()) {
        check_client(&ClientFrame::Update(Update { conversation, change }))?;
    }

    #[test]
    fn client_status(online in any::<bool>()) {
        check_client(&ClientFrame::Status(if online { AgentStatus::Online } else { AgentStatus::Away }))?;
    }

    #[test]
    fn client_rate(conversation in any::<u64>(), score in any::<u8>(), comment in any::<String>()) {
        check_client(&ClientFrame::Rate(Rate { conversation: ConversationId(conversation), score, comment }))?;
    }

    #[test]
    fn client_mail_transcript(conversation in conversation()) {
        check_client(&ClientFrame::MailTranscript(MailTranscript { conversation }))?;
    }

    #[test]
    fn server_transcript_mailed(conversation in conversation(), to in text()) {
        check_server(&ServerFrame::TranscriptMailed(TranscriptMailed { conversation, to }))?;
    }

    #[test]
    fn server_welcome(welcome in welcome()) {
        check_server(&ServerFrame::Welcome(welcome))?;
    }

    #[test]
    fn server_accepted(
        conversation in conversation(),
        client_id in client_id(),
        id in number(),
        seq in seq(),
        sent_at in timestamp(),
    ) {
        check_server(&ServerFrame::Accepted(Accepted { conversation, client_id, id: MessageId(id), seq, sent_at }))?;
    }

    #[test]
    fn server_rejected(conversation in conversation(), client_id in client_id(), code in error_code(), text in text()) {
        check_server(&ServerFrame::Rejected(Rejected { conversation, client_id, code, text }))?;
    }

    #[test]
    fn server_deferred(conversation in conversation(), client_id in client_id(), retry_after_ms in any::<u32>()) {
        check_server(&ServerFrame::Deferred(Deferred { conversation, client_id, retry_after_ms }))?;
    }

    #[test]
    fn server_message(message in message()) {
        check_server(&ServerFrame::Message(message))?;
    }

    #[test]
    fn server_replay_complete(conversation in conversation(), last_seq in seq()) {
        check_server(&ServerFrame::ReplayComplete(ReplayComplete { conversation, last_seq }))?;
    }

    #[test]
    fn server_receipt(conversation in conversation(), by in author(), kind in receipt_kind(), up_to in seq()) {
        check_server(&ServerFrame::Receipt(Receipt { conversation, by, kind, up_to }))?;
    }

    #[test]
    fn server_typing(
        conversation in conversation(),
        by in author(),
        active in any::<bool>(),
        draft in proptest::option::of(text()),
    ) {
        check_server(&ServerFrame::Typing(TypingNotice { conversation, by, active, draft }))?;
    }

    #[test]
    fn server_ping_and_pong(nonce in number()) {
        check_server(&ServerFrame::Ping(Ping { nonce }))?;
        check_server(&ServerFrame::Pong(Pong { nonce }))?;
    }

    #[test]
    fn server_error(code in error_code(), text in text(), reconnect in any::<bool>()) {
        check_server(&ServerFrame::Error(ErrorFrame { code, text, reconnect }))?;
    }

    #[test]
    fn server_closing(reason in 0..6usize, reconnect_after_ms in proptest::option::of(any::<u32>())) {
        let reason = [
            CloseReason::ShuttingDown,
            CloseReason::TooSlow,
            CloseReason::HeartbeatTimeout,
            CloseReason::ProtocolViolation,
            CloseReason::SignedOut,
            CloseReason::AccessChanged,
        ][reason];
        check_server(&ServerFrame::Closing(Closing { reason, reconnect_after_ms }))?;
    }

    #[test]
    fn server_conversation(
        conversation in conversation(),
        visitor in number(),
        open in any::<bool>(),
        last_seq in seq(),
        updated_at in timestamp(),
        assignee in proptest::option::of(number()),
        waiting_since in proptest::option::of(timestamp()),
    ) {
        let status = if open { ConversationStatus::Open } else { ConversationStatus::Closed };
        check_server(&ServerFrame::Conversation(ConversationUpdate {
            conversation,
            visitor: VisitorId(visitor),
            status,
            last_seq,
            updated_at,
            assignee: assignee.map(AgentId),
            waiting_since,
        }))?;
    }

    #[test]
    fn server_visitor(profile in visitor_profile()) {
        check_server(&ServerFrame::Visitor(profile))?;
    }

    #[test]
    fn server_availability(agents_online in any::<u32>()) {
        check_server(&ServerFrame::Availability(Availability::in_hours(agents_online)))?;
    }

    #[test]
    fn server_roster(agents in proptest::collection::vec(team_member(), 0..5)) {
        check_server(&ServerFrame::Roster(Roster { agents }))?;
    }

    /// Any limits at all: a frame decodes exactly when it fits them.
    #[test]
    fn a_frame_decodes_exactly_when_it_fits_the_limits(
        frame in prop_oneof![
            (conversation(), client_id(), body())
                .prop_map(|(conversation, client_id, body)| ClientFrame::Send(Send { conversation, client_id, body })),
            visit().prop_map(ClientFrame::Visit),
            attributes().prop_map(|set| ClientFrame::Attributes(Attributes { set })),
        ],
        frame_at in any::<Index>(),
        body_at in any::<Index>(),
    ) {
        let bytes = encode(&frame);
        let text = frame.largest_text();
        // Limits from zero to a little past the frame, so both sides of each edge come up.
        let limits = Limits {
            max_frame_bytes: frame_at.index(bytes.len() + 8) as u32,
            max_body_bytes: body_at.index(text + 8) as u32,
        };
        let fits = bytes.len() <= limits.max_frame_bytes as usize && text <= limits.max_body_bytes as usize;
        let result = decode::<ClientFrame>(&bytes, &limits);
        prop_assert_eq!(result.is_ok(), fits, "{} bytes, text {}, {:?}: {:?}", bytes.len(), text, limits, result);
    }
}
