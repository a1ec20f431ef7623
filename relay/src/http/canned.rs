//! Canned replies: everyone may list them, admins write them.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::extract::{Admin, CurrentAgent, Json, Path};
use crate::error::Error;
use crate::state::AppState;
use crate::store::{CannedReply, CannedReplyId};

/// Longest shortcut: something to type after `/`.
const MAX_SHORTCUT_CHARS: usize = 32;
/// Longest text of a reply.
const MAX_TEXT_CHARS: usize = 4000;

/// A canned reply as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CannedView {
    pub id: CannedReplyId,
    pub shortcut: String,
    pub text: String,
}

impl From<CannedReply> for CannedView {
    fn from(reply: CannedReply) -> CannedView {
        CannedView { id: reply.id, shortcut: reply.shortcut, text: reply.text }
    }
}

/// `POST /api/canned` and `PUT /api/canned/{id}` body.
#[derive(Debug, Deserialize)]
pub struct CannedRequest {
    pub shortcut: String,
    pub text: String,
}

/// `GET /api/canned`: the site's canned replies, by shortcut.
pub async fn list(State(state): State<AppState>, current: CurrentAgent) -> Result<axum::Json<Vec<CannedView>>, Error> {
    let replies = state.store.canned_replies(current.agent.site).await?;
    Ok(axum::Json(replies.into_iter().map(CannedView::from).collect()))
}

/// `POST /api/canned`: an admin adds a canned reply.
pub async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(request): Json<CannedRequest>,
) -> Result<(StatusCode, axum::Json<CannedView>), Error> {
    let (shortcut, text) = validate(&request)?;
    let reply = state.store.create_canned_reply(admin.site, shortcut, text).await?;
    Ok((StatusCode::CREATED, axum::Json(reply.into())))
}

/// `PUT /api/canned/{id}`: an admin replaces a canned reply.
pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<u64>,
    Json(request): Json<CannedRequest>,
) -> Result<axum::Json<CannedView>, Error> {
    let (shortcut, text) = validate(&request)?;
    let reply = state.store.update_canned_reply(admin.site, CannedReplyId(id), shortcut, text).await?;
    Ok(axum::Json(reply.into()))
}

/// `DELETE /api/canned/{id}`: an admin removes a canned reply.
pub async fn delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<u64>,
) -> Result<StatusCode, Error> {
    state.store.delete_canned_reply(admin.site, CannedReplyId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The shortcut (1 to 32 of `a-z0-9_-`) and the text (1 to 4000
/// characters, not only spaces).
fn validate(request: &CannedRequest) -> Result<(&str, &str), Error> {
    let shortcut = request.shortcut.as_str();
    let shortcut_ok = (1..=MAX_SHORTCUT_CHARS).contains(&shortcut.len())
        && shortcut.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !shortcut_ok {
        return Err(Error::BadRequest(format!("a shortcut needs 1 to {MAX_SHORTCUT_CHARS} of a-z, 0-9, _ and -")));
    }
    let text = request.text.as_str();
    if text.trim().is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::BadRequest(format!("a reply needs 1 to {MAX_TEXT_CHARS} characters")));
    }
    Ok((shortcut, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(shortcut: &str, text: &str) -> bool {
        validate(&CannedRequest { shortcut: shortcut.into(), text: text.into() }).is_ok()
    }

    #[test]
    fn shortcuts_are_short_lowercase_words() {
        assert!(check("thanks", "Thank you!"));
        assert!(check("a-b_9", "x"));
        assert!(check(&"a".repeat(32), "x"));
        for bad in ["", "Thanks", "two words", "/thanks", "ü", &"a".repeat(33)] {
            assert!(!check(bad, "x"), "{bad:?}");
        }
    }

    #[test]
    fn texts_are_not_blank_nor_too_long() {
        assert!(check("t", &"é".repeat(4000)));
        assert!(!check("t", &"x".repeat(4001)));
        assert!(!check("t", "  \n "));
    }
}
