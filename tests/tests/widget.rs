//! The visitor widget in a real headless Chromium against a real relay:
//! the loader on a host page, the wasm widget in its iframe, an agent on
//! the SDK at the other end.
//!
//! Needs `cargo xtask build-web` (the relay serves `target/web`) and
//! Debian's chromium; `cargo xtask test` and `.ci/run` provide both.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kefu_protocol::frame::{AgentStatus, Author, Body, Change, Credentials, Join, Ping, Pong};
use kefu_protocol::ids::{AgentToken, ConversationId, Seq};
use kefu_protocol::{ClientFrame, ServerFrame};
use kefu_sdk::{Client, Event, Events, Message};
use kefu_tests::browser::Browser;
use kefu_tests::raw::{Next, Raw, hello};
use kefu_tests::{Proxy, Relay, collect, message, text};
use serde_json::Value;

const WIDGET: &str = "/widget";

/// The texts of the chat bubbles in the widget (the greeting included).
const BUBBLES: &str =
    "[...document.querySelectorAll('.kefu-row:not(.kefu-from-system) .kefu-bubble')].map(e => e.textContent)";

/// Bubbles of messages still waiting for the relay.
const PENDING: &str = "document.querySelectorAll('.kefu-mark-sending').length";

async fn agent(relay: &Relay) -> Result<(Client, Events)> {
    Ok(Client::agent(relay.ws_url(), &relay.admin_token().await?)?)
}

/// Hovers and clicks the launcher (bottom right, 56 px, 20 px from the
/// edges), as a visitor would.
async fn click_launcher(browser: &Browser) -> Result<()> {
    let (width, height) = browser.viewport().await?;
    let (x, y) = (width - 48.0, height - 48.0);
    browser.mouse("mouseMoved", x, y).await?;
    browser.click(x, y).await
}

/// Waits for the widget's composer, then types `text` and presses Enter.
async fn type_message(browser: &Browser, text: &str) -> Result<()> {
    browser.wait_for(Some(WIDGET), "(() => { const t = document.querySelector('textarea'); if (t) t.focus(); return !!t && document.activeElement === t; })()").await?;
    browser.type_text(text).await?;
    browser.press_enter().await
}

async fn bubbles(browser: &Browser) -> Result<Vec<String>> {
    let value = browser.eval_in_frame(WIDGET, BUBBLES).await?;
    Ok(value.as_array().into_iter().flatten().filter_map(Value::as_str).map(ToOwned::to_owned).collect())
}

/// Waits until the widget shows `expected` (in this order, each once,
/// among its other bubbles).
async fn wait_for_bubbles(browser: &Browser, expected: &[&str]) -> Result<Vec<String>> {
    let deadline = tokio::time::Instant::now() + kefu_tests::PATIENCE;
    loop {
        let shown = bubbles(browser).await.unwrap_or_default();
        let ours: Vec<&str> = shown.iter().map(String::as_str).filter(|b| expected.contains(b)).collect();
        if ours == expected {
            return Ok(shown);
        }
        ensure!(tokio::time::Instant::now() < deadline, "widget shows {shown:?}, expected {expected:?} in order, once");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn from_visitor(event: Event) -> Option<Message> {
    message(event).filter(|m| matches!(m.author, Author::Visitor(_)))
}

async fn say(agent: &Client, conversation: ConversationId, words: &str) -> Result<()> {
    agent.send(conversation, Body::Text(words.into())).await?;
    Ok(())
}

#[tokio::test]
async fn demo_page_visitor_and_agent_chat() -> Result<()> {
    let relay = Relay::start().await?;
    let (agent, mut agent_events) = agent(&relay).await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/demo", relay.http_url())).await?;
    browser.screenshot("demo-closed").await?;
    click_launcher(&browser).await?;

    type_message(&browser, "Hello from the browser").await?;
    let got = collect(&mut agent_events, 1, from_visitor).await?;
    assert_eq!(text(&got[0]), "Hello from the browser");

    say(&agent, got[0].conversation, "Hi! How can I help?").await?;
    wait_for_bubbles(&browser, &["Hello from the browser", "Hi! How can I help?"]).await?;
    browser.screenshot("widget-chat").await?;
    Ok(())
}

#[tokio::test]
async fn offline_visitor_gets_everything_once_and_its_pending_messages_go_out_once() -> Result<()> {
    let relay = Relay::start().await?;
    let proxy = Proxy::start(relay.addr()).await?;
    let (agent, mut agent_events) = agent(&relay).await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/demo", proxy.http_url())).await?;
    browser.eval("Kefu.open()").await?;
    type_message(&browser, "first").await?;
    let conversation = collect(&mut agent_events, 1, from_visitor).await?[0].conversation;
    wait_for_bubbles(&browser, &["first"]).await?;
    browser.wait_for(Some(WIDGET), &format!("{PENDING} === 0")).await?;

    // Airplane mode: the page hears `offline` and the TCP link is cut.
    browser.set_offline(true).await?;
    proxy.offline();
    for n in 1..=3 {
        say(&agent, conversation, &format!("agent {n}")).await?;
    }
    type_message(&browser, "visitor 1").await?;
    type_message(&browser, "visitor 2").await?;
    browser.wait_for(Some(WIDGET), &format!("{PENDING} === 2")).await.context("both show as pending")?;
    browser.screenshot("widget-offline").await?;

    proxy.online();
    browser.set_offline(false).await?;
    // The agent's three were stored while the visitor was away, the
    // visitor's two when it came back: that is the conversation's order.
    wait_for_bubbles(&browser, &["first", "agent 1", "agent 2", "agent 3", "visitor 1", "visitor 2"]).await?;
    browser.wait_for(Some(WIDGET), &format!("{PENDING} === 0")).await?;

    let got = collect(&mut agent_events, 2, from_visitor).await?;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["visitor 1", "visitor 2"]);
    // The widget sends in order: a copy of either would come before this.
    type_message(&browser, "after the flush").await?;
    let between = kefu_tests::events_until(&mut agent_events, kefu_tests::message_saying("after the flush")).await?;
    let extra: Vec<_> = between.into_iter().filter_map(from_visitor).collect();
    assert!(extra.is_empty(), "the agent got a pending message twice: {extra:?}");
    Ok(())
}

#[tokio::test]
async fn a_reload_keeps_the_visitor_and_the_conversation_with_its_history() -> Result<()> {
    let relay = Relay::start().await?;
    let (agent, mut agent_events) = agent(&relay).await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/demo", relay.http_url())).await?;
    browser.eval("Kefu.open()").await?;
    type_message(&browser, "before reload").await?;
    let conversation = collect(&mut agent_events, 1, from_visitor).await?[0].conversation;
    say(&agent, conversation, "answer before reload").await?;
    wait_for_bubbles(&browser, &["before reload", "answer before reload"]).await?;

    browser.reload().await?;
    browser.eval("Kefu.open()").await?;
    wait_for_bubbles(&browser, &["before reload", "answer before reload"]).await?;
    type_message(&browser, "after reload").await?;
    let after = collect(&mut agent_events, 1, from_visitor).await?;
    assert_eq!(text(&after[0]), "after reload");
    assert_eq!(after[0].conversation, conversation, "same conversation after the reload");
    Ok(())
}

/// The host page hides every element it can reach, blows up fonts and
/// squashes iframes, buttons and divs. (A literal `* { display: none }`
/// also hides `<html>` itself, which blanks the whole page and leaves no
/// room for any embed: even the top layer does not render under a hidden
/// root. Everything below the root is fair game and covered here.)
#[tokio::test]
async fn hostile_host_css_does_not_break_the_widget_and_markup_stays_text() -> Result<()> {
    let relay = Relay::start().await?;
    let (agent, mut agent_events) = agent(&relay).await?;
    let page = kefu_tests::serve_page(format!(
        r#"<!doctype html><html><head><title>Hostile shop</title><style>
          body, body *, html > * {{ display: none !important; }}
          * {{ font-size: 72px !important; line-height: 9 !important; font-family: fantasy !important; }}
          iframe, button, div {{ width: 1px !important; height: 1px !important; opacity: 0 !important; }}
        </style></head><body><h1>Shop</h1>
        <script src="{}/kefu.js" data-site="demo" async></script></body></html>"#,
        relay.http_url()
    ))
    .await?;
    let browser = Browser::start().await?;
    browser.goto(&page).await?;
    browser.wait_for(None, "typeof window.Kefu === 'object' && typeof Kefu.open === 'function'").await?;
    browser.eval("Kefu.open()").await?;
    let visible = "(() => { const t = document.querySelector('textarea'); if (!t) return false; \
                   const r = t.getBoundingClientRect(); return innerWidth >= 300 && innerHeight >= 300 && r.width > 100 && r.height > 10; })()";
    browser.wait_for(Some(WIDGET), visible).await.context("the widget is laid out and usable")?;
    browser.screenshot("widget-hostile-page").await?;

    let markup = r#"<script>document.title="pwned"</script><b>bold?</b>"#;
    type_message(&browser, markup).await?;
    let got = collect(&mut agent_events, 1, from_visitor).await?;
    assert_eq!(text(&got[0]), markup, "sent as typed");
    let reply = r#"<img src=x onerror="document.title='pwned'"> <i>not italic</i>"#;
    say(&agent, got[0].conversation, reply).await?;
    wait_for_bubbles(&browser, &[markup, reply]).await?;
    let elements = browser
        .eval_in_frame(
            WIDGET,
            "document.querySelectorAll('.kefu-log script, .kefu-log img, .kefu-log b, .kefu-log i').length",
        )
        .await?;
    assert_eq!(elements, 0, "messages are text, never markup");
    let title = browser.eval_in_frame(WIDGET, "document.title").await?;
    assert_ne!(title, "pwned");
    Ok(())
}

/// `printf '%s' USER | openssl dgst -sha256 -hmac SECRET`, as a site's
/// backend would compute it with a tool of its own.
fn hmac_hex(secret: &str, user_id: &str) -> Result<String> {
    let output = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().map(|mut stdin| stdin.write_all(user_id.as_bytes())).transpose()?;
            child.wait_with_output()
        })?;
    let text = String::from_utf8(output.stdout)?;
    Ok(text.rsplit(' ').next().context("openssl output")?.trim().to_owned())
}

#[tokio::test]
async fn set_user_with_the_right_hash_is_verified_and_with_a_wrong_one_is_not() -> Result<()> {
    let relay = Relay::start().await?;
    let token = relay.admin_token().await?;
    let site: Value = reqwest::Client::new()
        .get(format!("{}/api/site", relay.http_url()))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let secret = site["identity_secret"].as_str().context("identity secret")?.to_owned();
    let (_agent, mut agent_events) = Client::agent(relay.ws_url(), &token)?;

    for (user, hash, verified) in
        [("user-42", hmac_hex(&secret, "user-42")?, true), ("user-7", hmac_hex("guess", "user-7")?, false)]
    {
        let browser = Browser::start().await?;
        browser.goto(&format!("{}/demo", relay.http_url())).await?;
        browser.eval(&format!("Kefu.setUser({{ id: '{user}', name: 'Test {user}', email: '{user}@example.com', hash: '{hash}' }}); Kefu.open()")).await?;
        // The visitor is stored, identity included, with its first line.
        type_message(&browser, "hello").await?;
        let profile = collect(&mut agent_events, 1, |event| match event {
            Event::Visitor(profile) if profile.user_id.as_deref() == Some(user) => Some(profile),
            _ => None,
        })
        .await?;
        assert_eq!(profile[0].verified, verified, "{user}: {:?}", profile[0]);
        assert_eq!(profile[0].email.as_deref(), Some(format!("{user}@example.com").as_str()));
    }
    Ok(())
}

#[tokio::test]
async fn the_loader_fetches_no_wasm_before_intent() -> Result<()> {
    let relay = Relay::start().await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/demo", relay.http_url())).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = browser.requests();
    assert!(before.iter().any(|url| url.ends_with("/kefu.js")), "{before:?}");
    assert!(
        !before.iter().any(|url| url.ends_with(".wasm") || url.contains("/widget")),
        "nothing heavy before intent: {before:?}"
    );

    // Hovering the launcher is intent: the widget starts loading.
    let (width, height) = browser.viewport().await?;
    browser.mouse("mouseMoved", width - 48.0, height - 48.0).await?;
    let deadline = tokio::time::Instant::now() + kefu_tests::PATIENCE;
    while !browser.requests().iter().any(|url| url.ends_with(".wasm")) {
        ensure!(tokio::time::Instant::now() < deadline, "no wasm after hovering: {:?}", browser.requests());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test]
async fn the_full_page_widget_works_on_a_phone() -> Result<()> {
    let relay = Relay::start().await?;
    let (_agent, mut agent_events) = agent(&relay).await?;
    let browser = Browser::start().await?;
    browser.phone(390, 844).await?;
    browser.goto(&format!("{}/c/demo", relay.http_url())).await?;
    let fits = "(() => { const t = document.querySelector('textarea'); const h = document.querySelector('header'); \
                if (!t || !h) return false; const r = t.getBoundingClientRect(); const top = h.getBoundingClientRect(); \
                return r.bottom <= innerHeight && r.width >= 250 && top.top >= 0 && innerWidth === 390; })()";
    browser.wait_for(None, fits).await.context("composer and header fit the phone screen")?;
    browser.eval("(() => { const t = document.querySelector('textarea'); t.focus(); return true })()").await?;
    browser.type_text("from my phone").await?;
    browser.press_enter().await?;
    let got = collect(&mut agent_events, 1, from_visitor).await?;
    assert_eq!(text(&got[0]), "from my phone");
    browser.screenshot("widget-phone").await?;
    Ok(())
}

#[tokio::test]
async fn a_message_typed_offline_survives_a_reload_and_is_stored_once() -> Result<()> {
    let relay = Relay::start().await?;
    let proxy = Proxy::start(relay.addr()).await?;
    let (_agent, mut agent_events) = agent(&relay).await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/demo", proxy.http_url())).await?;
    browser.eval("Kefu.open()").await?;
    type_message(&browser, "first").await?;
    collect(&mut agent_events, 1, from_visitor).await?;
    // Stored is not yet acknowledged: wait for the widget's own mark.
    browser.wait_for(Some(WIDGET), &format!("{PENDING} === 0")).await?;

    // The chat link is down (pages still load): the message waits.
    proxy.block_websockets(true);
    type_message(&browser, "typed while the link was down").await?;
    browser.wait_for(Some(WIDGET), &format!("{PENDING} === 1")).await?;
    // Reloaded while the link is still down, the page shows it as pending
    // again: it came back from the widget's storage, not from the relay.
    browser.reload().await?;
    browser.eval("Kefu.open()").await?;
    browser.wait_for(Some(WIDGET), &format!("{PENDING} === 1")).await.context("pending after the reload")?;
    browser.screenshot("widget-pending-after-reload").await?;
    proxy.block_websockets(false);
    wait_for_bubbles(&browser, &["first", "typed while the link was down"]).await?;
    browser.wait_for(Some(WIDGET), &format!("{PENDING} === 0")).await?;

    let got = collect(&mut agent_events, 1, from_visitor).await?;
    assert_eq!(text(&got[0]), "typed while the link was down");
    // The widget sends in order: a second copy would come before this.
    type_message(&browser, "after the reload").await?;
    let between = kefu_tests::events_until(&mut agent_events, kefu_tests::message_saying("after the reload")).await?;
    let extra: Vec<_> = between.into_iter().filter_map(from_visitor).collect();
    assert!(extra.is_empty(), "stored twice: {extra:?}");
    Ok(())
}

#[tokio::test]
async fn the_widget_shows_who_joined_and_the_close_but_never_a_private_note() -> Result<()> {
    let relay = Relay::start().await?;
    let (agent, mut agent_events) = agent(&relay).await?;
    // Online: the visitor's first message is assigned to this agent.
    agent.set_status(AgentStatus::Online)?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/demo", relay.http_url())).await?;
    browser.eval("Kefu.open()").await?;
    type_message(&browser, "Hi there").await?;
    let conversation = collect(&mut agent_events, 1, from_visitor).await?[0].conversation;
    browser
        .wait_for(
            Some(WIDGET),
            "[...document.querySelectorAll('.kefu-from-system')].some(r => r.textContent === 'Admin joined the chat')",
        )
        .await?;

    agent.send(conversation, Body::Note("internal: refund is approved".into())).await?;
    say(&agent, conversation, "Hello from support").await?;
    wait_for_bubbles(&browser, &["Hi there", "Hello from support"]).await?;
    agent.update(conversation, Change::Close)?;
    browser
        .wait_for(Some(WIDGET), "[...document.querySelectorAll('.kefu-from-system')].some(r => r.textContent === 'The conversation was closed')")
        .await?;
    assert_eq!(browser.eval_in_frame(WIDGET, "document.body.textContent.includes('internal')").await?, false);
    browser.screenshot("widget-system-lines").await?;
    Ok(())
}

/// Every message stored in `conversation`, as the relay keeps it (read by
/// the admin over HTTP), not as any client deduplicated it.
async fn stored_texts(relay: &Relay, conversation: ConversationId) -> Result<Vec<String>> {
    stored_texts_as(relay, &relay.admin_token().await?, conversation).await
}

/// [`stored_texts`] with a token at hand: logins per account are limited.
async fn stored_texts_as(relay: &Relay, token: &str, conversation: ConversationId) -> Result<Vec<String>> {
    let url = format!("{}/api/conversations/{}/messages?limit=100", relay.http_url(), conversation.0);
    let response = reqwest::Client::new().get(url).bearer_auth(token).send().await?.error_for_status()?;
    let messages: Vec<Message> = response.json().await?;
    Ok(messages.iter().map(|m| text(m).to_owned()).filter(|t| !t.is_empty()).collect())
}

/// A page of another origin that frames the widget itself (no loader),
/// claiming its own origin, and writes down everything posted to it.
fn framer_page(relay: &Relay) -> String {
    format!(
        r#"<!doctype html><html><head><title>Somebody else</title></head><body>
        <script>
          window.posted = [];
          addEventListener('message', e => window.posted.push(e.data));
          const frame = document.createElement('iframe');
          frame.style.cssText = 'width:380px;height:600px;border:1px solid #ccc';
          frame.src = '{}/widget?site=demo&embed=1&open=1&origin=' + encodeURIComponent(location.origin);
          document.body.appendChild(frame);
        </script></body></html>"#,
        relay.http_url()
    )
}

#[tokio::test]
async fn a_page_that_frames_the_widget_itself_never_hears_another_pages_visitor() -> Result<()> {
    let relay = Relay::start().await?;
    let (agent, mut agent_events) = agent(&relay).await?;
    let shop = kefu_tests::serve_page(format!(
        r#"<!doctype html><html><head><title>Shop</title></head><body><h1>Shop</h1>
        <script src="{}/kefu.js" data-site="demo" async></script></body></html>"#,
        relay.http_url()
    ))
    .await?;
    let browser = Browser::start().await?;
    browser.goto(&shop).await?;
    browser.wait_for(None, "typeof window.Kefu === 'object' && typeof Kefu.open === 'function'").await?;
    browser.eval("Kefu.open()").await?;
    type_message(&browser, "the shop's visitor").await?;
    let shop_chat = collect(&mut agent_events, 1, from_visitor).await?[0].conversation;
    browser.wait_for(Some(WIDGET), &format!("{PENDING} === 0")).await?;

    // Another page of the same site in the same browser (so the relay's
    // frames share their storage) frames the widget with its own origin.
    let framer = kefu_tests::serve_page(framer_page(&relay)).await?;
    browser.goto(&framer).await?;
    type_message(&browser, "the framer's visitor").await?;
    let framer_chat = collect(&mut agent_events, 1, from_visitor).await?[0].conversation;

    say(&agent, shop_chat, "a secret for the shop's visitor").await?;
    say(&agent, framer_chat, "marker").await?;
    let posted = "window.posted.filter(m => m && m.type === 'message').map(m => m.message.text)";
    browser.wait_for(None, &format!("{posted}.includes('marker')")).await.context("the framer hears its own chat")?;
    let heard: Vec<String> = serde_json::from_value(browser.eval(posted).await?)?;
    browser.screenshot("widget-framed-by-another-page").await?;
    assert!(!heard.iter().any(|t| t.contains("secret")), "the framer heard the shop's chat: {heard:?}");
    assert_ne!(framer_chat, shop_chat, "the framer came back as the shop's visitor");
    Ok(())
}

/// What the full page (`/c/demo`) shows: its bubbles, and how many wait.
const PAGE_BUBBLES: &str =
    "[...document.querySelectorAll('.kefu-row:not(.kefu-from-system) .kefu-bubble')].map(e => e.textContent)";

#[tokio::test]
async fn reopened_offline_the_full_page_shows_the_chat_and_sends_what_was_typed_once() -> Result<()> {
    let relay = Relay::start().await?;
    let proxy = Proxy::start(relay.addr()).await?;
    let (agent, mut agent_events) = agent(&relay).await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/c/demo", proxy.http_url())).await?;
    // The service worker runs this page and keeps a copy of it.
    browser.wait_for(None, "!!navigator.serviceWorker.controller").await.context("a service worker")?;
    let kept = "(async () => { for (const k of await caches.keys()) { \
                if (await (await caches.open(k)).match(location.href, { ignoreVary: true })) return true; } return false; })()";
    browser.wait_for(None, kept).await.context("the page is kept")?;

    browser.eval("document.querySelector('textarea').focus()").await?;
    browser.type_text("before the flight").await?;
    browser.press_enter().await?;
    let conversation = collect(&mut agent_events, 1, from_visitor).await?[0].conversation;
    say(&agent, conversation, "have a good flight").await?;
    browser.wait_for(None, &format!("{PAGE_BUBBLES}.includes('have a good flight')")).await?;
    browser.wait_for(None, &format!("{PENDING} === 0")).await?;

    // Airplane mode, and the relay out of reach for the worker too.
    browser.set_offline(true).await?;
    proxy.offline();
    browser.reload().await?;
    let history =
        format!("{PAGE_BUBBLES}.includes('before the flight') && {PAGE_BUBBLES}.includes('have a good flight')");
    browser.wait_for(None, &history).await.context("the chat shows offline")?;
    browser.eval("document.querySelector('textarea').focus()").await?;
    browser.type_text("typed in the air").await?;
    browser.press_enter().await?;
    browser.wait_for(None, &format!("{PENDING} === 1")).await?;
    browser.screenshot("widget-reopened-offline").await?;

    proxy.online();
    browser.set_offline(false).await?;
    browser.wait_for(None, &format!("{PENDING} === 0 && {PAGE_BUBBLES}.includes('typed in the air')")).await?;
    let landed = collect(&mut agent_events, 1, from_visitor).await?;
    assert_eq!(text(&landed[0]), "typed in the air");
    let stored = stored_texts(&relay, conversation).await?;
    assert_eq!(stored, ["before the flight", "have a good flight", "typed in the air"], "each stored once");
    browser.screenshot("widget-back-online").await?;
    Ok(())
}

/// The composer's text, and the counter and notice above it.
const COMPOSER: &str = "(() => ({ length: document.querySelector('textarea').value.length, \
     count: document.querySelector('.kefu-count')?.textContent ?? null, \
     cut: document.querySelector('.kefu-cut')?.textContent ?? null }))()";

#[tokio::test]
async fn a_paste_over_the_limit_is_cut_and_the_visitor_is_told_in_their_language() -> Result<()> {
    let relay = Relay::start().await?;
    let browser = Browser::start().await?;
    for (lang, notice) in
        [("en", "cut to 4,000 characters"), ("zh-CN", "已截断为 4000 个字符"), ("zh-TW", "已截斷為 4000 個字元")]
    {
        browser.goto(&format!("{}/c/demo?lang={lang}", relay.http_url())).await?;
        browser.wait_for(None, "(() => { const t = document.querySelector('textarea'); if (t) t.focus(); return !!t && document.activeElement === t; })()").await?;
        browser.type_text(&"x".repeat(3_700)).await?;
        let near = browser.wait_for(None, &format!("{COMPOSER}.count")).await?;
        assert_eq!(near, "3700 / 4000", "{lang}: the counter near the limit");
        assert_eq!(browser.eval(&format!("{COMPOSER}.cut")).await?, Value::Null, "{lang}: nothing cut yet");

        browser.type_text(&"y".repeat(500)).await?;
        let state = browser.wait_for(None, &format!("{COMPOSER}.cut && {COMPOSER}")).await?;
        assert_eq!(state["length"], 4_000, "{lang}: {state}");
        assert_eq!(state["count"], "4000 / 4000");
        assert!(state["cut"].as_str().is_some_and(|cut| cut.contains(notice)), "{lang}: {state}");
        browser.screenshot(&format!("widget-paste-cut-{lang}")).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_burst_over_the_frame_budget_is_stored_and_sent_once_each_in_order() -> Result<()> {
    const BURST: usize = 24;
    // A budget the burst (each message with its typing notices) outruns
    // many times over.
    let relay = Relay::start_with(&["--frames-per-second", "4", "--frame-burst", "6"]).await?;
    let token = relay.admin_token().await?;
    let (agent, mut agent_events) = agent(&relay).await?;

    let browser = Browser::start().await?;
    browser.goto(&format!("{}/c/demo", relay.http_url())).await?;
    browser.wait_for(None, "(() => { const t = document.querySelector('textarea'); if (t) t.focus(); return !!t && document.activeElement === t; })()").await?;
    let burst: Vec<String> = (1..=BURST).map(|n| format!("burst {n}")).collect();
    for words in &burst {
        browser.type_text(words).await?;
        browser.press_enter().await?;
    }
    let conversation = collect(&mut agent_events, 1, from_visitor).await?[0].conversation;
    // What the relay sends an agent, counted raw from the first seq (the
    // replay, then live): no session in between to drop a repeat.
    let mut tap = Raw::connect(&relay.ws_url()).await?;
    tap.send(&hello(Credentials::Agent { token: AgentToken::new(token.clone())? })).await?;
    tap.until(|f| matches!(f, ServerFrame::Welcome(_)).then_some(())).await?;
    tap.send(&ClientFrame::Join(Join { conversation, after: Seq::ZERO })).await?;
    // Read all along, answering the relay's pings, as the burst outlasts
    // the heartbeat deadline.
    let (tapped, mut sent_to_agents) = tokio::sync::mpsc::unbounded_channel();
    let tapping = tokio::spawn(async move {
        loop {
            match tap.next().await? {
                Next::Frame(ServerFrame::Ping(Ping { nonce })) => tap.send(&ClientFrame::Pong(Pong { nonce })).await?,
                Next::Frame(ServerFrame::Message(message)) => {
                    if tapped.send(message).is_err() {
                        return anyhow::Ok(());
                    }
                }
                Next::Frame(_) => {}
                Next::Closed(code) => anyhow::bail!("the tap closed ({code:?})"),
            }
        }
    });

    // Every one lands; then a marker from the agent closes the count.
    let deadline = tokio::time::Instant::now() + kefu_tests::PATIENCE * 2;
    let stored = loop {
        let stored = stored_texts_as(&relay, &token, conversation).await?;
        if stored.len() >= BURST || tokio::time::Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stored, burst, "each stored once, in order");
    say(&agent, conversation, "marker").await?;
    let mut sent = Vec::new();
    loop {
        let next = tokio::time::timeout(kefu_tests::PATIENCE, sent_to_agents.recv()).await;
        let Some(frame) = next.context("no marker from the tap in time")? else {
            return Err(tapping.await?.err().context("the tap stopped")?);
        };
        if frame.conversation != conversation {
            continue;
        }
        if text(&frame) == "marker" {
            break;
        }
        sent.push((frame.seq, text(&frame).to_owned()));
    }
    let seqs: Vec<u64> = sent.iter().map(|(seq, _)| seq.0).collect();
    let texts: Vec<&str> = sent.iter().map(|(_, words)| words.as_str()).collect();
    assert_eq!(texts, burst, "agents were sent each once, in order");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in seq order: {seqs:?}");
    browser.wait_for(None, &format!("{PENDING} === 0")).await.context("nothing left pending in the widget")?;
    Ok(())
}
