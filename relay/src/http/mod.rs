//! The HTTP API: agent login and health.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use kefu_protocol::ids::{AgentId, SiteId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::auth;
use crate::error::Error;
use crate::state::AppState;
use crate::store::now;
use crate::store::{self, Role};

/// Agent sessions last this long; the console logs in again after.
const SESSION_TTL_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// `POST /api/login` body.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// `POST /api/login` answer: the token goes into the WebSocket hello.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    pub token: String,
    pub expires_at: Timestamp,
    pub agent: AgentView,
}

/// An agent as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct AgentView {
    pub id: AgentId,
    pub site: SiteId,
    pub email: String,
    pub name: String,
    pub admin: bool,
}

/// Checks an agent's password and issues a session token.
pub async fn login(
    State(state): State<AppState>,
    Json(request): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, Error> {
    let found = state.store.agent_login(request.email.trim()).await?;
    // Hash checks take tens of milliseconds of CPU: keep them off the
    // async workers. An unknown email is checked against a dummy hash so
    // the answer takes as long as for a known one.
    let (agent, hash) = match found {
        Some((agent, hash)) => (Some(agent), hash),
        None => (None, auth::dummy_hash().to_owned()),
    };
    let password = request.password;
    let valid = tokio::task::spawn_blocking(move || auth::verify_password(&hash, &password))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    let Some(agent) = agent.filter(|_| valid) else {
        return Err(Error::BadLogin);
    };
    let token = auth::new_token();
    let expires_at = Timestamp(now().0 + SESSION_TTL_MS);
    state.store.create_agent_session(agent.id, &auth::token_hash(&token), expires_at).await?;
    Ok(Json(LoginResponse {
        token,
        expires_at,
        agent: AgentView {
            id: agent.id,
            site: agent.site,
            email: agent.email,
            name: agent.name,
            admin: matches!(agent.role, Role::Admin),
        },
    }))
}

/// The agent a request is made by, from `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct CurrentAgent(pub store::Agent);

impl FromRequestParts<AppState> for CurrentAgent {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<CurrentAgent, Error> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(Error::Unauthenticated)?;
        let agent = state.store.agent_by_session(&auth::token_hash(token.trim()), now()).await?;
        agent.map(CurrentAgent).ok_or(Error::Unauthenticated)
    }
}

/// `GET /api/site` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct SiteView {
    pub id: SiteId,
    pub key: String,
    pub name: String,
    /// For signing visitor identities (HMAC-SHA256 of the user id); admins only.
    pub identity_secret: Option<String>,
}

/// The site of the agent making the request.
pub async fn site(State(state): State<AppState>, CurrentAgent(agent): CurrentAgent) -> Result<Json<SiteView>, Error> {
    let site = state.store.site(agent.site).await?.ok_or(Error::Unauthenticated)?;
    let identity_secret = match agent.role {
        Role::Admin => Some(state.store.identity_secret(site.id).await?),
        Role::Agent => None,
    };
    Ok(Json(SiteView { id: site.id, key: site.key.as_str().to_owned(), name: site.name, identity_secret }))
}

/// `GET /healthz`: 200 when the store answers, 503 when it does not.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.health().await {
        Ok(()) => Json(serde_json::json!({ "status": "ok", "store": "ok" })).into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "store": error.to_string() })),
        )
            .into_response(),
    }
}
