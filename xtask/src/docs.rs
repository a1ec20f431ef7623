//! The book in `docs/` (mdBook): built by `cargo xtask test`, with every
//! link of the book and the README checked, so a moved section or a
//! renamed file fails the build instead of leaving a dead link.
//!
//! A link is checked when it is relative: its file must exist (relative to
//! the page), and its `#anchor` must be a heading of the target page (or of
//! the same page), with headings turned into anchors as mdBook and GitHub
//! both do (lowercase, spaces to dashes, other punctuation dropped).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{repo_root, run};

/// The mdBook release the book is built with (`cargo install`ed if
/// missing).
const MDBOOK_VERSION: &str = "0.5.4";

/// Builds the book into `docs/book` and checks every relative link.
pub(crate) fn check() -> Result<()> {
    let root = repo_root();
    install_mdbook()?;
    let book = root.join("docs");
    run("mdbook", &["build", book.to_str().context("a UTF-8 path")?])?;
    let mut pages = vec![root.join("README.md")];
    for entry in fs::read_dir(book.join("src"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    let mut broken = Vec::new();
    for page in &pages {
        let text = fs::read_to_string(page).with_context(|| format!("reading {}", page.display()))?;
        for target in links(&text) {
            if let Err(why) = check_link(page, &target) {
                let shown = page.strip_prefix(&root).unwrap_or(page).display().to_string();
                broken.push(format!("{shown}: ({target}): {why}"));
            }
        }
    }
    if !broken.is_empty() {
        bail!("{} broken link(s):\n{}", broken.len(), broken.join("\n"));
    }
    eprintln!("docs: the book builds; every link of {} pages resolves", pages.len());
    Ok(())
}

fn install_mdbook() -> Result<()> {
    let installed = Command::new("mdbook").arg("--version").output();
    let fits =
        installed.is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(MDBOOK_VERSION));
    if !fits {
        run("cargo", &["install", "mdbook", "--locked", "--version", MDBOOK_VERSION])?;
    }
    Ok(())
}

/// The targets of a page's `[text](target)` and `![alt](target)` links,
/// outside code blocks and code spans.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Code spans hold examples, not links.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].trim();
            if !target.is_empty() && !target.contains(' ') {
                found.push(target.to_owned());
            }
            rest = &rest[end..];
        }
    }
    found
}

fn check_link(page: &Path, target: &str) -> Result<(), String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return Ok(());
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let file: PathBuf = if path.is_empty() { page.to_owned() } else { page.parent().unwrap_or(page).join(path) };
    if !file.exists() {
        return Err(format!("{} does not exist", file.display()));
    }
    let Some(anchor) = anchor else { return Ok(()) };
    let text = fs::read_to_string(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    if anchors(&text).contains(anchor) { Ok(()) } else { Err(format!("no heading makes #{anchor} there")) }
}

/// The anchors a page's headings make.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut anchors = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            let heading = line.trim_start_matches('#');
            if heading.starts_with(' ') {
                anchors.insert(anchor(heading));
            }
        }
    }
    anchors
}

/// A heading's anchor: lowercase, spaces to dashes, only letters, digits,
/// `-` and `_` kept.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_become_anchors_as_mdbook_makes_them() {
        assert_eq!(anchor(" The agent console"), "the-agent-console");
        assert_eq!(anchor(" How nothing is lost, doubled or reordered"), "how-nothing-is-lost-doubled-or-reordered");
        assert_eq!(anchor(" `kefu-relay check`"), "kefu-relay-check");
    }

    #[test]
    fn links_in_code_are_not_links() {
        let text = "see [a](a.md#x) and `[b](b.md)`\n```\n[c](c.md)\n```\n![plot](p.svg)";
        assert_eq!(links(text), ["a.md#x", "p.svg"]);
    }
}
