//! Logging in and out, and who a request is from.
//!
//! Two kinds of client log in. SDKs and scripts get a bearer token in the
//! answer and send it as `Authorization: Bearer`. The console asks for a
//! cookie (`"cookie": true`): the token then goes only into the HttpOnly,
//! SameSite=Strict `kefu_session` cookie, out of reach of any script, and
//! the answer carries a CSRF token instead, which the console sends back as
//! `X-CSRF-Token` on every request that changes something. Cookie requests
//! that change something are also refused when their `Origin` is not the
//! relay's own.

use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use kefu_protocol::ids::{SiteKey, Timestamp};
use serde::{Deserialize, Serialize};

use super::agents::AgentView;
use super::extract::Json;
use super::login;
use crate::auth;
use crate::error::Error;
use crate::limits::{self, ClientAddress};
use crate::state::AppState;
use crate::store::{self, Role, now};

/// Agent sessions last this long; the console logs in again after.
const SESSION_TTL_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// The cookie that carries a console's session token.
pub const SESSION_COOKIE: &str = "kefu_session";

/// The header a cookie-authenticated request that changes something must
/// carry, with the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// `POST /api/login` body.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Put the session in a cookie instead of the answer (the console).
    #[serde(default)]
    pub cookie: bool,
    /// The key of the site to log in to, for an email that is an agent of
    /// several; without it such a login is answered with the sites.
    #[serde(default)]
    pub site: Option<String>,
}

/// `POST /api/login` answer (300 Multiple Choices) when the email and
/// password fit agents of several sites and the request named none: log
/// in again with one of these `site` keys.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChooseSite {
    pub sites: Vec<login::SiteChoice>,
}

/// `POST /api/login` answer for bearer clients: the token goes into the
/// WebSocket hello.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    pub token: String,
    pub expires_at: Timestamp,
    pub agent: AgentView,
}

/// `POST /api/login` answer for cookie clients, and `GET /api/me`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Me {
    pub agent: AgentView,
    /// For `X-CSRF-Token`; only when the session is in a cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
}

/// Checks an agent's password and starts a session.
///
/// Attempts are limited per address (`Config::logins_per_minute_per_ip`):
/// each costs a password hash, and passwords must not be guessed.
pub async fn login(
    State(state): State<AppState>,
    address: ClientAddress,
    headers: HeaderMap,
    Json(request): Json<LoginRequest>,
) -> Result<Response, Error> {
    if let Err(wait) = state.limiters.logins.check(address) {
        return Ok(limits::too_many("login attempts", wait));
    }
    // A site key that is not one matches no agent: refused like the rest.
    let site = request.site.map(SiteKey::new).transpose().map_err(|_| Error::BadLogin)?;
    let agent = match login::check(&state, request.email.trim(), request.password, site.as_ref()).await? {
        login::Verdict::Agent(agent) => agent,
        login::Verdict::ChooseSite(sites) => {
            return Ok((StatusCode::MULTIPLE_CHOICES, axum::Json(ChooseSite { sites })).into_response());
        }
        login::Verdict::Refused => return Err(Error::BadLogin),
    };
    let token = auth::new_token();
    let expires_at = Timestamp(now().0 + SESSION_TTL_MS);
    state.store.create_agent_session(agent.site, agent.id, &auth::token_hash(&token), expires_at).await?;
    let agent = AgentView::from(&agent);
    if !request.cookie {
        return Ok(axum::Json(LoginResponse { token, expires_at, agent }).into_response());
    }
    let cookie = session_cookie(&token, SESSION_TTL_MS / 1000, &headers);
    let me = Me { agent, csrf: Some(auth::csrf_token(&token)) };
    Ok(([(SET_COOKIE, cookie)], axum::Json(me)).into_response())
}

/// `GET /api/me`: who is logged in, and the CSRF token for a cookie
/// session, so a reloaded console picks up where it was.
pub async fn me(current: CurrentAgent) -> axum::Json<Me> {
    let csrf = current.csrf();
    axum::Json(Me { agent: AgentView::from(&current.agent), csrf })
}

/// `POST /api/logout`: ends the session and clears the cookie. Without a
/// valid session there is nothing to end, and the cookie is cleared all
/// the same.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    current: Result<CurrentAgent, Error>,
) -> Result<Response, Error> {
    match current {
        Ok(current) => state.store.delete_agent_session(&auth::token_hash(current.credential.token())).await?,
        Err(Error::Unauthenticated) => {}
        Err(error) => return Err(error),
    }
    let clear = session_cookie("", 0, &headers);
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, clear)]).into_response())
}

/// How a request proved who it is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// The `kefu_session` cookie.
    Cookie(String),
}

impl Credential {
    /// The request's credential: the bearer token if there is an
    /// `Authorization` header, else the session cookie.
    pub fn from_headers(headers: &HeaderMap) -> Option<Credential> {
        if let Some(value) = headers.get(AUTHORIZATION) {
            let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
            return Some(Credential::Bearer(token.to_owned()));
        }
        session_cookie_value(headers).map(|token| Credential::Cookie(token.to_owned()))
    }

    /// The session token.
    pub fn token(&self) -> &str {
        match self {
            Credential::Bearer(token) | Credential::Cookie(token) => token,
        }
    }
}

/// The agent a request is made by, from a bearer token or the session
/// cookie; a cookie request other than GET must also pass the CSRF and
/// origin checks.
#[derive(Debug, Clone)]
pub struct CurrentAgent {
    pub agent: store::Agent,
    pub credential: Credential,
}

impl CurrentAgent {
    /// The CSRF token to send back, for a cookie session.
    pub fn csrf(&self) -> Option<String> {
        match &self.credential {
            Credential::Cookie(token) => Some(auth::csrf_token(token)),
            Credential::Bearer(_) => None,
        }
    }
}

impl FromRequestParts<AppState> for CurrentAgent {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<CurrentAgent, Error> {
        let credential = Credential::from_headers(&parts.headers).ok_or(Error::Unauthenticated)?;
        let agent = state.store.agent_by_session(&auth::token_hash(credential.token()), now()).await?;
        let agent = agent.ok_or(Error::Unauthenticated)?;
        if let Credential::Cookie(token) = &credential
            && !matches!(parts.method, Method::GET | Method::HEAD)
        {
            // A browser sends the cookie wherever the request comes from;
            // only the relay's own pages can read and send the CSRF token.
            if !same_origin(&parts.headers) {
                return Err(Error::Forbidden("cross-origin requests may not use the session cookie"));
            }
            let sent = parts.headers.get(CSRF_HEADER).and_then(|value| value.to_str().ok()).unwrap_or_default();
            if !auth::secrets_equal(sent, &auth::csrf_token(token)) {
                return Err(Error::Forbidden("missing or wrong X-CSRF-Token header"));
            }
        }
        Ok(CurrentAgent { agent, credential })
    }
}

/// An admin making the request; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct Admin(pub store::Agent);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, Error> {
        let CurrentAgent { agent, .. } = CurrentAgent::from_request_parts(parts, state).await?;
        match agent.role {
            Role::Admin => Ok(Admin(agent)),
            Role::Agent => Err(Error::Forbidden("only admins may do this")),
        }
    }
}

/// The agent whose session cookie a WebSocket upgrade carries, for the
/// console's hello. `None` without a cookie, for an unknown, expired or
/// deactivated session, and when the upgrade comes from a page of another
/// origin (the browser attaches the cookie to those too).
pub async fn agent_from_cookie(state: &AppState, headers: &HeaderMap) -> Result<Option<store::Agent>, store::Error> {
    let Some(token) = session_cookie_value(headers) else {
        return Ok(None);
    };
    if !same_origin(headers) {
        return Ok(None);
    }
    state.store.agent_by_session(&auth::token_hash(token), now()).await
}

/// The value of the `kefu_session` cookie.
fn session_cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether the request's `Origin`, if it has one, is the origin it was
/// sent to (its `Host`). Ports are compared as written, except that a
/// scheme's default port may be left out on either side.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(host)) = (origin.to_str(), headers.get(HOST).and_then(|host| host.to_str().ok())) else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let without_default = |value: &str| value.strip_suffix(default_port).map(str::to_owned).unwrap_or(value.to_owned());
    without_default(authority).eq_ignore_ascii_case(&without_default(host))
}

/// A `Set-Cookie` value for the session cookie; `Secure` when a proxy in
/// front says the client came over HTTPS (the relay itself speaks plain
/// HTTP, and a `Secure` cookie would not come back over that).
fn session_cookie(token: &str, max_age_secs: u64, headers: &HeaderMap) -> HeaderValue {
    let https = headers.get("x-forwarded-proto").is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}");
    // Tokens are hex, so the value is always a valid header.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("kefu_session=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let found = headers(&[("cookie", "theme=dark; kefu_session=abc123 ; other=1")]);
        assert_eq!(session_cookie_value(&found), Some("abc123"));
        let split = headers(&[("cookie", "theme=dark"), ("cookie", "kefu_session=def")]);
        assert_eq!(session_cookie_value(&split), Some("def"));
        assert_eq!(session_cookie_value(&headers(&[("cookie", "xkefu_session=abc")])), None);
        assert_eq!(session_cookie_value(&headers(&[("cookie", "kefu_session=")])), None);
        assert_eq!(session_cookie_value(&HeaderMap::new()), None);
    }

    #[test]
    fn bearer_tokens_win_over_cookies() {
        let both = headers(&[("authorization", "Bearer tok"), ("cookie", "kefu_session=cook")]);
        assert_eq!(Credential::from_headers(&both), Some(Credential::Bearer("tok".into())));
        let cookie = headers(&[("cookie", "kefu_session=cook")]);
        assert_eq!(Credential::from_headers(&cookie), Some(Credential::Cookie("cook".into())));
        assert_eq!(Credential::from_headers(&headers(&[("authorization", "Basic x")])), None);
    }

    #[test]
    fn origins_must_match_the_host() {
        let check = |origin: &str, host: &str| same_origin(&headers(&[("origin", origin), ("host", host)]));
        assert!(check("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(check("https://Chat.Example", "chat.example"));
        assert!(check("https://chat.example", "chat.example:443"));
        assert!(check("http://chat.example:80", "chat.example"));
        assert!(!check("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!check("https://evil.example", "chat.example"));
        assert!(!check("https://chat.example.evil", "chat.example"));
        assert!(!check("null", "chat.example"));
        assert!(!check("https://chat.example:8443", "chat.example"));
        assert!(same_origin(&headers(&[("host", "chat.example")])), "no Origin: not a cross-site browser request");
        assert!(!same_origin(&headers(&[("origin", "https://chat.example")])), "an Origin but no Host");
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_behind_https() {
        let plain = session_cookie("abc", 60, &HeaderMap::new());
        assert_eq!(plain, "kefu_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=60");
        let behind_tls = session_cookie("abc", 60, &headers(&[("x-forwarded-proto", "https")]));
        assert_eq!(behind_tls, "kefu_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=60; Secure");
    }
}
