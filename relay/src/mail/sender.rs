//! The outbox's sender: one task per node that claims due mails, composes
//! and sends each, and records how it went.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kefu_protocol::ids::Timestamp;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncTransport, Message};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Mail, MailJob, Smtp, compose, millis};
use crate::store::{self, MailOutcome, OutboxMail, Store};

/// How long one SMTP exchange may take, connecting included.
pub(super) const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Mails claimed at once. Few: a claim that outlives its lease is sent
/// twice, and sending is one at a time.
const BATCH: u32 = 10;

/// How often the sender looks at the outbox when nothing woke it: mails
/// queued on other nodes, and leases that ran out.
const POLL: Duration = Duration::from_secs(5);

/// The longest wait between two attempts at one mail.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Sends due mails until `stop` is cancelled. A mail being sent then is
/// finished first (within the SMTP timeout).
pub(super) async fn run(smtp: Arc<Smtp>, store: Store, wake: Arc<Notify>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let claimed = match store.claim_mail(store::now(), smtp.lease, BATCH).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "could not claim mail from the outbox");
                Vec::new()
            }
        };
        let claimed_at = Instant::now();
        let full = claimed.len() == BATCH as usize;
        for (sent, mail) in claimed.iter().enumerate() {
            // A slow SMTP server must not let the claim run out under the
            // sender: another node would take the rest and send them too.
            // What is left goes back when its lease ends.
            if sent > 0 && !time_left_to_send(claimed_at.elapsed(), smtp.lease) {
                tracing::info!(
                    left = claimed.len() - sent,
                    "the claim's lease is half gone; the rest wait for another claim"
                );
                break;
            }
            if let Err(error) = deliver(&smtp, &store, mail).await {
                // The claim stays until its lease ends; then it is retried.
                tracing::warn!(%error, mail = mail.id.0, "could not record a mail's outcome");
            }
        }
        if full {
            continue;
        }
        let wait = match store.next_mail_due().await {
            Ok(Some(due)) => Duration::from_millis(due.0.saturating_sub(store::now().0)).min(POLL),
            Ok(None) => POLL,
            Err(error) => {
                tracing::warn!(%error, "could not read when the next mail is due");
                POLL
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
            () = stop.cancelled() => {}
        }
    }
}

/// Whether a claim made `elapsed` ago may still start sending a mail: one
/// SMTP exchange takes up to [`SMTP_TIMEOUT`], so the sender stops while
/// half the lease is left rather than send past its end.
fn time_left_to_send(elapsed: Duration, lease: Duration) -> bool {
    elapsed < lease / 2
}

/// Composes, sends and records one claimed mail.
async fn deliver(smtp: &Smtp, store: &Store, claimed: &OutboxMail) -> Result<(), store::Error> {
    let site = claimed.site;
    let Some(job) = MailJob::from_row(&claimed.job) else {
        // A newer release's kind, queued during a rolling upgrade: left
        // for a node that knows it, until the attempts run out.
        let error = format!("unknown mail kind {:?}", claimed.kind);
        return retry_or_fail(smtp, store, claimed, &error, "", "").await;
    };
    let Some(mail) = compose(&job, site, store, &smtp.context).await? else {
        store.finish_mail(site, claimed, &MailOutcome::Skipped).await?;
        return Ok(());
    };
    let recipients = mail.to.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let message_id = message_id(claimed, &smtp.id_domain);
    let sent = match message(&mail, &smtp.context.from, &message_id) {
        Ok(message) => smtp.transport.send(message).await.map_err(|error| (error.is_permanent(), error.to_string())),
        Err(error) => Err((true, error.to_string())),
    };
    match sent {
        Ok(_) => {
            tracing::info!(mail = claimed.id.0, kind = %claimed.kind, %recipients, "mail sent");
            let outcome =
                MailOutcome::Sent { recipients: &recipients, subject: &mail.subject, message_id: &message_id };
            store.finish_mail(site, claimed, &outcome).await?;
            // After the send, so a mail that failed is composed again with
            // the same replies; dying in between mails them once more.
            if let Some((conversation, through)) = mail.mailed {
                store.mark_mailed(site, conversation, through).await?;
            }
        }
        Err((true, error)) => {
            tracing::warn!(mail = claimed.id.0, %error, "the SMTP server refused a mail for good");
            let outcome = MailOutcome::Failed { error: &error, recipients: &recipients, subject: &mail.subject };
            store.finish_mail(site, claimed, &outcome).await?;
        }
        Err((false, error)) => retry_or_fail(smtp, store, claimed, &error, &recipients, &mail.subject).await?,
    }
    Ok(())
}

/// Queues `claimed` again after its backoff, or marks it failed if that
/// was its last attempt.
async fn retry_or_fail(
    smtp: &Smtp,
    store: &Store,
    claimed: &OutboxMail,
    error: &str,
    recipients: &str,
    subject: &str,
) -> Result<(), store::Error> {
    let outcome = if claimed.attempts >= smtp.attempts {
        tracing::warn!(mail = claimed.id.0, attempts = claimed.attempts, %error, "a mail failed for the last time");
        MailOutcome::Failed { error, recipients, subject }
    } else {
        let wait = backoff(smtp.first_retry, claimed.attempts);
        tracing::info!(mail = claimed.id.0, attempts = claimed.attempts, %error, ?wait, "a mail will be retried");
        MailOutcome::Retry { at: Timestamp(store::now().0 + millis(wait)), error, recipients, subject }
    };
    store.finish_mail(claimed.site, claimed, &outcome).await?;
    Ok(())
}

/// The wait after attempt `attempts` (1 after the first): `first`, then
/// twice as long each time, at most [`MAX_BACKOFF`].
fn backoff(first: Duration, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(20);
    first.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

/// The `Message-ID` of an outbox row: the same on every attempt, so a
/// mail sent twice (see the module's "once" note) is recognisably one.
fn message_id(mail: &OutboxMail, domain: &str) -> String {
    format!("<kefu.{}.{}@{domain}>", mail.site.0, mail.id.0)
}

/// The mail as lettre sends it: text and HTML as alternatives, marked as
/// sent by a machine (so auto-responders stay quiet, RFC 3834).
fn message(mail: &Mail, from: &Mailbox, message_id: &str) -> Result<Message, lettre::error::Error> {
    let mut builder = Message::builder()
        .from(from.clone())
        .reply_to(mail.reply_to.clone())
        .subject(mail.subject.clone())
        .message_id(Some(message_id.to_owned()))
        .header(AutoSubmitted)
        .header(ContentLanguage(mail.language.tag().to_owned()));
    for to in &mail.to {
        builder = builder.to(to.clone());
    }
    if let Some(url) = &mail.list_unsubscribe {
        builder = builder.header(ListUnsubscribe(url.clone())).header(ListUnsubscribePost);
    }
    builder.multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
}

/// `Auto-Submitted: auto-generated` (RFC 3834).
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<AutoSubmitted, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(AutoSubmitted::name(), "auto-generated".to_owned())
    }
}

/// `List-Unsubscribe: <URL>` (RFC 2369): where a visitor stops follow-up
/// mail.
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(value: &str) -> Result<ListUnsubscribe, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(value.trim().trim_start_matches('<').trim_end_matches('>').to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(ListUnsubscribe::name(), format!("<{}>", self.0))
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058): the
/// link unsubscribes with one POST, no page to click through.
#[derive(Debug, Clone, Copy)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<ListUnsubscribePost, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribePost)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(ListUnsubscribePost::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

/// `Content-Language` (RFC 3282): the site's mail language.
#[derive(Debug, Clone)]
struct ContentLanguage(String);

impl Header for ContentLanguage {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Content-Language")
    }

    fn parse(value: &str) -> Result<ContentLanguage, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ContentLanguage(value.trim().to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(ContentLanguage::name(), self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_twice_as_long_each_time_up_to_an_hour() {
        let first = Duration::from_secs(30);
        assert_eq!(backoff(first, 1), Duration::from_secs(30));
        assert_eq!(backoff(first, 2), Duration::from_secs(60));
        assert_eq!(backoff(first, 4), Duration::from_secs(240));
        assert_eq!(backoff(first, 9), MAX_BACKOFF);
        assert_eq!(backoff(first, u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_claim_sends_no_more_once_half_its_lease_is_gone() {
        let lease = Duration::from_secs(120);
        assert!(time_left_to_send(Duration::ZERO, lease));
        assert!(time_left_to_send(Duration::from_secs(59), lease));
        assert!(!time_left_to_send(Duration::from_secs(60), lease));
        assert!(!time_left_to_send(Duration::from_secs(600), lease));
    }
}
