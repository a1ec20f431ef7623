//! Logging in and out, and who a request is from.
//!
//! Two kinds of client log in. SDKs and scripts get a bearer token in the
//! answer and send it as `Authorization: Bearer`. The console asks for a
//! cookie (`"cookie": true`): the token then goes only into the HttpOnly,
//! SameSite=Strict `kefu_session` cookie, out of reach of any script, and
//! the answer carries a CSRF token instead, which the console sends back as
//! `X-CSRF-Token` on every request that changes something. Cookie requests
//! that change something are also refused when their `Origin` is not the
//! relay's own (see `auth::cookie`; the extractors are in `extract`).
//!
//! Logging out ends the session for the WebSocket too: every connection
//! opened with it, on every node, is closed (see `hub`'s revocation).

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kefu_protocol::ids::{SiteKey, Timestamp};
use serde::{Deserialize, Serialize};

use super::agents::AgentView;
use super::extract::{CurrentAgent, Json};
use super::login;
use crate::auth::{self, cookie};
use crate::error::Error;
use crate::hub::{Logins, Revocation, Revoked};
use crate::limits::{self, ClientAddress};
use crate::state::AppState;
use crate::store::{Agent, now};

/// Agent sessions last this long; the console logs in again after.
const SESSION_TTL_MS: u64 = 30 * 24 * 60 * 60 * 1000;

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
    /// An owner of the deployment (`/api/owner`).
    #[serde(default)]
    pub owner: bool,
}

/// `POST /api/login` answer for cookie clients, and `GET /api/me`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Me {
    pub agent: AgentView,
    /// For `X-CSRF-Token`; only when the session is in a cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
    /// An owner of the deployment (`/api/owner`).
    #[serde(default)]
    pub owner: bool,
}

/// Checks an agent's password and starts a session.
///
/// Attempts are limited per address (`Config::logins_per_minute_per_ip`)
/// and per account (`Config::logins_per_hour_per_account`), before the
/// password is looked at: each costs a password hash, and passwords must
/// not be guessed, from one address or from many.
pub async fn login(
    State(state): State<AppState>,
    address: ClientAddress,
    headers: HeaderMap,
    Json(request): Json<LoginRequest>,
) -> Result<Response, Error> {
    if let Err(wait) = state.limiters.logins.check(address) {
        return Ok(limits::too_many("login attempts from this address", wait));
    }
    if let Err(wait) = state.limiters.accounts.check(&request.email) {
        return Ok(limits::too_many("login attempts for this account", wait));
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
    start_session(&state, &headers, &agent, request.cookie).await
}

/// Starts a session as `agent`: a bearer token in the answer, or, for the
/// console (`cookie`), the session cookie and a CSRF token. A login, and
/// an owner stepping into a site (`http::owner`), end here.
pub async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    agent: &Agent,
    cookie: bool,
) -> Result<Response, Error> {
    let token = auth::new_token();
    let expires_at = Timestamp(now().0 + SESSION_TTL_MS);
    state.store.create_agent_session(agent.site, agent.id, &auth::token_hash(&token), expires_at).await?;
    let owner = state.store.is_owner(&agent.email).await?;
    let agent = AgentView::from(agent);
    if !cookie {
        return Ok(axum::Json(LoginResponse { token, expires_at, agent, owner }).into_response());
    }
    let secure = cookie::must_be_secure(headers, state.config.public_url.as_ref(), state.config.tls_cert.is_some());
    let cookie = cookie::set_session_cookie(&token, SESSION_TTL_MS / 1000, secure);
    let me = Me { agent, csrf: Some(auth::csrf_token(&token)), owner };
    Ok(([(SET_COOKIE, cookie)], axum::Json(me)).into_response())
}

/// `GET /api/me`: who is logged in, and the CSRF token for a cookie
/// session, so a reloaded console picks up where it was.
pub async fn me(State(state): State<AppState>, current: CurrentAgent) -> Result<axum::Json<Me>, Error> {
    let csrf = current.csrf();
    let owner = state.store.is_owner(&current.agent.email).await?;
    Ok(axum::Json(Me { agent: AgentView::from(&current.agent), csrf, owner }))
}

/// `POST /api/logout`: ends the session, closes the WebSockets opened
/// with it and clears the cookie. Without a valid session there is
/// nothing to end, and the cookie is cleared all the same.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    current: Result<CurrentAgent, Error>,
) -> Result<Response, Error> {
    match current {
        Ok(current) => {
            state.store.delete_agent_session(&current.token_hash).await?;
            let logins = Logins::One(current.token_hash);
            state.hub.revoke(Revocation { agent: current.agent.id, logins, why: Revoked::SignedOut });
        }
        Err(Error::Unauthenticated) => {}
        Err(error) => return Err(error),
    }
    let secure = cookie::must_be_secure(&headers, state.config.public_url.as_ref(), state.config.tls_cert.is_some());
    let clear = cookie::set_session_cookie("", 0, secure);
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, clear)]).into_response())
}
