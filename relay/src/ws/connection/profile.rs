//! What a visitor reports of itself: pages, identity, attributes, its
//! rating of a closed chat, and its ask for the chat's transcript.

use kefu_protocol::ServerFrame;
use kefu_protocol::codec::clip_bytes;
use kefu_protocol::frame::{
    Attribute, Attributes, ErrorCode, ErrorFrame, Identify, MailTranscript, Rate, TranscriptMailed, Visit,
};
use kefu_protocol::ids::{SiteId, VisitorId};

use super::{Connection, End, Peer, handshake};
use crate::follow_up::{self, TranscriptRefused};
use crate::hub::Audience;
use crate::identity;
use crate::store;
use crate::survey;

/// What the relay keeps of visitor-reported text; longer values are cut
/// (at a character boundary), not refused: a long URL is no attack.
mod profile_limits {
    pub(super) const URL: usize = 2048;
    pub(super) const TITLE: usize = 512;
    pub(super) const FIELD: usize = 256;
    pub(super) const VALUE: usize = 1024;
    pub(super) const ATTRIBUTES: usize = 50;
    /// Pages held for a visitor that has not written yet.
    pub(super) const HELD_VISITS: usize = 10;
}

impl Connection {
    /// The visitor sending profile frames, or an error for anyone else.
    async fn reporting_visitor(&mut self) -> Result<Option<(VisitorId, SiteId)>, End> {
        if let Peer::Visitor { visitor, site, .. } = self.peer {
            return Ok(Some((visitor, site)));
        }
        self.write(&ServerFrame::Error(ErrorFrame {
            code: ErrorCode::Forbidden,
            text: "only visitors report pages, identity and attributes".into(),
            reconnect: true,
        }))
        .await?;
        Ok(None)
    }

    /// Tells the site's agents, and this visitor, what is known of it now.
    async fn publish_profile(&mut self, visitor: VisitorId, site: SiteId) -> Result<(), End> {
        let profile = self.state.store.visitor_profile(site, visitor).await.map_err(|e| End::store(&e))?;
        self.state.hub.publish_site(site, Audience::Agents, ServerFrame::Visitor(profile.clone()));
        self.write(&ServerFrame::Visitor(profile)).await
    }

    /// Makes the rows of a visitor writing for the first time, with what
    /// it reported of itself until now, so its first message reaches
    /// agents with its pages and identity known.
    pub(super) async fn save_visitor(&mut self) -> Result<(), End> {
        let (Some(unsaved), Peer::Visitor { visitor, site, conversation }) = (self.unsaved.take(), &self.peer) else {
            return Ok(());
        };
        let (visitor, site, promised) = (*visitor, *site, *conversation);
        let state = &self.state;
        // The agents' notifications, queued with the conversation they
        // tell of (only if this save makes it).
        let agents_online = state.hub.agents_online(site);
        let mails = state
            .mail
            .new_conversation_mails(&state.store, site, promised, agents_online)
            .await
            .map_err(|e| End::store(&e))?;
        let mails: Vec<store::NewMail<'_>> = mails.iter().map(|mail| mail.as_new()).collect();
        let new = store::NewVisitor {
            id: visitor,
            conversation: promised,
            token_hash: &unsaved.token_hash,
            user_agent: unsaved.user_agent.as_deref(),
            language: unsaved.language.as_deref(),
            mail: &mails,
        };
        let saved = state.store.save_visitor(site, &new).await.map_err(|e| End::store(&e))?;
        if !mails.is_empty() {
            state.mail.wake();
        }
        if saved.id != promised {
            // Only if the visitor got a conversation some other way in the
            // meantime; it reconnects and is welcomed into that one.
            tracing::warn!(?visitor, ?promised, actual = ?saved.id, "a saved visitor has another conversation");
            return Err(End::store(&store::Error::Conflict("the visitor's conversation")));
        }
        let handshake::Unsaved { visits, identify, attributes, .. } = *unsaved;
        let held_any = !visits.is_empty() || identify.is_some() || !attributes.is_empty();
        let store = &self.state.store;
        for visit in &visits {
            store.record_visit(site, visitor, visit).await.map_err(|e| End::store(&e))?;
        }
        if !attributes.is_empty() {
            store.set_visitor_attributes(site, visitor, &attributes).await.map_err(|e| End::store(&e))?;
        }
        if let Some(identify) = identify {
            self.record_identity(visitor, site, identify).await?;
        }
        // Announced once, with everything.
        if held_any {
            self.publish_profile(visitor, site).await?;
        }
        Ok(())
    }

    pub(super) async fn on_visit(&mut self, visit: Visit) -> Result<(), End> {
        let Some((visitor, site)) = self.reporting_visitor().await? else { return Ok(()) };
        let visit = Visit {
            url: clip_bytes(visit.url, profile_limits::URL),
            title: clip_bytes(visit.title, profile_limits::TITLE),
            referrer: visit.referrer.map(|r| clip_bytes(r, profile_limits::URL)),
        };
        if let Some(unsaved) = &mut self.unsaved {
            // The pages before the first message are what an agent most
            // wants to see; a few are enough.
            if unsaved.visits.len() == profile_limits::HELD_VISITS {
                unsaved.visits.remove(0);
            }
            unsaved.visits.push(visit);
            return Ok(());
        }
        self.state.store.record_visit(site, visitor, &visit).await.map_err(|e| End::store(&e))?;
        self.publish_profile(visitor, site).await
    }

    /// Records who the site says the visitor is, verified by a signed
    /// token or the plain hash (`crate::identity`). The session repeats
    /// the same `Identify` after every welcome: when it changes nothing, it
    /// is neither written nor announced again.
    pub(super) async fn on_identify(&mut self, identify: Identify) -> Result<(), End> {
        let Some((visitor, site)) = self.reporting_visitor().await? else { return Ok(()) };
        if let Some(unsaved) = &mut self.unsaved {
            unsaved.identify = Some(identify);
            return Ok(());
        }
        if self.record_identity(visitor, site, identify).await? {
            self.publish_profile(visitor, site).await?;
        }
        Ok(())
    }

    /// Stores the identity `identify` vouches for; whether that changed
    /// what was stored.
    async fn record_identity(&mut self, visitor: VisitorId, site: SiteId, identify: Identify) -> Result<bool, End> {
        let vouched = self.vouched(site, &identify).await?;
        let (user_id, name, email, verified, profile_signed) = match vouched {
            Some(vouched) => (vouched.user_id, vouched.name, vouched.email, true, vouched.signed_profile),
            None => (identify.user_id, identify.name, identify.email, false, false),
        };
        let user_id = clip_bytes(user_id, profile_limits::FIELD);
        if user_id.is_empty() {
            return Ok(false); // a token that did not verify, sent without a claim
        }
        let name = name.map(|n| clip_bytes(n, profile_limits::FIELD));
        let email = email.map(|e| clip_bytes(e, profile_limits::FIELD));
        let identity = store::Identity {
            user_id: &user_id,
            name: name.as_deref(),
            email: email.as_deref(),
            verified,
            profile_signed,
        };
        let stored = self.state.store.visitor_identity(site, visitor).await.map_err(|e| End::store(&e))?;
        if stored.unchanged_by(&identity) {
            return Ok(false);
        }
        self.state.store.identify_visitor(site, visitor, &identity).await.map_err(|e| End::store(&e))?;
        Ok(true)
    }

    /// Who the site's backend vouches for in `identify.hash`, if anyone.
    async fn vouched(&mut self, site: SiteId, identify: &Identify) -> Result<Option<identity::Vouched>, End> {
        let Some(proof) = identify.hash.as_deref() else { return Ok(None) };
        let secrets = self.state.store.identity_secrets(site).await.map_err(|e| End::store(&e))?;
        if !identity::is_token(proof) {
            let matches = identity::hash_matches(&secrets, &identify.user_id, proof);
            return Ok(matches.then(|| identity::Vouched {
                user_id: identify.user_id.clone(),
                // Not signed: the page's claim, shown as such.
                name: identify.name.clone(),
                email: identify.email.clone(),
                signed_profile: false,
            }));
        }
        let Some(site_record) = self.state.store.site(site).await.map_err(|e| End::store(&e))? else {
            return Ok(None);
        };
        let now_secs = store::now().0 / 1000;
        match identity::verify_token(&secrets, &site_record.key, proof, now_secs) {
            Ok(vouched) => Ok(Some(vouched)),
            Err(refused) => {
                tracing::debug!(%refused, ?site, "identity token refused");
                Ok(None)
            }
        }
    }

    pub(super) async fn on_attributes(&mut self, attributes: Attributes) -> Result<(), End> {
        let Some((visitor, site)) = self.reporting_visitor().await? else { return Ok(()) };
        let set: Vec<_> = attributes
            .set
            .into_iter()
            .take(profile_limits::ATTRIBUTES)
            .map(|a| Attribute {
                key: clip_bytes(a.key, profile_limits::FIELD),
                value: clip_bytes(a.value, profile_limits::VALUE),
            })
            .collect();
        if let Some(unsaved) = &mut self.unsaved {
            // Later values win, as they would in the store.
            for attribute in set {
                unsaved.attributes.retain(|held| held.key != attribute.key);
                if unsaved.attributes.len() < profile_limits::ATTRIBUTES {
                    unsaved.attributes.push(attribute);
                }
            }
            return Ok(());
        }
        self.state.store.set_visitor_attributes(site, visitor, &set).await.map_err(|e| End::store(&e))?;
        self.publish_profile(visitor, site).await
    }

    /// The visitor rates its closed chat; a refusal is told to it.
    pub(super) async fn on_rate(&mut self, rate: Rate) -> Result<(), End> {
        let Some((visitor, site)) = self.reporting_visitor().await? else { return Ok(()) };
        let outcome = survey::rate(&self.state, site, visitor, rate).await.map_err(|e| End::store(&e))?;
        let (code, text) = match outcome {
            Ok(()) => return Ok(()),
            Err(survey::Refusal::Invalid(text) | survey::Refusal::Forbidden(text)) => (ErrorCode::Forbidden, text),
            Err(survey::Refusal::Rated) => (ErrorCode::Conflict, "this chat was rated already".into()),
        };
        self.write(&ServerFrame::Error(ErrorFrame { code, text, reconnect: true })).await
    }

    /// The visitor asks for its conversation's transcript by mail.
    pub(super) async fn on_mail_transcript(&mut self, ask: MailTranscript) -> Result<(), End> {
        let Some((visitor, site)) = self.reporting_visitor().await? else { return Ok(()) };
        let conversation = ask.conversation;
        let owned = self.state.store.conversation(site, conversation).await.map_err(|e| End::store(&e))?;
        if owned.is_none_or(|found| found.visitor != visitor) {
            let text = format!("conversation {conversation} is not yours");
            return self
                .write(&ServerFrame::Error(ErrorFrame { code: ErrorCode::Forbidden, text, reconnect: true }))
                .await;
        }
        let queued = follow_up::queue_transcript(&self.state, site, conversation, visitor, true)
            .await
            .map_err(|e| End::store(&e))?;
        let refused = match queued {
            Ok(to) => return self.write(&ServerFrame::TranscriptMailed(TranscriptMailed { conversation, to })).await,
            Err(refused) => refused,
        };
        let code = match refused {
            TranscriptRefused::TooSoon { .. } => ErrorCode::RateLimited,
            TranscriptRefused::MailOff | TranscriptRefused::NoAddress => ErrorCode::Forbidden,
        };
        self.write(&ServerFrame::Error(ErrorFrame { code, text: refused.to_string(), reconnect: true })).await
    }
}
