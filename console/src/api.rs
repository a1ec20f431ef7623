//! The relay's HTTP API, as the console uses it.
//!
//! The session is an HttpOnly cookie the page cannot read: the browser
//! sends it with every same-origin request and with the WebSocket upgrade.
//! What the page does keep, in memory only, is the CSRF token that
//! `/api/login` and `/api/me` return; every state-changing request carries
//! it in `X-CSRF-Token`, which another site's page cannot forge.

use std::cell::RefCell;

use kefu_protocol::frame::Message;
use kefu_protocol::ids::{AgentId, ConversationId, Seq, SiteId, Timestamp, VisitorId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestCredentials, RequestInit, Response};

thread_local! {
    /// The CSRF token of the signed-in session; the page has one thread.
    static CSRF: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A failed call, as a sentence for the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    fn unreachable() -> ApiError {
        ApiError { status: 0, message: "Cannot reach the relay. Check the connection and try again.".to_owned() }
    }

    /// The session is gone (logged out elsewhere, expired, deactivated).
    pub fn signed_out(&self) -> bool {
        self.status == 401
    }
}

/// An agent as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgentView {
    pub id: AgentId,
    pub site: SiteId,
    pub email: String,
    pub name: String,
    pub admin: bool,
    pub role: String,
    pub capacity: u32,
    pub active: bool,
}

/// Who is signed in on this tab.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Me {
    pub agent: AgentView,
    #[serde(default)]
    pub csrf: String,
}

/// The site's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SiteView {
    pub id: SiteId,
    pub key: String,
    pub name: String,
    /// Shown to admins only.
    #[serde(default)]
    pub identity_secret: Option<String>,
    pub draft_preview: bool,
    pub color: String,
    pub greeting: String,
    pub position: String,
    pub allowed_origins: Vec<String>,
}

/// What an admin changes in the site's settings.
#[derive(Debug, Clone, Serialize)]
pub struct SiteChange {
    pub name: String,
    pub draft_preview: bool,
    pub color: String,
    pub greeting: String,
    pub position: String,
    pub allowed_origins: Vec<String>,
}

/// A new agent.
#[derive(Debug, Clone, Serialize)]
pub struct NewAgent {
    pub email: String,
    pub name: String,
    pub password: String,
    pub role: String,
    pub capacity: u32,
}

/// A change to an agent; absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// A canned reply: `/shortcut` in the composer becomes `text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canned {
    #[serde(default, skip_serializing)]
    pub id: u64,
    pub shortcut: String,
    pub text: String,
}

/// One entry of the conversation lists served over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ConversationSummary {
    pub id: ConversationId,
    pub visitor: VisitorId,
    pub status: String,
    pub last_seq: Seq,
    pub updated_at: Timestamp,
    #[serde(default)]
    pub assignee: Option<AgentId>,
    #[serde(default)]
    pub waiting_since: Option<Timestamp>,
    #[serde(default)]
    pub visitor_name: Option<String>,
    /// The newest message or note, for the preview.
    #[serde(default)]
    pub last_message: Option<Message>,
}

/// A page the visitor saw.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Visit {
    pub url: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub referrer: Option<String>,
    pub at: Timestamp,
}

/// An earlier conversation of the same visitor (or verified user).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PastConversation {
    pub id: ConversationId,
    pub status: String,
    pub last_seq: Seq,
    pub updated_at: Timestamp,
}

/// Everything the relay knows about a visitor beyond the live profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VisitorDetails {
    pub profile: kefu_protocol::frame::VisitorProfile,
    #[serde(default)]
    pub visits: Vec<Visit>,
    #[serde(default)]
    pub browser: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub conversations: Vec<PastConversation>,
    /// Name and email were signed with the user id, not only claimed.
    #[serde(default)]
    pub profile_signed: bool,
}

#[derive(Serialize)]
struct LoginBody<'a> {
    email: &'a str,
    password: &'a str,
    cookie: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<&'a str>,
}

/// A site an email is an agent of, to choose from at login.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SiteChoice {
    pub key: String,
    pub name: String,
}

/// What a login came to.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Login {
    /// Signed in: the relay set the session cookie.
    Done(Me),
    /// The email and password fit agents of several sites (answered with
    /// 300): log in again naming one.
    ChooseSite { sites: Vec<SiteChoice> },
}

/// Signs in, to the site with key `site` if given.
pub async fn login(email: &str, password: &str, site: Option<&str>) -> Result<Login, ApiError> {
    let body = LoginBody { email, password, cookie: true, site };
    let login: Login = match call("POST", "/api/login", Some(&body)).await {
        Err(error) if error.status == 401 => {
            return Err(ApiError { status: 401, message: "Wrong email or password.".to_owned() });
        }
        other => other?,
    };
    if let Login::Done(me) = &login {
        remember(Some(&me.csrf));
    }
    Ok(login)
}

/// Who this tab is signed in as, from the cookie; `None` if nobody.
pub async fn me() -> Result<Option<Me>, ApiError> {
    match call::<Me, ()>("GET", "/api/me", None).await {
        Ok(me) => {
            remember(Some(&me.csrf));
            Ok(Some(me))
        }
        Err(error) if error.signed_out() => Ok(None),
        Err(error) => Err(error),
    }
}

/// Ends the session: the relay clears the cookie.
pub async fn logout() {
    let _ = call_empty::<()>("POST", "/api/logout", None).await;
    remember(None);
}

pub async fn site() -> Result<SiteView, ApiError> {
    call::<_, ()>("GET", "/api/site", None).await
}

pub async fn update_site(change: &SiteChange) -> Result<SiteView, ApiError> {
    call("PUT", "/api/site", Some(change)).await
}

pub async fn agents() -> Result<Vec<AgentView>, ApiError> {
    call::<_, ()>("GET", "/api/agents", None).await
}

pub async fn create_agent(agent: &NewAgent) -> Result<AgentView, ApiError> {
    call("POST", "/api/agents", Some(agent)).await
}

pub async fn update_agent(id: AgentId, change: &AgentChange) -> Result<AgentView, ApiError> {
    call("PATCH", &format!("/api/agents/{id}"), Some(change)).await
}

pub async fn canned() -> Result<Vec<Canned>, ApiError> {
    call::<_, ()>("GET", "/api/canned", None).await
}

pub async fn create_canned(canned: &Canned) -> Result<Canned, ApiError> {
    call("POST", "/api/canned", Some(canned)).await
}

pub async fn update_canned(canned: &Canned) -> Result<Canned, ApiError> {
    call("PUT", &format!("/api/canned/{}", canned.id), Some(canned)).await
}

pub async fn delete_canned(id: u64) -> Result<(), ApiError> {
    call_empty::<()>("DELETE", &format!("/api/canned/{id}"), None).await
}

/// Open or closed conversations (`status`), most recently active first,
/// after `before` (the previous page's last `updated_at` and id) if given.
pub async fn conversations(
    status: &str,
    before: Option<(Timestamp, ConversationId)>,
    limit: u32,
) -> Result<Vec<ConversationSummary>, ApiError> {
    let mut path = format!("/api/conversations?status={status}&limit={limit}");
    if let Some((at, id)) = before {
        path.push_str(&format!("&before={}&before_id={id}", at.0));
    }
    call::<_, ()>("GET", &path, None).await
}

/// Up to `limit` messages before `before` (the newest ones without it),
/// oldest first.
pub async fn messages(conversation: ConversationId, before: Option<Seq>, limit: u32) -> Result<Vec<Message>, ApiError> {
    let mut path = format!("/api/conversations/{conversation}/messages?limit={limit}");
    if let Some(before) = before {
        path.push_str(&format!("&before={before}"));
    }
    call::<_, ()>("GET", &path, None).await
}

pub async fn visitor(visitor: VisitorId) -> Result<VisitorDetails, ApiError> {
    call::<_, ()>("GET", &format!("/api/visitors/{visitor}"), None).await
}

fn remember(csrf: Option<&str>) {
    CSRF.with(|slot| *slot.borrow_mut() = csrf.map(ToOwned::to_owned));
}

/// A call whose answer is JSON of type `T`.
async fn call<T: DeserializeOwned, B: Serialize>(method: &str, path: &str, body: Option<&B>) -> Result<T, ApiError> {
    let text = send(method, path, body).await?;
    serde_json::from_str(&text)
        .map_err(|_| ApiError { status: 200, message: "The relay sent an answer this console cannot read.".to_owned() })
}

/// A call whose answer has no body worth reading.
async fn call_empty<B: Serialize>(method: &str, path: &str, body: Option<&B>) -> Result<(), ApiError> {
    send(method, path, body).await.map(drop)
}

/// Sends one request with the cookie (and the CSRF token for changes);
/// returns the body of a 2xx answer, else the relay's sentence.
async fn send<B: Serialize>(method: &str, path: &str, body: Option<&B>) -> Result<String, ApiError> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_credentials(RequestCredentials::SameOrigin);
    if let Some(body) = body {
        let json = serde_json::to_string(body).map_err(|_| ApiError::unreachable())?;
        init.set_body(&JsValue::from_str(&json));
    }
    let request = Request::new_with_str_and_init(path, &init).map_err(|_| ApiError::unreachable())?;
    let headers = request.headers();
    if body.is_some() {
        let _ = headers.set("content-type", "application/json");
    }
    if method != "GET" {
        CSRF.with(|slot| {
            if let Some(csrf) = slot.borrow().as_deref() {
                let _ = headers.set("x-csrf-token", csrf);
            }
        });
    }
    let window = web_sys::window().ok_or_else(ApiError::unreachable)?;
    let response: Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(|_| ApiError::unreachable())?
        .dyn_into()
        .map_err(|_| ApiError::unreachable())?;
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise).await.ok().and_then(|t| t.as_string()).unwrap_or_default(),
        Err(_) => String::new(),
    };
    let status = response.status();
    // 300 is an answer too: a login asking which site.
    if (200..=300).contains(&status) {
        return Ok(text);
    }
    let said = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(ToOwned::to_owned))
        .filter(|s| !s.is_empty());
    let message = match (status, said) {
        (429, _) => "Too many attempts. Wait a minute and try again.".to_owned(),
        (_, Some(said)) => capitalise(&said),
        (401, None) => "Your session has ended. Please log in again.".to_owned(),
        (403, None) => "You are not allowed to do that.".to_owned(),
        (404, None) => "Not found.".to_owned(),
        (status, None) => format!("The relay answered {status}. Try again."),
    };
    Err(ApiError { status, message })
}

fn capitalise(sentence: &str) -> String {
    let mut chars = sentence.chars();
    let mut out: String = chars.next().map(|c| c.to_uppercase().collect()).unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}
