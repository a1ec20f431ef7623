//! Visitor tokens: what a visitor shows at hello to come back as itself.
//!
//! A token is `k1-{conversation}-{mac}`: the id of the conversation the
//! visitor was given, and the first 128 bits, in hex, of an HMAC-SHA256 of
//! the site, the visitor and that conversation under the site's visitor
//! token key (`Store::visitor_token_key`). It proves the visitor with no
//! row in the store, which is what lets a visitor's rows wait for its
//! first message; and it carries its conversation, so a visitor that
//! reloads before writing keeps the same one, and what it queued offline
//! still goes there.
//!
//! Tokens handed out before these (64 random hex characters) are checked
//! against the SHA-256 kept in the visitor's row instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use kefu_protocol::ids::{ConversationId, SiteId, VisitorId, VisitorToken};
use sha2::Sha256;

use crate::store::{self, Store};

const PREFIX: &str = "k1-";

/// Each site's visitor token key, read once: keys never change.
#[derive(Debug, Default)]
pub struct Keys(Mutex<HashMap<SiteId, Arc<str>>>);

impl Keys {
    /// The key of `site`, made on first use.
    pub async fn get(&self, store: &Store, site: SiteId) -> Result<Arc<str>, store::Error> {
        if let Some(key) = self.lock().get(&site) {
            return Ok(key.clone());
        }
        let key: Arc<str> = store.visitor_token_key(site).await?.into();
        self.lock().insert(site, key.clone());
        Ok(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SiteId, Arc<str>>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The token of `visitor` of `site`, whose conversation is `conversation`.
pub fn mint(key: &str, site: SiteId, visitor: VisitorId, conversation: ConversationId) -> VisitorToken {
    let token = format!("{PREFIX}{conversation}-{}", mac(key, site, visitor, conversation));
    VisitorToken::new(token).expect("digits, hex and dashes, well under the length limit")
}

/// Whether `token` is one of these tokens (rather than an older one).
pub fn is_signed(token: &VisitorToken) -> bool {
    token.as_str().starts_with(PREFIX)
}

/// The conversation `token` names, if it was minted for `visitor` of
/// `site` with `key`.
pub fn verify(key: &str, site: SiteId, visitor: VisitorId, token: &VisitorToken) -> Option<ConversationId> {
    let (conversation, claimed) = token.as_str().strip_prefix(PREFIX)?.split_once('-')?;
    // Only the canonical spelling, so one conversation has one token.
    let conversation: u64 = conversation.parse().ok().filter(|c: &u64| c.to_string() == conversation)?;
    let conversation = ConversationId(conversation);
    super::secrets_equal(claimed, &mac(key, site, visitor, conversation)).then_some(conversation)
}

fn mac(key: &str, site: SiteId, visitor: VisitorId, conversation: ConversationId) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"kefu visitor token\0");
    for id in [site.0, visitor.0, conversation.0] {
        mac.update(&id.to_be_bytes());
    }
    hex::encode(&mac.finalize().into_bytes()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef";

    #[test]
    fn a_token_verifies_for_its_visitor_and_site_only() {
        let (site, visitor, conversation) = (SiteId(1), VisitorId(7), ConversationId(42));
        let token = mint(KEY, site, visitor, conversation);
        assert!(is_signed(&token));
        assert_eq!(verify(KEY, site, visitor, &token), Some(conversation));
        assert_eq!(verify(KEY, SiteId(2), visitor, &token), None, "another site");
        assert_eq!(verify(KEY, site, VisitorId(8), &token), None, "another visitor");
        assert_eq!(verify("another key", site, visitor, &token), None);
    }

    #[test]
    fn a_changed_conversation_or_spelling_does_not_verify() {
        let (site, visitor) = (SiteId(1), VisitorId(7));
        let token = mint(KEY, site, visitor, ConversationId(42));
        let mac = token.as_str().rsplit('-').next().unwrap().to_owned();
        for forged in [format!("k1-43-{mac}"), format!("k1-042-{mac}"), format!("k1-42-{}", &mac[1..]), "k1-42".into()]
        {
            let forged = VisitorToken::new(forged).unwrap();
            assert_eq!(verify(KEY, site, visitor, &forged), None, "{forged:?}");
        }
        assert!(!is_signed(&VisitorToken::new(crate::auth::new_token()).unwrap()));
    }
}
