//! The links of a survey mail (`crate::follow_up::survey_links`): `GET
//! /api/survey` shows the chosen score with room for a comment and
//! changes nothing, so a mail scanner that follows every link rates
//! nothing; `POST /api/survey` (the page's button) takes the rating
//! through `crate::survey`, once per close.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use kefu_protocol::frame::ConversationStatus;
use kefu_protocol::ids::{ConversationId, Seq, SiteId, SiteKey};
use serde::Deserialize;

use super::extract::Query;
use super::follow_up::lang;
use crate::auth::mail_link::{self, Refused};
use crate::error::Error;
use crate::follow_up::render::{Lang, escape, survey_words};
use crate::state::AppState;
use crate::store::now;
use crate::survey::{self, Refusal};

/// `/api/survey` query: the site, the mail's signed token, and (on `GET`)
/// the score the link stands for.
#[derive(Debug, Deserialize)]
pub struct SurveyLink {
    pub site: String,
    pub token: String,
    #[serde(default)]
    pub score: Option<u8>,
}

/// `POST /api/survey` form: what the visitor chose and wrote.
#[derive(Debug, Deserialize)]
pub struct SurveyAnswer {
    #[serde(default)]
    pub score: String,
    #[serde(default)]
    pub comment: String,
}

/// `GET /api/survey`: the rating form with the link's score chosen, or
/// why there is nothing to rate.
pub async fn confirm(
    State(state): State<AppState>,
    Query(link): Query<SurveyLink>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let lang = lang(&headers);
    let (site, conversation, closed) = match checked(&state, &link).await? {
        Ok(close) => close,
        Err(page) => return Ok(page.show(lang)),
    };
    let Some(site_row) = state.store.site(site).await? else { return Ok(Page::BadLink.show(lang)) };
    let still_closed = state.store.conversation(site, conversation).await?.map(|found| found.status);
    let last = state.store.last_close(site, conversation).await?;
    if still_closed != Some(ConversationStatus::Closed) || last.closed != Some(closed) {
        return Ok(Page::Reopened.show(lang));
    }
    let survey = state.store.site_forms(site).await?.survey;
    if !survey.enabled {
        return Ok(Page::BadLink.show(lang));
    }
    if !last.awaits_rating(survey.ask_again) {
        return Ok(Page::Rated.show(lang));
    }
    Ok(form(lang, &site_row.name, link.score.filter(|score| (1..=5).contains(score))))
}

/// `POST /api/survey`: rates the link's close with the form's score and
/// comment.
pub async fn rate(
    State(state): State<AppState>,
    Query(link): Query<SurveyLink>,
    headers: HeaderMap,
    Form(answer): Form<SurveyAnswer>,
) -> Result<Response, Error> {
    let lang = lang(&headers);
    let (site, conversation, closed) = match checked(&state, &link).await? {
        Ok(close) => close,
        Err(page) => return Ok(page.show(lang)),
    };
    let Some(score) = answer.score.trim().parse::<u8>().ok().filter(|score| (1..=5).contains(score)) else {
        return Ok(Page::NoScore.show(lang));
    };
    let taken = survey::rate_from_mail(&state, site, conversation, closed, score, &answer.comment).await?;
    let page = match taken {
        Ok(()) => {
            tracing::info!(site = ?site, conversation = ?conversation, score, "rated from the survey mail");
            Page::Thanks
        }
        Err(Refusal::Rated) => Page::Rated,
        Err(Refusal::Forbidden(_)) => Page::Reopened,
        Err(Refusal::Invalid(_)) => Page::BadLink,
    };
    Ok(page.show(lang))
}

/// The site and the close of a link whose token is that site's and still
/// good; else the page that says why not.
async fn checked(state: &AppState, link: &SurveyLink) -> Result<Result<(SiteId, ConversationId, Seq), Page>, Error> {
    let Ok(key) = SiteKey::new(link.site.clone()) else { return Ok(Err(Page::BadLink)) };
    let Some(site) = state.store.site_by_key(&key).await? else { return Ok(Err(Page::BadLink)) };
    let visitor_key = state.visitor_keys.get(&state.store, site.id).await?;
    Ok(match mail_link::verify_survey(&visitor_key, site.id, &link.token, now()) {
        Ok((conversation, closed)) => Ok((site.id, conversation, closed)),
        Err(Refused::Expired) => Err(Page::Expired),
        Err(Refused::Invalid) => Err(Page::BadLink),
    })
}

/// The pages of one sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Thanks,
    Rated,
    Reopened,
    Expired,
    BadLink,
    NoScore,
}

impl Page {
    fn show(self, lang: Lang) -> Response {
        let status = match self {
            Page::Thanks | Page::Rated => StatusCode::OK,
            Page::Reopened => StatusCode::CONFLICT,
            Page::Expired => StatusCode::GONE,
            Page::BadLink | Page::NoScore => StatusCode::BAD_REQUEST,
        };
        let (title, body) = match (lang, self) {
            (Lang::En, Page::Thanks) => ("Thank you", "Thank you for your rating."),
            (Lang::ZhCn, Page::Thanks) => ("谢谢", "感谢您的评价。"),
            (Lang::ZhTw, Page::Thanks) => ("謝謝", "感謝您的評價。"),
            (Lang::En, Page::Rated) => ("Already rated", "This chat has been rated already. Thank you!"),
            (Lang::ZhCn, Page::Rated) => ("已评价", "这次聊天已经评价过了，谢谢！"),
            (Lang::ZhTw, Page::Rated) => ("已評價", "這次聊天已經評價過了，謝謝！"),
            (Lang::En, Page::Reopened) => {
                ("Chat reopened", "This chat was reopened since the mail was sent; there is nothing to rate now.")
            }
            (Lang::ZhCn, Page::Reopened) => ("聊天已重新打开", "发出邮件后这次聊天已重新打开，现在无需评价。"),
            (Lang::ZhTw, Page::Reopened) => ("聊天已重新開啟", "寄出郵件後這次聊天已重新開啟，現在無需評價。"),
            (Lang::En, Page::Expired) => ("Link expired", "This rating link has expired. Nothing was changed."),
            (Lang::ZhCn, Page::Expired) => ("链接已过期", "此评价链接已过期，未做任何更改。"),
            (Lang::ZhTw, Page::Expired) => ("連結已過期", "此評價連結已過期，未做任何變更。"),
            (Lang::En, Page::BadLink) => ("Link not valid", "This rating link is not valid. Nothing was changed."),
            (Lang::ZhCn, Page::BadLink) => ("链接无效", "此评价链接无效，未做任何更改。"),
            (Lang::ZhTw, Page::BadLink) => ("連結無效", "此評價連結無效，未做任何變更。"),
            (Lang::En, Page::NoScore) => ("Pick a score", "Pick a score from 1 to 5, then send it."),
            (Lang::ZhCn, Page::NoScore) => ("请选择分数", "请选择 1 到 5 分后再提交。"),
            (Lang::ZhTw, Page::NoScore) => ("請選擇分數", "請選擇 1 到 5 分後再送出。"),
        };
        html(status, lang, title, &format!("<p id=\"kefu-survey\">{body}</p>"))
    }
}

/// The rating form: five scores (the link's chosen), a comment, a button
/// that posts back to the same URL.
fn form(lang: Lang, site_name: &str, chosen: Option<u8>) -> Response {
    let (title, scores) = survey_words(lang);
    let (comment, send) = match lang {
        Lang::En => ("Anything to add? (optional)", "Send rating"),
        Lang::ZhCn => ("还有什么想说的吗？（选填）", "提交评价"),
        Lang::ZhTw => ("還有什麼想說的嗎？（選填）", "送出評價"),
    };
    let title = escape(&title.replace("{site}", site_name));
    let mut body = String::from("<form method=\"post\" id=\"kefu-survey\"><fieldset style=\"border:0;padding:0\">");
    body.push_str(&format!("<legend style=\"font-weight:600;margin-bottom:.5rem\">{title}</legend>"));
    for (score, words) in (1..=5u8).zip(scores) {
        let checked = if chosen == Some(score) { " checked" } else { "" };
        body.push_str(&format!(
            "<label style=\"display:block;padding:.4rem 0\"><input type=\"radio\" name=\"score\" value=\"{score}\"{checked}> \
             <span style=\"color:#f59e0b\">{}</span> {score} · {words}</label>",
            "★".repeat(usize::from(score)),
        ));
    }
    body.push_str(&format!(
        "</fieldset><label style=\"display:block;margin:1rem 0 .25rem\" for=\"comment\">{comment}</label>\
         <textarea id=\"comment\" name=\"comment\" rows=\"4\" maxlength=\"1000\" style=\"width:100%;box-sizing:border-box\"></textarea>\
         <p><button type=\"submit\" style=\"padding:.6rem 1.2rem\">{send}</button></p></form>"
    ));
    html(StatusCode::OK, lang, &title, &body)
}

fn html(status: StatusCode, lang: Lang, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem\">\
         <h1 style=\"font-size:1.4rem\">{title}</h1>{body}</body></html>",
        lang.tag()
    );
    (status, Html(page)).into_response()
}
