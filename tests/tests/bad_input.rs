//! Bad input gets a clear error frame or close code, nothing is stored,
//! and other clients carry on unaffected.

use anyhow::{Result, bail};
use kefu_protocol::frame::{
    Body, CloseReason, Closing, Credentials, ErrorCode, ErrorFrame, Identity, Join, Rejected, ReturningVisitor, Send,
};
use kefu_protocol::ids::{AgentToken, ClientMessageId, ConversationId, SiteKey, VisitorToken};
use kefu_protocol::{ClientFrame, DEFAULT_LIMITS, ServerFrame, codec};
use kefu_sdk::Client;
use kefu_tests::raw::{Raw, hello};
use kefu_tests::{Relay, collect, message, text};

/// Reads to the close and returns the error frame the relay sent first.
async fn refused(raw: &mut Raw) -> Result<(ErrorFrame, Option<u16>)> {
    let (frames, code) = raw.drain_to_close().await?;
    for frame in frames {
        if let ServerFrame::Error(error) = frame {
            return Ok((error, code));
        }
    }
    bail!("closed ({code:?}) without an error frame")
}

fn send(conversation: ConversationId, n: u128, text: &str) -> ClientFrame {
    ClientFrame::Send(Send { conversation, client_id: ClientMessageId(n), body: Body::Text(text.into()) })
}

#[tokio::test]
async fn bad_input_is_refused_clearly_and_breaks_nothing() -> Result<()> {
    // No hello timeout within the test: a connection the relay left open
    // would stay open, and fail the test, rather than end by timing out.
    let relay = Relay::start_with(&["--hello-timeout-ms", "600000"]).await?;
    let url = relay.ws_url();

    // A healthy pair that must not notice any of the abuse below.
    let token = relay.admin_token().await?;
    let (agent, mut agent_events) = Client::agent(&url, &token)?;
    let (visitor, _visitor_events) = Client::visitor(&url, "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text("before".into())).await?;

    // Garbage bytes as the first frame.
    let mut raw = Raw::connect(&url).await?;
    raw.send_bytes(vec![0xff, 0x13, 0x37, 0x00, 0x42]).await?;
    let (error, code) = refused(&mut raw).await?;
    assert_eq!(error.code, ErrorCode::Malformed);
    assert!(!error.reconnect);
    assert_eq!(code, Some(1008));

    // Text instead of binary.
    let mut raw = Raw::connect(&url).await?;
    raw.send_text("{\"hello\": true}").await?;
    assert_eq!(refused(&mut raw).await?.0.code, ErrorCode::Malformed);

    // A frame over the limit (but under the transport's cut-off).
    let mut raw = Raw::connect(&url).await?;
    raw.send_bytes(vec![0u8; DEFAULT_LIMITS.max_frame_bytes as usize + 1]).await?;
    let (error, code) = refused(&mut raw).await?;
    assert_eq!(error.code, ErrorCode::FrameTooLarge);
    assert_eq!(code, Some(1009));

    // A frame far over every limit: the transport cuts the connection off
    // before reading it all, so the relay never answers it: no welcome, no
    // frame at all, and the link ends then rather than waiting for more
    // (there is no hello timeout to end it otherwise). (That
    // the relay survives it is checked by the healthy pair at the end.)
    let mut raw = Raw::connect(&url).await?;
    let _ = raw.send_bytes(vec![0u8; 8 * DEFAULT_LIMITS.max_frame_bytes as usize]).await;
    let (frames, code) = raw.drain_to_close().await?;
    assert!(frames.is_empty(), "the relay answered a frame it cannot have read: {frames:?}");
    assert!(matches!(code, None | Some(1009)), "cut off, or closed as too big: {code:?}");

    // A hello of a protocol version this relay does not speak, with a
    // body it cannot parse: the version is still read and named.
    let mut raw = Raw::connect(&url).await?;
    raw.send_bytes(vec![0x00, 0x63, 0xff, 0xff, 0xff]).await?;
    let (error, _) = refused(&mut raw).await?;
    assert_eq!(error.code, ErrorCode::UnsupportedVersion);
    assert!(error.text.contains("99"), "{}", error.text);

    // Well-formed hellos of a version after this relay's, and of none.
    for version in [kefu_protocol::PROTOCOL_VERSION + 1, 0] {
        let mut raw = Raw::connect(&url).await?;
        let ClientFrame::Hello(mut wrong) =
            hello(Credentials::Visitor { site: SiteKey::new("demo")?, returning: None })
        else {
            unreachable!()
        };
        wrong.version = version;
        raw.send(&ClientFrame::Hello(wrong)).await?;
        let (error, _) = refused(&mut raw).await?;
        assert_eq!(error.code, ErrorCode::UnsupportedVersion, "version {version}");
        assert!(error.text.contains("speaks 1 to 2"), "{}", error.text);
    }

    // Something other than a hello first.
    let mut raw = Raw::connect(&url).await?;
    raw.send(&send(conversation, 1, "no hello")).await?;
    assert_eq!(refused(&mut raw).await?.0.code, ErrorCode::HelloExpected);

    // A wrong agent token.
    let mut raw = Raw::connect(&url).await?;
    raw.send(&hello(Credentials::Agent { token: AgentToken::new("not-a-real-token")? })).await?;
    let (error, _) = refused(&mut raw).await?;
    assert_eq!(error.code, ErrorCode::Unauthorized);
    assert!(!error.reconnect);

    // An unknown site.
    let mut raw = Raw::connect(&url).await?;
    raw.send(&hello(Credentials::Visitor { site: SiteKey::new("no-such-site")?, returning: None })).await?;
    assert_eq!(refused(&mut raw).await?.0.code, ErrorCode::Unauthorized);

    // A real visitor id with a forged token.
    let Identity::Visitor { visitor: victim, .. } = visitor.identity().await? else { bail!("not a visitor") };
    let mut raw = Raw::connect(&url).await?;
    raw.send(&hello(Credentials::Visitor {
        site: SiteKey::new("demo")?,
        returning: Some(ReturningVisitor { visitor: victim, token: VisitorToken::new("forged")? }),
    }))
    .await?;
    assert_eq!(refused(&mut raw).await?.0.code, ErrorCode::Unauthorized);

    // Another visitor tries to write into, and to read, the first one's
    // conversation.
    let (mut intruder, welcome) = Raw::visitor(&url, "demo").await?;
    let Identity::Visitor { conversation: own, .. } = welcome.identity else { bail!("not a visitor") };
    assert_ne!(own, conversation);
    intruder.send(&send(conversation, 7, "injected")).await?;
    let rejected = intruder.until(|f| match f {
        ServerFrame::Rejected(r) => Some(r.clone()),
        _ => None,
    });
    let Rejected { code, client_id, .. } = rejected.await?;
    assert_eq!(code, ErrorCode::Forbidden);
    assert_eq!(client_id, ClientMessageId(7));
    intruder.send(&ClientFrame::Join(Join { conversation, after: kefu_protocol::ids::Seq::ZERO })).await?;
    let error = intruder.until(|f| match f {
        ServerFrame::Error(e) => Some(e.clone()),
        ServerFrame::Message(m) if m.conversation == conversation => Some(ErrorFrame {
            code: ErrorCode::Internal,
            text: "LEAKED a message of another visitor".into(),
            reconnect: false,
        }),
        _ => None,
    });
    assert_eq!(error.await?.code, ErrorCode::Forbidden);

    // A body over the limit is rejected for its client id; the connection
    // stays usable.
    let big = "x".repeat(DEFAULT_LIMITS.max_body_bytes as usize + 1);
    intruder.send(&send(own, 8, &big)).await?;
    let rejected = intruder.until(|f| match f {
        ServerFrame::Rejected(r) => Some(r.code),
        _ => None,
    });
    assert_eq!(rejected.await?, ErrorCode::BodyTooLarge);
    intruder.send(&send(own, 9, "   ")).await?;
    let rejected = intruder.until(|f| match f {
        ServerFrame::Rejected(r) => Some(r.code),
        _ => None,
    });
    assert_eq!(rejected.await?, ErrorCode::Malformed);

    // Garbage mid-connection: an error, a reason, a close.
    intruder.send_bytes(vec![0x05, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).await?;
    let (frames, code) = intruder.drain_to_close().await?;
    assert!(frames.iter().any(|f| matches!(f, ServerFrame::Error(e) if e.code == ErrorCode::Malformed)), "{frames:?}");
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, ServerFrame::Closing(Closing { reason: CloseReason::ProtocolViolation, .. }))),
        "{frames:?}"
    );
    assert_eq!(code, Some(1008));

    // The healthy pair carries on, and nothing of the above was stored.
    visitor.send(conversation, Body::Text("after".into())).await?;
    let got = collect(&mut agent_events, 2, |e| message(e).filter(|m| m.conversation == conversation)).await?;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["before", "after"]);
    assert_eq!(got[1].seq.0, 2, "nothing else was stored in the conversation");
    // What the store holds, asked after every rejection came back: the
    // intruder's own conversation has no message (it may not even exist,
    // since nothing was ever stored in it).
    let stored = reqwest::Client::new()
        .get(format!("{}/api/conversations/{}/messages", relay.http_url(), own.0))
        .bearer_auth(&token)
        .send()
        .await?;
    let status = stored.status().as_u16();
    let body = stored.text().await?;
    assert!(
        status == 404 || (status == 200 && body == "[]"),
        "the intruder's rejected sends were stored: {status} {body}"
    );
    drop(agent);

    // Decoding is strict about what follows a frame, too.
    let mut bytes = codec::encode(&send(own, 10, "ok"));
    bytes.push(0);
    assert!(codec::decode::<ClientFrame>(&bytes, &DEFAULT_LIMITS).is_err());
    Ok(())
}
