//! The HTTP API: agent login and health.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kefu_protocol::ids::{AgentId, SiteId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::auth;
use crate::error::Error;
use crate::state::{AppState, now};
use crate::store::Role;

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
