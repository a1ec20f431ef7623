//! Visitor identities a site's backend vouches for, checked against the
//! site's identity secret.
//!
//! Two forms reach the relay in `Identify::hash`:
//!
//! - **A signed identity token** (recommended): a JWT with `alg` `HS256`,
//!   the HMAC-SHA256 of `header.claims` keyed with the identity secret, so
//!   any JWT library of the site's backend can make one. Its claims:
//!   `sub` (the user id), `name` and `email` (optional), `iat` and `exp`
//!   (seconds since 1970) and `aud` (the site's key). The user id, name and
//!   email are then all verified: the relay takes them from the token, not
//!   from what the page sent beside it.
//! - **The plain hash** (kept for existing sites): hex HMAC-SHA256 of the
//!   user id alone. Weaker: it verifies only the user id, never expires and
//!   is the same for every site sharing a secret; name and email sent with
//!   it stay the page's unverified claim.
//!
//! What "replayed" means for a token: a page presents the same token on
//! every reconnect and reload, which is its purpose, so a token is not
//! single use (that would log a user out on every reload). What must not
//! happen is the token working *elsewhere or later*: `aud` binds it to one
//! site, so a token from site A's page is refused on site B even if both
//! shared a secret; `exp` ends it, and a lifetime over
//! [`MAX_TOKEN_LIFETIME_SECS`] is refused so that no backend hands out a
//! token that is as good as forever; an `iat` in the future (beyond clock
//! skew) is refused too. Whoever can read the page's token (an XSS on the
//! site) can use it until `exp`: keep lifetimes short.
//!
//! Secrets rotate: after `POST /api/site/identity-secret` the previous
//! secret still verifies for [`ROTATION_GRACE_SECS`], so pages already
//! holding a token (or hash) made with it keep working while the backend
//! switches over.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use kefu_protocol::ids::SiteKey;
use serde::Deserialize;
use sha2::Sha256;

/// The longest a token may be valid, from `iat` to `exp`: a day.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 60 * 60;
/// How far a backend's clock may be ahead of the relay's.
pub const CLOCK_SKEW_SECS: u64 = 60;
/// How long the previous identity secret still verifies after a rotation:
/// a day, the longest a token lives.
pub const ROTATION_GRACE_SECS: u64 = MAX_TOKEN_LIFETIME_SECS;
/// The longest token read, in bytes; longer ones are refused unread.
pub const MAX_TOKEN_BYTES: usize = 2_048;

/// The secrets that verify a site's identities now: the current one and,
/// during the grace period after a rotation, the one before it.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub current: String,
    pub previous: Option<String>,
}

impl Secrets {
    fn each(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.current.as_str()).chain(self.previous.as_deref())
    }
}

/// A user the site's backend vouched for, with what it signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouched {
    pub user_id: String,
    /// `Some` only when signed with the user id.
    pub name: Option<String>,
    pub email: Option<String>,
    /// Name and email were signed (a token), not only the user id (a hash).
    pub signed_profile: bool,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a signed identity token")]
    Malformed,
    #[error("the token is not signed with HS256")]
    Algorithm,
    #[error("the signature does not match the site's identity secret")]
    Signature,
    #[error("the token is for another site")]
    OtherSite,
    #[error("the token has expired")]
    Expired,
    #[error("the token is issued in the future")]
    NotYetValid,
    #[error("the token lives longer than {MAX_TOKEN_LIFETIME_SECS} s")]
    TooLong,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    iat: u64,
    exp: u64,
    aud: String,
}

/// Whether `proof` looks like a token rather than a plain hex hash.
pub fn is_token(proof: &str) -> bool {
    proof.bytes().filter(|&b| b == b'.').count() == 2
}

/// Checks a signed identity token for `site` at `now` (seconds since 1970).
pub fn verify_token(secrets: &Secrets, site: &SiteKey, token: &str, now: u64) -> Result<Vouched, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let (signed, signature) = token.trim().rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (header, claims) = signed.split_once('.').ok_or(TokenError::Malformed)?;
    let header: Header = decode_part(header)?;
    if header.alg != "HS256" {
        // Never "none", never another algorithm the page could pick.
        return Err(TokenError::Algorithm);
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
    if !secrets.each().any(|secret| mac_matches(secret, signed.as_bytes(), &signature)) {
        return Err(TokenError::Signature);
    }
    // Only signed claims are read.
    let claims: Claims = decode_part(claims)?;
    if claims.aud != site.as_str() {
        return Err(TokenError::OtherSite);
    }
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    if claims.iat > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(TokenError::NotYetValid);
    }
    if claims.exp.saturating_sub(claims.iat) > MAX_TOKEN_LIFETIME_SECS {
        return Err(TokenError::TooLong);
    }
    Ok(Vouched { user_id: claims.sub, name: claims.name, email: claims.email, signed_profile: true })
}

/// Whether `hash` (hex) is HMAC-SHA256 of `user_id` with one of the
/// secrets: the plain, weaker form. Compared in constant time.
pub fn hash_matches(secrets: &Secrets, user_id: &str, hash: &str) -> bool {
    let Ok(claimed) = hex::decode(hash.trim()) else {
        return false;
    };
    secrets.each().any(|secret| mac_matches(secret, user_id.as_bytes(), &claimed))
}

fn mac_matches(secret: &str, message: &[u8], claimed: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(message);
    mac.verify_slice(claimed).is_ok()
}

fn decode_part<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let json = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)
}

/// Makes a token the way a site's backend would; for tests and examples.
pub fn sign_token(secret: &str, site: &SiteKey, vouched: &Vouched, iat: u64, exp: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "sub": vouched.user_id,
        "name": vouched.name,
        "email": vouched.email,
        "iat": iat,
        "exp": exp,
        "aud": site.as_str(),
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{claims}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn secrets() -> Secrets {
        Secrets { current: "site-secret".into(), previous: None }
    }

    fn demo() -> SiteKey {
        SiteKey::new("demo").expect("a valid key")
    }

    fn ada() -> Vouched {
        Vouched {
            user_id: "user-42".into(),
            name: Some("Ada".into()),
            email: Some("ada@example.com".into()),
            signed_profile: true,
        }
    }

    #[test]
    fn a_token_of_another_implementation_verifies() {
        // Made with Python's hmac and base64 modules, as a backend would:
        // claims {"sub":"user-42","name":"Ada","email":"ada@example.com",
        // "iat":1800000000,"exp":1800003600,"aud":"demo"}, "site-secret".
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
                     eyJzdWIiOiJ1c2VyLTQyIiwibmFtZSI6IkFkYSIsImVtYWlsIjoiYWRhQGV4YW1wbGUuY29tIiwiaWF0IjoxODAwMDAwMDAwLCJleHAiOjE4MDAwMDM2MDAsImF1ZCI6ImRlbW8ifQ.\
                     mAYKmnMBuzCTezq4GRI7IBI2EXeVvEkO69qFYHKLwL8";
        assert_eq!(verify_token(&secrets(), &demo(), token, NOW), Ok(ada()));
        assert_eq!(verify_token(&secrets(), &demo(), token, 1_800_003_600), Err(TokenError::Expired));
    }

    #[test]
    fn a_signed_token_vouches_for_user_name_and_email() {
        let token = sign_token("site-secret", &demo(), &ada(), NOW - 10, NOW + 3600);
        assert_eq!(verify_token(&secrets(), &demo(), &token, NOW), Ok(ada()));
        assert!(is_token(&token));
        assert!(!is_token("360ea68ccc98e76abe82ace2ab09553dc9a0814b9df79c2e0d396877aca6aa72"));
    }

    #[test]
    fn expired_future_overlong_foreign_and_forged_tokens_are_refused() {
        let sign = |secret: &str, site: &SiteKey, iat, exp| sign_token(secret, site, &ada(), iat, exp);
        let check = |token: &str| verify_token(&secrets(), &demo(), token, NOW);
        assert_eq!(check(&sign("site-secret", &demo(), NOW - 3600, NOW)), Err(TokenError::Expired));
        assert_eq!(check(&sign("site-secret", &demo(), NOW + 600, NOW + 1200)), Err(TokenError::NotYetValid));
        assert_eq!(check(&sign("site-secret", &demo(), NOW, NOW + 2 * 86_400)), Err(TokenError::TooLong));
        let other = SiteKey::new("other").expect("a valid key");
        assert_eq!(check(&sign("site-secret", &other, NOW, NOW + 60)), Err(TokenError::OtherSite));
        assert_eq!(check(&sign("wrong-secret", &demo(), NOW, NOW + 60)), Err(TokenError::Signature));
        assert_eq!(check("a.b"), Err(TokenError::Malformed));
        assert_eq!(check("not.a.token"), Err(TokenError::Malformed));
    }

    #[test]
    fn changed_claims_break_the_signature() {
        let token = sign_token("site-secret", &demo(), &ada(), NOW, NOW + 60);
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD
            .encode(serde_json::json!({"sub": "admin", "iat": NOW, "exp": NOW + 60, "aud": "demo"}).to_string());
        parts[1] = &forged;
        assert_eq!(verify_token(&secrets(), &demo(), &parts.join("."), NOW), Err(TokenError::Signature));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let claims = URL_SAFE_NO_PAD
            .encode(serde_json::json!({"sub": "u", "iat": NOW, "exp": NOW + 60, "aud": "demo"}).to_string());
        let token = format!("{header}.{claims}.");
        assert_eq!(verify_token(&secrets(), &demo(), &token, NOW), Err(TokenError::Algorithm));
    }

    #[test]
    fn plain_hashes_are_hmac_sha256_of_the_user_id() {
        // Known answer from another implementation:
        // printf 'user-42' | openssl dgst -sha256 -hmac 'site-secret'
        let good = "360ea68ccc98e76abe82ace2ab09553dc9a0814b9df79c2e0d396877aca6aa72";
        assert!(hash_matches(&secrets(), "user-42", good));
        assert!(hash_matches(&secrets(), "user-42", &good.to_uppercase()));
        assert!(!hash_matches(&secrets(), "user-43", good));
        let other = Secrets { current: "other-secret".into(), previous: None };
        assert!(!hash_matches(&other, "user-42", good));
        assert!(!hash_matches(&secrets(), "user-42", "not hex"));
        assert!(!hash_matches(&secrets(), "user-42", ""));
    }

    #[test]
    fn the_previous_secret_verifies_during_the_grace_period() {
        let rotated = Secrets { current: "new-secret".into(), previous: Some("site-secret".into()) };
        let old_token = sign_token("site-secret", &demo(), &ada(), NOW, NOW + 60);
        assert_eq!(verify_token(&rotated, &demo(), &old_token, NOW), Ok(ada()));
        let hash = "360ea68ccc98e76abe82ace2ab09553dc9a0814b9df79c2e0d396877aca6aa72";
        assert!(hash_matches(&rotated, "user-42", hash));
        let after_grace = Secrets { current: "new-secret".into(), previous: None };
        assert_eq!(verify_token(&after_grace, &demo(), &old_token, NOW), Err(TokenError::Signature));
        assert!(!hash_matches(&after_grace, "user-42", hash));
    }
}
