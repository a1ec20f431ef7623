//! The HTTP API under `/api`, for the agent console, the widget and SDKs.
//!
//! # Layout
//!
//! - [`login`]: which agent an email and password log in as, when one
//!   person is an agent of several sites.
//! - [`session`]: logging in and out, and who a request is from: a bearer
//!   token (SDKs) or the `kefu_session` cookie with its CSRF token (the
//!   console); [`CurrentAgent`] and [`Admin`] extract them.
//! - [`site`]: the caller's site and its widget settings; the widget's
//!   public look.
//! - [`agents`]: an admin's list of agents, creating and changing them.
//! - [`canned`]: canned replies.
//! - [`history`]: pages of past conversations and messages.
//! - [`visitors`]: the visitor panel; [`user_agent`] names the browser.
//! - [`extract`]: `Json`, `Query` and `Path` whose rejections answer in
//!   the API's `{"error": ...}` shape.
//!
//! Every handler scopes what it reads and writes to the caller's site, and
//! a row of another site answers 404 exactly as a missing one does.

pub mod agents;
pub mod canned;
pub mod extract;
pub mod history;
pub mod login;
pub mod session;
pub mod site;
pub mod user_agent;
pub mod visitors;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};

pub use agents::AgentView;
pub use session::{Admin, CurrentAgent, agent_from_cookie};

use crate::state::AppState;

/// The API's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/login", post(session::login))
        .route("/api/logout", post(session::logout))
        .route("/api/me", get(session::me))
        .route("/api/site", get(site::show).put(site::update))
        .route("/api/site/identity-secret", post(site::rotate_identity_secret))
        .route("/api/widget/{site_key}", get(site::widget))
        .route("/api/agents", get(agents::list).post(agents::create))
        .route("/api/agents/{id}", patch(agents::update))
        .route("/api/canned", get(canned::list).post(canned::create))
        .route("/api/canned/{id}", put(canned::update).delete(canned::delete))
        .route("/api/conversations", get(history::conversations))
        .route("/api/conversations/{id}/messages", get(history::messages))
        .route("/api/visitors/{id}", get(visitors::show))
        .route("/healthz", get(healthz))
}

/// `GET /healthz`: 200 when the store answers, 503 when it does not.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.health().await {
        Ok(()) => axum::Json(serde_json::json!({ "status": "ok", "store": "ok" })).into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unavailable", "store": error.to_string() })),
        )
            .into_response(),
    }
}
