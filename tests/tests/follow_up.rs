//! A visitor who left gets the answer by mail and comes back to the same
//! conversation: resume links on a phone in a real Chromium, their
//! refusals, the unsubscribe link, and the site's batch delay, against a
//! real relay.
//!
//! Needs `cargo xtask build-web` (the relay serves `target/web`) and
//! Debian's chromium.

use anyhow::{Context, Result, ensure};
use kefu_protocol::frame::{Attribute, Author, Body, Identity};
use kefu_protocol::ids::{ConversationId, SiteId, SiteKey, Timestamp, VisitorId};
use kefu_relay::auth::mail_link;
use kefu_relay::store::Store;
use kefu_sdk::{Client, Events, Message};
use kefu_tests::browser::Browser;
use kefu_tests::{Relay, collect, message, text};
use serde_json::Value;

/// The chat bubbles of the full-page widget (the greeting included).
const BUBBLES: &str =
    "[...document.querySelectorAll('.kefu-row:not(.kefu-from-system) .kefu-bubble')].map(e => e.textContent)";

fn from_visitor(event: kefu_sdk::Event) -> Option<Message> {
    message(event).filter(|m| matches!(m.author, Author::Visitor(_)))
}

/// A visitor that wrote `words`, gave its email, and left; its ids.
async fn visitor_who_left(
    relay: &Relay,
    agent_events: &mut Events,
    words: &str,
) -> Result<(VisitorId, ConversationId)> {
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let Identity::Visitor { visitor: id, .. } = visitor.identity().await? else { anyhow::bail!("a visitor identity") };
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text(words.into())).await?;
    collect(agent_events, 1, from_visitor).await?;
    visitor.set_attributes(vec![Attribute { key: "email".into(), value: "visitor@example.com".into() }])?;
    visitor.stop();
    Ok((id, conversation))
}

/// The relay's own store, opened beside it, for what only a mail would
/// otherwise carry: tokens signed with the site's key.
async fn site_key_of(relay: &Relay, site: &str) -> Result<(SiteId, String)> {
    let store = Store::open(relay.data_dir()).await?;
    let site = store.site_by_key(&SiteKey::new(site)?).await?.context("the site")?;
    let key = store.visitor_token_key(site.id).await?;
    store.close().await;
    Ok((site.id, key))
}

fn in_a_month() -> Timestamp {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp(u64::try_from(now.as_millis()).unwrap_or(u64::MAX) + 30 * 24 * 3600 * 1000)
}

async fn bubbles(browser: &Browser) -> Result<Vec<String>> {
    let value = browser.eval(BUBBLES).await?;
    Ok(value.as_array().into_iter().flatten().filter_map(Value::as_str).map(ToOwned::to_owned).collect())
}

/// What the chat page was given for a resume link.
async fn resume_meta(relay: &Relay, site: &str, token: &str) -> Result<(String, String)> {
    let response = reqwest::get(format!("{}/c/{site}?resume={token}", relay.http_url())).await?.error_for_status()?;
    let cache = response.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let page = response.text().await?;
    let (_, rest) = page.split_once("<meta name=\"kefu-resume\" content=\"").context("a kefu-resume meta")?;
    let content = rest.split_once('"').context("the meta's end")?.0.to_owned();
    Ok((content, cache))
}

#[tokio::test]
async fn a_resume_link_brings_the_visitor_back_to_its_conversation_on_a_phone() -> Result<()> {
    let relay = Relay::start().await?;
    let (agent, mut agent_events) = Client::agent(relay.ws_url(), &relay.admin_token().await?)?;
    let (visitor, conversation) = visitor_who_left(&relay, &mut agent_events, "Is it in stock? (23:00)").await?;
    agent.send(conversation, Body::Text("Yes, two left. (09:00)".into())).await?;

    let (site, key) = site_key_of(&relay, "demo").await?;
    let token = mail_link::mint_resume(&key, site, visitor, in_a_month());
    let browser = Browser::start().await?;
    browser.phone(390, 844).await?;
    browser.goto(&format!("{}/c/demo?resume={token}", relay.http_url())).await?;
    let history = format!(
        "(() => {{ const b = {BUBBLES}; return b.includes('Is it in stock? (23:00)') && b.includes('Yes, two left. (09:00)'); }})()"
    );
    browser.wait_for(None, &history).await.context("the resumed page shows the whole conversation")?;
    let url = browser.eval("location.href").await?;
    ensure!(!url.as_str().unwrap_or_default().contains("resume="), "the token stays out of the address bar: {url}");

    browser.eval("(() => { const t = document.querySelector('textarea'); t.focus(); return true })()").await?;
    browser.type_text("Great, I'll take both").await?;
    browser.press_enter().await?;
    let got = collect(&mut agent_events, 1, from_visitor).await?;
    assert_eq!(text(&got[0]), "Great, I'll take both");
    assert_eq!(got[0].conversation, conversation, "the same conversation");
    assert_eq!(got[0].author, Author::Visitor(visitor), "as the same visitor");
    browser.screenshot("follow-up-resumed-phone").await?;
    Ok(())
}

#[tokio::test]
async fn expired_forged_and_other_sites_resume_links_are_refused() -> Result<()> {
    let relay = Relay::start().await?;
    let (_agent, mut agent_events) = Client::agent(relay.ws_url(), &relay.admin_token().await?)?;
    let (visitor, _) = visitor_who_left(&relay, &mut agent_events, "private words").await?;
    let (site, key) = site_key_of(&relay, "demo").await?;

    let good = mail_link::mint_resume(&key, site, visitor, in_a_month());
    let (content, cache) = resume_meta(&relay, "demo", &good).await?;
    ensure!(content.starts_with(&format!("v1 {} ", visitor.0)), "a good link resumes: {content}");
    assert_eq!(cache, "no-store", "a page with a visitor token is never cached");

    let expired = mail_link::mint_resume(&key, site, visitor, Timestamp(1));
    assert_eq!(resume_meta(&relay, "demo", &expired).await?.0, "expired");
    let forged = format!("{}0", &good[..good.len() - 1]);
    let forged = if forged == good { format!("{}1", &good[..good.len() - 1]) } else { forged };
    assert_eq!(resume_meta(&relay, "demo", &forged).await?.0, "invalid");
    assert_eq!(resume_meta(&relay, "demo", "r1-1-2-3").await?.0, "invalid");
    let store = Store::open(relay.data_dir()).await?;
    store.create_site(&SiteKey::new("other")?, "Other").await?;
    store.close().await;
    assert_eq!(resume_meta(&relay, "other", &good).await?.0, "invalid", "another site's link");

    // In the browser: a clear message and a fresh chat, never the old one.
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/c/demo?resume={expired}", relay.http_url())).await?;
    browser
        .wait_for(None, "[...document.querySelectorAll('.kefu-banner')].some(b => b.textContent.includes('expired'))")
        .await
        .context("the page says the link expired")?;
    browser.wait_for(None, "!!document.querySelector('textarea')").await?;
    let shown = bubbles(&browser).await?;
    ensure!(!shown.iter().any(|b| b == "private words"), "a refused link shows nobody's history: {shown:?}");
    browser.screenshot("follow-up-resume-refused").await?;
    Ok(())
}

#[tokio::test]
async fn the_unsubscribe_link_asks_on_get_and_unsubscribes_on_post() -> Result<()> {
    let relay = Relay::start().await?;
    let (_agent, mut agent_events) = Client::agent(relay.ws_url(), &relay.admin_token().await?)?;
    let (visitor, _) = visitor_who_left(&relay, &mut agent_events, "hello").await?;
    let (site, key) = site_key_of(&relay, "demo").await?;
    let link = format!(
        "{}/api/unsubscribe?site=demo&token={}",
        relay.http_url(),
        mail_link::mint_unsubscribe(&key, site, visitor)
    );
    let unsubscribed = || async {
        let store = Store::open(relay.data_dir()).await?;
        let answer = store.visitor_unsubscribed(site, visitor).await?;
        store.close().await;
        anyhow::Ok(answer)
    };
    let http = reqwest::Client::new();

    let page = http.get(&link).send().await?;
    assert_eq!(page.status(), 200);
    let page = page.text().await?;
    ensure!(page.contains("<form method=\"post\">"), "a confirmation button: {page}");
    ensure!(!unsubscribed().await?, "a GET (a mail scanner) unsubscribes nobody");

    let forged = link.replace("token=u1-", "token=u1-9");
    let refused = http.post(&forged).body("List-Unsubscribe=One-Click").send().await?;
    assert_eq!(refused.status(), 400);
    ensure!(refused.text().await?.contains("not valid"), "a bad link says so");
    ensure!(!unsubscribed().await?, "a bad link changes nothing");

    let done = http
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await?;
    assert_eq!(done.status(), 200);
    ensure!(done.text().await?.contains("unsubscribed"), "the page confirms");
    ensure!(unsubscribed().await?, "the one-click POST unsubscribes");
    let again = http.post(&link).body("List-Unsubscribe=One-Click").send().await?;
    assert_eq!(again.status(), 200, "twice is fine");
    Ok(())
}

#[tokio::test]
async fn an_admin_sets_the_batch_delay_and_a_bad_one_is_refused() -> Result<()> {
    let relay = Relay::start().await?;
    let token = relay.admin_token().await?;
    let url = format!("{}/api/site/follow-up", relay.http_url());
    let http = reqwest::Client::new();
    let shown: Value = http.get(&url).bearer_auth(&token).send().await?.error_for_status()?.json().await?;
    assert_eq!(shown["batch_delay_secs"], 120, "two minutes unless set");

    let bad =
        http.put(&url).bearer_auth(&token).json(&serde_json::json!({ "batch_delay_secs": 86_401 })).send().await?;
    assert_eq!(bad.status(), 400);
    let error: Value = bad.json().await?;
    ensure!(error["error"].as_str().unwrap_or_default().contains("at most 86400"), "{error}");
    let garbage =
        http.put(&url).bearer_auth(&token).json(&serde_json::json!({ "batch_delay_secs": "soon" })).send().await?;
    assert_eq!(garbage.status(), 400);

    http.put(&url)
        .bearer_auth(&token)
        .json(&serde_json::json!({ "batch_delay_secs": 1 }))
        .send()
        .await?
        .error_for_status()?;
    let shown: Value = http.get(&url).bearer_auth(&token).send().await?.error_for_status()?.json().await?;
    assert_eq!(shown["batch_delay_secs"], 1);
    let anonymous = http.put(&url).json(&serde_json::json!({ "batch_delay_secs": 5 })).send().await?;
    assert_eq!(anonymous.status(), 401);
    Ok(())
}
