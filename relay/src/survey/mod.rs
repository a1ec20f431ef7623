//! The satisfaction survey: taking a visitor's rating of a closed chat,
//! once per close, and writing it as a system line agents see.
//!
//! A rating is for the newest close of the visitor's own conversation,
//! while it is closed. The store keeps one per close (keyed by the seq of
//! the "closed" line), so a second rating, from another tab or a resend,
//! is refused there, whichever node takes it. A site that does not ask
//! again after a reopen takes one rating per conversation.
//!
//! Depends on the store and `team` (to publish the line); the connection
//! calls it.

use kefu_protocol::frame::{ConversationStatus, Rate};
use kefu_protocol::ids::{SiteId, VisitorId};

use crate::state::AppState;
use crate::store::{self, NewMessage, Rating, now};
use crate::team;

/// Longest comment kept; longer ones are cut, not refused.
const MAX_COMMENT_CHARS: usize = 1000;

/// Why a rating was not taken; the text is for the visitor's widget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The site asks for none, or the score is not 1 to 5.
    Invalid(String),
    /// Not the visitor's conversation, or not closed.
    Forbidden(String),
    /// This close was rated already.
    Rated,
}

/// Takes `rate` from `visitor` of `site`.
pub async fn rate(
    state: &AppState,
    site: SiteId,
    visitor: VisitorId,
    rate: Rate,
) -> Result<Result<(), Refusal>, store::Error> {
    let store = &state.store;
    let survey = store.site_forms(site).await?.survey;
    if !survey.enabled {
        return Ok(Err(Refusal::Invalid("this site asks for no rating".into())));
    }
    if !(1..=5).contains(&rate.score) {
        return Ok(Err(Refusal::Invalid("a rating is 1 to 5".into())));
    }
    let conversation = match store.conversation(site, rate.conversation).await? {
        Some(found) if found.visitor == visitor => found,
        _ => return Ok(Err(Refusal::Forbidden(format!("conversation {} is not yours", rate.conversation)))),
    };
    if conversation.status != ConversationStatus::Closed {
        return Ok(Err(Refusal::Forbidden("only a closed chat is rated".into())));
    }
    let (Some(closed), _) = store.last_close(site, conversation.id).await? else {
        return Ok(Err(Refusal::Forbidden("only a chat an agent closed is rated".into())));
    };
    let comment: String = rate.comment.trim().chars().take(MAX_COMMENT_CHARS).collect();
    let rating = Rating { conversation: conversation.id, closed, score: rate.score, comment, at: now() };
    // The line and the rating are one transaction: no rating without the
    // line agents read, and of two at once (tabs, nodes) one of each.
    match store.append(NewMessage::rated(site, rating, !survey.ask_again)).await {
        Ok(appended) => {
            team::publish(state, site, &appended);
            Ok(Ok(()))
        }
        Err(store::Error::Conflict(_)) => Ok(Err(Refusal::Rated)),
        Err(error) => Err(error),
    }
}
