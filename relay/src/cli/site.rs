//! `kefu-relay site create` and `kefu-relay site list`.

use anyhow::{Context, Result, bail};
use clap::Args;

use super::StoreArgs;
use crate::auth::new_site::{self, CreatedSite, NewSite, Refused};

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
    let store = args.store.open().await?;
    let new =
        NewSite { key: args.key, name: args.name, admin_email: args.admin_email, admin_password: args.admin_password };
    let created = new_site::create_site(&store, new).await;
    store.close().await;
    let created = match created {
        Ok(created) => created,
        Err(Refused::KeyTaken(key)) => {
            bail!("site key {key:?} is taken: choose another --key (kefu-relay site list shows them)")
        }
        Err(Refused::Store(error)) => return Err(error).context("creating the site"),
        Err(refused) => bail!("{refused}"),
    };
    let CreatedSite { site, admin, generated_password } = created;
    println!("created site `{}` ({}) with admin {}", site.key.as_str(), site.name, admin.email);
    if let Some(password) = generated_password {
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
