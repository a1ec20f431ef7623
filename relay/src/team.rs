//! Who answers which conversation: taking, transferring, closing and
//! reopening chats, auto-assignment, and the roster agents see.
//!
//! Auto-assignment gives the oldest waiting conversation to the online
//! agent under capacity who was assigned least recently (round robin), and
//! repeats while both a waiting chat and such an agent exist. It runs when
//! something can make a match: a visitor starts waiting, an agent comes
//! online, or an agent's load drops. Every assignment is a compare-and-set
//! in the store, so an agent taking a chat by hand at the same moment
//! cannot end up sharing it; assignment runs one site pass at a time so
//! two passes cannot both fill an agent's last slot (see
//! [`crate::dispatcher`]).
//!
//! Out of business hours (see [`crate::hours`]) an agent is given chats,
//! and counts for visitors as someone there, only if it said `Online`
//! after the site closed. Agents' consoles remember Online and say it on
//! every connect, and a console left open overnight keeps it: that Online
//! is the afternoon's, not someone choosing to answer at night. Saying it
//! again out of hours (the Online button, or a console that connects out
//! of hours) is. [`keep_hours`] follows each site's openings and closings
//! and tells the hub, so visitors' availability changes on time.
//!
//! Every change becomes a system line in the conversation, published like
//! any message, plus a `Conversation` update to the site's agents.

use kefu_protocol::ServerFrame;
use kefu_protocol::frame::{
    AgentRef, AgentStatus, Author, Body, Change, ConversationEvent, ConversationStatus, Presence, Roster, TeamMember,
};
use kefu_protocol::ids::{AgentId, ConversationId, SiteId};
use std::sync::Arc;
use std::time::Duration;

use crate::hours;
use crate::hub::{AfterHours, Audience, Target};
use crate::state::AppState;
use crate::store::{self, Appended, Conversation, Member, NewMessage, WrittenWith};

/// The agent asking for a change.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: AgentId,
    pub site: SiteId,
    pub name: String,
    pub admin: bool,
}

impl Actor {
    fn named(&self) -> AgentRef {
        AgentRef { id: self.id, name: self.name.clone() }
    }
}

/// Why a change was not made; the text is for the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Someone changed it first, or the change does not fit its state.
    Conflict(String),
    /// The agent may not make it.
    Forbidden(String),
}

/// Carries out an agent's change of a conversation of its site.
pub async fn change(
    state: &AppState,
    actor: &Actor,
    conversation: ConversationId,
    change: Change,
) -> Result<Result<(), Refusal>, store::Error> {
    let store = &state.store;
    let site = actor.site;
    let Some(current) = store.conversation(site, conversation).await? else {
        return Ok(Err(Refusal::Forbidden(format!("conversation {conversation} does not exist"))));
    };
    match change {
        Change::Take => {
            let Some(taken) = store.assign_conversation(site, conversation, None, actor.id).await? else {
                return Ok(Err(taken_by_someone(state, site, &current).await?));
            };
            let event = ConversationEvent::Assigned { to: actor.named(), by: Some(actor.named()) };
            system_line(state, &taken, event).await?;
        }
        Change::Transfer { to, note } => {
            let Some(from) = current.assignee else {
                return Ok(Err(Refusal::Conflict("take the chat before transferring it".into())));
            };
            if from != actor.id && !actor.admin {
                return Ok(Err(Refusal::Forbidden("only the assigned agent or an admin can transfer a chat".into())));
            }
            if to == from {
                return Ok(Err(Refusal::Conflict("the chat is already with that agent".into())));
            }
            let Some(target) = store.member(site, to).await? else {
                return Ok(Err(Refusal::Forbidden(format!("no active agent {to} on this site"))));
            };
            let Some(from_member) = store.member(site, from).await? else {
                return Ok(Err(Refusal::Conflict("the assigned agent is gone; take the chat instead".into())));
            };
            let Some(moved) = store.assign_conversation(site, conversation, Some(from), to).await? else {
                return Ok(Err(Refusal::Conflict("the chat changed hands meanwhile; look again".into())));
            };
            let event = ConversationEvent::Transferred {
                from: AgentRef { id: from_member.id, name: from_member.name },
                to: AgentRef { id: target.id, name: target.name },
            };
            system_line(state, &moved, event).await?;
            let note = note.trim();
            if !note.is_empty() {
                let note = NewMessage {
                    site,
                    conversation,
                    client_id: None,
                    author: Author::Agent(actor.id),
                    body: Body::Note(note.to_owned()),
                    with: None,
                };
                publish(state, site, &store.append(note).await?);
            }
            tokio::spawn(dispatch_logged(state.clone(), site));
        }
        Change::Close => {
            let Some(closed) = store.close_conversation(site, conversation).await? else {
                return Ok(Err(Refusal::Conflict("the chat is already closed".into())));
            };
            // The survey mail, if the visitor is to get one, is queued in
            // the line's transaction: no close without it, nor it twice.
            let survey = state.mail.survey_mail(store, site, conversation).await?;
            let mailed = survey.is_some();
            let with = survey.map(|mail| Box::new(WrittenWith::Mail(mail)));
            system_line_with(state, &closed, ConversationEvent::Closed { by: actor.named() }, with).await?;
            if mailed {
                state.mail.wake();
            }
            tokio::spawn(dispatch_logged(state.clone(), site));
        }
        Change::Reopen => {
            let Some(reopened) = store.reopen_conversation(site, conversation, Some(actor.id)).await? else {
                return Ok(Err(Refusal::Conflict("the chat is already open".into())));
            };
            system_line(state, &reopened, ConversationEvent::Reopened { by: Some(actor.named()) }).await?;
        }
    }
    publish_roster(state, site).await?;
    Ok(Ok(()))
}

async fn taken_by_someone(state: &AppState, site: SiteId, current: &Conversation) -> Result<Refusal, store::Error> {
    if current.status == ConversationStatus::Closed {
        return Ok(Refusal::Conflict("the chat is closed; reopen it instead".into()));
    }
    let owner = match current.assignee {
        Some(agent) => state.store.member(site, agent).await?.map_or_else(|| format!("agent {agent}"), |m| m.name),
        None => "someone".into(),
    };
    Ok(Refusal::Conflict(format!("{owner} already has this chat")))
}

/// An agent's connection announced its status (already noted in the hub);
/// the choice is also kept as the agent's preference.
pub async fn set_status(
    state: &AppState,
    site: SiteId,
    agent: AgentId,
    status: AgentStatus,
) -> Result<(), store::Error> {
    state.store.set_agent_status(site, agent, status).await?;
    publish_roster(state, site).await?;
    if status == AgentStatus::Online {
        dispatch(state, site).await?;
    }
    Ok(())
}

/// A visitor's message was stored: a visitor writing into a closed
/// conversation opens it again (back to the queue), and a waiting visitor
/// with nobody assigned is a chance to assign.
pub async fn visitor_wrote(state: &AppState, conversation: &Conversation) -> Result<(), store::Error> {
    if conversation.status == ConversationStatus::Closed {
        if let Some(reopened) = state.store.reopen_conversation(conversation.site, conversation.id, None).await? {
            system_line(state, &reopened, ConversationEvent::Reopened { by: None }).await?;
        }
    } else if conversation.assignee.is_some() {
        return Ok(());
    }
    dispatch(state, conversation.site).await
}

/// Assigns waiting conversations to online agents with room, oldest
/// waiting first, round robin among the agents.
pub async fn dispatch(state: &AppState, site: SiteId) -> Result<(), store::Error> {
    // The common case under load, decided in memory: nobody to give to.
    if !state.hub.presence(site).values().any(|status| *status == AgentStatus::Online) {
        return Ok(());
    }
    state.dispatcher.one_at_a_time(site, Box::pin(assign_waiting(state, site))).await
}

async fn assign_waiting(state: &AppState, site: SiteId) -> Result<(), store::Error> {
    let (closed, _) = standing(state, site).await?;
    let mut assigned_any = false;
    while let Some(waiting) = state.store.next_in_queue(site).await? {
        let present = state.hub.presence(site);
        let after_closing = closed.map(|closed| state.hub.online_since_closing(site, closed));
        let takes_chats = |agent: AgentId| match &after_closing {
            None => present.get(&agent) == Some(&AgentStatus::Online),
            Some(online) => online.contains(&agent),
        };
        let team = state.store.team(site).await?;
        let Some(agent) = team
            .into_iter()
            .filter(|m| m.open < m.capacity && takes_chats(m.id))
            .min_by_key(|m| (m.last_assigned_at, m.id))
        else {
            break;
        };
        // Lost only to an agent taking it by hand just now: look again.
        if let Some(assigned) = state.store.assign_conversation(site, waiting.id, None, agent.id).await? {
            let to = AgentRef { id: agent.id, name: agent.name };
            system_line(state, &assigned, ConversationEvent::Assigned { to, by: None }).await?;
            assigned_any = true;
        }
    }
    if assigned_any {
        publish_roster(state, site).await?;
    }
    Ok(())
}

/// Where `site` stands under its business hours now, told to the hub:
/// when it closed if it is out of hours now (ms since 1970; 0 if it never
/// was open), and when that changes next.
async fn standing(state: &AppState, site: SiteId) -> Result<(Option<u64>, Option<u64>), store::Error> {
    let Some(schedule) = state.store.site_hours(site).await?.schedule() else {
        state.hub.set_after_hours(site, None);
        return Ok((None, None));
    };
    let now = hours::from_millis(store::now().0);
    let openings = schedule.openings(now);
    if openings.open_now {
        state.hub.set_after_hours(site, None);
        return Ok((None, openings.next_closing.map(hours::millis)));
    }
    let closed = schedule.last_closing(now).map_or(0, hours::millis);
    let opens_at = openings.next_opening.map(hours::millis);
    state.hub.set_after_hours(site, Some(AfterHours { closed, opens_at }));
    Ok((Some(closed), opens_at))
}

/// A site's hours were saved on this node: here and, over the cluster, on
/// every other node.
pub async fn hours_saved(state: &AppState, site: SiteId) -> Result<(), store::Error> {
    state.hub.hours_changed_elsewhere(site);
    hours_changed(state, site).await
}

/// A site's hours were saved (here or on another node): who counts as
/// there may have changed, and [`keep_hours`] must look at the new ones.
pub async fn hours_changed(state: &AppState, site: SiteId) -> Result<(), store::Error> {
    standing(state, site).await?;
    state.hours_changed.notify_one();
    dispatch(state, site).await
}

/// The longest [`keep_hours`] sleeps: hours saved on another node while
/// Redis was away are picked up within it.
const HOURS_LOOK_AGAIN: Duration = Duration::from_secs(300);

/// Runs until shutdown: at each site's opening and closing tells the hub
/// (visitors learn whether someone is there) and, at an opening, assigns
/// what waited overnight to whoever is Online.
pub async fn keep_hours(state: AppState) {
    loop {
        let next = match hours_pass(&state).await {
            Ok(next) => next,
            Err(error) => {
                tracing::error!(%error, "business hours pass failed");
                None
            }
        };
        let wait = next.map_or(HOURS_LOOK_AGAIN, |at| Duration::from_millis(at.saturating_sub(store::now().0)));
        tokio::select! {
            () = tokio::time::sleep(wait.min(HOURS_LOOK_AGAIN)) => {}
            () = state.hours_changed.notified() => {}
            () = state.shutdown.cancelled() => return,
        }
    }
}

/// Brings every site with hours up to date; the next change of any.
async fn hours_pass(state: &AppState) -> Result<Option<u64>, store::Error> {
    let mut next: Option<u64> = None;
    for site in state.store.sites_with_hours().await? {
        let (closed, change) = standing(state, site).await?;
        if closed.is_none() {
            dispatch(state, site).await?;
        }
        next = match (next, change) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(next)
}

/// `dispatch` for a background task: failures are logged, and the next
/// trigger runs it again.
pub async fn dispatch_logged(state: AppState, site: SiteId) {
    if let Err(error) = dispatch(&state, site).await {
        tracing::error!(%error, ?site, "assignment pass failed");
    }
}

/// Writes a system line and publishes it with the conversation's state.
pub(crate) async fn system_line(
    state: &AppState,
    conversation: &Conversation,
    event: ConversationEvent,
) -> Result<(), store::Error> {
    system_line_with(state, conversation, event, None).await
}

/// [`system_line`], written with `with` in its transaction.
async fn system_line_with(
    state: &AppState,
    conversation: &Conversation,
    event: ConversationEvent,
    with: Option<Box<WrittenWith>>,
) -> Result<(), store::Error> {
    let line = NewMessage {
        site: conversation.site,
        conversation: conversation.id,
        client_id: None,
        author: Author::System,
        body: Body::Event(event),
        with,
    };
    let appended = state.store.append(line).await?;
    publish(state, conversation.site, &appended);
    Ok(())
}

/// Fans a freshly stored message out to the conversation's followers and
/// its new state to the site's agents.
pub fn publish(state: &AppState, site: SiteId, appended: &Appended) {
    if !appended.fresh {
        return;
    }
    state.hub.publish(appended.message.conversation, ServerFrame::Message(appended.message.clone()));
    if let Some(conversation) = &appended.conversation {
        state.hub.publish_site(site, Audience::Agents, ServerFrame::Conversation(conversation.update()));
    }
}

/// The roster of `site` as it is now.
pub async fn roster(state: &AppState, site: SiteId) -> Result<Roster, store::Error> {
    let present = state.hub.presence(site);
    let team = state.store.team(site).await?;
    let agents = team
        .into_iter()
        .map(|member: Member| {
            let presence = match present.get(&member.id) {
                None => Presence::Offline,
                Some(AgentStatus::Online) => Presence::Online,
                Some(AgentStatus::Away) => Presence::Away,
            };
            TeamMember { agent: member.id, name: member.name, presence, open: member.open, capacity: member.capacity }
        })
        .collect();
    Ok(Roster { agents })
}

/// Tells the site's agents who is there and how loaded.
pub async fn publish_roster(state: &AppState, site: SiteId) -> Result<(), store::Error> {
    let roster = roster(state, site).await?;
    state.hub.publish_site(site, Audience::Agents, ServerFrame::Roster(roster));
    Ok(())
}

/// Tells the site's agents on this node only: when another node's agents
/// changed, each node sends its own agents the roster as it sees it.
pub async fn publish_roster_here(state: &AppState, site: SiteId) -> Result<(), store::Error> {
    let roster = roster(state, site).await?;
    state.hub.deliver_here(Target::Site(site, Audience::Agents), Arc::new(ServerFrame::Roster(roster)));
    Ok(())
}
