//! The relay's mail through a real SMTP server (aiosmtpd, `kefu_tests::smtp`):
//! what a notification says and carries, and that every queued mail is
//! delivered exactly once though the SMTP server goes down, the relay is
//! killed with `kill -9`, or two relay nodes share one PostgreSQL outbox;
//! and the console's Email settings and outbox in a real browser (needs
//! `cargo xtask build-web`).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kefu_protocol::frame::AgentStatus;
use kefu_protocol::ids::ConversationId;
use kefu_sdk::{Body, Client, Event};
use kefu_tests::browser::Browser;
use kefu_tests::postgres::Database;
use kefu_tests::smtp::{Received, SmtpServer};
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, PATIENCE, Relay, collect};
use serde_json::{Value, json};

const FROM: &str = "Kefu <kefu@relay.test>";

/// The flags of a relay that mails through `smtp`, retrying after a second.
fn mail_flags(smtp: &SmtpServer) -> Vec<String> {
    ["--smtp-url", &smtp.url(), "--mail-from", FROM, "--mail-retry-secs", "1", "--mail-lease-secs", "5"]
        .map(String::from)
        .to_vec()
}

async fn start_mailing(smtp: &SmtpServer, extra: &[&str]) -> Result<Relay> {
    let mut flags = mail_flags(smtp);
    flags.extend(extra.iter().map(ToString::to_string));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Relay::start_with(&flags).await
}

/// A new visitor on `ws_url` writes `text`; returns once it is stored.
async fn visitor_writes(ws_url: &str, text: &str) -> Result<ConversationId> {
    let (visitor, _events) = Client::visitor(ws_url.to_owned(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text(text.into())).await?;
    visitor.stop();
    Ok(conversation)
}

/// The admin's API over HTTP with a bearer token.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn new(relay: &Relay) -> Result<Api> {
        Ok(Api { http: reqwest::Client::new(), base: relay.http_url(), token: relay.admin_token().await? })
    }

    async fn get(&self, path: &str) -> Result<Value> {
        let response = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await?;
        ensure!(response.status().is_success(), "GET {path}: {}", response.status());
        Ok(response.json().await?)
    }

    async fn put(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        let response =
            self.http.put(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body).send().await?;
        Ok((response.status().as_u16(), response.json().await?))
    }

    /// Waits until the outbox's mails all satisfy `done` (and there are
    /// `count` of them).
    async fn wait_outbox(&self, count: usize, done: impl Fn(&Value) -> bool) -> Result<Vec<Value>> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let page = self.get("/api/mail/outbox").await?;
                let mails = page["mails"].as_array().cloned().unwrap_or_default();
                if mails.len() == count && mails.iter().all(&done) {
                    return Ok::<_, anyhow::Error>(mails);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .context("the outbox never got there")?
    }
}

fn text_part(mail: &Received) -> String {
    mail.part("text/plain").ok().flatten().unwrap_or_default()
}

/// Waits for the `count` mails queued so far, then queues a marker on
/// `relay` and waits for it, and then for the outbox to say every mail is
/// sent: none is queued or being sent, so nothing more can come (the
/// server keeps a mail before it answers, the relay marks it sent after).
/// Returns the text parts of all mails but the marker, and checks that
/// each arrived once.
async fn delivered_once(smtp: &SmtpServer, relay: &Relay, count: usize) -> Result<Vec<String>> {
    smtp.wait_for(count).await?;
    visitor_writes(&relay.ws_url(), "the marker").await?;
    smtp.wait_for_marker(|mail| text_part(mail).contains("the marker")).await?;
    Api::new(relay).await?.wait_outbox(count + 1, |mail| mail["status"] == "sent").await?;
    let received = smtp.received()?;
    let ids: BTreeSet<String> = received.iter().filter_map(|mail| mail.header("Message-ID").ok().flatten()).collect();
    ensure!(ids.len() == received.len(), "a Message-ID arrived twice: {} mails, {} ids", received.len(), ids.len());
    ensure!(received.len() == count + 1, "{} mails arrived, not {count} and the marker", received.len());
    Ok(received.iter().map(text_part).filter(|text| !text.contains("the marker")).collect())
}

/// That `texts` quote each of `wanted` exactly once.
fn each_once(texts: &[String], wanted: &[String]) -> Result<()> {
    for line in wanted {
        let quoted = format!("> {line}");
        let times = texts.iter().filter(|text| text.lines().any(|l| l.trim_end() == quoted)).count();
        ensure!(times == 1, "{line:?} was mailed {times} times");
    }
    Ok(())
}

#[tokio::test]
async fn a_conversation_while_nobody_is_online_mails_the_agents_in_text_and_html() -> Result<()> {
    let smtp = SmtpServer::start().await?;
    let relay = start_mailing(&smtp, &["--public-url", "https://chat.relay.test"]).await?;
    visitor_writes(&relay.ws_url(), "my order is <b>late</b>").await?;
    let mail = smtp.wait_for(1).await?.remove(0);

    assert_eq!(mail.header("From")?.as_deref(), Some(FROM));
    assert_eq!(mail.header("To")?.as_deref(), Some(ADMIN_EMAIL));
    assert_eq!(mail.header("Reply-To")?.as_deref(), Some(FROM), "without a site setting: the sender");
    assert_eq!(mail.header("Auto-Submitted")?.as_deref(), Some("auto-generated"));
    assert_eq!(mail.header("Content-Language")?.as_deref(), Some("en"));
    assert_eq!(mail.header("Subject")?.as_deref(), Some("New conversation on Demo site"));
    let message_id = mail.header("Message-ID")?.context("a Message-ID")?;
    assert!(message_id.starts_with("<kefu.") && message_id.ends_with("@relay.test>"), "{message_id}");
    let content_type = mail.header("Content-Type")?.unwrap_or_default();
    assert!(content_type.starts_with("multipart/alternative"), "{content_type}");
    let text = mail.part("text/plain")?.context("a text part")?;
    assert!(text.contains("while no agent was online") && text.contains("> my order is <b>late</b>"), "{text}");
    assert!(text.contains("https://chat.relay.test/console"), "{text}");
    let html = mail.part("text/html")?.context("an HTML part")?;
    assert!(html.contains("my order is &lt;b&gt;late&lt;/b&gt;"), "the visitor's words are escaped: {html}");

    // The admins' outbox says it went, to whom, and what it was.
    let api = Api::new(&relay).await?;
    let mails = api.wait_outbox(1, |mail| mail["status"] == "sent").await?;
    assert_eq!(mails[0]["to"], ADMIN_EMAIL);
    assert_eq!(mails[0]["subject"], "New conversation on Demo site");
    assert_eq!(mails[0]["kind"], "new_conversation");

    // A site that writes in Chinese, to a chosen address, answered elsewhere.
    let (status, settings) = api
        .put(
            "/api/site/mail",
            json!({"language": "zh-CN", "reply_to": "Shop help <help@shop.test>", "notify_to": "team@shop.test"}),
        )
        .await?;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["smtp_enabled"], true);
    visitor_writes(&relay.ws_url(), "订单在哪里").await?;
    let mail = smtp.wait_for(2).await?.remove(1);
    assert_eq!(mail.header("Subject")?.as_deref(), Some("Demo site 有新的对话"));
    assert_eq!(mail.header("To")?.as_deref(), Some("team@shop.test"));
    let reply_to = mail.header("Reply-To")?.unwrap_or_default();
    assert!(reply_to.contains("Shop help") && reply_to.ends_with("<help@shop.test>"), "{reply_to}");
    assert_eq!(mail.header("Content-Language")?.as_deref(), Some("zh-CN"));
    let text = mail.part("text/plain")?.unwrap_or_default();
    assert!(text.contains("访客写道：") && text.contains("> 订单在哪里"), "{text}");
    assert!(mail.part("text/html")?.unwrap_or_default().contains("订单在哪里"));
    Ok(())
}

#[tokio::test]
async fn mails_queued_while_the_smtp_server_is_down_arrive_once_each_when_it_is_back() -> Result<()> {
    let mut smtp = SmtpServer::start().await?;
    let relay = start_mailing(&smtp, &[]).await?;
    let api = Api::new(&relay).await?;
    smtp.stop().await?;
    let lines: Vec<String> = (1..=5).map(|n| format!("while down {n}")).collect();
    for line in &lines {
        visitor_writes(&relay.ws_url(), line).await?;
    }
    // Each tried and refused, waiting for its retry.
    let mails = api.wait_outbox(5, |mail| mail["status"] == "retrying").await?;
    assert!(mails.iter().all(|mail| mail["last_error"].as_str().is_some_and(|e| !e.is_empty())), "{mails:?}");

    smtp.restart().await?;
    let texts = delivered_once(&smtp, &relay, 5).await?;
    each_once(&texts, &lines)?;
    Ok(())
}

#[tokio::test]
async fn mails_queued_before_a_kill_9_are_sent_once_after_the_restart() -> Result<()> {
    let mut smtp = SmtpServer::start().await?;
    let mut relay = start_mailing(&smtp, &[]).await?;
    smtp.stop().await?;
    let lines: Vec<String> = (1..=5).map(|n| format!("before the kill {n}")).collect();
    for line in &lines {
        visitor_writes(&relay.ws_url(), line).await?;
    }
    Api::new(&relay).await?.wait_outbox(5, |mail| mail["status"] == "retrying").await?;
    relay.kill9().await?;

    smtp.restart().await?;
    relay.restart().await?;
    let texts = delivered_once(&smtp, &relay, 5).await?;
    each_once(&texts, &lines)?;
    Ok(())
}

#[tokio::test]
async fn two_nodes_on_one_postgresql_outbox_send_each_mail_once() -> Result<()> {
    let smtp = SmtpServer::start().await?;
    let database = Database::create().await?;
    let a = start_mailing(&smtp, &["--database-url", database.url()]).await?;
    a.wait_healthy().await?;
    let b = start_mailing(&smtp, &["--database-url", database.url()]).await?;
    b.wait_healthy().await?;
    let lines: Vec<String> = (1..=10).map(|n| format!("on two nodes {n}")).collect();
    for (n, line) in lines.iter().enumerate() {
        let node = if n % 2 == 0 { &a } else { &b };
        visitor_writes(&node.ws_url(), line).await?;
    }
    let texts = delivered_once(&smtp, &a, 10).await?;
    each_once(&texts, &lines)?;
    Ok(())
}

#[tokio::test]
async fn without_smtp_nothing_is_queued_and_the_console_is_told() -> Result<()> {
    let relay = Relay::start().await?;
    visitor_writes(&relay.ws_url(), "anyone there?").await?;
    let api = Api::new(&relay).await?;
    let page = api.get("/api/mail/outbox").await?;
    assert_eq!(page["smtp_enabled"], false);
    assert_eq!(page["mails"], json!([]), "nothing queued without SMTP");
    assert_eq!(api.get("/api/site/mail").await?["smtp_enabled"], false);
    // And the relay goes on as ever.
    visitor_writes(&relay.ws_url(), "still here").await?;
    relay.wait_healthy().await?;
    Ok(())
}

#[tokio::test]
async fn bad_mail_settings_answer_400_and_change_nothing() -> Result<()> {
    let relay = Relay::start().await?;
    let api = Api::new(&relay).await?;
    let before = api.get("/api/site/mail").await?;
    for (body, field) in [
        (json!({"notify_to": "not an address"}), "notify_to"),
        (json!({"reply_to": "a@b@c"}), "reply_to"),
        (json!({"language": "fr"}), "language"),
        (json!({"missed_after_minutes": 100_000}), "missed_after_minutes"),
    ] {
        let (status, answer) = api.put("/api/site/mail", body.clone()).await?;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|error| error.contains(field)), "{answer}");
    }
    assert_eq!(api.get("/api/site/mail").await?, before);
    Ok(())
}

#[tokio::test]
async fn with_an_agent_online_only_the_unanswered_conversation_is_mailed_as_missed() -> Result<()> {
    let smtp = SmtpServer::start().await?;
    let relay = start_mailing(&smtp, &[]).await?;
    let api = Api::new(&relay).await?;
    let (status, answer) = api.put("/api/site/mail", json!({"missed_after_minutes": 1})).await?;
    assert_eq!(status, 200, "{answer}");

    let (agent, _agent_events) = Client::agent(relay.ws_url(), &api.token)?;
    agent.set_status(AgentStatus::Online)?;
    // A visitor is told when the agent is online: from then on the relay
    // counts them.
    let (probe, mut probe_events) = Client::visitor(relay.ws_url(), "demo")?;
    probe.conversation().await?;
    collect(&mut probe_events, 1, |event| match event {
        Event::Availability(a) if a.agents_online == 1 => Some(()),
        _ => None,
    })
    .await?;
    probe.stop();

    let answered = visitor_writes(&relay.ws_url(), "answered in time").await?;
    visitor_writes(&relay.ws_url(), "nobody answers").await?;
    agent.join(answered)?;
    agent.send(answered, Body::Text("here to help".into())).await?;

    // A minute on, the unanswered one is mailed; the answered one is
    // composed to nothing. No new-conversation mail: an agent was online.
    let outbox = tokio::time::timeout(Duration::from_secs(100), async {
        loop {
            let mails = api.get("/api/mail/outbox").await?["mails"].as_array().cloned().unwrap_or_default();
            if mails.len() == 2 && mails.iter().all(|mail| mail["status"] == "sent" || mail["status"] == "skipped") {
                return Ok::<_, anyhow::Error>(mails);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .context("the missed-chat mails were never done")??;
    let statuses: BTreeSet<(String, String)> = outbox
        .iter()
        .map(|mail| (mail["kind"].as_str().unwrap_or("").to_owned(), mail["status"].as_str().unwrap_or("").to_owned()))
        .collect();
    let expected = [("missed".to_owned(), "sent".to_owned()), ("missed".to_owned(), "skipped".to_owned())];
    assert_eq!(statuses, BTreeSet::from(expected));
    let received = smtp.received()?;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].header("Subject")?.as_deref(), Some("Missed conversation on Demo site"));
    let text = text_part(&received[0]);
    assert!(text.contains("waited 1 minutes") && text.contains("> nobody answers"), "{text}");
    Ok(())
}

/// Logs the admin in on the console at `relay` and opens the Settings page.
async fn console_settings(relay: &Relay) -> Result<Browser> {
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/console", relay.http_url())).await?;
    browser.wait_for(None, "!!document.querySelector('#email')").await?;
    browser.eval("document.querySelector('#email').focus()").await?;
    browser.type_text(ADMIN_EMAIL).await?;
    browser.eval("document.querySelector('#password').focus()").await?;
    browser.type_text(ADMIN_PASSWORD).await?;
    browser.press_enter().await?;
    browser.wait_for(None, "!!document.querySelector('.team')").await?;
    browser
        .wait_for(None, "(() => { const b = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Settings'); if (b) b.click(); return !!b; })()")
        .await?;
    browser.wait_for(None, "!!document.querySelector('.mail form')").await?;
    Ok(browser)
}

#[tokio::test]
async fn the_console_shows_the_outbox_and_says_when_smtp_is_not_configured() -> Result<()> {
    let mut smtp = SmtpServer::start().await?;
    let relay = start_mailing(&smtp, &[]).await?;
    visitor_writes(&relay.ws_url(), "sent fine").await?;
    smtp.wait_for(1).await?;
    smtp.stop().await?;
    visitor_writes(&relay.ws_url(), "while the server is down").await?;
    let api = Api::new(&relay).await?;
    api.wait_outbox(2, |mail| mail["status"] == "sent" || mail["status"] == "retrying").await?;

    let browser = console_settings(&relay).await?;
    browser
        .wait_for(None, "!!document.querySelector('.outbox .tag.mail-sent') && !!document.querySelector('.outbox .tag.mail-retrying')")
        .await
        .context("the outbox lists a sent and a retrying mail")?;
    let shown = browser.eval("document.querySelector('.mail').textContent").await?;
    let shown = shown.as_str().unwrap_or_default();
    assert!(shown.contains("New conversation on Demo site") && shown.contains(ADMIN_EMAIL), "{shown}");
    assert!(!shown.contains("SMTP not configured"), "{shown}");
    browser.eval("document.querySelector('.mail').scrollIntoView()").await?;
    browser.screenshot("console-mail-outbox").await?;

    // The console changes the settings through the form.
    browser.eval("document.querySelector('[name=notify_to]').focus()").await?;
    browser.type_text("team@shop.test").await?;
    browser
        .eval("[...document.querySelectorAll('.mail button')].find(b => b.textContent.includes('Save email')).click()")
        .await?;
    browser.wait_for(None, "document.querySelector('.mail .success')?.textContent.includes('saved')").await?;
    assert_eq!(api.get("/api/site/mail").await?["notify_to"], "team@shop.test");

    let plain = Relay::start().await?;
    let browser = console_settings(&plain).await?;
    browser
        .wait_for(
            None,
            "document.querySelector('.mail-off')?.textContent.includes('SMTP not configured on this relay')",
        )
        .await
        .context("a relay without SMTP says so")?;
    browser.eval("document.querySelector('.mail').scrollIntoView()").await?;
    browser.screenshot("console-mail-off").await?;
    Ok(())
}

#[tokio::test]
async fn smtp_without_a_sender_or_with_a_bad_url_stops_the_start_with_a_reason() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().to_string_lossy().into_owned();
    for (flags, reason) in [
        (vec!["--smtp-url", "smtp://127.0.0.1:2525"], "--smtp-url needs --mail-from"),
        (vec!["--smtp-url", "ftp://127.0.0.1", "--mail-from", FROM], "--smtp-url"),
        (vec!["--smtp-url", "smtp://127.0.0.1:2525", "--mail-from", "not an address"], "--mail-from"),
    ] {
        let mut args = vec!["--listen", "127.0.0.1:0", "--data-dir", &data];
        args.extend(flags);
        let output = kefu_tests::run_subcommand(&args).await?;
        let said = kefu_tests::said(&output);
        assert!(!output.status.success(), "{args:?} started: {said}");
        assert!(said.contains(reason), "{args:?}: {said}");
    }
    Ok(())
}
