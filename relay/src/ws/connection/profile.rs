//! What a visitor reports of itself: pages, identity, attributes.

use kefu_protocol::ServerFrame;
use kefu_protocol::codec::clip_bytes;
use kefu_protocol::frame::{Attribute, Attributes, ErrorCode, ErrorFrame, Identify, Visit};
use kefu_protocol::ids::{SiteId, VisitorId};

use super::{Connection, End, Peer};
use crate::hub::Audience;
use crate::identity;
use crate::store;

/// What the relay keeps of visitor-reported text; longer values are cut
/// (at a character boundary), not refused: a long URL is no attack.
mod profile_limits {
    pub(super) const URL: usize = 2048;
    pub(super) const TITLE: usize = 512;
    pub(super) const FIELD: usize = 256;
    pub(super) const VALUE: usize = 1024;
    pub(super) const ATTRIBUTES: usize = 50;
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

    pub(super) async fn on_visit(&mut self, visit: Visit) -> Result<(), End> {
        let Some((visitor, site)) = self.reporting_visitor().await? else { return Ok(()) };
        let visit = Visit {
            url: clip_bytes(visit.url, profile_limits::URL),
            title: clip_bytes(visit.title, profile_limits::TITLE),
            referrer: visit.referrer.map(|r| clip_bytes(r, profile_limits::URL)),
        };
        self.state.store.record_visit(site, visitor, &visit).await.map_err(|e| End::store(&e))?;
        self.publish_profile(visitor, site).await
    }

    /// Records who the site says the visitor is, verified by a signed
    /// token or the plain hash (`crate::identity`). The session repeats
    /// the same `Identify` after every welcome: when it changes nothing, it
    /// is neither written nor announced again.
    pub(super) async fn on_identify(&mut self, identify: Identify) -> Result<(), End> {
        let Some((visitor, site)) = self.reporting_visitor().await? else { return Ok(()) };
        let vouched = self.vouched(site, &identify).await?;
        let (user_id, name, email, verified, profile_signed) = match vouched {
            Some(vouched) => (vouched.user_id, vouched.name, vouched.email, true, vouched.signed_profile),
            None => (identify.user_id, identify.name, identify.email, false, false),
        };
        let user_id = clip_bytes(user_id, profile_limits::FIELD);
        if user_id.is_empty() {
            return Ok(()); // a token that did not verify, sent without a claim
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
            return Ok(());
        }
        self.state.store.identify_visitor(site, visitor, &identity).await.map_err(|e| End::store(&e))?;
        self.publish_profile(visitor, site).await
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
        self.state.store.set_visitor_attributes(site, visitor, &set).await.map_err(|e| End::store(&e))?;
        self.publish_profile(visitor, site).await
    }
}
