//! The mail outbox and the sites' mail settings.
//!
//! A mail is a row queued in the transaction of what caused it
//! ([`Store::enqueue_mail_on`]), so the cause and its mail commit together
//! or not at all. The store does not know what a mail says: the row holds
//! the job as opaque JSON, and `crate::mail` composes the mail from it
//! when it is sent. A row's life:
//!
//! `queued` → claimed ([`Store::claim_mail`]) → `sending` → `sent`,
//! `skipped` (nothing to say any more), `failed` (out of attempts), or
//! back to `queued` with a later `not_before` (a retry).
//!
//! A claim is a lease: a node that dies while sending leaves the row
//! `sending` until `lease_until`, when any node may claim it again. On
//! PostgreSQL claims skip the rows another node has locked (`FOR UPDATE
//! SKIP LOCKED`), so two nodes never claim one row; on SQLite the claim is
//! one statement in a write transaction, which has the file to itself.
//! `attempts` goes up with every claim and fences it: a node marks a row
//! only while the claim it made is the row's latest, so a node that comes
//! back from a long pause after its lease ran out changes nothing.

use std::time::Duration;

use kefu_protocol::ids::{SiteId, Timestamp};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use super::{Error, Store, Unsigned, int, now, undecodable};

/// An outbox row's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MailId(pub u64);

/// A mail to queue.
#[derive(Debug, Clone, Copy)]
pub struct NewMail<'a> {
    /// What kind of mail, for the admins' list (`new_conversation`).
    pub kind: &'a str,
    /// What the mail is about, as the mail module serialised it.
    pub job: &'a str,
    /// What makes two mails one: while a mail with this key is queued for
    /// the site, queuing another with it does what `on_duplicate` says.
    pub dedupe_key: &'a str,
    /// Sent no earlier than this.
    pub not_before: Timestamp,
    /// What a second mail with the same key does to the queued one.
    pub on_duplicate: OnDuplicate,
}

/// What queuing a mail does when one with its key is queued already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDuplicate {
    /// Leaves the queued mail as it is: one mail for the first cause.
    Keep,
    /// Gives the queued mail this job and `not_before`: one mail, for the
    /// latest cause (a batch that a new cause pushes back).
    Replace,
}

/// Where an outbox row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    /// Waiting for `not_before`; `attempts > 0` means it is retrying.
    Queued,
    /// Claimed by a node that is sending it.
    Sending,
    /// Accepted by the SMTP server.
    Sent,
    /// Given up after the last attempt; `last_error` says why.
    Failed,
    /// Composed to nothing: what it was about is no longer so (an agent
    /// replied, the conversation is gone).
    Skipped,
}

impl MailStatus {
    fn as_str(self) -> &'static str {
        match self {
            MailStatus::Queued => "queued",
            MailStatus::Sending => "sending",
            MailStatus::Sent => "sent",
            MailStatus::Failed => "failed",
            MailStatus::Skipped => "skipped",
        }
    }

    fn parse(value: &str) -> Result<MailStatus, sqlx::Error> {
        Ok(match value {
            "queued" => MailStatus::Queued,
            "sending" => MailStatus::Sending,
            "sent" => MailStatus::Sent,
            "failed" => MailStatus::Failed,
            "skipped" => MailStatus::Skipped,
            other => return Err(undecodable("mail status", other)),
        })
    }
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    pub id: MailId,
    pub site: SiteId,
    pub kind: String,
    pub job: String,
    pub dedupe_key: String,
    pub status: MailStatus,
    pub not_before: Timestamp,
    /// How many times it was claimed, this claim included.
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Comma-separated, once composed.
    pub recipients: String,
    /// Once composed.
    pub subject: String,
    pub message_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: Unsigned,
    site_id: Unsigned,
    kind: String,
    job: String,
    dedupe_key: String,
    status: String,
    not_before: Unsigned,
    attempts: Unsigned,
    last_error: Option<String>,
    recipients: String,
    subject: String,
    message_id: Option<String>,
    created_at: Unsigned,
    updated_at: Unsigned,
}

const OUTBOX_COLUMNS: &str = "id, site_id, kind, job, dedupe_key, status, not_before, attempts, last_error, \
                              recipients, subject, message_id, created_at, updated_at";

impl TryFrom<OutboxRow> for OutboxMail {
    type Error = sqlx::Error;

    fn try_from(row: OutboxRow) -> Result<OutboxMail, sqlx::Error> {
        Ok(OutboxMail {
            id: MailId(row.id.0),
            site: SiteId(row.site_id.0),
            kind: row.kind,
            job: row.job,
            dedupe_key: row.dedupe_key,
            status: MailStatus::parse(&row.status)?,
            not_before: Timestamp(row.not_before.0),
            attempts: row.attempts.small()?,
            last_error: row.last_error,
            recipients: row.recipients,
            subject: row.subject,
            message_id: row.message_id,
            created_at: Timestamp(row.created_at.0),
            updated_at: Timestamp(row.updated_at.0),
        })
    }
}

/// How a claimed mail ended this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome<'a> {
    /// The SMTP server accepted it.
    Sent { recipients: &'a str, subject: &'a str, message_id: &'a str },
    /// Sending failed; tried again at `at`.
    Retry { at: Timestamp, error: &'a str, recipients: &'a str, subject: &'a str },
    /// Sending failed for the last time.
    Failed { error: &'a str, recipients: &'a str, subject: &'a str },
    /// Nothing to send any more.
    Skipped,
}

/// A site's mail settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteMailSettings {
    /// Where agent notifications go; `None`: every active agent's login.
    pub notify_to: Option<String>,
    /// A conversation waiting this long for an agent's first reply is
    /// mailed about as missed; 0 never.
    pub missed_after_minutes: u32,
    /// The `Reply-To` of the site's mails; `None`: the relay's sender.
    pub reply_to: Option<String>,
    /// `en`, `zh-CN` or `zh-TW`: the language of the site's mails.
    pub language: String,
}

impl Default for SiteMailSettings {
    fn default() -> SiteMailSettings {
        SiteMailSettings { notify_to: None, missed_after_minutes: 0, reply_to: None, language: "en".into() }
    }
}

/// A text column where '' means unset.
fn optional(value: String) -> Option<String> {
    Some(value).filter(|value| !value.is_empty())
}

impl Store {
    /// Queues a mail for `site` on `connection`, inside the caller's
    /// transaction. Returns the id of the queued row that carries it: a
    /// new one, or with [`OnDuplicate::Replace`] the one it changed;
    /// `None` when [`OnDuplicate::Keep`] found one queued with its key.
    pub async fn enqueue_mail_on(
        connection: &mut AnyConnection,
        site: SiteId,
        mail: &NewMail<'_>,
    ) -> Result<Option<MailId>, Error> {
        let on_conflict = match mail.on_duplicate {
            OnDuplicate::Keep => "DO NOTHING",
            OnDuplicate::Replace => {
                "DO UPDATE SET job = excluded.job, not_before = excluded.not_before, updated_at = excluded.updated_at"
            }
        };
        // The WHERE names the partial unique index (PostgreSQL needs it to
        // pick the index; SQLite to parse the upsert).
        let sql = format!(
            "INSERT INTO mail_outbox (site_id, kind, job, dedupe_key, not_before, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (site_id, dedupe_key) WHERE status = 'queued' {on_conflict} \
             RETURNING id"
        );
        let now = int(now().0);
        let id: Option<Unsigned> = sqlx::query_scalar(&sql)
            .bind(int(site.0))
            .bind(mail.kind)
            .bind(mail.job)
            .bind(mail.dedupe_key)
            .bind(int(mail.not_before.0))
            .bind(now)
            .fetch_optional(&mut *connection)
            .await?;
        Ok(id.map(|id| MailId(id.0)))
    }

    /// Queues a mail for `site` in a transaction of its own.
    pub async fn enqueue_mail(&self, site: SiteId, mail: &NewMail<'_>) -> Result<Option<MailId>, Error> {
        let mut connection = self.pool().acquire().await?;
        Store::enqueue_mail_on(&mut connection, site, mail).await
    }

    /// When the newest mail of `site` with `dedupe_key` was queued,
    /// whatever became of it since: for limits on how often a visitor
    /// may ask for one.
    pub async fn mail_last_queued(&self, site: SiteId, dedupe_key: &str) -> Result<Option<Timestamp>, Error> {
        let at: Option<Option<Unsigned>> =
            sqlx::query_scalar("SELECT MAX(created_at) FROM mail_outbox WHERE site_id = $1 AND dedupe_key = $2")
                .bind(int(site.0))
                .bind(dedupe_key)
                .fetch_optional(self.pool())
                .await?;
        Ok(at.flatten().map(|at| Timestamp(at.0)))
    }

    /// Claims up to `limit` mails that are due at `now`, of every site:
    /// queued ones whose `not_before` has come, and ones being sent whose
    /// lease ran out (their node died or hung). Each is `sending` until
    /// `now + lease`, its `attempts` counting this claim. Oldest due first.
    pub async fn claim_mail(&self, now: Timestamp, lease: Duration, limit: u32) -> Result<Vec<OutboxMail>, Error> {
        let lease_until = now.0.saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        let lock = match self.backend() {
            super::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            super::Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE mail_outbox SET status = 'sending', lease_until = $2, attempts = attempts + 1, updated_at = $1 \
             WHERE id IN (SELECT id FROM mail_outbox \
                 WHERE (status = 'queued' AND not_before <= $1) OR (status = 'sending' AND lease_until <= $1) \
                 ORDER BY not_before, id LIMIT $3{lock}) \
             RETURNING {OUTBOX_COLUMNS}"
        );
        let mut transaction = self.backend().begin_write(self.pool()).await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(&sql)
            .bind(int(now.0))
            .bind(int(lease_until))
            .bind(i64::from(limit))
            .fetch_all(&mut *transaction)
            .await?;
        transaction.commit().await?;
        let mut claimed = rows.into_iter().map(OutboxMail::try_from).collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|mail| (mail.not_before, mail.id));
        Ok(claimed)
    }

    /// Records how the claim `mail` (as [`Store::claim_mail`] returned it)
    /// ended. `false` when the claim was no longer the row's: its lease
    /// ran out and another claim took the row, whose outcome counts.
    pub async fn finish_mail(&self, site: SiteId, mail: &OutboxMail, outcome: &MailOutcome<'_>) -> Result<bool, Error> {
        let now = int(now().0);
        let (status, not_before, error, recipients, subject, message_id) = match *outcome {
            MailOutcome::Sent { recipients, subject, message_id } => {
                (MailStatus::Sent, None, None, Some(recipients), Some(subject), Some(message_id))
            }
            MailOutcome::Retry { at, error, recipients, subject } => {
                (MailStatus::Queued, Some(int(at.0)), Some(error), Some(recipients), Some(subject), None)
            }
            MailOutcome::Failed { error, recipients, subject } => {
                (MailStatus::Failed, None, Some(error), Some(recipients), Some(subject), None)
            }
            MailOutcome::Skipped => (MailStatus::Skipped, None, None, None, None, None),
        };
        let done = sqlx::query(
            "UPDATE mail_outbox SET status = $1, not_before = COALESCE($2, not_before), \
             last_error = COALESCE($3, last_error), recipients = COALESCE($4, recipients), \
             subject = COALESCE($5, subject), message_id = COALESCE($6, message_id), \
             lease_until = NULL, updated_at = $7 \
             WHERE id = $8 AND site_id = $9 AND status = 'sending' AND attempts = $10",
        )
        .bind(status.as_str())
        .bind(not_before)
        .bind(error)
        .bind(recipients)
        .bind(subject)
        .bind(message_id)
        .bind(now)
        .bind(int(mail.id.0))
        .bind(int(site.0))
        .bind(i64::from(mail.attempts))
        .execute(self.pool())
        .await;
        match done {
            Ok(done) => Ok(done.rows_affected() == 1),
            // A retry back to `queued` meets a mail queued meanwhile with
            // the same key: that one will say it all, so this one is done.
            Err(error) if error.as_database_error().is_some_and(|db| db.is_unique_violation()) => {
                let skipped = MailOutcome::Skipped;
                Box::pin(self.finish_mail(site, mail, &skipped)).await
            }
            Err(error) => Err(error.into()),
        }
    }

    /// When the next mail is due, of any site: the earliest `not_before`
    /// of a queued one or lease end of one being sent.
    pub async fn next_mail_due(&self) -> Result<Option<Timestamp>, Error> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(CASE WHEN status = 'queued' THEN not_before ELSE lease_until END) FROM mail_outbox \
             WHERE status IN ('queued', 'sending')",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(due.map(|due| Timestamp(u64::try_from(due).unwrap_or(0))))
    }

    /// `site`'s newest `limit` mails, newest first: the admins' outbox.
    pub async fn outbox(&self, site: SiteId, limit: u32) -> Result<Vec<OutboxMail>, Error> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM mail_outbox WHERE site_id = $1 ORDER BY id DESC LIMIT $2");
        let rows: Vec<OutboxRow> =
            sqlx::query_as(&sql).bind(int(site.0)).bind(i64::from(limit)).fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(OutboxMail::try_from).collect::<Result<_, _>>()?)
    }

    /// One of `site`'s mails.
    pub async fn outbox_mail(&self, site: SiteId, id: MailId) -> Result<Option<OutboxMail>, Error> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM mail_outbox WHERE id = $1 AND site_id = $2");
        let row: Option<OutboxRow> =
            sqlx::query_as(&sql).bind(int(id.0)).bind(int(site.0)).fetch_optional(self.pool()).await?;
        Ok(row.map(OutboxMail::try_from).transpose()?)
    }

    /// `site`'s mail settings; the defaults if it never changed them.
    pub async fn site_mail_settings(&self, site: SiteId) -> Result<SiteMailSettings, Error> {
        site_mail_settings_on(&mut *self.pool().acquire().await?, site).await
    }

    /// Replaces `site`'s mail settings (validated by the caller).
    pub async fn set_site_mail_settings(&self, site: SiteId, settings: &SiteMailSettings) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO site_mail (site_id, notify_to, missed_after_minutes, reply_to, language, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (site_id) DO UPDATE SET notify_to = excluded.notify_to, \
             missed_after_minutes = excluded.missed_after_minutes, reply_to = excluded.reply_to, \
             language = excluded.language, updated_at = excluded.updated_at",
        )
        .bind(int(site.0))
        .bind(settings.notify_to.as_deref().unwrap_or_default())
        .bind(i64::from(settings.missed_after_minutes))
        .bind(settings.reply_to.as_deref().unwrap_or_default())
        .bind(&settings.language)
        .bind(int(now().0))
        .execute(self.pool())
        .await
        .map_err(|error| super::constraint(error, "site mail settings"))?;
        Ok(())
    }
}

/// `site`'s mail settings read on `connection` (inside a transaction that
/// queues the site's mail).
pub(super) async fn site_mail_settings_on(
    connection: &mut AnyConnection,
    site: SiteId,
) -> Result<SiteMailSettings, Error> {
    let row: Option<(String, Unsigned, String, String)> =
        sqlx::query_as("SELECT notify_to, missed_after_minutes, reply_to, language FROM site_mail WHERE site_id = $1")
            .bind(int(site.0))
            .fetch_optional(connection)
            .await?;
    let Some((notify_to, missed, reply_to, language)) = row else { return Ok(SiteMailSettings::default()) };
    Ok(SiteMailSettings {
        notify_to: optional(notify_to),
        missed_after_minutes: missed.small()?,
        reply_to: optional(reply_to),
        language,
    })
}
