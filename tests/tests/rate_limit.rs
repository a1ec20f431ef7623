//! A send over the connection's frame budget is deferred, never lost: the
//! relay answers `Deferred` with how long to wait, takes no later send of
//! the connection before the deferred one comes back, and the client's
//! session resends them all, in order, after the wait. Every message is
//! stored once, in the order typed.

use anyhow::{Context, Result};
use futures_util::future::try_join_all;
use kefu_protocol::ClientFrame;
use kefu_protocol::ServerFrame;
use kefu_protocol::frame::{Body, Deferred, Identity, Message, Ping, Pong, Send};
use kefu_protocol::ids::{ClientMessageId, ConversationId};
use kefu_sdk::Client;
use kefu_tests::raw::{Next, Raw};
use kefu_tests::{PATIENCE, Relay};

/// Five frames at once, then five a second: a burst of twenty sends is
/// well over it.
const LOW_BUDGET: [&str; 4] = ["--frames-per-second", "5", "--frame-burst", "5"];

/// Every message stored in `conversation`, read by the admin over HTTP.
async fn stored(relay: &Relay, conversation: ConversationId) -> Result<Vec<Message>> {
    let token = relay.admin_token().await?;
    let url = format!("{}/api/conversations/{}/messages?limit=100", relay.http_url(), conversation.0);
    let response = reqwest::Client::new().get(url).bearer_auth(token).send().await?.error_for_status()?;
    Ok(response.json().await?)
}

fn texts(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match &m.body {
            Body::Text(text) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_sdk_burst_over_the_budget_is_stored_once_in_order() -> Result<()> {
    let relay = Relay::start_with(&LOW_BUDGET).await?;
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;

    // Twenty sends in flight at once; each future resolves only when the
    // relay has stored its message. Before the fix the sixth came back
    // `Rejected` (rate limited) and was gone.
    let typed: Vec<String> = (0..20).map(|n| format!("burst {n}")).collect();
    let sends = typed.iter().map(|text| visitor.send(conversation, Body::Text(text.clone())));
    let accepted = tokio::time::timeout(PATIENCE, try_join_all(sends))
        .await
        .context("not every send was stored: a send the relay deferred was dropped")??;
    let seqs: Vec<_> = accepted.iter().map(|a| a.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "accepted in the order sent: {seqs:?}");

    assert_eq!(texts(&stored(&relay, conversation).await?), typed, "each stored once, in the order typed");
    Ok(())
}

#[tokio::test]
async fn the_relay_defers_one_send_sets_the_rest_aside_and_takes_them_back_in_order() -> Result<()> {
    let relay = Relay::start_with(&LOW_BUDGET).await?;
    let (mut raw, welcome) = Raw::visitor(&relay.ws_url(), "demo").await?;
    let Identity::Visitor { conversation, .. } = welcome.identity else { anyhow::bail!("not a visitor") };
    let send = |n: u128| {
        ClientFrame::Send(Send { conversation, client_id: ClientMessageId(n), body: Body::Text(format!("m{n}")) })
    };

    // Five sends fit the burst; the sixth is over it.
    for n in 1..=8 {
        raw.send(&send(n)).await?;
    }
    // Refusals are answered at once, acceptances after the commit: read
    // to a marker (a ping, answered with a pong, or refused with an error
    // if the budget has not refilled yet), which follows the deferral,
    // then on until every send before the deferred one is accepted.
    raw.send(&ClientFrame::Ping(Ping { nonce: 77 })).await?;
    let mut answers = Vec::new();
    let mut marker_seen = false;
    loop {
        let deferred = answers.iter().find_map(|f| match f {
            ServerFrame::Deferred(d) => Some(*d),
            _ => None,
        });
        let accepted = answers.iter().filter(|f| matches!(f, ServerFrame::Accepted(_))).count() as u128;
        if let Some(deferred) = deferred
            && marker_seen
            && accepted + 1 == deferred.client_id.0
        {
            break;
        }
        match raw.next().await? {
            Next::Frame(ServerFrame::Pong(Pong { nonce: 77 }) | ServerFrame::Error(_)) => marker_seen = true,
            Next::Frame(ServerFrame::Ping(_)) => {}
            Next::Frame(frame) => answers.push(frame),
            Next::Closed(code) => anyhow::bail!("closed ({code:?}) before the marker"),
        }
    }
    let accepted: Vec<_> = answers
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Accepted(a) => Some(a.client_id.0),
            _ => None,
        })
        .collect();
    let deferred: Vec<Deferred> = answers
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Deferred(d) => Some(*d),
            _ => None,
        })
        .collect();
    let first_deferred = accepted.len() as u128 + 1;
    assert!(first_deferred <= 8, "some send is over the budget: {answers:?}");
    assert_eq!(accepted, (1..first_deferred).collect::<Vec<_>>(), "{answers:?}");
    assert_eq!(deferred.len(), 1, "one send is deferred, the later ones set aside unanswered: {answers:?}");
    assert_eq!(deferred[0].client_id, ClientMessageId(first_deferred));
    assert!(deferred[0].retry_after_ms > 0, "{:?}", deferred[0]);
    let send_answers = answers
        .iter()
        .filter(|f| matches!(f, ServerFrame::Accepted(_) | ServerFrame::Deferred(_) | ServerFrame::Rejected(_)));
    assert_eq!(send_answers.count(), accepted.len() + 1, "no other send is answered: {answers:?}");
    assert!(stored(&relay, conversation).await?.len() < 8, "the set-aside sends are not stored");

    // A set-aside send that comes back before the deferred one is set aside
    // again: storing it would put it first.
    tokio::time::sleep(std::time::Duration::from_millis(u64::from(deferred[0].retry_after_ms))).await;
    raw.send(&send(first_deferred + 1)).await?;
    // Then the deferred one and the rest, in order, paced like a session.
    let mut resent = Vec::new();
    for n in first_deferred..=8 {
        raw.send(&send(n)).await?;
        let answer = raw
            .until(|f| match f {
                ServerFrame::Accepted(a) => Some(Ok(a.client_id)),
                ServerFrame::Deferred(d) => Some(Err(*d)),
                _ => None,
            })
            .await?;
        match answer {
            Ok(id) => resent.push(id.0),
            Err(again) => {
                // Over the budget again: wait as told, send the same again.
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(again.retry_after_ms))).await;
                raw.send(&send(n)).await?;
                let id = raw
                    .until(|f| match f {
                        ServerFrame::Accepted(a) => Some(a.client_id),
                        _ => None,
                    })
                    .await?;
                resent.push(id.0);
            }
        }
    }
    assert_eq!(resent, (first_deferred..=8).collect::<Vec<_>>());
    let expected: Vec<String> = (1..=8).map(|n| format!("m{n}")).collect();
    assert_eq!(texts(&stored(&relay, conversation).await?), expected, "each stored once, in order");
    Ok(())
}
