//! The owner's API under `/api/owner`: one deployment serving several
//! companies. Owners are people (by login email) above every site's
//! admins: the first admin the first start made, and whoever
//! `--owner-email` names. An owner lists every site, makes a site with
//! its first admin, and steps into any site.
//!
//! Stepping in keeps the rule that every request acts within one site: the
//! owner gets an admin agent row of their own on that site (same email,
//! same password, taking no chats by itself) and a session as that row.
//! Everything they then do is scoped to that site like any admin's, and
//! the site's agents list shows them, so nobody is in a site unseen.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kefu_protocol::ids::{SiteKey, Timestamp};
use serde::{Deserialize, Serialize};

use super::extract::{Credential, Json, Owner, Path};
use super::session::start_session;
use crate::auth::new_site::{self, NewSite, Refused};
use crate::error::Error;
use crate::state::AppState;
use crate::store::{AgentUpdate, NewAgent, Role};

/// A site in the owner's list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteView {
    pub key: String,
    pub name: String,
    /// Active agents, admins included.
    pub agents: u64,
    pub open_conversations: u64,
    pub created_at: Timestamp,
    /// The site the owner is signed in to now.
    pub current: bool,
}

/// `POST /api/owner/sites` body.
#[derive(Debug, Deserialize)]
pub struct CreateSite {
    pub key: String,
    pub name: String,
    pub admin_email: String,
    /// Generated and answered once when absent.
    #[serde(default)]
    pub admin_password: Option<String>,
}

/// `POST /api/owner/sites` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedSiteView {
    pub site: SiteView,
    pub admin_email: String,
    /// Only when it was generated: shown once, never stored in clear.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
}

/// `GET /api/owner/sites`: every site, oldest first.
pub async fn sites(State(state): State<AppState>, Owner(current): Owner) -> Result<axum::Json<Vec<SiteView>>, Error> {
    let overviews = state.store.site_overviews().await?;
    let views = overviews
        .into_iter()
        .map(|o| SiteView {
            current: o.site.id == current.agent.site,
            key: o.site.key.as_str().to_owned(),
            name: o.site.name,
            agents: o.agents,
            open_conversations: o.open_conversations,
            created_at: o.created_at,
        })
        .collect();
    Ok(axum::Json(views))
}

/// `POST /api/owner/sites`: a new site and its first admin.
pub async fn create(
    State(state): State<AppState>,
    Owner(_): Owner,
    Json(request): Json<CreateSite>,
) -> Result<Response, Error> {
    let new = NewSite {
        key: request.key,
        name: request.name,
        admin_email: request.admin_email,
        admin_password: request.admin_password,
    };
    let created = new_site::create_site(&state.store, new).await.map_err(|refused| match refused {
        Refused::KeyTaken(_) => Error::Store(crate::store::Error::Conflict("site key")),
        Refused::Store(error) => Error::Store(error),
        Refused::Hashing(error) => Error::Internal(error),
        refused => Error::BadRequest(refused.to_string()),
    })?;
    tracing::info!(site = %created.site.key.as_str(), admin = %created.admin.email, "an owner created a site");
    let site = SiteView {
        key: created.site.key.as_str().to_owned(),
        name: created.site.name,
        agents: 1,
        open_conversations: 0,
        created_at: crate::store::now(),
        current: false,
    };
    let view = CreatedSiteView { site, admin_email: created.admin.email, admin_password: created.generated_password };
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// `POST /api/owner/sites/{key}/enter`: a session on that site as the
/// owner's own admin row there, made or re-enabled as needed; answered
/// as a login is (a cookie for the console, a token for a bearer client).
pub async fn enter(
    State(state): State<AppState>,
    Owner(current): Owner,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, Error> {
    let key = SiteKey::new(key).map_err(|_| Error::NotFound)?;
    let site = state.store.site_by_key(&key).await?.ok_or(Error::NotFound)?;
    let me = &current.agent;
    // The owner's rows on every site, with their password hashes: the one
    // signed in now gives the password the new row starts with.
    let rows = state.store.agent_logins(&me.email).await?;
    let password_hash =
        rows.iter().find(|row| row.agent.id == me.id).map(|row| row.password_hash.clone()).ok_or(Error::NotFound)?;
    let agent = match rows.into_iter().find(|row| row.site.id == site.id) {
        Some(row) if row.agent.active && row.agent.role == Role::Admin => row.agent,
        Some(row) => {
            let update = AgentUpdate { role: Some(Role::Admin), active: Some(true), ..AgentUpdate::default() };
            state.store.update_agent(site.id, row.agent.id, &update).await?
        }
        None => {
            let new = NewAgent {
                site: site.id,
                email: &me.email,
                name: &me.name,
                password_hash: &password_hash,
                role: Role::Admin,
                // Present to administer, not to be handed chats.
                capacity: 0,
            };
            state.store.add_agent(&new).await?
        }
    };
    tracing::info!(site = %key.as_str(), owner = %me.email, "an owner stepped into a site");
    let cookie = matches!(current.credential, Credential::Cookie(_));
    start_session(&state, &headers, &agent, cookie).await
}
