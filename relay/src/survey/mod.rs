//! The satisfaction survey: taking a visitor's rating of a closed chat,
//! once per close, and writing it as a system line agents see.
//!
//! A rating is for the newest close of the visitor's own conversation,
//! while it is closed. The store keeps one per close (keyed by the seq of
//! the "closed" line), so a second rating, from another tab or a resend,
//! is refused there, whichever node takes it. A site that does not ask
//! again after a reopen takes one rating per conversation.
//!
//! A rating comes from the widget (the connection calls [`rate`]) or from
//! the links of the survey mail a visitor who left gets
//! ([`rate_from_mail`], called by `crate::http::follow_up`). Depends on
//! the store and `team` (to publish the line).

use kefu_protocol::frame::{ConversationStatus, Rate};
use kefu_protocol::ids::{ConversationId, Seq, SiteId, VisitorId};

use crate::state::AppState;
use crate::store::{self, Conversation, NewMessage, Rating, now};
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

/// Takes `rate` from `visitor` of `site`, for the newest close of its
/// conversation.
pub async fn rate(
    state: &AppState,
    site: SiteId,
    visitor: VisitorId,
    rate: Rate,
) -> Result<Result<(), Refusal>, store::Error> {
    let conversation = match state.store.conversation(site, rate.conversation).await? {
        Some(found) if found.visitor == visitor => found,
        _ => return Ok(Err(Refusal::Forbidden(format!("conversation {} is not yours", rate.conversation)))),
    };
    take(state, &conversation, None, rate.score, &rate.comment).await
}

/// Takes a rating from a survey mail's link (`crate::follow_up`), which
/// rates the close at `closed` of `conversation`: refused once the chat
/// was reopened since, as the rating would be of another close.
pub async fn rate_from_mail(
    state: &AppState,
    site: SiteId,
    conversation: ConversationId,
    closed: Seq,
    score: u8,
    comment: &str,
) -> Result<Result<(), Refusal>, store::Error> {
    let Some(conversation) = state.store.conversation(site, conversation).await? else {
        return Ok(Err(Refusal::Forbidden(format!("no conversation {conversation}"))));
    };
    take(state, &conversation, Some(closed), score, comment).await
}

async fn take(
    state: &AppState,
    conversation: &Conversation,
    expected_close: Option<Seq>,
    score: u8,
    comment: &str,
) -> Result<Result<(), Refusal>, store::Error> {
    let (store, site) = (&state.store, conversation.site);
    let survey = store.site_forms(site).await?.survey;
    if !survey.enabled {
        return Ok(Err(Refusal::Invalid("this site asks for no rating".into())));
    }
    if !(1..=5).contains(&score) {
        return Ok(Err(Refusal::Invalid("a rating is 1 to 5".into())));
    }
    if conversation.status != ConversationStatus::Closed {
        return Ok(Err(Refusal::Forbidden("only a closed chat is rated".into())));
    }
    let Some(closed) = store.last_close(site, conversation.id).await?.closed else {
        return Ok(Err(Refusal::Forbidden("only a chat an agent closed is rated".into())));
    };
    if expected_close.is_some_and(|expected| expected != closed) {
        return Ok(Err(Refusal::Forbidden("the chat was reopened since; its newest close is rated".into())));
    }
    let comment: String = comment.trim().chars().take(MAX_COMMENT_CHARS).collect();
    let rating = Rating { conversation: conversation.id, closed, score, comment, at: now() };
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
