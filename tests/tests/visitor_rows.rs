//! A visitor's hello stores nothing: its rows (visitor, conversation) are
//! made by its first message, so a flood of hellos costs no rows; and a
//! visitor that reloads before writing keeps its conversation, so what it
//! queued goes where it was promised. The rows are counted in the relay's
//! own SQLite file, read while it runs.

use anyhow::{Result, bail};
use kefu_protocol::frame::{Credentials, ErrorCode, Identity, Ping, ReturningVisitor, Visit};
use kefu_protocol::ids::{ConversationId, SiteKey, VisitorToken};
use kefu_protocol::{ClientFrame, ServerFrame};
use kefu_sdk::{Body, Client, Event, Message, SessionConfig};
use kefu_tests::raw::{Raw, hello};
use kefu_tests::{Relay, collect, message, text};

/// How many visitors and conversations the relay's file holds now.
async fn rows(relay: &Relay) -> Result<(i64, i64)> {
    let url = format!("sqlite://{}?mode=ro", relay.data_dir().join("kefu.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await?;
    let visitors = sqlx::query_scalar("SELECT count(*) FROM visitors").fetch_one(&pool).await?;
    let conversations = sqlx::query_scalar("SELECT count(*) FROM conversations").fetch_one(&pool).await?;
    pool.close().await;
    Ok((visitors, conversations))
}

fn in_conversation(conversation: ConversationId) -> impl FnMut(Event) -> Option<Message> {
    move |event| message(event).filter(|m| m.conversation == conversation)
}

fn visitor_of(identity: &Identity) -> Result<(ConversationId, ReturningVisitor)> {
    let Identity::Visitor { visitor, token, conversation, .. } = identity else { bail!("not a visitor") };
    Ok((*conversation, ReturningVisitor { visitor: *visitor, token: token.clone() }))
}

#[tokio::test]
async fn hellos_store_nothing_until_the_visitor_writes() -> Result<()> {
    let relay = Relay::start().await?;
    let mut conversations = Vec::new();
    for n in 0..40 {
        let (mut raw, welcome) = Raw::visitor(&relay.ws_url(), "demo").await?;
        let (conversation, _) = visitor_of(&welcome.identity)?;
        conversations.push(conversation);
        let visit = Visit { url: format!("https://shop.example/{n}"), title: "Shop".into(), referrer: None };
        raw.send(&ClientFrame::Visit(visit)).await?;
        // Frames are handled in order: the pong says the visit was.
        raw.send(&ClientFrame::Ping(Ping { nonce: n })).await?;
        raw.until(|frame| matches!(frame, ServerFrame::Pong(pong) if pong.nonce == n).then_some(())).await?;
    }
    conversations.sort();
    conversations.dedup();
    assert_eq!(conversations.len(), 40, "each visitor is promised a conversation of its own");
    assert_eq!(rows(&relay).await?, (0, 0), "hellos and page views stored rows");

    let (writer, mut events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = writer.conversation().await?;
    writer.send(conversation, Body::Text("my order is late".into())).await?;
    assert_eq!(rows(&relay).await?, (1, 1), "one visitor wrote: one visitor, one conversation");
    let echoed = collect(&mut events, 1, in_conversation(conversation)).await?;
    assert_eq!(text(&echoed[0]), "my order is late");
    Ok(())
}

#[tokio::test]
async fn a_visitor_that_reloads_before_writing_keeps_its_conversation() -> Result<()> {
    let relay = Relay::start().await?;
    let (first, _) = Client::visitor(relay.ws_url(), "demo")?;
    let (promised, returning) = visitor_of(&first.identity().await?)?;
    first.stop();

    let credentials = Credentials::Visitor { site: SiteKey::new("demo")?, returning: Some(returning.clone()) };
    let (again, _) = Client::connect(relay.ws_url(), credentials.clone(), SessionConfig::default());
    let (conversation, _) = visitor_of(&again.identity().await?)?;
    assert_eq!(conversation, promised, "a reload before writing got another conversation");
    again.send(conversation, Body::Text("written after a reload".into())).await?;
    again.stop();
    assert_eq!(rows(&relay).await?, (1, 1));

    // And once stored, the same again, with its history.
    let (third, mut events) = Client::connect(relay.ws_url(), credentials, SessionConfig::default());
    let (conversation, _) = visitor_of(&third.identity().await?)?;
    assert_eq!(conversation, promised);
    let history = collect(&mut events, 1, in_conversation(conversation)).await?;
    assert_eq!(text(&history[0]), "written after a reload");
    Ok(())
}

#[tokio::test]
async fn a_forged_or_borrowed_visitor_token_is_refused() -> Result<()> {
    let relay = Relay::start().await?;
    let (alice, _) = Client::visitor(relay.ws_url(), "demo")?;
    let (_, alice_returning) = visitor_of(&alice.identity().await?)?;
    let (bob, _) = Client::visitor(relay.ws_url(), "demo")?;
    let (bob_conversation, bob_returning) = visitor_of(&bob.identity().await?)?;

    // Bob's token with Alice's id; Bob's id with a token naming another
    // conversation (his own, plus one) and Bob's signature.
    let mac = bob_returning.token.as_str().rsplit('-').next().unwrap_or_default().to_owned();
    let other_conversation = VisitorToken::new(format!("k1-{}-{mac}", bob_conversation.0 + 1))?;
    let forgeries = [
        ReturningVisitor { visitor: alice_returning.visitor, token: bob_returning.token.clone() },
        ReturningVisitor { visitor: bob_returning.visitor, token: other_conversation },
        ReturningVisitor { visitor: bob_returning.visitor, token: VisitorToken::new("0".repeat(64))? },
    ];
    for (n, returning) in forgeries.into_iter().enumerate() {
        let mut raw = Raw::connect(&relay.ws_url()).await?;
        raw.send(&hello(Credentials::Visitor { site: SiteKey::new("demo")?, returning: Some(returning) })).await?;
        let (frames, _) = raw.drain_to_close().await?;
        let refused = frames.iter().any(|f| matches!(f, ServerFrame::Error(e) if e.code == ErrorCode::Unauthorized));
        let welcomed = frames.iter().any(|f| matches!(f, ServerFrame::Welcome(_)));
        if !refused || welcomed {
            bail!("forgery {n} was not refused: {frames:?}");
        }
    }
    assert_eq!(rows(&relay).await?, (0, 0));
    Ok(())
}
