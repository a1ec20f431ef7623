//! Markup and script in everything a visitor or an agent can name, in a
//! real Chromium: message text, the visitor's name, email, page and
//! attributes, the agent's name, the site's greeting. The widget and the
//! console must show each as literal text: no element is made of it, no
//! script of it runs, and the browser never even has to block one.
//!
//! Needs `cargo xtask build-web` (the relay serves `target/web`) and
//! Debian's chromium; `cargo xtask test` and `.ci/run` provide both.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kefu_protocol::frame::{Attribute, Author, Body, Change, Identify, Visit};
use kefu_sdk::{Client, Event, Message};
use kefu_tests::browser::Browser;
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Relay, collect, message};
use serde_json::{Value, json};

/// Each payload, if it ever became markup or script, sets a mark on the
/// document element: the DOM is shared with the tests' isolated world,
/// globals are not.
const PAYLOADS: [&str; 6] = [
    r#"<img src=x onerror="document.documentElement.dataset.pwned='img'">"#,
    r#"<script>document.documentElement.dataset.pwned='script'</script>"#,
    r#"<a href="javascript:document.documentElement.dataset.pwned='link'">click me</a>"#,
    r#""><svg onload="document.documentElement.dataset.pwned='svg'">"#,
    r#"<iframe srcdoc="<b>x</b>"></iframe><style>*{display:none}</style>"#,
    "&lt;b&gt;not bold&lt;/b&gt; {{7*7}} ${7*7}",
];

/// Agents' names are at most 100 characters.
const AGENT_NAME: &str = r#"<img src=x onerror="document.documentElement.dataset.pwned='name'">"#;

/// Elements none of the payloads may create, the mark they would set, and
/// any script or style the page's policy had to block.
const INJECTED: &str = "(() => {
    const elements = [...document.querySelectorAll('img[src=\"x\"], [onerror], [onload], a[href^=\"javascript:\"], iframe, script:not([src])')];
    const styles = [...document.querySelectorAll('style')].filter(s => s.textContent.includes('*{display:none}'));
    const found = [...elements, ...styles].map(e => e.outerHTML.slice(0, 80));
    const mark = document.documentElement.dataset.pwned;
    const blocked = document.documentElement.dataset.blocked;
    return { found, mark: mark ?? null, blocked: blocked ?? null };
})()";

/// Records any content-security-policy violation on the document.
const WATCH_CSP: &str = "document.addEventListener('securitypolicyviolation', e => { document.documentElement.dataset.blocked = e.violatedDirective + ' ' + e.sample; }); true";

fn clean(report: &Value) -> Result<()> {
    ensure!(report["found"].as_array().is_some_and(Vec::is_empty), "injected elements: {report}");
    ensure!(report["mark"].is_null(), "a payload ran: {report}");
    ensure!(report["blocked"].is_null(), "the policy had to block something: {report}");
    Ok(())
}

/// Whether the page's text shows every one of `texts` literally.
fn shows_all(texts: &[&str]) -> String {
    let list = serde_json::to_string(texts).unwrap_or_default();
    format!("(() => {{ const t = document.body.innerText; return {list}.every(p => t.includes(p)); }})()")
}

async fn log_in(browser: &Browser) -> Result<()> {
    browser.wait_for(None, "!!document.querySelector('#email')").await?;
    browser.eval("document.querySelector('#email').focus()").await?;
    browser.type_text(ADMIN_EMAIL).await?;
    browser.eval("document.querySelector('#password').focus()").await?;
    browser.type_text(ADMIN_PASSWORD).await?;
    browser.press_enter().await
}

async fn api(relay: &Relay, method: reqwest::Method, path: &str, body: Value) -> Result<Value> {
    let token = relay.admin_token().await?;
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", relay.http_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    ensure!(response.status().is_success(), "{path}: {}", response.status());
    Ok(response.json().await?)
}

fn from_visitor(event: Event) -> Option<Message> {
    message(event).filter(|m| matches!(m.author, Author::Visitor(_)))
}

#[tokio::test]
async fn markup_in_names_attributes_and_messages_stays_text_in_the_widget_and_the_console() -> Result<()> {
    let relay = Relay::start().await?;
    // The admin's name and the site's greeting carry markup too.
    let me = api(&relay, reqwest::Method::GET, "/api/me", Value::Null).await?;
    let admin_id = me["agent"]["id"].as_u64().context("admin id")?;
    api(&relay, reqwest::Method::PATCH, &format!("/api/agents/{admin_id}"), json!({ "name": AGENT_NAME })).await?;
    api(&relay, reqwest::Method::PUT, "/api/site", json!({ "greeting": PAYLOADS[0] })).await?;

    // The console, watching for blocked scripts from the start.
    let console = Browser::start().await?;
    console.goto(&format!("{}/console", relay.http_url())).await?;
    console.eval(WATCH_CSP).await?;
    log_in(&console).await?;
    console.wait_for(None, "document.querySelector('.team')?.textContent.includes('(you)')").await?;

    // A visitor whose every field is markup.
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.identify(Identify {
        user_id: PAYLOADS[3].into(),
        name: Some(PAYLOADS[0].into()),
        email: Some(PAYLOADS[2].into()),
        hash: None,
    })?;
    visitor.visit(Visit {
        url: "javascript:document.documentElement.dataset.pwned='url'".into(),
        title: PAYLOADS[1].into(),
        referrer: Some(PAYLOADS[4].into()),
    })?;
    visitor.set_attributes(vec![Attribute { key: PAYLOADS[1].into(), value: PAYLOADS[3].into() }])?;
    for payload in PAYLOADS {
        visitor.send(conversation, Body::Text(payload.into())).await?;
    }
    let (agent, mut agent_events) = Client::agent(relay.ws_url(), &relay.admin_token().await?)?;
    agent.update(conversation, Change::Take)?;

    // The console shows it all as text: the bubbles, the visitor panel,
    // the system line with the agent's name.
    console
        .eval(&format!(
            "[...document.querySelectorAll('.item')].find(e => e.textContent.includes({:?}))?.click()",
            PAYLOADS[5]
        ))
        .await?;
    console.wait_for(None, &shows_all(&PAYLOADS)).await.context("console shows the messages literally")?;
    console.wait_for(None, &shows_all(&[AGENT_NAME])).await.context("console shows the agent's name literally")?;
    console
        .wait_for(None, "document.querySelector('.visitor')?.innerText.includes('javascript:')")
        .await
        .context("the visitor panel shows the page")?;
    // Give a late render or a lazy image a moment to act, then look.
    tokio::time::sleep(Duration::from_millis(500)).await;
    clean(&console.eval(INJECTED).await?).context("console")?;
    console.screenshot("hostile-console").await?;

    // The widget, on the demo page: a visitor who types markup, an agent
    // who answers with it; the greeting and the system line carry it too.
    let widget = Browser::start().await?;
    widget.goto(&format!("{}/demo", relay.http_url())).await?;
    widget.eval("Kefu.open()").await?;
    widget.wait_for(Some("/widget"), "!!document.querySelector('textarea')").await?;
    widget.eval_in_frame("/widget", WATCH_CSP).await?;
    widget
        .wait_for(Some("/widget"), "(() => { const t = document.querySelector('textarea'); if (t) t.focus(); return document.activeElement === t; })()")
        .await?;
    widget.type_text(PAYLOADS[1]).await?;
    widget.press_enter().await?;
    let typed = collect(&mut agent_events, 1, |e| from_visitor(e).filter(|m| m.conversation != conversation)).await?;
    let theirs = typed[0].conversation;
    assert_eq!(kefu_tests::text(&typed[0]), PAYLOADS[1], "the typed markup reached the agent as typed");
    agent.update(theirs, Change::Take)?;
    for payload in PAYLOADS {
        agent.send(theirs, Body::Text(payload.into())).await?;
    }
    widget.wait_for(Some("/widget"), &shows_all(&PAYLOADS)).await.context("widget shows the messages literally")?;
    widget.wait_for(Some("/widget"), &shows_all(&[AGENT_NAME])).await.context("widget shows the agent's name")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    clean(&widget.eval_in_frame("/widget", INJECTED).await?).context("widget")?;
    // The host page is untouched too.
    let host = widget.eval("document.documentElement.dataset.pwned ?? null").await?;
    ensure!(host.is_null(), "the host page was reached: {host}");
    widget.screenshot("hostile-widget").await?;
    Ok(())
}
