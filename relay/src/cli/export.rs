//! `kefu-relay export --site KEY --out FILE` and `kefu-relay import --from
//! FILE [--site-key NEWKEY]`: one site's data, to move it to another
//! server (the format and how it is read and written: `store::export`).
//! Both run beside a running relay.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use kefu_protocol::ids::SiteKey;

use super::StoreArgs;

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The key of the site to export.
    #[arg(long)]
    pub site: String,
    /// The file to write (gzip-compressed JSON Lines); must not exist.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// A file written by `kefu-relay export`.
    #[arg(long)]
    pub from: PathBuf,
    /// The key the site gets here, if not the one it had (which must then
    /// be free here).
    #[arg(long)]
    pub site_key: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Writes the site's file and says what it holds.
pub async fn export(args: ExportArgs) -> Result<()> {
    let key = site_key(&args.site, "--site")?;
    let store = args.store.open().await?;
    let written = store.export_site(&key, &args.out).await;
    store.close().await;
    let moved = written?;
    println!("wrote {}: {moved}", args.out.display());
    Ok(())
}

/// Writes the file's site into the store and says what came.
pub async fn import(args: ImportArgs) -> Result<()> {
    let key = args.site_key.as_deref().map(|key| site_key(key, "--site-key")).transpose()?;
    let store = args.store.open().await?;
    let imported = store.import_site(&args.from, key.as_ref()).await;
    store.close().await;
    let moved = imported?;
    println!("imported {}: {moved}", args.from.display());
    Ok(())
}

fn site_key(key: &str, flag: &str) -> Result<SiteKey> {
    SiteKey::new(key.to_owned()).with_context(|| format!("{flag} {key:?} is not a site key"))
}
