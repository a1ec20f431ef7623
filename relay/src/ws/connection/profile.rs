//! What a visitor reports of itself: pages, identity, attributes.

use kefu_protocol::ServerFrame;
use kefu_protocol::codec::clip;
use kefu_protocol::frame::{Attribute, Attributes, ErrorCode, ErrorFrame, Identify, Visit};
use kefu_protocol::ids::{SiteId, VisitorId};

use super::{Connection, End, Peer};
use crate::auth;
use crate::hub::Audience;
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
            url: clip(visit.url, profile_limits::URL),
            title: clip(visit.title, profile_limits::TITLE),
            referrer: visit.referrer.map(|r| clip(r, profile_limits::URL)),
        };
        self.state.store.record_visit(site, visitor, &visit).await.map_err(|e| End::store(&e))?;
        self.publish_profile(visitor, site).await
    }

    pub(super) async fn on_identify(&mut self, identify: Identify) -> Result<(), End> {
        let Some((visitor, site)) = self.reporting_visitor().await? else { return Ok(()) };
        let secret = self.state.store.identity_secret(site).await.map_err(|e| End::store(&e))?;
        let verified =
            identify.hash.as_deref().is_some_and(|hash| auth::identity_hash_matches(&secret, &identify.user_id, hash));
        let user_id = clip(identify.user_id, profile_limits::FIELD);
        let name = identify.name.map(|n| clip(n, profile_limits::FIELD));
        let email = identify.email.map(|e| clip(e, profile_limits::FIELD));
        let identity = store::Identity { user_id: &user_id, name: name.as_deref(), email: email.as_deref(), verified };
        self.state.store.identify_visitor(site, visitor, &identity).await.map_err(|e| End::store(&e))?;
        self.publish_profile(visitor, site).await
    }

    pub(super) async fn on_attributes(&mut self, attributes: Attributes) -> Result<(), End> {
        let Some((visitor, site)) = self.reporting_visitor().await? else { return Ok(()) };
        let set: Vec<_> = attributes
            .set
            .into_iter()
            .take(profile_limits::ATTRIBUTES)
            .map(|a| Attribute { key: clip(a.key, profile_limits::FIELD), value: clip(a.value, profile_limits::VALUE) })
            .collect();
        self.state.store.set_visitor_attributes(site, visitor, &set).await.map_err(|e| End::store(&e))?;
        self.publish_profile(visitor, site).await
    }
}
