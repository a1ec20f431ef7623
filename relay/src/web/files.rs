//! Where the web apps' bytes come from, and the one way they are served.
//!
//! [`WebFiles`] is either the copy built into the binary (`build.rs`
//! embeds `target/web`; the default) or a folder on disk (`--web-dir`,
//! for development: a new `build-web` is served without a restart). Both
//! answer the same [`WebFiles::respond`]: the precompressed sibling the
//! request accepts (`.br`, then `.gz`, else the file itself), its content
//! type from the name, an `ETag`, and 304 for a matching `If-None-Match`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// One file of the web build, compiled into the binary.
#[derive(Debug)]
pub struct EmbeddedFile {
    /// Relative to the build's root, `/`-separated: `assets/kefu-….wasm`.
    pub path: &'static str,
    pub bytes: &'static [u8],
    /// Quoted, from the content's hash.
    pub etag: &'static str,
}

/// The web build compiled into the binary, sorted by path; empty where
/// none existed at compile time.
#[derive(Clone, Copy, Default)]
pub struct EmbeddedWeb(pub &'static [EmbeddedFile]);

impl std::fmt::Debug for EmbeddedWeb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EmbeddedWeb({} files)", self.0.len())
    }
}

impl EmbeddedWeb {
    fn get(&self, path: &str) -> Option<&'static EmbeddedFile> {
        let files: &'static [EmbeddedFile] = self.0;
        files.binary_search_by(|file| file.path.cmp(path)).ok().map(|i| &files[i])
    }
}

/// The web apps, from the binary or from a folder.
#[derive(Debug, Clone)]
pub enum WebFiles {
    Embedded(EmbeddedWeb),
    Folder(Arc<PathBuf>),
}

/// A file's bytes and validator.
#[derive(Debug)]
pub struct WebFile {
    pub bytes: Bytes,
    pub etag: String,
}

/// Longest path looked up; built names are short.
const MAX_PATH: usize = 1024;

impl WebFiles {
    /// `--web-dir` when given, else the embedded copy.
    pub fn from_config(config: &crate::Config) -> WebFiles {
        match &config.web_dir {
            Some(dir) => WebFiles::Folder(Arc::new(dir.clone())),
            None => WebFiles::Embedded(config.embedded_web),
        }
    }

    /// Where the files come from, for logs and `kefu-relay check`.
    pub fn describe(&self) -> String {
        match self {
            WebFiles::Embedded(web) => format!("embedded in the binary ({} files)", web.0.len()),
            WebFiles::Folder(dir) => format!("folder {}", dir.display()),
        }
    }

    /// Whether there is a web build: its loader, `kefu.js`, exists. A
    /// folder is asked each time, so a build made after the start counts.
    pub fn is_built(&self) -> bool {
        match self {
            WebFiles::Embedded(web) => web.get("kefu.js").is_some(),
            WebFiles::Folder(dir) => dir.join("kefu.js").is_file(),
        }
    }

    /// The file at `path` (relative, `/`-separated), if there is one.
    /// Paths with `..`, `.`, empty or hidden segments, or odd characters
    /// are never looked up: built names are plain.
    pub async fn read(&self, path: &str) -> Option<WebFile> {
        if !is_plain(path) {
            return None;
        }
        match self {
            WebFiles::Embedded(web) => {
                web.get(path).map(|file| WebFile { bytes: Bytes::from_static(file.bytes), etag: file.etag.to_owned() })
            }
            WebFiles::Folder(dir) => {
                let full = dir.join(path);
                let metadata = tokio::fs::metadata(&full).await.ok().filter(std::fs::Metadata::is_file)?;
                let bytes = tokio::fs::read(&full).await.ok()?;
                let modified = metadata
                    .modified()
                    .ok()
                    .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |since| since.as_nanos());
                Some(WebFile { bytes: bytes.into(), etag: format!("\"{:x}-{modified:x}\"", metadata.len()) })
            }
        }
    }

    /// A GET (or HEAD: axum drops the body) for `path`: the best encoding
    /// the request accepts, 304 when its validator matches, 404 when the
    /// file does not exist.
    pub async fn respond(&self, path: &str, request: &HeaderMap) -> Response {
        let accepted = request.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mut found = None;
        for (suffix, encoding) in [(".br", "br"), (".gz", "gzip")] {
            if accepts(accepted, encoding)
                && let Some(file) = self.read(&format!("{path}{suffix}")).await
            {
                found = Some((file, Some(encoding)));
                break;
            }
        }
        if found.is_none() {
            found = self.read(path).await.map(|file| (file, None));
        }
        let Some((file, encoding)) = found else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let etag = HeaderValue::from_str(&file.etag).ok();
        let matches = |tags: &str| tags.split(',').any(|tag| tag.trim() == file.etag || tag.trim() == "*");
        let not_modified = request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(matches);
        let mut response = if not_modified {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            Body::from(file.bytes).into_response()
        };
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
        if let Some(encoding) = encoding {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        if let Some(etag) = etag {
            headers.insert(header::ETAG, etag);
        }
        response
    }
}

/// Only names a web build makes: segments of letters, digits, `-`, `_`
/// and `.`, none empty or starting with a dot.
fn is_plain(path: &str) -> bool {
    path.len() <= MAX_PATH
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && !segment.starts_with('.')
                && segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

/// Whether `Accept-Encoding` lists `encoding` without `q=0`.
fn accepts(accepted: &str, encoding: &str) -> bool {
    accepted.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        parts.next().is_some_and(|name| name.eq_ignore_ascii_case(encoding))
            && !parts
                .any(|param| param.replace(' ', "").strip_prefix("q=").is_some_and(|q| q.parse::<f32>() == Ok(0.0)))
    })
}

/// The types a web build has; anything else is bytes.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_are_looked_up() {
        assert!(is_plain("assets/kefu-widget-0123abcd_bg.wasm"));
        assert!(is_plain("assets/snippets/x-1/inline0.js"));
        for odd in ["", "../secret", "assets/../x", "assets//x", "./x", ".hidden", "a\\b", "a\0b", "a%2e", "/abs"] {
            assert!(!is_plain(odd), "{odd:?}");
        }
    }

    #[test]
    fn encodings_refused_with_q_zero_are_not_accepted() {
        assert!(accepts("gzip, deflate, br", "br"));
        assert!(accepts("br;q=0.5", "br"));
        assert!(!accepts("br;q=0, gzip", "br"));
        assert!(!accepts("gzip", "br"));
    }
}
