//! Embeds the built web apps (`cargo xtask build-web` writes them to
//! `target/web`) in the relay binary, so a copied binary serves them with
//! no folder beside it.
//!
//! Writes `$OUT_DIR/web_files.rs`: one `EmbeddedFile` per file, sorted by
//! path, each `include_bytes!`-ed and with an ETag made from its content.
//! `main.rs` includes it and hands it to the library through `Config`, so
//! only the binary carries the bytes (the test crates that link the
//! library do not).
//!
//! Where no web build exists the list is empty and the web routes answer
//! 503, so the relay builds before the web apps do (CI's clippy). The
//! folder is created empty then: cargo reruns a build script on every
//! build while a watched path is missing, and an existing folder lets it
//! rerun only when `build-web` replaces the folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn main() {
    println!("cargo:rerun-if-env-changed=KEFU_EMBED_WEB_DIR");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let web = web_dir();
    if !web.exists() {
        let _ = std::fs::create_dir_all(&web);
    }
    println!("cargo:rerun-if-changed={}", web.display());

    let mut files = Vec::new();
    // A folder without the loader is not a web build (an empty one made
    // above, or one that build-web is halfway through).
    if web.join("kefu.js").is_file() {
        collect(&web, &web, &mut files);
    }
    files.sort();

    let mut code = String::from("&[\n");
    for relative in &files {
        let absolute = web.join(relative);
        let bytes = std::fs::read(&absolute).expect("reading a web file");
        let digest = Sha256::digest(&bytes);
        let etag: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        writeln!(
            code,
            "    EmbeddedFile {{ path: {relative:?}, bytes: include_bytes!({absolute:?}), etag: \"\\\"{etag}\\\"\" }},",
            absolute = absolute.display().to_string(),
        )
        .expect("writing to a String");
    }
    code.push(']');
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("web_files.rs");
    std::fs::write(out, code).expect("writing web_files.rs");
    if files.is_empty() {
        println!(
            "cargo:warning=no web build in {}: the relay's web routes will answer 503 (run cargo xtask build-web, then build again)",
            web.display()
        );
    }
}

/// `KEFU_EMBED_WEB_DIR`, else `target/web` where the xtask writes it.
fn web_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KEFU_EMBED_WEB_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| manifest.join("../target"), |dir| manifest.join(dir));
    target.join("web")
}

/// Every file under `dir`, as `/`-separated paths relative to `root`;
/// `sizes.json` (the build's report) is not served and stays out.
fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("listing the web build") {
        let path = entry.expect("listing the web build").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).expect("a path under the root").to_string_lossy().replace('\\', "/");
            if relative != "sizes.json" {
                files.push(relative);
            }
        }
    }
}
