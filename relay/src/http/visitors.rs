//! The visitor panel: who the visitor is, where they have been, their
//! browser, and their earlier conversations.

use axum::extract::State;
use kefu_protocol::frame::VisitorProfile;
use kefu_protocol::ids::{ConversationId, Seq, Timestamp, VisitorId};
use serde::{Deserialize, Serialize};

use super::extract::{CurrentAgent, Path};
use super::history::status_name;
use super::user_agent;
use crate::error::Error;
use crate::state::AppState;

/// How many pages visited the panel shows.
const VISITS: u32 = 50;

/// `GET /api/visitors/{id}` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct VisitorView {
    pub profile: VisitorProfile,
    /// Newest first.
    pub visits: Vec<VisitView>,
    /// e.g. `"Chrome 126"`, from the user agent.
    pub browser: Option<String>,
    /// e.g. `"Windows 10"`, `"macOS"`, `"Android 14"`.
    pub os: Option<String>,
    pub language: Option<String>,
    /// This visitor's conversations and, when its identity is verified,
    /// those of the site's visitors verified as the same user; newest
    /// first.
    pub conversations: Vec<PastConversationView>,
    /// The name and email were signed with the user id (a signed identity
    /// token); with the plain hash only the user id is verified
    /// (`profile.verified`) and they are the page's claim.
    pub profile_signed: bool,
}

/// A page the visitor was on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitView {
    pub url: String,
    pub title: String,
    pub referrer: Option<String>,
    pub at: Timestamp,
}

/// One of the visitor's conversations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastConversationView {
    pub id: ConversationId,
    /// `"open"` or `"closed"`.
    pub status: String,
    pub last_seq: Seq,
    pub updated_at: Timestamp,
}

/// `GET /api/visitors/{id}`: everything the panel shows about one of the
/// site's visitors.
pub async fn show(
    State(state): State<AppState>,
    current: CurrentAgent,
    Path(id): Path<u64>,
) -> Result<axum::Json<VisitorView>, Error> {
    let (site, visitor) = (current.agent.site, VisitorId(id));
    let client = state.store.visitor_client(site, visitor).await?.ok_or(Error::NotFound)?;
    let profile = state.store.visitor_profile(site, visitor).await?;
    let stored_identity = state.store.visitor_identity(site, visitor).await?;
    let profile_signed = profile.verified && stored_identity.profile_signed;
    let visits = state.store.visits(site, visitor, VISITS).await?;
    let user_id = profile.user_id.as_deref().filter(|_| profile.verified);
    let conversations = state.store.visitor_conversations(site, visitor, user_id).await?;
    let parsed = client.user_agent.as_deref().map(user_agent::parse).unwrap_or_default();
    Ok(axum::Json(VisitorView {
        visits: visits
            .into_iter()
            .map(|(visit, at)| VisitView { url: visit.url, title: visit.title, referrer: visit.referrer, at })
            .collect(),
        browser: parsed.browser,
        os: parsed.os,
        language: client.language,
        conversations: conversations
            .into_iter()
            .map(|past| PastConversationView {
                id: past.id,
                status: status_name(past.status).to_owned(),
                last_seq: past.last_seq,
                updated_at: past.updated_at,
            })
            .collect(),
        profile,
        profile_signed,
    }))
}
