//! The relay's mail: what is queued, how it is composed, and the task
//! that sends it over SMTP.
//!
//! # Layout
//!
//! - this file: [`MailJob`] (what a queued mail is about, one variant per
//!   kind, made into a [`QueuedMail`] for the store's outbox) and
//!   [`Mailer`] (`--smtp-url`, `--mail-from`: whether mail is on, the
//!   notifications a new conversation queues, starting the sender).
//! - `compose`: [`compose`], the one place that turns a job into a
//!   [`Mail`], from the store's state when it is sent.
//! - `sender`: one task per node that claims due mails from the outbox,
//!   composes and sends them, and retries with backoff.
//! - `i18n`: the words of each mail, in English, 简体中文 and 繁體中文.
//!
//! The outbox itself (rows, claims, leases) is the store's
//! (`store::mail`); this module depends on the store, never the other
//! way: the store keeps a job as JSON it does not read.
//!
//! # Once, or at least once
//!
//! A mail is claimed by one node at a time, and marked sent right after
//! the SMTP server accepts it. If the node dies between the two, the claim
//! runs out and another node (or the same, restarted) sends the mail
//! again: SMTP has no way to ask a server whether it already took a mail,
//! and no transaction spans the server's queue and the store, so delivery
//! is at least once in that window of a few milliseconds, exactly once
//! otherwise. The resend carries the same `Message-ID` (made from the
//! outbox row), so mail clients and servers that deduplicate by it show
//! one mail.

mod compose;
mod i18n;
mod sender;

use std::sync::Arc;
use std::time::Duration;

use kefu_protocol::ids::{ConversationId, SiteId, Timestamp};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use compose::{Context, Mail, compose};
pub use i18n::Language;

use crate::config::Config;
use crate::store::{self, OnDuplicate, QueuedMail, Store};

/// What a queued mail is about. Stored as JSON in the outbox row; the mail
/// itself is composed from it when it is sent. New kinds are new
/// variants; a variant's fields are never renamed, as rows queued by the
/// previous release must still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MailJob {
    /// To the site's agents: a visitor started a conversation while none
    /// of them was online.
    NewConversation { conversation: ConversationId },
    /// To the site's agents: a conversation has waited `minutes` without
    /// an agent's reply. Nothing is sent if an agent replied meanwhile.
    Missed { conversation: ConversationId, minutes: u32 },
    /// To the visitor: the agents' replies in `conversation` it has not
    /// read and not been mailed (`crate::follow_up`). Queued with each
    /// reply; a burst of replies makes one mail. Nothing is sent if the
    /// visitor read them meanwhile.
    VisitorReplies { conversation: ConversationId },
    /// To the visitor: the whole of `conversation`, which it or an agent
    /// asked for.
    Transcript { conversation: ConversationId },
    /// To the visitor: the satisfaction survey of `conversation`'s newest
    /// close, with a link for each score. Queued with the "closed" line;
    /// nothing is sent if the visitor rated in the widget meanwhile, or
    /// the chat was reopened.
    Survey { conversation: ConversationId },
}

impl MailJob {
    /// The kind's name, for the admins' outbox.
    pub fn kind(&self) -> &'static str {
        match self {
            MailJob::NewConversation { .. } => "new_conversation",
            MailJob::Missed { .. } => "missed",
            MailJob::VisitorReplies { .. } => "visitor_replies",
            MailJob::Transcript { .. } => "transcript",
            MailJob::Survey { .. } => "survey",
        }
    }

    /// What makes two such jobs one mail.
    pub fn dedupe_key(&self) -> String {
        match self {
            MailJob::NewConversation { conversation }
            | MailJob::Missed { conversation, .. }
            | MailJob::VisitorReplies { conversation }
            | MailJob::Transcript { conversation }
            | MailJob::Survey { conversation } => format!("{}:{conversation}", self.kind()),
        }
    }

    /// This job as a row to queue, sent no earlier than `not_before`.
    pub fn queued(&self, not_before: Timestamp, on_duplicate: OnDuplicate) -> QueuedMail {
        QueuedMail {
            kind: self.kind(),
            // Serialising a plain enum of ids and numbers cannot fail.
            job: serde_json::to_string(self).unwrap_or_default(),
            dedupe_key: self.dedupe_key(),
            not_before,
            on_duplicate,
        }
    }

    /// The job a row holds; `None` for one this relay cannot read (a newer
    /// release's kind).
    pub fn from_row(job: &str) -> Option<MailJob> {
        serde_json::from_str(job).ok()
    }
}

/// How long after the visitor's first message the new-conversation mail
/// is composed: the message is stored right after its conversation, and
/// the mail should quote it.
const NEW_CONVERSATION_DELAY: Duration = Duration::from_secs(2);

/// `--mail-from` or `--smtp-url` cannot be used; says which and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// The relay's mail: on when `--smtp-url` is set. Cloning is shallow.
#[derive(Debug, Clone, Default)]
pub struct Mailer {
    smtp: Option<Arc<Smtp>>,
    /// Wakes this node's sender when a mail was queued here, so it need
    /// not wait for its next look at the outbox.
    wake: Arc<Notify>,
}

/// What the sender needs of the configuration.
struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    context: Context,
    /// The domain of every `Message-ID`: the sender's.
    id_domain: String,
    first_retry: Duration,
    attempts: u32,
    /// How long a claim holds a mail.
    lease: Duration,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp").field("from", &self.context.from.to_string()).finish_non_exhaustive()
    }
}

impl Mailer {
    /// Mail as `config` says: off without `--smtp-url`. Fails on a URL
    /// lettre does not take, or a missing or malformed `--mail-from`.
    pub fn from_config(config: &Config) -> Result<Mailer, ConfigError> {
        let Some(url) = &config.smtp_url else { return Ok(Mailer::default()) };
        let from = config.mail_from.as_deref().ok_or_else(|| ConfigError("--smtp-url needs --mail-from".into()))?;
        let from: Mailbox =
            from.trim().parse().map_err(|error| ConfigError(format!("--mail-from {from:?}: {error}")))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| ConfigError(format!("--smtp-url: {error}")))?
            .timeout(Some(sender::SMTP_TIMEOUT))
            .build();
        let console_url = config.public_url.as_ref().map(|url| format!("{}/console", url.origin));
        let public_origin = config.public_url.as_ref().map(|url| url.origin.clone());
        Ok(Mailer {
            smtp: Some(Arc::new(Smtp {
                transport,
                id_domain: from.email.domain().to_owned(),
                context: Context { from, console_url, public_origin },
                first_retry: Duration::from_secs(config.mail_retry_secs.max(1)),
                attempts: config.mail_attempts.max(1),
                lease: Duration::from_secs(config.mail_lease_secs.max(1)),
            })),
            wake: Arc::default(),
        })
    }

    /// Whether the relay sends mail (`--smtp-url` is set): the console
    /// says so when it does not, and the widget promises no email.
    pub fn enabled(&self) -> bool {
        self.smtp.is_some()
    }

    /// Tells this node's sender a mail was queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The mails a new conversation of `site` queues, in the transaction
    /// that makes it: the agents' notification if none of them is online
    /// (`agents_online`), and the missed-chat mail if the site asks for
    /// one. None when mail is off.
    pub async fn new_conversation_mails(
        &self,
        store: &Store,
        site: SiteId,
        conversation: ConversationId,
        agents_online: u32,
    ) -> Result<Vec<QueuedMail>, store::Error> {
        if !self.enabled() {
            return Ok(Vec::new());
        }
        let now = store::now();
        let mut mails = Vec::new();
        if agents_online == 0 {
            let at = Timestamp(now.0 + millis(NEW_CONVERSATION_DELAY));
            mails.push(MailJob::NewConversation { conversation }.queued(at, OnDuplicate::Keep));
        }
        let minutes = store.site_mail_settings(site).await?.missed_after_minutes;
        if minutes > 0 {
            let at = Timestamp(now.0 + u64::from(minutes) * 60_000);
            mails.push(MailJob::Missed { conversation, minutes }.queued(at, OnDuplicate::Keep));
        }
        Ok(mails)
    }

    /// The follow-up mail an agent's reply in `conversation` queues (see
    /// [`MailJob::VisitorReplies`]): due after the site's batch delay, and
    /// one for a burst, as the first reply's row stays while it waits.
    /// None when mail is off, or the visitor gave no address or
    /// unsubscribed (checked again when it is composed), so the outbox
    /// fills with no mail that could never go.
    pub async fn visitor_replies_mail(
        &self,
        store: &Store,
        site: SiteId,
        conversation: ConversationId,
    ) -> Result<Option<QueuedMail>, store::Error> {
        if !self.enabled() {
            return Ok(None);
        }
        let Some(visitor) = store.conversation(site, conversation).await?.map(|c| c.visitor) else { return Ok(None) };
        if store.visitor_email(site, visitor).await?.is_none() || store.visitor_unsubscribed(site, visitor).await? {
            return Ok(None);
        }
        let delay = store.follow_up_delay(site).await?;
        let queued = MailJob::VisitorReplies { conversation }
            .queued(Timestamp(store::now().0 + millis(delay)), OnDuplicate::Keep);
        Ok(Some(queued))
    }

    /// The survey mail an agent's close of `conversation` queues (see
    /// [`MailJob::Survey`]), in the transaction of the "closed" line. Due
    /// after the site's follow-up batch delay, the time a visitor still
    /// on the page has to rate in the widget; a close soon after a
    /// reopen pushes it back rather than queue a second. None when mail
    /// is off, the site asks for no rating, or the visitor gave no
    /// address or unsubscribed.
    pub async fn survey_mail(
        &self,
        store: &Store,
        site: SiteId,
        conversation: ConversationId,
    ) -> Result<Option<QueuedMail>, store::Error> {
        if !self.enabled() || !store.site_forms(site).await?.survey.enabled {
            return Ok(None);
        }
        let Some(visitor) = store.conversation(site, conversation).await?.map(|c| c.visitor) else { return Ok(None) };
        if store.visitor_email(site, visitor).await?.is_none() || store.visitor_unsubscribed(site, visitor).await? {
            return Ok(None);
        }
        let delay = store.follow_up_delay(site).await?;
        let queued =
            MailJob::Survey { conversation }.queued(Timestamp(store::now().0 + millis(delay)), OnDuplicate::Replace);
        Ok(Some(queued))
    }

    /// Starts this node's sender, which runs until `stop` is cancelled;
    /// `None` when mail is off.
    pub fn start(&self, store: Store, stop: CancellationToken) -> Option<JoinHandle<()>> {
        let smtp = Arc::clone(self.smtp.as_ref()?);
        Some(tokio::spawn(sender::run(smtp, store, Arc::clone(&self.wake), stop)))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
