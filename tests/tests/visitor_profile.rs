//! What a visitor's host reports (pages, signed identity, attributes)
//! reaches the site's agents, and visitors learn whether an agent is online.

use anyhow::{Context, Result};
use kefu_protocol::frame::{AgentStatus, Attribute, Identify, Visit, VisitorProfile};
use kefu_sdk::{Client, Event, Events};
use kefu_tests::{Relay, collect};

async fn site_secret(relay: &Relay, token: &str) -> Result<String> {
    let site: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/site", relay.http_url()))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(site["identity_secret"].as_str().context("admins see the identity secret")?.to_owned())
}

fn hmac_hex(secret: &str, user_id: &str) -> String {
    // Computed the way a site's backend would, with a tool of its own:
    // here the openssl command line, so the relay's code is not checking
    // itself.
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf '%s' '{user_id}' | openssl dgst -sha256 -hmac '{secret}'"))
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&output.stdout);
    text.rsplit(' ').next().unwrap_or_default().trim().to_owned()
}

async fn next_profile(events: &mut Events, pick: impl Fn(&VisitorProfile) -> bool) -> Result<VisitorProfile> {
    Ok(collect(events, 1, |event| match event {
        Event::Visitor(profile) if pick(&profile) => Some(profile),
        _ => None,
    })
    .await?
    .remove(0))
}

/// A visitor's first message, which stores it with what it reported.
async fn first_line(visitor: &Client) -> Result<()> {
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, kefu_sdk::Body::Text("hi".into())).await?;
    Ok(())
}

#[tokio::test]
async fn signed_identity_is_verified_and_a_forged_one_is_not() -> Result<()> {
    let relay = Relay::start().await?;
    let token = relay.admin_token().await?;
    let secret = site_secret(&relay, &token).await?;
    let (_agent, mut agent_events) = Client::agent(relay.ws_url(), &token)?;

    let (honest, _) = Client::visitor(relay.ws_url(), "demo")?;
    honest.identity().await?;
    honest.identify(Identify {
        user_id: "user-42".into(),
        name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
        hash: Some(hmac_hex(&secret, "user-42")),
    })?;
    // Held until the visitor writes, which is when its rows are made.
    first_line(&honest).await?;
    let profile = next_profile(&mut agent_events, |p| p.user_id.as_deref() == Some("user-42")).await?;
    assert!(profile.verified, "a correct hash verifies: {profile:?}");
    assert_eq!(profile.name.as_deref(), Some("Ada"));

    let (forger, _) = Client::visitor(relay.ws_url(), "demo")?;
    forger.identity().await?;
    forger.identify(Identify {
        user_id: "user-7".into(),
        name: Some("Mallory".into()),
        email: None,
        hash: Some(hmac_hex("guessed-secret", "user-7")),
    })?;
    first_line(&forger).await?;
    let profile = next_profile(&mut agent_events, |p| p.user_id.as_deref() == Some("user-7")).await?;
    assert!(!profile.verified, "a wrong hash does not verify: {profile:?}");
    Ok(())
}

#[tokio::test]
async fn pages_and_attributes_reach_agents_even_when_sent_offline() -> Result<()> {
    let relay = Relay::start().await?;
    let token = relay.admin_token().await?;
    let proxy = kefu_tests::Proxy::start(relay.addr()).await?;
    let (_agent, mut agent_events) = Client::agent(relay.ws_url(), &token)?;
    let (visitor, _) = Client::visitor(proxy.ws_url(), "demo")?;
    visitor.identity().await?;

    proxy.offline();
    visitor.wait_link(|link| !matches!(link, kefu_sdk::LinkState::Live)).await?;
    visitor.visit(Visit { url: "https://shop.example/pricing".into(), title: "Pricing".into(), referrer: None })?;
    visitor.set_attributes(vec![Attribute { key: "plan".into(), value: "free".into() }])?;
    visitor.set_attributes(vec![Attribute { key: "plan".into(), value: "pro".into() }])?;
    proxy.online();
    // The visitor has not written yet: what it reported is held, and
    // stored (the later plan winning) with its first line.
    first_line(&visitor).await?;

    let profile = next_profile(&mut agent_events, |p| {
        p.page.as_ref().is_some_and(|page| page.title == "Pricing") && !p.attributes.is_empty()
    })
    .await?;
    assert_eq!(profile.page.as_ref().map(|p| p.url.as_str()), Some("https://shop.example/pricing"));
    assert_eq!(profile.attributes, [Attribute { key: "plan".into(), value: "pro".into() }]);
    Ok(())
}

#[tokio::test]
async fn visitors_are_told_whether_an_agent_is_online() -> Result<()> {
    let relay = Relay::start().await?;
    let availability = |event| match event {
        Event::Availability(a) => Some(a.agents_online),
        _ => None,
    };
    let (_visitor, mut events) = Client::visitor(relay.ws_url(), "demo")?;
    assert_eq!(collect(&mut events, 1, availability).await?, [0]);

    // Connected but Away (the SDK's default, and what a bot that never
    // says otherwise is): nobody will answer, so nobody is counted.
    let (agent, _) = Client::agent(relay.ws_url(), &relay.admin_token().await?)?;
    agent.identity().await?;
    assert_eq!(collect(&mut events, 1, availability).await?, [0], "an Away agent is not someone there");
    let told = |want: u32| {
        move |event| match event {
            Event::Availability(a) if a.agents_online == want => Some(()),
            _ => None,
        }
    };
    agent.set_status(AgentStatus::Online)?;
    collect(&mut events, 1, told(1)).await?;
    agent.set_status(AgentStatus::Away)?;
    collect(&mut events, 1, told(0)).await?;
    agent.set_status(AgentStatus::Online)?;
    collect(&mut events, 1, told(1)).await?;
    agent.stop();
    collect(&mut events, 1, told(0)).await?;
    Ok(())
}
