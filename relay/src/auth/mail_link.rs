//! The signed tokens in a follow-up mail's links: one that resumes the
//! visitor's chat on any device, one that unsubscribes it, and one that
//! rates a closed chat from the survey mail.
//!
//! A resume token is `r1-{visitor}-{expires}-{mac}` (`expires` in
//! milliseconds since the epoch); an unsubscribe token is
//! `u1-{visitor}-{mac}`, which never expires, as a mail's unsubscribe link
//! must keep working (RFC 8058); a survey token is
//! `s1-{conversation}-{closed}-{expires}-{mac}`, for the close whose
//! "closed" line has seq `closed`. It is single use by the store, which
//! keeps one rating per close. The mac is the first 128 bits, in hex, of
//! an HMAC-SHA256 under the site's visitor token key, as for visitor
//! tokens ([`super::visitor_token`]), over a purpose of its own, the site
//! and the rest of the token: a token works for its purpose, its site and
//! its visitor only, and needs no row in the store.

use hmac::{Hmac, Mac};
use kefu_protocol::ids::{ConversationId, Seq, SiteId, Timestamp, VisitorId};
use sha2::Sha256;

const RESUME: &str = "r1-";
const UNSUBSCRIBE: &str = "u1-";
const SURVEY: &str = "s1-";

/// Why a resume token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Well signed, but past its time.
    Expired,
    /// Not one of ours for this site: malformed, forged or another site's.
    Invalid,
}

/// A token that lets whoever holds it continue as `visitor` of `site`
/// until `expires`.
pub fn mint_resume(key: &str, site: SiteId, visitor: VisitorId, expires: Timestamp) -> String {
    let body = format!("{}-{}", visitor.0, expires.0);
    format!("{RESUME}{body}-{}", mac(key, RESUME, site, &body))
}

/// The visitor `token` resumes, if it was minted for `site` with `key` and
/// has not expired at `now`.
pub fn verify_resume(key: &str, site: SiteId, token: &str, now: Timestamp) -> Result<VisitorId, Refused> {
    let rest = token.strip_prefix(RESUME).ok_or(Refused::Invalid)?;
    let (body, claimed) = rest.rsplit_once('-').ok_or(Refused::Invalid)?;
    if !super::secrets_equal(claimed, &mac(key, RESUME, site, body)) {
        return Err(Refused::Invalid);
    }
    let (visitor, expires) = body.split_once('-').ok_or(Refused::Invalid)?;
    let (visitor, expires) = (canonical(visitor).ok_or(Refused::Invalid)?, canonical(expires).ok_or(Refused::Invalid)?);
    if expires <= now.0 {
        return Err(Refused::Expired);
    }
    Ok(VisitorId(visitor))
}

/// A token that rates the close at `closed` of `conversation` of `site`,
/// until `expires`.
pub fn mint_survey(key: &str, site: SiteId, conversation: ConversationId, closed: Seq, expires: Timestamp) -> String {
    let body = format!("{}-{}-{}", conversation.0, closed.0, expires.0);
    format!("{SURVEY}{body}-{}", mac(key, SURVEY, site, &body))
}

/// The close `token` rates (its conversation and the seq of its "closed"
/// line), if it was minted for `site` with `key` and has not expired at
/// `now`.
pub fn verify_survey(key: &str, site: SiteId, token: &str, now: Timestamp) -> Result<(ConversationId, Seq), Refused> {
    let rest = token.strip_prefix(SURVEY).ok_or(Refused::Invalid)?;
    let (body, claimed) = rest.rsplit_once('-').ok_or(Refused::Invalid)?;
    if !super::secrets_equal(claimed, &mac(key, SURVEY, site, body)) {
        return Err(Refused::Invalid);
    }
    let numbers: Vec<u64> = body.split('-').map(canonical).collect::<Option<_>>().ok_or(Refused::Invalid)?;
    let [conversation, closed, expires] = numbers[..] else { return Err(Refused::Invalid) };
    if expires <= now.0 {
        return Err(Refused::Expired);
    }
    Ok((ConversationId(conversation), Seq(closed)))
}

/// A token that unsubscribes `visitor` of `site` from follow-up mail.
pub fn mint_unsubscribe(key: &str, site: SiteId, visitor: VisitorId) -> String {
    let body = visitor.0.to_string();
    format!("{UNSUBSCRIBE}{body}-{}", mac(key, UNSUBSCRIBE, site, &body))
}

/// The visitor `token` unsubscribes, if it was minted for `site` with `key`.
pub fn verify_unsubscribe(key: &str, site: SiteId, token: &str) -> Option<VisitorId> {
    let (body, claimed) = token.strip_prefix(UNSUBSCRIBE)?.rsplit_once('-')?;
    let visitor = canonical(body)?;
    super::secrets_equal(claimed, &mac(key, UNSUBSCRIBE, site, body)).then_some(VisitorId(visitor))
}

/// A number in its one canonical spelling, so one visitor has one token.
fn canonical(digits: &str) -> Option<u64> {
    digits.parse().ok().filter(|n: &u64| n.to_string() == digits)
}

fn mac(key: &str, purpose: &str, site: SiteId, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"kefu mail link\0");
    mac.update(purpose.as_bytes());
    mac.update(&site.0.to_be_bytes());
    mac.update(body.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef";
    const NOW: Timestamp = Timestamp(1_000_000);

    #[test]
    fn a_resume_token_works_for_its_site_until_it_expires() {
        let (site, visitor) = (SiteId(1), VisitorId(7));
        let token = mint_resume(KEY, site, visitor, Timestamp(NOW.0 + 1));
        assert_eq!(verify_resume(KEY, site, &token, NOW), Ok(visitor));
        assert_eq!(verify_resume(KEY, site, &token, Timestamp(NOW.0 + 1)), Err(Refused::Expired));
        assert_eq!(verify_resume(KEY, SiteId(2), &token, NOW), Err(Refused::Invalid), "another site");
        assert_eq!(verify_resume("another key", site, &token, NOW), Err(Refused::Invalid));
    }

    #[test]
    fn a_changed_resume_token_is_invalid() {
        let (site, visitor) = (SiteId(1), VisitorId(7));
        let token = mint_resume(KEY, site, visitor, Timestamp(NOW.0 + 1000));
        let mac = token.rsplit('-').next().unwrap().to_owned();
        let unsubscribe = mint_unsubscribe(KEY, site, visitor);
        for forged in [
            format!("r1-8-{}-{mac}", NOW.0 + 1000),
            format!("r1-7-{}-{mac}", NOW.0 + 100_000),
            format!("r1-07-{}-{mac}", NOW.0 + 1000),
            format!("r1-7-{}-{}", NOW.0 + 1000, &mac[1..]),
            unsubscribe.replacen("u1-", "r1-", 1),
            String::new(),
            "r1-7".into(),
        ] {
            assert_eq!(verify_resume(KEY, site, &forged, NOW), Err(Refused::Invalid), "{forged:?}");
        }
    }

    #[test]
    fn a_survey_token_rates_its_close_of_its_site_until_it_expires() {
        let (site, conversation, closed) = (SiteId(1), ConversationId(7), Seq(12));
        let token = mint_survey(KEY, site, conversation, closed, Timestamp(NOW.0 + 1));
        assert_eq!(verify_survey(KEY, site, &token, NOW), Ok((conversation, closed)));
        assert_eq!(verify_survey(KEY, site, &token, Timestamp(NOW.0 + 1)), Err(Refused::Expired));
        assert_eq!(verify_survey(KEY, SiteId(2), &token, NOW), Err(Refused::Invalid), "another site");
        assert_eq!(verify_survey("another key", site, &token, NOW), Err(Refused::Invalid));
        let mac = token.rsplit('-').next().unwrap().to_owned();
        let resume = mint_resume(KEY, site, VisitorId(7), Timestamp(NOW.0 + 1));
        for forged in [
            format!("s1-7-13-{}-{mac}", NOW.0 + 1),
            format!("s1-8-12-{}-{mac}", NOW.0 + 1),
            format!("s1-7-12-{}-{mac}", NOW.0 + 100_000),
            format!("s1-7-012-{}-{mac}", NOW.0 + 1),
            format!("s1-7-12-{}-{mac}-1", NOW.0 + 1),
            resume.replacen("r1-", "s1-", 1),
            "s1-".into(),
        ] {
            assert_eq!(verify_survey(KEY, site, &forged, NOW), Err(Refused::Invalid), "{forged:?}");
        }
    }

    #[test]
    fn an_unsubscribe_token_works_for_its_visitor_and_site_only() {
        let (site, visitor) = (SiteId(1), VisitorId(7));
        let token = mint_unsubscribe(KEY, site, visitor);
        assert_eq!(verify_unsubscribe(KEY, site, &token), Some(visitor));
        assert_eq!(verify_unsubscribe(KEY, SiteId(2), &token), None);
        let mac = token.rsplit('-').next().unwrap();
        assert_eq!(verify_unsubscribe(KEY, site, &format!("u1-8-{mac}")), None);
        let resume = mint_resume(KEY, site, visitor, Timestamp(NOW.0 + 1000));
        assert_eq!(verify_unsubscribe(KEY, site, &resume.replacen("r1-", "u1-", 1)), None);
    }
}
