//! A follow-up mail as the store has it at the moment it is sent: who it
//! goes to, what it says (replies, a transcript, a survey), and its
//! unsubscribe link. Read at
//! send time rather than when queued, so replies that arrive during the
//! batch delay go into the same mail and replies read meanwhile stay out.

use std::collections::HashMap;

use kefu_protocol::frame::{Author, Body, ConversationStatus, Message};
use kefu_protocol::ids::{AgentId, ConversationId, Seq, SiteId, VisitorId};

use super::render::{self, Context, Lang, Line, Rendered, Speaker};
use super::{links, survey_links};
use crate::store::{self, Store};

/// Most messages a transcript carries: a conversation longer than that is
/// cut at its first this many, and says so by its length.
const TRANSCRIPT_MESSAGES: u32 = 2000;

/// A follow-up mail ready for the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpMail {
    pub to: String,
    pub lang: Lang,
    pub rendered: Rendered,
    /// The one-click unsubscribe URL, for `List-Unsubscribe`.
    pub unsubscribe: String,
    /// The conversation and its last seq the mail carries, for
    /// [`Store::mark_mailed`] once it is sent.
    pub conversation: ConversationId,
    pub through: Seq,
}

/// Why no mail goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// The visitor gave no address.
    NoAddress,
    /// It unsubscribed.
    Unsubscribed,
    /// Nothing it has not read or been mailed (a reply mail), or no
    /// conversation (a transcript), or no closed chat (a survey).
    NothingToSay,
    /// The close a survey is about was rated already.
    Rated,
}

/// The mail of the replies in `conversation` its visitor has not read
/// and not been mailed; `base` is the relay's public origin.
pub async fn replies(
    store: &Store,
    base: &str,
    site: SiteId,
    conversation: ConversationId,
) -> Result<Result<FollowUpMail, Skipped>, store::Error> {
    let Some(visitor) = visitor_of(store, site, conversation).await? else { return Ok(Err(Skipped::NothingToSay)) };
    if store.visitor_unsubscribed(site, visitor).await? {
        return Ok(Err(Skipped::Unsubscribed));
    }
    let messages = store.unmailed_replies(site, conversation).await?;
    if messages.is_empty() {
        return Ok(Err(Skipped::NothingToSay));
    }
    mail(store, base, site, visitor, conversation, &messages, render::replies).await
}

/// The mail of the whole of `conversation`, for its visitor: asked for by
/// the visitor or sent by an agent, so it goes even to a visitor that
/// unsubscribed from follow-ups (it is not one).
pub async fn transcript(
    store: &Store,
    base: &str,
    site: SiteId,
    conversation: ConversationId,
) -> Result<Result<FollowUpMail, Skipped>, store::Error> {
    let Some(visitor) = visitor_of(store, site, conversation).await? else { return Ok(Err(Skipped::NothingToSay)) };
    let messages = store.messages_after(site, conversation, Seq::ZERO, TRANSCRIPT_MESSAGES).await?;
    mail(store, base, site, visitor, conversation, &messages, render::transcript).await
}

/// The survey mail of `conversation`'s newest close: a link for each
/// score. Skipped once the visitor rated it (in the widget, while the
/// mail waited), the chat was reopened, or the site stopped asking.
pub async fn survey(
    store: &Store,
    base: &str,
    site: SiteId,
    conversation: ConversationId,
) -> Result<Result<FollowUpMail, Skipped>, store::Error> {
    let Some(found) = store.conversation(site, conversation).await? else { return Ok(Err(Skipped::NothingToSay)) };
    let survey = store.site_forms(site).await?.survey;
    if found.status != ConversationStatus::Closed || !survey.enabled {
        return Ok(Err(Skipped::NothingToSay));
    }
    let close = store.last_close(site, conversation).await?;
    let Some(closed) = close.closed.filter(|_| close.awaits_rating(survey.ask_again)) else {
        return Ok(Err(Skipped::Rated));
    };
    if store.visitor_unsubscribed(site, found.visitor).await? {
        return Ok(Err(Skipped::Unsubscribed));
    }
    let Some(site_row) = store.site(site).await? else { return Ok(Err(Skipped::NothingToSay)) };
    let links = survey_links(store, base, site, &site_row.key, conversation, closed).await?;
    let render = move |context: &Context<'_>, _: &[Line]| render::survey(context, &links);
    mail(store, base, site, found.visitor, conversation, &[], render).await
}

async fn visitor_of(
    store: &Store,
    site: SiteId,
    conversation: ConversationId,
) -> Result<Option<VisitorId>, store::Error> {
    let receipts = store.conversation(site, conversation).await?;
    Ok(receipts.map(|conversation| conversation.visitor))
}

async fn mail(
    store: &Store,
    base: &str,
    site: SiteId,
    visitor: VisitorId,
    conversation: ConversationId,
    messages: &[Message],
    render: impl FnOnce(&Context<'_>, &[Line]) -> Rendered,
) -> Result<Result<FollowUpMail, Skipped>, store::Error> {
    let Some(to) = store.visitor_email(site, visitor).await? else { return Ok(Err(Skipped::NoAddress)) };
    let Some(site_row) = store.site(site).await? else { return Ok(Err(Skipped::NothingToSay)) };
    let language = store.visitor_client(site, visitor).await?.and_then(|client| client.language);
    let lang = Lang::pick(language.as_deref());
    let links = links(store, base, site, &site_row.key, visitor, lang).await?;
    let lines = lines(store, site, messages).await?;
    let through = messages.iter().map(|message| message.seq).max().unwrap_or(Seq::ZERO);
    let context =
        Context { lang, site_name: &site_row.name, resume_url: &links.resume, unsubscribe_url: &links.unsubscribe };
    let rendered = render(&context, &lines);
    Ok(Ok(FollowUpMail { to, lang, rendered, unsubscribe: links.unsubscribe, conversation, through }))
}

/// The messages a visitor may see, as mail lines with the agents' names.
async fn lines(store: &Store, site: SiteId, messages: &[Message]) -> Result<Vec<Line>, store::Error> {
    let mut names: HashMap<AgentId, Option<String>> = HashMap::new();
    let mut lines = Vec::with_capacity(messages.len());
    for message in messages {
        // Files are named by a line each, as older clients see them.
        let body = kefu_protocol::compat::body_for(&message.body, 1);
        let Body::Text(text) = &*body else { continue };
        let speaker = match message.author {
            Author::Visitor(_) => Speaker::Visitor,
            Author::Agent(agent) => {
                let name = match names.get(&agent) {
                    Some(name) => name.clone(),
                    None => {
                        let name = store.site_agent(site, agent).await?.map(|agent| agent.name);
                        names.insert(agent, name.clone());
                        name
                    }
                };
                Speaker::Agent(name)
            }
            Author::System => continue,
        };
        lines.push(Line { speaker, text: text.clone(), at: message.sent_at });
    }
    Ok(lines)
}
