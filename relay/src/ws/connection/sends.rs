//! Sends and what answers them: a message handed to the store and
//! acknowledged after its commit, refusals, receipt marks, typing.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use kefu_protocol::frame::{
    Accepted, Ack, Author, Body, ConversationStatus, Deferred, ErrorCode, ErrorFrame, Files, MAX_FILES_PER_MESSAGE,
    Receipt, Rejected, Send, Typing, TypingNotice,
};
use kefu_protocol::ids::ConversationId;
use kefu_protocol::{ClientFrame, DEFAULT_LIMITS, ServerFrame};

use super::{Connection, End, Peer};
use crate::store::{self, AppendTicket, NewMessage, Unusable, WrittenWith};
use crate::team;

/// The refusal of a first message out of hours without an address.
const NO_CHAT_WITHOUT_EMAIL: &str =
    "out of hours this site answers by email: give an email address with your first message";

impl Connection {
    /// Settles the sends already handed to the store before the
    /// connection ends. Every commit is passed on to the conversation's
    /// followers even when its sender is gone: nothing else would tell
    /// them, and the sender's resend is a duplicate that publishes
    /// nothing. While the client can still hear (a flood, a protocol
    /// error, a restart, not a broken link), it is also told which of
    /// its messages were kept, so it resends only the others.
    pub(super) async fn settle_appends(&mut self, answer: bool) {
        let mut answering = answer;
        while let Some(appended) = next_append(&mut self.appends).await {
            let Ok(appended) = appended else {
                continue; // not stored: the client resends it
            };
            self.committed(&appended);
            if answering {
                answering = self.answer(&appended).await.is_ok();
            }
        }
    }

    pub(super) fn appends_in_flight(&self) -> usize {
        self.appends.as_ref().map_or(0, FuturesOrdered::len)
    }

    /// Refuses a frame over the frame limit without acting on it. A send
    /// is deferred, not rejected: the client keeps it and sends it again
    /// after `retry_after`, with everything it sent after it, which this
    /// connection sets aside until then (`set_aside`). Anything else gets
    /// an error.
    pub(super) async fn rate_limited(&mut self, frame: &ClientFrame, retry_after: Duration) -> Result<(), End> {
        if let ClientFrame::Send(Send { conversation, client_id, .. }) = frame {
            let (conversation, client_id) = (*conversation, *client_id);
            self.deferred = Some(client_id);
            // Rounded up: a client that comes back on the dot finds room.
            let retry_after_ms = u32::try_from(retry_after.as_micros().div_ceil(1000)).unwrap_or(u32::MAX).max(1);
            let deferred = Deferred { conversation, client_id, retry_after_ms };
            return self.write(&ServerFrame::Deferred(deferred)).await;
        }
        let text = format!(
            "more than {} frames a second (after a burst of {}); slow down",
            self.state.config.frames_per_second, self.state.config.frame_burst
        );
        self.write(&ServerFrame::Error(ErrorFrame { code: ErrorCode::RateLimited, text, reconnect: true })).await
    }

    /// Whether a send comes after a deferred one that has not come back:
    /// storing it would put it before the deferred one, so it is set aside
    /// unanswered, and the client sends it again after the deferred one.
    /// Set-aside sends are not charged to the frame budget: like a
    /// heartbeat answer they cost no store work and no answer, and a client
    /// that had them on the wire before it heard `Deferred` is no flood.
    pub(super) fn set_aside(&mut self, send: &Send) -> bool {
        match self.deferred {
            Some(deferred) if deferred == send.client_id => {
                self.deferred = None;
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    pub(super) async fn on_send(&mut self, send: Send) -> Result<(), End> {
        self.recheck_agent().await?;
        let Send { conversation, client_id, body } = send;
        let refusal = if body.len_bytes() > DEFAULT_LIMITS.max_body_bytes as usize {
            Some((ErrorCode::BodyTooLarge, format!("messages are limited to {} bytes", DEFAULT_LIMITS.max_body_bytes)))
        } else if let Some(reason) = self.may_not_send(&body) {
            Some((ErrorCode::Forbidden, reason.to_owned()))
        } else if is_blank(&body) {
            Some((ErrorCode::Malformed, "empty message".to_owned()))
        } else if self.access(conversation).await?.is_none() {
            Some((ErrorCode::Forbidden, format!("conversation {conversation} does not exist or is not yours")))
        } else if self.needs_email_first().await? {
            Some((ErrorCode::Forbidden, NO_CHAT_WITHOUT_EMAIL.to_owned()))
        } else {
            None
        };
        if let Some((code, text)) = refusal {
            return self.write(&ServerFrame::Rejected(Rejected { conversation, client_id, code, text })).await;
        }
        let (site, author) = (self.peer.site(), self.peer.author());
        let body = match body {
            Body::Files(files) => match self.files_to_send(conversation, files).await? {
                Ok(files) => Body::Files(files),
                Err(text) => {
                    let code = ErrorCode::Forbidden;
                    return self.write(&ServerFrame::Rejected(Rejected { conversation, client_id, code, text })).await;
                }
            },
            body => body,
        };
        if self.unsaved.is_some() {
            self.save_visitor().await?;
        }
        // An agent's reply may need mailing to a visitor who left: queued
        // with it, composed (or skipped) when the site's delay is over.
        let mail = match (author, &body) {
            (Author::Agent(_), Body::Text(_) | Body::Files(_)) => self
                .state
                .mail
                .visitor_replies_mail(&self.state.store, site, conversation)
                .await
                .map_err(|e| End::store(&e))?,
            _ => None,
        };
        let with = mail.map(|mail| Box::new(WrittenWith::Mail(mail)));
        let message = NewMessage { site, conversation, client_id: Some(client_id), author, body, with };
        let ticket = self.state.store.submit(message).await.map_err(|e| End::store(&e))?;
        self.appends.get_or_insert_with(FuturesOrdered::new).push_back(ticket);
        Ok(())
    }

    /// The files a send names, as the store has them (a sender's own
    /// claims about them are dropped), or why it may not send them.
    async fn files_to_send(
        &mut self,
        conversation: ConversationId,
        files: Files,
    ) -> Result<Result<Files, String>, End> {
        if files.files.is_empty() || files.files.len() > MAX_FILES_PER_MESSAGE {
            return Ok(Err(format!("a message carries 1 to {MAX_FILES_PER_MESSAGE} files")));
        }
        let store = &self.state.store;
        let (site, author) = (self.peer.site(), self.peer.author());
        let found = store.files_to_send(site, author, conversation, &files.files).await.map_err(|e| End::store(&e))?;
        Ok(match found {
            Ok(found) => Ok(Files { caption: files.caption, files: found }),
            Err(Unusable::Unknown(id)) => Err(format!("file {id} was not uploaded here, or was removed")),
            Err(Unusable::NotYours(id)) => Err(format!("file {id} was uploaded by someone else or for another chat")),
        })
    }

    /// Whether this send would open a visitor's conversation out of the
    /// hours of a site that then takes only the offline form, with no
    /// address to answer at. The widget asks for one first; a client that
    /// skips the ask (an old widget, a hand-made one) is refused here.
    /// Only the first message: a conversation once open goes on.
    async fn needs_email_first(&mut self) -> Result<bool, End> {
        let (Some(unsaved), Peer::Visitor { site, .. }) = (&self.unsaved, &self.peer) else { return Ok(false) };
        if unsaved.email().is_some() {
            return Ok(false);
        }
        let site = *site;
        let hours = self.state.store.site_hours(site).await.map_err(|e| End::store(&e))?;
        Ok(hours.only_offline_form_at(crate::hours::from_millis(store::now().0)))
    }

    /// Why this peer may not send a body of this kind, if it may not.
    fn may_not_send(&self, body: &Body) -> Option<&'static str> {
        match (body, &self.peer) {
            (Body::Text(_) | Body::Files(_), _) | (Body::Note(_), Peer::Agent { .. }) => None,
            (Body::Note(_), Peer::Visitor { .. }) => Some("private notes are for agents"),
            (Body::Event(_), _) => Some("system lines are written by the relay"),
        }
    }

    pub(super) async fn on_appended(&mut self, appended: Result<store::Appended, store::Error>) -> Result<(), End> {
        let appended = appended.map_err(|e| End::store(&e))?;
        self.committed(&appended);
        self.answer(&appended).await
    }

    /// What a commit causes beyond its sender: the fan-out, and the
    /// reopening or assignment a visitor's message may need.
    fn committed(&self, appended: &store::Appended) {
        let Some(conversation) = &appended.conversation else {
            return;
        };
        team::publish(&self.state, conversation.site, appended);
        // Only a closed or unassigned chat can need reopening or an
        // agent: most visitor messages skip the task entirely.
        let needs_team = conversation.status == ConversationStatus::Closed || conversation.assignee.is_none();
        if matches!(self.peer, Peer::Visitor { .. }) && needs_team {
            let (state, conversation) = (self.state.clone(), conversation.clone());
            self.state.connections.spawn(async move {
                if let Err(error) = team::visitor_wrote(&state, &conversation).await {
                    tracing::error!(%error, "could not reopen or assign after a visitor's message");
                }
            });
        }
    }

    /// Tells the sender its message was stored.
    async fn answer(&mut self, appended: &store::Appended) -> Result<(), End> {
        let message = &appended.message;
        let Some(client_id) = message.client_id else {
            return Ok(());
        };
        self.write(&ServerFrame::Accepted(Accepted {
            conversation: message.conversation,
            client_id,
            id: message.id,
            seq: message.seq,
            sent_at: message.sent_at,
        }))
        .await
    }

    pub(super) async fn on_ack(&mut self, ack: Ack) -> Result<(), End> {
        if self.access(ack.conversation).await?.is_none() {
            return self.forbidden(ack.conversation).await;
        }
        let by = self.peer.author();
        let recorded = self
            .state
            .store
            .record_receipt(self.peer.site(), ack.conversation, by, ack.kind, ack.up_to)
            .await
            .map_err(|e| End::store(&e))?;
        if let Some(up_to) = recorded {
            let receipt = Receipt { conversation: ack.conversation, by, kind: ack.kind, up_to };
            self.state.hub.publish(ack.conversation, ServerFrame::Receipt(receipt));
        }
        Ok(())
    }

    pub(super) async fn on_typing(&mut self, typing: Typing) -> Result<(), End> {
        let Typing { conversation, active, draft } = typing;
        let Some(access) = self.access(conversation).await? else {
            return self.forbidden(conversation).await;
        };
        let draft = match self.peer {
            // Only visitors' drafts are previewed, only to agents (visitors
            // never follow other visitors' conversations), and only where
            // the site allows it.
            Peer::Visitor { .. } if active && draft.is_some() => {
                let settings = self.state.store.site_settings(access.site).await.map_err(|e| End::store(&e))?;
                draft.filter(|d| settings.draft_preview && d.len() <= DEFAULT_LIMITS.max_body_bytes as usize)
            }
            _ => None,
        };
        let notice = TypingNotice { conversation, by: self.peer.author(), active, draft };
        self.state.hub.publish(conversation, ServerFrame::Typing(notice));
        Ok(())
    }
}

/// The next answer from the store, in the order of the sends; `None` if
/// no send waits for one.
pub(super) async fn next_append(
    appends: &mut Option<FuturesOrdered<AppendTicket>>,
) -> Option<Result<store::Appended, store::Error>> {
    appends.as_mut()?.next().await
}

fn is_blank(body: &Body) -> bool {
    match body {
        Body::Text(text) | Body::Note(text) => text.trim().is_empty(),
        Body::Event(_) | Body::Files(_) => false,
    }
}
