//! The agent console in a real headless Chromium against a real relay,
//! with visitors on the SDK (or the widget) at the other end.
//!
//! Needs `cargo xtask build-web` (the relay serves `target/web`) and
//! Debian's chromium; `cargo xtask test` and `.ci/run` provide both.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kefu_protocol::frame::{
    AgentStatus, Attribute, Author, Body, Change, ConversationStatus, Identify, ReceiptKind, Visit,
};
use kefu_sdk::{Client, Event, Message};
use kefu_tests::browser::Browser;
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Proxy, Relay, collect, message};
use serde_json::{Value, json};

/// The texts of the message bubbles of the conversation on screen.
const BUBBLES: &str = "[...document.querySelectorAll('.log .bubble')].map(e => e.textContent)";

/// The password of the agents the tests create.
const PASSWORD: &str = "a long enough password";

/// Logs in on the console's login screen with the keyboard.
async fn log_in_as(browser: &Browser, email: &str, password: &str) -> Result<()> {
    browser.wait_for(None, "!!document.querySelector('#email')").await?;
    browser.eval("document.querySelector('#email').focus()").await?;
    browser.type_text(email).await?;
    browser.eval("document.querySelector('#password').focus()").await?;
    browser.type_text(password).await?;
    browser.press_enter().await
}

async fn log_in(browser: &Browser, password: &str) -> Result<()> {
    log_in_as(browser, ADMIN_EMAIL, password).await
}

/// A browser with the console open and signed in as `email`, once its
/// link is up (the team list shows the agent).
async fn console_as(relay: &Relay, email: &str, password: &str) -> Result<Browser> {
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/console", relay.http_url())).await?;
    log_in_as(&browser, email, password).await?;
    browser.wait_for(None, "document.querySelector('.team')?.textContent.includes('(you)')").await?;
    Ok(browser)
}

/// Creates an agent through the admin HTTP API; returns its id.
async fn create_agent(relay: &Relay, email: &str, name: &str, capacity: u32) -> Result<u64> {
    let token = relay.admin_token().await?;
    let response = reqwest::Client::new()
        .post(format!("{}/api/agents", relay.http_url()))
        .bearer_auth(token)
        .json(&json!({ "email": email, "name": name, "password": PASSWORD, "role": "agent", "capacity": capacity }))
        .send()
        .await?;
    ensure!(response.status() == 201, "creating {email}: {}", response.status());
    let agent: Value = response.json().await?;
    agent["id"].as_u64().context("agent id")
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

/// Waits until the folder tab `folder` ("Mine", "Unassigned", ...) counts `n`.
async fn wait_for_count(browser: &Browser, folder: &str, n: usize) -> Result<()> {
    browser
        .wait_for(None, &format!("document.querySelector('[data-folder=\"{folder}\"] .count')?.textContent === '{n}'"))
        .await
        .with_context(|| format!("{folder} should count {n}"))?;
    Ok(())
}

/// Shows folder `folder` and clicks the conversation whose entry contains `text`.
async fn open_item(browser: &Browser, folder: &str, text: &str) -> Result<()> {
    browser.eval(&format!("document.querySelector('[data-folder=\"{folder}\"]').click()")).await?;
    browser
        .wait_for(
            None,
            &format!(
                "(() => {{ const i = [...document.querySelectorAll('.item')].find(e => e.textContent.includes({text:?})); if (i) i.click(); return !!i; }})()"
            ),
        )
        .await?;
    Ok(())
}

/// Clicks the button whose text is exactly `label`.
async fn click_button(browser: &Browser, label: &str) -> Result<()> {
    browser
        .wait_for(
            None,
            &format!(
                "(() => {{ const b = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === {label:?} && !b.disabled); if (b) b.click(); return !!b; }})()"
            ),
        )
        .await
        .with_context(|| format!("no button {label:?}"))?;
    Ok(())
}

/// Focuses the composer, types `text` and presses Enter.
async fn compose(browser: &Browser, text: &str) -> Result<()> {
    browser.wait_for(None, "(() => { const t = document.querySelector('#reply'); if (t) t.focus(); return !!t && document.activeElement === t; })()").await?;
    browser.type_text(text).await?;
    browser.press_enter().await
}

fn from_agent(event: Event) -> Option<Message> {
    message(event).filter(|m| matches!(m.author, Author::Agent(_)))
}

/// The text of a message the visitor can be shown.
fn text(message: &Message) -> &str {
    match &message.body {
        Body::Text(text) | Body::Note(text) => text,
        Body::Files(files) => &files.caption,
        Body::Event(_) => "",
    }
}

#[tokio::test]
async fn console_and_visitor_chat_with_typing_preview_and_read_mark() -> Result<()> {
    let relay = Relay::start().await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/console", relay.http_url())).await?;
    log_in(&browser, ADMIN_PASSWORD).await?;
    browser.wait_for(None, "document.body.textContent.includes('Nothing assigned to you')").await?;
    browser.wait_for(None, "document.querySelector('.team')?.textContent.includes('(you)')").await?;
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

    // Logging out ends the cookie session and shows the login screen again;
    // the page keeps no token anywhere.
    click_button(&browser, "Log out").await?;
    browser.wait_for(None, "!!document.querySelector('#email')").await?;
    assert_eq!(browser.eval("fetch('/api/me').then(r => r.status)").await?, 401);
    assert_eq!(
        browser
            .eval("sessionStorage.length + localStorage.length - (localStorage.getItem('kefu-console-status') ? 1 : 0)")
            .await?,
        0
    );
    // A reload after logging in again stays signed in: the cookie is the session.
    log_in(&browser, ADMIN_PASSWORD).await?;
    browser.wait_for(None, "!!document.querySelector('.topbar')").await?;
    browser.reload().await?;
    browser.wait_for(None, "!!document.querySelector('.topbar') && !document.querySelector('#email')").await?;
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
    assert_eq!(browser.eval("fetch('/api/me').then(r => r.status)").await?, 401);
    browser.screenshot("console-login-error").await?;
    Ok(())
}

#[tokio::test]
async fn two_agents_of_capacity_1_take_two_of_three_chats_and_the_third_waits_for_a_close() -> Result<()> {
    let relay = Relay::start().await?;
    create_agent(&relay, "ann@kefu.test", "Ann", 1).await?;
    create_agent(&relay, "bob@kefu.test", "Bob", 1).await?;
    let ann = console_as(&relay, "ann@kefu.test", PASSWORD).await?;
    let bob_token = kefu_sdk::login(&relay.http_url(), "bob@kefu.test", PASSWORD).await?.token;
    let (bob, _bob_events) = Client::agent(relay.ws_url(), &bob_token)?;
    bob.set_status(AgentStatus::Online)?;
    ann.wait_for(None, "[...document.querySelectorAll('.member')].some(m => m.textContent.includes('Bob') && m.querySelector('.dot.online'))").await?;

    let mut visitors = Vec::new();
    for words in ["first visitor here", "second visitor here", "third visitor here"] {
        let (visitor, events) = Client::visitor(relay.ws_url(), "demo")?;
        let conversation = visitor.conversation().await?;
        visitor.send(conversation, Body::Text(words.into())).await?;
        visitors.push((visitor, events));
        // One at a time, so the queue's order is the order they came in.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Ann and Bob have one each; the third waits in the queue.
    wait_for_count(&ann, "Mine", 1).await?;
    wait_for_count(&ann, "Unassigned", 1).await?;
    wait_for_count(&ann, "All open", 3).await?;
    ann.wait_for(
        None,
        "[...document.querySelectorAll('.member-load')].filter(e => e.textContent === '1/1').length === 2",
    )
    .await?;
    ann.eval("document.querySelector('[data-folder=\"Unassigned\"]').click()").await?;
    ann.wait_for(None, "document.querySelector('.item')?.textContent.includes('third visitor here')").await?;
    ann.wait_for(None, "document.querySelector('.item-state.waiting')?.textContent.startsWith('Waiting')").await?;
    ann.screenshot("console-queue").await?;

    // Ann closes hers (on screen by itself): the waiting one becomes hers.
    ann.eval("document.querySelector('[data-folder=\"Mine\"]').click()").await?;
    ann.wait_for(None, "document.querySelector('.conversation-head')?.textContent.includes('Assigned to you')").await?;
    click_button(&ann, "Close").await?;
    ann.wait_for(
        None,
        "[...document.querySelectorAll('.row.system')].some(r => r.textContent.includes('Closed by Ann'))",
    )
    .await?;
    wait_for_count(&ann, "Unassigned", 0).await?;
    wait_for_count(&ann, "Mine", 1).await?;
    ann.wait_for(None, "document.querySelector('.item')?.textContent.includes('third visitor here')").await?;
    ann.screenshot("console-closed-and-next").await?;
    Ok(())
}

#[tokio::test]
async fn a_transfer_gives_the_colleague_the_history_and_the_note_and_takes_it_from_mine() -> Result<()> {
    let relay = Relay::start().await?;
    create_agent(&relay, "ann@kefu.test", "Ann", 5).await?;
    create_agent(&relay, "bob@kefu.test", "Bob", 5).await?;
    let ann = console_as(&relay, "ann@kefu.test", PASSWORD).await?;

    // Ann is the only one online: the chat is hers.
    let (visitor, mut events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text("I was charged twice".into())).await?;
    wait_for_bubbles(&ann, &["I was charged twice"]).await?;
    compose(&ann, "Let me look into it").await?;
    collect(&mut events, 1, from_agent).await?;

    let bob = console_as(&relay, "bob@kefu.test", PASSWORD).await?;
    ann.wait_for(None, "[...document.querySelectorAll('.member')].some(m => m.textContent.includes('Bob') && m.querySelector('.dot.online'))").await?;
    click_button(&ann, "Transfer").await?;
    ann.wait_for(None, "(() => { const l = [...document.querySelectorAll('.pick-agent')].find(l => l.textContent.includes('Bob')); if (l) l.querySelector('input').click(); return !!l; })()").await?;
    ann.eval("document.querySelector('#transfer-note').focus()").await?;
    ann.type_text("Refund approved, please confirm with them").await?;
    ann.screenshot("console-transfer").await?;
    ann.eval("document.querySelector('.dialog button[type=submit]').click()").await?;

    // Ann: no longer hers; the system line says what happened.
    wait_for_count(&ann, "Mine", 0).await?;
    ann.wait_for(None, "[...document.querySelectorAll('.row.system')].some(r => r.textContent.includes('Ann transferred the chat to Bob'))").await?;
    ann.wait_for(None, "document.querySelector('.conversation-head')?.textContent.includes('Assigned to Bob')").await?;

    // Bob: in his list, on screen by itself, with the history and the note.
    wait_for_count(&bob, "Mine", 1).await?;
    wait_for_bubbles(&bob, &["I was charged twice", "Let me look into it"]).await?;
    bob.wait_for(
        None,
        "document.querySelector('.row.note')?.textContent.includes('Refund approved, please confirm with them')",
    )
    .await?;
    bob.screenshot("console-after-transfer").await?;
    // The visitor hears who joined, never the note: everything up to a
    // message written after Bob was shown the note, so after it was stored.
    visitor.send(conversation, Body::Text("are you still there?".into())).await?;
    let seen = kefu_tests::events_until(&mut events, kefu_tests::message_saying("are you still there?")).await?;
    let seen: Vec<Message> = seen.into_iter().filter_map(message).collect();
    assert!(seen.iter().all(|m| !matches!(m.body, Body::Note(_))), "the visitor got a note: {seen:?}");
    assert!(
        seen.iter().any(|m| matches!(m.body, Body::Event(kefu_protocol::frame::ConversationEvent::Transferred { .. }))),
        "the visitor was not told of the transfer: {seen:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_private_note_never_reaches_the_visitor_in_the_widget_or_the_sdk() -> Result<()> {
    let relay = Relay::start().await?;
    let token = relay.admin_token().await?;
    let canned = reqwest::Client::new()
        .post(format!("{}/api/canned", relay.http_url()))
        .bearer_auth(&token)
        .json(&json!({ "shortcut": "thanks", "text": "Thank you for waiting!" }))
        .send()
        .await?;
    ensure!(canned.status() == 201, "creating a canned reply: {}", canned.status());
    let console = console_as(&relay, ADMIN_EMAIL, ADMIN_PASSWORD).await?;

    // One visitor in the widget, one on the SDK.
    let widget = Browser::start().await?;
    widget.goto(&format!("{}/demo", relay.http_url())).await?;
    widget.eval("Kefu.open()").await?;
    widget.wait_for(Some("/widget"), "(() => { const t = document.querySelector('textarea'); if (t) t.focus(); return !!t && document.activeElement === t; })()").await?;
    widget.type_text("Hello from the widget").await?;
    widget.press_enter().await?;
    let (visitor, mut events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text("Hello from the SDK".into())).await?;

    for (said, note, reply) in [
        ("Hello from the widget", "secret: card declined twice", "Public answer"),
        ("Hello from the SDK", "secret: VIP customer", "/thanks"),
    ] {
        open_item(&console, "Mine", said).await?;
        wait_for_bubbles(&console, &[said]).await?;
        click_button(&console, "Private note").await?;
        compose(&console, note).await?;
        console
            .wait_for(
                None,
                &format!("[...document.querySelectorAll('.row.note')].some(r => r.textContent.includes({note:?}))"),
            )
            .await?;
        click_button(&console, "Reply").await?;
        if reply.starts_with('/') {
            // A canned reply: the popup offers it, Enter puts it in.
            console.wait_for(None, "(() => { const t = document.querySelector('#reply'); if (t) t.focus(); return document.activeElement === t; })()").await?;
            console.type_text("/than").await?;
            console
                .wait_for(None, "document.querySelector('.suggestion')?.textContent.includes('Thank you for waiting!')")
                .await?;
            console.screenshot("console-canned").await?;
            console.press_enter().await?;
            console.wait_for(None, "document.querySelector('#reply').value === 'Thank you for waiting!'").await?;
            console.press_enter().await?;
        } else {
            compose(&console, reply).await?;
        }
    }
    console.screenshot("console-note").await?;

    // The widget shows the reply, and nothing of the note anywhere.
    widget
        .wait_for(
            Some("/widget"),
            "[...document.querySelectorAll('.kefu-bubble')].some(b => b.textContent === 'Public answer')",
        )
        .await?;
    assert_eq!(widget.eval_in_frame("/widget", "document.body.textContent.includes('secret')").await?, false);
    widget.screenshot("widget-after-note").await?;

    // The SDK visitor's stream: the canned reply, never the note.
    let got = collect(&mut events, 1, |event| {
        let m = message(event)?;
        assert!(!matches!(m.body, Body::Note(_)), "the visitor got a note: {m:?}");
        assert!(!text(&m).contains("secret"), "the visitor got the note's text: {m:?}");
        (text(&m) == "Thank you for waiting!").then_some(m)
    })
    .await?;
    assert!(matches!(got[0].author, Author::Agent(_)));
    Ok(())
}

#[tokio::test]
async fn an_admin_adds_an_agent_and_a_canned_reply_and_sees_the_settings() -> Result<()> {
    let relay = Relay::start().await?;
    let console = console_as(&relay, ADMIN_EMAIL, ADMIN_PASSWORD).await?;

    click_button(&console, "Agents").await?;
    console.wait_for(None, &format!("document.querySelector('.table')?.textContent.includes({ADMIN_EMAIL:?})")).await?;
    for (field, value) in [("name", "Carol"), ("email", "carol@kefu.test"), ("password", PASSWORD)] {
        console.eval(&format!("document.querySelector('.form-grid [name={field}]').focus()")).await?;
        console.type_text(value).await?;
    }
    click_button(&console, "Add agent").await?;
    console.wait_for(None, "document.querySelector('.table')?.textContent.includes('carol@kefu.test')").await?;
    console.screenshot("console-admin-agents").await?;
    // Made with the cookie and the CSRF header: the relay has her.
    let agents: Value = reqwest::Client::new()
        .get(format!("{}/api/agents", relay.http_url()))
        .bearer_auth(relay.admin_token().await?)
        .send()
        .await?
        .json()
        .await?;
    assert!(agents.as_array().into_iter().flatten().any(|a| a["email"] == "carol@kefu.test"), "{agents}");
    // Without the CSRF header, the same cookie changes nothing.
    let refused = console
        .eval("fetch('/api/canned', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ shortcut: 'x', text: 'y' }) }).then(r => r.status)")
        .await?;
    assert_eq!(refused, 403);

    click_button(&console, "Canned replies").await?;
    console.eval("document.querySelector('.form-grid [name=shortcut]').focus()").await?;
    console.type_text("hello").await?;
    console.eval("document.querySelector('.form-grid [name=text]').focus()").await?;
    console.type_text("Hello! How can I help you today?").await?;
    click_button(&console, "Add reply").await?;
    console.wait_for(None, "document.querySelector('.canned-list')?.textContent.includes('/hello')").await?;
    console.screenshot("console-admin-canned").await?;

    click_button(&console, "Settings").await?;
    console.wait_for(None, "document.querySelector('[name=name]')?.value.length > 0").await?;
    console.screenshot("console-admin-settings").await?;
    Ok(())
}

#[tokio::test]
async fn a_closed_chat_opens_from_the_closed_list_pages_back_and_reopens() -> Result<()> {
    let relay = Relay::start().await?;
    // A long conversation, taken and closed before the console comes up.
    let (agent, mut agent_events) = Client::agent(relay.ws_url(), &relay.admin_token().await?)?;
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    let said: Vec<String> = (1..=60).map(|n| format!("message {n}")).collect();
    for words in &said {
        visitor.send(conversation, Body::Text(words.clone())).await?;
    }
    agent.update(conversation, Change::Take)?;
    collect(&mut agent_events, 1, |event| match event {
        Event::Conversation(update) if update.assignee.is_some() => Some(update),
        _ => None,
    })
    .await?;
    agent.update(conversation, Change::Close)?;
    collect(&mut agent_events, 1, |event| match event {
        Event::Conversation(update) if update.status == ConversationStatus::Closed => Some(update),
        _ => None,
    })
    .await?;
    agent.stop();

    let console = console_as(&relay, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    open_item(&console, "Closed", "Visitor #1").await?;
    // The newest page first (two system lines take two of its 50 seqs).
    let newest: Vec<&str> = said[12..].iter().map(String::as_str).collect();
    wait_for_bubbles(&console, &newest).await?;
    console
        .wait_for(
            None,
            "[...document.querySelectorAll('.row.system')].some(r => r.textContent.includes('Closed by Admin'))",
        )
        .await?;
    console.screenshot("console-closed-conversation").await?;
    click_button(&console, "Load earlier messages").await?;
    let all: Vec<&str> = said.iter().map(String::as_str).collect();
    wait_for_bubbles(&console, &all).await?;
    console.wait_for(None, "!document.querySelector('.load-earlier')").await?;

    // Reopened: it is this agent's again, live, and nothing shows twice.
    click_button(&console, "Reopen").await?;
    console
        .wait_for(
            None,
            "[...document.querySelectorAll('.row.system')].some(r => r.textContent.includes('Reopened by Admin'))",
        )
        .await?;
    wait_for_count(&console, "Mine", 1).await?;
    console.wait_for(None, "!!document.querySelector('#reply')").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bubbles(&console).await?, all);
    Ok(())
}

#[tokio::test]
async fn an_away_agent_gets_no_new_chats_but_can_take_one_and_online_brings_the_next() -> Result<()> {
    let relay = Relay::start().await?;
    create_agent(&relay, "ann@kefu.test", "Ann", 3).await?;
    let ann = console_as(&relay, "ann@kefu.test", PASSWORD).await?;
    click_button(&ann, "Away").await?;
    ann.wait_for(None, "document.querySelector('.member .dot.away') !== null").await?;

    let (first, _first_events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = first.conversation().await?;
    first.send(conversation, Body::Text("anyone?".into())).await?;
    wait_for_count(&ann, "Unassigned", 1).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_for_count(&ann, "Mine", 0).await?;

    // Taking it by hand works while away.
    open_item(&ann, "Unassigned", "anyone?").await?;
    click_button(&ann, "Take").await?;
    ann.wait_for(
        None,
        "[...document.querySelectorAll('.row.system')].some(r => r.textContent.includes('Ann took the chat'))",
    )
    .await?;
    wait_for_count(&ann, "Mine", 1).await?;
    wait_for_count(&ann, "Unassigned", 0).await?;

    // Waiting again: back online, it is assigned at once.
    let (second, _second_events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = second.conversation().await?;
    second.send(conversation, Body::Text("hello?".into())).await?;
    wait_for_count(&ann, "Unassigned", 1).await?;
    click_button(&ann, "Online").await?;
    wait_for_count(&ann, "Mine", 2).await?;
    wait_for_count(&ann, "Unassigned", 0).await?;
    Ok(())
}

#[tokio::test]
async fn news_off_screen_raises_a_browser_notification() -> Result<()> {
    let relay = Relay::start().await?;
    let console = console_as(&relay, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    // Stands in for the browser's notifications, which headless Chromium
    // does not show: records what the console asks to show.
    console
        .eval(
            "window.shown = []; window.Notification = class { constructor(title, options) { window.shown.push(title + ': ' + options.body); } \
             static get permission() { return 'granted'; } static requestPermission() { return Promise.resolve('granted'); } }; true",
        )
        .await?;

    let (first, _first_events) = Client::visitor(relay.ws_url(), "demo")?;
    let first_conversation = first.conversation().await?;
    first.send(first_conversation, Body::Text("first one".into())).await?;
    // Assigned to this agent, it opens by itself (whether that came before
    // the message or after, and so whether the message was news, is a race).
    wait_for_bubbles(&console, &["first one"]).await?;
    // On screen: no news.
    first.send(first_conversation, Body::Text("on screen".into())).await?;
    wait_for_bubbles(&console, &["first one", "on screen"]).await?;

    let (second, _second_events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = second.conversation().await?;
    second.send(conversation, Body::Text("second one".into())).await?;
    console.wait_for(None, "window.shown.includes('New chat from Visitor #2: second one')").await?;
    second.send(conversation, Body::Text("still there?".into())).await?;
    console.wait_for(None, "window.shown.includes('New message from Visitor #2: still there?')").await?;
    let shown = console.eval("window.shown").await?;
    assert!(!shown.to_string().contains("on screen"), "{shown}");
    Ok(())
}

/// A second site, "beta", with one agent, written into the relay's store
/// beside the running relay: no HTTP route creates sites.
async fn add_beta_site(relay: &Relay) -> Result<()> {
    use kefu_relay::store::{Role, Store};

    // Once the relay answers, its migrations are done and cannot race.
    reqwest::get(format!("{}/healthz", relay.http_url())).await?.error_for_status()?;
    let store = Store::open(relay.data_dir()).await?;
    let site = store.create_site(&kefu_protocol::ids::SiteKey::new("beta")?, "Beta").await?;
    let hash = kefu_relay::auth::hash_password(PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    store.create_agent(site.id, "bo@beta.test", "Bo", &hash, Role::Agent).await?;
    store.close().await;
    Ok(())
}

#[tokio::test]
async fn an_agent_of_another_site_sees_nothing_of_this_one_in_the_console() -> Result<()> {
    let relay = Relay::start().await?;
    add_beta_site(&relay).await?;
    let (demo_visitor, _demo_events) = Client::visitor(relay.ws_url(), "demo")?;
    let demo_conversation = demo_visitor.conversation().await?;
    let kefu_protocol::frame::Identity::Visitor { visitor: demo_visitor_id, .. } = demo_visitor.identity().await?
    else {
        anyhow::bail!("a visitor");
    };
    demo_visitor.send(demo_conversation, Body::Text("demo site secret".into())).await?;

    let bo = console_as(&relay, "bo@beta.test", PASSWORD).await?;
    let (beta_visitor, _beta_events) = Client::visitor(relay.ws_url(), "beta")?;
    let beta_conversation = beta_visitor.conversation().await?;
    beta_visitor.send(beta_conversation, Body::Text("hello beta".into())).await?;
    wait_for_bubbles(&bo, &["hello beta"]).await?;
    wait_for_count(&bo, "All open", 1).await?;
    bo.eval("document.querySelector('[data-folder=\"Closed\"]').click()").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bo.eval("document.body.textContent.includes('demo site secret')").await?, false);
    // Nor through the HTTP API with the console's own session.
    for path in [format!("/api/conversations/{demo_conversation}/messages"), format!("/api/visitors/{demo_visitor_id}")]
    {
        let status = bo.eval(&format!("fetch('{path}').then(r => r.status)")).await?;
        ensure!(status == 403 || status == 404, "{path} answered {status}");
    }
    let members = bo.eval("[...document.querySelectorAll('.member-name')].map(m => m.textContent).join()").await?;
    assert_eq!(members, "Bo (you)");
    Ok(())
}

/// Clicks the list entry that contains `text` in the folder on screen.
async fn click_item(browser: &Browser, text: &str) -> Result<()> {
    let clicked = browser
        .eval(&format!(
            "(() => {{ const i = [...document.querySelectorAll('.item')].find(e => e.textContent.includes({text:?})); if (i) i.click(); return !!i; }})()"
        ))
        .await?;
    ensure!(clicked == true, "no list entry with {text:?}");
    Ok(())
}

/// Clicks the top bar's link to `page` (its text may go on with a badge).
async fn click_page(browser: &Browser, page: &str) -> Result<()> {
    let clicked = browser
        .eval(&format!(
            "(() => {{ const b = [...document.querySelectorAll('.page-link')].find(b => b.textContent.startsWith({page:?})); if (b) b.click(); return !!b; }})()"
        ))
        .await?;
    ensure!(clicked == true, "no page link {page:?}");
    Ok(())
}

/// Waits until the visitor panel shows the fetched details of the visitor
/// whose message is `text`, or fails at once when the page broke.
async fn wait_for_details(browser: &Browser, name: &str) -> Result<()> {
    let shown = format!(
        "document.querySelector('#kefu-crash') ? 'crashed' : \
         (document.querySelector('.visitor')?.textContent.includes({name:?}) && \
          document.querySelector('.visitor').textContent.includes('Earlier conversations')) ? 'shown' : ''"
    );
    let state = match browser.wait_for(None, &shown).await {
        Ok(state) => state,
        Err(error) => {
            let panel = browser.eval("document.querySelector('.visitor')?.textContent").await?;
            return Err(error.context(format!("the visitor panel shows {panel}; page errors {:?}", browser.errors())));
        }
    };
    if state != "shown" {
        browser.screenshot("console-crashed").await?;
    }
    ensure!(state == "shown", "the console broke: {:?}", browser.errors());
    Ok(())
}

#[tokio::test]
async fn clicking_around_while_visitor_details_load_never_breaks_the_console() -> Result<()> {
    let relay = Relay::start().await?;
    let mut visitors = Vec::new();
    for name in ["Ann Slow", "Bob Slow"] {
        let (visitor, events) = Client::visitor(relay.ws_url(), "demo")?;
        let conversation = visitor.conversation().await?;
        visitor.identify(Identify { user_id: name.into(), name: Some(name.into()), email: None, hash: None })?;
        visitor.send(conversation, Body::Text(format!("hello from {name}"))).await?;
        visitors.push((visitor, events));
    }
    let browser = Browser::start().await?;
    // Every visitor's details take 1.5 s, as from a busy relay.
    browser.delay_requests("*/api/visitors/*", Duration::from_millis(1_500)).await?;
    browser.goto(&format!("{}/console", relay.http_url())).await?;
    log_in(&browser, ADMIN_PASSWORD).await?;
    browser
        .wait_for(None, "(() => { const f = document.querySelector('[data-folder=\"All open\"]'); if (f) f.click(); return !!f; })()")
        .await?;
    browser
        .wait_for(
            None,
            "[...document.querySelectorAll('.item')].filter(e => e.textContent.includes('Slow')).length === 2",
        )
        .await?;

    // Two conversations 300 ms apart, each before its details came.
    click_item(&browser, "hello from Ann Slow").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    click_item(&browser, "hello from Bob Slow").await?;
    wait_for_details(&browser, "Bob Slow").await?;

    // The Inbox tab, clicked while the details of a new click load.
    click_item(&browser, "hello from Ann Slow").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    click_page(&browser, "Inbox").await?;
    wait_for_details(&browser, "Ann Slow").await?;
    // And away to another page and back while they load.
    click_item(&browser, "hello from Bob Slow").await?;
    click_page(&browser, "Agents").await?;
    click_page(&browser, "Inbox").await?;
    wait_for_details(&browser, "Bob Slow").await?;
    browser.screenshot("console-details-after-fast-clicks").await?;

    let errors = browser.errors();
    assert!(errors.is_empty(), "the page threw: {errors:?}");
    Ok(())
}

/// The names of the entries of the list on screen, in order.
const ITEM_NAMES: &str = "[...document.querySelectorAll('.items .item-name')].map(e => e.textContent)";
const ITEM_PREVIEWS: &str = "[...document.querySelectorAll('.items .item-preview')].map(e => e.textContent.trim())";

#[tokio::test]
async fn open_conversations_past_the_first_hundred_page_in_with_load_older_once_each() -> Result<()> {
    const VISITORS: usize = 130;
    let relay = Relay::start().await?;
    // 130 visitors write, one after another: 130 open conversations, more
    // than the relay lists when a console connects.
    let mut visitors = Vec::new();
    for n in 1..=VISITORS {
        let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
        let conversation = visitor.conversation().await?;
        visitor.send(conversation, Body::Text(format!("visitor {n} asks"))).await?;
        visitors.push(visitor);
    }
    for visitor in &visitors {
        visitor.stop();
    }

    // An agent who takes no chats by itself, so every one keeps waiting.
    create_agent(&relay, "ann@kefu.test", "Ann", 0).await?;
    let console = console_as(&relay, "ann@kefu.test", PASSWORD).await?;
    console.eval("document.querySelector('[data-folder=\"All open\"]').click()").await?;
    wait_for_count(&console, "All open", 100).await?;
    let first: Vec<String> = serde_json::from_value(console.eval(ITEM_NAMES).await?)?;
    assert_eq!(first.len(), 100, "the relay's first page: {first:?}");

    // Load older brings the other 30, and then there is nothing older.
    click_button(&console, "Load older").await?;
    wait_for_count(&console, "All open", VISITORS).await?;
    console.wait_for(None, "!document.querySelector('.load-older')").await.context("nothing older to load")?;
    let all: Vec<String> = serde_json::from_value(console.eval(ITEM_NAMES).await?)?;
    let mut distinct = all.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!((all.len(), distinct.len()), (VISITORS, VISITORS), "each once: {all:?}");
    // The ones listed first are still there; the older ones came after them.
    assert!(first.iter().all(|name| all.contains(name)), "{first:?} then {all:?}");
    assert_eq!(&all[..100], &first[..], "the older ones go below the newer");
    // Each previews its own visitor's message, the paged-in ones too,
    // though none of their lines are loaded.
    let mut previews: Vec<String> = serde_json::from_value(console.eval(ITEM_PREVIEWS).await?)?;
    let asked = |preview: &String| preview.strip_prefix("visitor ").and_then(|p| p.strip_suffix(" asks")).is_some();
    let unlike: Vec<_> = previews.iter().filter(|p| !asked(p)).collect();
    assert!(unlike.is_empty(), "every item previews its visitor's message: {unlike:?}");
    previews.sort();
    previews.dedup();
    assert_eq!(previews.len(), VISITORS, "each its own message");

    // The queue (oldest waiting first) has the paged-in ones too, first.
    console.eval("document.querySelector('[data-folder=\"Unassigned\"]').click()").await?;
    wait_for_count(&console, "Unassigned", VISITORS).await?;
    let queue: Vec<String> = serde_json::from_value(console.eval(ITEM_NAMES).await?)?;
    assert_eq!(queue.len(), VISITORS);
    let mut oldest_first = all.clone();
    oldest_first.reverse();
    assert_eq!(queue, oldest_first, "whoever waited longest first");
    console.screenshot("console-open-paged-in").await?;
    Ok(())
}

/// The console composer's text, and the counter and notice above it.
const CONSOLE_COMPOSER: &str = "(() => ({ length: document.querySelector('#reply').value.length, \
     count: document.querySelector('.composer .limit .count')?.textContent ?? null, \
     cut: document.querySelector('.composer .limit .cut')?.textContent ?? null }))()";

#[tokio::test]
async fn a_paste_over_the_limit_in_the_console_is_cut_the_agent_is_told_and_the_cut_text_is_sent() -> Result<()> {
    let relay = Relay::start().await?;
    let console = console_as(&relay, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let (visitor, mut events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text("a long answer, please".into())).await?;
    // The only chat opens by itself.
    wait_for_bubbles(&console, &["a long answer, please"]).await?;
    console.wait_for(None, "(() => { const t = document.querySelector('#reply'); if (t) t.focus(); return !!t && document.activeElement === t; })()").await?;

    // Near the limit: the counter, no notice.
    console.type_text(&"x".repeat(3_700)).await?;
    assert_eq!(console.wait_for(None, &format!("{CONSOLE_COMPOSER}.count")).await?, "3700 / 4000");
    assert_eq!(console.eval(&format!("{CONSOLE_COMPOSER}.cut")).await?, Value::Null, "nothing cut yet");

    // A paste past it: cut at a character (👋 is two UTF-16 units and does
    // not fit in the last one), and the agent is told.
    let paste = format!("{}👋 and more", "y".repeat(299));
    console.type_text(&paste).await?;
    let state = console.wait_for(None, &format!("{CONSOLE_COMPOSER}.cut && {CONSOLE_COMPOSER}")).await?;
    assert_eq!(state["length"], 3_999, "{state}");
    assert_eq!(state["count"], "3999 / 4000");
    assert!(state["cut"].as_str().is_some_and(|cut| cut.contains("cut to 4,000 characters")), "{state}");
    console.screenshot("console-paste-cut").await?;

    // What goes out is what the box holds.
    console.press_enter().await?;
    let sent = collect(&mut events, 1, from_agent).await?;
    let expected = format!("{}{}", "x".repeat(3_700), "y".repeat(299));
    assert_eq!(text(&sent[0]).len(), expected.len(), "the visitor got the cut text");
    assert!(text(&sent[0]) == expected, "the visitor got the cut text");
    console.wait_for(None, &format!("{CONSOLE_COMPOSER}.length === 0 && {CONSOLE_COMPOSER}.cut === null")).await?;
    Ok(())
}

/// The owner makes a second site from the console's Sites page, is shown
/// its admin's password once, steps into it and works there; that site's
/// admin, signed in elsewhere, has no Sites page.
#[tokio::test]
async fn the_owner_adds_a_site_in_the_console_and_steps_into_it() -> Result<()> {
    let relay = Relay::start().await?;
    let console = console_as(&relay, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    console.wait_for(None, "document.querySelector('.brand .site-name')?.textContent === 'Demo site'").await?;
    click_page(&console, "Sites").await?;
    console
        .wait_for(None, "document.querySelector('tr[data-site=demo]')?.textContent.includes('You are here')")
        .await?;
    for (field, value) in [("site-name", "Acme Inc"), ("site-key", "acme"), ("admin-email", "boss@acme.test")] {
        console.eval(&format!("document.querySelector('.form-grid [name={field}]').focus()")).await?;
        console.type_text(value).await?;
    }
    click_button(&console, "Add site").await?;
    let notice = console.wait_for(None, "document.querySelector('.admin .success')?.textContent").await?;
    let notice = notice.as_str().context("a success line")?.to_owned();
    let password = notice
        .split("the password ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .with_context(|| format!("the generated password in {notice:?}"))?
        .to_owned();
    console.wait_for(None, "!!document.querySelector('tr[data-site=acme] button')").await?;
    console.screenshot("console-owner-sites").await?;

    // Open: the tab starts over on Acme, as the owner's admin there.
    console.eval("document.querySelector('tr[data-site=acme] button').click()").await?;
    console.wait_for(None, "document.querySelector('.brand .site-name')?.textContent === 'Acme Inc'").await?;
    console.wait_for(None, "document.querySelector('.team')?.textContent.includes('(you)')").await?;
    click_page(&console, "Sites").await?;
    console
        .wait_for(None, "document.querySelector('tr[data-site=acme]')?.textContent.includes('You are here')")
        .await?;
    console.screenshot("console-owner-in-acme").await?;

    // Acme's own admin: Agents and Settings, no Sites.
    let boss = console_as(&relay, "boss@acme.test", &password).await?;
    boss.wait_for(None, "document.querySelector('.brand .site-name')?.textContent === 'Acme Inc'").await?;
    let pages = boss.eval("[...document.querySelectorAll('.page-link')].map(b => b.textContent)").await?;
    let pages: Vec<String> = serde_json::from_value(pages)?;
    ensure!(pages.iter().any(|p| p == "Agents"), "{pages:?}");
    ensure!(!pages.iter().any(|p| p == "Sites"), "a site's admin has no Sites page: {pages:?}");
    ensure!(console.errors().is_empty() && boss.errors().is_empty(), "{:?} {:?}", console.errors(), boss.errors());
    Ok(())
}
