//! The SDK reaches a relay over TLS, as every real deployment serves it:
//! `https://` for its HTTP calls and `wss://` for the chat, through a
//! TLS-terminating proxy whose certificate only the CA made for the test
//! vouches for.

use anyhow::{Context, Result};
use kefu_protocol::frame::{Credentials, Identity};
use kefu_protocol::ids::{AgentToken, SiteKey};
use kefu_sdk::{Body, Client, LinkState, SessionConfig, Tls};
use kefu_tests::tls::TlsProxy;
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, PATIENCE, Relay, collect, message, text};

#[tokio::test]
async fn the_sdk_logs_in_and_chats_over_https_and_wss_with_a_custom_ca() -> Result<()> {
    let relay = Relay::start().await?;
    let proxy = TlsProxy::start(relay.addr()).await?;
    let tls = Tls::with_root_certificates_pem(proxy.ca_pem().as_bytes())?;

    let login = kefu_sdk::login_with_tls(&proxy.https_url(), ADMIN_EMAIL, ADMIN_PASSWORD, &tls).await?;
    let agent_credentials = Credentials::Agent { token: AgentToken::new(&login.token)? };
    let agent_config = SessionConfig { auto_join: true, ..SessionConfig::default() };
    let (agent, mut agent_events) =
        Client::connect_with_tls(proxy.wss_url(), agent_credentials, agent_config, tls.clone());
    // Bounded: a wss:// link that never comes up keeps retrying.
    let identity = tokio::time::timeout(PATIENCE, agent.identity()).await.context("no welcome over wss://")??;
    assert!(matches!(identity, Identity::Agent { .. }));

    let visitor_credentials = Credentials::Visitor { site: SiteKey::new("demo")?, returning: None };
    let (visitor, _) = Client::connect_with_tls(proxy.wss_url(), visitor_credentials, SessionConfig::default(), tls);
    let conversation = visitor.conversation().await?;
    let accepted = visitor.send(conversation, Body::Text("hello over TLS".into())).await?;
    assert_eq!(accepted.conversation, conversation);

    let got = collect(&mut agent_events, 1, |event| message(event).filter(|m| m.conversation == conversation)).await?;
    assert_eq!(text(&got[0]), "hello over TLS");
    Ok(())
}

#[tokio::test]
async fn a_certificate_the_sdk_does_not_trust_is_refused() -> Result<()> {
    let relay = Relay::start().await?;
    let proxy = TlsProxy::start(relay.addr()).await?;

    // Only the public web's roots: the test CA is not among them.
    let refused = kefu_sdk::login(&proxy.https_url(), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let error = refused.err().map(|e| format!("{e:?}")).unwrap_or_default();
    assert!(error.contains("certificate") || error.contains("Certificate"), "login must fail on TLS: {error}");

    let (visitor, _) = Client::visitor(proxy.wss_url(), "demo")?;
    let waiting = tokio::time::timeout(
        PATIENCE,
        visitor.wait_link(|link| matches!(link, LinkState::Waiting { attempt, .. } if *attempt >= 2)),
    )
    .await??;
    assert!(matches!(waiting, LinkState::Waiting { .. }), "{waiting:?}");
    // The same proxy lets a client that trusts its CA in (the test above),
    // so it is the certificate check that keeps this one out.
    Ok(())
}
