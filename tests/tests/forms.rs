//! The widget's forms in a real headless Chromium against a real relay:
//! the offline contact ask, the pre-chat form and the satisfaction
//! survey, and what agents see of them (the console's visitor panel, the
//! conversation's system line, the HTTP API).
//!
//! Needs `cargo xtask build-web` (the relay serves `target/web`) and
//! Debian's chromium; `cargo xtask test` and `.ci/run` provide both.

use anyhow::{Context, Result, bail, ensure};
use kefu_protocol::frame::{Body, Change, ConversationEvent, Credentials, ErrorCode, Rate, ReturningVisitor};
use kefu_protocol::ids::{ConversationId, SiteKey, VisitorId, VisitorToken};
use kefu_protocol::session::LinkState;
use kefu_protocol::{ClientFrame, ServerFrame};
use kefu_sdk::Client;
use kefu_tests::browser::Browser;
use kefu_tests::raw::{Next, Raw, hello};
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Relay};
use serde_json::{Value, json};

/// The full-page widget: no iframe between the test and the widget.
const PAGE: &str = "/c/demo";

/// Runs `script` against the admin's HTTP API; the answer's JSON.
async fn api(relay: &Relay, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
    let token = relay.admin_token().await?;
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", relay.http_url())).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

async fn set_forms(relay: &Relay, forms: Value) -> Result<()> {
    let (status, answer) = api(relay, reqwest::Method::PUT, "/api/site/forms", Some(forms)).await?;
    ensure!(status == 200, "saving the forms: {status} {answer}");
    Ok(())
}

/// The one conversation of the demo site, with its visitor, once it exists.
async fn only_conversation(relay: &Relay, status: &str) -> Result<(ConversationId, VisitorId)> {
    let deadline = tokio::time::Instant::now() + kefu_tests::PATIENCE;
    loop {
        let (_, list) = api(relay, reqwest::Method::GET, &format!("/api/conversations?status={status}"), None).await?;
        if let Some(first) = list.as_array().and_then(|l| l.first()) {
            let id = first["id"].as_u64().context("conversation id")?;
            let visitor = first["visitor"].as_u64().context("visitor id")?;
            return Ok((ConversationId(id), VisitorId(visitor)));
        }
        ensure!(tokio::time::Instant::now() < deadline, "no {status} conversation: {list}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Focuses the widget's composer, types `text` and presses Enter.
async fn type_message(browser: &Browser, text: &str) -> Result<()> {
    browser.wait_for(None, "(() => { const t = document.querySelector('.kefu-input'); if (t) t.focus(); return !!t && document.activeElement === t; })()").await?;
    browser.type_text(text).await?;
    browser.press_enter().await
}

/// Focuses the element `selector` and types `text` into it.
async fn fill(browser: &Browser, selector: &str, text: &str) -> Result<()> {
    browser
        .wait_for(None, &format!("(() => {{ const e = document.querySelector({selector:?}); if (e) e.focus(); return !!e && document.activeElement === e; }})()"))
        .await?;
    browser.type_text(text).await
}

/// The text of everything matching `selector`, joined.
async fn text_of(browser: &Browser, selector: &str) -> Result<String> {
    let value = browser
        .eval(&format!("[...document.querySelectorAll({selector:?})].map(e => e.textContent).join('\\n')"))
        .await?;
    Ok(value.as_str().unwrap_or_default().to_owned())
}

/// A browser with the console open, signed in as the admin.
async fn console(relay: &Relay) -> Result<Browser> {
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/console", relay.http_url())).await?;
    browser.wait_for(None, "!!document.querySelector('#email')").await?;
    browser.eval("document.querySelector('#email').focus()").await?;
    browser.type_text(ADMIN_EMAIL).await?;
    browser.eval("document.querySelector('#password').focus()").await?;
    browser.type_text(ADMIN_PASSWORD).await?;
    browser.press_enter().await?;
    browser.wait_for(None, "document.querySelector('.team')?.textContent.includes('(you)')").await?;
    Ok(browser)
}

/// Shows folder `folder` in the console and opens its first conversation.
async fn open_first(browser: &Browser, folder: &str) -> Result<()> {
    browser.eval(&format!("document.querySelector('[data-folder=\"{folder}\"]').click()")).await?;
    browser
        .wait_for(None, "(() => { const i = document.querySelector('.item'); if (i) i.click(); return !!i; })()")
        .await?;
    Ok(())
}

#[tokio::test]
async fn nobody_online_asks_for_an_email_in_the_visitors_language_and_agents_see_it() -> Result<()> {
    let relay = Relay::start().await?;
    let browser = Browser::start().await?;

    browser.goto(&format!("{}{PAGE}?lang=zh-CN", relay.http_url())).await?;
    let shown = browser
        .wait_for(None, "document.querySelector('.kefu-contact-line')?.textContent.includes('现在没有客服在线')")
        .await;
    shown.with_context(|| format!("page errors: {:?}", browser.errors()))?;
    ensure!(
        text_of(&browser, ".kefu-contact-line").await?.contains("我们会在这里回复您"),
        "no SMTP: replies in the chat"
    );
    browser.screenshot("forms-contact-zh-cn").await?;

    browser.goto(&format!("{}{PAGE}?lang=en", relay.http_url())).await?;
    browser
        .wait_for(
            None,
            "document.querySelector('.kefu-contact-line')?.textContent.includes('Nobody is here right now')",
        )
        .await?;
    let line = text_of(&browser, ".kefu-contact-line").await?;
    ensure!(line.contains("we'll reply here") && !line.contains("send the answer there"), "{line}");

    // A typo keeps the message in the composer and says why, at the field.
    fill(&browser, "input[name=email]", "vera-at-example").await?;
    type_message(&browser, "Hello, anyone?").await?;
    browser.wait_for(None, "document.querySelector('#kefu-contact-error')?.textContent.includes('incomplete')").await?;
    browser
        .wait_for(None, "document.activeElement?.name === 'email' && document.activeElement.getAttribute('aria-invalid') === 'true' && document.activeElement.getAttribute('aria-describedby') === 'kefu-contact-error'")
        .await
        .context("the email field has the focus and names its error")?;
    ensure!(
        browser.eval("document.querySelector('.kefu-input').value").await? == "Hello, anyone?",
        "the message was kept"
    );
    browser.eval("document.querySelector('input[name=email]').select()").await?;
    browser.type_text("vera@example.com").await?;
    fill(&browser, "input[name=name]", "Vera").await?;
    browser.screenshot("forms-contact-en").await?;
    browser.eval("document.querySelector('.kefu-input').focus()").await?;
    browser.press_enter().await?;
    browser.wait_for(None, "!document.querySelector('.kefu-contact') && document.querySelectorAll('.kefu-mark-sending').length === 0 && document.querySelector('.kefu-from-visitor') !== null").await?;

    let (_, visitor) = only_conversation(&relay, "open").await?;
    let (_, details) = api(&relay, reqwest::Method::GET, &format!("/api/visitors/{visitor}"), None).await?;
    let attributes = details["profile"]["attributes"].to_string();
    ensure!(
        attributes.contains("vera@example.com") && attributes.contains("Vera"),
        "stored with the message: {attributes}"
    );

    let agent = console(&relay).await?;
    open_first(&agent, "All open").await?;
    agent
        .wait_for(None, "document.querySelector('.form-values')?.textContent.includes('vera@example.com')")
        .await
        .context("the visitor panel shows the email")?;
    let panel = text_of(&agent, ".form-values").await?;
    ensure!(panel.contains("Unverified") && panel.contains("Email") && panel.contains("Vera"), "{panel}");
    agent.screenshot("forms-console-panel").await?;
    Ok(())
}

#[tokio::test]
async fn a_visitor_the_page_identified_with_an_email_is_not_asked() -> Result<()> {
    let relay = Relay::start().await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/demo", relay.http_url())).await?;
    browser.eval("Kefu.setUser({ id: 'u1', name: 'Ida', email: 'ida@example.com' }); Kefu.open()").await?;
    // The subtitle says nobody is online: availability has arrived.
    browser
        .wait_for(
            Some("/widget"),
            "document.querySelector('.kefu-subtitle')?.textContent.includes('No agent is online')",
        )
        .await?;
    let asked = browser.eval_in_frame("/widget", "!!document.querySelector('.kefu-contact')").await?;
    ensure!(asked == Value::Bool(false), "an identified visitor was asked for an email");
    Ok(())
}

#[tokio::test]
async fn the_pre_chat_form_checks_required_fields_and_is_not_shown_again() -> Result<()> {
    let relay = Relay::start().await?;
    // A bad form is refused with the reason, and nothing changes.
    let bad = json!({"prechat": {"when": "always", "fields": [{"key": "Plan!", "label": "Plan", "kind": "text"}]}});
    let (status, answer) = api(&relay, reqwest::Method::PUT, "/api/site/forms", Some(bad)).await?;
    ensure!(status == 400 && answer["error"].as_str().unwrap_or_default().contains("lowercase"), "{status} {answer}");
    set_forms(
        &relay,
        json!({"prechat": {
            "when": "always",
            "fields": [
                {"key": "name", "label": "Your name", "kind": "name"},
                {"key": "plan", "label": "Your plan", "kind": "select", "options": ["Free", "Pro"], "required": true},
            ],
            "consent": "We keep this chat for a year to answer you."
        }}),
    )
    .await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}{PAGE}", relay.http_url())).await?;
    browser
        .wait_for(None, "!!document.querySelector('.kefu-prechat') && !document.querySelector('.kefu-input')")
        .await?;
    browser.screenshot("forms-prechat").await?;

    // Submitted empty: both required ones say so, the first gets the focus.
    browser.eval("document.querySelector('.kefu-form-submit').click()").await?;
    browser
        .wait_for(None, "document.activeElement?.id === 'kefu-field-1'")
        .await
        .context("focus on the first error")?;
    let errors = browser
        .eval("['kefu-field-0', 'kefu-field-1', 'kefu-field-2'].map(id => { const e = document.getElementById(id); const d = e.getAttribute('aria-describedby'); return [e.getAttribute('aria-invalid'), d && document.getElementById(d)?.textContent]; })")
        .await?;
    ensure!(
        errors == json!([["false", null], ["true", "Please fill this in."], ["true", "Please fill this in."]]),
        "{errors}"
    );
    browser.screenshot("forms-prechat-errors").await?;

    browser.eval("const s = document.getElementById('kefu-field-1'); s.value = 'Pro'; s.dispatchEvent(new Event('input', { bubbles: true }))").await?;
    browser.eval("document.getElementById('kefu-field-2').click()").await?;
    // Enter in a field submits.
    fill(&browser, "#kefu-field-0", "Vera").await?;
    browser.press_enter().await?;
    type_message(&browser, "I am on Pro").await?;
    browser.wait_for(None, "document.querySelector('.kefu-from-visitor') !== null && document.querySelectorAll('.kefu-mark-sending').length === 0").await?;

    let (_, visitor) = only_conversation(&relay, "open").await?;
    let (_, details) = api(&relay, reqwest::Method::GET, &format!("/api/visitors/{visitor}"), None).await?;
    let mut attributes: Vec<(String, String)> = details["profile"]["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| (a["key"].as_str().unwrap_or_default().to_owned(), a["value"].as_str().unwrap_or_default().to_owned()))
        .collect();
    attributes.sort();
    let expected = [("form.consent", "yes"), ("form.plan", "Pro"), ("name", "Vera")];
    ensure!(attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>() == expected, "{attributes:?}");

    // After a reload the history is back and the form is not.
    browser.reload().await?;
    browser.wait_for(None, "document.querySelector('.kefu-from-visitor')?.textContent.includes('I am on Pro')").await?;
    browser.wait_for(None, "!!document.querySelector('.kefu-input')").await?;
    ensure!(browser.eval("!!document.querySelector('.kefu-prechat')").await? == Value::Bool(false), "asked again");
    Ok(())
}

#[tokio::test]
async fn a_closed_chat_is_rated_once_and_agents_see_the_rating() -> Result<()> {
    let relay = Relay::start().await?;
    set_forms(&relay, json!({"survey": {"enabled": true, "ask_again": false}})).await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}{PAGE}", relay.http_url())).await?;
    type_message(&browser, "Where is my parcel?").await?;
    let (conversation, _) = only_conversation(&relay, "open").await?;

    let (agent, _events) = Client::agent(relay.ws_url(), &relay.admin_token().await?)?;
    // Updates are sent only on a live link, never queued.
    agent.wait_link(|link| *link == LinkState::Live).await?;
    agent.update(conversation, Change::Take)?;
    agent.update(conversation, Change::Close)?;
    browser.wait_for(None, "document.body.textContent.includes('The conversation was closed')").await?;
    browser.wait_for(None, "!!document.querySelector('.kefu-survey')").await.context("the survey shows")?;
    let labels =
        browser.eval("[...document.querySelectorAll('.kefu-score')].map(b => b.getAttribute('aria-label'))").await?;
    ensure!(labels.as_array().map(Vec::len) == Some(5) && labels[3] == "4 of 5: good", "{labels}");

    // By keyboard: focus the fourth score, Enter; a comment; send.
    browser.eval("document.querySelectorAll('.kefu-score')[3].focus()").await?;
    browser.press_enter().await?;
    browser
        .wait_for(None, "document.querySelectorAll('.kefu-score')[3].getAttribute('aria-pressed') === 'true'")
        .await?;
    fill(&browser, ".kefu-survey-comment", "Quick and kind").await?;
    browser.screenshot("forms-survey").await?;
    browser.eval("document.querySelector('.kefu-survey .kefu-form-submit').click()").await?;
    browser
        .wait_for(None, "!document.querySelector('.kefu-survey') && document.body.textContent.includes('You rated the chat 4 of 5')")
        .await
        .context("the rated line ends the survey")?;

    // A second rating of the same close, from the visitor's own socket.
    let stored = browser.eval("localStorage.getItem('kefu:demo:visitor')").await?;
    let stored = stored.as_str().context("the stored visitor")?.to_owned();
    let parts: Vec<&str> = stored.split(' ').collect();
    let returning =
        ReturningVisitor { visitor: VisitorId(parts[1].parse()?), token: VisitorToken::new(parts[3].to_owned())? };
    let mut raw = Raw::connect(&relay.ws_url()).await?;
    raw.send(&hello(Credentials::Visitor { site: SiteKey::new("demo")?, returning: Some(returning) })).await?;
    raw.send(&ClientFrame::Rate(Rate { conversation, score: 1, comment: "again".into() })).await?;
    let refused = loop {
        match raw.next().await? {
            Next::Frame(ServerFrame::Error(error)) => break Some(error.code),
            // Taken after all: its line comes back (the replay brings
            // the first one, with the visitor's own comment).
            Next::Frame(ServerFrame::Message(message))
                if message.body == Body::Event(ConversationEvent::Rated { score: 1, comment: "again".into() }) =>
            {
                break None;
            }
            Next::Frame(_) => {}
            Next::Closed(code) => bail!("closed ({code:?}) before answering the second rating"),
        }
    };
    let (_, messages) =
        api(&relay, reqwest::Method::GET, &format!("/api/conversations/{conversation}/messages"), None).await?;
    let rated = messages.to_string().matches("\"Rated\"").count();
    ensure!(rated == 1, "the rating is stored once, found {rated}: {messages}");
    ensure!(refused == Some(ErrorCode::Conflict), "the second rating was not refused: {refused:?}");

    let console = console(&relay).await?;
    open_first(&console, "Closed").await?;
    console
        .wait_for(None, "document.querySelector('.log')?.textContent.includes('The visitor rated the chat 4 of 5: “Quick and kind”')")
        .await
        .context("the console shows the rating")?;
    console.screenshot("forms-console-rated").await?;
    Ok(())
}
