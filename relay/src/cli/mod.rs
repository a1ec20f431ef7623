//! `kefu-relay`'s command line: `serve` (the default) and the operator's
//! subcommands.
//!
//! - `serve`: runs the relay ([`crate::run`]); also what `kefu-relay
//!   --listen …` with no subcommand does, so older invocations keep working.
//! - `site create` / `site list` ([`site`]): make a second site (tenant)
//!   with its first admin, and list them, straight in the store.
//! - `check` ([`check`]): the self-check, one line per check, non-zero exit
//!   when any fails.
//! - `backup` / `restore` ([`backup`]): a snapshot of the embedded store
//!   while the relay runs, and putting one back.
//!
//! The subcommands open the same store as `serve`, by the same flags and
//! environment variables (`--data-dir`, `--database-url`).

pub mod backup;
pub mod check;
pub mod site;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::Config;

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "kefu-relay",
    version,
    about = "Kefu's relay: live chat server",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `serve`'s flags, for `kefu-relay` without a subcommand.
    #[command(flatten)]
    pub serve: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay (the default).
    Serve(Config),
    /// Sites (tenants): each with its own key, agents and conversations.
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
    /// Check that this relay can run: store, Redis, data dir, web apps,
    /// listen address. One line per check; exits non-zero on a failure.
    Check(Config),
    /// Write a snapshot of the embedded store while the relay runs
    /// (PostgreSQL: use pg_dump).
    Backup(backup::BackupArgs),
    /// Put a snapshot from `backup` in place of the store; the relay must
    /// be stopped. The store it replaces is kept.
    Restore(backup::RestoreArgs),
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Create a site and its first admin.
    Create(site::CreateArgs),
    /// List every site with its key and name.
    List(StoreArgs),
}

/// Where the store is: the same flags and variables as `serve`'s.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Folder for the SQLite store; created if missing.
    #[arg(long, env = "KEFU_DATA_DIR", default_value = "./kefu-data")]
    pub data_dir: PathBuf,

    /// A `postgres://` URL instead of the SQLite file in `data_dir`.
    #[arg(long, env = "KEFU_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl StoreArgs {
    pub async fn open(&self) -> anyhow::Result<crate::store::Store> {
        let store = crate::store::Store::connect(self.database_url.as_deref(), &self.data_dir).await?;
        Ok(store)
    }
}

impl Cli {
    /// What to run: `serve` when no subcommand was given.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_without_a_subcommand_mean_serve() {
        let cli = Cli::try_parse_from(["kefu-relay", "--listen", "127.0.0.1:0", "--data-dir", "/tmp/x"]).unwrap();
        let Command::Serve(config) = cli.into_command() else { panic!("not serve") };
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));

        let cli = Cli::try_parse_from(["kefu-relay", "serve", "--listen", "127.0.0.1:9"]).unwrap();
        let Command::Serve(config) = cli.into_command() else { panic!("not serve") };
        assert_eq!(config.listen.port(), 9);
    }

    #[test]
    fn site_create_takes_its_own_admin_flags() {
        let cli = Cli::try_parse_from([
            "kefu-relay",
            "site",
            "create",
            "--key",
            "acme",
            "--name",
            "Acme",
            "--admin-email",
            "boss@acme.test",
            "--data-dir",
            "/tmp/d",
        ])
        .unwrap();
        let Command::Site { command: SiteCommand::Create(args) } = cli.into_command() else { panic!("not create") };
        assert_eq!(args.key, "acme");
        assert_eq!(args.admin_password, None);
        assert_eq!(args.store.data_dir, PathBuf::from("/tmp/d"));
        // Serve's flags do not go before a subcommand.
        assert!(Cli::try_parse_from(["kefu-relay", "--listen", "127.0.0.1:0", "site", "list"]).is_err());
    }
}
