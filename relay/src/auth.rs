//! Passwords, tokens, who a session token belongs to, and the first start.
//!
//! Passwords are stored as argon2id PHC strings. Tokens (agent sessions,
//! visitor identities) are 256 random bits handed to the client once; the
//! store keeps only their SHA-256, which is enough because a token, unlike
//! a password, cannot be guessed and so needs no slow hash.
//!
//! [`cookie`]: the console's session cookie and the same-origin check,
//! for the HTTP API and the WebSocket upgrade alike. [`visitor_token`]:
//! the tokens visitors come back with. [`mail_link`]: the signed resume
//! and unsubscribe links of follow-up mail. [`new_site`]: a second site (tenant)
//! with its first admin.

pub mod cookie;
pub mod mail_link;
pub mod new_site;
pub mod visitor_token;

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use kefu_protocol::ids::SiteKey;
use rand::RngCore;
use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::store::{self, Store, now};

/// The site created on the first start.
const FIRST_SITE_KEY: &str = "demo";
const FIRST_SITE_NAME: &str = "Demo site";
const FIRST_ADMIN_NAME: &str = "Admin";

/// Length of a generated admin password: 20 alphanumerics are about 119
/// bits, out of reach of any guessing.
const GENERATED_PASSWORD_LEN: usize = 20;

/// The shortest password an agent may set.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Hashes a password with argon2id and the default parameters, with a
/// fresh salt, as a PHC string (`$argon2id$v=19$...`).
///
/// Takes tens of milliseconds of CPU on purpose: call it from
/// `spawn_blocking` in request handlers.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default().hash_password(password.as_bytes(), &salt)?;
    Ok(hash.to_string())
}

/// Whether `password` matches a hash from [`hash_password`]. A malformed
/// hash matches nothing. As slow as hashing, see there.
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(hash) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default().verify_password(password.as_bytes(), &hash).is_ok()
}

/// A valid hash of a password nobody knows, for checking a login whose
/// email matched no agent: the answer then takes as long as for a known
/// email, so timing does not tell which emails exist. Computed with the
/// current parameters on first use (one hash of CPU time).
pub fn dummy_hash() -> &'static str {
    static DUMMY: LazyLock<String> = LazyLock::new(|| {
        // Fails only for passwords over 4 GiB; this one is 64 bytes.
        hash_password(&new_token()).expect("argon2 refused a 64-byte password")
    });
    &DUMMY
}

/// A new secret token: 32 random bytes from the OS as 64 hex characters,
/// which fits the wire's token alphabet and length.
pub fn new_token() -> String {
    let mut bytes = [0_u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the store keeps of a token: its SHA-256 in hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// An agent's live session: the agent as the store has it now, and the
/// hash of the token it logged in with, which names the session (to end
/// it, and for revocations to find the connections opened with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub agent: store::Agent,
    pub token_hash: String,
}

/// Who `token` belongs to: `None` for an unknown or expired session, or a
/// deactivated agent.
pub async fn signed_in(store: &Store, token: &str) -> Result<Option<SignedIn>, store::Error> {
    let token_hash = token_hash(token);
    let agent = store.agent_by_session(&token_hash, now()).await?;
    Ok(agent.map(|agent| SignedIn { agent, token_hash }))
}

/// The CSRF token of a cookie session: SHA-256 of a fixed prefix and the
/// session token, in hex. Derived, so nothing more is stored; the prefix
/// keeps it from ever equalling the session's stored hash; and only a page
/// that could already read it from `/api/me` or the login answer, i.e. one
/// of the relay's own origin, can send it back.
pub fn csrf_token(session_token: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"kefu-csrf:");
    digest.update(session_token.as_bytes());
    hex::encode(digest.finalize())
}

/// Whether two secrets are equal, in time that depends only on their
/// lengths, so comparing a guess leaks nothing about how close it is.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0_u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Sets up a fresh store: the site "demo" and an admin agent with
/// `admin_email` and `admin_password`, or a generated password, which is
/// returned so it can be shown once. Does nothing and returns `None` when
/// a site already exists.
pub async fn bootstrap(
    store: &Store,
    admin_email: &str,
    admin_password: Option<&str>,
) -> Result<Option<String>, store::Error> {
    // Checked first only to skip the hashing on every later start; the
    // store checks again, atomically, before creating anything.
    if store.site_count().await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match admin_password {
        Some(password) => (password.to_owned(), None),
        None => {
            let password = Alphanumeric.sample_string(&mut OsRng, GENERATED_PASSWORD_LEN);
            (password.clone(), Some(password))
        }
    };
    // Hashed on this thread: bootstrap runs once, before the relay serves
    // anyone. argon2 with its default parameters and a fresh salt fails
    // only for passwords over 4 GiB.
    let hash = hash_password(&password).expect("argon2 refused the admin password");
    let key = SiteKey::new(FIRST_SITE_KEY).expect("the first site's key is valid");
    let created = store.create_first_site(&key, FIRST_SITE_NAME, admin_email, FIRST_ADMIN_NAME, &hash).await?;
    if let Some((site, admin)) = &created {
        tracing::info!(site = %site.id, admin = %admin.email, "created the first site and its admin");
    }
    Ok(created.and(generated))
}

#[cfg(test)]
mod tests {
    use kefu_protocol::ids::AgentToken;
    use tempfile::TempDir;

    use super::*;
    use crate::store::Role;

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horse "));
        assert!(!verify_password("not a phc string", "correct horse"));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salts must differ");
    }

    #[test]
    fn the_dummy_hash_is_real_and_matches_nothing_guessable() {
        assert!(dummy_hash().starts_with("$argon2id$"));
        assert!(PasswordHash::new(dummy_hash()).is_ok());
        assert!(!verify_password(dummy_hash(), ""));
        assert!(std::ptr::eq(dummy_hash(), dummy_hash()), "computed once");
    }

    #[test]
    fn tokens_are_random_hex_that_the_wire_accepts() {
        let token = new_token();
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(AgentToken::new(token.clone()).is_ok());
        assert_ne!(token, new_token());
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[tokio::test]
    async fn bootstrap_creates_the_demo_site_and_admin_once() {
        let dir = TempDir::new().unwrap();
        let store = Store::open(dir.path()).await.unwrap();

        let password = bootstrap(&store, "admin@example.com", None).await.unwrap();
        let password = password.expect("a generated password on the first start");
        assert_eq!(password.len(), GENERATED_PASSWORD_LEN);
        assert!(password.bytes().all(|b| b.is_ascii_alphanumeric()));

        let site = store.site_by_key(&SiteKey::new("demo").unwrap()).await.unwrap().unwrap();
        assert_eq!(site.name, "Demo site");
        let [login] = &store.agent_logins("admin@example.com").await.unwrap()[..] else { panic!("one admin") };
        let admin = &login.agent;
        assert_eq!((admin.site, admin.role, admin.name.as_str()), (site.id, Role::Admin, "Admin"));
        assert!(verify_password(&login.password_hash, &password));

        assert_eq!(bootstrap(&store, "other@example.com", None).await.unwrap(), None);
        assert_eq!(store.site_count().await.unwrap(), 1);
        assert!(store.agent_logins("other@example.com").await.unwrap().is_empty());
        store.close().await;
    }

    #[tokio::test]
    async fn bootstrap_uses_the_given_password_and_returns_none() {
        let dir = TempDir::new().unwrap();
        let store = Store::open(dir.path()).await.unwrap();

        assert_eq!(bootstrap(&store, "root@example.com", Some("s3cret!")).await.unwrap(), None);

        let logins = store.agent_logins("root@example.com").await.unwrap();
        assert!(verify_password(&logins[0].password_hash, "s3cret!"));
        store.close().await;
    }

    #[test]
    fn csrf_tokens_are_prefixed_sha256_and_differ_from_the_stored_hash() {
        // printf 'kefu-csrf:abc' | sha256sum
        assert_eq!(csrf_token("abc"), "93dbf36b0dce97d0c3325cdf9160898bb146a0e3cb78030cd8b73a687e2f71a8");
        assert_ne!(csrf_token("abc"), token_hash("abc"));
        assert_ne!(csrf_token("abc"), csrf_token("abd"));
    }

    #[test]
    fn secrets_compare_by_value_and_length() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "ab"));
        assert!(secrets_equal("", ""));
    }
}
