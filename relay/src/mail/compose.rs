//! Composing a mail from its job and the store's state at send time.

use kefu_protocol::frame::{Author, Body, ConversationStatus, Message};
use kefu_protocol::ids::{ConversationId, Seq, SiteId};
use lettre::message::Mailbox;

use super::MailJob;
use super::i18n::{Language, Texts, fill};
use crate::follow_up;
use crate::store::{self, SiteMailSettings, Store};

/// What every mail of this relay shares.
#[derive(Debug, Clone)]
pub struct Context {
    /// `--mail-from`.
    pub from: Mailbox,
    /// Where agents answer, from `--public-url`; no link without it.
    pub console_url: Option<String>,
    /// `--public-url`'s origin: where a visitor's links lead. Visitor
    /// mail is skipped without it, as it would have no way back.
    pub public_origin: Option<String>,
}

/// A mail, composed: who it goes to and what it says, as text and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: Vec<Mailbox>,
    pub reply_to: Mailbox,
    pub language: Language,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// A visitor's one-click unsubscribe URL: `List-Unsubscribe` and
    /// `List-Unsubscribe-Post` (RFC 8058).
    pub list_unsubscribe: Option<String>,
    /// What the store records once it is sent: the visitor has been mailed
    /// this conversation up to this seq.
    pub mailed: Option<(ConversationId, Seq)>,
}

/// Visitor messages quoted in a notification, at most.
const QUOTED_MESSAGES: usize = 5;

/// Messages read to tell whether an agent replied: a conversation that
/// waits for its first reply has few.
const READ_MESSAGES: u32 = 200;

/// The mail `job` of `site` makes now; `None` when there is nothing to
/// say any more (the conversation is gone or closed, an agent replied,
/// nobody to tell), and the row is marked skipped.
pub async fn compose(
    job: &MailJob,
    site: SiteId,
    store: &Store,
    context: &Context,
) -> Result<Option<Mail>, store::Error> {
    if let MailJob::VisitorReplies { .. } | MailJob::Transcript { .. } | MailJob::Survey { .. } = job {
        return visitor_mail(job, site, store, context).await;
    }
    let Some(site_row) = store.site(site).await? else { return Ok(None) };
    let settings = store.site_mail_settings(site).await?;
    let to = agent_recipients(store, site, &settings).await?;
    if to.is_empty() {
        return Ok(None);
    }
    let language = Language::from_setting(&settings.language);
    let texts = language.texts();
    let reply_to = settings.reply_to.as_deref().and_then(|address| address.parse().ok());
    let mail = |subject: String, intro: String, messages: &[Message]| {
        let (text, html) = notification(texts, &intro, messages, context);
        Mail {
            to: to.clone(),
            reply_to: reply_to.clone().unwrap_or_else(|| context.from.clone()),
            language,
            subject,
            text,
            html,
            list_unsubscribe: None,
            mailed: None,
        }
    };
    match *job {
        MailJob::NewConversation { conversation } => {
            let Some(messages) = open_conversation_messages(store, site, conversation).await? else { return Ok(None) };
            let subject = fill(texts.new_conversation_subject, &site_row.name, 0);
            let intro = fill(texts.new_conversation_intro, &site_row.name, 0);
            Ok(Some(mail(subject, intro, &messages)))
        }
        MailJob::Missed { conversation, minutes } => {
            let Some(messages) = open_conversation_messages(store, site, conversation).await? else { return Ok(None) };
            let replied = messages
                .iter()
                .any(|m| matches!((m.author, &m.body), (Author::Agent(_), Body::Text(_) | Body::Files(_))));
            if replied {
                return Ok(None);
            }
            let subject = fill(texts.missed_subject, &site_row.name, minutes);
            let intro = fill(texts.missed_intro, &site_row.name, minutes);
            Ok(Some(mail(subject, intro, &messages)))
        }
        MailJob::VisitorReplies { .. } | MailJob::Transcript { .. } | MailJob::Survey { .. } => Ok(None),
    }
}

/// A mail to a visitor (`crate::follow_up`): the replies it missed, its
/// transcript, or the survey of a close; `None` without an address, a public URL for its links,
/// or (replies) anything unread, or once it unsubscribed.
async fn visitor_mail(
    job: &MailJob,
    site: SiteId,
    store: &Store,
    context: &Context,
) -> Result<Option<Mail>, store::Error> {
    let Some(base) = &context.public_origin else {
        tracing::warn!("visitor mail needs --public-url for its links; skipped");
        return Ok(None);
    };
    let composed = match *job {
        MailJob::VisitorReplies { conversation } => {
            follow_up::compose::replies(store, base, site, conversation).await?
        }
        MailJob::Transcript { conversation } => follow_up::compose::transcript(store, base, site, conversation).await?,
        MailJob::Survey { conversation } => follow_up::compose::survey(store, base, site, conversation).await?,
        MailJob::NewConversation { .. } | MailJob::Missed { .. } => return Ok(None),
    };
    let composed = match composed {
        Ok(composed) => composed,
        Err(skipped) => {
            tracing::debug!(?skipped, kind = job.kind(), "visitor mail skipped");
            return Ok(None);
        }
    };
    let Ok(to) = composed.to.parse::<Mailbox>() else {
        tracing::info!(kind = job.kind(), "a visitor's address is not one; mail skipped");
        return Ok(None);
    };
    let settings = store.site_mail_settings(site).await?;
    let reply_to = settings.reply_to.as_deref().and_then(|address| address.parse().ok());
    let replies = matches!(job, MailJob::VisitorReplies { .. });
    Ok(Some(Mail {
        to: vec![to],
        reply_to: reply_to.unwrap_or_else(|| context.from.clone()),
        language: Language::from_setting(composed.lang.tag()),
        subject: composed.rendered.subject,
        text: composed.rendered.text,
        html: composed.rendered.html,
        list_unsubscribe: Some(composed.unsubscribe),
        mailed: replies.then_some((composed.conversation, composed.through)),
    }))
}

/// Where `site`'s agent notifications go: the chosen address, else every
/// active agent's login.
async fn agent_recipients(
    store: &Store,
    site: SiteId,
    settings: &SiteMailSettings,
) -> Result<Vec<Mailbox>, store::Error> {
    if let Some(address) = &settings.notify_to {
        return Ok(address.parse().ok().into_iter().collect());
    }
    let agents = store.agents(site).await?;
    // A login that is no address (an old or odd one) is left out rather
    // than failing the mail for everyone.
    Ok(agents.iter().filter(|agent| agent.active).filter_map(|agent| agent.email.parse().ok()).collect())
}

/// The first messages of `conversation` if it is open; `None` if it is
/// gone or closed.
async fn open_conversation_messages(
    store: &Store,
    site: SiteId,
    conversation: ConversationId,
) -> Result<Option<Vec<Message>>, store::Error> {
    let Some(row) = store.conversation(site, conversation).await? else { return Ok(None) };
    if row.status != ConversationStatus::Open {
        return Ok(None);
    }
    Ok(Some(store.messages_after(site, conversation, Seq::ZERO, READ_MESSAGES).await?))
}

/// The text and HTML of an agent notification: the intro, what the
/// visitor wrote so far, a link to the console.
fn notification(texts: &Texts, intro: &str, messages: &[Message], context: &Context) -> (String, String) {
    let quoted: Vec<String> = messages
        .iter()
        .filter_map(|message| match (&message.author, &*kefu_protocol::compat::body_for(&message.body, 1)) {
            (Author::Visitor(_), Body::Text(text)) => Some(text.clone()),
            _ => None,
        })
        .take(QUOTED_MESSAGES)
        .collect();
    let link = context.console_url.as_ref();

    let mut text = format!("{intro}\n\n{}\n", texts.visitor_wrote);
    let mut html = format!("<p>{}</p>\n<p>{}</p>\n", escape(intro), escape(texts.visitor_wrote));
    if quoted.is_empty() {
        text.push_str(&format!("  {}\n", texts.no_message_yet));
        html.push_str(&format!("<p><em>{}</em></p>\n", escape(texts.no_message_yet)));
    }
    for line in &quoted {
        text.push_str(&format!("> {}\n", line.replace('\n', "\n> ")));
        html.push_str(&format!("<blockquote>{}</blockquote>\n", escape(line).replace('\n', "<br>")));
    }
    if let Some(link) = link {
        text.push_str(&format!("\n{}: {link}\n", texts.open_console));
        html.push_str(&format!("<p><a href=\"{}\">{}</a></p>\n", escape(link), escape(texts.open_console)));
    }
    text.push_str(&format!("\n-- \n{}\n", texts.automatic));
    html.push_str(&format!("<p style=\"color:#666\">{}</p>\n", escape(texts.automatic)));
    (text, html)
}

/// `text` safe inside HTML: visitors write whatever they like.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_visitor_wrote_is_escaped_in_the_html_part() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
