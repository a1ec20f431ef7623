//! The built web apps, served from `Config::web_dir`.
//!
//! `cargo xtask build-web` writes that folder: `kefu.js` (the loader site
//! owners embed), `widget.html` (the chat page, in an iframe or full page),
//! `demo.html`, and `assets/` with content-hashed file names. Every file
//! has `.br` and `.gz` siblings made at build time, so the relay only picks
//! one by the request's `Accept-Encoding` and never compresses on the fly.
//!
//! | path | file | cache |
//! | --- | --- | --- |
//! | `/kefu.js` | `kefu.js` | 5 minutes: the URL is fixed, so updates must reach pages soon |
//! | `/assets/*` | `assets/*` | a year, immutable: a new build makes new names |
//! | `/widget` | `widget.html`, filled in ([`framing`]) | revalidated each time: it names the current assets |
//! | `/c/{site}` | `widget.html`, filled in | the same page, full screen, for webviews |
//! | `/kefu-sw.js` | `kefu-sw.js` | revalidated: the widget's service worker, new with each build |
//! | `/demo` | `demo.html` | revalidated |
//! | `/console` | `console.html` | revalidated; the agent console, never framed |
//! | `/` | redirect to `/demo` | |
//!
//! The widget page is the one file not served as it lies: the relay writes
//! into it which site it is for and which page it may talk to, and sets its
//! `frame-ancestors` to match ([`framing`]). It is small enough to go
//! uncompressed.
//!
//! When the folder is missing every one of these answers 503 with the
//! command that builds it, so a relay started before the build says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, get_service};
use tower_http::services::{ServeDir, ServeFile};

use crate::state::AppState;

/// What a request for a web app gets when `cargo xtask build-web` has not
/// run.
pub const NOT_BUILT: &str = "web apps not built: run cargo xtask build-web";

const LOADER_CACHE: &str = "public, max-age=300";
const HASHED_CACHE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// The widget page's policy. Any site may frame it (`frame-ancestors *`,
/// and no `X-Frame-Options`) unless its admin listed allowed origins (see
/// [`framing`]); what runs inside is only our own module
/// script and wasm (the page has no inline script), talking only to this
/// relay. Inline styles stay allowed because the app sets `style`
/// attributes.
const WIDGET_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors *";

/// The agent console's policy: like the widget's, but no site may frame
/// it (clickjacking an agent's session), and it talks to this relay only.
const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Routes for kefu.js, the widget page, its assets, the demo page and the
/// agent console.
///
/// The widget page reads the site's allowed origins from the state's
/// store; every other route needs no state.
pub fn routes(web_dir: &Path) -> Router<AppState> {
    if !web_dir.is_dir() {
        tracing::warn!(web_dir = %web_dir.display(), "{NOT_BUILT}");
    }
    let widget = |route: MethodRouter<AppState>| {
        route.layer(middleware::map_response(|mut response: Response| async move {
            let headers = response.headers_mut();
            for (name, value) in [
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
                (HeaderName::from_static("permissions-policy"), "camera=(), microphone=(), geolocation=()"),
            ] {
                headers.insert(name, HeaderValue::from_static(value));
            }
            response
        }))
    };
    let assets = ServeDir::new(web_dir.join("assets"))
        .precompressed_br()
        .precompressed_gzip()
        .append_index_html_on_directories(false);

    let dir: Arc<PathBuf> = Arc::new(web_dir.to_owned());
    Router::new()
        .route(
            "/kefu.js",
            // A host page that isolates itself (COEP require-corp) may
            // still load the loader from our origin.
            file(
                web_dir.join("kefu.js"),
                &[
                    (header::CACHE_CONTROL, LOADER_CACHE),
                    (HeaderName::from_static("cross-origin-resource-policy"), "cross-origin"),
                ],
            ),
        )
        .nest_service(
            "/assets",
            with_headers(get_service(assets), &[(header::CACHE_CONTROL, HASHED_CACHE)])
                .layer(middleware::from_fn(missing_not_broken)),
        )
        .route("/widget", widget(get(framing::widget)))
        .route("/c/{site}", widget(get(framing::full_page)))
        // The widget's service worker: a fixed URL whose content changes
        // with every build, so browsers must ask each time.
        .route("/kefu-sw.js", file(web_dir.join("kefu-sw.js"), &[(header::CACHE_CONTROL, REVALIDATE)]))
        .route("/demo", file(web_dir.join("demo.html"), &[(header::CACHE_CONTROL, REVALIDATE)]))
        .route("/console", console(web_dir))
        .route("/", get(|| async { Redirect::temporary("/demo") }))
        .route_layer(middleware::from_fn(move |request: Request, next: Next| {
            let dir = Arc::clone(&dir);
            async move {
                if dir.is_dir() {
                    next.run(request).await
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, NOT_BUILT).into_response()
                }
            }
        }))
}

/// Longest asset path looked up on disk; built names are short.
const MAX_ASSET_PATH: usize = 1024;

/// `ServeDir` answers 500 for paths the file system refuses (a name over
/// its length limit, a file used as a folder): to a client those are
/// files that do not exist, and not the relay's failure. Overlong paths do
/// not reach the disk at all.
async fn missing_not_broken(request: Request, next: Next) -> Response {
    if request.uri().path().len() > MAX_ASSET_PATH {
        return StatusCode::NOT_FOUND.into_response();
    }
    let response = next.run(request).await;
    if response.status().is_server_error() {
        tracing::debug!(status = %response.status(), "asset lookup failed; answering 404");
        return StatusCode::NOT_FOUND.into_response();
    }
    response
}

/// The agent console's page: revalidated, never framed, no referrer.
fn console<S>(web_dir: &Path) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    file(web_dir.join("console.html"), &[(header::CACHE_CONTROL, REVALIDATE)]).layer(middleware::map_response(
        |mut response: Response| async move {
            let headers = response.headers_mut();
            for (name, value) in [
                (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
                (header::X_FRAME_OPTIONS, "DENY"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
            ] {
                headers.insert(name, HeaderValue::from_static(value));
            }
            response
        },
    ))
}

/// GET and HEAD for one file, with its precompressed siblings.
fn file<S>(path: PathBuf, headers: &[(HeaderName, &'static str)]) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    with_headers(get_service(ServeFile::new(path).precompressed_br().precompressed_gzip()), headers)
}

/// Adds `headers` and `Vary: Accept-Encoding` to successful answers only:
/// a 404 must not be cached for a year.
fn with_headers<S>(route: MethodRouter<S>, headers: &[(HeaderName, &'static str)]) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let headers: Arc<[(HeaderName, HeaderValue)]> =
        headers.iter().map(|(name, value)| (name.clone(), HeaderValue::from_static(value))).collect();
    route.layer(middleware::map_response(move |mut response: Response| {
        let headers = Arc::clone(&headers);
        async move {
            let status = response.status();
            if status.is_success() || status == StatusCode::NOT_MODIFIED {
                let map = response.headers_mut();
                map.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
                for (name, value) in headers.iter() {
                    map.insert(name.clone(), value.clone());
                }
            }
            response
        }
    }))
}

pub mod framing;
#[cfg(test)]
mod tests;
