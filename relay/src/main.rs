//! `kefu-relay`: parses the command line and runs the relay or one of the
//! operator's subcommands (`kefu_relay::cli`).
//!
//! The web apps are compiled in here (`build.rs` writes the list), not in
//! the library, so only the binary carries them.

use std::io::IsTerminal;

use kefu_relay::cli::{Command, Invocation, Serve, SiteCommand};
use kefu_relay::config::LogFormat;
use kefu_relay::web::{EmbeddedFile, EmbeddedWeb};
use kefu_relay::{Config, cli};
use tracing_subscriber::EnvFilter;

/// The web build as it was when this binary was compiled.
static WEB_FILES: &[EmbeddedFile] = include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

fn main() -> anyhow::Result<()> {
    // Nothing logs before the command line is read, so the log can be
    // set up in the format it asks for.
    let Invocation { command, matches } = match cli::parse(std::env::args_os().collect()) {
        Ok(invocation) => invocation,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(2);
        }
    };
    let log_format = match &command {
        Command::Serve(Serve { config, .. }) | Command::Check(config) => config.log_format,
        _ => LogFormat::Text,
    };
    start_log(log_format);
    let runtime = || tokio::runtime::Builder::new_current_thread().enable_all().build();
    match command {
        Command::Serve(Serve { print_config: true, .. }) => {
            print!("{}", cli::settings::effective(&matches));
            Ok(())
        }
        Command::Serve(Serve { config, .. }) => run_relay(embedded(config)),
        Command::Site { command: SiteCommand::Create(args) } => {
            operator(runtime()?.block_on(kefu_relay::cli::site::create(args)))
        }
        Command::Site { command: SiteCommand::List(args) } => {
            operator(runtime()?.block_on(kefu_relay::cli::site::list(args)))
        }
        Command::Backup(args) => operator(runtime()?.block_on(kefu_relay::cli::backup::backup(args))),
        Command::Restore(args) => operator(runtime()?.block_on(kefu_relay::cli::backup::restore(args))),
        Command::Export(args) => operator(runtime()?.block_on(kefu_relay::cli::export::export(args))),
        Command::Import(args) => operator(runtime()?.block_on(kefu_relay::cli::export::import(args))),
        Command::Check(config) => {
            if runtime()?.block_on(kefu_relay::cli::check::run(&embedded(config))) {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}

/// The log on stderr: lines for people, or one JSON object a line for a
/// collector; which ones by `RUST_LOG` (`info` when unset).
fn start_log(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => log.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => log.json().init(),
    }
}

/// An operator's subcommand failed: one plain line for a person, not a
/// backtrace, and exit code 1.
fn operator(result: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// The config with the web build this binary carries.
fn embedded(mut config: Config) -> Config {
    config.embedded_web = EmbeddedWeb(WEB_FILES);
    config
}

fn run_relay(config: Config) -> anyhow::Result<()> {
    raise_open_file_limit();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads > 0 {
        runtime.worker_threads(config.worker_threads);
    }
    runtime.enable_all().build()?.block_on(serve(config))
}

/// Every connection is a file descriptor, and the usual soft limit (1024)
/// is far below what one relay holds: go up to the hard limit, as servers
/// commonly do.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(%error, "could not raise the open file limit");
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // `run` loads the certificate again; this is so that a bad one stops
    // the start before it says it listens.
    if let Some(files) = kefu_relay::tls::Files::from_config(&config)? {
        files.load()?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    // SIGHUP's default action ends the process. Once tokio handles a signal
    // it does so for the rest of the process, so from here a SIGHUP that
    // comes before `run` listens for it is dropped, not fatal.
    #[cfg(unix)]
    let _ = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    // On stdout, for people and for scripts (and tests) that start the
    // relay on port 0 and need to know where it went.
    let scheme = if config.tls_cert.is_some() { "https" } else { "http" };
    println!("kefu-relay listening on {scheme}://{}", listener.local_addr()?);
    kefu_relay::run(listener, config, shutdown_signal()).await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
