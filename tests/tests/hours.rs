//! Business hours end to end: the real relay, its HTTP API, SDK agents and
//! visitors. Hours are saved over `PUT /api/site/hours`; what the relay
//! says (the widget look, visitors' availability, who gets a chat) is
//! checked against instants this test works out on its own.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use chrono::{DateTime, Duration, Utc};
use kefu_protocol::frame::{AgentStatus, Attribute, Availability, Body, ConversationUpdate, ErrorCode, Presence};
use kefu_protocol::ids::{AgentId, ConversationId, Seq, Timestamp};
use kefu_sdk::{Client, Event, Events};
use kefu_tests::{ADMIN_PASSWORD, PATIENCE, Relay};
use serde_json::{Value, json};

/// An HTTP call's status and JSON body.
async fn call(
    relay: &Relay,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", relay.http_url())).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

async fn put_hours(relay: &Relay, token: &str, body: Value) -> Result<(u16, Value)> {
    call(relay, reqwest::Method::PUT, "/api/site/hours", token, Some(body)).await
}

async fn widget_look(relay: &Relay) -> Result<Value> {
    let look = reqwest::get(format!("{}/api/widget/demo", relay.http_url())).await?;
    ensure!(look.status() == 200, "widget look: {}", look.status());
    Ok(look.json().await?)
}

fn ms(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

/// An agent of the demo site, signed in over the SDK.
struct Agent {
    id: AgentId,
    client: Client,
    events: Events,
    seen: HashMap<ConversationId, ConversationUpdate>,
}

impl Agent {
    async fn create(relay: &Relay, admin: &str, email: &str) -> Result<Agent> {
        let new = json!({ "email": email, "name": email, "password": ADMIN_PASSWORD, "role": "agent" });
        let (status, body) = call(relay, reqwest::Method::POST, "/api/agents", admin, Some(new)).await?;
        ensure!(status == 201, "creating {email}: {body}");
        let token = kefu_sdk::login(&relay.http_url(), email, ADMIN_PASSWORD).await?.token;
        let (client, events) = Client::agent(relay.ws_url(), &token)?;
        let id = match client.identity().await? {
            kefu_protocol::frame::Identity::Agent { agent, .. } => agent,
            other => bail!("{email} welcomed as {other:?}"),
        };
        Ok(Agent { id, client, events, seen: HashMap::new() })
    }

    /// Says Online and waits until the roster shows it: the relay has
    /// taken the status (and assigned whatever it was going to).
    async fn go_online(&mut self) -> Result<()> {
        self.client.set_status(AgentStatus::Online)?;
        let me = self.id;
        self.until(|event, _| {
            matches!(event, Event::Roster(roster)
                if roster.agents.iter().any(|m| m.agent == me && m.presence == Presence::Online))
        })
        .await
    }

    /// Reads events, keeping the conversations' state, until `done`.
    async fn until(
        &mut self,
        mut done: impl FnMut(&Event, &HashMap<ConversationId, ConversationUpdate>) -> bool,
    ) -> Result<()> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let event = self.events.next().await.context("agent stopped")?;
                if let Event::Conversation(update) = &event {
                    self.seen.insert(update.conversation, *update);
                }
                if done(&event, &self.seen) {
                    return Ok::<_, anyhow::Error>(());
                }
            }
        })
        .await
        .context("the agent never heard what it waited for")?
    }
}

/// The next availability a visitor is told that satisfies `wanted`.
async fn availability(events: &mut Events, wanted: impl Fn(&Availability) -> bool) -> Result<Availability> {
    availability_within(PATIENCE, events, wanted).await
}

async fn availability_within(
    patience: std::time::Duration,
    events: &mut Events,
    wanted: impl Fn(&Availability) -> bool,
) -> Result<Availability> {
    tokio::time::timeout(patience, async {
        loop {
            match events.next().await.context("visitor stopped")? {
                Event::Availability(availability) if wanted(&availability) => return Ok(availability),
                _ => {}
            }
        }
    })
    .await
    .context("the visitor was never told the expected availability")?
}

#[tokio::test]
async fn agents_read_hours_admins_write_them_and_bad_ones_are_refused_with_the_reason() -> Result<()> {
    let relay = Relay::start().await?;
    let admin = relay.admin_token().await?;
    let (status, never_set) = call(&relay, reqwest::Method::GET, "/api/site/hours", &admin, None).await?;
    ensure!(status == 200, "{never_set}");
    assert_eq!((never_set["enabled"].as_bool(), never_set["open_now"].as_bool()), (Some(false), Some(true)));
    assert_eq!(never_set["next_opening"], Value::Null, "always open: nothing to wait for");

    let refused = [
        (json!({ "enabled": true, "calendar": { "zone": "Mars/Olympus" } }), "unknown time zone \"Mars/Olympus\""),
        (
            json!({ "enabled": true, "calendar": { "zone": "UTC", "week": { "mon": [
                { "from": "09:00", "to": "13:00" }, { "from": "12:00", "to": "17:00" }] } } }),
            "Mon: 09:00-13:00 and 12:00-17:00 overlap",
        ),
        (
            json!({ "enabled": true, "calendar": { "zone": "UTC", "week": { "mon": [{ "from": "9", "to": "17:00" }] } } }),
            "\"9\" is not a time like 09:00",
        ),
        (
            json!({ "enabled": true, "calendar": { "zone": "UTC", "week": { "sun": [{ "from": "23:00", "to": "02:00" }],
                "mon": [{ "from": "01:00", "to": "05:00" }] } } }),
            "Sun and Mon: 23:00-02:00 and 01:00-05:00 overlap",
        ),
        (json!({ "enabled": true, "calendar": { "zone": "UTC" }, "extra": 1 }), "unknown field `extra`"),
    ];
    for (body, reason) in refused {
        let (status, answer) = put_hours(&relay, &admin, body.clone()).await?;
        ensure!(status == 400, "{body} answered {status} {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        ensure!(error.contains(reason), "{body}: the error {error:?} does not say {reason:?}");
    }
    let (_, after_refusals) = call(&relay, reqwest::Method::GET, "/api/site/hours", &admin, None).await?;
    assert_eq!(after_refusals, never_set, "a refused save changes nothing");

    // Closed now; opens the day after tomorrow at 09:00 UTC, a holiday
    // tomorrow, and only the offline form meanwhile.
    let today = now().date_naive();
    let opening_day = today + Duration::days(2);
    let opens_at = opening_day.and_hms_opt(9, 0, 0).context("time")?.and_utc();
    let hours = json!({
        "enabled": true,
        "offline_form_only": true,
        "calendar": { "zone": "UTC", "exceptions": [
            { "date": (today + Duration::days(1)).to_string() },
            { "date": opening_day.to_string(), "intervals": [{ "from": "09:00", "to": "10:00" }] },
        ] },
    });
    let mut agent = Agent::create(&relay, &admin, "ann@kefu.test").await?;
    let agent_token = kefu_sdk::login(&relay.http_url(), "ann@kefu.test", ADMIN_PASSWORD).await?.token;
    let (status, _) = put_hours(&relay, &agent_token, hours.clone()).await?;
    ensure!(status == 403, "an agent saved hours: {status}");
    let (status, saved) = put_hours(&relay, &admin, hours).await?;
    ensure!(status == 200, "{saved}");
    let (_, read) = call(&relay, reqwest::Method::GET, "/api/site/hours", &agent_token, None).await?;
    assert_eq!(read, saved, "agents read what the admin saved");
    assert_eq!(read["calendar"]["exceptions"][0]["intervals"], json!([]), "a date without intervals is closed");
    assert_eq!(read["open_now"], false);
    assert_eq!(read["next_opening"].as_u64(), Some(ms(opens_at)));
    assert_eq!(read["next_closing"].as_u64(), Some(ms(opens_at + Duration::hours(1))));

    let look = widget_look(&relay).await?;
    assert_eq!(
        (look["hours"].as_bool(), look["open_now"].as_bool(), look["offline_form_only"].as_bool()),
        (Some(true), Some(false), Some(true))
    );
    assert_eq!(look["next_opening"].as_u64(), Some(ms(opens_at)));

    // Visitors are told the site is out of hours and when it opens; an
    // agent who says Online now (after closing) counts.
    let (_visitor, mut events) = Client::visitor(relay.ws_url(), "demo")?;
    let told = availability(&mut events, |_| true).await?;
    assert_eq!(told, Availability { agents_online: 0, out_of_hours: true, opens_at: Some(Timestamp(ms(opens_at))) });
    agent.go_online().await?;
    let told = availability(&mut events, |a| a.agents_online == 1).await?;
    assert!(told.out_of_hours);

    // Hours off again: always open, the calendar kept for next time.
    let off = json!({ "enabled": false, "calendar": saved["calendar"] });
    let (status, off) = put_hours(&relay, &admin, off).await?;
    ensure!(status == 200, "{off}");
    assert_eq!(
        (off["open_now"].as_bool(), off["calendar"]["exceptions"].as_array().map(Vec::len)),
        (Some(true), Some(2))
    );
    let told = availability(&mut events, |a| !a.out_of_hours).await?;
    assert_eq!(told, Availability::in_hours(1));
    assert_eq!(widget_look(&relay).await?["offline_form_only"], false);
    Ok(())
}

/// Now, as the relay's clock has it.
fn now() -> DateTime<Utc> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    DateTime::from_timestamp_millis(i64::try_from(since.as_millis()).unwrap_or(0)).unwrap_or_default()
}

#[tokio::test]
async fn out_of_hours_only_an_agent_who_said_online_after_closing_takes_chats() -> Result<()> {
    // The site closes at the next whole minute (calendars count minutes),
    // leaving a few seconds to set up before it.
    let minute = (now() + Duration::seconds(5)).timestamp().div_euclid(60) + 1;
    let mut closing = DateTime::from_timestamp(minute * 60, 0).context("time")?;
    if closing.format("%H:%M").to_string() == "00:00" {
        // Closing "at 00:00" would be an empty 00:00-00:00 interval.
        closing += Duration::minutes(1);
        while now().date_naive() != closing.date_naive() {
            tokio::task::yield_now().await;
        }
    }
    let relay = Relay::start().await?;
    let admin = relay.admin_token().await?;
    let until = closing.format("%H:%M").to_string();
    let day = || json!([{ "from": "00:00", "to": until }]);
    let week =
        json!({ "mon": day(), "tue": day(), "wed": day(), "thu": day(), "fri": day(), "sat": day(), "sun": day() });
    let (status, saved) =
        put_hours(&relay, &admin, json!({ "enabled": true, "calendar": { "zone": "UTC", "week": week } })).await?;
    ensure!(status == 200, "{saved}");
    ensure!(saved["open_now"] == true, "the site should be open until {closing}: {saved}");
    assert_eq!(saved["next_closing"].as_u64(), Some(ms(closing)));

    // Ann says Online in hours, as a console does in the afternoon.
    let mut ann = Agent::create(&relay, &admin, "ann@kefu.test").await?;
    ann.go_online().await?;
    let (visitor, mut visitor_events) = Client::visitor(relay.ws_url(), "demo")?;
    let told = availability(&mut visitor_events, |_| true).await?;
    assert_eq!(told, Availability::in_hours(1));

    // The relay's clock closes the site: Ann's Online is the afternoon's.
    let to_closing = (closing - now()).to_std().unwrap_or_default();
    let told = availability_within(to_closing + PATIENCE, &mut visitor_events, |a| a.out_of_hours).await?;
    let reopening = (closing.date_naive() + Duration::days(1)).and_hms_opt(0, 0, 0).context("time")?.and_utc();
    assert_eq!(told, Availability { agents_online: 0, out_of_hours: true, opens_at: Some(Timestamp(ms(reopening))) });
    ensure!(now() >= closing, "told before closing");

    // A visitor writes at night: the chat waits, Ann is not given it.
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text("anyone there?".into())).await?;
    ann.until(|_, seen| seen.get(&conversation).is_some_and(|c| c.waiting_since.is_some())).await?;
    // Bob says Online now, after closing: he takes it, although Ann
    // (created first, never assigned) would be first in the round robin.
    let mut bob = Agent::create(&relay, &admin, "bob@kefu.test").await?;
    bob.go_online().await?;
    bob.until(|_, seen| seen.get(&conversation).is_some_and(|c| c.assignee.is_some())).await?;
    assert_eq!(bob.seen[&conversation].assignee, Some(bob.id), "the chat went to whoever chose to answer at night");
    availability(&mut visitor_events, |a| a.agents_online == 1).await?;

    // Ann says Online again, at night: now she counts too.
    ann.go_online().await?;
    let told = availability(&mut visitor_events, |a| a.agents_online == 2).await?;
    assert!(told.out_of_hours);
    Ok(())
}

/// The widget's header subtitle, once it says something about the hours.
async fn after_hours_notice(browser: &kefu_tests::browser::Browser) -> Result<String> {
    let shown = browser
        .wait_for(
            None,
            "(() => { const e = document.querySelector('.kefu-after-hours'); return e && e.textContent; })()",
        )
        .await?;
    Ok(shown.as_str().unwrap_or_default().to_owned())
}

/// How the widget should write `at` in `zone`: a weekday (the opening is
/// days away in every zone here) and the 24-hour time there.
fn local_opening(at: DateTime<Utc>, zone: chrono_tz::Tz, weekdays: [&str; 7]) -> String {
    use chrono::{Datelike, Timelike};
    let local = at.with_timezone(&zone);
    let day = weekdays[local.weekday().num_days_from_sunday() as usize];
    format!("{day} {:02}:{:02}", local.hour(), local.minute())
}

#[tokio::test]
async fn a_visitor_sees_when_the_site_opens_in_their_own_zone_and_language() -> Result<()> {
    let relay = Relay::start().await?;
    let admin = relay.admin_token().await?;
    // Closed until three days from now, 14:30 UTC: a weekday away in New
    // York (09:30 or 10:30) and in Shanghai (22:30), whatever today is.
    let opening_day = now().date_naive() + Duration::days(3);
    let opens_at = opening_day.and_hms_opt(14, 30, 0).context("time")?.and_utc();
    let hours = json!({ "enabled": true, "calendar": { "zone": "UTC", "exceptions": [
        { "date": opening_day.to_string(), "intervals": [{ "from": "14:30", "to": "18:00" }] }] } });
    let (status, saved) = put_hours(&relay, &admin, hours).await?;
    ensure!(status == 200 && saved["next_opening"].as_u64() == Some(ms(opens_at)), "{saved}");

    let english = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    let chinese = ["星期日", "星期一", "星期二", "星期三", "星期四", "星期五", "星期六"];
    let visitors = [
        (
            "America/New_York",
            "en",
            format!("We're back {} (your time)", local_opening(opens_at, chrono_tz::America::New_York, english)),
        ),
        (
            "Asia/Shanghai",
            "en",
            format!("We're back {} (your time)", local_opening(opens_at, chrono_tz::Asia::Shanghai, english)),
        ),
        (
            "Asia/Shanghai",
            "zh-CN",
            format!("我们将于{}（您的当地时间）回来", local_opening(opens_at, chrono_tz::Asia::Shanghai, chinese)),
        ),
    ];
    for (zone, lang, expected) in visitors {
        let browser = kefu_tests::browser::Browser::start().await?;
        browser.call("Emulation.setTimezoneOverride", json!({ "timezoneId": zone })).await?;
        browser.goto(&format!("{}/c/demo?lang={lang}", relay.http_url())).await?;
        let shown = after_hours_notice(&browser).await?;
        ensure!(shown.contains(&expected), "{zone} {lang}: the widget says {shown:?}, expected {expected:?}");
        if lang == "zh-CN" {
            let shot = browser.screenshot("hours-widget-zh-cn").await?;
            eprintln!("screenshot: {}", shot.display());
        }
        ensure!(browser.errors().is_empty(), "{:?}", browser.errors());
    }
    Ok(())
}

/// Sets a console field as typing would: the value, then an input event.
async fn fill(browser: &kefu_tests::browser::Browser, selector: &str, value: &str) -> Result<()> {
    let done = browser
        .eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); if (!e) return false; e.value = {value:?}; \
             e.dispatchEvent(new Event('input', {{ bubbles: true }})); return true; }})()"
        ))
        .await?;
    ensure!(done == true, "no field {selector}");
    Ok(())
}

/// Clicks the first element `selector` finds, once there is one.
async fn click(browser: &kefu_tests::browser::Browser, selector: &str) -> Result<()> {
    browser
        .wait_for(
            None,
            &format!("(() => {{ const e = document.querySelector({selector:?}); if (e) e.click(); return !!e; }})()"),
        )
        .await
        .with_context(|| format!("nothing to click at {selector}"))?;
    Ok(())
}

#[tokio::test]
async fn an_admin_edits_hours_in_the_console_and_the_api_reads_them_back() -> Result<()> {
    let relay = Relay::start().await?;
    let console = kefu_tests::browser::Browser::start().await?;
    console.goto(&format!("{}/console", relay.http_url())).await?;
    console.wait_for(None, "!!document.querySelector('#email')").await?;
    console.eval("document.querySelector('#email').focus()").await?;
    console.type_text(kefu_tests::ADMIN_EMAIL).await?;
    console.eval("document.querySelector('#password').focus()").await?;
    console.type_text(ADMIN_PASSWORD).await?;
    console.press_enter().await?;
    console
        .wait_for(None, "(() => { const b = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Settings'); if (b) b.click(); return !!b; })()")
        .await?;
    console.wait_for(None, "!!document.querySelector('form.hours [name=zone]')").await?;

    click(&console, "form.hours [name=hours_enabled]").await?;
    // Saturday night into Sunday, and a holiday.
    click(&console, "[data-day=sat] [name=add_interval]").await?;
    fill(&console, "[data-day=sat] [name=from]", "22:00").await?;
    fill(&console, "[data-day=sat] [name=to]", "02:00").await?;
    click(&console, "[name=add_exception]").await?;
    fill(&console, "[name=exception_date]", "2026-12-25").await?;
    // A zone the relay does not know: its reason is shown, nothing saved.
    fill(&console, "form.hours [name=zone]", "Mars/Olympus").await?;
    click(&console, "[name=save_hours]").await?;
    let error = console.wait_for(None, "document.querySelector('.admin .error')?.textContent").await?;
    ensure!(error.as_str().is_some_and(|e| e.contains("Unknown time zone \"Mars/Olympus\"")), "shown: {error}");
    let admin = relay.admin_token().await?;
    let (_, unchanged) = call(&relay, reqwest::Method::GET, "/api/site/hours", &admin, None).await?;
    assert_eq!(unchanged["enabled"], false, "the refused save changed nothing");

    fill(&console, "form.hours [name=zone]", "Asia/Shanghai").await?;
    click(&console, "[name=save_hours]").await?;
    console
        .wait_for(None, "document.querySelector('.admin .success')?.textContent.includes('Business hours saved')")
        .await?;
    console.eval("document.querySelector('form.hours').scrollIntoView()").await?;
    let shot = console.screenshot("console-hours-editor").await?;
    eprintln!("screenshot: {}", shot.display());

    let (status, saved) = call(&relay, reqwest::Method::GET, "/api/site/hours", &admin, None).await?;
    ensure!(status == 200, "{saved}");
    assert_eq!(saved["enabled"], true);
    assert_eq!(saved["calendar"]["zone"], "Asia/Shanghai");
    assert_eq!(saved["calendar"]["week"]["sat"], json!([{ "from": "22:00", "to": "02:00" }]));
    assert_eq!(
        saved["calendar"]["week"]["mon"],
        json!([{ "from": "09:00", "to": "17:00" }]),
        "the default weekdays kept"
    );
    assert_eq!(saved["calendar"]["exceptions"], json!([{ "date": "2026-12-25", "intervals": [] }]));
    ensure!(console.errors().is_empty(), "{:?}", console.errors());
    Ok(())
}

/// "Offline form only" holds for any client, not just the widget: out of
/// hours a visitor's first message needs an address to answer at.
#[tokio::test]
async fn out_of_hours_an_offline_form_only_site_opens_no_chat_without_an_email() -> Result<()> {
    let relay = Relay::start().await?;
    let admin = relay.admin_token().await?;
    // No interval in the week: closed now, whatever the time.
    let closed = |offline_form_only| json!({ "enabled": true, "calendar": { "zone": "UTC" }, "offline_form_only": offline_form_only });
    let (status, saved) = put_hours(&relay, &admin, closed(false)).await?;
    ensure!(status == 200 && saved["open_now"] == false, "{saved}");

    // Out of hours a site that takes chats takes one without an address.
    let (early, _early_events) = Client::visitor(relay.ws_url(), "demo")?;
    let early_chat = early.conversation().await?;
    early.send(early_chat, Body::Text("before the form was required".into())).await?;

    let (status, saved) = put_hours(&relay, &admin, closed(true)).await?;
    ensure!(status == 200 && saved["offline_form_only"] == true, "{saved}");
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    match visitor.send(conversation, Body::Text("no address given".into())).await {
        Err(kefu_sdk::Error::Rejected(rejected)) => {
            assert_eq!(rejected.code, ErrorCode::Forbidden);
            ensure!(rejected.text.contains("email address"), "the refusal says what is missing: {:?}", rejected.text);
        }
        other => bail!("a first message without an address was not refused: {other:?}"),
    }
    // A chat opened before goes on.
    early.send(early_chat, Body::Text("still here".into())).await?;

    // With the address the same visitor's message opens the chat, as
    // the first line of it: the refused one was not stored.
    visitor.set_attributes(vec![Attribute { key: "email".into(), value: "vera@example.com".into() }])?;
    let accepted = visitor.send(conversation, Body::Text("vera@example.com is my address".into())).await?;
    assert_eq!(accepted.seq, Seq(1), "the refused message left nothing behind");

    // In hours (here: hours off) nobody is asked.
    let (status, saved) = put_hours(
        &relay,
        &admin,
        json!({ "enabled": false, "calendar": { "zone": "UTC" }, "offline_form_only": true }),
    )
    .await?;
    ensure!(status == 200 && saved["open_now"] == true, "{saved}");
    let (open, _open_events) = Client::visitor(relay.ws_url(), "demo")?;
    let open_chat = open.conversation().await?;
    open.send(open_chat, Body::Text("hello in hours".into())).await?;
    Ok(())
}
