//! A visitor who left gets the answer by mail and comes back to the same
//! conversation: the whole story through a real SMTP server (aiosmtpd,
//! `kefu_tests::smtp`) and real Chromium, resume links and their
//! refusals, the unsubscribe link, the site's batch delay, and the
//! satisfaction survey by mail, against a real relay.
//!
//! Needs `cargo xtask build-web` (the relay serves `target/web`),
//! Debian's chromium and aiosmtpd.

use anyhow::{Context, Result, ensure};
use kefu_protocol::frame::{Attribute, Author, Body, Identity};
use kefu_protocol::ids::{ConversationId, SiteId, SiteKey, Timestamp, VisitorId};
use kefu_relay::auth::mail_link;
use kefu_relay::store::Store;
use kefu_sdk::{Client, Events, Message};
use kefu_tests::browser::Browser;
use kefu_tests::smtp::{Received, SmtpServer};
use kefu_tests::{PATIENCE, Relay, collect, message, text};
use serde_json::{Value, json};

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

/// A relay that mails through `smtp`, and whose public URL is its own
/// address, so the links in its mails lead back to it: the port is chosen
/// first (another process could take it in between; none here does).
async fn mailing_relay(smtp: &SmtpServer) -> Result<Relay> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let (listen, public) = (format!("127.0.0.1:{port}"), format!("http://127.0.0.1:{port}"));
    let flags = ["--listen", &listen, "--public-url", &public, "--smtp-url", &smtp.url()];
    let relay =
        Relay::start_with(&[&flags[..], &["--mail-from", "Shop <help@shop.test>", "--mail-retry-secs", "1"]].concat())
            .await?;
    let token = relay.admin_token().await?;
    reqwest::Client::new()
        .put(format!("{}/api/site/follow-up", relay.http_url()))
        .bearer_auth(&token)
        .json(&json!({ "batch_delay_secs": 1 }))
        .send()
        .await?
        .error_for_status()?;
    Ok(relay)
}

/// The admin's view of the outbox, newest first.
async fn outbox(relay: &Relay, token: &str) -> Result<Vec<Value>> {
    let url = format!("{}/api/mail/outbox", relay.http_url());
    let page: Value =
        reqwest::Client::new().get(url).bearer_auth(token).send().await?.error_for_status()?.json().await?;
    Ok(page["mails"].as_array().cloned().unwrap_or_default())
}

/// Waits until the outbox holds `count` mails of `kind` and none of them
/// waits any more (sent or skipped); returns their statuses, oldest first.
async fn settled_mails(relay: &Relay, token: &str, kind: &str, count: usize) -> Result<Vec<String>> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let statuses: Vec<String> = outbox(relay, token)
            .await?
            .iter()
            .rev()
            .filter(|mail| mail["kind"] == kind)
            .map(|mail| mail["status"].as_str().unwrap_or_default().to_owned())
            .collect();
        if statuses.len() == count && statuses.iter().all(|status| status == "sent" || status == "skipped") {
            return Ok(statuses);
        }
        ensure!(tokio::time::Instant::now() < deadline, "{kind} mails in the outbox: {statuses:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The follow-ups of the visitor's replies, once `count` settled.
async fn settled_follow_ups(relay: &Relay, token: &str, count: usize) -> Result<Vec<String>> {
    settled_mails(relay, token, "visitor_replies", count).await
}

/// Waits until the visitor panel shows that `visitor` gave `email`.
async fn wait_for_email(relay: &Relay, token: &str, visitor: VisitorId, email: &str) -> Result<()> {
    let url = format!("{}/api/visitors/{}", relay.http_url(), visitor.0);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !reqwest::Client::new().get(&url).bearer_auth(token).send().await?.text().await?.contains(email) {
        ensure!(tokio::time::Instant::now() < deadline, "the visitor's email never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The mails delivered to the visitor (the agents are told of the new
/// chat too: nobody was online).
fn visitor_mails(smtp: &SmtpServer) -> Result<Vec<Received>> {
    let mut mails = smtp.received()?;
    mails.retain(|mail| mail.header("To").ok().flatten().is_some_and(|to| to.contains("@example.com")));
    Ok(mails)
}

async fn wait_for_visitor_mails(smtp: &SmtpServer, count: usize) -> Result<Vec<Received>> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mails = visitor_mails(smtp)?;
        if mails.len() >= count {
            return Ok(mails);
        }
        ensure!(tokio::time::Instant::now() < deadline, "{} mails to the visitor, not {count}", mails.len());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn part(mail: &Received, mime: &str) -> Result<String> {
    mail.part(mime)?.with_context(|| format!("a {mime} part"))
}

fn header(mail: &Received, name: &str) -> Result<String> {
    mail.header(name)?.with_context(|| format!("a {name} header"))
}

/// The first `http://...` link in `text` that contains `marker`.
fn link(text: &str, marker: &str) -> Result<String> {
    text.split_whitespace()
        .find(|word| word.starts_with("http") && word.contains(marker))
        .map(|word| word.trim_end_matches(['>', ')', '.']).to_owned())
        .with_context(|| format!("a link with {marker:?} in {text}"))
}

async fn request_transcript(relay: &Relay, token: &str, conversation: ConversationId) -> Result<(u16, Value)> {
    let url = format!("{}/api/conversations/{}/transcript", relay.http_url(), conversation.0);
    let answer = reqwest::Client::new().post(url).bearer_auth(token).send().await?;
    Ok((answer.status().as_u16(), answer.json().await?))
}

#[tokio::test]
async fn the_visitor_who_left_gets_one_mail_and_continues_the_chat_from_it_on_a_phone() -> Result<()> {
    let smtp = SmtpServer::start().await?;
    let relay = mailing_relay(&smtp).await?;
    let token = relay.admin_token().await?;
    let (agent, mut agent_events) = Client::agent(relay.ws_url(), &token)?;

    // 23:00: a visitor whose browser speaks Chinese writes, leaves its
    // address (the Attributes frame), and closes the tab.
    let desktop = Browser::start().await?;
    desktop
        .call(
            "Network.setUserAgentOverride",
            json!({ "userAgent": "Mozilla/5.0 (X11; Linux) kefu-test", "acceptLanguage": "zh-CN,zh;q=0.9" }),
        )
        .await?;
    desktop.goto(&format!("{}/c/demo", relay.http_url())).await?;
    desktop.wait_for(None, "(() => { const t = document.querySelector('textarea'); if (t) t.focus(); return !!t && document.activeElement === t; })()").await?;
    desktop.type_text("还有货吗？").await?;
    desktop.press_enter().await?;
    let first = collect(&mut agent_events, 1, from_visitor).await?.remove(0);
    let (conversation, Author::Visitor(visitor)) = (first.conversation, first.author) else {
        anyhow::bail!("a visitor wrote")
    };
    desktop
        .eval("dispatchEvent(new CustomEvent('kefu', { detail: { kefu: 1, type: 'setAttributes', attributes: { email: 'visitor@example.com' } } })) && true")
        .await?;
    let profile_url = format!("{}/api/visitors/{}", relay.http_url(), visitor.0);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let profile: Value = reqwest::Client::new().get(&profile_url).bearer_auth(&token).send().await?.json().await?;
        if profile.to_string().contains("visitor@example.com") {
            break;
        }
        ensure!(tokio::time::Instant::now() < deadline, "the visitor's email never arrived: {profile}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Closing the tab: once the page is gone nothing can read the replies.
    desktop.goto("about:blank").await?;
    drop(desktop);

    // 09:00: three quick replies make one mail.
    for words in ["Good morning!", "Yes, two are left.", "Shall I keep one for you?"] {
        agent.send(conversation, Body::Text(words.into())).await?;
    }
    wait_for_visitor_mails(&smtp, 1).await?;
    // A later reply, still unread, mails only itself.
    agent.send(conversation, Body::Text("It comes in blue, too.".into())).await?;
    let later = match wait_for_visitor_mails(&smtp, 2).await {
        Ok(received) => part(&received[1], "text/plain")?,
        Err(error) => anyhow::bail!("{error}; outbox: {:?}", outbox(&relay, &token).await?),
    };
    ensure!(
        later.contains("It comes in blue, too.") && !later.contains("Good morning!"),
        "only the new reply: {later}"
    );
    let (status, queued) = request_transcript(&relay, &token, conversation).await?;
    assert_eq!((status, queued["to"].as_str()), (200, Some("visitor@example.com")), "{queued}");
    smtp.wait_for_marker(|mail| mail.header("subject").ok().flatten().is_some_and(|s| s.contains("聊天记录"))).await?;
    let received = visitor_mails(&smtp)?;
    assert_eq!(received.len(), 3, "one mail for the burst, one for the later reply, then the transcript");
    let mail = &received[0];
    assert_eq!(header(mail, "Subject")?, "Demo site 回复了您的咨询");
    assert_eq!(header(mail, "To")?, "visitor@example.com");
    ensure!(header(mail, "Reply-To")?.contains("help@shop.test"), "Reply-To: {:?}", mail.header("Reply-To"));
    assert_eq!(header(mail, "Auto-Submitted")?, "auto-generated");
    assert_eq!(header(mail, "List-Unsubscribe-Post")?, "List-Unsubscribe=One-Click");
    let unsubscribe = header(mail, "List-Unsubscribe")?;
    let (text_part, html_part) = (part(mail, "text/plain")?, part(mail, "text/html")?);
    for reply in ["Good morning!", "Yes, two are left.", "Shall I keep one for you?"] {
        ensure!(text_part.contains(reply) && html_part.contains(reply), "{reply:?} in both parts:\n{text_part}");
    }
    ensure!(!text_part.contains("还有货吗"), "the visitor's own line is not news to it");
    ensure!(text_part.contains("继续聊天"), "in the visitor's language: {text_part}");
    let transcript = part(&received[2], "text/plain")?;
    ensure!(transcript.contains("还有货吗？") && transcript.contains("Shall I keep one for you?"), "{transcript}");

    // On the phone: the link from the mail opens the same conversation.
    let resume = link(&text_part, "resume=")?;
    ensure!(html_part.contains(&resume.replace('&', "&amp;")), "the HTML part links the same");
    let phone = Browser::start().await?;
    phone.phone(390, 844).await?;
    phone.goto(&resume).await?;
    let history = format!(
        "(() => {{ const b = {BUBBLES}; return ['还有货吗？', 'Good morning!', 'Yes, two are left.', 'Shall I keep one for you?'].every(t => b.includes(t)); }})()"
    );
    phone.wait_for(None, &history).await.context("the phone shows the whole conversation")?;
    assert_eq!(phone.eval("document.documentElement.lang").await?, "zh-CN", "in the mail's language");
    let url = phone.eval("location.href").await?;
    ensure!(!url.as_str().unwrap_or_default().contains("resume="), "the token left the address bar: {url}");
    phone.screenshot("follow-up-phone-from-mail").await?;
    phone.eval("(() => { const t = document.querySelector('textarea'); t.focus(); return true })()").await?;
    phone.type_text("好的，请帮我留一个").await?;
    phone.press_enter().await?;
    let got = collect(&mut agent_events, 1, from_visitor).await?.remove(0);
    assert_eq!(
        (text(&got), got.conversation, got.author),
        ("好的，请帮我留一个", conversation, Author::Visitor(visitor))
    );
    phone.goto("about:blank").await?;
    drop(phone);

    // One click on the unsubscribe link, and no more follow-ups.
    let url = unsubscribe.trim_start_matches('<').trim_end_matches('>');
    let done = reqwest::Client::new().post(url).body("List-Unsubscribe=One-Click").send().await?;
    assert_eq!(done.status(), 200);
    // Accepted means stored, with any mail it queues in the same commit.
    agent.send(conversation, Body::Text("Anything else?".into())).await?;
    let statuses = settled_follow_ups(&relay, &token, 2).await?;
    assert_eq!(statuses, ["sent", "sent"], "a reply to an unsubscribed visitor queues no follow-up");
    assert_eq!(visitor_mails(&smtp)?.len(), 3, "and no mail went out");
    Ok(())
}

#[tokio::test]
async fn a_visitor_who_read_the_reply_live_gets_no_mail_and_without_an_address_no_transcript() -> Result<()> {
    let smtp = SmtpServer::start().await?;
    let relay = mailing_relay(&smtp).await?;
    let token = relay.admin_token().await?;
    let (agent, mut agent_events) = Client::agent(relay.ws_url(), &token)?;
    let (visitor, mut visitor_events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text("hello?".into())).await?;
    collect(&mut agent_events, 1, from_visitor).await?;

    let (status, refused) = request_transcript(&relay, &token, conversation).await?;
    assert_eq!(status, 400);
    ensure!(refused["error"].as_str().unwrap_or_default().contains("no email address is known"), "{refused}");

    visitor.set_attributes(vec![Attribute { key: "email".into(), value: "reader@example.com".into() }])?;
    let Identity::Visitor { visitor: id, .. } = visitor.identity().await? else { anyhow::bail!("a visitor identity") };
    wait_for_email(&relay, &token, id, "reader@example.com").await?;
    agent.send(conversation, Body::Text("Hi, how can I help?".into())).await?;
    let reply =
        collect(&mut visitor_events, 1, |event| message(event).filter(|m| matches!(m.author, Author::Agent(_))))
            .await?
            .remove(0);
    visitor.ack(conversation, kefu_protocol::frame::ReceiptKind::Read, reply.seq)?;
    let statuses = settled_follow_ups(&relay, &token, 1).await?;
    assert_eq!(statuses, ["skipped"], "read live: nothing to mail");
    assert_eq!(visitor_mails(&smtp)?.len(), 0);
    Ok(())
}

#[tokio::test]
async fn an_agent_mails_the_transcript_from_the_console_and_is_told_when_no_address_is_known() -> Result<()> {
    let smtp = SmtpServer::start().await?;
    let relay = mailing_relay(&smtp).await?;
    let console = Browser::start().await?;
    console.goto(&format!("{}/console", relay.http_url())).await?;
    console.wait_for(None, "!!document.querySelector('#email')").await?;
    console.eval("document.querySelector('#email').focus()").await?;
    console.type_text(kefu_tests::ADMIN_EMAIL).await?;
    console.eval("document.querySelector('#password').focus()").await?;
    console.type_text(kefu_tests::ADMIN_PASSWORD).await?;
    console.press_enter().await?;
    console.wait_for(None, "document.querySelector('.team')?.textContent.includes('(you)')").await?;

    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text("Where is my parcel?".into())).await?;
    // The only chat opens by itself for the one agent online.
    console
        .wait_for(
            None,
            "[...document.querySelectorAll('.log .bubble')].some(b => b.textContent === 'Where is my parcel?')",
        )
        .await?;
    let click = "(() => { const b = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Email transcript'); if (b) b.click(); return !!b; })()";
    let toast =
        |words: &str| format!("[...document.querySelectorAll('.toast')].some(t => t.textContent.includes({words:?}))");

    console.wait_for(None, click).await?;
    console.wait_for(None, &toast("No email address is known")).await.context("told why not")?;

    visitor.set_attributes(vec![Attribute { key: "email".into(), value: "parcel@example.com".into() }])?;
    let profile_url = format!(
        "{}/api/visitors/{}",
        relay.http_url(),
        match visitor.identity().await? {
            Identity::Visitor { visitor, .. } => visitor.0,
            Identity::Agent { .. } => anyhow::bail!("a visitor"),
        }
    );
    let token = relay.admin_token().await?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !reqwest::Client::new()
        .get(&profile_url)
        .bearer_auth(&token)
        .send()
        .await?
        .text()
        .await?
        .contains("parcel@example.com")
    {
        ensure!(tokio::time::Instant::now() < deadline, "the visitor's email never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    console.wait_for(None, click).await?;
    console.wait_for(None, &toast("on its way to parcel@example.com")).await.context("told where it goes")?;
    console.screenshot("follow-up-console-transcript").await?;
    let mails = wait_for_visitor_mails(&smtp, 1).await?;
    assert_eq!(header(&mails[0], "Subject")?, "Your chat with Demo site");
    assert_eq!(header(&mails[0], "To")?, "parcel@example.com");
    ensure!(part(&mails[0], "text/plain")?.contains("Where is my parcel?"), "the whole conversation");
    ensure!(part(&mails[0], "text/html")?.contains("Where is my parcel?"), "in both parts");
    Ok(())
}

/// Turns the satisfaction survey on for the demo site, and sets the delay
/// after which a survey (and a follow-up) is mailed.
async fn ask_for_ratings(relay: &Relay, token: &str, delay_secs: u64) -> Result<()> {
    let client = reqwest::Client::new();
    let forms = json!({ "survey": { "enabled": true, "ask_again": true } });
    client
        .put(format!("{}/api/site/forms", relay.http_url()))
        .bearer_auth(token)
        .json(&forms)
        .send()
        .await?
        .error_for_status()?;
    client
        .put(format!("{}/api/site/follow-up", relay.http_url()))
        .bearer_auth(token)
        .json(&json!({ "batch_delay_secs": delay_secs }))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// An agent takes and closes `conversation`, and sees the "closed" line.
async fn take_and_close(agent: &Client, events: &mut Events, conversation: ConversationId) -> Result<()> {
    agent.wait_link(|link| *link == kefu_protocol::session::LinkState::Live).await?;
    agent.update(conversation, kefu_protocol::frame::Change::Take)?;
    agent.update(conversation, kefu_protocol::frame::Change::Close)?;
    collect(events, 1, |event| {
        message(event)
            .filter(|m| m.conversation == conversation)
            .filter(|m| matches!(m.body, Body::Event(kefu_protocol::frame::ConversationEvent::Closed { .. })))
    })
    .await?;
    Ok(())
}

/// The survey mails the visitor got, once there are `count`.
async fn survey_mails(smtp: &SmtpServer, count: usize) -> Result<Vec<Received>> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut mails = visitor_mails(smtp)?;
        mails.retain(|mail| mail.header("Subject").ok().flatten().is_some_and(|s| s.starts_with("How was your chat")));
        if mails.len() >= count {
            return Ok(mails);
        }
        ensure!(tokio::time::Instant::now() < deadline, "{} survey mails, not {count}", mails.len());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `GET` or `POST` a survey link as a browser in English would; the
/// status and the page.
async fn open_survey(url: &str, form: Option<&[(&str, &str)]>) -> Result<(u16, String)> {
    let client = reqwest::Client::new();
    let request = match form {
        None => client.get(url),
        Some(form) => client.post(url).form(form),
    };
    let answer = request.header("accept-language", "en-GB,en;q=0.9").send().await?;
    Ok((answer.status().as_u16(), answer.text().await?))
}

/// The "rated" lines of `conversation` the relay stored, as agents see
/// them in its history.
async fn rated_lines(relay: &Relay, token: &str, conversation: ConversationId) -> Result<Vec<Value>> {
    let url = format!("{}/api/conversations/{}/messages", relay.http_url(), conversation.0);
    let page: Value =
        reqwest::Client::new().get(url).bearer_auth(token).send().await?.error_for_status()?.json().await?;
    let messages = page.as_array().context("a list of messages")?;
    ensure!(messages.iter().any(|m| m.to_string().contains("\"Closed\"")), "the history has the close: {page}");
    Ok(messages.iter().filter(|m| m.to_string().contains("\"Rated\"")).cloned().collect())
}

#[tokio::test]
async fn a_visitor_who_left_rates_the_closed_chat_from_the_survey_mail_once() -> Result<()> {
    let smtp = SmtpServer::start().await?;
    let relay = mailing_relay(&smtp).await?;
    let token = relay.admin_token().await?;
    ask_for_ratings(&relay, &token, 1).await?;
    let (agent, mut agent_events) = Client::agent(relay.ws_url(), &token)?;
    let (visitor, conversation) = visitor_who_left(&relay, &mut agent_events, "Is my order on its way?").await?;
    wait_for_email(&relay, &token, visitor, "visitor@example.com").await?;

    take_and_close(&agent, &mut agent_events, conversation).await?;
    let mail = survey_mails(&smtp, 1).await?.remove(0);
    assert_eq!(header(&mail, "Subject")?, "How was your chat with Demo site?");
    assert_eq!(header(&mail, "Auto-Submitted")?, "auto-generated");
    ensure!(header(&mail, "List-Unsubscribe")?.contains("/api/unsubscribe?"), "an unsubscribe link");
    let (text_part, html_part) = (part(&mail, "text/plain")?, part(&mail, "text/html")?);
    let scores: Vec<String> = (1..=5).map(|n| link(&text_part, &format!("score={n}"))).collect::<Result<_>>()?;
    for url in &scores {
        ensure!(url.contains("/api/survey?site=demo&token=s1-"), "{url}");
        ensure!(html_part.contains(&url.replace('&', "&amp;")), "the HTML part links {url} too");
    }

    // Reopened meanwhile: the link is of a close that is no more.
    agent.update(conversation, kefu_protocol::frame::Change::Reopen)?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let reopened = loop {
        let (status, page) = open_survey(&scores[3], None).await?;
        if status != 200 {
            break (status, page);
        }
        ensure!(tokio::time::Instant::now() < deadline, "the reopen never showed: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(reopened.0, 409, "{}", reopened.1);
    ensure!(reopened.1.contains("reopened"), "{}", reopened.1);
    // Closed again: a second survey, for the new close.
    agent.update(conversation, kefu_protocol::frame::Change::Close)?;
    let second = survey_mails(&smtp, 2).await?.remove(1);
    let scores: Vec<String> =
        (1..=5).map(|n| link(&part(&second, "text/plain")?, &format!("score={n}"))).collect::<Result<_>>()?;

    // Opening a link (as a mail scanner would) rates nothing.
    let (status, page) = open_survey(&scores[3], None).await?;
    assert_eq!(status, 200, "{page}");
    ensure!(page.contains("value=\"4\" checked") && page.contains("name=\"comment\""), "the form: {page}");
    assert_eq!(rated_lines(&relay, &token, conversation).await?.len(), 0, "a GET rates nothing");

    // The page's button: the rating, once.
    let (status, page) = open_survey(&scores[3], Some(&[("score", "4"), ("comment", "Quick and kind")])).await?;
    assert_eq!(status, 200, "{page}");
    ensure!(page.contains("Thank you for your rating"), "{page}");
    let line = collect(&mut agent_events, 1, |event| {
        message(event).filter(|m| matches!(m.body, Body::Event(kefu_protocol::frame::ConversationEvent::Rated { .. })))
    })
    .await?
    .remove(0);
    assert_eq!(
        line.body,
        Body::Event(kefu_protocol::frame::ConversationEvent::Rated { score: 4, comment: "Quick and kind".into() }),
        "agents see the rating as a line"
    );
    for form in [None, Some(&[("score", "1"), ("comment", "again")][..])] {
        let (status, page) = open_survey(&scores[0], form).await?;
        assert_eq!(status, 200, "{page}");
        ensure!(page.contains("rated already"), "a used link says so: {page}");
    }
    let forged = scores[3].replace("token=s1-", "token=s1-9");
    let (status, page) = open_survey(&forged, Some(&[("score", "5")])).await?;
    assert_eq!(status, 400, "{page}");
    ensure!(page.contains("not valid"), "{page}");
    let (status, page) = open_survey(&scores[3], Some(&[("score", "9")])).await?;
    assert_eq!((status, page.contains("Pick a score")), (400, true), "{page}");
    assert_eq!(rated_lines(&relay, &token, conversation).await?.len(), 1, "one rating, whatever was clicked after");
    assert_eq!(settled_mails(&relay, &token, "survey", 2).await?, ["sent", "sent"]);
    Ok(())
}

#[tokio::test]
async fn a_visitor_who_rates_in_the_widget_gets_no_survey_mail() -> Result<()> {
    use kefu_protocol::frame::{Attributes, ConversationEvent, Rate, Send};
    use kefu_protocol::ids::ClientMessageId;
    use kefu_protocol::{ClientFrame, ServerFrame};

    let smtp = SmtpServer::start().await?;
    let relay = mailing_relay(&smtp).await?;
    let token = relay.admin_token().await?;
    // Long enough for a visitor still on the page to rate first.
    ask_for_ratings(&relay, &token, 5).await?;
    let (agent, mut agent_events) = Client::agent(relay.ws_url(), &token)?;
    let (mut visitor, welcome) = kefu_tests::raw::Raw::visitor(&relay.ws_url(), "demo").await?;
    let Identity::Visitor { visitor: id, conversation, .. } = welcome.identity else {
        anyhow::bail!("a visitor identity")
    };
    let words = Body::Text("Do you ship abroad?".into());
    visitor.send(&ClientFrame::Send(Send { conversation, client_id: ClientMessageId(1), body: words })).await?;
    let email = Attribute { key: "email".into(), value: "stays@example.com".into() };
    visitor.send(&ClientFrame::Attributes(Attributes { set: vec![email] })).await?;
    wait_for_email(&relay, &token, id, "stays@example.com").await?;

    take_and_close(&agent, &mut agent_events, conversation).await?;
    visitor
        .until(|frame| match frame {
            ServerFrame::Message(m) if matches!(m.body, Body::Event(ConversationEvent::Closed { .. })) => Some(()),
            _ => None,
        })
        .await?;
    visitor.send(&ClientFrame::Rate(Rate { conversation, score: 5, comment: String::new() })).await?;
    visitor
        .until(|frame| match frame {
            ServerFrame::Message(m) if matches!(m.body, Body::Event(ConversationEvent::Rated { score: 5, .. })) => {
                Some(())
            }
            _ => None,
        })
        .await?;
    assert_eq!(settled_mails(&relay, &token, "survey", 1).await?, ["skipped"], "rated in the widget: no survey mail");
    assert_eq!(visitor_mails(&smtp)?.len(), 0);
    Ok(())
}

/// The visitor's next answer to an ask for its transcript: where it went,
/// or the error's code and text.
async fn transcript_answer(
    events: &mut Events,
) -> Result<std::result::Result<String, (kefu_protocol::frame::ErrorCode, String)>> {
    loop {
        let event = tokio::time::timeout(PATIENCE, events.next()).await?.context("the visitor stopped")?;
        match event {
            kefu_sdk::Event::TranscriptMailed(mailed) => return Ok(Ok(mailed.to)),
            kefu_sdk::Event::Error(error) => return Ok(Err((error.code, error.text))),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_visitor_mails_itself_the_transcript_at_most_once_in_five_minutes() -> Result<()> {
    use kefu_protocol::frame::ErrorCode;

    let smtp = SmtpServer::start().await?;
    let relay = mailing_relay(&smtp).await?;
    let token = relay.admin_token().await?;
    let (_agent, mut agent_events) = Client::agent(relay.ws_url(), &token)?;
    let (visitor, mut visitor_events) = Client::visitor(relay.ws_url(), "demo")?;
    let Identity::Visitor { visitor: id, conversation, .. } = visitor.identity().await? else {
        anyhow::bail!("a visitor identity")
    };
    visitor.send(conversation, Body::Text("Can I get a copy of this?".into())).await?;
    collect(&mut agent_events, 1, from_visitor).await?;

    visitor.mail_transcript(conversation)?;
    let refused = transcript_answer(&mut visitor_events).await?;
    let Err((ErrorCode::Forbidden, why)) = refused else { anyhow::bail!("no address, yet: {refused:?}") };
    ensure!(why.contains("no email address is known"), "{why}");

    visitor.set_attributes(vec![Attribute { key: "email".into(), value: "copy@example.com".into() }])?;
    wait_for_email(&relay, &token, id, "copy@example.com").await?;
    visitor.mail_transcript(conversation)?;
    assert_eq!(transcript_answer(&mut visitor_events).await?, Ok("copy@example.com".to_owned()));
    visitor.mail_transcript(conversation)?;
    let again = transcript_answer(&mut visitor_events).await?;
    let Err((ErrorCode::RateLimited, why)) = again else { anyhow::bail!("asked again at once: {again:?}") };
    ensure!(why.contains("ask again in"), "{why}");

    // An agent is not limited: its transcript is the marker after which
    // the visitor's second ask would have shown up too.
    let (status, queued) = request_transcript(&relay, &token, conversation).await?;
    assert_eq!((status, queued["to"].as_str()), (200, Some("copy@example.com")), "{queued}");
    let mails = wait_for_visitor_mails(&smtp, 2).await?;
    let rows = settled_mails(&relay, &token, "transcript", 2).await?;
    assert_eq!(rows, ["sent", "sent"], "the visitor's one and the agent's");
    assert_eq!(visitor_mails(&smtp)?.len(), 2, "{mails:?}");
    for mail in &mails {
        assert_eq!(header(mail, "Subject")?, "Your chat with Demo site");
        ensure!(part(mail, "text/plain")?.contains("Can I get a copy of this?"), "the whole chat");
    }
    Ok(())
}

#[tokio::test]
async fn a_visitor_asks_for_the_chat_by_mail_in_the_widget_and_gives_its_address_there() -> Result<()> {
    let smtp = SmtpServer::start().await?;
    let relay = mailing_relay(&smtp).await?;
    let token = relay.admin_token().await?;
    let (_agent, mut agent_events) = Client::agent(relay.ws_url(), &token)?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/c/demo", relay.http_url())).await?;
    // Nothing to mail before the visitor wrote.
    browser.wait_for(None, "!!document.querySelector('textarea')").await?;
    // What the visitor can see: nothing in a hidden part counts.
    let shown = |selector: &str| {
        format!("(() => {{ const e = document.querySelector('{selector}'); return !!e && !e.closest('[hidden]'); }})()")
    };
    ensure!(browser.eval(&shown(".kefu-transcript")).await? == Value::Bool(false), "shown early");
    browser.eval("(() => { const t = document.querySelector('textarea'); t.focus(); return true })()").await?;
    browser.type_text("Please send me the steps").await?;
    browser.press_enter().await?;
    collect(&mut agent_events, 1, from_visitor).await?;

    let click = |selector: &str| {
        format!(
            "(() => {{ const b = document.querySelector('{selector}'); const ok = !!b && !b.closest('[hidden]'); if (ok) b.click(); return ok; }})()"
        )
    };
    browser.wait_for(None, &click(".kefu-transcript-button")).await.context("the button shows")?;
    // No address known: the widget asks for one, and checks it.
    browser.wait_for(None, &shown(".kefu-transcript-email")).await?;
    browser.eval("document.querySelector('.kefu-transcript-email').focus()").await?;
    browser.type_text("steps@example").await?;
    browser.wait_for(None, &click(".kefu-transcript-send")).await?;
    browser.wait_for(None, &shown(".kefu-transcript .kefu-field-error")).await?;
    browser.type_text(".com").await?;
    browser.wait_for(None, &click(".kefu-transcript-send")).await?;
    let told = browser
        .wait_for(
            None,
            "document.querySelector('.kefu-transcript-status')?.textContent === 'This chat is on its way to steps@example.com.'",
        )
        .await;
    if let Err(error) = told {
        let shown = browser.eval("document.querySelector('.kefu-transcript')?.outerHTML").await?;
        anyhow::bail!("not told where it goes ({error}): {shown}");
    }
    browser.screenshot("follow-up-widget-transcript").await?;
    let mail = wait_for_visitor_mails(&smtp, 1).await?.remove(0);
    assert_eq!(header(&mail, "To")?, "steps@example.com");
    assert_eq!(header(&mail, "Subject")?, "Your chat with Demo site");
    ensure!(part(&mail, "text/plain")?.contains("Please send me the steps"), "the chat");
    ensure!(part(&mail, "text/html")?.contains("Please send me the steps"), "in both parts");

    // Asked again at once: told so, in the widget.
    browser.wait_for(None, &click(".kefu-transcript-button")).await?;
    browser
        .wait_for(None, "document.querySelector('.kefu-transcript-status')?.textContent.includes('just sent')")
        .await
        .context("told it was just sent")?;
    Ok(())
}
