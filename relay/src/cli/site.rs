//! `kefu-relay site create` and `kefu-relay site list`.

use anyhow::{Context, Result, bail};
use clap::Args;
use kefu_protocol::ids::SiteKey;
use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;

use super::StoreArgs;
use crate::store::Error;

/// Length of a generated admin password, as for the first site's admin.
const GENERATED_PASSWORD_LEN: usize = 20;
/// What the console accepts when an admin sets a password.
const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// The site's public key, as in its script tag (`data-site="KEY"`).
    #[arg(long)]
    pub key: String,
    /// The site's name, for the console.
    #[arg(long)]
    pub name: String,
    /// The login of the site's first admin.
    #[arg(long)]
    pub admin_email: String,
    /// Their password; generated and printed once when not given.
    #[arg(long, env = "KEFU_SITE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Creates the site and its admin in one transaction; prints what was
/// made, and the password when it was generated.
pub async fn create(args: CreateArgs) -> Result<()> {
    let key = SiteKey::new(&args.key).map_err(|error| anyhow::anyhow!("--key {:?}: {error}", args.key))?;
    let name = args.name.trim();
    if name.is_empty() {
        bail!("--name must not be empty");
    }
    let email = args.admin_email.trim();
    if !email.contains('@') {
        bail!("--admin-email {email:?} is not an email address");
    }
    let (password, generated) = match args.admin_password {
        Some(password) => (password, false),
        None => (Alphanumeric.sample_string(&mut OsRng, GENERATED_PASSWORD_LEN), true),
    };
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("--admin-password needs at least {MIN_PASSWORD_CHARS} characters");
    }
    let store = args.store.open().await?;
    if store.site_by_key(&key).await?.is_some() {
        store.close().await;
        bail!("site key {:?} is taken: choose another --key (kefu-relay site list shows them)", key.as_str());
    }
    let hash =
        crate::auth::hash_password(&password).map_err(|error| anyhow::anyhow!("hashing the password: {error}"))?;
    let created = store.create_site_with_admin(&key, name, email, "Admin", &hash).await;
    store.close().await;
    let (site, admin) = match created {
        Ok(created) => created,
        // Taken between the look-up and the insert.
        Err(Error::Conflict(_)) => bail!("site key {:?} is taken: choose another --key", key.as_str()),
        Err(error) => return Err(error).context("creating the site"),
    };
    println!("created site `{}` ({}) with admin {}", site.key.as_str(), site.name, admin.email);
    if generated {
        println!("admin password: {password}\n(shown once: it is not stored in clear)");
    }
    Ok(())
}

/// One line per site: key, then name.
pub async fn list(store_args: StoreArgs) -> Result<()> {
    let store = store_args.open().await?;
    let sites = store.all_sites().await;
    store.close().await;
    for site in sites? {
        println!("{}\t{}", site.key.as_str(), site.name);
    }
    Ok(())
}
