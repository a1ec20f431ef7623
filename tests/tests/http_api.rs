//! The HTTP API end to end: a real relay process, real HTTP. Cookie
//! sessions with CSRF, agents, site settings, canned replies, history, the
//! visitor panel, and that an agent of one site learns nothing of another.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures_util::SinkExt;
use kefu_protocol::frame::{Body, Credentials, Identify, Identity, ReturningVisitor, Visit};
use kefu_protocol::ids::{ConversationId, SiteKey};
use kefu_protocol::{ClientFrame, codec};
use kefu_relay::store::{Role, Store};
use kefu_sdk::Client;
use kefu_tests::raw::hello;
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, PATIENCE, Relay};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How a request proves who it is from.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Bearer(String),
    /// The `kefu_session=...` pair and the CSRF token to send with it.
    Cookie {
        cookie: String,
        csrf: Option<String>,
    },
}

impl Auth {
    /// The same cookie without its CSRF token.
    fn without_csrf(&self) -> Auth {
        match self {
            Auth::Cookie { cookie, .. } => Auth::Cookie { cookie: cookie.clone(), csrf: None },
            other => other.clone(),
        }
    }
}

/// A small client for the relay's API.
struct Api {
    base: String,
    http: reqwest::Client,
}

/// An answer: status, `Set-Cookie` headers and the JSON body (`Null` when
/// empty).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    set_cookie: Vec<String>,
    cache_control: Option<String>,
    body: Value,
    text: String,
}

impl Answer {
    /// Fails unless the status is `expected`; returns the body.
    fn expect(self, expected: StatusCode) -> Result<Value> {
        ensure!(self.status == expected, "expected {expected}, got {} {}", self.status, self.text);
        Ok(self.body)
    }

    /// Fails unless the status is `expected` and the body is an
    /// `{"error": "..."}`.
    fn expect_error(self, expected: StatusCode) -> Result<String> {
        let text = self.text.clone();
        let body = self.expect(expected)?;
        let error = body["error"].as_str().with_context(|| format!("no error sentence in {text}"))?;
        Ok(error.to_owned())
    }
}

impl Api {
    fn new(relay: &Relay) -> Api {
        Api { base: relay.http_url(), http: reqwest::Client::new() }
    }

    async fn call(&self, method: Method, path: &str, auth: &Auth, body: Option<Value>) -> Result<Answer> {
        self.call_with(method, path, auth, body, &[]).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Result<Answer> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        request = match auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Cookie { cookie, csrf } => {
                let request = request.header("cookie", cookie);
                match csrf {
                    Some(csrf) => request.header("x-csrf-token", csrf),
                    None => request,
                }
            }
        };
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let set_cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok().map(str::to_owned))
            .collect();
        let cache_control =
            response.headers().get("cache-control").and_then(|value| value.to_str().ok()).map(str::to_owned);
        let text = response.text().await?;
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) };
        Ok(Answer { status, set_cookie, cache_control, body, text })
    }

    async fn get(&self, path: &str, auth: &Auth) -> Result<Answer> {
        self.call(Method::GET, path, auth, None).await
    }

    /// Logs in for a bearer token.
    async fn bearer(&self, email: &str, password: &str) -> Result<Auth> {
        let body = json!({ "email": email, "password": password });
        let answer = self.call(Method::POST, "/api/login", &Auth::None, Some(body)).await?.expect(StatusCode::OK)?;
        Ok(Auth::Bearer(answer["token"].as_str().context("a token")?.to_owned()))
    }

    /// Logs in with a cookie session, as the console does.
    async fn cookie(&self, email: &str, password: &str) -> Result<Auth> {
        let body = json!({ "email": email, "password": password, "cookie": true });
        let answer = self.call(Method::POST, "/api/login", &Auth::None, Some(body)).await?;
        let set_cookie = answer.set_cookie.first().context("a Set-Cookie header")?.clone();
        let body = answer.expect(StatusCode::OK)?;
        let cookie = set_cookie.split(';').next().context("a cookie pair")?.to_owned();
        let csrf = body["csrf"].as_str().context("a csrf token")?.to_owned();
        Ok(Auth::Cookie { cookie, csrf: Some(csrf) })
    }
}

/// Creates an agent of the caller's site through the API.
async fn create_agent(api: &Api, admin: &Auth, email: &str, role: &str, capacity: u32) -> Result<Value> {
    let body = json!({ "email": email, "name": email.split('@').next(), "password": "agent password",
                       "role": role, "capacity": capacity });
    api.call(Method::POST, "/api/agents", admin, Some(body)).await?.expect(StatusCode::CREATED)
}

/// Retries `check` until it passes or [`PATIENCE`] runs out: for what the
/// relay stores after a WebSocket frame, with nothing to wait on.
async fn eventually<T, F: Future<Output = Result<T>>>(mut check: impl FnMut() -> F) -> Result<T> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(error) if tokio::time::Instant::now() > deadline => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn cookie_login_sets_an_http_only_cookie_and_me_hands_back_the_csrf_token() -> Result<()> {
    let relay = Relay::start().await?;
    let api = Api::new(&relay);

    let body = json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "cookie": true });
    let answer = api.call(Method::POST, "/api/login", &Auth::None, Some(body)).await?;
    let set_cookie = answer.set_cookie.first().context("Set-Cookie")?.clone();
    let token = set_cookie.strip_prefix("kefu_session=").context("the session cookie")?.split(';').next().unwrap_or("");
    ensure!(token.len() == 64, "a 256-bit token: {set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=2592000"] {
        ensure!(set_cookie.split("; ").any(|a| a == attribute), "{attribute} missing in {set_cookie}");
    }
    let login = answer.expect(StatusCode::OK)?;
    ensure!(!login.to_string().contains(token), "the token stays out of reach of scripts: {login}");
    ensure!(login.get("token").is_none() && login.get("expires_at").is_none(), "{login}");
    let csrf = login["csrf"].as_str().context("csrf")?;
    ensure!(csrf.len() == 64 && csrf != token, "{csrf}");
    let agent = &login["agent"];
    assert_eq!(agent["email"], ADMIN_EMAIL);
    assert_eq!((agent["role"].as_str(), agent["admin"].as_bool()), (Some("admin"), Some(true)));
    assert_eq!((agent["capacity"].as_u64(), agent["active"].as_bool()), (Some(3), Some(true)));
    for field in ["id", "site", "name"] {
        ensure!(agent.get(field).is_some(), "{field} missing in {agent}");
    }

    let cookie = Auth::Cookie { cookie: format!("kefu_session={token}"), csrf: None };
    let me = api.get("/api/me", &cookie).await?.expect(StatusCode::OK)?;
    assert_eq!(me["csrf"].as_str(), Some(csrf));
    assert_eq!(&me["agent"], agent);

    // Bearer clients (the SDK) keep the token answer, and get no csrf.
    let bearer = api.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let me = api.get("/api/me", &bearer).await?.expect(StatusCode::OK)?;
    ensure!(me.get("csrf").is_none(), "{me}");
    assert_eq!(&me["agent"], agent);

    api.get("/api/me", &Auth::None).await?.expect_error(StatusCode::UNAUTHORIZED)?;
    let forged = Auth::Cookie { cookie: format!("kefu_session={}", "0".repeat(64)), csrf: None };
    api.get("/api/me", &forged).await?.expect_error(StatusCode::UNAUTHORIZED)?;
    let wrong = json!({ "email": ADMIN_EMAIL, "password": "wrong", "cookie": true });
    let refused = api.call(Method::POST, "/api/login", &Auth::None, Some(wrong)).await?;
    ensure!(refused.set_cookie.is_empty(), "no cookie for a failed login");
    refused.expect_error(StatusCode::UNAUTHORIZED)?;
    Ok(())
}

#[tokio::test]
async fn behind_an_https_public_url_the_cookie_is_secure_and_nothing_secret_is_cached() -> Result<()> {
    let login = json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "cookie": true });
    let plain = Relay::start().await?;
    let answer = Api::new(&plain).call(Method::POST, "/api/login", &Auth::None, Some(login.clone())).await?;
    let set_cookie = answer.set_cookie.first().context("Set-Cookie")?;
    ensure!(!set_cookie.contains("Secure"), "plain HTTP and no public URL: a Secure cookie would never come back");

    // TLS ends at a proxy that says nothing about it (the README's nginx
    // sets no X-Forwarded-Proto) and passes its own upstream as Host.
    let relay = Relay::start_with(&["--public-url", "https://chat.example"]).await?;
    let api = Api::new(&relay);
    let answer = api.call(Method::POST, "/api/login", &Auth::None, Some(login)).await?;
    let set_cookie = answer.set_cookie.first().context("Set-Cookie")?.clone();
    ensure!(set_cookie.split("; ").any(|a| a == "Secure"), "{set_cookie}");
    ensure!(answer.cache_control.as_deref() == Some("no-store"), "the login answer carries a CSRF token");
    let csrf = answer.expect(StatusCode::OK)?["csrf"].as_str().context("csrf")?.to_owned();
    let cookie = Auth::Cookie { cookie: set_cookie.split(';').next().context("pair")?.to_owned(), csrf: Some(csrf) };

    let site = api.get("/api/site", &cookie).await?;
    ensure!(site.cache_control.as_deref() == Some("no-store"), "{:?}", site.cache_control);
    ensure!(site.expect(StatusCode::OK)?["identity_secret"].is_string(), "the answer does carry the secret");
    let bearer = api.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let changed = api.call(Method::PUT, "/api/site", &bearer, Some(json!({ "greeting": "Hi" }))).await?;
    ensure!(changed.cache_control.as_deref() == Some("no-store"), "{:?}", changed.cache_control);
    let me = api.get("/api/me", &cookie).await?;
    ensure!(me.cache_control.as_deref() == Some("no-store"), "{:?}", me.cache_control);

    // The public URL's pages are the relay's own, whatever Host the proxy
    // passed; other origins are still refused.
    let reply = Some(json!({ "shortcut": "thanks", "text": "Thanks!" }));
    let evil = [("origin", "https://evil.example")];
    let refused = api.call_with(Method::POST, "/api/canned", &cookie, reply.clone(), &evil).await?;
    refused.expect_error(StatusCode::FORBIDDEN)?;
    let own = [("origin", "https://chat.example")];
    api.call_with(Method::POST, "/api/canned", &cookie, reply, &own).await?.expect(StatusCode::CREATED)?;
    Ok(())
}

#[tokio::test]
async fn cookie_requests_that_change_things_need_the_csrf_token_and_the_relays_origin() -> Result<()> {
    let relay = Relay::start().await?;
    let api = Api::new(&relay);
    let cookie = api.cookie(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let reply = |shortcut: &str| Some(json!({ "shortcut": shortcut, "text": "Thanks!" }));

    let missing = api.call(Method::POST, "/api/canned", &cookie.without_csrf(), reply("a")).await?;
    assert!(missing.expect_error(StatusCode::FORBIDDEN)?.contains("CSRF"));
    let Auth::Cookie { cookie: pair, .. } = &cookie else { bail!("a cookie") };
    let wrong = Auth::Cookie { cookie: pair.clone(), csrf: Some("0".repeat(64)) };
    api.call(Method::POST, "/api/canned", &wrong, reply("a")).await?.expect_error(StatusCode::FORBIDDEN)?;
    let elsewhere = [("origin", "https://evil.example")];
    let cross = api.call_with(Method::POST, "/api/canned", &cookie, reply("a"), &elsewhere).await?;
    cross.expect_error(StatusCode::FORBIDDEN)?;
    let list = api.get("/api/canned", &cookie).await?.expect(StatusCode::OK)?;
    assert_eq!(list, json!([]), "nothing refused was stored");

    api.call(Method::POST, "/api/canned", &cookie, reply("a")).await?.expect(StatusCode::CREATED)?;
    let own_origin = format!("http://{}", relay.addr());
    let same = [("origin", own_origin.as_str())];
    api.call_with(Method::POST, "/api/canned", &cookie, reply("b"), &same).await?.expect(StatusCode::CREATED)?;
    // Reading needs no CSRF token; bearer tokens never need one (no
    // browser attaches them by itself).
    api.get("/api/canned", &cookie.without_csrf()).await?.expect(StatusCode::OK)?;
    let bearer = api.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    api.call(Method::POST, "/api/canned", &bearer, reply("c")).await?.expect(StatusCode::CREATED)?;
    Ok(())
}

#[tokio::test]
async fn logout_ends_only_that_session_and_clears_the_cookie() -> Result<()> {
    let relay = Relay::start().await?;
    let api = Api::new(&relay);
    let cookie = api.cookie(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let bearer = api.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await?;

    let refused = api.call(Method::POST, "/api/logout", &cookie.without_csrf(), None).await?;
    refused.expect_error(StatusCode::FORBIDDEN)?;
    let answer = api.call(Method::POST, "/api/logout", &cookie, None).await?;
    let cleared = answer.set_cookie.first().context("Set-Cookie")?.clone();
    answer.expect(StatusCode::NO_CONTENT)?;
    ensure!(cleared.starts_with("kefu_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    api.get("/api/me", &cookie).await?.expect_error(StatusCode::UNAUTHORIZED)?;
    api.get("/api/me", &bearer).await?.expect(StatusCode::OK)?;
    // Logging out again, with a dead cookie, still clears it.
    api.call(Method::POST, "/api/logout", &cookie, None).await?.expect(StatusCode::NO_CONTENT)?;
    api.call(Method::POST, "/api/logout", &bearer, None).await?.expect(StatusCode::NO_CONTENT)?;
    api.get("/api/me", &bearer).await?.expect_error(StatusCode::UNAUTHORIZED)?;
    Ok(())
}

#[tokio::test]
async fn admins_manage_agents_and_a_deactivated_agent_is_locked_out_at_once() -> Result<()> {
    let relay = Relay::start().await?;
    let api = Api::new(&relay);
    let admin = api.cookie(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let me = api.get("/api/me", &admin).await?.expect(StatusCode::OK)?;
    let admin_id = me["agent"]["id"].as_u64().context("admin id")?;

    let ann = create_agent(&api, &admin, "ann@kefu.test", "agent", 2).await?;
    assert_eq!(
        (ann["role"].as_str(), ann["capacity"].as_u64(), ann["active"].as_bool()),
        (Some("agent"), Some(2), Some(true))
    );
    let ann_id = ann["id"].as_u64().context("id")?;
    let twin = json!({ "email": "ANN@kefu.test", "name": "Twin", "password": "agent password" });
    api.call(Method::POST, "/api/agents", &admin, Some(twin)).await?.expect_error(StatusCode::CONFLICT)?;
    for bad in [
        json!({ "email": "bob@kefu.test", "name": "Bob", "password": "short" }),
        json!({ "email": "not an email", "name": "Bob", "password": "agent password" }),
        json!({ "email": "bob@kefu.test", "name": " ", "password": "agent password" }),
        json!({ "email": "bob@kefu.test", "name": "Bob", "password": "agent password", "role": "owner" }),
        json!({ "email": "bob@kefu.test", "name": "Bob", "password": "agent password", "capacity": 1001 }),
        json!({ "email": "bob@kefu.test" }),
    ] {
        api.call(Method::POST, "/api/agents", &admin, Some(bad)).await?.expect_error(StatusCode::BAD_REQUEST)?;
    }

    let list = api.get("/api/agents", &admin).await?.expect(StatusCode::OK)?;
    let emails: Vec<_> = list.as_array().context("a list")?.iter().filter_map(|a| a["email"].as_str()).collect();
    assert_eq!(emails, [ADMIN_EMAIL, "ann@kefu.test"], "by name: Admin, ann");

    // Ann works, but may not manage anyone.
    let ann_auth = api.bearer("ann@kefu.test", "agent password").await?;
    api.get("/api/agents", &ann_auth).await?.expect(StatusCode::OK)?;
    let sneaky = json!({ "email": "eve@kefu.test", "name": "Eve", "password": "agent password", "role": "admin" });
    api.call(Method::POST, "/api/agents", &ann_auth, Some(sneaky)).await?.expect_error(StatusCode::FORBIDDEN)?;
    let promote = Some(json!({ "role": "admin" }));
    let path = format!("/api/agents/{ann_id}");
    api.call(Method::PATCH, &path, &ann_auth, promote.clone()).await?.expect_error(StatusCode::FORBIDDEN)?;

    let change = json!({ "name": "Ann Lee", "capacity": 5, "password": "a new password" });
    let changed = api.call(Method::PATCH, &path, &admin, Some(change)).await?.expect(StatusCode::OK)?;
    assert_eq!((changed["name"].as_str(), changed["capacity"].as_u64()), (Some("Ann Lee"), Some(5)));
    api.get("/api/me", &ann_auth).await?.expect_error(StatusCode::UNAUTHORIZED)?;
    let ann_auth = api.bearer("ann@kefu.test", "a new password").await?;
    api.call(Method::PATCH, "/api/agents/99999", &admin, promote).await?.expect_error(StatusCode::NOT_FOUND)?;

    let own = format!("/api/agents/{admin_id}");
    for change in [json!({ "active": false }), json!({ "role": "agent" })] {
        let refused = api.call(Method::PATCH, &own, &admin, Some(change)).await?;
        refused.expect_error(StatusCode::BAD_REQUEST)?;
    }
    api.call(Method::PATCH, &own, &admin, Some(json!({ "capacity": 9 }))).await?.expect(StatusCode::OK)?;

    let off = api.call(Method::PATCH, &path, &admin, Some(json!({ "active": false }))).await?.expect(StatusCode::OK)?;
    assert_eq!(off["active"].as_bool(), Some(false));
    api.get("/api/me", &ann_auth).await?.expect_error(StatusCode::UNAUTHORIZED)?;
    let login = json!({ "email": "ann@kefu.test", "password": "a new password" });
    api.call(Method::POST, "/api/login", &Auth::None, Some(login)).await?.expect_error(StatusCode::UNAUTHORIZED)?;
    let back = api.call(Method::PATCH, &path, &admin, Some(json!({ "active": true }))).await?.expect(StatusCode::OK)?;
    assert_eq!(back["active"].as_bool(), Some(true));
    api.bearer("ann@kefu.test", "a new password").await?;
    Ok(())
}

#[tokio::test]
async fn the_widget_forms_are_validated_admin_only_and_a_refusal_loses_nothing() -> Result<()> {
    let relay = Relay::start().await?;
    let api = Api::new(&relay);
    let admin = api.cookie(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    create_agent(&api, &admin, "ann@kefu.test", "agent", 3).await?;
    let ann = api.cookie("ann@kefu.test", "agent password").await?;
    let forms = json!({ "prechat": { "when": "always", "consent": "We keep it a year.",
        "fields": [{ "key": "plan", "label": "Plan", "kind": "select", "options": ["Free", "Pro"], "required": true }] },
        "survey": { "enabled": true, "ask_again": false } });
    let saved = api.call(Method::PUT, "/api/site/forms", &admin, Some(forms.clone())).await?.expect(StatusCode::OK)?;
    assert_eq!(saved, forms);
    let refused = api.call(Method::PUT, "/api/site/forms", &ann, Some(json!({}))).await?;
    refused.expect_error(StatusCode::FORBIDDEN)?;
    for (bad, why) in [
        (
            json!({ "prechat": { "when": "always", "fields": [{ "key": "Plan", "label": "Plan", "kind": "text" }] } }),
            "lowercase",
        ),
        (
            json!({ "prechat": { "when": "always", "fields": [{ "key": "s", "label": "S", "kind": "select", "options": [] }] } }),
            "options",
        ),
        (json!({ "prechat": { "when": "always", "fields": [{ "key": "a", "label": "", "kind": "text" }] } }), "label"),
        (json!({ "prechat": { "when": "sometimes" } }), "when"),
        (
            json!({ "prechat": { "when": "always", "fields": [{ "key": "a", "label": "A", "kind": "colour" }] } }),
            "colour",
        ),
    ] {
        let answer = api.call(Method::PUT, "/api/site/forms", &admin, Some(bad)).await?;
        let error = answer.expect_error(StatusCode::BAD_REQUEST)?;
        ensure!(error.contains(why), "{error} should say {why}");
    }
    let kept = api.get("/api/site/forms", &ann).await?.expect(StatusCode::OK)?;
    assert_eq!(kept, forms, "agents read the forms, and refused changes left no trace");
    let widget = api.get("/api/widget/demo", &Auth::None).await?.expect(StatusCode::OK)?;
    assert_eq!((&widget["prechat"], &widget["survey"]), (&forms["prechat"], &forms["survey"]));
    Ok(())
}

#[tokio::test]
async fn site_settings_are_validated_admin_only_and_reach_the_widget() -> Result<()> {
    let relay = Relay::start().await?;
    let api = Api::new(&relay);
    let admin = api.cookie(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    create_agent(&api, &admin, "ann@kefu.test", "agent", 3).await?;
    let ann = api.cookie("ann@kefu.test", "agent password").await?;

    let site = api.get("/api/site", &admin).await?.expect(StatusCode::OK)?;
    assert_eq!((site["key"].as_str(), site["name"].as_str()), (Some("demo"), Some("Demo site")));
    assert_eq!(site["identity_secret"].as_str().map(str::len), Some(64));
    assert_eq!(
        (&site["draft_preview"], &site["color"], &site["greeting"], &site["position"], &site["allowed_origins"]),
        (&json!(true), &json!("#2563eb"), &json!(""), &json!("right"), &json!([]))
    );
    let seen_by_agent = api.get("/api/site", &ann).await?.expect(StatusCode::OK)?;
    ensure!(seen_by_agent.get("identity_secret").is_none(), "agents never see the secret: {seen_by_agent}");

    let change = json!({ "color": "#10B981", "greeting": "Hi! How can we help?", "position": "left",
                         "draft_preview": false, "allowed_origins": ["https://Shop.example", "http://127.0.0.1:8080"] });
    let refused = api.call(Method::PUT, "/api/site", &ann, Some(change.clone())).await?;
    refused.expect_error(StatusCode::FORBIDDEN)?;
    for bad in [
        json!({ "color": "green" }),
        json!({ "greeting": "x".repeat(501) }),
        json!({ "position": "top" }),
        json!({ "allowed_origins": ["https://shop.example/checkout"] }),
        json!({ "allowed_origins": ["shop.example"] }),
        json!({ "name": "" }),
    ] {
        let refused = api.call(Method::PUT, "/api/site", &admin, Some(bad)).await?;
        refused.expect_error(StatusCode::BAD_REQUEST)?;
    }
    let widget = api.get("/api/widget/demo", &Auth::None).await?.expect(StatusCode::OK)?;
    assert_eq!(
        widget,
        json!({ "color": "#2563eb", "greeting": "", "position": "right", "hours": false, "open_now": true, "next_opening": null, "next_closing": null, "offline_form_only": false, "prechat": { "when": "never", "fields": [], "consent": null }, "survey": { "enabled": false, "ask_again": false }, "email_follow_up": false }),
        "refused changes left no trace"
    );

    let changed = api.call(Method::PUT, "/api/site", &admin, Some(change)).await?.expect(StatusCode::OK)?;
    assert_eq!(changed["color"], "#10b981");
    assert_eq!(changed["allowed_origins"], json!(["https://shop.example", "http://127.0.0.1:8080"]));
    assert_eq!(changed["draft_preview"], false);
    let renamed = api.call(Method::PUT, "/api/site", &admin, Some(json!({ "name": "Shop" }))).await?;
    let renamed = renamed.expect(StatusCode::OK)?;
    assert_eq!((renamed["name"].as_str(), renamed["position"].as_str()), (Some("Shop"), Some("left")));

    let widget = api.get("/api/widget/demo", &Auth::None).await?.expect(StatusCode::OK)?;
    assert_eq!(
        widget,
        json!({ "color": "#10b981", "greeting": "Hi! How can we help?", "position": "left", "hours": false, "open_now": true, "next_opening": null, "next_closing": null, "offline_form_only": false, "prechat": { "when": "never", "fields": [], "consent": null }, "survey": { "enabled": false, "ask_again": false }, "email_follow_up": false })
    );
    api.get("/api/widget/nope", &Auth::None).await?.expect_error(StatusCode::NOT_FOUND)?;
    api.get("/api/widget/not%20a%20key", &Auth::None).await?.expect_error(StatusCode::NOT_FOUND)?;
    Ok(())
}

#[tokio::test]
async fn canned_replies_are_listed_by_shortcut_and_written_by_admins() -> Result<()> {
    let relay = Relay::start().await?;
    let api = Api::new(&relay);
    let admin = api.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    create_agent(&api, &admin, "ann@kefu.test", "agent", 3).await?;
    let ann = api.bearer("ann@kefu.test", "agent password").await?;

    let create = |shortcut: &str, text: &str| Some(json!({ "shortcut": shortcut, "text": text }));
    let thanks = api.call(Method::POST, "/api/canned", &admin, create("thanks", "Thank you!")).await?;
    let thanks = thanks.expect(StatusCode::CREATED)?;
    api.call(Method::POST, "/api/canned", &admin, create("hello", "Hello!")).await?.expect(StatusCode::CREATED)?;
    let twin = api.call(Method::POST, "/api/canned", &admin, create("thanks", "Again")).await?;
    twin.expect_error(StatusCode::CONFLICT)?;
    for (shortcut, text) in [("Thanks", "x"), ("", "x"), ("a b", "x"), ("ok", ""), ("ok", &"x".repeat(4001))] {
        let refused = api.call(Method::POST, "/api/canned", &admin, create(shortcut, text)).await?;
        refused.expect_error(StatusCode::BAD_REQUEST)?;
    }
    let refused = api.call(Method::POST, "/api/canned", &ann, create("mine", "x")).await?;
    refused.expect_error(StatusCode::FORBIDDEN)?;

    let list = api.get("/api/canned", &ann).await?.expect(StatusCode::OK)?;
    let shortcuts: Vec<_> = list.as_array().context("a list")?.iter().filter_map(|c| c["shortcut"].as_str()).collect();
    assert_eq!(shortcuts, ["hello", "thanks"]);

    let path = format!("/api/canned/{}", thanks["id"].as_u64().context("id")?);
    let changed = api.call(Method::PUT, &path, &admin, create("ty", "Thanks a lot!")).await?.expect(StatusCode::OK)?;
    assert_eq!(changed, json!({ "id": thanks["id"], "shortcut": "ty", "text": "Thanks a lot!" }));
    api.call(Method::PUT, &path, &ann, create("x", "x")).await?.expect_error(StatusCode::FORBIDDEN)?;
    api.call(Method::DELETE, &path, &ann, None).await?.expect_error(StatusCode::FORBIDDEN)?;
    api.call(Method::DELETE, &path, &admin, None).await?.expect(StatusCode::NO_CONTENT)?;
    api.call(Method::DELETE, &path, &admin, None).await?.expect_error(StatusCode::NOT_FOUND)?;
    api.call(Method::PUT, &path, &admin, create("x", "x")).await?.expect_error(StatusCode::NOT_FOUND)?;
    Ok(())
}

#[tokio::test]
async fn history_pages_back_through_conversations_and_messages() -> Result<()> {
    let relay = Relay::start().await?;
    let api = Api::new(&relay);
    let admin = api.cookie(ADMIN_EMAIL, ADMIN_PASSWORD).await?;

    let (first, _first_events) = Client::visitor(relay.ws_url(), "demo")?;
    let older = first.conversation().await?;
    first.send(older, Body::Text("older".into())).await?;
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    for n in 1..=5 {
        visitor.send(conversation, Body::Text(format!("message {n}"))).await?;
    }

    let list = api.get("/api/conversations?status=open", &admin).await?.expect(StatusCode::OK)?;
    let list = list.as_array().context("a list")?;
    let ids: Vec<_> = list.iter().filter_map(|c| c["id"].as_u64()).collect();
    assert_eq!(ids, [conversation.0, older.0], "most recently active first");
    let newest = &list[0];
    assert_eq!((newest["status"].as_str(), newest["last_seq"].as_u64()), (Some("open"), Some(5)));
    ensure!(newest["waiting_since"].is_u64() && newest["assignee"].is_null(), "{newest}");
    for field in ["visitor", "updated_at", "visitor_name"] {
        ensure!(newest.get(field).is_some(), "{field} missing in {newest}");
    }
    let before = newest["updated_at"].as_u64().context("updated_at")?;
    let next = api.get(&format!("/api/conversations?before={before}&limit=1"), &admin).await?.expect(StatusCode::OK)?;
    assert_eq!(next[0]["id"].as_u64(), Some(older.0));
    assert_eq!(next.as_array().map(Vec::len), Some(1));
    let closed = api.get("/api/conversations?status=closed", &admin).await?.expect(StatusCode::OK)?;
    assert_eq!(closed, json!([]));
    for bad in ["status=gone", "limit=0", "limit=101", "before=soon"] {
        let refused = api.get(&format!("/api/conversations?{bad}"), &admin).await?;
        refused.expect_error(StatusCode::BAD_REQUEST)?;
    }

    let messages = |query: &str| format!("/api/conversations/{}/messages{query}", conversation.0);
    let page = api.get(&messages("?limit=2"), &admin).await?.expect(StatusCode::OK)?;
    let seqs = |page: &Value| page.as_array().map(|m| m.iter().filter_map(|m| m["seq"].as_u64()).collect::<Vec<_>>());
    assert_eq!(seqs(&page), Some(vec![4, 5]), "the newest page, oldest first");
    assert_eq!(page[1]["body"], json!({ "Text": "message 5" }));
    ensure!(page[1]["author"]["Visitor"].is_u64() && page[1]["conversation"] == conversation.0, "{page}");
    let back = api.get(&messages("?before=4&limit=2"), &admin).await?.expect(StatusCode::OK)?;
    assert_eq!(seqs(&back), Some(vec![2, 3]));
    let all = api.get(&messages(""), &admin).await?.expect(StatusCode::OK)?;
    assert_eq!(seqs(&all), Some(vec![1, 2, 3, 4, 5]));
    api.get(&messages("?limit=201"), &admin).await?.expect_error(StatusCode::BAD_REQUEST)?;
    api.get("/api/conversations/99999/messages", &admin).await?.expect_error(StatusCode::NOT_FOUND)?;
    api.get("/api/conversations/x/messages", &admin).await?.expect_error(StatusCode::NOT_FOUND)?;
    api.get(&messages(""), &Auth::None).await?.expect_error(StatusCode::UNAUTHORIZED)?;
    Ok(())
}

/// A WebSocket as tokio-tungstenite opens it.
type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a visitor's WebSocket as a browser would, with a user agent and
/// a language, coming back as `visitor`, and reports a page; the socket
/// is returned so it stays open.
async fn browser_visit(relay: &Relay, visitor: &Identity, user_agent: &str, language: &str) -> Result<Socket> {
    let Identity::Visitor { visitor, token, .. } = visitor else { bail!("not a visitor") };
    let mut request = relay.ws_url().into_client_request()?;
    request.headers_mut().insert("user-agent", user_agent.parse()?);
    request.headers_mut().insert("accept-language", language.parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    let returning = Some(ReturningVisitor { visitor: *visitor, token: token.clone() });
    let frame = hello(Credentials::Visitor { site: SiteKey::new("demo")?, returning });
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(codec::encode(&frame).into())).await?;
    let visit =
        ClientFrame::Visit(Visit { url: "https://shop.example/cart".into(), title: "Cart".into(), referrer: None });
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(codec::encode(&visit).into())).await?;
    Ok(ws)
}

#[tokio::test]
async fn the_visitor_panel_shows_pages_browser_language_and_past_conversations() -> Result<()> {
    let relay = Relay::start().await?;
    let api = Api::new(&relay);
    let admin = api.cookie(ADMIN_EMAIL, ADMIN_PASSWORD).await?;

    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let identity = visitor.identity().await?;
    let Identity::Visitor { visitor: id, conversation, .. } = &identity else { bail!("a visitor") };
    visitor.visit(Visit {
        url: "https://shop.example/".into(),
        title: "Shop".into(),
        referrer: Some("https://search.example/".into()),
    })?;
    visitor.identify(Identify { user_id: "u-1".into(), name: Some("Ada".into()), email: None, hash: None })?;
    visitor.send(*conversation, Body::Text("hello".into())).await?;
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                  Chrome/156.0.0.0 Safari/537.36";
    let _browser = browser_visit(&relay, &identity, chrome, "de-CH,de;q=0.9,en;q=0.8").await?;

    let path = format!("/api/visitors/{}", id.0);
    let panel = eventually(|| async {
        let panel = api.get(&path, &admin).await?.expect(StatusCode::OK)?;
        ensure!(panel["visits"].as_array().map(Vec::len) == Some(2), "both pages: {panel}");
        ensure!(panel["profile"]["name"] == "Ada", "the identity: {panel}");
        Ok(panel)
    })
    .await?;
    assert_eq!((panel["browser"].as_str(), panel["os"].as_str()), (Some("Chrome 156"), Some("Windows 10")));
    assert_eq!(panel["language"].as_str(), Some("de-CH"));
    assert_eq!(panel["profile"]["visitor"].as_u64(), Some(id.0));
    assert_eq!(panel["profile"]["verified"], false);
    let visits = &panel["visits"];
    assert_eq!(
        (visits[0]["url"].as_str(), visits[0]["title"].as_str()),
        (Some("https://shop.example/cart"), Some("Cart"))
    );
    assert_eq!(visits[1]["referrer"].as_str(), Some("https://search.example/"));
    ensure!(visits[0]["at"].as_u64() >= visits[1]["at"].as_u64(), "newest first: {visits}");
    let past = panel["conversations"].as_array().context("conversations")?;
    assert_eq!(past.len(), 1);
    assert_eq!((past[0]["id"].as_u64(), past[0]["status"].as_str()), (Some(conversation.0), Some("open")));
    assert_eq!(past[0]["last_seq"].as_u64(), Some(1));

    api.get("/api/visitors/99999", &admin).await?.expect_error(StatusCode::NOT_FOUND)?;
    api.get(&path, &Auth::None).await?.expect_error(StatusCode::UNAUTHORIZED)?;
    Ok(())
}

/// A second site, "beta", with an admin and an agent, written into the
/// relay's store beside the running relay (SQLite in WAL mode takes a
/// second process): no HTTP route creates sites.
async fn add_beta_site(relay: &Relay) -> Result<()> {
    // The relay says where it listens before it opens its store; once it
    // answers, its migrations are done and cannot race with these.
    reqwest::get(format!("{}/healthz", relay.http_url())).await?.error_for_status()?;
    let store = Store::open(relay.data_dir()).await?;
    let site = store.create_site(&SiteKey::new("beta")?, "Beta").await?;
    let hash = kefu_relay::auth::hash_password("beta password").map_err(|e| anyhow::anyhow!("{e}"))?;
    store.create_agent(site.id, "boss@beta.test", "Beta Boss", &hash, Role::Admin).await?;
    store.create_agent(site.id, "bo@beta.test", "Beta Agent", &hash, Role::Agent).await?;
    store.create_canned_reply(site.id, "beta-secret", "BETA-CANNED-TEXT").await?;
    store.close().await;
    Ok(())
}

#[tokio::test]
async fn an_agent_of_one_site_learns_nothing_of_another() -> Result<()> {
    let relay = Relay::start().await?;
    add_beta_site(&relay).await?;
    let api = Api::new(&relay);

    // Site beta: a conversation with a visitor who said who they are,
    // visited a page and wrote something.
    let beta_admin = api.bearer("boss@beta.test", "beta password").await?;
    let (beta_visitor, _events) = Client::visitor(relay.ws_url(), "beta")?;
    let Identity::Visitor { visitor: beta_visitor_id, conversation: beta_conversation, .. } =
        beta_visitor.identity().await?
    else {
        bail!("a visitor")
    };
    beta_visitor.identify(Identify {
        user_id: "BETA-USER".into(),
        name: Some("BETA-NAME".into()),
        email: None,
        hash: None,
    })?;
    beta_visitor.visit(Visit {
        url: "https://beta.example/BETA-PAGE".into(),
        title: "BETA-TITLE".into(),
        referrer: None,
    })?;
    beta_visitor.send(beta_conversation, Body::Text("BETA-MESSAGE".into())).await?;
    let beta_panel = format!("/api/visitors/{}", beta_visitor_id.0);
    eventually(|| async {
        let panel = api.get(&beta_panel, &beta_admin).await?.expect(StatusCode::OK)?;
        ensure!(panel["visits"].as_array().map(Vec::len) == Some(1), "{panel}");
        ensure!(panel["profile"]["name"] == "BETA-NAME", "{panel}");
        Ok(())
    })
    .await?;
    let beta_list = api.get("/api/conversations", &beta_admin).await?.expect(StatusCode::OK)?;
    assert_eq!(beta_list[0]["id"].as_u64(), Some(beta_conversation.0), "beta sees its own");
    let beta_agents = api.get("/api/agents", &beta_admin).await?.expect(StatusCode::OK)?;
    let beta_agent_id = beta_agents[0]["id"].as_u64().context("beta agent")?;
    let beta_canned = api.get("/api/canned", &beta_admin).await?.expect(StatusCode::OK)?;
    let beta_canned_id = beta_canned[0]["id"].as_u64().context("beta canned reply")?;

    // Site demo: an admin and an agent, one conversation of its own.
    let demo_admin = api.cookie(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    create_agent(&api, &demo_admin, "ann@kefu.test", "agent", 3).await?;
    let demo_agent = api.cookie("ann@kefu.test", "agent password").await?;
    let (demo_visitor, _demo_events) = Client::visitor(relay.ws_url(), "demo")?;
    let demo_conversation: ConversationId = demo_visitor.conversation().await?;
    demo_visitor.send(demo_conversation, Body::Text("demo message".into())).await?;

    let markers = ["BETA", "beta", "Beta"];
    let leaks = |answer: &Answer| markers.iter().find(|marker| answer.text.contains(*marker)).copied();
    let reads = [
        "/api/conversations".to_owned(),
        "/api/conversations?status=open".to_owned(),
        format!("/api/conversations/{}/messages", beta_conversation.0),
        format!("/api/visitors/{}", beta_visitor_id.0),
        "/api/agents".to_owned(),
        "/api/canned".to_owned(),
        "/api/site".to_owned(),
        "/api/me".to_owned(),
    ];
    let writes = [
        (Method::PATCH, format!("/api/agents/{beta_agent_id}"), json!({ "active": false })),
        (Method::PUT, format!("/api/canned/{beta_canned_id}"), json!({ "shortcut": "x", "text": "x" })),
        (Method::DELETE, format!("/api/canned/{beta_canned_id}"), Value::Null),
    ];
    for (who, auth) in [("demo admin", &demo_admin), ("demo agent", &demo_agent)] {
        for path in &reads {
            let answer = api.get(path, auth).await?;
            ensure!(leaks(&answer).is_none(), "{who} GET {path} leaks site beta: {}", answer.text);
            match answer.status {
                StatusCode::OK | StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => {}
                other => bail!("{who} GET {path}: unexpected {other}"),
            }
        }
        let list = api.get("/api/conversations", auth).await?.expect(StatusCode::OK)?;
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{who} sees only demo's conversation");
        assert_eq!(list[0]["id"].as_u64(), Some(demo_conversation.0));
        let messages = format!("/api/conversations/{}/messages", beta_conversation.0);
        api.get(&messages, auth).await?.expect_error(StatusCode::NOT_FOUND)?;
        api.get(&format!("/api/visitors/{}", beta_visitor_id.0), auth).await?.expect_error(StatusCode::NOT_FOUND)?;
        for (method, path, body) in &writes {
            let body = (!body.is_null()).then(|| body.clone());
            let answer = api.call(method.clone(), path, auth, body).await?;
            ensure!(leaks(&answer).is_none(), "{who} {method} {path} leaks: {}", answer.text);
            ensure!(
                matches!(answer.status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN),
                "{who} {method} {path}: {} {}",
                answer.status,
                answer.text
            );
        }
    }
    // The demo admin's site change stays on demo.
    let change = Some(json!({ "color": "#000000", "greeting": "demo only" }));
    api.call(Method::PUT, "/api/site", &demo_admin, change).await?.expect(StatusCode::OK)?;
    let forms = Some(json!({ "survey": { "enabled": true } }));
    api.call(Method::PUT, "/api/site/forms", &demo_admin, forms).await?.expect(StatusCode::OK)?;
    let beta_widget = api.get("/api/widget/beta", &Auth::None).await?.expect(StatusCode::OK)?;
    assert_eq!(
        beta_widget,
        json!({ "color": "#2563eb", "greeting": "", "position": "right", "hours": false, "open_now": true, "next_opening": null, "next_closing": null, "offline_form_only": false, "prechat": { "when": "never", "fields": [], "consent": null }, "survey": { "enabled": false, "ask_again": false }, "email_follow_up": false })
    );
    let beta_forms = api.get("/api/site/forms", &beta_admin).await?.expect(StatusCode::OK)?;
    assert_eq!(beta_forms["survey"]["enabled"], false, "{beta_forms}");

    // And site beta is whole: nothing was changed or deleted.
    let agents = api.get("/api/agents", &beta_admin).await?.expect(StatusCode::OK)?;
    ensure!(agents.as_array().is_some_and(|a| a.iter().all(|a| a["active"] == true)), "{agents}");
    let canned = api.get("/api/canned", &beta_admin).await?.expect(StatusCode::OK)?;
    assert_eq!(canned, beta_canned);
    let messages = format!("/api/conversations/{}/messages", beta_conversation.0);
    let beta_messages = api.get(&messages, &beta_admin).await?.expect(StatusCode::OK)?;
    assert_eq!(beta_messages[0]["body"], json!({ "Text": "BETA-MESSAGE" }));
    Ok(())
}

/// One person, an agent of two sites: creating the second agent with the
/// first's email is allowed (emails are unique per site, and an admin
/// learns nothing of other sites' agents); logging in without naming a
/// site lists both sites to choose from, naming one logs in there; and a
/// wrong password answers exactly as an unknown email does.
#[tokio::test]
async fn one_email_is_an_agent_of_two_sites_and_login_asks_which() -> Result<()> {
    let relay = Relay::start().await?;
    add_beta_site(&relay).await?;
    let api = Api::new(&relay);
    let demo_admin = api.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await?;

    let twin = json!({ "email": "Boss@Beta.test", "name": "Boss at demo", "password": "beta password",
                       "role": "agent", "capacity": 3 });
    let created = api.call(Method::POST, "/api/agents", &demo_admin, Some(twin.clone())).await?;
    let created = created.expect(StatusCode::CREATED)?;
    let again = api.call(Method::POST, "/api/agents", &demo_admin, Some(twin)).await?;
    again.expect_error(StatusCode::CONFLICT)?;

    let login = |site: Option<&str>, password: &str| {
        let mut body = json!({ "email": "boss@beta.test", "password": password });
        if let Some(site) = site {
            body["site"] = json!(site);
        }
        api.call(Method::POST, "/api/login", &Auth::None, Some(body))
    };
    let choose = login(None, "beta password").await?.expect(StatusCode::MULTIPLE_CHOICES)?;
    ensure!(choose.get("token").is_none(), "no session before a site is chosen: {choose}");
    assert_eq!(
        choose["sites"],
        json!([{ "key": "beta", "name": "Beta" }, { "key": "demo", "name": "Demo site" }]),
        "both sites, by name"
    );
    let at_demo = login(Some("demo"), "beta password").await?.expect(StatusCode::OK)?;
    assert_eq!(at_demo["agent"]["id"], created["id"]);
    let at_beta = login(Some("beta"), "beta password").await?.expect(StatusCode::OK)?;
    assert_eq!(at_beta["agent"]["name"], "Beta Boss");
    ensure!(at_beta["agent"]["site"] != at_demo["agent"]["site"], "{at_beta} {at_demo}");

    // No oracle: a wrong password, an unknown email and an unknown site
    // are one answer.
    let unknown = json!({ "email": "nobody@beta.test", "password": "beta password" });
    let unknown = api.call(Method::POST, "/api/login", &Auth::None, Some(unknown)).await?;
    let unknown = unknown.expect_error(StatusCode::UNAUTHORIZED)?;
    let wrong = login(None, "not the password").await?.expect_error(StatusCode::UNAUTHORIZED)?;
    let wrong_at_demo = login(Some("demo"), "not the password").await?.expect_error(StatusCode::UNAUTHORIZED)?;
    let no_such_site = login(Some("nowhere"), "beta password").await?.expect_error(StatusCode::UNAUTHORIZED)?;
    assert_eq!([&wrong, &wrong_at_demo, &no_such_site], [&unknown; 3]);
    Ok(())
}

/// A site with 5,000 open conversations: an agent's connection is sent a
/// bounded first page (the most recently active), and the rest is paged
/// over HTTP, every one exactly once.
#[tokio::test]
async fn an_agent_with_thousands_of_open_conversations_gets_a_first_page_and_pages_on() -> Result<()> {
    const OPEN: usize = 5_000;
    let relay = Relay::start().await?;
    reqwest::get(format!("{}/healthz", relay.http_url())).await?.error_for_status()?;
    let store = Store::open(relay.data_dir()).await?;
    let site = store.site_by_key(&SiteKey::new("demo")?).await?.context("the demo site")?.id;
    let mut seeding = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let store = store.clone();
        seeding.spawn(async move {
            let mut ids = Vec::new();
            for _ in (worker..OPEN).step_by(8) {
                let visitor = store.create_visitor(site, "hash").await?;
                ids.push(store.open_conversation(site, visitor).await?.id);
            }
            anyhow::Ok(ids)
        });
    }
    let mut seeded = std::collections::BTreeSet::new();
    while let Some(ids) = seeding.join_next().await {
        seeded.extend(ids??);
    }
    store.close().await;
    ensure!(seeded.len() == OPEN);

    let api = Api::new(&relay);
    let Auth::Bearer(token) = api.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await? else { bail!("a bearer token") };
    let mut agent = kefu_tests::raw::Raw::connect(&relay.ws_url()).await?;
    agent.send(&hello(Credentials::Agent { token: kefu_protocol::ids::AgentToken::new(token.clone())? })).await?;
    // The roster follows the list: everything before it is the first page.
    let mut first_page = Vec::new();
    loop {
        match agent.next().await? {
            kefu_tests::raw::Next::Frame(kefu_protocol::ServerFrame::Conversation(update)) => {
                first_page.push(update.conversation);
            }
            kefu_tests::raw::Next::Frame(kefu_protocol::ServerFrame::Roster(_)) => break,
            kefu_tests::raw::Next::Frame(_) => {}
            kefu_tests::raw::Next::Closed(code) => bail!("closed ({code:?}) before the roster"),
        }
    }
    ensure!(!first_page.is_empty() && first_page.len() <= 100, "a bounded first page, got {}", first_page.len());

    let admin = Auth::Bearer(token);
    let mut paged = Vec::new();
    let mut path = "/api/conversations?status=open&limit=100".to_owned();
    loop {
        let page = api.get(&path, &admin).await?.expect(StatusCode::OK)?;
        let page = page.as_array().context("a list")?.clone();
        let Some(last) = page.last() else { break };
        path = format!(
            "/api/conversations?status=open&limit=100&before={}&before_id={}",
            last["updated_at"].as_u64().context("updated_at")?,
            last["id"].as_u64().context("id")?
        );
        paged.extend(page.iter().map(|c| ConversationId(c["id"].as_u64().unwrap_or_default())));
    }
    let distinct: std::collections::BTreeSet<_> = paged.iter().copied().collect();
    assert_eq!((paged.len(), distinct.len()), (OPEN, OPEN), "every open conversation paged once");
    assert_eq!(distinct, seeded);
    ensure!(first_page.iter().all(|id| distinct.contains(id)));
    // The first page is the newest: what the HTTP pages start with.
    let mut newest: Vec<_> = paged[..first_page.len()].to_vec();
    newest.sort();
    first_page.sort();
    assert_eq!(first_page, newest);
    Ok(())
}

/// The deployment's owner (the first admin) makes a site with its first
/// admin, lists every site and steps into one; the new site's admin sees
/// only their site and none of the owner's API.
#[tokio::test]
async fn the_owner_makes_a_site_steps_into_it_and_its_admin_sees_only_it() -> Result<()> {
    let relay = Relay::start().await?;
    let api = Api::new(&relay);
    // Something on the demo site the new site's admin must not see.
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text("demo only".into())).await?;
    visitor.stop();

    let owner = api.cookie(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    assert_eq!(api.get("/api/me", &owner).await?.expect(StatusCode::OK)?["owner"], true, "the first admin owns it");
    let acme = json!({ "key": "acme", "name": "Acme", "admin_email": "boss@acme.test" });
    let created = api.call(Method::POST, "/api/owner/sites", &owner, Some(acme.clone())).await?;
    let created = created.expect(StatusCode::CREATED)?;
    let password = created["admin_password"].as_str().context("a generated password, shown once")?.to_owned();
    assert_eq!(created["site"]["key"], "acme");
    let again = api.call(Method::POST, "/api/owner/sites", &owner, Some(acme)).await?;
    let taken = again.expect_error(StatusCode::CONFLICT)?;
    ensure!(taken.contains("site key"), "{taken}");
    let bad = json!({ "key": "no spaces", "name": "X", "admin_email": "x@x.test" });
    let bad = api.call(Method::POST, "/api/owner/sites", &owner, Some(bad)).await?;
    let bad = bad.expect_error(StatusCode::BAD_REQUEST)?;
    ensure!(bad.contains("site key"), "names what is wrong: {bad}");

    // The new admin: only Acme, nothing of the owner's API.
    let boss = api.bearer("boss@acme.test", &password).await?;
    let me = api.get("/api/me", &boss).await?.expect(StatusCode::OK)?;
    assert_eq!(me["owner"], false);
    api.get("/api/owner/sites", &boss).await?.expect_error(StatusCode::FORBIDDEN)?;
    let sneaky = json!({ "key": "mine", "name": "Mine", "admin_email": "b@acme.test" });
    api.call(Method::POST, "/api/owner/sites", &boss, Some(sneaky)).await?.expect_error(StatusCode::FORBIDDEN)?;
    api.call(Method::POST, "/api/owner/sites/demo/enter", &boss, None).await?.expect_error(StatusCode::FORBIDDEN)?;
    assert_eq!(api.get("/api/conversations", &boss).await?.expect(StatusCode::OK)?, json!([]), "not demo's");

    // The owner's list: both sites, with their head counts.
    let sites = api.get("/api/owner/sites", &owner).await?.expect(StatusCode::OK)?;
    let listed: Vec<_> = sites
        .as_array()
        .context("a list")?
        .iter()
        .map(|s| (s["key"].clone(), s["agents"].clone(), s["current"].clone()))
        .collect();
    assert_eq!(listed, [(json!("demo"), json!(1), json!(true)), (json!("acme"), json!(1), json!(false))]);
    assert_eq!(sites[0]["open_conversations"], 1);

    // Stepping in: a session on Acme as the owner's own admin row there,
    // which Acme's agent list shows and which takes no chats by itself.
    let (in_acme, entered) = enter_site(&api, &owner, "acme").await?;
    assert_eq!(entered["agent"]["site"], me["agent"]["site"], "signed in to Acme");
    assert_eq!(entered["owner"], true);
    let agents = api.get("/api/agents", &in_acme).await?.expect(StatusCode::OK)?;
    let agents = agents.as_array().context("a list")?;
    let mut emails: Vec<_> = agents.iter().map(|a| a["email"].clone()).collect();
    emails.sort_by_key(ToString::to_string);
    assert_eq!(emails, [json!(ADMIN_EMAIL), json!("boss@acme.test")]);
    let row = agents.iter().find(|a| a["email"] == ADMIN_EMAIL).context("the owner's row")?;
    assert_eq!((row["role"].clone(), row["capacity"].clone()), (json!("admin"), json!(0)));
    assert_eq!(api.get("/api/conversations", &in_acme).await?.expect(StatusCode::OK)?, json!([]));

    // Acme's admin switches the owner's row off; stepping in turns it on
    // again, the same row: owners outrank a site's admins.
    let row_path = format!("/api/agents/{}", row["id"]);
    api.call(Method::PATCH, &row_path, &boss, Some(json!({ "active": false }))).await?.expect(StatusCode::OK)?;
    api.get("/api/me", &in_acme).await?.expect_error(StatusCode::UNAUTHORIZED)?;
    let (in_acme, again) = enter_site(&api, &owner, "acme").await?;
    assert_eq!(again["agent"]["id"], row["id"], "the same row, active again");
    // And back home from there, as the row the first start made.
    let (home, back) = enter_site(&api, &in_acme, "demo").await?;
    let first_row = api.get("/api/me", &owner).await?.expect(StatusCode::OK)?;
    assert_eq!(back["agent"]["id"], first_row["agent"]["id"]);
    let demo_list = api.get("/api/conversations", &home).await?.expect(StatusCode::OK)?;
    assert_eq!(demo_list.as_array().map(Vec::len), Some(1), "demo's conversation again");
    Ok(())
}

/// `POST /api/owner/sites/{key}/enter` as `auth`: the new session's cookie
/// and the answer.
async fn enter_site(api: &Api, auth: &Auth, key: &str) -> Result<(Auth, Value)> {
    let answer = api.call(Method::POST, &format!("/api/owner/sites/{key}/enter"), auth, None).await?;
    let set_cookie = answer.set_cookie.first().context("a new session cookie")?.clone();
    let body = answer.expect(StatusCode::OK)?;
    let cookie = set_cookie.split(';').next().context("a cookie pair")?.to_owned();
    let csrf = body["csrf"].as_str().map(str::to_owned);
    Ok((Auth::Cookie { cookie, csrf }, body))
}

/// `--owner-email` makes another person an owner too.
#[tokio::test]
async fn owner_email_names_more_owners() -> Result<()> {
    let relay = Relay::start_with(&["--owner-email", "Carol@Kefu.test"]).await?;
    let api = Api::new(&relay);
    let admin = api.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    create_agent(&api, &admin, "carol@kefu.test", "agent", 0).await?;
    create_agent(&api, &admin, "dave@kefu.test", "admin", 0).await?;
    let carol = api.bearer("carol@kefu.test", "agent password").await?;
    assert_eq!(api.get("/api/me", &carol).await?.expect(StatusCode::OK)?["owner"], true);
    api.get("/api/owner/sites", &carol).await?.expect(StatusCode::OK)?;
    let dave = api.bearer("dave@kefu.test", "agent password").await?;
    api.get("/api/owner/sites", &dave).await?.expect_error(StatusCode::FORBIDDEN)?;
    Ok(())
}
