//! Email follow-up: a visitor who left gets the agents' answers by mail,
//! and a link that brings it back to the same conversation on any device.
//!
//! # Layout
//!
//! - this file: the links a mail carries (resume, unsubscribe, the
//!   survey's scores) and what opening them does: [`resume`] turns a
//!   resume token into the visitor's ordinary identity, [`unsubscribe`]
//!   records the wish; a score is taken by `crate::survey`.
//! - [`compose`]: a mail as the store has it when it is sent: the unread,
//!   unmailed replies, the whole transcript or the survey of a close, to
//!   the visitor's address, with `Auto-Submitted` and the one-click
//!   `List-Unsubscribe` headers.
//! - [`render`]: the mails as text and HTML in the visitor's language.
//!
//! The tokens themselves are `crate::auth::mail_link`'s; what is stored
//! (batch delay, unsubscribed visitors, how far a conversation was mailed)
//! is `crate::store`'s. The HTTP pages are in `crate::http::follow_up` and
//! the chat page's part in `crate::web::framing`.

pub mod compose;
pub mod render;

use std::time::Duration;

use kefu_protocol::ids::{ConversationId, Seq, SiteId, SiteKey, Timestamp, VisitorId, VisitorToken};

use crate::auth::mail_link::{self, Refused};
use crate::auth::visitor_token;
use crate::mail::MailJob;
use crate::state::AppState;
use crate::store::{self, OnDuplicate, Store, now};

/// How long a mail's resume link works: long enough for a visitor to find
/// the mail after a holiday, short enough that an old forwarded mail stops
/// opening the chat.
pub const RESUME_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// A visitor a resume token brought back: what its widget stores to
/// connect as it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    pub visitor: VisitorId,
    pub conversation: ConversationId,
    pub token: VisitorToken,
}

impl Resumed {
    /// The widget's stored-visitor line (`widget/src/persist.rs`):
    /// `v1 <visitor> <conversation> <token>`.
    pub fn widget_line(&self) -> String {
        format!("v1 {} {} {}", self.visitor.0, self.conversation.0, self.token.as_str())
    }
}

/// Why a resume link did not bring its visitor back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeRefused {
    Expired,
    /// Forged, malformed, another site's, or a visitor with no chat here.
    Invalid,
}

impl ResumeRefused {
    /// The word the chat page is given (`<meta name="kefu-resume">`).
    pub fn as_str(self) -> &'static str {
        match self {
            ResumeRefused::Expired => "expired",
            ResumeRefused::Invalid => "invalid",
        }
    }
}

/// The visitor of `site` that `token` resumes, with a fresh visitor token
/// for its conversation, the one with its full history.
pub async fn resume(state: &AppState, site: SiteId, token: &str) -> Result<Resumed, ResumeRefused> {
    let store = &state.store;
    let key = state.visitor_keys.get(store, site).await.map_err(|_| ResumeRefused::Invalid)?;
    let visitor = mail_link::verify_resume(&key, site, token, now()).map_err(|refused| match refused {
        Refused::Expired => ResumeRefused::Expired,
        Refused::Invalid => ResumeRefused::Invalid,
    })?;
    let conversation = match store.visitor_conversation(site, visitor).await {
        Ok(Some(conversation)) => conversation.id,
        Ok(None) => return Err(ResumeRefused::Invalid),
        Err(error) => {
            tracing::warn!(%error, "could not read a resumed visitor's conversation");
            return Err(ResumeRefused::Invalid);
        }
    };
    let token = visitor_token::mint(&key, site, visitor, conversation);
    Ok(Resumed { visitor, conversation, token })
}

/// The two links of a mail to `visitor` of `site`, under `base` (the
/// relay's public origin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    pub resume: String,
    pub unsubscribe: String,
}

/// Signs the links of a mail to `visitor` of `site`, whose key is
/// `key_of_site`; the chat opens in `lang` (the mail's), whatever the
/// browser that opens it speaks.
pub async fn links(
    store: &Store,
    base: &str,
    site: SiteId,
    key_of_site: &SiteKey,
    visitor: VisitorId,
    lang: render::Lang,
) -> Result<Links, store::Error> {
    let key = store.visitor_token_key(site).await?;
    let expires = Timestamp(now().0.saturating_add(u64::try_from(RESUME_LIFETIME.as_millis()).unwrap_or(u64::MAX)));
    let base = base.trim_end_matches('/');
    let site_key = key_of_site.as_str();
    Ok(Links {
        resume: format!(
            "{base}/c/{site_key}?lang={}&resume={}",
            lang.tag(),
            mail_link::mint_resume(&key, site, visitor, expires)
        ),
        unsubscribe: format!(
            "{base}/api/unsubscribe?site={site_key}&token={}",
            mail_link::mint_unsubscribe(&key, site, visitor)
        ),
    })
}

/// How soon a visitor may ask for the same conversation's transcript
/// again: the widget's button must not make the relay a way to flood an
/// address.
pub const TRANSCRIPT_GAP: Duration = Duration::from_secs(5 * 60);

/// Why no transcript was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriptRefused {
    /// The relay sends no mail (`--smtp-url`), or has no `--public-url`
    /// for the mail's links.
    MailOff,
    /// Neither a signed-in user's email nor one the visitor gave.
    NoAddress,
    /// A visitor asked again within [`TRANSCRIPT_GAP`]; it may in `wait`.
    TooSoon { wait: Duration },
}

impl std::fmt::Display for TranscriptRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TranscriptRefused::MailOff => {
                f.write_str("this relay sends no mail (it needs --smtp-url and --public-url)")
            }
            TranscriptRefused::NoAddress => f.write_str(
                "no email address is known for this visitor: it has neither a signed-in user's email nor gave one",
            ),
            TranscriptRefused::TooSoon { wait } => {
                write!(f, "a transcript of this chat was just queued; ask again in {} s", wait.as_secs().max(1))
            }
        }
    }
}

/// Queues the whole of `conversation` of `site` by mail to its visitor,
/// `visitor`: the address it goes to. An agent may send it any time;
/// the visitor itself (`by_visitor`) once every [`TRANSCRIPT_GAP`].
/// A second request while the first waits is the same mail.
pub async fn queue_transcript(
    state: &AppState,
    site: SiteId,
    conversation: ConversationId,
    visitor: VisitorId,
    by_visitor: bool,
) -> Result<Result<String, TranscriptRefused>, store::Error> {
    let store = &state.store;
    if !state.mail.enabled() || state.config.public_url.is_none() {
        return Ok(Err(TranscriptRefused::MailOff));
    }
    let Some(to) = store.visitor_email(site, visitor).await? else { return Ok(Err(TranscriptRefused::NoAddress)) };
    let job = MailJob::Transcript { conversation };
    if by_visitor && let Some(queued) = store.mail_last_queued(site, &job.dedupe_key()).await? {
        let since = Duration::from_millis(now().0.saturating_sub(queued.0));
        if since < TRANSCRIPT_GAP {
            return Ok(Err(TranscriptRefused::TooSoon { wait: TRANSCRIPT_GAP - since }));
        }
    }
    // Keep: a second click while the first waits is the same mail.
    store.enqueue_mail(site, &job.queued(now(), OnDuplicate::Keep).as_new()).await?;
    state.mail.wake();
    tracing::info!(site = ?site, conversation = ?conversation, by_visitor, "transcript queued");
    Ok(Ok(to))
}

/// How long a survey mail's links rate the chat: a rating weeks after
/// the chat says little about it.
pub const SURVEY_LIFETIME: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// The links of a survey mail, one for each score 1 to 5, that rate the
/// close at `closed` of `conversation` of `site` (whose key is
/// `key_of_site`). Each opens a page that asks to confirm (with room for
/// a comment) and rates only when that is sent, so a mail scanner that
/// follows links rates nothing.
pub async fn survey_links(
    store: &Store,
    base: &str,
    site: SiteId,
    key_of_site: &SiteKey,
    conversation: ConversationId,
    closed: Seq,
) -> Result<Vec<String>, store::Error> {
    let key = store.visitor_token_key(site).await?;
    let expires = Timestamp(now().0.saturating_add(u64::try_from(SURVEY_LIFETIME.as_millis()).unwrap_or(u64::MAX)));
    let token = mail_link::mint_survey(&key, site, conversation, closed, expires);
    let (base, site_key) = (base.trim_end_matches('/'), key_of_site.as_str());
    Ok((1..=5).map(|score| format!("{base}/api/survey?site={site_key}&token={token}&score={score}")).collect())
}

/// Unsubscribes the visitor `token` names from `site`'s follow-up mail;
/// `Ok(false)` when the token is not one of `site`'s.
pub async fn unsubscribe(state: &AppState, site: SiteId, token: &str) -> Result<bool, store::Error> {
    let key = state.visitor_keys.get(&state.store, site).await?;
    let Some(visitor) = mail_link::verify_unsubscribe(&key, site, token) else {
        return Ok(false);
    };
    state.store.unsubscribe_visitor(site, visitor).await?;
    tracing::info!(site = ?site, visitor = ?visitor, "visitor unsubscribed from follow-up mail");
    Ok(true)
}
