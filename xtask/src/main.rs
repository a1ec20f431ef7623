//! `cargo xtask`: the README's two commands, and what CI runs.
//!
//! - `cargo xtask start`: install what is missing, build the web apps and
//!   the relay (which embeds them), and run the relay on the embedded
//!   store in `./kefu-data`; a line per step, as the first build is long.
//! - `cargo xtask test`: install what is missing, then every check CI runs:
//!   formatting, clippy, the book in `docs/` with its links (see [`docs`]),
//!   the web apps' build, the whole test suite against
//!   real relays, and the protocol crate built for `wasm32-unknown-unknown`.
//! - `cargo xtask build-web`: only the web apps, into `target/web` (see
//!   [`web`]).
//! - `cargo xtask dist`: the release archive in `target/dist` (see
//!   [`dist`]): the relay with the web apps inside, static for x86_64
//!   Linux (musl) where that target can be built, with a systemd unit, an
//!   example settings file and INSTALL.md.
//! - `cargo xtask docs`: the book in `docs/` built into `docs/book`, and
//!   every link of it and of the README checked (see [`docs`]).
//! - `cargo xtask wasm-names`: the widget's wasm as shipped but with its
//!   function names, for `twiggy` (see [`web::build_named_widget`]).
//! - `cargo xtask bench [--quick] [kefu-bench flags...]`: the benchmarks
//!   (`bench/`): Kefu against Socket.IO and nchan, results and plots in
//!   `bench/results`, then the widget's weight.
//!
//! Installing is idempotent and touches the Rust toolchain (rustup targets,
//! cargo-installed tools) and the npm tools in `tools/` (`npm ci`), so a
//! fresh machine needs nothing beyond rustup, cargo and npm.

mod dist;
mod docs;
mod web;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let rest: Vec<String> = std::env::args().skip(2).collect();
    match task.as_str() {
        "start" => start(&rest),
        "test" => test(&rest),
        "build-web" => web::build().map(drop),
        "dist" => dist::build().map(drop),
        "docs" => docs::check(),
        "wasm-names" => web::build_named_widget().map(drop),
        "bench" => bench(&rest),
        _ => {
            eprintln!(
                "usage: cargo xtask start [relay flags...] | cargo xtask test [nextest filters...] | cargo xtask build-web | cargo xtask dist | cargo xtask docs | cargo xtask wasm-names | cargo xtask bench [--quick] [--only SCENARIO] [--repeat N]"
            );
            bail!("unknown task {task:?}")
        }
    }
}

fn start(relay_args: &[String]) -> Result<()> {
    step(1, 4, "installing what is missing (wasm32 target, npm tools, cargo tools)");
    install()?;
    step(2, 4, "building the web apps into target/web (the first time takes minutes)");
    web::build()?;
    step(3, 4, "building the relay in release, with the web apps inside");
    cargo(&["build", "--release", "--package", "kefu-relay", "--bin", "kefu-relay"])?;
    step(4, 4, "starting the relay (Ctrl-C stops it)");
    // The binary carries the web apps, so no --web-dir is needed.
    let mut args = vec!["run", "--release", "--quiet", "--package", "kefu-relay", "--bin", "kefu-relay", "--"];
    args.extend(relay_args.iter().map(String::as_str));
    cargo(&args)
}

/// A progress line: the first build prints little of its own for minutes.
fn step(n: usize, of: usize, what: &str) {
    eprintln!("==> [{n}/{of}] {what}");
}

fn test(filters: &[String]) -> Result<()> {
    install()?;
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    // The book in docs/, and every link of it and of the README.
    docs::check()?;
    // The relay serves target/web, and the browser tests open it.
    web::build()?;
    // The end-to-end tests start the relay and the examples as child
    // processes.
    cargo(&["build", "--package", "kefu-relay", "--bin", "kefu-relay"])?;
    cargo(&["build", "--package", "kefu-examples", "--examples"])?;
    let mut nextest = vec!["nextest", "run", "--workspace"];
    // nextest refuses --no-fail-fast next to --no-run (build the tests only).
    if !filters.iter().any(|f| f == "--no-run") {
        nextest.push("--no-fail-fast");
    }
    nextest.extend(filters.iter().map(String::as_str));
    cargo(&nextest)?;
    if filters.is_empty() {
        cargo(&["test", "--workspace", "--doc"])?;
        cargo(&["build", "--package", "kefu-protocol", "--target", "wasm32-unknown-unknown"])?;
    }
    Ok(())
}

/// Builds the relay in release and runs the benchmarks against it; then,
/// where the example exists, the widget's weight into the same folder.
fn bench(args: &[String]) -> Result<()> {
    let root = repo_root();
    std::env::set_current_dir(&root).with_context(|| format!("entering {}", root.display()))?;
    cargo(&["build", "--release", "--package", "kefu-relay", "--bin", "kefu-relay"])?;
    let mut run = vec!["run", "--release", "--package", "kefu-bench", "--"];
    run.extend(args.iter().map(String::as_str));
    cargo(&run)?;
    if root.join("tests/examples/widget_weight.rs").exists() {
        let out = args
            .iter()
            .position(|a| a == "--out")
            .and_then(|i| args.get(i + 1))
            .map_or("bench/results", String::as_str);
        cargo(&["run", "--release", "--package", "kefu-tests", "--example", "widget_weight", "--", "--out", out])?;
    }
    Ok(())
}

/// Installs what the build and the tests need, if it is missing.
fn install() -> Result<()> {
    // The wasm32 target and the npm tools in tools/.
    web::install_tools()?;
    for component in ["rustfmt", "clippy"] {
        let installed = output("rustup", &["component", "list", "--installed"])?;
        if !installed.lines().any(|c| c.starts_with(component)) {
            run("rustup", &["component", "add", component])?;
        }
    }
    if Command::new("cargo").args(["nextest", "--version"]).output().map(|o| !o.status.success()).unwrap_or(true) {
        run("cargo", &["install", "cargo-nextest", "--locked"])?;
    }
    install_smtp_server()?;
    Ok(())
}

/// The version of aiosmtpd (PyPI) the mail tests run as their SMTP server.
const AIOSMTPD: &str = "aiosmtpd==1.4.6";

/// aiosmtpd for the mail tests (`tests/src/smtp.rs`), into the user's
/// site-packages when `python3` lacks it. A Debian Python that refuses
/// user installs (PEP 668) is asked again with its override: the tests'
/// one package, in the user's folder, beside nothing of the system's.
fn install_smtp_server() -> Result<()> {
    let present = Command::new("python3").args(["-c", "import aiosmtpd"]).output();
    if present.is_ok_and(|output| output.status.success()) {
        return Ok(());
    }
    let user = ["-m", "pip", "install", "--user", AIOSMTPD];
    if run("python3", &user).is_err() {
        run("python3", &["-m", "pip", "install", "--user", "--break-system-packages", AIOSMTPD])?;
    }
    Ok(())
}

/// The workspace root (xtask lives one level below it).
fn repo_root() -> PathBuf {
    let xtask = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().map_or(xtask.clone(), PathBuf::from)
}

fn cargo(args: &[&str]) -> Result<()> {
    run(&std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()), args)
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    run_with(program, args, &[])
}

/// Like [`run`], with extra environment variables.
fn run_with(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed: {status}", args.join(" "));
    }
    Ok(())
}

fn output(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
