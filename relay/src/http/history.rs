//! Pages of the site's past conversations and of a conversation's
//! messages, for the console's lists and for scrolling back.

use axum::extract::State;
use kefu_protocol::frame::{ConversationStatus, Message};
use kefu_protocol::ids::{AgentId, ConversationId, Seq, Timestamp, VisitorId};
use serde::{Deserialize, Serialize};

use super::extract::{CurrentAgent, Path, Query};
use crate::error::Error;
use crate::state::AppState;
use crate::store::{ConversationPage, ConversationSummary};

const DEFAULT_CONVERSATIONS: u32 = 50;
const MAX_CONVERSATIONS: u32 = 100;
const DEFAULT_MESSAGES: u32 = 50;
const MAX_MESSAGES: u32 = 200;

/// `GET /api/conversations` query.
#[derive(Debug, Default, Deserialize)]
pub struct ConversationQuery {
    /// `open` or `closed`; both when absent.
    pub status: Option<String>,
    /// Only conversations last active before this time (ms): the previous
    /// page's last `updated_at`.
    pub before: Option<u64>,
    /// With `before`: also those last active exactly then with a lower id
    /// (the previous page's last id), so no page skips a tie.
    pub before_id: Option<u64>,
    pub limit: Option<u32>,
}

/// A conversation in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    pub id: ConversationId,
    pub visitor: VisitorId,
    /// `"open"` or `"closed"`.
    pub status: String,
    pub last_seq: Seq,
    pub updated_at: Timestamp,
    /// `null` while it waits in the queue.
    pub assignee: Option<AgentId>,
    pub waiting_since: Option<Timestamp>,
    pub visitor_name: Option<String>,
    /// The newest message or note (system lines skipped), for the list's
    /// preview; `null` if nobody has written yet.
    pub last_message: Option<Message>,
}

impl From<ConversationSummary> for ConversationView {
    fn from(summary: ConversationSummary) -> ConversationView {
        ConversationView {
            id: summary.id,
            visitor: summary.visitor,
            status: status_name(summary.status).to_owned(),
            last_seq: summary.last_seq,
            updated_at: summary.updated_at,
            assignee: summary.assignee,
            waiting_since: summary.waiting_since,
            visitor_name: summary.visitor_name,
            last_message: summary.last_message,
        }
    }
}

/// `GET /api/conversations/{id}/messages` query.
#[derive(Debug, Default, Deserialize)]
pub struct MessageQuery {
    /// Only messages with a lower seq; the newest page when absent.
    pub before: Option<u64>,
    pub limit: Option<u32>,
}

/// `GET /api/conversations`: the site's conversations, most recently
/// active first, a page at a time.
pub async fn conversations(
    State(state): State<AppState>,
    current: CurrentAgent,
    Query(query): Query<ConversationQuery>,
) -> Result<axum::Json<Vec<ConversationView>>, Error> {
    let status = match query.status.as_deref() {
        None => None,
        Some("open") => Some(ConversationStatus::Open),
        Some("closed") => Some(ConversationStatus::Closed),
        Some(_) => return Err(Error::BadRequest("status must be \"open\" or \"closed\"".into())),
    };
    let page = ConversationPage {
        status,
        before: query.before.map(Timestamp),
        before_id: query.before_id.map(ConversationId),
        limit: limit(query.limit, DEFAULT_CONVERSATIONS, MAX_CONVERSATIONS)?,
    };
    let summaries = state.store.conversation_page(current.agent.site, &page).await?;
    Ok(axum::Json(summaries.into_iter().map(ConversationView::from).collect()))
}

/// `GET /api/conversations/{id}/messages`: the page of messages just
/// before `before`, oldest first, notes and system lines included.
pub async fn messages(
    State(state): State<AppState>,
    current: CurrentAgent,
    Path(id): Path<u64>,
    Query(query): Query<MessageQuery>,
) -> Result<axum::Json<Vec<Message>>, Error> {
    let limit = limit(query.limit, DEFAULT_MESSAGES, MAX_MESSAGES)?;
    let messages =
        state.store.messages_before(current.agent.site, ConversationId(id), query.before.map(Seq), limit).await?;
    Ok(axum::Json(messages))
}

fn limit(asked: Option<u32>, default: u32, max: u32) -> Result<u32, Error> {
    match asked.unwrap_or(default) {
        limit @ 1.. if limit <= max => Ok(limit),
        _ => Err(Error::BadRequest(format!("limit must be between 1 and {max}"))),
    }
}

/// `"open"` or `"closed"`, as the API writes a status.
pub fn status_name(status: ConversationStatus) -> &'static str {
    match status {
        ConversationStatus::Open => "open",
        ConversationStatus::Closed => "closed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_stay_in_range() {
        assert_eq!(limit(None, 50, 100).unwrap(), 50);
        assert_eq!(limit(Some(1), 50, 100).unwrap(), 1);
        assert_eq!(limit(Some(100), 50, 100).unwrap(), 100);
        assert!(limit(Some(0), 50, 100).is_err());
        assert!(limit(Some(101), 50, 100).is_err());
    }
}
