//! The site's agents: everyone may list them, admins create and change
//! them.
//!
//! A change that ends or alters an agent's access reaches its live
//! connections on every node at once (see `hub`'s revocation): a
//! deactivation or a new password signs the agent out everywhere (a new
//! password keeps only the session that set it), a new role makes its
//! connections reconnect with the new rights.

use axum::extract::State;
use axum::http::StatusCode;
use kefu_protocol::ids::{AgentId, SiteId};
use serde::{Deserialize, Serialize};

use super::extract::{Admin, CurrentAgent, Json, Path};
use crate::auth;
use crate::error::Error;
use crate::hub::{Logins, Revocation, Revoked};
use crate::state::AppState;
use crate::store::{self, AgentUpdate, DEFAULT_CAPACITY, NewAgent, Role};

/// Longest password: hashing is slow on purpose, and should stay so only
/// for reasonable input.
const MAX_PASSWORD_CHARS: usize = 1024;
/// Longest name or email.
const MAX_NAME_CHARS: usize = 100;
const MAX_EMAIL_CHARS: usize = 254;
/// Most open chats auto-assignment may give one agent (the schema's
/// limit).
const MAX_CAPACITY: u32 = 1000;

/// An agent as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    pub id: AgentId,
    pub site: SiteId,
    pub email: String,
    pub name: String,
    /// `role == "admin"`, kept for clients written before roles had names.
    pub admin: bool,
    /// `"admin"` or `"agent"`.
    pub role: String,
    pub capacity: u32,
    pub active: bool,
}

impl From<&store::Agent> for AgentView {
    fn from(agent: &store::Agent) -> AgentView {
        AgentView {
            id: agent.id,
            site: agent.site,
            email: agent.email.clone(),
            name: agent.name.clone(),
            admin: agent.role == Role::Admin,
            role: role_name(agent.role).to_owned(),
            capacity: agent.capacity,
            active: agent.active,
        }
    }
}

/// `POST /api/agents` body.
#[derive(Debug, Deserialize)]
pub struct NewAgentRequest {
    pub email: String,
    pub name: String,
    pub password: String,
    /// `"agent"` (the default) or `"admin"`.
    pub role: Option<String>,
    pub capacity: Option<u32>,
}

/// `PATCH /api/agents/{id}` body: what to change.
#[derive(Debug, Deserialize)]
pub struct AgentChange {
    pub name: Option<String>,
    pub role: Option<String>,
    pub capacity: Option<u32>,
    pub active: Option<bool>,
    pub password: Option<String>,
}

/// `GET /api/agents`: the caller's site's agents, by name.
pub async fn list(State(state): State<AppState>, current: CurrentAgent) -> Result<axum::Json<Vec<AgentView>>, Error> {
    let agents = state.store.agents(current.agent.site).await?;
    Ok(axum::Json(agents.iter().map(AgentView::from).collect()))
}

/// `POST /api/agents`: an admin adds an agent to their site.
pub async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(request): Json<NewAgentRequest>,
) -> Result<(StatusCode, axum::Json<AgentView>), Error> {
    let email = email(&request.email)?;
    let name = name(&request.name)?;
    let role = request.role.as_deref().map_or(Ok(Role::Agent), role)?;
    let capacity = capacity(request.capacity.unwrap_or(DEFAULT_CAPACITY))?;
    let password_hash = hash(request.password).await?;
    let new = NewAgent { site: admin.site, email, name, password_hash: &password_hash, role, capacity };
    let agent = state.store.add_agent(&new).await?;
    Ok((StatusCode::CREATED, axum::Json(AgentView::from(&agent))))
}

/// `PATCH /api/agents/{id}`: an admin changes one of their site's agents.
/// Deactivating ends the agent's sessions at once, and so does a new
/// password, all but the admin's own session when it is their own. Admins
/// cannot deactivate or demote themselves, so a site always keeps one
/// admin.
pub async fn update(
    State(state): State<AppState>,
    current: CurrentAgent,
    Path(id): Path<u64>,
    Json(change): Json<AgentChange>,
) -> Result<axum::Json<AgentView>, Error> {
    let admin = current.admin()?;
    let id = AgentId(id);
    let role = change.role.as_deref().map(role).transpose()?;
    if id == admin.id && (change.active == Some(false) || role == Some(Role::Agent)) {
        return Err(Error::BadRequest("admins cannot deactivate or demote themselves".into()));
    }
    let password_hash = match change.password {
        Some(password) => Some(hash(password).await?),
        None => None,
    };
    let new_password = password_hash.is_some();
    let update = AgentUpdate {
        name: change.name.as_deref().map(name).transpose()?.map(str::to_owned),
        role,
        capacity: change.capacity.map(capacity).transpose()?,
        active: change.active,
        password_hash,
    };
    let before = state.store.site_agent(admin.site, id).await?.ok_or(Error::NotFound)?;
    let agent = state.store.update_agent(admin.site, id, &update).await?;
    let signed_out = |logins| Revocation { agent: id, logins, why: Revoked::SignedOut };
    if !agent.active {
        // The store ended every session with the deactivation.
        state.hub.revoke(signed_out(Logins::All));
    } else if new_password {
        // Whoever knew the old password is out, except the admin who
        // set the new one, if it is their own.
        let kept = (id == admin.id).then_some(current.token_hash.as_str());
        state.store.end_agent_sessions(admin.site, id, kept).await?;
        let logins = kept.map_or(Logins::All, |kept| Logins::AllBut(kept.to_owned()));
        state.hub.revoke(signed_out(logins));
    } else if agent.role != before.role {
        state.hub.revoke(Revocation { agent: id, logins: Logins::All, why: Revoked::AccessChanged });
    }
    Ok(axum::Json(AgentView::from(&agent)))
}

/// Hashes a new password off the async workers, after checking its length.
async fn hash(password: String) -> Result<String, Error> {
    let chars = password.chars().count();
    if chars < auth::MIN_PASSWORD_CHARS {
        return Err(Error::BadRequest(format!("a password needs at least {} characters", auth::MIN_PASSWORD_CHARS)));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(Error::BadRequest(format!("a password may have at most {MAX_PASSWORD_CHARS} characters")));
    }
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::Internal(e.to_string()))
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Agent => "agent",
    }
}

fn role(value: &str) -> Result<Role, Error> {
    match value {
        "admin" => Ok(Role::Admin),
        "agent" => Ok(Role::Agent),
        _ => Err(Error::BadRequest("role must be \"admin\" or \"agent\"".into())),
    }
}

fn name(value: &str) -> Result<&str, Error> {
    let name = value.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!("a name needs 1 to {MAX_NAME_CHARS} characters, none of them control")));
    }
    Ok(name)
}

/// A plausible email: something, `@`, a domain with a dot, no spaces.
/// Whether it receives mail is not the relay's business; it is a login.
fn email(value: &str) -> Result<&str, Error> {
    let email = value.trim();
    let plausible = email.len() <= MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.contains('@') && domain.contains('.') && !domain.starts_with('.')
        });
    if !plausible {
        return Err(Error::BadRequest("that is not an email address".into()));
    }
    Ok(email)
}

fn capacity(value: u32) -> Result<u32, Error> {
    if value > MAX_CAPACITY {
        return Err(Error::BadRequest(format!("capacity must be between 0 and {MAX_CAPACITY}")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_plausible_logins() {
        assert_eq!(email("  ann@example.com ").unwrap(), "ann@example.com");
        for bad in ["", "ann", "@example.com", "ann@", "ann@localhost", "a b@example.com", "a@b@example.com", "a@.com"]
        {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_roles_and_capacities_are_checked() {
        assert_eq!(name(" Ann ").unwrap(), "Ann");
        assert!(name("   ").is_err());
        assert!(name(&"x".repeat(101)).is_err());
        assert!(name("a\nb").is_err());
        assert_eq!(role("admin").unwrap(), Role::Admin);
        assert!(role("Admin").is_err());
        assert_eq!(capacity(1000).unwrap(), 1000);
        assert!(capacity(1001).is_err());
    }

    #[tokio::test]
    async fn passwords_are_checked_then_hashed() {
        assert!(matches!(hash("short".into()).await, Err(Error::BadRequest(_))));
        assert!(matches!(hash("x".repeat(1025)).await, Err(Error::BadRequest(_))));
        let hashed = hash("long enough".into()).await.unwrap();
        assert!(auth::verify_password(&hashed, "long enough"));
    }
}
