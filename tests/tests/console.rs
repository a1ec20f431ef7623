//! The agent console in a real headless Chromium against a real relay,
//! with visitors on the SDK at the other end.
//!
//! Needs `cargo xtask build-web` (the relay serves `target/web`) and
//! Debian's chromium; `cargo xtask test` and `.ci/run` provide both.

use std::time::Duration;

use anyhow::{Result, ensure};
use kefu_protocol::frame::{Attribute, Author, Body, Identify, ReceiptKind, Visit};
use kefu_sdk::{Client, Event, Message};
use kefu_tests::browser::Browser;
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Proxy, Relay, collect, message, text};
use serde_json::Value;

/// The texts of the message bubbles of the conversation on screen.
const BUBBLES: &str = "[...document.querySelectorAll('.log .bubble')].map(e => e.textContent)";

/// Logs in on the console's login screen with the keyboard.
async fn log_in(browser: &Browser, password: &str) -> Result<()> {
    browser.wait_for(None, "!!document.querySelector('#email')").await?;
    browser.eval("document.querySelector('#email').focus()").await?;
    browser.type_text(ADMIN_EMAIL).await?;
    browser.eval("document.querySelector('#password').focus()").await?;
    browser.type_text(password).await?;
    browser.press_enter().await
}

async fn bubbles(browser: &Browser) -> Result<Vec<String>> {
    let value = browser.eval(BUBBLES).await?;
    Ok(value.as_array().into_iter().flatten().filter_map(Value::as_str).map(ToOwned::to_owned).collect())
}

/// Waits until the conversation on screen shows exactly `expected`.
async fn wait_for_bubbles(browser: &Browser, expected: &[&str]) -> Result<()> {
    let deadline = tokio::time::Instant::now() + kefu_tests::PATIENCE;
    loop {
        let shown = bubbles(browser).await.unwrap_or_default();
        if shown == expected {
            return Ok(());
        }
        ensure!(tokio::time::Instant::now() < deadline, "console shows {shown:?}, expected {expected:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn from_agent(event: Event) -> Option<Message> {
    message(event).filter(|m| matches!(m.author, Author::Agent(_)))
}

#[tokio::test]
async fn console_and_visitor_chat_with_typing_preview_and_read_mark() -> Result<()> {
    let relay = Relay::start().await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/console", relay.http_url())).await?;
    log_in(&browser, ADMIN_PASSWORD).await?;
    browser.wait_for(None, "document.body.textContent.includes('No open conversations')").await?;
    browser.screenshot("console-empty").await?;

    let (visitor, mut events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.identify(Identify {
        user_id: "42".into(),
        name: Some("Ada Lovelace".into()),
        email: Some("ada@example.com".into()),
        hash: None,
    })?;
    visitor.visit(Visit {
        url: "https://shop.example.com/pricing".into(),
        title: "Pricing — Example Shop".into(),
        referrer: None,
    })?;
    visitor.set_attributes(vec![Attribute { key: "plan".into(), value: "pro".into() }])?;
    let sent = visitor.send(conversation, Body::Text("Hello, is anyone there?".into())).await?;

    // In the list, on screen (the only conversation is opened by itself),
    // and the visitor is told it was read.
    browser
        .wait_for(
            None,
            "[...document.querySelectorAll('.item')].some(e => e.textContent.includes('Hello, is anyone there?'))",
        )
        .await?;
    wait_for_bubbles(&browser, &["Hello, is anyone there?"]).await?;
    let read = collect(&mut events, 1, |event| match event {
        Event::Receipt(receipt) if receipt.kind == ReceiptKind::Read && receipt.up_to >= sent.seq => Some(receipt),
        _ => None,
    })
    .await?;
    assert!(matches!(read[0].by, Author::Agent(_)));
    browser.wait_for(None, "document.querySelector('.visitor').textContent.includes('Ada Lovelace')").await?;

    // The agent answers from the composer with Enter.
    browser.wait_for(None, "(() => { const t = document.querySelector('#reply'); if (t) t.focus(); return !!t && document.activeElement === t; })()").await?;
    browser.type_text("Hi Ada! How can I help?").await?;
    browser.press_enter().await?;
    let reply = collect(&mut events, 1, from_agent).await?;
    assert_eq!(text(&reply[0]), "Hi Ada! How can I help?");
    wait_for_bubbles(&browser, &["Hello, is anyone there?", "Hi Ada! How can I help?"]).await?;

    // What the visitor is typing shows before it is sent.
    visitor.typing(conversation, true, Some("draft text".into()))?;
    browser.wait_for(None, "document.querySelector('.draft')?.textContent === 'draft text'").await?;
    // The visitor's message stays text: no element is made of it.
    visitor.send(conversation, Body::Text("<b>bold?</b> <img src=x onerror=alert(1)>".into())).await?;
    wait_for_bubbles(
        &browser,
        &["Hello, is anyone there?", "Hi Ada! How can I help?", "<b>bold?</b> <img src=x onerror=alert(1)>"],
    )
    .await?;
    assert_eq!(browser.eval("document.querySelectorAll('.log b, .log img').length").await?, 0);
    visitor.typing(conversation, true, Some("draft text".into()))?;
    browser.wait_for(None, "document.querySelector('.draft')?.textContent === 'draft text'").await?;

    // A second visitor writes: unread in the list and the tab's title,
    // read once the agent opens it.
    let (second, mut second_events) = Client::visitor(relay.ws_url(), "demo")?;
    let second_conversation = second.conversation().await?;
    let asked = second.send(second_conversation, Body::Text("Do you ship to Norway?".into())).await?;
    browser.wait_for(None, "document.querySelector('.badge')?.textContent === '1'").await?;
    browser.wait_for(None, "document.title === '(1) Kefu console'").await?;
    browser.screenshot("console-chat").await?;
    browser.eval("[...document.querySelectorAll('.item')].find(e => e.textContent.includes('Norway')).click()").await?;
    wait_for_bubbles(&browser, &["Do you ship to Norway?"]).await?;
    browser.wait_for(None, "document.title === 'Kefu console' && !document.querySelector('.badge')").await?;
    collect(&mut second_events, 1, |event| match event {
        Event::Receipt(receipt) if receipt.kind == ReceiptKind::Read && receipt.up_to >= asked.seq => Some(receipt),
        _ => None,
    })
    .await?;

    // Logging out forgets the token and shows the login screen again.
    browser.eval("[...document.querySelectorAll('button')].find(b => b.textContent === 'Log out').click()").await?;
    browser.wait_for(None, "!!document.querySelector('#email') && sessionStorage.length === 0").await?;
    Ok(())
}

#[tokio::test]
async fn console_cut_off_while_the_visitor_sends_5_gets_each_once_in_order() -> Result<()> {
    let relay = Relay::start().await?;
    let proxy = Proxy::start(relay.addr()).await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/console", proxy.http_url())).await?;
    log_in(&browser, ADMIN_PASSWORD).await?;

    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text("before".into())).await?;
    wait_for_bubbles(&browser, &["before"]).await?;

    proxy.block_websockets(true);
    browser.wait_for(None, "document.querySelector('.banner')?.textContent === 'Reconnecting…'").await?;
    let offline: Vec<String> = (1..=5).map(|n| format!("while cut off {n}")).collect();
    for words in &offline {
        visitor.send(conversation, Body::Text(words.clone())).await?;
    }
    browser.screenshot("console-reconnecting").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(bubbles(&browser).await? == ["before"], "messages arrived through a blocked link");

    proxy.block_websockets(false);
    let mut expected = vec!["before"];
    expected.extend(offline.iter().map(String::as_str));
    wait_for_bubbles(&browser, &expected).await?;
    browser.wait_for(None, "!document.querySelector('.banner')").await?;
    // And it stays that way: nothing comes twice after the replay.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bubbles(&browser).await?, expected);
    Ok(())
}

#[tokio::test]
async fn a_wrong_password_is_refused_clearly_and_keeps_no_token() -> Result<()> {
    let relay = Relay::start().await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/console", relay.http_url())).await?;
    log_in(&browser, "not the password").await?;
    let error = browser.wait_for(None, "document.querySelector('[role=alert]')?.textContent").await?;
    assert_eq!(error, "Wrong email or password.");
    assert_eq!(browser.eval("sessionStorage.length").await?, 0);
    assert_eq!(browser.eval("!!document.querySelector('.topbar')").await?, false);
    browser.screenshot("console-login-error").await?;
    Ok(())
}
