//! Making a site (tenant) with its first admin, as `kefu-relay site
//! create` and an owner in the console ask for it: one set of checks and
//! one transaction for both.

use kefu_protocol::ids::SiteKey;
use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;

use super::{GENERATED_PASSWORD_LEN, MIN_PASSWORD_CHARS, hash_password};
use crate::store::{self, Agent, Site, Store};

/// The name a site's first admin gets; they can change it.
const ADMIN_NAME: &str = "Admin";

/// A site to make, and who administers it.
#[derive(Debug, Clone)]
pub struct NewSite {
    pub key: String,
    pub name: String,
    pub admin_email: String,
    /// Generated (and handed back once) when `None`.
    pub admin_password: Option<String>,
}

/// The site made, its admin, and the admin's password if it was generated.
#[derive(Debug, Clone)]
pub struct CreatedSite {
    pub site: Site,
    pub admin: Agent,
    pub generated_password: Option<String>,
}

/// Why a site was not made; the text names the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the site key {0:?} is not valid: {1}")]
    BadKey(String, String),
    #[error("the site name must not be empty")]
    EmptyName,
    #[error("the admin email {0:?} is not an email address")]
    BadEmail(String),
    #[error("the admin password needs at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("the site key {0:?} is taken")]
    KeyTaken(String),
    #[error("hashing the password: {0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Checks `new`, then makes the site and its admin in one transaction.
pub async fn create_site(store: &Store, new: NewSite) -> Result<CreatedSite, Refused> {
    let key = SiteKey::new(new.key.trim()).map_err(|error| Refused::BadKey(new.key.clone(), error.to_string()))?;
    let name = new.name.trim();
    if name.is_empty() {
        return Err(Refused::EmptyName);
    }
    let email = new.admin_email.trim();
    if !email.contains('@') {
        return Err(Refused::BadEmail(email.to_owned()));
    }
    let (password, generated) = match new.admin_password {
        Some(password) => (password, false),
        None => (Alphanumeric.sample_string(&mut OsRng, GENERATED_PASSWORD_LEN), true),
    };
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Refused::ShortPassword);
    }
    if store.site_by_key(&key).await?.is_some() {
        return Err(Refused::KeyTaken(key.as_str().to_owned()));
    }
    // argon2 takes tens of milliseconds of CPU: off the async workers.
    let hashing = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&hashing))
        .await
        .map_err(|error| Refused::Hashing(error.to_string()))?
        .map_err(|error| Refused::Hashing(error.to_string()))?;
    let (site, admin) = match store.create_site_with_admin(&key, name, email, ADMIN_NAME, &hash).await {
        Ok(created) => created,
        // Taken between the look-up and the insert.
        Err(store::Error::Conflict(_)) => return Err(Refused::KeyTaken(key.as_str().to_owned())),
        Err(error) => return Err(error.into()),
    };
    Ok(CreatedSite { site, admin, generated_password: generated.then_some(password) })
}
