//! `kefu-relay backup --out FILE` and `kefu-relay restore --from FILE`:
//! a snapshot of the embedded store while the relay runs, and putting one
//! back while it does not (see `store::backup` for how).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::StoreArgs;

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The snapshot to write: a SQLite file; must not exist.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// A snapshot made by `kefu-relay backup`.
    #[arg(long)]
    pub from: PathBuf,
    /// The data folder to restore into; the store there now is kept beside
    /// it as `kefu-before-restore-SECONDS.db`.
    #[arg(long, env = "KEFU_DATA_DIR", default_value = "./kefu-data")]
    pub data_dir: PathBuf,
}

/// Writes the snapshot and says what it holds.
pub async fn backup(args: BackupArgs) -> Result<()> {
    let store = args.store.open().await?;
    let made = store.backup_into(&args.out).await;
    store.close().await;
    let contents = made?;
    println!("wrote {}: {contents}", args.out.display());
    Ok(())
}

/// Restores the snapshot and says what the store holds now.
pub async fn restore(args: RestoreArgs) -> Result<()> {
    let (contents, kept) = crate::store::restore(&args.data_dir, &args.from).await?;
    if let Some(kept) = kept {
        println!("kept the previous store as {}", kept.display());
    }
    println!("restored {} into {}: {contents}", args.from.display(), args.data_dir.display());
    Ok(())
}
