//! Which agent an email and password log in as.
//!
//! An email is unique per site, not across the deployment: one person may
//! be an agent of several sites, with a password on each. A login names
//! the site by its key, or it does not; then the password is checked
//! against every agent with that email, and if it fits more than one the
//! answer lists their sites so the console can ask which.
//!
//! Nothing in the answer tells an unknown email from a wrong password:
//! both fail alike, and a login whose email matches nobody still costs a
//! password hash (against a dummy), so timing does not tell either.

use kefu_protocol::ids::SiteKey;
use serde::{Deserialize, Serialize};

use crate::auth;
use crate::error::Error;
use crate::state::AppState;
use crate::store::{Agent, LoginCandidate};

/// One of the sites a login could mean, in the "which site?" answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteChoice {
    /// The site key to send back as `site`.
    pub key: String,
    pub name: String,
}

/// What the credentials log in as.
#[derive(Debug)]
pub enum Verdict {
    /// Exactly one active agent: log in as it.
    Agent(Agent),
    /// The password fits active agents of several sites and no site was
    /// named: ask which.
    ChooseSite(Vec<SiteChoice>),
    /// Nobody: unknown email, wrong password, deactivated agent, or a site
    /// where the email is not an agent; all alike.
    Refused,
}

/// Checks `password` for the agents with `email`, on `site` only if given.
pub async fn check(state: &AppState, email: &str, password: String, site: Option<&SiteKey>) -> Result<Verdict, Error> {
    let mut candidates = state.store.agent_logins(email).await?;
    candidates.retain(|candidate| site.is_none_or(|site| candidate.site.key == *site));
    // Hash checks take tens of milliseconds of CPU: keep them off the
    // async workers. Every candidate is checked, so the time depends only
    // on how many agents the email has; with none, a dummy hash costs as
    // much as one.
    let fitting = tokio::task::spawn_blocking(move || {
        if candidates.is_empty() {
            auth::verify_password(auth::dummy_hash(), &password);
        }
        candidates
            .into_iter()
            .filter(|candidate| auth::verify_password(&candidate.password_hash, &password))
            .collect::<Vec<LoginCandidate>>()
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    // A deactivated agent gets the same answer as a wrong password.
    let mut fitting: Vec<LoginCandidate> = fitting.into_iter().filter(|candidate| candidate.agent.active).collect();
    Ok(match fitting.len() {
        0 => Verdict::Refused,
        1 => Verdict::Agent(fitting.remove(0).agent),
        _ => Verdict::ChooseSite(
            fitting
                .into_iter()
                .map(|candidate| SiteChoice { key: candidate.site.key.as_str().to_owned(), name: candidate.site.name })
                .collect(),
        ),
    })
}
