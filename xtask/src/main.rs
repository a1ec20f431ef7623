//! `cargo xtask`: the README's two commands, and what CI runs.
//!
//! - `cargo xtask start`: install what is missing, build, and run the relay
//!   on the embedded store in `./kefu-data`.
//! - `cargo xtask test`: install what is missing, then every check CI runs:
//!   formatting, clippy, the whole test suite against real relays, and the
//!   protocol crate built for `wasm32-unknown-unknown`.
//!
//! Installing is idempotent and only touches the Rust toolchain (rustup
//! targets, cargo-installed tools), so a fresh machine needs nothing else.

use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let rest: Vec<String> = std::env::args().skip(2).collect();
    match task.as_str() {
        "start" => start(&rest),
        "test" => test(&rest),
        _ => {
            eprintln!("usage: cargo xtask start [relay flags...] | cargo xtask test [nextest filters...]");
            bail!("unknown task {task:?}")
        }
    }
}

fn start(relay_args: &[String]) -> Result<()> {
    install()?;
    cargo(&["build", "--release", "--package", "kefu-relay"])?;
    let mut args = vec!["run", "--release", "--quiet", "--package", "kefu-relay", "--"];
    args.extend(relay_args.iter().map(String::as_str));
    cargo(&args)
}

fn test(filters: &[String]) -> Result<()> {
    install()?;
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    // The end-to-end tests start the relay and the examples as child
    // processes.
    cargo(&["build", "--package", "kefu-relay", "--bin", "kefu-relay"])?;
    cargo(&["build", "--package", "kefu-examples", "--examples"])?;
    let mut nextest = vec!["nextest", "run", "--workspace", "--no-fail-fast"];
    nextest.extend(filters.iter().map(String::as_str));
    cargo(&nextest)?;
    if filters.is_empty() {
        cargo(&["test", "--workspace", "--doc"])?;
        cargo(&["build", "--package", "kefu-protocol", "--target", "wasm32-unknown-unknown"])?;
    }
    Ok(())
}

/// Installs what the build and the tests need, if it is missing.
fn install() -> Result<()> {
    let targets = output("rustup", &["target", "list", "--installed"])?;
    if !targets.lines().any(|t| t.trim() == "wasm32-unknown-unknown") {
        run("rustup", &["target", "add", "wasm32-unknown-unknown"])?;
    }
    for component in ["rustfmt", "clippy"] {
        let installed = output("rustup", &["component", "list", "--installed"])?;
        if !installed.lines().any(|c| c.starts_with(component)) {
            run("rustup", &["component", "add", component])?;
        }
    }
    if Command::new("cargo").args(["nextest", "--version"]).output().map(|o| !o.status.success()).unwrap_or(true) {
        run("cargo", &["install", "cargo-nextest", "--locked"])?;
    }
    Ok(())
}

fn cargo(args: &[&str]) -> Result<()> {
    run(&std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()), args)
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program).args(args).status().with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed: {status}", args.join(" "));
    }
    Ok(())
}

fn output(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
