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
//! - `export` / `import` ([`export`]): one site's data to a file, and into
//!   another server's store, to move the site there.
//!
//! The subcommands open the same store as `serve`, by the same flags and
//! environment variables (`--data-dir`, `--database-url`), and read the
//! same settings file ([`settings`]).

pub mod backup;
pub mod check;
pub mod export;
pub mod settings;
pub mod site;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

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
    pub serve: Serve,
    /// A TOML file of settings, named as the flags (`listen = "0.0.0.0:8080"`);
    /// flags and environment variables override it.
    #[arg(long = settings::FLAG, env = "KEFU_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

/// `serve`: the relay's settings, or printing them.
#[derive(Debug, Clone, Args)]
pub struct Serve {
    #[command(flatten)]
    pub config: Config,
    /// Print the settings this command line, environment and settings
    /// file make, as a settings file with its secrets masked, and exit.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay (the default).
    Serve(Serve),
    /// Sites (tenants): each with its own key, agents and conversations.
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
    /// Check that this relay can run: store, Redis, data dir, web apps,
    /// TLS certificate and key, listen address. One line per check; exits
    /// non-zero on a failure.
    Check(Config),
    /// Write a snapshot of the embedded store while the relay runs
    /// (PostgreSQL: use pg_dump).
    Backup(backup::BackupArgs),
    /// Put a snapshot from `backup` in place of the store; the relay must
    /// be stopped. The store it replaces is kept.
    Restore(backup::RestoreArgs),
    /// Write one site's data to a file (versioned, gzip-compressed JSON
    /// Lines) while the relay runs, to move it to another server.
    Export(export::ExportArgs),
    /// Write a site from `export`'s file into this store, in one
    /// transaction, with ids of its own.
    Import(export::ImportArgs),
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

/// A command line as read.
#[derive(Debug)]
pub struct Invocation {
    pub command: Command,
    /// Where each value came from, for `--print-config`.
    pub matches: ArgMatches,
}

/// Reads a command line with the settings file's values as the defaults
/// of the flags they name. A bad settings file is an error; clap's own
/// errors, `--help` and `--version` exit here, as in `Cli::parse`.
pub fn parse(args: Vec<OsString>) -> anyhow::Result<Invocation> {
    let mut command = Cli::command();
    if let Some(path) = settings::path(&args) {
        command = settings::install(command, &path)?;
    }
    let matches = command.get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    Ok(Invocation { command: cli.into_command(), matches })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_without_a_subcommand_mean_serve() {
        let cli = Cli::try_parse_from(["kefu-relay", "--listen", "127.0.0.1:0", "--data-dir", "/tmp/x"]).unwrap();
        let Command::Serve(Serve { config, .. }) = cli.into_command() else { panic!("not serve") };
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));

        let cli = Cli::try_parse_from(["kefu-relay", "serve", "--listen", "127.0.0.1:9"]).unwrap();
        let Command::Serve(Serve { config, .. }) = cli.into_command() else { panic!("not serve") };
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

    fn parse_with_file(contents: &str, line: &[&str]) -> anyhow::Result<Command> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("kefu.toml");
        std::fs::write(&file, contents)?;
        let mut args: Vec<OsString> = line.iter().map(OsString::from).collect();
        args.extend([OsString::from("--config"), file.into_os_string()]);
        Ok(parse(args)?.command)
    }

    #[test]
    fn the_file_sets_what_no_flag_does() {
        let file = "listen = \"127.0.0.1:7\"\nredis-prefix = \"f\"\ntrusted_proxy = [\"10.0.0.0/8\"]\n";
        let command = parse_with_file(file, &["kefu-relay", "serve", "--redis-prefix", "flag"]).unwrap();
        let Command::Serve(Serve { config, .. }) = command else { panic!("not serve") };
        assert_eq!(config.listen.port(), 7);
        assert_eq!(config.redis_prefix, "flag");
        assert_eq!(config.trusted_proxies.len(), 1);
        // And without a subcommand too.
        let Command::Serve(Serve { config, .. }) = parse_with_file(file, &["kefu-relay"]).unwrap() else {
            panic!("not serve")
        };
        assert_eq!(config.listen.port(), 7);
    }

    #[test]
    fn other_subcommands_take_only_the_store_from_the_file() {
        let file = "data-dir = \"/srv/kefu\"\nadmin-email = \"serve@x.test\"\nadmin-password = \"not this one\"\n";
        let line = ["kefu-relay", "site", "create", "--key", "k", "--name", "N", "--admin-email", "a@b.test"];
        let Command::Site { command: SiteCommand::Create(args) } = parse_with_file(file, &line).unwrap() else {
            panic!("not create")
        };
        assert_eq!(args.store.data_dir, PathBuf::from("/srv/kefu"));
        assert_eq!(args.admin_email, "a@b.test");
        assert_eq!(args.admin_password, None, "serve's admin password is not the new site's");
        let restore = parse_with_file(file, &["kefu-relay", "restore", "--from", "x.db"]).unwrap();
        let Command::Restore(args) = restore else { panic!("not restore") };
        assert_eq!(args.data_dir, PathBuf::from("/srv/kefu"));
        let export = parse_with_file(file, &["kefu-relay", "export", "--site", "demo", "--out", "x"]).unwrap();
        let Command::Export(args) = export else { panic!("not export") };
        assert_eq!((args.store.data_dir, args.site.as_str()), (PathBuf::from("/srv/kefu"), "demo"));
        let import = parse_with_file(file, &["kefu-relay", "import", "--from", "x"]).unwrap();
        let Command::Import(args) = import else { panic!("not import") };
        assert_eq!((args.store.data_dir, args.site_key), (PathBuf::from("/srv/kefu"), None));
    }

    #[test]
    fn an_unknown_key_or_a_bad_value_names_itself() {
        let error = parse_with_file("lisen = 1\n", &["kefu-relay"]).unwrap_err().to_string();
        assert!(error.contains("unknown setting `lisen`") && error.contains("kefu.toml"), "{error}");
        let error = parse_with_file("listen = [\"a\", \"b\"]\n", &["kefu-relay"]).unwrap_err().to_string();
        assert!(error.contains("`listen` takes one value"), "{error}");
        let error = parse_with_file("drain-ms = -1\n", &["kefu-relay"]).unwrap_err().to_string();
        assert!(error.contains("`drain-ms` = \"-1\""), "{error}");
        let error = parse_with_file("config = \"other.toml\"\n", &["kefu-relay"]).unwrap_err().to_string();
        assert!(error.contains("unknown setting `config`"), "{error}");
    }
}
