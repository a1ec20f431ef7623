//! The HTTP API under `/api`, for the agent console, the widget and SDKs.
//!
//! # Layout
//!
//! - [`login`]: which agent an email and password log in as, when one
//!   person is an agent of several sites.
//! - [`session`]: logging in and out: a bearer token (SDKs) or the
//!   `kefu_session` cookie with its CSRF token (the console).
//! - [`site`]: the caller's site and its widget settings; the widget's
//!   public look.
//! - [`hours`]: the site's business hours.
//! - [`forms`]: the widget's pre-chat form and satisfaction survey.
//! - [`agents`]: an admin's list of agents, creating and changing them.
//! - [`owner`]: the deployment's owners: every site, making sites, and
//!   stepping into one.
//! - [`canned`]: canned replies.
//! - [`attachments`]: uploading files and fetching them, for agents and
//!   visitors.
//! - [`mail`]: a site's mail settings and its outbox, for admins.
//! - [`history`]: pages of past conversations and messages.
//! - [`visitors`]: the visitor panel; [`user_agent`] names the browser.
//! - [`follow_up`]: the unsubscribe link of follow-up mail, a site's
//!   batch delay, an agent's transcript to the visitor.
//! - [`survey`]: the score links of the survey mail.
//! - [`health`]: `/healthz` and `/readyz`, for whoever runs the relay.
//! - [`extract`]: who a request is from ([`CurrentAgent`], [`Admin`]:
//!   a bearer token or the session cookie with its CSRF token), and
//!   `Json`, `Query` and `Path` whose rejections answer in the API's
//!   `{"error": ...}` shape.
//!
//! Every handler scopes what it reads and writes to the caller's site, and
//! a row of another site answers 404 exactly as a missing one does.
//!
//! Every answer is `Cache-Control: no-store`: they carry tokens (a login's),
//! CSRF tokens, a site's identity secret, or a site's private data, none of
//! which a browser or a proxy in between may keep.

pub mod agents;
pub mod attachments;
pub mod canned;
pub mod extract;
pub mod follow_up;
pub mod forms;
pub mod health;
pub mod history;
pub mod hours;
pub mod login;
pub mod mail;
pub mod owner;
pub mod session;
pub mod site;
pub mod survey;
pub mod user_agent;
pub mod visitors;

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use axum::response::Response;
use axum::routing::{get, patch, post, put};

pub use agents::AgentView;
pub use extract::{Admin, CurrentAgent, Owner};

use crate::state::AppState;

/// The API's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/login", post(session::login))
        .route("/api/logout", post(session::logout))
        .route("/api/me", get(session::me))
        .route("/api/site", get(site::show).put(site::update))
        .route("/api/site/hours", get(hours::show).put(hours::update))
        .route("/api/site/forms", get(forms::show).put(forms::update))
        .route("/api/site/identity-secret", post(site::rotate_identity_secret))
        .route("/api/site/follow-up", get(follow_up::show).put(follow_up::update))
        .route("/api/site/mail", get(mail::show).put(mail::update))
        .route("/api/mail/outbox", get(mail::outbox))
        .route("/api/widget/{site_key}", get(site::widget))
        .route("/api/unsubscribe", get(follow_up::confirm).post(follow_up::unsubscribe))
        .route("/api/survey", get(survey::confirm).post(survey::rate))
        .route("/api/agents", get(agents::list).post(agents::create))
        .route("/api/agents/{id}", patch(agents::update))
        .route("/api/attachments", post(attachments::upload))
        .route("/api/attachments/{id}", get(attachments::download))
        .route("/api/canned", get(canned::list).post(canned::create))
        .route("/api/canned/{id}", put(canned::update).delete(canned::delete))
        .route("/api/conversations", get(history::conversations))
        .route("/api/conversations/{id}/messages", get(history::messages))
        .route("/api/conversations/{id}/transcript", post(follow_up::transcript))
        .route("/api/visitors/{id}", get(visitors::show))
        .route("/api/owner/sites", get(owner::sites).post(owner::create))
        .route("/api/owner/sites/{key}/enter", post(owner::enter))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .layer(axum::middleware::map_response(no_store))
}

/// Keeps every API answer out of caches.
async fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
