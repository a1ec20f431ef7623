//! Signed identity tokens: a site's backend signs the user id, name and
//! email with an expiry and the site's key; the relay marks the visitor
//! verified only for a token that is signed with the site's secret (or the
//! previous one, during the grace after a rotation), not expired and made
//! for this site. Repeating the same identity writes nothing.

use anyhow::{Context, Result};
use kefu_protocol::frame::{Attribute, Identify, VisitorProfile};
use kefu_sdk::{Client, Event, Events};
use kefu_tests::{Relay, collect};

/// A token made the way a site's backend would, with a tool of its own:
/// Python's hmac and base64 modules, so the relay does not check itself.
fn token(secret: &str, site: &str, user_id: &str, iat_offset: i64, exp_offset: i64) -> String {
    let script = r#"
import base64, hashlib, hmac, json, sys, time
secret, site, user, iat, exp = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
b = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()
now = int(time.time())
claims = {"sub": user, "name": "Ada " + user, "email": user + "@example.com", "iat": now + iat, "exp": now + exp, "aud": site}
signed = b(b'{"alg":"HS256","typ":"JWT"}') + "." + b(json.dumps(claims).encode())
print(signed + "." + b(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()))
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", script, secret, site, user_id, &iat_offset.to_string(), &exp_offset.to_string()])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn signed(token: String) -> Identify {
    Identify { user_id: String::new(), name: None, email: None, hash: Some(token) }
}

async fn site(relay: &Relay, token: &str, method: reqwest::Method, path: &str) -> Result<serde_json::Value> {
    Ok(reqwest::Client::new()
        .request(method, format!("{}{path}", relay.http_url()))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

async fn secret(relay: &Relay, admin: &str) -> Result<String> {
    let site = site(relay, admin, reqwest::Method::GET, "/api/site").await?;
    Ok(site["identity_secret"].as_str().context("admins see the identity secret")?.to_owned())
}

async fn next_profile(events: &mut Events) -> Result<VisitorProfile> {
    Ok(collect(events, 1, |event| match event {
        Event::Visitor(profile) => Some(profile),
        _ => None,
    })
    .await?
    .remove(0))
}

/// A new visitor presents `identify`; returns the profile the agent is sent.
async fn present(relay: &Relay, agent_events: &mut Events, identify: Identify) -> Result<VisitorProfile> {
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    visitor.identity().await?;
    visitor.identify(identify)?;
    // A marker: attributes always change the profile, so a profile comes
    // even when the identity was refused (and so not recorded).
    visitor.set_attributes(vec![Attribute { key: "marker".into(), value: "1".into() }])?;
    // Both are held until the visitor writes, and stored with its rows.
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, kefu_sdk::Body::Text("hi".into())).await?;
    loop {
        let profile = next_profile(agent_events).await?;
        if profile.attributes.iter().any(|a| a.key == "marker") {
            return Ok(profile);
        }
    }
}

#[tokio::test]
async fn a_signed_token_verifies_user_name_and_email_and_bad_ones_do_not() -> Result<()> {
    let relay = Relay::start().await?;
    let admin = relay.admin_token().await?;
    let secret = secret(&relay, &admin).await?;
    let (_agent, mut agent_events) = Client::agent(relay.ws_url(), &admin)?;

    let good = present(&relay, &mut agent_events, signed(token(&secret, "demo", "u1", -10, 600))).await?;
    assert!(good.verified, "{good:?}");
    assert_eq!(good.user_id.as_deref(), Some("u1"));
    assert_eq!(good.name.as_deref(), Some("Ada u1"), "the name comes from the token");
    assert_eq!(good.email.as_deref(), Some("u1@example.com"));
    let view = site(&relay, &admin, reqwest::Method::GET, &format!("/api/visitors/{}", good.visitor.0)).await?;
    assert_eq!(view["profile_signed"], true, "name and email count as verified: {view}");

    for (why, token) in [
        ("expired", token(&secret, "demo", "u2", -700, -100)),
        ("for another site", token(&secret, "other", "u2", -10, 600)),
        ("signed with another secret", token("not-the-secret", "demo", "u2", -10, 600)),
        ("valid for two days", token(&secret, "demo", "u2", -10, 2 * 86_400)),
    ] {
        let refused = present(&relay, &mut agent_events, signed(token)).await?;
        assert!(!refused.verified && refused.user_id.is_none(), "a token {why} verifies nothing: {refused:?}");
    }

    // The plain hash verifies the user id only: name and email stay claims.
    let hash = {
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' 'u3' | openssl dgst -sha256 -hmac '{secret}'"))
            .output()?;
        String::from_utf8_lossy(&output.stdout).rsplit(' ').next().unwrap_or_default().trim().to_owned()
    };
    let claim = Identify { user_id: "u3".into(), name: Some("Claimed".into()), email: None, hash: Some(hash) };
    let hashed = present(&relay, &mut agent_events, claim).await?;
    assert!(hashed.verified);
    let view = site(&relay, &admin, reqwest::Method::GET, &format!("/api/visitors/{}", hashed.visitor.0)).await?;
    assert_eq!(view["profile_signed"], false, "a plain hash signs no name: {view}");
    Ok(())
}

#[tokio::test]
async fn after_a_rotation_the_old_secret_still_verifies_and_the_new_one_does_too() -> Result<()> {
    let relay = Relay::start().await?;
    let admin = relay.admin_token().await?;
    let old = secret(&relay, &admin).await?;
    let rotated = site(&relay, &admin, reqwest::Method::POST, "/api/site/identity-secret").await?;
    let new = rotated["identity_secret"].as_str().context("the new secret")?.to_owned();
    assert_ne!(new, old);
    assert_eq!(secret(&relay, &admin).await?, new);
    let (_agent, mut agent_events) = Client::agent(relay.ws_url(), &admin)?;

    let with_old = present(&relay, &mut agent_events, signed(token(&old, "demo", "u1", -10, 600))).await?;
    assert!(with_old.verified, "the previous secret verifies during the grace period: {with_old:?}");
    let with_new = present(&relay, &mut agent_events, signed(token(&new, "demo", "u2", -10, 600))).await?;
    assert!(with_new.verified, "{with_new:?}");
    Ok(())
}

#[tokio::test]
async fn the_same_identity_again_is_neither_written_nor_announced() -> Result<()> {
    let relay = Relay::start().await?;
    let admin = relay.admin_token().await?;
    let secret = secret(&relay, &admin).await?;
    let (_agent, mut agent_events) = Client::agent(relay.ws_url(), &admin)?;
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    visitor.identity().await?;

    let identify = signed(token(&secret, "demo", "u1", -10, 600));
    visitor.identify(identify.clone())?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, kefu_sdk::Body::Text("hi".into())).await?;
    let first = next_profile(&mut agent_events).await?;
    assert_eq!(first.user_id.as_deref(), Some("u1"));
    // The same again (as the session sends after every reconnect), then a
    // marker: the next profile the agents hear is the marker's.
    visitor.identify(identify)?;
    visitor.set_attributes(vec![Attribute { key: "marker".into(), value: "1".into() }])?;
    let next = next_profile(&mut agent_events).await?;
    assert!(next.attributes.iter().any(|a| a.key == "marker"), "an unchanged identity was announced again: {next:?}");
    Ok(())
}

/// In a phone's webview: the app opens `/c/demo#kefu_user=TOKEN`; the agent
/// hears a verified visitor, the token leaves the address bar, and the
/// app's native handler hears the agent's messages.
#[tokio::test]
async fn a_webview_opens_the_chat_with_a_signed_user_in_the_fragment() -> Result<()> {
    use kefu_tests::browser::Browser;

    let relay = Relay::start().await?;
    let admin = relay.admin_token().await?;
    let secret = secret(&relay, &admin).await?;
    let (agent, mut agent_events) = Client::agent(relay.ws_url(), &admin)?;
    let browser = Browser::start().await?;
    browser.phone(390, 844).await?;
    let token = token(&secret, "demo", "app-user-7", -10, 600);
    browser.goto(&format!("{}/c/demo#kefu_user={token}", relay.http_url())).await?;

    browser.wait_for(None, "location.hash === '' && location.pathname === '/c/demo'").await?;

    // The app's handler (React Native's, here) hears what a parent would.
    browser
        .eval("window.ReactNativeWebView = { postMessage: m => (window.heard = window.heard || []).push(JSON.parse(m)) }; true")
        .await?;
    browser.eval("(() => { const t = document.querySelector('textarea'); t.focus(); return true })()").await?;
    browser.type_text("hello from the app").await?;
    browser.press_enter().await?;
    // The visitor is stored, identity included, with its first line; the
    // profile reaches the agent just before that line.
    let profile = collect(&mut agent_events, 1, |event| match event {
        Event::Visitor(profile) if profile.user_id.as_deref() == Some("app-user-7") => Some(profile),
        _ => None,
    })
    .await?
    .remove(0);
    assert!(profile.verified, "{profile:?}");
    assert_eq!(profile.name.as_deref(), Some("Ada app-user-7"));

    let conversation = collect(&mut agent_events, 1, |event| match event {
        Event::Message(m) if matches!(m.author, kefu_protocol::frame::Author::Visitor(_)) => Some(m.conversation),
        _ => None,
    })
    .await?
    .remove(0);
    agent.send(conversation, kefu_sdk::Body::Text("hello, app".into())).await?;
    browser
        .wait_for(
            None,
            "(window.heard || []).some(m => m.kefu === 1 && m.type === 'message' && m.message.text === 'hello, app')",
        )
        .await?;
    browser.screenshot("widget-webview-signed-user").await?;
    Ok(())
}
