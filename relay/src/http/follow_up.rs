//! Email follow-up over HTTP: the unsubscribe link every follow-up mail
//! carries (RFC 8058 one-click: `GET` shows a confirmation page, `POST`
//! unsubscribes), a site's batch delay for admins, and an agent's
//! transcript of a conversation to its visitor.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use kefu_protocol::ids::SiteKey;
use serde::{Deserialize, Serialize};

use kefu_protocol::ids::ConversationId;

use super::extract::{Admin, CurrentAgent, Json, Path, Query};
use crate::error::Error;
use crate::follow_up::{self, render::Lang};
use crate::state::AppState;
use crate::store::MAX_BATCH_DELAY;

/// `/api/unsubscribe` query: the site and the mail's signed token.
#[derive(Debug, Deserialize)]
pub struct UnsubscribeLink {
    pub site: String,
    pub token: String,
}

/// `GET /api/site/follow-up` answer and `PUT` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct FollowUpSettings {
    /// How long after an agent's reply the visitor is mailed the replies
    /// it has not read: one mail for a burst.
    pub batch_delay_secs: u64,
}

/// `GET /api/unsubscribe`: a page that asks to confirm, so a mail
/// scanner that follows links unsubscribes nobody.
pub async fn confirm(
    State(state): State<AppState>,
    Query(link): Query<UnsubscribeLink>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let lang = lang(&headers);
    if checked_site(&state, &link).await?.is_none() {
        return Ok(page(StatusCode::BAD_REQUEST, lang, Page::BadLink));
    }
    Ok(page(StatusCode::OK, lang, Page::Confirm))
}

/// `POST /api/unsubscribe`: unsubscribes the link's visitor, whether a
/// mail client sends it (`List-Unsubscribe=One-Click`) or the page's
/// button does.
pub async fn unsubscribe(
    State(state): State<AppState>,
    Query(link): Query<UnsubscribeLink>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let lang = lang(&headers);
    let Some(site) = checked_site(&state, &link).await? else {
        return Ok(page(StatusCode::BAD_REQUEST, lang, Page::BadLink));
    };
    if !follow_up::unsubscribe(&state, site, &link.token).await? {
        return Ok(page(StatusCode::BAD_REQUEST, lang, Page::BadLink));
    }
    Ok(page(StatusCode::OK, lang, Page::Done))
}

/// `GET /api/site/follow-up`: the caller's site's follow-up settings.
pub async fn show(State(state): State<AppState>, current: CurrentAgent) -> Result<axum::Json<FollowUpSettings>, Error> {
    let delay = state.store.follow_up_delay(current.agent.site).await?;
    Ok(axum::Json(FollowUpSettings { batch_delay_secs: delay.as_secs() }))
}

/// `PUT /api/site/follow-up`: an admin sets the batch delay.
pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(settings): Json<FollowUpSettings>,
) -> Result<axum::Json<FollowUpSettings>, Error> {
    let delay = Duration::from_secs(settings.batch_delay_secs);
    if delay > MAX_BATCH_DELAY {
        return Err(Error::BadRequest(format!(
            "batch_delay_secs may be at most {} (a day)",
            MAX_BATCH_DELAY.as_secs()
        )));
    }
    state.store.set_follow_up_delay(admin.site, delay).await?;
    Ok(axum::Json(settings))
}

/// `POST /api/conversations/{id}/transcript` answer: where it goes.
#[derive(Debug, Serialize, Deserialize)]
pub struct TranscriptQueued {
    pub to: String,
}

/// `POST /api/conversations/{id}/transcript`: an agent mails the whole
/// conversation to its visitor. Refused, with the reason, when the relay
/// sends no mail or the visitor gave no address.
pub async fn transcript(
    State(state): State<AppState>,
    current: CurrentAgent,
    Path(id): Path<u64>,
) -> Result<axum::Json<TranscriptQueued>, Error> {
    let site = current.agent.site;
    let conversation = state.store.conversation(site, ConversationId(id)).await?.ok_or(Error::NotFound)?;
    match follow_up::queue_transcript(&state, site, conversation.id, conversation.visitor, false).await? {
        Ok(to) => Ok(axum::Json(TranscriptQueued { to })),
        Err(refused) => Err(Error::BadRequest(refused.to_string())),
    }
}

/// The site of a link whose token is that site's; `None` for a link of
/// no site or another site's token.
async fn checked_site(state: &AppState, link: &UnsubscribeLink) -> Result<Option<kefu_protocol::ids::SiteId>, Error> {
    let Ok(key) = SiteKey::new(link.site.clone()) else { return Ok(None) };
    let Some(site) = state.store.site_by_key(&key).await? else { return Ok(None) };
    let visitor_key = state.visitor_keys.get(&state.store, site.id).await?;
    Ok(crate::auth::mail_link::verify_unsubscribe(&visitor_key, site.id, &link.token).map(|_| site.id))
}

/// The language of a page a mail's link opens: the browser's.
pub(super) fn lang(headers: &HeaderMap) -> Lang {
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|value| value.to_str().ok());
    Lang::pick(accept.and_then(|value| value.split([',', ';']).next()))
}

#[derive(Clone, Copy)]
enum Page {
    Confirm,
    Done,
    BadLink,
}

/// A page of one sentence (and, to confirm, one button that posts back to
/// the same URL).
fn page(status: StatusCode, lang: Lang, page: Page) -> Response {
    let (title, body) = match (lang, page) {
        (Lang::En, Page::Confirm) => ("Unsubscribe", "Stop getting follow-up mail about your chats?"),
        (Lang::ZhCn, Page::Confirm) => ("退订", "不再接收聊天的后续邮件？"),
        (Lang::ZhTw, Page::Confirm) => ("取消訂閱", "不再接收聊天的後續郵件？"),
        (Lang::En, Page::Done) => ("Unsubscribed", "You are unsubscribed: no more follow-up mail will be sent."),
        (Lang::ZhCn, Page::Done) => ("已退订", "您已退订，不会再收到后续邮件。"),
        (Lang::ZhTw, Page::Done) => ("已取消訂閱", "您已取消訂閱，不會再收到後續郵件。"),
        (Lang::En, Page::BadLink) => ("Link not valid", "This unsubscribe link is not valid. Nothing was changed."),
        (Lang::ZhCn, Page::BadLink) => ("链接无效", "此退订链接无效，未做任何更改。"),
        (Lang::ZhTw, Page::BadLink) => ("連結無效", "此取消訂閱連結無效，未做任何變更。"),
    };
    let form = match (lang, page) {
        (Lang::En, Page::Confirm) => "<form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>",
        (Lang::ZhCn, Page::Confirm) => "<form method=\"post\"><button type=\"submit\">退订</button></form>",
        (Lang::ZhTw, Page::Confirm) => "<form method=\"post\"><button type=\"submit\">取消訂閱</button></form>",
        _ => "",
    };
    let html = format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem\">\
         <h1>{title}</h1><p id=\"kefu-unsubscribe\">{body}</p>{form}</body></html>",
        lang.tag()
    );
    (status, Html(html)).into_response()
}
