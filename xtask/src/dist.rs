//! `cargo xtask dist`: the archive a site owner copies to a server.
//!
//! `target/dist/kefu-relay-VERSION-TARGET.tar.gz` holds one folder with
//! `kefu-relay` (release, the web apps embedded, stripped),
//! `kefu.toml.example` (every setting, for the settings file),
//! `kefu.env.example` (every setting as an environment variable),
//! `kefu-relay.service` (a systemd unit) and `INSTALL.md` (the book's
//! Install section).
//!
//! The binary is built for `x86_64-unknown-linux-musl`, statically linked,
//! when that target and a musl C compiler (`musl-gcc`, Debian's
//! `musl-tools`: ring and the bundled SQLite are C) are here; this task
//! adds the rustup target itself. Otherwise it builds for the host's gnu
//! target and says so: that binary needs glibc on the server.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const MUSL: &str = "x86_64-unknown-linux-musl";

/// Builds the archive and returns its path.
pub(crate) fn build() -> Result<PathBuf> {
    let root = crate::repo_root();
    std::env::set_current_dir(&root).with_context(|| format!("entering {}", root.display()))?;
    crate::step(1, 4, "building the web apps into target/web");
    crate::web::install_tools()?;
    crate::web::build()?;

    let (target, why) = pick_target();
    crate::step(2, 4, &format!("building the relay in release for {target} ({why})"));
    let mut args = vec!["build", "--release", "--package", "kefu-relay", "--bin", "kefu-relay"];
    let mut env = Vec::new();
    if target == MUSL {
        args.extend(["--target", MUSL]);
        env.push(("CC_x86_64_unknown_linux_musl", "musl-gcc"));
    }
    crate::run_with(&std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()), &args, &env)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let binary = if target == MUSL {
        target_dir.join(MUSL).join("release/kefu-relay")
    } else {
        target_dir.join("release/kefu-relay")
    };

    crate::step(3, 4, "assembling target/dist");
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("kefu-relay-{version}-{target}");
    let dist = target_dir.join("dist");
    let folder = dist.join(&name);
    if folder.exists() {
        fs::remove_dir_all(&folder)?;
    }
    fs::create_dir_all(&folder)?;
    let shipped = folder.join("kefu-relay");
    fs::copy(&binary, &shipped).with_context(|| format!("copying {}", binary.display()))?;
    // Symbols are most of a release binary's size and no help to a user.
    crate::run("strip", &[&shipped.to_string_lossy()])?;
    for file in ["kefu.toml.example", "kefu.env.example", "kefu-relay.service", "nginx.conf"] {
        fs::copy(root.join("dist").join(file), folder.join(file))?;
    }
    fs::write(folder.join("INSTALL.md"), install_page(&fs::read_to_string(root.join("docs/src/install.md"))?)?)?;

    crate::step(4, 4, "packing the archive");
    let archive = dist.join(format!("{name}.tar.gz"));
    crate::run("tar", &["-czf", &archive.to_string_lossy(), "-C", &dist.to_string_lossy(), &name])?;
    let size = |path: &Path| fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "{}\n  kefu-relay: {} bytes ({:.1} MiB), {}\n  archive: {} bytes ({:.1} MiB)",
        archive.display(),
        size(&shipped),
        size(&shipped) as f64 / 1_048_576.0,
        linking(&shipped),
        size(&archive),
        size(&archive) as f64 / 1_048_576.0,
    );
    Ok(archive)
}

/// musl where it can be built here, else the gnu host target; and why.
fn pick_target() -> (&'static str, String) {
    let has_cc = Command::new("musl-gcc").arg("--version").output().is_ok_and(|o| o.status.success());
    if !has_cc {
        return ("x86_64-unknown-linux-gnu", "no musl-gcc: apt-get install musl-tools for a static binary".into());
    }
    let installed = crate::output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !installed.lines().any(|line| line.trim() == MUSL) && crate::run("rustup", &["target", "add", MUSL]).is_err() {
        return ("x86_64-unknown-linux-gnu", format!("rustup could not add {MUSL}"));
    }
    (MUSL, "statically linked".into())
}

/// What `file` says about the binary's linking, when `file` is here.
fn linking(binary: &Path) -> String {
    let described = crate::output("file", &[&binary.to_string_lossy()]).unwrap_or_default();
    if described.contains("statically linked") || described.contains("static-pie linked") {
        "statically linked".into()
    } else if described.contains("dynamically linked") {
        "dynamically linked (needs glibc)".into()
    } else {
        "linking unknown".into()
    }
}

/// The book's `## Install` section (docs/src/install.md), as a page of its own.
fn install_page(readme: &str) -> Result<String> {
    let Some(start) = readme.find("\n## Install\n") else { bail!("docs/src/install.md has no `## Install` section") };
    let section = &readme[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 4);
    Ok(format!(
        "# Installing Kefu\n\n(From the book's Install section, docs/src/install.md.)\n\n{}",
        section[..end].trim_start_matches("## Install\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::install_page;

    #[test]
    fn the_install_page_is_the_readme_section_alone() {
        let readme = "# Kefu\n\nintro\n\n## Install\n\ncopy it\n\n### Sub\n\nmore\n\n## Quick start\n\nother\n";
        let page = install_page(readme).unwrap();
        assert!(page.contains("copy it") && page.contains("### Sub"), "{page}");
        assert!(!page.contains("Quick start") && !page.contains("intro"), "{page}");
        assert!(install_page("# no such section").is_err());
    }
}
