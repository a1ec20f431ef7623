//! A site's mail settings and its outbox, for admins.

use axum::extract::State;
use kefu_protocol::ids::Timestamp;
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};

use super::extract::{Admin, Json};
use crate::error::Error;
use crate::mail::Language;
use crate::state::AppState;
use crate::store::{MailId, MailStatus, OutboxMail, SiteMailSettings};

/// Longest missed-chat threshold: a week.
const MAX_MISSED_MINUTES: u32 = 7 * 24 * 60;
/// Mails the outbox page shows.
const OUTBOX_PAGE: u32 = 100;

/// `GET /api/site/mail` answer, and `PUT`'s.
#[derive(Debug, Serialize, Deserialize)]
pub struct MailSettingsView {
    /// Whether this relay sends mail at all (`--smtp-url`).
    pub smtp_enabled: bool,
    /// Where agent notifications go; `""`: every active agent.
    pub notify_to: String,
    /// Minutes without an agent's reply before the missed-chat mail; 0 off.
    pub missed_after_minutes: u32,
    /// The mails' Reply-To; `""`: the relay's sender.
    pub reply_to: String,
    /// `en`, `zh-CN` or `zh-TW`.
    pub language: String,
}

/// `PUT /api/site/mail` body: what to change; the rest stays.
#[derive(Debug, Default, Deserialize)]
pub struct MailSettingsChange {
    pub notify_to: Option<String>,
    pub missed_after_minutes: Option<u32>,
    pub reply_to: Option<String>,
    pub language: Option<String>,
}

/// One mail of `GET /api/mail/outbox`.
#[derive(Debug, Serialize, Deserialize)]
pub struct OutboxView {
    pub id: MailId,
    /// `new_conversation`, `missed`, ...
    pub kind: String,
    /// `queued`, `retrying` (queued after a failed attempt), `sending`,
    /// `sent`, `failed` or `skipped`.
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Empty until the mail was composed.
    pub to: String,
    pub subject: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When a queued mail is due.
    pub not_before: Timestamp,
}

/// `GET /api/mail/outbox` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct OutboxPage {
    pub smtp_enabled: bool,
    /// Newest first.
    pub mails: Vec<OutboxView>,
}

/// `GET /api/site/mail`.
pub async fn show(State(state): State<AppState>, Admin(admin): Admin) -> Result<axum::Json<MailSettingsView>, Error> {
    let settings = state.store.site_mail_settings(admin.site).await?;
    Ok(axum::Json(view(&state, settings)))
}

/// `PUT /api/site/mail`: an admin changes where and how the site's mail
/// goes. A bad address, language or threshold answers 400 and changes
/// nothing.
pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(change): Json<MailSettingsChange>,
) -> Result<axum::Json<MailSettingsView>, Error> {
    let mut settings = state.store.site_mail_settings(admin.site).await?;
    if let Some(notify_to) = change.notify_to {
        settings.notify_to = address("notify_to", &notify_to)?;
    }
    if let Some(reply_to) = change.reply_to {
        settings.reply_to = address("reply_to", &reply_to)?;
    }
    if let Some(minutes) = change.missed_after_minutes {
        if minutes > MAX_MISSED_MINUTES {
            return Err(Error::BadRequest(format!("missed_after_minutes: at most {MAX_MISSED_MINUTES} (a week)")));
        }
        settings.missed_after_minutes = minutes;
    }
    if let Some(language) = change.language {
        let Some(language) = Language::from_tag(language.trim()) else {
            let known: Vec<&str> = Language::ALL.iter().map(|language| language.tag()).collect();
            return Err(Error::BadRequest(format!("language: one of {}", known.join(", "))));
        };
        settings.language = language.tag().to_owned();
    }
    state.store.set_site_mail_settings(admin.site, &settings).await?;
    Ok(axum::Json(view(&state, settings)))
}

/// `GET /api/mail/outbox`: the site's newest mails and how each went.
pub async fn outbox(State(state): State<AppState>, Admin(admin): Admin) -> Result<axum::Json<OutboxPage>, Error> {
    let mails = state.store.outbox(admin.site, OUTBOX_PAGE).await?;
    Ok(axum::Json(OutboxPage { smtp_enabled: state.mail_enabled(), mails: mails.iter().map(outbox_view).collect() }))
}

fn view(state: &AppState, settings: SiteMailSettings) -> MailSettingsView {
    MailSettingsView {
        smtp_enabled: state.mail_enabled(),
        notify_to: settings.notify_to.unwrap_or_default(),
        missed_after_minutes: settings.missed_after_minutes,
        reply_to: settings.reply_to.unwrap_or_default(),
        language: settings.language,
    }
}

fn outbox_view(mail: &OutboxMail) -> OutboxView {
    let status = match mail.status {
        MailStatus::Queued if mail.attempts > 0 => "retrying",
        MailStatus::Queued => "queued",
        MailStatus::Sending => "sending",
        MailStatus::Sent => "sent",
        MailStatus::Failed => "failed",
        MailStatus::Skipped => "skipped",
    };
    OutboxView {
        id: mail.id,
        kind: mail.kind.clone(),
        status: status.to_owned(),
        attempts: mail.attempts,
        last_error: mail.last_error.clone(),
        to: mail.recipients.clone(),
        subject: mail.subject.clone(),
        created_at: mail.created_at,
        updated_at: mail.updated_at,
        not_before: mail.not_before,
    }
}

/// An address setting: `""` unsets it; anything else must be one mail
/// address (`Name <a@b>` or `a@b`), kept as written.
fn address(field: &str, value: &str) -> Result<Option<String>, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<Mailbox>() {
        Ok(_) => Ok(Some(value.to_owned())),
        Err(error) => Err(Error::BadRequest(format!("{field}: {value:?} is not a mail address ({error})"))),
    }
}
